"""Debian's python3-httpbin (a large real-world Flask app) served by trestle."""
import base64
import concurrent.futures
import gzip
import hashlib
import json
import time

import pytest
import requests

from conftest import read_response

pytest.importorskip("httpbin")

APP = "httpbin:app"
FLAGS = ("--threads", "4")
TIMEOUT = 15


@pytest.fixture
def httpbin(serve):
    return serve(APP, *FLAGS)


def test_get_echoes_args_and_headers(httpbin):
    srv = httpbin
    r = requests.get(srv.url + "/get", params=[("a", "1"), ("b", "two words"), ("b", "x&y")],
                     headers={"X-Trestle-Test": "hello", "User-Agent": "trestle-tests/1.0"}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    data = r.json()
    assert data["args"] == {"a": "1", "b": ["two words", "x&y"]}
    assert data["headers"]["X-Trestle-Test"] == "hello"
    assert data["headers"]["User-Agent"] == "trestle-tests/1.0"
    assert data["headers"]["Host"] == "%s:%d" % (srv.host, srv.port)
    assert data["origin"] == "127.0.0.1"
    assert data["url"] == srv.url + "/get?a=1&b=two+words&b=x%26y"


def test_post_json(httpbin):
    payload = {"name": "trestle", "n": [1, 2, 3], "u": "\u00fc\u2603", "nested": {"t": True, "z": None}}
    r = requests.post(httpbin.url + "/post", json=payload, timeout=TIMEOUT)
    assert r.status_code == 200
    data = r.json()
    assert data["json"] == payload
    assert json.loads(data["data"]) == payload
    assert data["headers"]["Content-Type"] == "application/json"
    assert data["headers"]["Content-Length"] == str(len(json.dumps(payload)))


def test_post_form(httpbin):
    r = requests.post(httpbin.url + "/post", data={"custname": "Ada", "size": "large", "topping": ["a", "b"]},
                      timeout=TIMEOUT)
    assert r.status_code == 200
    data = r.json()
    assert data["form"] == {"custname": "Ada", "size": "large", "topping": ["a", "b"]}
    assert data["json"] is None
    assert data["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_post_multipart(httpbin):
    text = "line one\nline two \u00e9\n" * 200
    files = {"upload": ("notes.txt", text.encode("utf-8"), "text/plain")}
    r = requests.post(httpbin.url + "/post", files=files, data={"field": "value"}, timeout=TIMEOUT)
    assert r.status_code == 200
    data = r.json()
    assert data["files"] == {"upload": text}
    assert data["form"] == {"field": "value"}
    assert data["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")


def test_put_large_body_anything(httpbin):
    body = ("0123456789abcdef" * 65536)  # 1 MiB of text
    r = requests.put(httpbin.url + "/anything/upload", data=body.encode(), headers={"Content-Type": "text/plain"},
                     timeout=TIMEOUT)
    assert r.status_code == 200
    data = r.json()
    assert data["method"] == "PUT"
    assert data["data"] == body
    assert data["headers"]["Content-Length"] == str(len(body))


def test_chunked_request_reaches_httpbin(httpbin):
    # httpbin itself refuses chunked request bodies unless SERVER_SOFTWARE starts with
    # "gunicorn/" (its before_request hook aborts with 501 when it sees
    # HTTP_TRANSFER_ENCODING). Trestle gathers a WSGI request's body before the app runs
    # and hands it over with a Content-Length, as nginx did in front of gunicorn
    # (issue 10 item 6), so httpbin now takes it and echoes it whole.
    pieces = [b"chunk-%d;" % i for i in range(50)]
    r = requests.post(httpbin.url + "/post", data=iter(pieces), headers={"Content-Type": "text/plain"},
                      timeout=TIMEOUT)
    assert r.status_code == 200, r.content[:300]
    data = r.json()
    assert data["data"] == b"".join(pieces).decode()
    assert data["headers"]["Content-Length"] == str(len(b"".join(pieces)))
    assert "Transfer-Encoding" not in data["headers"]
    # The connection-level framing survived: the same server answers the next request.
    assert requests.get(httpbin.url + "/get", timeout=TIMEOUT).status_code == 200


def test_status_418(httpbin):
    r = requests.get(httpbin.url + "/status/418", timeout=TIMEOUT)
    assert r.status_code == 418
    assert r.headers["x-more-info"] == "http://tools.ietf.org/html/rfc2324"
    assert b"teapot" in r.content
    for code in (201, 204, 400, 503):
        r = requests.get(httpbin.url + "/status/%d" % code, timeout=TIMEOUT)
        assert r.status_code == code
    r = requests.post(httpbin.url + "/status/204", data=b"ignored", timeout=TIMEOUT)
    assert r.status_code == 204 and r.content == b""


def test_redirects(httpbin):
    srv = httpbin
    r = requests.get(srv.url + "/redirect/3", timeout=TIMEOUT)
    assert r.status_code == 200
    assert [h.status_code for h in r.history] == [302, 302, 302]
    assert r.url == srv.url + "/get"
    assert r.json()["url"] == srv.url + "/get"

    r = requests.get(srv.url + "/redirect/3", allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302
    assert r.headers["Location"] in ("/relative-redirect/2", srv.url + "/relative-redirect/2")

    # Absolute redirects are built from the Host header / SERVER_NAME and SERVER_PORT.
    r = requests.get(srv.url + "/absolute-redirect/2", allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302
    assert r.headers["Location"] == srv.url + "/absolute-redirect/1"
    r = requests.get(srv.url + "/absolute-redirect/2", timeout=TIMEOUT)
    assert r.status_code == 200 and r.url == srv.url + "/get"


def test_cookies_set_then_read(httpbin):
    srv = httpbin
    with requests.Session() as s:
        r = s.get(srv.url + "/cookies/set?a=b", allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 302
        assert r.headers["Location"] in ("/cookies", srv.url + "/cookies")
        assert "a=b" in r.headers["Set-Cookie"]
        r = s.get(srv.url + "/cookies", timeout=TIMEOUT)
        assert r.status_code == 200
        assert r.json() == {"cookies": {"a": "b"}}
        # Following the redirect in one go with another cookie.
        r = s.get(srv.url + "/cookies/set", params={"c": "d"}, timeout=TIMEOUT)
        assert r.status_code == 200
        assert r.json() == {"cookies": {"a": "b", "c": "d"}}


def test_gzip(httpbin):
    r = requests.get(httpbin.url + "/gzip", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    data = r.json()
    assert data["gzipped"] is True
    assert data["method"] == "GET"
    # The raw (still compressed) body is exactly Content-Length bytes and really gzip.
    with requests.get(httpbin.url + "/gzip", stream=True, timeout=TIMEOUT) as r:
        raw = r.raw.read(1 << 20, decode_content=False)
        assert len(raw) == int(r.headers["Content-Length"])
    assert json.loads(gzip.decompress(raw))["gzipped"] is True


def test_stream_20_json_lines(httpbin):
    srv = httpbin
    with requests.get(srv.url + "/stream/20", stream=True, timeout=TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in r.headers
        lines = []
        for line in r.iter_lines():
            if line:
                lines.append(json.loads(line))
            assert len(lines) <= 20
    assert [m["id"] for m in lines] == list(range(20))
    assert all(m["url"] == srv.url + "/stream/20" for m in lines)


def test_bytes_exact_length(httpbin):
    # httpbin caps /bytes at 100 KiB: 1048576 asked, 102400 served.
    r = requests.get(httpbin.url + "/bytes/1048576", params={"seed": 7}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Length"] == "102400"
    assert len(r.content) == 102400
    r2 = requests.get(httpbin.url + "/bytes/1048576", params={"seed": 7}, timeout=TIMEOUT)
    assert hashlib.sha256(r2.content).digest() == hashlib.sha256(r.content).digest()

    r = requests.get(httpbin.url + "/stream-bytes/102400", params={"seed": 3, "chunk_size": 1000}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert len(r.content) == 102400


def test_drip_is_streamed(httpbin):
    started = time.monotonic()
    arrivals = []
    with requests.get(httpbin.url + "/drip", params={"duration": 1, "numbytes": 5}, stream=True,
                      timeout=TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers["Content-Length"] == "5"
        body = b""
        for piece in r.iter_content(chunk_size=1):
            body += piece
            arrivals.append(time.monotonic() - started)
            assert len(body) <= 5
    assert body == b"*****"
    # Five bytes 0.2 s apart: a server that buffered the whole response would deliver
    # them all at once after ~1 s.
    assert arrivals[-1] - arrivals[0] >= 0.5, arrivals
    assert arrivals[0] < 0.6, arrivals
    assert arrivals[-1] < 5, arrivals


def test_basic_auth(httpbin):
    url = httpbin.url + "/basic-auth/user/passwd"
    r = requests.get(url, timeout=TIMEOUT)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].lower().startswith("basic")
    r = requests.get(url, auth=("user", "wrong"), timeout=TIMEOUT)
    assert r.status_code == 401
    r = requests.get(url, auth=("user", "passwd"), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.json() == {"authenticated": True, "user": "user"}


def test_head_and_keepalive_raw(httpbin):
    srv = httpbin
    s = srv.connect()
    auth = base64.b64encode(b"user:passwd")
    s.sendall(b"GET /basic-auth/user/passwd HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth + b"\r\n\r\n"
              b"GET /status/418 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, rest = read_response(s)
    assert status == 200 and json.loads(body)["authenticated"] is True
    status, _, body, rest = read_response(s, rest)
    assert status == 418 and b"teapot" in body
    s.sendall(b"GET /stream/3 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s, rest)
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    assert len(body.splitlines()) == 3
    s.close()
    r = requests.head(srv.url + "/bytes/100", timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Length"] == "100"


def test_concurrent_requests(httpbin):
    srv = httpbin

    def one(i):
        r = requests.get(srv.url + "/anything/%d" % i, params={"i": i}, timeout=TIMEOUT)
        return r.status_code, r.json()["args"], r.json()["url"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        results = list(ex.map(one, range(32), timeout=30))
    for i, (status, args, url) in enumerate(results):
        assert status == 200
        assert args == {"i": str(i)}
        assert url == srv.url + "/anything/%d?i=%d" % (i, i)
