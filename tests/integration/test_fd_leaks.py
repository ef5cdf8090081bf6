"""File responses whose client resets before they are written: the file's descriptor must be
closed all the same (issue 10 item 1). Each case counts the server's /proc/PID/fd before and after
100 clients that send a request and reset the connection at once (SO_LINGER {1, 0})."""
import os
import socket
import struct
import pytest

from conftest import poll, read_response

LINGER_RST = struct.pack("ii", 1, 0)
ROUNDS = 100


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fetch_ok(srv, target):
    with srv.connect() as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target).encode())
        status, _, _, _ = read_response(s)
        assert status == 200


def reset_many(srv, target):
    req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target).encode()
    for _ in range(ROUNDS):
        s = srv.connect()
        s.sendall(req)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        s.close()


def assert_no_leak(srv, target):
    fetch_ok(srv, target)   # warm up: threads, interpreter imports, the first file open
    before = fd_count(srv.proc.pid)
    reset_many(srv, target)
    # Let the server notice every reset, then check a normal request still works.
    fetch_ok(srv, target)
    poll(lambda: fd_count(srv.proc.pid) <= before + 5, timeout=10)
    now = fd_count(srv.proc.pid)
    assert now <= before + 5, "descriptors went from %d to %d after %d resets" % (before, now, ROUNDS)


@pytest.fixture
def big_file(tmp_path):
    # Large enough that the response cannot be written whole before the reset is seen.
    p = tmp_path / "public"
    p.mkdir()
    (p / "file.txt").write_bytes(b"x" * (256 * 1024))
    return p


def test_static_mount_does_not_leak_descriptors_on_reset(serve, big_file):
    srv = serve("hello:app", "/static=static:" + str(big_file))
    assert_no_leak(srv, "/static/file.txt")


def test_wsgi_file_wrapper_does_not_leak_descriptors_on_reset(serve, big_file):
    srv = serve("wsgi_cases:app")
    assert_no_leak(srv, "/file?" + str(big_file / "file.txt"))


def test_asgi_pathsend_does_not_leak_descriptors_on_reset(serve, big_file):
    srv = serve("asgi_pathsend:app")
    assert_no_leak(srv, "/f?" + str(big_file / "file.txt"))
