"""PEP 3333 behaviour of the WSGI adapter, end to end."""
import hashlib
import json
import os
import socket
import tempfile
import time

import pytest
import requests

from conftest import poll, read_response, recv_until_closed, rss_kb

APP = "wsgi_cases:app"


def test_environ_keys(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"POST /environ?a=%20b&c HTTP/1.1\r\nHost: example.org:81\r\nContent-Type: text/plain\r\n"
              b"Content-Length: 0\r\nX-Thing: 1\r\nx-thing: 2\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n")
    status, _, body, _ = read_response(s)
    env = json.loads(body)
    assert status == 200
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == "a=%20b&c"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "0"
    assert env["HTTP_HOST"] == "example.org:81"
    assert env["HTTP_X_THING"] == "1, 2"
    assert "HTTP_X_FORWARDED_FOR" not in env
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert int(env["REMOTE_PORT"]) == s.getsockname()[1]
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False and env["wsgi.input_terminated"] is True
    assert env["wsgi.input"] == "InputStream"


def test_content_headers_absent_when_not_sent(serve):
    srv = serve(APP)
    env = requests.get(srv.url + "/environ", timeout=10).json()
    assert "CONTENT_TYPE" not in env and "CONTENT_LENGTH" not in env


def test_path_info_is_percent_decoded_latin1(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /caf%C3%A9/a%2Fb/%7e HTTP/1.1\r\nHost: x\r\n\r\n")
    _, _, body, _ = read_response(s)
    # Latin-1 of the decoded bytes: what PEP 3333 asks for; Flask re-decodes as UTF-8.
    assert json.loads(body)["path"] == "/caf\u00c3\u00a9/a/b/~"


def test_input_readline_and_iteration(serve):
    srv = serve(APP)
    r = requests.post(srv.url + "/echo-lines", data=b"one\ntwo\n\nthree", timeout=10)
    assert r.json() == ["one\n", "two\n", "\n", "three"]


def test_large_body_is_streamed_not_buffered(serve):
    srv = serve(APP)
    size = 50 * 1024 * 1024
    block = os.urandom(1 << 20)

    def gen():
        for _ in range(size // len(block)):
            yield block
    r = requests.post(srv.url + "/count-body", data=gen(), timeout=60)
    assert r.json() == {"bytes": size}


def test_response_framing(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/multi", timeout=10)
    assert r.headers["Content-Length"] == "3" and r.content == b"abc"
    r = requests.get(srv.url + "/gen", timeout=10)
    assert r.headers["Transfer-Encoding"] == "chunked" and r.content == b"chunk0\nchunk1\nchunk2\n"
    r = requests.get(srv.url + "/write", timeout=10)
    assert r.content == b"written and returned"


def test_app_exception_before_start_is_500_with_traceback(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/raise", timeout=10)
    assert r.status_code == 500
    log = srv.wait_log(r"ValueError: raised before start_response")
    assert "Traceback (most recent call last)" in log
    # The server is still serving.
    assert requests.get(srv.url + "/ok", timeout=10).status_code == 200


def test_app_exception_after_start_closes_connection(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /raise-late HTTP/1.1\r\nHost: x\r\n\r\n")
    data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"first\n" in data and not data.endswith(b"0\r\n\r\n")
    srv.wait_log(r"RuntimeError: boom in iteration")
    closed = requests.get(srv.url + "/closed", timeout=10).json()["closed"]
    assert "raise-late" in closed


def test_hop_by_hop_header_from_app_is_500(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/hop", timeout=10)
    assert r.status_code == 500
    srv.wait_log(r"hop-by-hop header 'Connection'")


def test_interim_or_undefined_status_from_app_is_500_and_the_connection_stays_in_step(serve):
    # Found by tests/fuzz/fuzz_wsgi_response: "164 OK" went out as the final
    # response, and a client would have waited for another one.
    srv = serve(APP)
    for status in ("101 Switching Protocols", "164 OK", "199 X", "600 Beyond", "999 X"):
        s = srv.connect()
        s.sendall(b"GET /status?" + status.replace(" ", "%20").encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /hits HTTP/1.1\r\nHost: x\r\n\r\n")
        code, _, body, rest = read_response(s)
        assert code == 500, status
        code2, _, body2, _ = read_response(s, rest)
        assert code2 == 200 and b"hits" in body2
        s.close()
    srv.wait_log(r"a response's status is 200 to 599")
    assert requests.get(srv.url + "/status?204%20No%20Content", timeout=10).status_code == 204


def test_app_that_never_calls_start_response_is_500(serve):
    srv = serve(APP)
    assert requests.get(srv.url + "/no-start", timeout=10).status_code == 500
    srv.wait_log("without calling start_response")


def test_short_body_closes_connection(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
    data = recv_until_closed(s)
    assert data.endswith(b"\r\n\r\n12345")


def test_start_response_exc_info_replaces_unsent_headers(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/exc-info", timeout=10)
    assert r.status_code == 503 and r.content == b"replaced"


def test_close_is_called_when_client_disconnects(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /slow-stream HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(100)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST mid-response
    closed = poll(lambda: "slow-stream" in requests.get(srv.url + "/closed", timeout=10).json()["closed"])
    assert closed


def test_slow_reader_pauses_the_app(serve):
    srv = serve(APP, "--output-hwm", "65536")
    s = srv.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /big-stream HTTP/1.1\r\nHost: x\r\n\r\n")
    # Without reading, the app can only get as far as the socket buffers and
    # the high-water mark allow: a few MiB at most, never the whole 64 MiB.
    def produced():
        return requests.get(srv.url + "/produced", timeout=10).json()["produced"]
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        p = produced()
        if p != last:
            last, stable_since = p, time.monotonic()
        elif time.monotonic() - stable_since > 0.5:
            break
        time.sleep(0.05)
    assert 0 < last < 16 * 1024 * 1024
    # Reading resumes the app and every byte arrives.
    total = 0
    s.settimeout(30)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    total = len(buf.partition(b"\r\n\r\n")[2])
    while total < 64 * 1024 * 1024:
        chunk = s.recv(1 << 20)
        assert chunk
        total += len(chunk)
    assert total == 64 * 1024 * 1024


def test_file_wrapper_is_sent_without_python_reads(serve):
    srv = serve(APP)
    data = os.urandom(3 * 1024 * 1024 + 17)
    with tempfile.NamedTemporaryFile(delete=False) as fh:
        fh.write(data)
    try:
        r = requests.get(srv.url + "/file?" + fh.name, timeout=30)
        assert r.status_code == 200 and r.headers["Content-Length"] == str(len(data))
        assert hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()
        r = requests.get(srv.url + "/file-noread?" + fh.name, timeout=30)
        assert r.content == data
        closed = requests.get(srv.url + "/closed", timeout=10).json()["closed"]
        assert "file-noread" in closed  # close() was called
        assert "file-read-through-python" not in closed  # sendfile, not read()
    finally:
        os.unlink(fh.name)


@pytest.mark.skipif(bool(os.environ.get("TRESTLE_SANITIZED")),
                    reason="ASan's quarantine holds freed memory, so RSS says nothing there")
def test_repeated_exceptions_leave_server_up_without_growing(serve):
    srv = serve(APP)

    sess = requests.Session()
    for _ in range(1000):
        assert sess.get(srv.url + "/raise", timeout=10).status_code == 500
    first = rss_kb(srv.proc.pid)
    for _ in range(1000):
        assert sess.get(srv.url + "/raise", timeout=10).status_code == 500
    second = rss_kb(srv.proc.pid)
    assert second - first < 5 * 1024, (first, second)
    assert sess.get(srv.url + "/ok", timeout=10).status_code == 200
