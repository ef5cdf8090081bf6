"""Install and package (issue 11, section 7).

`cmake --install` of the build under test into a temporary prefix; the
installed binary serves an app written outside the checkout, from any
working directory, finds its own `trestle` package beside itself (not in the
source tree), and still does after the whole prefix is moved. `cpack -G DEB`
builds a package whose control data and contents are checked; as root, on a
machine without a trestle of its own, the package is installed with dpkg,
serves, and is removed again.
"""
import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, LISTEN_RE, ROOT, server_env

BUILD = os.path.dirname(os.path.abspath(BIN))
PACKAGE_FILES = ("__init__.py", "_asgi.py", "_runtime.py", "flask.py")

# A WSGI app at the root and an ASGI app under /a: each reports where it
# imported `trestle` from and whether trestle.loop is there.
APP = '''
import trestle


def report():
    return ("%s %s" % (trestle.__file__, callable(getattr(trestle, "loop", None)))).encode()


def app(environ, start_response):
    body = report()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"asgi " + report()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
'''


def need_build_tree():
    if not os.path.exists(os.path.join(BUILD, "CMakeCache.txt")):
        pytest.skip("TRESTLE_BIN is not in a CMake build directory (%s)" % BUILD)


def write_app(directory):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "installapp.py"), "w") as fh:
        fh.write(APP)
    return directory


def cmake_install(prefix):
    need_build_tree()
    subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)


