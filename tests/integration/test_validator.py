"""trestle against wsgiref.validate.validator (tests/apps/validated.py).

Every app here is wrapped in the stdlib WSGI validator, which raises AssertionError
(and, as configured in validated.py, WSGIWarning) inside the server whenever the
server breaks PEP 3333. trestle would turn that into a 500 and a traceback in its
log, so each test checks the response AND that the log stays clean. App iterables
record their close(); tests wait for it before checking the log, since a server
may close the iterable just after the response is sent.
"""
import hashlib
import json
import os
import time
import urllib.parse

import conftest
import pytest
import requests

from conftest import read_response

APP = "validated:app"
TIMEOUT = 15
BAD_LOG_MARKERS = ("AssertionError", "Traceback", "WSGIWarning", "Exception ignored",
                   "garbage collected without being closed")


def assert_clean(srv):
    log = srv.log()
    for marker in BAD_LOG_MARKERS:
        assert marker not in log, "server log contains %r:\n%s" % (marker, log)


def get_state(srv):
    r = requests.get(srv.url + "/_state", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def wait_state(srv, kind, value, count=1, timeout=10.0):
    """Polls /_state until `value` appears `count` times in state[kind]."""
    deadline = time.monotonic() + timeout
    while True:
        st = get_state(srv)
        if st[kind].count(value) >= count:
            return st
        if time.monotonic() > deadline:
            raise AssertionError("%r never reached %d in %s: %r\nlog:\n%s" % (value, count, kind, st, srv.log()))
        time.sleep(0.02)


def read_head(sock, buf=b"", timeout=10.0):
    """A response head with its fields keyed by lower-cased name. Returns (status, headers, rest)."""
    status, fields, rest = conftest.read_head(sock, buf, timeout)
    headers = {}
    for k, v in fields:
        headers.setdefault(k.lower(), v)
    return status, headers, rest


def head_then_get(srv, path, get_path="/hello"):
    """HEAD `path` then GET `get_path` on one connection; returns the HEAD's (status, headers).

    If the server wrongly sent a body after the HEAD's head, those bytes would sit in
    front of the GET's status line, which is asserted against."""
    s = srv.connect()
    s.sendall(("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    status, headers, rest = read_head(s)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % get_path).encode())
    assert rest == b"" or rest.startswith(b"HTTP/1.1 "), "bytes after HEAD response: %r" % rest[:200]
    gstatus, _, gbody, rest = read_response(s, rest)
    assert gstatus == 200
    assert rest == b""
    s.close()
    return status, headers, gbody


# --- hello ---------------------------------------------------------------------------------------

def test_hello_app_get(serve):
    srv = serve("validated:hello_app")
    r = requests.get(srv.url + "/", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == b"Hello, validator!\n"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["Content-Length"] == "18"
    assert r.headers["X-Method"] == "GET"
    r = requests.get(srv.url + "/some/where?x=1", timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b"Hello, validator!\n"
    assert_clean(srv)


def test_hello_routed_get_and_head(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/hello", timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b"Hello, validator!\n"
    status, headers, _ = head_then_get(srv, "/hello")
    assert status == 200
    assert headers["content-length"] == "18"
    assert headers["x-method"] == "HEAD"
    r = requests.head(srv.url + "/hello", timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b""
    # GET, HEAD, GET (from head_then_get), HEAD: four closes.
    wait_state(srv, "closed", "hello", count=4)
    assert_clean(srv)


def test_environ_under_validator(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/environ", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["environ_type"] == "dict"
    assert env["wsgi.version"] == "(1, 0)"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ"
    assert env["QUERY_STRING"] == ""
    r = requests.post(srv.url + "/environ?a=1", data=b"xyz", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json()["QUERY_STRING"] == "a=1"
    assert r.json()["CONTENT_LENGTH"] == "3"
    wait_state(srv, "closed", "environ", count=2)
    assert_clean(srv)


def test_wsgi_errors_stream(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/errors", timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b"logged\n"
    log = srv.wait_log(r"validated-errors-writelines-2 marker-5b2e")
    assert "validated-errors-write marker-5b2e" in log
    assert "validated-errors-writelines-1 marker-5b2e" in log
    wait_state(srv, "closed", "errors")
    assert_clean(srv)


# --- request bodies ------------------------------------------------------------------------------

TEXT_BODY = (b"first line\n"
             b"\n"
             + b"a long line " * 40 + b"\n"
             + b"crlf line\r\n"
             + bytes(range(1, 10)) + b"\n"
             + b"no newline at the end")


def pieces_of(body, n):
    """Splits `body` into uneven pieces so chunk boundaries fall inside lines."""
    out, i, k = [], 0, 0
    sizes = [n, 1, n * 3 + 1, 2]
    while i < len(body):
        step = sizes[k % len(sizes)]
        out.append(body[i:i + step])
        i += step
        k += 1
    return out


def expected_pieces(mode, body, n):
    if mode in ("readline", "readlines", "iter"):
        return body.splitlines(keepends=True)
    return None


@pytest.mark.parametrize("encoding", ["content-length", "chunked", "chunked-streamed"])
@pytest.mark.parametrize("mode", ["read", "readline", "readline-size", "readlines", "iter", "mixed"])
def test_body_reading(serve, mode, encoding):
    # "chunked": gathered before the app runs (the default since issue 10 item 6), so the
    # app gets CONTENT_LENGTH; "chunked-streamed" (--no-buffer-body) reads it as it arrives.
    srv = serve(APP, *(["--no-buffer-body"] if encoding == "chunked-streamed" else []))
    n = 100
    if encoding == "content-length":
        data = TEXT_BODY
    else:
        data = iter(pieces_of(TEXT_BODY, 7))  # a generator: requests sends Transfer-Encoding: chunked
    r = requests.post(srv.url + "/body/" + mode, params={"n": n}, data=data, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["bytes"] == len(TEXT_BODY)
    assert res["sha256"] == hashlib.sha256(TEXT_BODY).hexdigest()
    if encoding in ("content-length", "chunked"):
        assert res["content_length"] == str(len(TEXT_BODY))
    else:
        assert res["content_length"] is None
    assert res["input_terminated"] is True
    pieces = [p.encode("latin-1") for p in res["pieces"]]
    exp = expected_pieces(mode, TEXT_BODY, n)
    if exp is not None:
        assert pieces == exp
    if mode == "readline-size":
        for p in pieces[:-1]:
            assert len(p) <= n
            assert p.endswith(b"\n") or len(p) == n, p
    if mode == "read":
        assert all(len(p) <= n for p in pieces)
    if mode == "mixed":
        assert pieces[0] == TEXT_BODY[:n]
        rest = TEXT_BODY[n:]
        assert pieces[1] == rest[:rest.index(b"\n") + 1]
        assert pieces[2:] == rest[len(pieces[1]):].splitlines(keepends=True)
    wait_state(srv, "closed", "body-" + mode)
    assert_clean(srv)


@pytest.mark.parametrize("encoding", ["content-length", "chunked"])
def test_large_body_read_n(serve, encoding):
    srv = serve(APP)
    block = os.urandom(1 << 20)
    chunks = [i.to_bytes(2, "big") + block[2:] for i in range(4)] + [b"tail" * 1000]
    whole = b"".join(chunks)
    data = b"".join(chunks) if encoding == "content-length" else iter(chunks)
    r = requests.post(srv.url + "/body/read", params={"n": 65536}, data=data, timeout=30)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["bytes"] == len(whole)
    assert res["sha256"] == hashlib.sha256(whole).hexdigest()
    assert res["pieces"] >= len(whole) // 65536
    wait_state(srv, "closed", "body-read")
    assert_clean(srv)


def test_body_raw_chunked_with_extensions_and_odd_boundaries(serve):
    srv = serve(APP)
    body = b"alpha\nbeta\ngamma delta\nomega"
    parts = [body[:3], body[3:8], body[8:9], body[9:20], body[20:]]
    wire = b"".join(b"%x;ext=%d\r\n%s\r\n" % (len(p), i, p) for i, p in enumerate(parts)) + b"0\r\n\r\n"
    s = srv.connect()
    s.sendall(b"POST /body/readline HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + wire)
    status, _, rbody, rest = read_response(s)
    assert status == 200, rbody
    res = json.loads(rbody)
    assert [p.encode("latin-1") for p in res["pieces"]] == body.splitlines(keepends=True)
    assert res["input_terminated"] is True
    # Same connection, a Content-Length POST next.
    s.sendall(b"POST /body/iter HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nx\ny\nzz")
    status, _, rbody, _ = read_response(s, rest)
    assert status == 200, rbody
    assert json.loads(rbody)["pieces"] == ["x\n", "y\n", "zz"]
    s.close()
    wait_state(srv, "closed", "body-iter")
    assert_clean(srv)


def test_body_empty_and_absent(serve):
    srv = serve(APP)
    # GET without a body: CONTENT_LENGTH absent, the input must read as empty, not block.
    for mode in ("read", "readline", "readlines", "iter"):
        r = requests.get(srv.url + "/body/" + mode, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        assert r.json()["bytes"] == 0
        assert r.json()["method"] == "GET"
    r = requests.post(srv.url + "/body/read", data=b"", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json()["bytes"] == 0
    wait_state(srv, "closed", "body-iter")
    assert_clean(srv)


# --- streaming generator -------------------------------------------------------------------------

def test_streaming_generator(serve):
    srv = serve(APP)
    with requests.get(srv.url + "/stream", params={"n": 12}, stream=True, timeout=TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in r.headers
        body = b"".join(r.iter_content(chunk_size=5))
    assert body == b"".join(b"line %d of 12\n" % i for i in range(12))
    st = wait_state(srv, "closed", "stream")
    assert "stream-generator-finished" in st["events"]
    assert_clean(srv)


@pytest.mark.parametrize("query", ["n=3", "n=3&empty_head=1"])
def test_streaming_generator_head(serve, query):
    srv = serve(APP)
    get_len = len(b"".join(b"line %d of 3\n" % i for i in range(3)))
    status, headers, _ = head_then_get(srv, "/stream?" + query)
    assert status == 200
    assert headers["content-type"] == "text/plain"
    # RFC 9110 8.6: a HEAD response may carry Content-Length only if it equals what a
    # GET would have sent (here 36 bytes, streamed without a length).
    assert headers.get("content-length", str(get_len)) == str(get_len), \
        "HEAD /stream?%s: Content-Length %s, but GET sends %d bytes" % (query, headers.get("content-length"), get_len)
    # The server must close() the iterable even when it discards the body.
    wait_state(srv, "closed", "stream")
    assert_clean(srv)


# --- wsgi.file_wrapper ---------------------------------------------------------------------------

@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "payload.bin"
    content = os.urandom((1 << 20) + 12345)
    path.write_bytes(content)
    return str(path), content


def file_url(srv, **params):
    return srv.url + "/file?" + urllib.parse.urlencode(params)


def test_file_wrapper_real_file(serve, data_file):
    srv = serve(APP)
    path, content = data_file
    r = requests.get(file_url(srv, path=path), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert len(r.content) == len(content)
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(content).digest()
    r = requests.get(file_url(srv, path=path, length=len(content), block=4096), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(content))
    assert r.content == content
    assert_clean(srv)


def test_file_wrapper_starts_at_current_position(serve, data_file):
    srv = serve(APP)
    path, content = data_file
    r = requests.get(file_url(srv, path=path, offset=1000), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == content[1000:]
    r = requests.get(file_url(srv, path=path, offset=1000, length=len(content) - 1000), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == content[1000:]
    assert_clean(srv)


def test_file_wrapper_filelike_is_closed(serve, data_file):
    srv = serve(APP)
    path, content = data_file
    r = requests.get(file_url(srv, path=path, tracked=1), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == content
    wait_state(srv, "closed", "tracked-file")
    assert_clean(srv)


def test_file_wrapper_head(serve, data_file):
    srv = serve(APP)
    path, content = data_file
    q = urllib.parse.urlencode({"path": path, "length": len(content), "tracked": 1})
    status, headers, _ = head_then_get(srv, "/file?" + q)
    assert status == 200
    assert headers["content-length"] == str(len(content))
    wait_state(srv, "closed", "tracked-file")
    assert_clean(srv)


# --- write() -------------------------------------------------------------------------------------

def test_write_callable_then_iterable(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/write/mixed", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == b"written-1 written-2 returned-1 returned-2"
    wait_state(srv, "closed", "write-mixed")
    assert_clean(srv)


def test_write_callable_only(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/write/only", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == b"written-1 written-2 "
    wait_state(srv, "closed", "write-only")
    assert_clean(srv)


def test_write_callable_head(serve):
    srv = serve(APP)
    status, _, _ = head_then_get(srv, "/write/mixed")
    assert status == 200
    wait_state(srv, "closed", "write-mixed")
    assert_clean(srv)


# --- start_response(..., exc_info) ---------------------------------------------------------------

def test_exc_info_replaces_headers_before_body(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/exc-info/replace", timeout=TIMEOUT)
    assert r.status_code == 503
    assert r.content == b"replaced after error\n"
    assert "X-Original" not in r.headers
    wait_state(srv, "closed", "exc-replace")
    # The server keeps serving on new and reused connections.
    s = srv.connect()
    s.sendall(b"GET /exc-info/replace HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert status == 503 and body == b"replaced after error\n"
    assert "x-original" not in headers
    status, _, body, _ = read_response(s, rest)
    assert status == 200 and body == b"Hello, validator!\n"
    s.close()
    assert_clean(srv)


def test_exc_info_on_first_call(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/exc-info/first", timeout=TIMEOUT)
    assert r.status_code == 500
    assert r.content == b"error page\n"
    wait_state(srv, "closed", "exc-first")
    assert_clean(srv)


def test_exc_info_after_body_started_reraises(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/exc-info/after-body", timeout=TIMEOUT)
    # The head was sent by write(); the status cannot change any more.
    assert r.status_code == 200
    assert r.content == b"partial body\n"
    st = wait_state(srv, "closed", "exc-after-body")
    assert st["events"] == ["reraised:failed after the body started"]
    assert_clean(srv)


# --- 204 -----------------------------------------------------------------------------------------

def test_no_content_204(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /no-content HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, rest = read_head(s)
    assert status == 204
    # RFC 9110 8.6 / 6.4.1: no Content-Length and no Transfer-Encoding in a 204.
    assert "transfer-encoding" not in headers
    assert "content-length" not in headers
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert rest == b"" or rest.startswith(b"HTTP/1.1 "), rest[:200]
    status, _, body, _ = read_response(s, rest)
    assert status == 200 and body == b"Hello, validator!\n"
    s.close()
    wait_state(srv, "closed", "no-content")
    assert_clean(srv)
