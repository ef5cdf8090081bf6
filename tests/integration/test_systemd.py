"""systemd integration (issue 11): sd_notify messages, socket activation
(LISTEN_FDS through the real systemd-socket-activate, and --bind fd://N), and
the example unit files under examples/systemd."""
import os
import re
import shutil
import signal
import socket
import subprocess
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
                                         "TRESTLE_TEST_MARK": "1"})
        ns.wait_for("READY=1")
        status, body = get((srv.host, srv.port))
        names = body.decode().split("\n")
        assert status == 200 and "TRESTLE_TEST_MARK" in names
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):
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