class Installed:
    """A server started from an installed binary, stopped with SIGTERM."""

    def __init__(self, binary, args, cwd, log_dir):
        self.log_path = os.path.join(log_dir, "trestle-%d.log" % time.monotonic_ns())
        self.log_file = open(self.log_path, "wb")
        env = server_env()
        # Nothing may lead the binary to the checkout's package.
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen([binary] + args + ["--bind", "127.0.0.1:0"], cwd=cwd, env=env,
                                     stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.port = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = self.log()
            m = LISTEN_RE.search(text)
            if m and "serving " in text:
                self.port = int(m.group(3))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError("installed trestle did not start (exit %s):\n%s" % (self.proc.returncode, self.log()))

    def log(self):
        with open(self.log_path, "r", errors="replace") as fh:
            return fh.read()

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode


def check_serves(binary, package_dir, app_dir, cwd, log_dir):
    """Serves installapp from app_dir (via --chdir) with the given cwd and
    checks both apps import trestle from package_dir."""
    srv = Installed(binary, ["--chdir", app_dir, "installapp:app", "/a=installapp:asgi_app"], cwd, log_dir)
    try:
        expected = os.path.join(package_dir, "trestle", "__init__.py")
        status, body = srv.get("/")
        assert status == 200, body
        assert body == "%s True" % expected, body
        status, body = srv.get("/a/")
        assert status == 200, body
        assert body == "asgi %s True" % expected, body
    finally:
        assert srv.stop() == 0, srv.log()


def test_installed_tree_serves_from_anywhere_and_after_a_move(tmp_path):
    prefix = str(tmp_path / "prefix")
    cmake_install(prefix)
    binary = os.path.join(prefix, "bin", "trestle")
    package = os.path.join(prefix, "share", "trestle", "python")
    assert os.access(binary, os.X_OK)
    for name in PACKAGE_FILES:
        assert os.path.isfile(os.path.join(package, "trestle", name)), name
    for name in ("copyright", "CHANGELOG.md", "README.md"):
        assert os.path.isfile(os.path.join(prefix, "share", "doc", "trestle", name)), name
    assert not os.path.realpath(prefix).startswith(os.path.realpath(ROOT) + os.sep)

    app_dir = write_app(str(tmp_path / "site"))
    logs = str(tmp_path)
    # From / and from the app's own directory.
    check_serves(binary, package, app_dir, "/", logs)
    check_serves(binary, package, app_dir, app_dir, logs)

    # The whole tree moved elsewhere: nothing in it names the old prefix.
    moved = str(tmp_path / "elsewhere" / "opt-trestle")
    os.makedirs(os.path.dirname(moved))
    shutil.move(prefix, moved)
    assert not os.path.exists(prefix)
    check_serves(os.path.join(moved, "bin", "trestle"), os.path.join(moved, "share", "trestle", "python"),
                 app_dir, "/", logs)

    # Called through a symlink in another bin directory (as /usr/local/bin
    # links often are), it still finds the package beside its real self.
    link_dir = tmp_path / "linkbin"
    link_dir.mkdir()
    os.symlink(os.path.join(moved, "bin", "trestle"), str(link_dir / "trestle"))
    check_serves(str(link_dir / "trestle"), os.path.join(moved, "share", "trestle", "python"),
                 app_dir, app_dir, logs)


def deb_field(info, name):
    for line in info.splitlines():
        line = line.strip()
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def test_deb_package(tmp_path):
    need_build_tree()
    if not shutil.which("cpack") or not shutil.which("dpkg-deb") or not shutil.which("dpkg-shlibdeps"):
        pytest.skip("cpack, dpkg-deb or dpkg-shlibdeps (dpkg-dev) missing")
    out = str(tmp_path / "pkg")
    run = subprocess.run(["cpack", "-G", "DEB", "-B", out], cwd=BUILD, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=300)
    assert run.returncode == 0, run.stdout.decode(errors="replace")
    debs = [f for f in os.listdir(out) if f.endswith(".deb")]
    assert len(debs) == 1, os.listdir(out)
    deb = os.path.join(out, debs[0])
    assert debs[0].startswith("trestle_0.1.0_"), debs[0]

    info = subprocess.run(["dpkg-deb", "-I", deb], check=True, stdout=subprocess.PIPE, timeout=60).stdout.decode()
    assert deb_field(info, "Package") == "trestle"
    assert deb_field(info, "Version") == "0.1.0"
    assert deb_field(info, "Maintainer")
    assert deb_field(info, "Description")
    depends = [d.strip().split(" ")[0] for d in (deb_field(info, "Depends") or "").split(",")]
    # dpkg-shlibdeps' libraries (the static libpython brings zlib and expat)
    # and the Python the binary embeds, for its standard library.
    for dep in ("libc6", "libstdc++6", "python3.11", "python3-minimal"):
        assert dep in depends, info

    contents = subprocess.run(["dpkg-deb", "-c", deb], check=True, stdout=subprocess.PIPE,
                              timeout=60).stdout.decode()
    paths = {line.split()[-1] for line in contents.splitlines() if line.strip()}
    assert "./usr/bin/trestle" in paths, contents
    for name in PACKAGE_FILES:
        assert "./usr/share/trestle/python/trestle/" + name in paths, contents
    assert "./usr/share/doc/trestle/copyright" in paths, contents
    assert not any("__pycache__" in p for p in paths), contents

    # Installing it on this machine: only as root, and only where it cannot
    # replace a trestle of the machine's own.
    if os.geteuid() != 0:
        pytest.skip("not root: the .deb was built and inspected but not installed")
    if os.environ.get("TRESTLE_SANITIZED"):
        pytest.skip("sanitizer build: its .deb was built and inspected; the normal run installs one")
    if os.path.exists("/usr/bin/trestle") or subprocess.run(
            ["dpkg", "-s", "trestle"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
        pytest.skip("a trestle is already installed on this machine: the .deb was not installed over it")
    site = tempfile.mkdtemp(prefix="trestle-deb-site-", dir="/tmp")
    try:
        run = subprocess.run(["dpkg", "-i", deb], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        assert run.returncode == 0, run.stdout.decode(errors="replace")
        write_app(site)
        check_serves("/usr/bin/trestle", "/usr/share/trestle/python", site, site, str(tmp_path))
    finally:
        subprocess.run(["dpkg", "-r", "trestle"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(site, ignore_errors=True)
    assert not os.path.exists("/usr/bin/trestle")
