"""Fixtures that run the real trestle binary on loopback.

`serve(app, *flags)` starts `trestle APP --bind 127.0.0.1:0 FLAGS...` with the
fixture apps in tests/apps on sys.path, waits until the server logs the port
it bound (polling its log, never sleeping blindly), and stops it with SIGTERM
at the end of the test.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.environ.get("TRESTLE_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("TRESTLE_BIN") or os.path.join(ROOT, "build", "trestle")
APPS = os.path.join(ROOT, "tests", "apps")
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
LISTEN_RE = re.compile(r"listening on (https?)://([0-9.]+|\[[0-9a-f:]+\]):(\d+)")


# What AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer and
# ThreadSanitizer print when they find something.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


class Server:
    crash_expected = False

    def __init__(self, args, cwd, env, expect_ready=True):
        self.log_file = tempfile.NamedTemporaryFile(prefix="trestle-", suffix=".log", delete=False)
        self.log_path = self.log_file.name
        self.args = [BIN] + list(args)
        self.proc = subprocess.Popen(self.args, cwd=cwd, env=env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.host = None
        self.port = None
        self.scheme = "http"
        if expect_ready:
            self.wait_ready()

    def log(self):
        with open(self.log_path, "r", errors="replace") as fh:
            return fh.read()

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.log())
            if m and "serving " in self.log():
                self.scheme = m.group(1)
                self.host = m.group(2).strip("[]")
                self.port = int(m.group(3))
                return
            if self.proc.poll() is not None:
                raise RuntimeError("trestle exited with %s:\n%s" % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        raise RuntimeError("trestle did not start in %ss:\n%s" % (timeout, self.log()))

    @property
    def url(self):
        return "%s://%s:%d" % (self.scheme, self.host, self.port)

    def connect(self, timeout=10.0):
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def wait_log(self, pattern, timeout=10.0):
        """Polls the server log until `pattern` (a regex) appears."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if re.search(pattern, text):
                return text
            time.sleep(0.02)
        raise AssertionError("log never matched %r:\n%s" % (pattern, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode


def server_env(extra=None):
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        env.update(extra)
    return env


@pytest.fixture
def serve():
    started = []

    def start(app, *flags, cwd=APPS, env=None, bind=True, expect_ready=True, crash_expected=False):
        args = [app] + (["--bind", "127.0.0.1:0"] if bind else []) + list(flags)
        srv = Server(args, cwd, server_env(env), expect_ready=expect_ready)
        srv.crash_expected = crash_expected
        started.append(srv)
        return srv

    yield start
    reports = []
    for srv in started:
        srv.stop()
        log = srv.log()
        if not srv.crash_expected and any(marker in log for marker in SANITIZER_MARKERS):
            reports.append(log)
        try:
            os.unlink(srv.log_path)
        except OSError:
            pass
    # A sanitizer report in a server's log fails the test, whatever it checked.
    assert not reports, "sanitizer report in the server log:\n" + reports[0][-6000:]


def tsan_thread_leaks_allowed():
    """Extra environment for a server that may leave by `_exit` while app
    threads still run (a deliberate stop without finalizing Python): under
    ThreadSanitizer (.ci/tsan) those threads are reported as leaked and the
    exit status becomes 66. This turns off the thread-leak report only, for
    that one server; races are still reported. Nothing outside ThreadSanitizer."""
    opts = os.environ.get("TSAN_OPTIONS")
    return {"TSAN_OPTIONS": opts + ":report_thread_leaks=0"} if opts else None


def run_trestle(*args, cwd=APPS, timeout=30, env=None):
    """Runs trestle to completion (for startup errors) and returns the result."""
    return subprocess.run([BIN] + list(args), cwd=cwd, env=server_env(env), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def recv_until_closed(sock, limit=64 << 20, timeout=10.0):
    sock.settimeout(timeout)
    chunks = []
    total = 0
    while total < limit:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


def poll(fn, timeout=10.0, interval=0.02):
    """Calls fn until it returns something truthy or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    return fn()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def read_head(sock, buf=b"", timeout=10.0):
    """Reads a response head only. Returns (status, [(name, value)...] in order, rest)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        assert time.monotonic() < deadline, "no full response head: %r" % buf
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before a full response head: %r" % buf)
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields.append((k.strip(), v.strip()))
    return int(lines[0].split(" ")[1]), fields, rest


def ws_handshake(srv, path="/echo"):
    """Opens a WebSocket on a raw socket: sends the upgrade, checks the 101, returns the socket."""
    import base64
    s = srv.connect()
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
    status, _, _ = read_head(s)
    assert status == 101
    return s


def read_response(sock, buf=b"", timeout=10.0):
    """Reads one HTTP/1.1 response from a raw socket. Returns (status, headers, body, rest)."""
    sock.settimeout(timeout)
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before a full response head: %r" % buf)
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    if status == 100:
        return read_response(sock, buf, timeout)
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed mid-body")
            buf += data
        return status, headers, buf[:n], buf[n:]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += sock.recv(65536)
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed mid-chunk")
                buf += data
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                return status, headers, body, buf
    return status, headers, buf + recv_until_closed(sock), b""
