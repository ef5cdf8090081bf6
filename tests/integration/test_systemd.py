"""systemd integration (issue 11): sd_notify messages, socket activation
(LISTEN_FDS through the real systemd-socket-activate, and --bind fd://N), and
the example unit files under examples/systemd."""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import APPS, BIN, ROOT, Server, poll, read_response, run_trestle, server_env


def get(sock_or_addr, path="/"):
    if isinstance(sock_or_addr, socket.socket):
        s = sock_or_addr
    else:
        s = socket.create_connection(sock_or_addr, timeout=10)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        status, _, body, _ = read_response(s)
        return status, body
    finally:
        s.close()


# ---------------------------------------------------------------- sd_notify

class NotifySocket:
    """A unix datagram socket like systemd's, collecting what the server sends."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages = []

    def drain(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def wait_for(self, needle, count=1, timeout=10.0):
        found = poll(lambda: sum(needle in m for m in self.drain()) >= count, timeout=timeout)
        assert found, "no %d x %r among %r" % (count, needle, self.messages)
        return [m for m in self.messages if needle in m]

    def close(self):
        self.sock.close()


def test_ready_watchdog_and_stopping(serve, tmp_path):
    path = str(tmp_path / "notify")
    ns = NotifySocket(path)
    try:
        srv = serve("hello:app", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        ready = ns.wait_for("READY=1")[0]
        assert "MAINPID=%d" % srv.proc.pid in ready
        assert "STATUS=serving on 1 listener(s)" in ready
        # The READY datagram is sent once the server listens: the listening
        # line (which serve() waited for) is already in the log.
        assert "listening on http://" in srv.log()
        assert sum("READY=1" in m for m in ns.messages) == 1
        # WATCHDOG_USEC=200000: a ping every 100 ms.
        started = time.monotonic()
        ns.wait_for("WATCHDOG=1", count=3, timeout=5)
        assert time.monotonic() - started < 5
        assert get((srv.host, srv.port)) == (200, b"Hello, World!")
        srv.proc.send_signal(signal.SIGTERM)
        stopping = ns.wait_for("STOPPING=1")[0]
        assert "STATUS=draining" in stopping
        assert srv.proc.wait(10) == 0
    finally:
        ns.close()


def test_the_app_does_not_see_the_systemd_variables(serve, tmp_path):
    path = str(tmp_path / "notify")
    ns = NotifySocket(path)
    try:
        srv = serve("env_echo:app", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "5000000",
                                         "LISTEN_FDS": "1", "LISTEN_PID": "1", "TRESTLE_TEST_MARK": "1"})
        ns.wait_for("READY=1")
        status, body = get((srv.host, srv.port))
        names = body.decode().split("\n")
        assert status == 200 and "TRESTLE_TEST_MARK" in names
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDS", "LISTEN_PID"):
            assert name not in names
    finally:
        ns.close()


def test_abstract_notify_socket(serve):
    name = "trestle-test-%d-%d" % (os.getpid(), time.monotonic_ns())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(10)
    try:
        srv = serve("hello:app", env={"NOTIFY_SOCKET": "@" + name})
        msg = s.recv(4096).decode()
        assert "READY=1" in msg and "MAINPID=%d" % srv.proc.pid in msg
    finally:
        s.close()


def test_watchdog_pid_of_another_process_sends_no_pings(serve, tmp_path):
    path = str(tmp_path / "notify")
    ns = NotifySocket(path)
    try:
        srv = serve("hello:app", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
        ns.wait_for("READY=1")
        # Ten intervals' worth of time: a ping would have come.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            ns.drain()
            time.sleep(0.05)
        assert not any("WATCHDOG=1" in m for m in ns.messages), ns.messages
    finally:
        ns.close()


def test_unreachable_notify_socket_is_logged_once_and_serving_goes_on(serve, tmp_path):
    srv = serve("hello:app", env={"NOTIFY_SOCKET": str(tmp_path / "nobody"), "WATCHDOG_USEC": "100000"})
    assert get((srv.host, srv.port)) == (200, b"Hello, World!")
    srv.wait_log(r"sd_notify failed")
    # Several pings failed by now; one line in the log.
    time.sleep(0.3)
    assert srv.log().count("sd_notify failed") == 1
    assert srv.proc.poll() is None


# ---------------------------------------------------------------- socket activation

def find_socket_activate():
    for path in (shutil.which("systemd-socket-activate"), "/usr/bin/systemd-socket-activate",
                 "/lib/systemd/systemd-socket-activate"):
        if path and os.access(path, os.X_OK):
            return path
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Activated:
    """systemd-socket-activate listening on a free port, execing trestle on
    the first connection (it keeps its pid, so LISTEN_PID is trestle's)."""

    def __init__(self, tmp_path, *trestle_args, extra=(), env=None):
        tool = find_socket_activate()
        if not tool:
            pytest.skip("systemd-socket-activate not installed (Debian's systemd package)")
        self.log_path = str(tmp_path / "activate.log")
        for _ in range(5):   # a port freed by free_port() may be taken again meanwhile
            self.port = free_port()
            self.log_fh = open(self.log_path, "w")
            # The tool passes its children only TERM, PATH, USER and HOME
            # of its environment, and what -E names.
            # The sanitizer settings of a sanitized build are passed on too.
            passed = {k: v for k, v in os.environ.items()
                      if k in ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC", "TRESTLE_SANITIZED")}
            passed.update(env or {}, PYTHONDONTWRITEBYTECODE="1")
            setenv = ["-E%s=%s" % kv for kv in sorted(passed.items())]
            self.proc = subprocess.Popen([tool, "-l", "127.0.0.1:%d" % self.port] + setenv + list(extra) +
                                         [BIN] + list(trestle_args),
                                         cwd=APPS, env=server_env(), stdout=self.log_fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            if poll(lambda: "Listening on" in self.log() or self.proc.poll() is not None, timeout=10) and \
                    self.proc.poll() is None:
                return
            self.proc.wait(5)
            self.log_fh.close()
        raise AssertionError("systemd-socket-activate never listened:\n" + self.log())

    def log(self):
        with open(self.log_path, errors="replace") as fh:
            return fh.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_fh.close()
        return self.proc.returncode


def test_socket_activation_through_systemd_socket_activate(tmp_path):
    act = Activated(tmp_path, "hello:app", extra=["--fdname=web"])
    try:
        # The first connection makes the tool exec trestle, which accepts it
        # from the inherited socket's queue.
        assert get(("127.0.0.1", act.port)) == (200, b"Hello, World!")
        log = act.log()
        assert "socket activation: serving on 1 socket(s) from systemd: fd 3 (web)" in log
        assert "listening on http://127.0.0.1:%d (inherited fd 3)" % act.port in log
        assert "127.0.0.1:8000" not in log   # not the default bind
        assert get(("127.0.0.1", act.port)) == (200, b"Hello, World!")
    finally:
        rc = act.stop()
    assert rc == 0, act.log()
    assert "shutting down gracefully" in act.log()


def test_socket_activation_hides_listen_variables_from_the_app(tmp_path):
    act = Activated(tmp_path, "env_echo:app")
    try:
        status, body = get(("127.0.0.1", act.port))
        names = body.decode().split("\n")
        assert status == 200 and "PATH" in names
        for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            assert name not in names, names
    finally:
        act.stop()


def test_an_explicit_bind_wins_over_listen_fds(tmp_path):
    act = Activated(tmp_path, "hello:app", "--bind", "127.0.0.1:0")
    try:
        # trestle starts on the first connection, which stays queued on the
        # inherited socket nobody accepts; it binds a port of its own.
        s = socket.create_connection(("127.0.0.1", act.port), timeout=10)
        m = poll(lambda: re.search(r"listening on http://127\.0\.0\.1:(\d+)\n", act.log()), timeout=20)
        assert m, act.log()
        assert "serve only where --bind names them" in act.log()
        assert get(("127.0.0.1", int(m.group(1)))) == (200, b"Hello, World!")
        s.close()
    finally:
        act.stop()


def listening_socket(family=socket.AF_INET, path=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(path if path else ("127.0.0.1", 0))
    s.listen(16)
    return s


def start_with_fd(sock, *args, fd_args=None):
    """Starts trestle with `sock` passed as a descriptor (pass_fds)."""
    fd = sock.fileno()
    srv = Server.__new__(Server)
    srv.log_file = tempfile.NamedTemporaryFile(prefix="trestle-", suffix=".log", delete=False)
    srv.log_path = srv.log_file.name
    srv.args = [BIN] + list(args) + (fd_args if fd_args is not None else ["--bind", "fd://%d" % fd])
    srv.proc = subprocess.Popen(srv.args, cwd=APPS, env=server_env(), stdout=srv.log_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=(fd,))
    srv.host = srv.port = None
    return srv


def test_bind_fd_tcp(tmp_path):
    ls = listening_socket()
    port = ls.getsockname()[1]
    srv = start_with_fd(ls, "hello:app")
    ls.close()   # the server holds its own copy
    try:
        srv.wait_ready()
        assert srv.port == port
        assert "(inherited fd " in srv.log()
        assert get(("127.0.0.1", port)) == (200, b"Hello, World!")
        # close-on-exec: the listener is not inherited by the app's children
        fd = int(re.search(r"inherited fd (\d+)", srv.log()).group(1))
        with open("/proc/%d/fdinfo/%d" % (srv.proc.pid, fd)) as fh:
            flags = int(re.search(r"flags:\s*(\d+)", fh.read()).group(1), 8)
        assert flags & 0o2000000, "O_CLOEXEC not set on the inherited listener"
    finally:
        assert srv.stop() == 0


def test_bind_fd_unix_is_not_unlinked(tmp_path):
    path = str(tmp_path / "s.sock")
    ls = listening_socket(socket.AF_UNIX, path)
    srv = start_with_fd(ls, "hello:app")
    ls.close()
    try:
        assert poll(lambda: "listening on unix:%s (inherited fd" % path in srv.log() or srv.proc.poll() is not None,
                    timeout=20), srv.log()
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(10)
        c.connect(path)
        assert get(c) == (200, b"Hello, World!")
    finally:
        assert srv.stop() == 0
    # The socket's owner made the path; the server leaves it.
    assert os.path.exists(path)


@pytest.mark.parametrize("kind,needle", [
    ("bound-not-listening", "not a listening socket"),
    ("datagram", "not a stream socket"),
    ("file", "not a socket"),
    ("closed", "not an open descriptor"),
])
def test_bind_fd_that_is_no_listener_is_one_line_and_exit_2(tmp_path, kind, needle):
    if kind == "bound-not-listening":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        fd, keep = s.fileno(), s
    elif kind == "datagram":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        fd, keep = s.fileno(), s
    elif kind == "file":
        keep = open(str(tmp_path / "f"), "w")
        fd = keep.fileno()
    else:
        keep, fd = None, 900
    try:
        r = subprocess.run([BIN, "hello:app", "--bind", "fd://%d" % fd], cwd=APPS, env=server_env(),
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                           pass_fds=(fd,) if keep else ())
    finally:
        if keep:
            keep.close()
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "fd://%d" % fd in lines[0], r.stderr


@pytest.mark.parametrize("value", ["fd://", "fd://x", "fd://-1", "fd://3x"])
def test_bad_fd_bind_syntax_exits_2(value):
    r = run_trestle("hello:app", "--bind", value)
    assert r.returncode == 2
    assert "expected fd://N" in r.stderr


def test_listen_fds_for_another_pid_is_ignored(serve):
    # LISTEN_PID names another process: the variables are not for us, the
    # default bind (here the fixture's --bind) is used and fd 3 is left alone.
    srv = serve("hello:app", env={"LISTEN_FDS": "1", "LISTEN_PID": "1"})
    assert "socket activation" not in srv.log()
    assert get((srv.host, srv.port)) == (200, b"Hello, World!")


# ---------------------------------------------------------------- examples/systemd

EXAMPLES = os.path.join(ROOT, "examples", "systemd")


def unit(name):
    """A unit file as {section: {key: [values]}} (keys may repeat)."""
    out, section = {}, None
    with open(os.path.join(EXAMPLES, name)) as fh:
        for line in fh:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = out.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            section.setdefault(key.strip(), []).append(value.strip())
    return out


def test_example_units_use_only_flags_trestle_has():
    service, sock = unit("trestle.service"), unit("trestle.socket")
    assert service["Service"]["Type"] == ["notify"]
    assert "trestle.socket" in service["Unit"]["Requires"][0]
    assert sock["Socket"]["ListenStream"]
    argv = shlex.split(service["Service"]["ExecStart"][0])
    help_text = run_trestle("--help").stdout
    flags = [a.split("=")[0] for a in argv[1:] if a.startswith("-")]
    assert flags
    for flag in flags:
        assert re.search(r"(^|[ ,])%s\b" % re.escape(flag), help_text, re.M), "%s not in trestle --help" % flag
    assert service["Service"]["KillMode"] == ["mixed"]
    assert service["Service"]["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # With the socket unit, the service binds nothing itself.
    assert "--bind" not in argv and "-b" not in argv
    # The stop timeout leaves room for the drain and the 2 s after it.
    graceful = float(argv[argv.index("--graceful-timeout") + 1])
    assert float(service["Service"]["TimeoutStopSec"][0]) > graceful + 2


def test_example_units_run_under_socket_activation(tmp_path):
    """Starts trestle as the units would: the ExecStart flags, the socket's
    FileDescriptorName, NOTIFY_SOCKET and WATCHDOG_USEC from WatchdogSec."""
    service, sock = unit("trestle.service"), unit("trestle.socket")
    argv = shlex.split(service["Service"]["ExecStart"][0])
    args = argv[1:]
    args[0] = "hello:app"   # the unit's app is the user's
    access = str(tmp_path / "access.log")
    args[args.index("--access-log") + 1] = access
    watchdog_usec = int(float(service["Service"]["WatchdogSec"][0]) * 1000000)
    notify = NotifySocket(str(tmp_path / "notify"))
    act = Activated(tmp_path, *args, extra=["--fdname=" + sock["Socket"]["FileDescriptorName"][0]],
                    env={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": str(watchdog_usec)})
    try:
        assert get(("127.0.0.1", act.port), "/through-the-unit") == (200, b"Hello, World!")
        ready = notify.wait_for("READY=1")[0]
        assert "MAINPID=%d" % act.proc.pid in ready
        workers = int(argv[argv.index("--workers") + 1])
        assert "STATUS=%d worker(s) serving" % workers in ready
        # ExecReload: a rolling reload, announced to systemd.
        act.proc.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1", count=2, timeout=30)
        assert get(("127.0.0.1", act.port), "/through-the-unit") == (200, b"Hello, World!")
        assert "fd 3 (web)" in act.log()
        assert notify.wait_for("WATCHDOG=1")
        assert poll(lambda: os.path.exists(access) and "/through-the-unit" in open(access).read(), timeout=5)
        act.proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert act.proc.wait(float(service["Service"]["TimeoutStopSec"][0])) == 0
    finally:
        act.stop()
        notify.close()


def test_supervisor_notifies_ready_status_reloading_and_stopping(serve, tmp_path):
    path = str(tmp_path / "notify")
    ns = NotifySocket(path)
    try:
        srv = serve("hello:app", "--workers", "2", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        ready = ns.wait_for("READY=1", timeout=30)[0]
        assert "MAINPID=%d" % srv.proc.pid in ready and "STATUS=2 worker(s) serving" in ready
        assert sum("READY=1" in m for m in ns.messages) == 1   # once, from the supervisor, not per worker
        ns.wait_for("WATCHDOG=1", count=3, timeout=5)
        srv.proc.send_signal(signal.SIGHUP)
        reloading = ns.wait_for("RELOADING=1")[0]
        assert "MONOTONIC_USEC=" in reloading
        ns.wait_for("READY=1", count=2, timeout=30)
        assert "STATUS=2 worker(s) serving, 2 wanted" in ns.drain()
        srv.proc.send_signal(signal.SIGTERM)
        ns.wait_for("STOPPING=1")
        assert srv.proc.wait(20) == 0
    finally:
        ns.close()


def test_socket_activation_with_workers_shares_systemds_socket(tmp_path):
    act = Activated(tmp_path, "pid_app:app", "--workers", "2")
    try:
        pids = set()
        for _ in range(3):
            status, body = get(("127.0.0.1", act.port))
            assert status == 200
            pids.add(body)
        assert poll(lambda: "2 worker(s) serving" in act.log(), timeout=30)
        # Connections open at once are shared by the two workers (one at a
        # time, each may go to either).
        for _ in range(5):
            socks = [socket.create_connection(("127.0.0.1", act.port), timeout=10) for _ in range(16)]
            for s in socks:
                pids.add(get(s)[1])
            if len(pids) == 2:
                break
        assert len(pids) == 2, pids
        assert "listening on http://127.0.0.1:%d (inherited fd 3)" % act.port in act.log()
    finally:
        rc = act.stop()
    assert rc == 0, act.log()
