"""Proxy mounts against real upstream servers on loopback (see
upstream_server.py): path mapping, streaming with bounded memory, errors,
header rewriting, keep-alive pooling, WebSocket tunnels, balancing and
request smuggling."""
import asyncio
import hashlib
import json
import os
import socket
import threading
import time

import pytest
import requests
import websockets

from conftest import poll, read_head, read_response, recv_until_closed, rss_kb, run_trestle
from upstream_server import Dead, Upstream, pattern, pattern_sha256, refused_port

MB = 1 << 20
SANITIZED = bool(os.environ.get("TRESTLE_SANITIZED"))


@pytest.fixture
def upstream():
    made = []

    def make(**kw):
        u = Upstream(**kw)
        made.append(u)
        return u
    yield make
    for u in made:
        u.stop()


def config(tmp_path, *mounts):
    """A --config file with these [[mount]] tables (dicts), as TOML."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str):
            return json.dumps(v)
        return str(v)
    text = "".join("[[mount]]\n" + "".join("%s = %s\n" % (k, value(v)) for k, v in m.items()) + "\n"
                   for m in mounts)
    path = tmp_path / "trestle.toml"
    path.write_text(text)
    return "--config=%s" % path


def raw_request(srv, data, timeout=10):
    s = srv.connect(timeout)
    s.sendall(data)
    return s


class RssWatch:
    """Samples a process's RSS until stopped; `.peak` is the highest seen."""

    def __init__(self, pid):
        self.pid = pid
        self.base = rss_kb(pid)
        self.peak = self.base
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_kb(self.pid))

    def stop(self):
        self.done.set()
        self.thread.join(5)
        return self.peak - self.base


# ---- path mapping -------------------------------------------------------------

def test_uri_goes_unchanged_without_an_upstream_path(serve, upstream):
    up = upstream()
    srv = serve("hello:app", "/billing=proxy:" + up.url())
    r = requests.get(srv.url + "/billing/a%20b/c?x=1&y=%2F", timeout=10)
    assert r.status_code == 200
    assert r.json()["target"] == "/billing/a%20b/c?x=1&y=%2F"
    assert requests.get(srv.url + "/billing", timeout=10).json()["target"] == "/billing"
    # Other paths stay with the root app.
    assert requests.get(srv.url + "/billingx", timeout=10).text == "Hello, World!"


def test_an_upstream_path_replaces_the_prefix(serve, upstream):
    up = upstream()
    srv = serve("hello:app", "/api=proxy:" + up.url("/v1"), "/top=proxy:" + up.url("/"))
    got = requests.get(srv.url + "/api/items/7?sort=name&q=", timeout=10).json()
    assert got["target"] == "/v1/items/7?sort=name&q="
    assert dict(got["headers"])["X-Forwarded-Prefix"] == "/api"
    assert requests.get(srv.url + "/api", timeout=10).json()["target"] == "/v1"
    assert requests.get(srv.url + "/top/x/y?z", timeout=10).json()["target"] == "/x/y?z"
    assert requests.get(srv.url + "/top", timeout=10).json()["target"] == "/"
    assert requests.get(srv.url + "/top/", timeout=10).json()["target"] == "/"


