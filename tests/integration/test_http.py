"""HTTP/1.1 behaviour of the server itself, over raw sockets."""
import json
import os
import signal
import socket
import tempfile
import time

import pytest
import requests

from conftest import read_response, recv_until_closed

APP = "wsgi_cases:app"


def get(path, host="x", extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, extra)).encode()


def test_keep_alive_serves_several_requests_on_one_connection(serve):
    srv = serve(APP)
    s = srv.connect()
    rest = b""
    for i in range(5):
        s.sendall(get("/r%d" % i))
        status, headers, body, rest = read_response(s, rest)
        assert status == 200
        assert json.loads(body)["path"] == "/r%d" % i
        assert "connection" not in headers


def test_pipelined_responses_come_back_in_request_order(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"".join(get("/p%d" % i) for i in range(20)) + get("/sleep", extra="") + get("/last"))
    rest = b""
    paths = []
    for _ in range(22):
        status, _, body, rest = read_response(s, rest)
        assert status == 200
        paths.append(json.loads(body)["path"] if body != b"slept" else "/sleep")
    assert paths == ["/p%d" % i for i in range(20)] + ["/sleep", "/last"]


def test_chunked_request_body_reaches_the_app(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n")
    status, headers, body, _ = read_response(s)
    assert status == 200 and body == b"hello, world"


def test_expect_continue_sends_100_only_when_the_app_reads(serve):
    # With streamed bodies; buffered (the default), the 100 goes out when
    # buffering starts: test_body_buffering.py.
    srv = serve(APP, "--no-buffer-body")
    s = srv.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    s.settimeout(10)
    interim = s.recv(4096)
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    s.sendall(b"hello")
    status, _, body, _ = read_response(s, interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
    assert status == 200 and body == b"hello"

    # An app that never reads the body: no 100, and the connection closes
    # because the client may or may not send the body now.
    s2 = srv.connect()
    s2.sendall(b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    data = recv_until_closed(s2)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"100 Continue" not in data
    assert b"Connection: close\r\n" in data


def test_head_has_headers_and_no_body(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"HEAD /multi HTTP/1.1\r\nHost: x\r\n\r\n" + get("/after"))
    data = b""
    s.settimeout(10)
    while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}"):
        chunk = s.recv(65536)
        assert chunk
        data += chunk
    head_resp, _, second = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 3" in head_resp
    assert second.startswith(b"HTTP/1.1 200 OK")


def test_http10_closes_unless_keep_alive_asked(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /a HTTP/1.0\r\n\r\n")
    data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in data

    s = srv.connect()
    s.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _, rest = read_response(s)
    assert status == 200 and headers["connection"].lower() == "keep-alive"
    s.sendall(b"GET /b HTTP/1.0\r\n\r\n")
    assert b'"/b"' in recv_until_closed(s)


def test_http10_stream_without_length_is_close_delimited(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /gen HTTP/1.0\r\n\r\n")
    data = recv_until_closed(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and body == b"chunk0\nchunk1\nchunk2\n"


def test_connection_close_is_honoured(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(get("/a", extra="Connection: close\r\n") + get("/never"))
    data = recv_until_closed(s)
    assert data.count(b"HTTP/1.1") == 1 and b"Connection: close" in data


def test_date_and_server_headers(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/", timeout=10)
    assert r.headers["Server"] == "trestle"
    assert r.headers["Date"].endswith(" GMT") and len(r.headers["Date"]) == 29
    srv2 = serve(APP, "--server-header", "")
    assert "Server" not in requests.get(srv2.url + "/", timeout=10).headers


@pytest.mark.parametrize("raw,status", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
])
def test_bad_requests_get_4xx_and_close(serve, raw, status):
    srv = serve(APP)
    before = requests.get(srv.url + "/hits", timeout=10).json()["hits"]
    s = srv.connect()
    s.sendall(raw + get("/smuggled"))
    data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:200]
    assert data.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close" in data
    after = requests.get(srv.url + "/hits", timeout=10).json()["hits"]
    assert after == before + 1  # only the /hits request itself


def test_body_limit_gives_413(serve):
    srv = serve(APP, "--max-body-bytes", "1000")
    r = requests.post(srv.url + "/echo", data=b"x" * 1001, timeout=10)
    assert r.status_code == 413
    r = requests.post(srv.url + "/echo", data=b"x" * 1000, timeout=10)
    assert r.status_code == 200 and len(r.content) == 1000

    # A chunked body only shows its size as it arrives; the app is told
    # through wsgi.input and the client still gets 413.
    def gen():
        for _ in range(10):
            yield b"z" * 500
    r = requests.post(srv.url + "/count-body", data=gen(), timeout=10)
    assert r.status_code == 413


def test_limits_are_configurable(serve):
    srv = serve(APP, "--max-header-bytes", "300", "--max-header-count", "3")
    s = srv.connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 1\r\nC: 1\r\n\r\n")
    assert recv_until_closed(s).startswith(b"HTTP/1.1 431 ")
    s = srv.connect()
    s.sendall(b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert recv_until_closed(s).startswith(b"HTTP/1.1 431 ")


def test_slowloris_gets_408_and_close(serve):
    srv = serve(APP, "--header-timeout", "0.5")
    s = srv.connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    deadline = start + 5
    data = b""
    s.settimeout(5)
    # Keep dribbling header bytes: the header timeout covers the whole head.
    while time.monotonic() < deadline:
        try:
            s.sendall(b"X-Drip: 1\r\n")
        except OSError:
            break
        try:
            s.settimeout(0.2)
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    data += recv_until_closed(s, timeout=5)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert time.monotonic() - start < 4


def test_idle_keep_alive_connection_is_closed(serve):
    srv = serve(APP, "--keepalive-timeout", "0.5")
    s = srv.connect()
    s.sendall(get("/a"))
    status, _, _, rest = read_response(s)
    assert status == 200
    start = time.monotonic()
    s.settimeout(5)
    assert s.recv(1) == b""  # closed by the server, silently
    assert time.monotonic() - start < 4


def test_a_client_that_sends_a_request_and_its_end_together_is_closed_promptly(serve):
    # The end of stream arrives with the request, so epoll reported it with
    # the request's bytes: the read that waits for the next request must still
    # learn of it (a peek on the session tick), not wait out the keep-alive
    # timeout.
    srv = serve(APP, "--keepalive-timeout", "60")
    for _ in range(3):
        s = srv.connect()
        s.sendall(get("/a"))
        status, _, _, rest = read_response(s)
        assert status == 200 and rest == b""
        # The server now waits for the next request. Stopped, it gets the
        # request and the end of stream in one epoll event when it resumes.
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            s.sendall(get("/a"))
            s.shutdown(socket.SHUT_WR)
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        start = time.monotonic()
        data = recv_until_closed(s, timeout=20)
        assert data.startswith(b"HTTP/1.1 200 "), data
        assert time.monotonic() - start < 5
        s.close()


def test_unix_socket_and_several_binds(serve):
    path = os.path.join(tempfile.mkdtemp(), "t.sock")
    srv = serve(APP, "--bind", "unix:" + path, "--bind", "127.0.0.1:0")
    srv.wait_log("listening on unix:" + path)
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.settimeout(10)
    u.connect(path)
    u.sendall(get("/via-unix"))
    status, _, body, _ = read_response(u)
    assert status == 200 and json.loads(body)["path"] == "/via-unix"
    assert requests.get(srv.url + "/tcp", timeout=10).json()["path"] == "/tcp"
    assert srv.log().count("listening on http://127.0.0.1:") == 2
