"""Descriptors of the server are close-on-exec (issue 10 item 10).

A child that an app spawns (os.system, subprocess with close_fds=False)
inherited the listening socket, the client's socket, and so on: the port
stayed bound after the server exited, and a client's connection stayed open
while the child lived.
"""
import os
import signal
import socket

import pytest
import requests

from upstream_server import Upstream


def inherited(text):
    """The child's descriptors above stderr, as {fd: target}, without the one ls read them with."""
    fds = {}
    for line in text.splitlines():
        left, sep, target = line.partition(" -> ")
        if not sep:
            continue
        fd = left.split()[-1]
        if fd.isdigit() and int(fd) > 2 and "/proc/" not in target:
            fds[int(fd)] = target
    return fds


def test_a_child_inherits_no_descriptor_of_the_server(serve, tmp_path):
    (tmp_path / "f.txt").write_bytes(b"x" * 100000)
    log = tmp_path / "access.log"
    up = Upstream()
    try:
        srv = serve("spawner:app", "/static=static:" + str(tmp_path), "/up=proxy:" + up.url(),
                    "--access-log", str(log))
        # Open meanwhile: the listener, the access log, an idle upstream
        # connection in the proxy's pool, another client's keep-alive
        # connection, and the request's own socket.
        assert requests.get(srv.url + "/up/echo", timeout=20).status_code == 200
        keep = srv.connect()
        keep.sendall(b"GET /static/f.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r = requests.get(srv.url + "/fds", timeout=20)
        keep.close()
        assert r.status_code == 200
        fds = inherited(r.text)
        assert fds == {}, "the child inherited: %r" % fds
    finally:
        up.stop()


def test_the_port_can_be_bound_again_while_a_child_lives(serve):
    srv = serve("spawner:app")
    pid = int(requests.get(srv.url + "/linger", timeout=20).text)
    try:
        port = srv.port
        assert srv.stop() == 0
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        finally:
            s.close()
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
