"""A realistic Flask app (tests/apps/flask_app.py) served by trestle, end to end."""
import hashlib
import json
import os
import time

import requests

import conftest
from conftest import read_response

APP = "flask_app:app"
TIMEOUT = 15


def read_head(sock, buf=b"", timeout=10.0):
    """A response head with its fields keyed by lower-cased name. Returns (status, headers, rest)."""
    status, fields, rest = conftest.read_head(sock, buf, timeout)
    headers = {}
    for k, v in fields:
        headers.setdefault(k.lower(), []).append(v)
    return status, headers, rest


# --- JSON, forms, uploads --------------------------------------------------------------------

def test_index_and_json_get(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.text == "Hello from Flask on trestle"
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Content-Length"] == str(len(r.content))

    r = requests.get(srv.url + "/json", params=[("q", "a b"), ("q", "c&d"), ("x", "\u00e9")], timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    data = r.json()
    assert data["method"] == "GET"
    assert data["args"] == {"q": ["a b", "c&d"], "x": ["\u00e9"]}
    assert data["numbers"] == [1, 2, 3]
    assert data["nested"] == {"ok": True, "text": "caf\u00e9"}


def test_json_post_echo(serve):
    srv = serve(APP)
    payload = {"name": "trestle", "list": list(range(50)), "unicode": "\u2603 snow", "nested": {"a": [None, 1.5]}}
    r = requests.post(srv.url + "/json", json=payload, timeout=TIMEOUT)
    assert r.status_code == 200
    data = r.json()
    assert data["method"] == "POST"
    assert data["received"] == payload
    assert data["content_type"] == "application/json"


def test_json_post_large(serve):
    srv = serve(APP)
    payload = {"items": [{"i": i, "s": "v%05d" % i} for i in range(20000)]}
    r = requests.post(srv.url + "/json", json=payload, timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json()["received"] == payload


def test_form_post(serve):
    srv = serve(APP)
    r = requests.post(srv.url + "/form",
                      data=[("name", "Ada Lovelace"), ("tags", "a"), ("tags", "b&c"), ("city", "Z\u00fcrich")],
                      timeout=TIMEOUT)
    assert r.status_code == 200
    data = r.json()
    assert data["content_type"] == "application/x-www-form-urlencoded"
    assert data["form"] == {"name": ["Ada Lovelace"], "tags": ["a", "b&c"], "city": ["Z\u00fcrich"]}


def test_multipart_upload(serve):
    srv = serve(APP)
    small = b"hello multipart\r\n--not-a-boundary\r\n"
    binary = os.urandom(300 * 1024)
    other = bytes(range(256)) * 40
    files = [
        ("doc", ("hello.txt", small, "text/plain")),
        ("blob", ("random.bin", binary, "application/octet-stream")),
        ("blob", ("bytes.bin", other, "application/x-custom")),
    ]
    r = requests.post(srv.url + "/upload", files=files, data={"title": "my files"}, timeout=TIMEOUT)
    assert r.status_code == 200
    data = r.json()
    assert data["form"] == {"title": ["my files"]}
    assert data["files"]["doc"] == [{"filename": "hello.txt", "content_type": "text/plain", "size": len(small),
                                     "sha256": hashlib.sha256(small).hexdigest()}]
    assert data["files"]["blob"] == [
        {"filename": "random.bin", "content_type": "application/octet-stream", "size": len(binary),
         "sha256": hashlib.sha256(binary).hexdigest()},
        {"filename": "bytes.bin", "content_type": "application/x-custom", "size": len(other),
         "sha256": hashlib.sha256(other).hexdigest()},
    ]


# --- cookies and sessions --------------------------------------------------------------------

def test_cookies_set_and_read(serve):
    srv = serve(APP)
    with requests.Session() as s:
        r = s.get(srv.url + "/cookies/set", params={"flavor": "oatmeal", "size": "large"}, timeout=TIMEOUT)
        assert r.status_code == 200
        assert r.cookies.get("flavor") == "oatmeal"
        assert r.cookies.get("size") == "large"
        r = s.get(srv.url + "/cookies", timeout=TIMEOUT)
        assert r.status_code == 200
        assert r.json()["cookies"] == {"flavor": "oatmeal", "size": "large"}


def test_multiple_set_cookie_headers_are_kept_separate(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /cookies/set?a=1&b=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(10)
    buf = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
        data = s.recv(65536)
        if not data:
            break
        buf += data
    head = buf.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    assert head[0].startswith("HTTP/1.1 200")
    set_cookies = [line.split(":", 1)[1].strip() for line in head[1:] if line.lower().startswith("set-cookie:")]
    assert len(set_cookies) == 2, head
    assert set_cookies[0].startswith("a=1;") and set_cookies[1].startswith("b=2;")
    s.close()


def test_session_login_across_requests(serve):
    srv = serve(APP)
    with requests.Session() as s:
        r = s.get(srv.url + "/me", timeout=TIMEOUT)
        assert r.status_code == 401
        r = s.post(srv.url + "/login", data={"user": "alice"}, timeout=TIMEOUT)
        assert r.status_code == 200
        assert r.json() == {"logged_in": "alice"}
        assert "session" in s.cookies
        for _ in range(3):
            r = s.get(srv.url + "/me", timeout=TIMEOUT)
            assert r.status_code == 200
            assert r.json() == {"user": "alice"}
        r = s.post(srv.url + "/logout", timeout=TIMEOUT)
        assert r.status_code == 200
        r = s.get(srv.url + "/me", timeout=TIMEOUT)
        assert r.status_code == 401
    # Another client without the cookie is not logged in.
    assert requests.get(srv.url + "/me", timeout=TIMEOUT).status_code == 401


# --- redirects -------------------------------------------------------------------------------

def test_redirect_not_followed(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/redirect-plain", allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302
    assert r.headers["Location"] in ("/json?from=plain", srv.url + "/json?from=plain")
    r = requests.get(srv.url + "/redirect-url-for", allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302
    assert r.headers["Location"] in ("/json?source=url_for", srv.url + "/json?source=url_for")


def test_redirect_followed(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/redirect-url-for", timeout=TIMEOUT)
    assert r.status_code == 200
    assert [h.status_code for h in r.history] == [302]
    assert r.url == srv.url + "/json?source=url_for"
    assert r.json()["args"] == {"source": ["url_for"]}

    r = requests.get(srv.url + "/redirect-chain/3", timeout=TIMEOUT)
    assert r.status_code == 200
    assert [h.status_code for h in r.history] == [302, 302, 302, 301]
    assert r.url == srv.url + "/"
    assert r.text == "Hello from Flask on trestle"


# --- streaming responses ---------------------------------------------------------------------

def test_streaming_response_is_chunked(serve):
    srv = serve(APP)
    with requests.get(srv.url + "/stream", params={"n": 6}, stream=True, timeout=TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in r.headers
        assert r.headers["Content-Type"].startswith("text/plain")
        body = b"".join(r.iter_content(chunk_size=7))
    expected = "".join("chunk %d of 6 for /stream\n" % i for i in range(6)).encode()
    assert body == expected


def test_streaming_plain_generator_raw_chunks(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /stream-plain HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in headers
    assert body == b"".join(b"%d:" % i + b"x" * 1000 + b"\n" for i in range(4))
    assert rest == b""
    # The connection is still usable after a chunked response.
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, _ = read_response(s)
    assert status == 200 and body == b"Hello from Flask on trestle"
    s.close()


# --- large uploads read in chunks ------------------------------------------------------------

UPLOAD_SIZE = 50 * 1024 * 1024


class Payload:
    """50 MB of pseudo-random data in uneven pieces; computes its sha256 as it is sent."""

    def __init__(self, size=UPLOAD_SIZE):
        self.size = size
        self.block = os.urandom(1 << 20)
        self.digest = hashlib.sha256()
        self.sent = 0

    def __iter__(self):
        i = 0
        sizes = [(1 << 20) - 7, 65536 + 3, 1, 333333, 1 << 20]
        while self.sent < self.size:
            n = min(sizes[i % len(sizes)], self.size - self.sent)
            piece = i.to_bytes(4, "big") + self.block[4:n] if n > 4 else self.block[:n]
            self.digest.update(piece)
            self.sent += n
            i += 1
            yield piece


class LenPayload(Payload):
    """With a length, requests sends Content-Length and streams the iterable as is."""

    def __len__(self):
        return self.size


def test_large_upload_chunked_from_generator(serve):
    srv = serve(APP)
    payload = Payload()
    gen = iter(payload)  # a bare generator: requests has no length, so it sends Transfer-Encoding: chunked
    r = requests.post(srv.url + "/big-upload", data=gen, timeout=60)
    assert r.status_code == 200, r.text[:2000]
    data = r.json()
    assert payload.sent == UPLOAD_SIZE
    # The body was gathered before the app ran (issue 10 item 6), so it has a
    # known length: CONTENT_LENGTH, no Transfer-Encoding, as behind nginx.
    assert data["transfer_encoding"] is None
    assert data["content_length"] == str(UPLOAD_SIZE)
    assert data["input_terminated"] is True
    assert data["bytes"] == UPLOAD_SIZE
    assert data["sha256"] == payload.digest.hexdigest()
    assert data["reads"] > 1 and data["largest_read"] <= 256 * 1024


def test_large_upload_with_content_length(serve):
    srv = serve(APP)
    payload = LenPayload()
    r = requests.put(srv.url + "/big-upload", data=payload, timeout=60)
    assert r.status_code == 200, r.text[:2000]
    data = r.json()
    assert payload.sent == UPLOAD_SIZE
    assert data["content_length"] == str(UPLOAD_SIZE)
    assert data["transfer_encoding"] is None
    assert data["bytes"] == UPLOAD_SIZE
    assert data["sha256"] == payload.digest.hexdigest()
    assert data["reads"] > 1 and data["largest_read"] <= 256 * 1024


# --- errors ----------------------------------------------------------------------------------

def test_exception_view_is_500_and_logged(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/error", timeout=TIMEOUT)
    assert r.status_code == 500
    assert b"Internal Server Error" in r.content
    log = srv.wait_log(r"TrestleTestError: flask view exploded on purpose 8c1f")
    assert "Traceback (most recent call last)" in log
    assert "Exception on /error [GET]" in log  # Flask's own log_exception message
    # The server keeps serving after an app error.
    assert requests.get(srv.url + "/", timeout=TIMEOUT).status_code == 200


def test_abort_404_and_unknown_route(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/missing", timeout=TIMEOUT)
    assert r.status_code == 404
    assert b"Not Found" in r.content
    r = requests.get(srv.url + "/no/such/route", timeout=TIMEOUT)
    assert r.status_code == 404
    r = requests.delete(srv.url + "/json", timeout=TIMEOUT)
    assert r.status_code == 405
    assert set(x.strip() for x in r.headers["Allow"].split(",")) >= {"GET", "POST"}
    assert "Traceback" not in srv.log()


# --- environ ---------------------------------------------------------------------------------

def test_wsgi_environ_keys(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/environ", params={"k": "v"}, timeout=TIMEOUT)
    assert r.status_code == 200
    data = r.json()
    wsgi = data["wsgi"]
    assert wsgi["wsgi.version"] == [1, 0]
    assert wsgi["wsgi.url_scheme"] == "http"
    assert wsgi["wsgi.multithread"] is True
    assert wsgi["wsgi.multiprocess"] is False
    assert wsgi["wsgi.run_once"] is False
    assert "wsgi.input" in wsgi and "wsgi.errors" in wsgi
    assert data["has_errors_write"] is True
    assert data["has_file_wrapper"] is True
    cgi = data["cgi"]
    assert cgi["REQUEST_METHOD"] == "GET"
    assert cgi["SCRIPT_NAME"] == ""
    assert cgi["PATH_INFO"] == "/environ"
    assert cgi["QUERY_STRING"] == "k=v"
    assert cgi["SERVER_PORT"] == str(srv.port)
    assert cgi["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert cgi["REMOTE_ADDR"] == "127.0.0.1"


# --- HEAD and keep-alive ---------------------------------------------------------------------

def test_head_via_requests(serve):
    srv = serve(APP)
    r = requests.head(srv.url + "/head-check", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["X-Head-Check"] == "yes"
    assert r.headers["Content-Length"] == "1234"
    assert r.content == b""


def test_head_sends_no_body_on_keepalive_socket(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"HEAD /head-check HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, rest = read_head(s)
    assert status == 200
    assert headers["content-length"] == ["1234"]
    assert headers["x-head-check"] == ["yes"]
    # HEAD of a streamed (unknown length) response. Werkzeug answers a HEAD with an
    # empty app iterable and no Content-Length; RFC 9110 8.6 allows a Content-Length
    # on a HEAD response only if it equals the length a GET would have sent.
    get_len = len("".join("chunk %d of 5 for /stream\n" % i for i in range(5)))
    s.sendall(b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, rest = read_head(s, rest)
    assert status == 200
    assert headers.get("content-length", [str(get_len)]) == [str(get_len)], \
        "HEAD /stream: Content-Length %s, but GET sends %d bytes" % (headers.get("content-length"), get_len)
    # Then a GET on the same socket: if the server had sent any body bytes for the HEADs,
    # they would show up here in front of the status line.
    s.sendall(b"GET /head-check HTTP/1.1\r\nHost: x\r\n\r\n")
    assert rest == b"" or rest.startswith(b"HTTP/1.1 "), rest[:200]
    status, headers, body, rest = read_response(s, rest)
    assert status == 200
    assert body == b"z" * 1234
    assert rest == b""
    s.close()


def test_keepalive_raw_socket_serves_several_requests(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /json?n=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    status1, headers1, body1, rest = read_response(s)
    assert status1 == 200
    assert headers1.get("connection", "").lower() != "close"
    assert json.loads(body1)["args"] == {"n": ["1"]}
    s.sendall(b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n"
              b'{"a": 42}')
    status2, _, body2, rest = read_response(s, rest)
    assert status2 == 200
    assert json.loads(body2)["received"] == {"a": 42}
    s.sendall(b"GET /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    status3, _, body3, rest = read_response(s, rest)
    assert status3 == 200
    assert body3 == b"chunk 0 of 2 for /stream\nchunk 1 of 2 for /stream\n"
    # An app error (500) does not break the connection either.
    s.sendall(b"GET /error HTTP/1.1\r\nHost: x\r\n\r\n")
    status4, _, _, rest = read_response(s, rest)
    assert status4 == 500
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status5, _, body5, rest = read_response(s, rest)
    assert status5 == 200 and body5 == b"Hello from Flask on trestle"
    s.close()


def test_keepalive_pipelined_requests(serve):
    srv = serve(APP)
    s = srv.connect()
    s.sendall(b"GET /json?p=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /json?p=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    status1, _, body1, rest = read_response(s)
    status2, _, body2, rest = read_response(s, rest)
    assert (status1, status2) == (200, 200)
    assert json.loads(body1)["args"] == {"p": ["1"]}
    assert json.loads(body2)["args"] == {"p": ["2"]}
    s.close()


def test_requests_session_reuses_connection(serve):
    srv = serve(APP)
    with requests.Session() as sess:
        ports = set()
        for i in range(5):
            r = sess.get(srv.url + "/environ", params={"i": i}, timeout=TIMEOUT)
            assert r.status_code == 200
            assert r.json()["cgi"]["QUERY_STRING"] == "i=%d" % i
            ports.add(r.json()["cgi"]["REMOTE_PORT"])
        assert len(ports) == 1, ports


def test_upload_with_expect_100_continue(serve):
    # What curl does for uploads over 1 MB: send the head, wait for "100 Continue",
    # then the body (RFC 9110 10.1.1: the server must answer the expectation at once).
    srv = serve(APP)
    body = os.urandom(2 << 20)
    s = srv.connect()
    s.sendall(b"PUT /big-upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
    s.settimeout(5)
    buf = b""
    deadline = time.monotonic() + 5
    while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
        data = s.recv(65536)
        if not data:
            break
        buf += data
    assert buf.startswith(b"HTTP/1.1 100"), "no 100 Continue before the body was sent: %r" % buf[:200]
    head, _, rest = buf.partition(b"\r\n\r\n")
    s.sendall(body)
    status, _, rbody, _ = read_response(s, rest, timeout=15)
    assert status == 200
    data = json.loads(rbody)
    assert data["bytes"] == len(body)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    s.close()
