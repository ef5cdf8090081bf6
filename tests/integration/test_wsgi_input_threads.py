"""wsgi.input used from threads other than the app's (issue 10 item 11).

The rule (docs/architecture.md): the stream is safe to share between threads, its reads are
serialized (a lock per stream, waited for with the GIL released), and when the request ends
every read still blocked on the body is woken and fails, as does every later read: a Python
exception (OSError or ValueError), never a hang, a crash or freed memory.

Before the fix: fill() released the GIL while the exchange wrote into the stream's buffer, so a
second thread reading the same stream could reallocate that buffer under it; and a thread still
blocked in exchange::read when the request ended waited on a condition variable that was then
freed (or for ever). Run these under the ASan build as well (.ci/sanitize).

With a reader left waiting for the body, the io side may be reading the body for it when the
response completes; it then writes the response once that read ends (--io-timeout at the latest,
so the tests that leave a reader set it short). That wait belongs to the connection's pump
(bridge/net/session.cpp), not to the stream.
"""
import collections
import json
import socket
import time

import pytest
import requests

from conftest import poll, read_response

TIMEOUT = 30
APP = "input_threads:app"


# Gathered (the body is in a temporary file, read with pread) and streamed
# (read from the socket into the stream's buffer as the threads ask).
@pytest.mark.parametrize("flags", [[], ["--no-buffer-body"]], ids=["buffered", "streamed"])
def test_two_threads_reading_one_stream_get_the_body_exactly_once(serve, flags):
    srv = serve(APP, *flags)
    body = bytes(i % 251 for i in range(3 * 1024 * 1024 + 17))
    expected = collections.Counter(body)
    for _ in range(3):
        s = srv.connect(timeout=TIMEOUT)
        try:
            s.sendall(b"POST /two-readers HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
            # In pieces, so the readers block on the body often and overlap.
            for at in range(0, len(body), 64 * 1024):
                s.sendall(body[at:at + 64 * 1024])
            status, _, data, _ = read_response(s, timeout=TIMEOUT)
        finally:
            s.close()
        assert status == 200, data
        result = json.loads(data)
        assert sum(result["bytes"]) == len(body)
        assert {int(k): v for k, v in result["counts"].items()} == expected
    assert requests.get(srv.url + "/sane", timeout=TIMEOUT).json() == {"type_ok": True, "sum": 5}


def test_a_reader_left_blocked_when_the_request_ends_gets_an_exception(serve):
    """The app starts a thread that reads the whole body and returns once the thread waits for
    the body; the client has sent 10 bytes of 100000 and keeps the connection open. The thread's
    read must fail as soon as the request is over, and so must its next read (even of the 10
    bytes already buffered)."""
    srv = serve(APP, "--io-timeout", "2", "--no-buffer-body")   # a reader can only block on a streamed body
    s = srv.connect(timeout=TIMEOUT)
    try:
        s.sendall(b"POST /leave-reader/open HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789")
        status, _, data, _ = read_response(s, timeout=TIMEOUT)
        assert status == 200 and json.loads(data)["blocked"], data
        state = poll(lambda: (requests.get(srv.url + "/state/open", timeout=TIMEOUT).json() or {}).get("again"),
                     timeout=10)
        got = requests.get(srv.url + "/state/open", timeout=TIMEOUT).json()
        assert state, got
        # Woken by the end of the request itself, not later by --io-timeout (OSError then).
        assert got["error"] == "ValueError" and "request ended" in got["message"], got
        assert got["again"] == "ValueError", got
    finally:
        s.close()
    assert requests.get(srv.url + "/sane", timeout=TIMEOUT).json() == {"type_ok": True, "sum": 5}


def test_a_reader_left_blocked_when_the_client_goes_gets_an_exception(serve):
    """The same, but the client closes right after the response: the exchange goes away with the
    connection, and the thread must have left it first."""
    srv = serve(APP, "--io-timeout", "2", "--no-buffer-body")   # a reader can only block on a streamed body
    for i in range(4):
        name = "gone%d" % i
        s = srv.connect(timeout=TIMEOUT)
        s.sendall(b"POST /leave-reader/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789"
                  % name.encode())
        status, _, data, _ = read_response(s, timeout=TIMEOUT)
        s.close()
        assert status == 200 and json.loads(data)["blocked"], data
        assert poll(lambda: (requests.get(srv.url + "/state/" + name, timeout=TIMEOUT).json() or {}).get("again"),
                    timeout=10)
        got = requests.get(srv.url + "/state/" + name, timeout=TIMEOUT).json()
        assert got["error"] in ("OSError", "ValueError") and got["again"] in ("OSError", "ValueError"), got
    assert requests.get(srv.url + "/sane", timeout=TIMEOUT).json() == {"type_ok": True, "sum": 5}
    assert srv.proc.poll() is None


# --- a sibling on the response side: write() from threads of the app's ---------------------------

def slow_get(srv, path):
    """GET `path` with a small receive buffer, reading slowly, so the app's output stays above
    --output-hwm and its writes wait for the client (the GIL released). Returns the whole answer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(TIMEOUT)
    s.connect((srv.host, srv.port))
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            chunk = s.recv(8192)
            if not chunk:
                break
            data += chunk
            time.sleep(0.0005)   # the client's pace, not a wait for the server
        return data
    finally:
        s.close()


def dechunk(body):
    out, rest = b"", body
    for _ in range(100000):
        line, _, rest = rest.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            return out
        out, rest = out + rest[:n], rest[n + 2:]
    raise AssertionError("no last chunk")


def test_write_from_another_thread_while_the_app_iterates_keeps_each_chunk_whole(serve):
    """Before the fix, the thread's write() appended to the response buffer while the pool thread,
    GIL released, handed that buffer to the exchange: ASan saw a read of freed memory, and the
    body could come out torn."""
    srv = serve(APP, "--output-hwm", "16384")
    for _ in range(3):
        data = slow_get(srv, "/two-writers")
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK"), data[:300]
        out = dechunk(body)
        assert len(out) == 80 * 65536
        for at in range(0, len(out), 65536):
            assert out[at:at + 65536] in (b"x" * 65536, b"y" * 65536), at
        assert out.count(b"x") == 40 * 65536
    assert requests.get(srv.url + "/sane", timeout=TIMEOUT).json() == {"type_ok": True, "sum": 5}


def test_write_left_running_after_the_response_gets_an_exception(serve):
    """A thread that goes on calling write() after the app returned: the response still ends
    where it should (the next response on the connection parses) and the thread gets
    RuntimeError."""
    srv = serve(APP)
    for i in range(5):
        name = "writer%d" % i
        s = srv.connect(timeout=TIMEOUT)
        try:
            s.sendall(b"GET /leave-writer/%s HTTP/1.1\r\nHost: x\r\n\r\nGET /sane HTTP/1.1\r\nHost: x\r\n\r\n"
                      % name.encode())
            status, _, _, rest = read_response(s, timeout=TIMEOUT)
            assert status == 200
            status, _, body, _ = read_response(s, rest, timeout=TIMEOUT)
            assert status == 200 and json.loads(body) == {"type_ok": True, "sum": 5}, body
        finally:
            s.close()
        got = poll(lambda: requests.get(srv.url + "/state/" + name, timeout=TIMEOUT).json(), timeout=10)
        assert got and got["error"] == "RuntimeError", got
    assert srv.proc.poll() is None