def test_dot_segments_are_refused_before_the_upstream(serve, upstream):
    up = upstream()
    srv = serve("hello:app", "/api=proxy:" + up.url("/v1"))
    for path in ("/api/../admin", "/api/%2e%2e/admin", "/api/./x"):
        s = raw_request(srv, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        status, _, body, _ = read_response(s)
        s.close()
        # ".." is refused for every mount by the router; "." by the proxy.
        assert status == 400 and (b"segment" in body or path != "/api/./x"), path
    assert up.requests == []


# ---- streaming and memory --------------------------------------------------------

def send_pattern_body(sock, n):
    for block in pattern(n):
        sock.sendall(block)


@pytest.mark.skipif(SANITIZED, reason="ASan's quarantine holds freed memory, so RSS says nothing there")
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_100mb_upload_is_streamed(serve, upstream, framing):
    up = upstream()
    srv = serve("proxy:" + up.url())
    n = 100 * MB
    watch = RssWatch(srv.proc.pid)
    s = srv.connect(timeout=60)
    if framing == "content-length":
        s.sendall(b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n)
        send_pattern_body(s, n)
    else:
        s.sendall(b"PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for block in pattern(n):
            s.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        s.sendall(b"0\r\n\r\n")
    status, _, body, _ = read_response(s, timeout=60)
    s.close()
    grew = watch.stop()
    got = json.loads(body)
    assert status == 200 and got["body_len"] == n and got["body_sha256"] == pattern_sha256(n)
    assert grew < 32 * 1024, "RSS grew by %d KiB for a %d MiB upload" % (grew, n // MB)
    # The framing upstream is the client's: one of them, never both.
    sent = up.last()
    if framing == "chunked":
        assert sent.header("Transfer-Encoding") == "chunked" and sent.count("Content-Length") == 0
    else:
        assert sent.header("Content-Length") == str(n) and sent.count("Transfer-Encoding") == 0


@pytest.mark.skipif(SANITIZED, reason="ASan's quarantine holds freed memory, so RSS says nothing there")
@pytest.mark.parametrize("mode", ["cl", "chunked"])
def test_100mb_download_is_streamed(serve, upstream, mode):
    up = upstream()
    srv = serve("proxy:" + up.url())
    n = 100 * MB
    watch = RssWatch(srv.proc.pid)
    r = requests.get(srv.url + "/big?n=%d&mode=%s" % (n, mode), stream=True, timeout=60)
    digest, total = hashlib.sha256(), 0
    for chunk in r.iter_content(1 << 16):
        digest.update(chunk)
        total += len(chunk)
    grew = watch.stop()
    assert r.status_code == 200 and total == n and digest.hexdigest() == pattern_sha256(n)
    if mode == "cl":
        assert r.headers["Content-Length"] == str(n)
    else:
        assert r.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in r.headers
    assert grew < 32 * 1024, "RSS grew by %d KiB for a %d MiB download" % (grew, n // MB)


def test_response_framing_for_each_upstream_kind(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    n = 300 * 1000
    for mode, expect in (("cl", "content-length"), ("chunked", "chunked"), ("close", "chunked")):
        s = raw_request(srv, b"GET /big?n=%d&mode=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (n, mode.encode()))
        status, headers, body, rest = read_response(s)
        assert status == 200 and hashlib.sha256(body).hexdigest() == pattern_sha256(n), mode
        if expect == "chunked":
            assert headers.get("transfer-encoding") == "chunked" and "content-length" not in headers, mode
        else:
            assert headers["content-length"] == str(n) and "transfer-encoding" not in headers, mode
        # Still usable: the next request on the same connection.
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, rest)[0] == 200
        s.close()
    # An HTTP/1.0 client gets a close-delimited body instead of chunks.
    s = raw_request(srv, b"GET /big?n=%d&mode=close HTTP/1.0\r\n\r\n" % n)
    status, fields, rest = read_head(s)
    names = [k.lower() for k, _ in fields]
    assert status == 200 and "transfer-encoding" not in names and "content-length" not in names
    body = rest + recv_until_closed(s)
    assert hashlib.sha256(body).hexdigest() == pattern_sha256(n)
    s.close()


def test_head_and_bodiless_statuses(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    s = srv.connect()
    s.sendall(b"HEAD /big?n=5000&mode=cl HTTP/1.1\r\nHost: x\r\n\r\n")
    status, fields, rest = read_head(s)
    assert status == 200 and ("Content-Length", "5000") in fields
    for code in (204, 304):
        s.sendall(b"GET /status?code=%d HTTP/1.1\r\nHost: x\r\n\r\n" % code)
        status, fields, rest = read_head(s, rest)
        names = [k.lower() for k, _ in fields]
        assert status == code and "transfer-encoding" not in names
        assert ("Content-Length" in dict(fields)) == (code == 304)
    # Nothing followed those heads: the connection is in step.
    s.sendall(b"GET /status?code=201 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, _ = read_response(s, rest)
    assert status == 201 and body == b"ok"
    s.close()


def test_interim_responses_are_not_passed_on(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    s = raw_request(srv, b"GET /interim HTTP/1.1\r\nHost: x\r\n\r\n")
    status, fields, rest = read_head(s)
    assert status == 200
    s.close()


def test_expect_continue_through_the_proxy(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    s = raw_request(srv, b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    status, _, rest = read_head(s)
    assert status == 100
    s.sendall(b"hello")
    status, _, body, _ = read_response(s, rest)
    assert status == 200 and json.loads(body)["body_len"] == 5
    assert up.last().header("Expect") is None   # the 100 was the proxy's to send
    s.close()


# ---- errors ----------------------------------------------------------------------

def test_upstream_down_is_502(serve):
    srv = serve("hello:app", "/b=proxy:http://127.0.0.1:%d" % refused_port())
    r = requests.get(srv.url + "/b/x", timeout=10)
    assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/plain")
    assert "could not be reached" in r.text
    assert "connect" in srv.log()


def test_invalid_upstream_responses_are_502(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    for kind in ("garbage", "clte"):
        r = requests.get(srv.url + "/bad?kind=" + kind, timeout=10)
        assert r.status_code == 502 and "invalid response" in r.text, kind


def test_slow_upstream_is_504_after_read_timeout(serve, upstream, tmp_path):
    up = upstream()
    srv = serve(config(tmp_path, {"prefix": "/", "proxy": up.url(), "read_timeout": 0.5}))
    start = time.monotonic()
    r = requests.get(srv.url + "/slow?s=5", timeout=10)
    took = time.monotonic() - start
    assert r.status_code == 504 and "did not answer in time" in r.text
    assert 0.4 < took < 3, took
    # Within the timeout all is well.
    assert requests.get(srv.url + "/slow?s=0.05", timeout=10).status_code == 200


def test_a_short_connect_timeout_does_not_cut_a_longer_read(serve, upstream, tmp_path):
    # One timer serves the call's deadlines: armed for the connect (0.3 s),
    # it fires during the read and must wait again for the read's (3 s)
    # rather than time the request out.
    up = upstream()
    srv = serve(config(tmp_path, {"prefix": "/", "proxy": up.url(), "connect_timeout": 0.3, "read_timeout": 3,
                                  "max_idle": 0}))   # every request connects afresh
    for _ in range(2):
        start = time.monotonic()
        r = requests.get(srv.url + "/slow?s=0.8", timeout=10)
        assert r.status_code == 200, r.text
        assert time.monotonic() - start >= 0.8


def test_connect_timeout_is_504(serve, tmp_path):
    # A listener whose accept queue is full drops new SYNs: connect hangs.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        probe = socket.socket()
        probe.settimeout(0.3)
        with pytest.raises(OSError):
            probe.connect(("127.0.0.1", port))
        probe.close()
        srv = serve(config(tmp_path, {"prefix": "/", "proxy": "http://127.0.0.1:%d" % port, "connect_timeout": 0.4}))
        start = time.monotonic()
        r = requests.get(srv.url + "/", timeout=10)
        assert r.status_code == 504 and "in time" in r.text
        assert time.monotonic() - start < 3
    finally:
        for c in fillers:
            c.close()
        full.close()


@pytest.mark.parametrize("mode", ["cl", "chunked"])
def test_upstream_dying_mid_response_closes_the_client(serve, upstream, mode):
    up = upstream()
    srv = serve("proxy:" + up.url())
    s = raw_request(srv, b"GET /die?mode=%s HTTP/1.1\r\nHost: x\r\n\r\n" % mode.encode())
    status, fields, rest = read_head(s)
    body = rest + recv_until_closed(s)   # returns only once the proxy closes
    s.close()
    assert status == 200
    if mode == "cl":
        assert ("Content-Length", "100000") in fields and len(body) < 100000
    else:
        assert ("Transfer-Encoding", "chunked") in fields
        assert b"x" * 1024 in body and not body.endswith(b"0\r\n\r\n")
    assert "closing the client connection" in srv.log()


def test_client_leaving_mid_response_closes_the_upstream(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    s = raw_request(srv, b"GET /big?n=%d&mode=cl HTTP/1.1\r\nHost: x\r\n\r\n" % (500 * MB))
    read_head(s)
    s.recv(65536)
    s.close()
    # The upstream's send fails once the proxy drops its connection.
    assert poll(lambda: up.closed_connections == 1, timeout=10), up.closed_connections
    # That connection is not reused: the next request opens another.
    assert requests.get(srv.url + "/echo", timeout=10).json()["conn"] == 2


def test_client_leaving_mid_request_closes_the_upstream(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    s = raw_request(srv, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (50 * MB))
    s.sendall(b"x" * MB)
    assert poll(lambda: up.connections == 1)
    s.close()
    assert poll(lambda: up.closed_connections == 1, timeout=10), up.closed_connections
    assert up.requests == []   # never a complete request
    assert requests.get(srv.url + "/echo", timeout=10).json()["conn"] == 2


# ---- header rewriting ------------------------------------------------------------

def test_hop_by_hop_fields_are_dropped_and_forwarding_fields_set(serve, upstream):
    up = upstream()
    srv = serve("hello:app", "/b=proxy:" + up.url())
    s = raw_request(srv, b"GET /b/echo HTTP/1.1\r\nHost: front.example:8080\r\n"
                         b"Connection: keep-alive, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: timeout=9\r\n"
                         b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n"
                         b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\n"
                         b"Forwarded: for=6.6.6.6\r\nX_Forwarded_For: 7.7.7.7\r\nX-Kept: yes\r\n\r\n")
    status, headers, body, _ = read_response(s)
    s.close()
    assert status == 200
    got = up.last()
    for gone in ("Connection", "X-Drop-Me", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
                 "X_Forwarded_For"):
        assert got.count(gone) == 0, gone
    assert got.header("X-Kept") == "yes"
    assert got.header("Host") == "127.0.0.1:%d" % up.port
    assert got.header("X-Forwarded-For") == "127.0.0.1" and got.count("X-Forwarded-For") == 1
    assert got.header("X-Forwarded-Proto") == "http"
    assert got.header("X-Forwarded-Host") == "front.example:8080"
    assert got.header("Forwarded") == 'for=127.0.0.1;proto=http;host="front.example:8080"'
    assert got.count("X-Forwarded-Prefix") == 0   # the prefix was not stripped


def test_response_hop_by_hop_fields_are_dropped(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    s = raw_request(srv, b"GET /hop HTTP/1.1\r\nHost: x\r\n\r\n")
    status, fields, rest = read_head(s)
    s.close()
    names = [k.lower() for k, _ in fields]
    for gone in ("connection", "x-internal", "keep-alive", "proxy-connection", "trailer", "upgrade"):
        assert gone not in names, gone
    assert ("X-Kept", "yes") in fields
    assert [v for k, v in fields if k == "Set-Cookie"] == ["a=1", "b=2"]
    # The upstream's Server and Date give way to this server's.
    r = requests.get(srv.url + "/echo", timeout=10)
    assert r.headers["Server"] == "trestle" and "2001" not in r.headers["Date"]


def test_preserve_host(serve, upstream, tmp_path):
    up = upstream()
    srv = serve(config(tmp_path, {"prefix": "/", "proxy": up.url(), "preserve_host": True}))
    requests.get(srv.url + "/echo", headers={"Host": "shop.example"}, timeout=10)
    assert up.last().header("Host") == "shop.example"


def test_a_trusted_peer_extends_the_forwarding_chain(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url(), "--forwarded-allow-ips", "127.0.0.1")
    requests.get(srv.url + "/echo", headers={"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https",
                                             "X-Forwarded-Host": "shop.example",
                                             "Forwarded": "for=203.0.113.5;proto=https"}, timeout=10)
    got = up.last()
    assert got.header("X-Forwarded-For") == "203.0.113.5, 127.0.0.1"
    assert got.header("X-Forwarded-Proto") == "https"
    assert got.header("X-Forwarded-Host") == "shop.example"
    assert got.header("Forwarded").startswith("for=203.0.113.5;proto=https, for=127.0.0.1;proto=https;host=")


# ---- keep-alive to the upstream ---------------------------------------------------

def test_upstream_connections_are_reused(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    for i in range(20):   # each on a new client connection
        assert requests.get(srv.url + "/echo?%d" % i, timeout=10).status_code == 200
    assert len(up.requests) == 20 and up.connections == 1


def test_max_idle_zero_closes_each_upstream_connection(serve, upstream, tmp_path):
    up = upstream()
    srv = serve(config(tmp_path, {"prefix": "/", "proxy": up.url(), "max_idle": 0}))
    for i in range(3):
        assert requests.get(srv.url + "/echo", timeout=10).status_code == 200
    assert up.connections == 3 and up.last().header("Connection") == "close"


def test_idle_connections_the_upstream_closed_are_not_used(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    for i in range(10):
        # /bye closes its connection after a keep-alive answer, as an
        # upstream's idle timeout would.
        assert requests.get(srv.url + "/bye", timeout=10).status_code == 200
        assert poll(lambda: len(up.socks) == 0)
        # A POST is never resent, so it only succeeds if the closed
        # connection was noticed and left alone.
        r = requests.post(srv.url + "/echo", data=b"once", timeout=10)
        assert r.status_code == 200 and r.json()["index"] == 1, i
    # The first /bye's connection, then one per POST (the next /bye reuses it).
    assert up.connections == 11


def sockets_of(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass   # closed while listed
    return n


def test_an_idle_connection_the_upstream_closed_is_let_go(serve, upstream):
    # No request takes it again, so only the pool's sweep can notice the
    # close; until then it would sit in CLOSE_WAIT holding a descriptor.
    up = upstream()
    srv = serve("proxy:" + up.url())
    baseline = sockets_of(srv.proc.pid)
    r = requests.get(srv.url + "/bye", headers={"Connection": "close"}, timeout=10)
    assert r.status_code == 200
    assert poll(lambda: len(up.socks) == 0)
    assert poll(lambda: sockets_of(srv.proc.pid) == baseline, timeout=5), sockets_of(srv.proc.pid)


def test_a_dropped_kept_connection_is_retried_once_when_safe(serve, upstream):
    up = upstream(drop_reused=True)
    srv = serve("proxy:" + up.url())
    assert requests.get(srv.url + "/echo", timeout=10).status_code == 200
    # The kept connection swallows the next request: a GET goes again on a new one.
    r = requests.get(srv.url + "/echo?again", timeout=10)
    assert r.status_code == 200 and r.json()["conn"] == 2
    assert [q.target for q in up.requests] == ["/echo", "/echo?again", "/echo?again"]
    # A POST cannot be sent twice.
    r = requests.post(srv.url + "/echo", data=b"pay once", timeout=10)
    assert r.status_code == 502
    assert [q.method for q in up.requests].count("POST") == 1


# ---- WebSocket and other upgrades ------------------------------------------------

def test_websocket_through_the_proxy(serve):
    app = serve("asgi_ws:app")
    srv = serve("hello:app", "/live=proxy:" + app.url + "/")

    async def talk():
        async with websockets.connect(srv.url.replace("http://", "ws://") + "/live/echo",
                                      subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 10) == "hello"
            await ws.send(b"\x00\x01" * 40000)
            assert await asyncio.wait_for(ws.recv(), 10) == b"\x00\x01" * 40000
            await ws.send("close-please")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return closed.value.code
    assert asyncio.run(talk()) == 4001
    # A handshake the upstream refuses comes back as its HTTP response.

    async def denied():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await websockets.connect(srv.url.replace("http://", "ws://") + "/live/deny-http")
        return e.value.status_code
    assert asyncio.run(denied()) == 401
    # The client closes first: the upstream app sees it.

    async def client_close():
        async with websockets.connect(srv.url.replace("http://", "ws://") + "/live/echo") as ws:
            await ws.send("x")
            await asyncio.wait_for(ws.recv(), 10)
    asyncio.run(client_close())
    assert poll(lambda: 1000 in requests.get(app.url + "/", timeout=5).json()["disconnects"])


def test_a_raw_tunnel_carries_early_bytes_and_half_closes(serve, upstream, tmp_path):
    up = upstream()
    # A protocol other than websocket is tunnelled only when the mount allows it.
    srv = serve("hello:app", config(tmp_path, {"prefix": "/t", "proxy": up.url(), "upgrades": ["RawBytes"]}))
    s = raw_request(srv, b"GET /t/switch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: rawbytes\r\n\r\n")
    status, fields, rest = read_head(s)
    assert status == 101
    assert ("Upgrade", "rawbytes") in fields and ("Connection", "upgrade") in fields and ("X-Tunnel", "yes") in fields
    while len(rest) < 5:
        rest += s.recv(100)
    assert rest == b"HELLO"   # sent by the upstream with its 101
    s.sendall(b"ping")
    got = b""
    while got != b"ping":
        got += s.recv(100)
    s.shutdown(socket.SHUT_WR)   # passed on as a half-close: the upstream says BYE and closes
    assert recv_until_closed(s) == b"BYE"
    s.close()
    got = up.last()
    assert got.header("Upgrade") == "rawbytes" and got.header("Connection") == "upgrade"


def test_shutdown_closes_tunnels_at_once(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url(), "--graceful-timeout", "20")
    s = raw_request(srv, b"GET /switch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    status, _, rest = read_head(s)
    assert status == 101
    start = time.monotonic()
    srv.proc.terminate()
    srv.proc.wait(15)
    assert time.monotonic() - start < 5   # not the graceful timeout
    assert srv.proc.returncode == 0
    assert (rest + recv_until_closed(s)).startswith(b"HELLO")
    s.close()
    assert poll(lambda: not up.socks)   # the upstream end is closed too


def test_an_upgrade_without_101_stays_http(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    s = raw_request(srv, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert status == 200 and "upgrade" not in headers
    s.sendall(b"GET /echo?next HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, _ = read_response(s, rest)
    assert status == 200 and json.loads(body)["target"] == "/echo?next"
    s.close()


# ---- several upstreams ------------------------------------------------------------

def test_round_robin(serve, upstream):
    a, b = upstream(), upstream()
    srv = serve("proxy:%s,%s" % (a.url(), b.url()))
    for _ in range(10):
        assert requests.get(srv.url + "/echo", timeout=10).status_code == 200
    assert len(a.requests) == 5 and len(b.requests) == 5


def test_a_dead_upstream_is_ejected(serve, upstream, tmp_path):
    good, dead = upstream(), Dead()
    try:
        srv = serve(config(tmp_path, {"prefix": "/", "proxy": [good.url(), dead.url()],
                                      "max_fails": 1, "fail_timeout": 1}))
        started = time.monotonic()   # before the ejection
        for _ in range(10):   # a GET that meets the dead one goes on to the good one
            assert requests.get(srv.url + "/echo", timeout=10).status_code == 200
        assert dead.connections == 1 and len(good.requests) == 10
        assert "proxy / -> 127.0.0.1:%d" % dead.port in srv.log()
        # After fail_timeout it is tried again (and ejected again).
        assert poll(lambda: requests.get(srv.url + "/echo", timeout=10).status_code == 200 and dead.connections == 2,
                    timeout=10, interval=0.05)
        assert time.monotonic() - started >= 1.0
    finally:
        dead.stop()


def test_all_upstreams_down_is_502(serve):
    srv = serve("proxy:http://127.0.0.1:%d,http://127.0.0.1:%d" % (refused_port(), refused_port()))
    for _ in range(3):
        assert requests.get(srv.url + "/", timeout=10).status_code == 502


# ---- request smuggling ------------------------------------------------------------

def parse_chunked_strictly(raw):
    """The body of a chunked message, or an AssertionError if it is not exactly one."""
    body, pos = b"", 0
    while True:
        eol = raw.index(b"\r\n", pos)
        line = raw[pos:eol]
        assert line and all(c in b"0123456789abcdefABCDEF" for c in line), line   # no extensions left
        size = int(line, 16)
        pos = eol + 2
        if size == 0:
            assert raw[pos:] == b"\r\n", raw[pos:]   # no trailers, nothing after
            return body
        body += raw[pos:pos + size]
        assert raw[pos + size:pos + size + 2] == b"\r\n"
        pos += size + 2


def test_a_chunked_body_reaches_the_upstream_one_way_only(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    inner = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    s = raw_request(srv, b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5;ext=1\r\nhello\r\n%x\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n"
                         b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n" % (len(inner), inner))
    status, _, body, rest = read_response(s)
    assert status == 200 and json.loads(body)["target"] == "/first"
    status, _, body, _ = read_response(s, rest)
    assert status == 200 and json.loads(body)["target"] == "/second"
    s.close()
    first = up.requests[0]
    head = first.raw_head.decode("latin-1").lower()
    assert "transfer-encoding: chunked" in head and "content-length" not in head
    assert parse_chunked_strictly(first.raw_body) == b"hello" + inner
    assert [r.target for r in up.requests] == ["/first", "/second"]


def test_ambiguous_framing_never_reaches_the_upstream(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    for bad in (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"):
        s = raw_request(srv, bad)
        assert read_response(s)[0] == 400
        s.close()
    assert up.requests == []


def test_a_content_length_body_is_sent_exactly(serve, upstream):
    up = upstream()
    srv = serve("proxy:" + up.url())
    s = raw_request(srv, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, rest = read_response(s)
    assert json.loads(body)["target"] == "/a"
    status, _, body, _ = read_response(s, rest)
    assert json.loads(body)["target"] == "/b"
    s.close()
    assert up.requests[0].raw_body == b"hello"


# ---- configuration --------------------------------------------------------------

@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1:99999", "bad port"),
    ("https://127.0.0.1:9001", "https"),
    ("http://no-such-host.invalid:9001", "cannot resolve"),
    ("http://127.0.0.1:9001/x?y=1", "query"),
])
def test_bad_upstreams_are_one_line_errors(url, words):
    r = run_trestle("proxy:" + url)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("trestle: error:") and words in lines[0], r.stderr


# ---- upgrades other than websocket (issue 10 item 7) -----------------------------------------

def test_an_h2c_upgrade_is_forwarded_as_a_plain_request(serve, upstream):
    up = upstream()
    srv = serve("hello:app", "/api=proxy:" + up.url("/public-api/"))
    s = raw_request(srv, b"GET /api/h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                         b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert status == 200, (status, body)
    got = json.loads(body)
    sent = dict((k.lower(), v) for k, v in got["headers"])
    assert "upgrade" not in sent and "http2-settings" not in sent
    assert "upgrade" not in sent.get("connection", "").lower()
    # The connection is still HTTP/1.1: a second request on it is answered.
    s.sendall(b"GET /api/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, _ = read_response(s, rest)
    assert status == 200 and json.loads(body)["target"] == "/public-api/echo"
    s.close()


def test_an_upstream_switching_to_h2c_unasked_is_502(serve, upstream):
    up = upstream()
    srv = serve("hello:app", "/api=proxy:" + up.url("/public-api/"))
    # /switch answers 101 whatever it was asked.
    s = raw_request(srv, b"GET /api/switch HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    status, _, _, _ = read_response(s)
    s.close()
    assert status == 502


def test_a_mount_can_allow_other_upgrades(serve, upstream, tmp_path):
    up = upstream()
    srv = serve("hello:app", config(tmp_path, {"prefix": "/api", "proxy": up.url("/public-api/"),
                                               "upgrades": ["websocket", "h2c"]}))
    s = raw_request(srv, b"GET /api/h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    status, fields, _ = read_head(s)
    s.close()
    assert status == 101 and ("Upgrade", "h2c") in fields
    assert up.last().header("Upgrade") == "h2c"


def test_bad_upgrades_setting_exits_2(tmp_path, upstream):
    up = upstream()
    for value in (["web socket"], "websocket", [1]):
        r = run_trestle("hello:app", config(tmp_path, {"prefix": "/api", "proxy": up.url(), "upgrades": value}))
        assert r.returncode == 2 and "upgrades" in r.stderr, (value, r.stderr)


# ---- upstream trailers (issue 10 item 17) ------------------------------------------------------

@pytest.mark.parametrize("writes", ["one", "many"])
def test_upstream_trailers_never_become_response_headers(serve, upstream, writes):
    up = upstream()
    srv = serve("hello:app", "/t=proxy:" + up.url())
    for _ in range(3):
        s = raw_request(srv, b"GET /t/trailers?writes=%s HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n"
                             b"Connection: close\r\n\r\n" % writes.encode())
        status, fields, rest = read_head(s)
        data = rest + recv_until_closed(s)
        s.close()
        names = [k.lower() for k, _ in fields]
        assert status == 200
        assert "set-cookie" not in names and "location" not in names and "x-checksum" not in names, fields
        assert names.count("content-type") == 1 and ("Content-Type", "text/plain") in fields, fields
        # The body arrives whole, and the trailers are dropped, not sent on.
        assert b"evil" not in data and b"X-Checksum" not in data, data
        chunked = "chunked" in dict(fields).get("Transfer-Encoding", "")
        assert (parse_chunked_strictly(data) if chunked else data) == b"hello world", data
