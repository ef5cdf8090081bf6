"""WebSockets over HTTP/2 (RFC 8441): the extended CONNECT, then WebSocket
frames in the stream's DATA frames. No Debian client speaks it, so the
client here is python3-h2 for the stream with the frames written and read
by hand (client frames masked, as RFC 6455 requires); Chromium uses it
whenever a server offers it.

A representative part of test_websocket.py runs here over HTTP/2 (cleartext
with prior knowledge, and TLS with ALPN): echo of text, bytes and a 1 MiB
message, subprotocol and extra fields, close codes both ways, denials,
--ws-max-size, many WebSockets on one connection beside plain requests, a
WSGI mount, the graceful stop, and what only HTTP/2 has: flow control as the
backpressure, a reset stream, and the SETTINGS that offers it."""
import json
import os
import signal
import struct
import time

import pytest

h2 = pytest.importorskip("h2", reason="needs python3-h2 (Debian)")
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402

from test_http2 import H2, RawH2, client_ctx, frame  # noqa: E402
from test_tls import pki, tls_flags  # noqa: E402,F401  (pki is a fixture)
from upstream_server import Upstream  # noqa: E402

APP = "asgi_ws:app"
ENABLE_CONNECT_PROTOCOL = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL


def ws_frame(opcode, payload=b"", fin=True):
    """A client frame: masked."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def parse_frame(buf):
    """(fin, opcode, payload, rest), or None while the frame is incomplete. Server frames are not masked."""
    if len(buf) < 2:
        return None
    assert not buf[1] & 0x80, "a server frame must not be masked"
    n, at = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack(">H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack(">Q", buf[2:10])[0], 10
    if len(buf) < at + n:
        return None
    return bool(buf[0] & 0x80), buf[0] & 0x0F, buf[at:at + n], buf[at + n:]


class H2WebSocket:
    """One WebSocket on a stream of an H2 connection (test_http2.H2)."""

    def __init__(self, conn, path="/echo", headers=(), scheme="http"):
        self.c = conn
        wait_for_settings(conn)
        self.sid = conn.conn.get_next_available_stream_id()
        hdrs = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", scheme), (":path", path),
                (":authority", "localhost"), ("sec-websocket-version", "13")] + list(headers)
        conn.conn.send_headers(self.sid, hdrs, end_stream=False)
        conn.flush()
        conn.streams[self.sid] = {"headers": None, "interim": [], "body": b"", "trailers": None, "ended": False}
        self.used = 0   # bytes of the stream's body already parsed into frames

    @property
    def state(self):
        return self.c.streams[self.sid]

    def response(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.state["headers"] is None and not self.state["ended"] and time.monotonic() < deadline:
            if not self.c.pump(max(0.01, deadline - time.monotonic())):
                break
        return self.state["headers"]

    def send(self, opcode, payload=b"", fin=True):
        self.c.send_body(self.sid, ws_frame(opcode, payload, fin), end=False)

    def send_text(self, text):
        self.send(0x1, text.encode())

    def recv_frame(self, timeout=10.0):
        """The next frame (opcode, payload); None when the stream ended or nothing came in time."""
        deadline = time.monotonic() + timeout
        while True:
            got = parse_frame(self.state["body"][self.used:])
            if got:
                fin, opcode, payload, rest = got
                self.used = len(self.state["body"]) - len(rest)
                return opcode, payload
            if self.state["ended"] or time.monotonic() >= deadline:
                return None
            if not self.c.pump(max(0.01, deadline - time.monotonic())):
                return None

    def recv(self, timeout=10.0):
        """The next data message (text as str, binary as bytes), answering pings."""
        while True:
            f = self.recv_frame(timeout)
            assert f is not None, "no frame came"
            opcode, payload = f
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode == 0x8:
                raise Closed(payload)
            return payload.decode() if opcode == 0x1 else payload

    def close(self, code=1000, reason=b""):
        self.send(0x8, close_payload(code, reason))
        f = self.recv_frame()
        while f is not None and f[0] != 0x8:
            f = self.recv_frame()
        return f

    def ended(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.state["ended"] and time.monotonic() < deadline:
            if not self.c.pump(max(0.01, deadline - time.monotonic())):
                break
        return self.state["ended"]


class Closed(Exception):
    def __init__(self, payload):
        super().__init__(payload)
        self.code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
        self.reason = payload[2:].decode()


def wait_for_settings(conn, timeout=10.0):
    """The server's ENABLE_CONNECT_PROTOCOL, once its SETTINGS are in (they always carry
    MAX_CONCURRENT_STREAMS, which python3-h2 has no default for)."""
    deadline = time.monotonic() + timeout
    while (h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS not in conn.conn.remote_settings
           and time.monotonic() < deadline):
        if not conn.pump(0.2):
            break
    assert h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in conn.conn.remote_settings, "no SETTINGS came"
    return conn.conn.remote_settings.get(ENABLE_CONNECT_PROTOCOL)


def disconnects(c):
    """The close codes the app has seen, asked over the same connection."""
    r = c.response(c.request("/"))
    return json.loads(r["body"])["disconnects"]


def wait_disconnect(c, code, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if code in disconnects(c):
            return True
        time.sleep(0.02)
    return code in disconnects(c)


@pytest.fixture(params=["h2c", "tls"])
def ws_conn(request, serve, pki):
    """Starts the app and opens an HTTP/2 connection: h2c, or TLS with ALPN h2."""
    def open_(app=APP, *flags):
        if request.param == "h2c":
            srv = serve(app, *flags)
            return srv, H2(srv), "http"
        srv = serve(app, *flags, *tls_flags(pki))
        return srv, H2(srv, ctx=client_ctx(pki)), "https"
    return open_


def test_settings_offer_it_and_echo_works(ws_conn):
    srv, c, scheme = ws_conn()
    assert wait_for_settings(c) == 1
    ws = H2WebSocket(c, "/scope?x=1", headers=[("sec-websocket-protocol", "chat, other")], scheme=scheme)
    head = ws.response()
    assert head[":status"] == "200"
    assert head["sec-websocket-protocol"] == "chat"
    assert head["x-extra"] == "yes"
    assert "sec-websocket-accept" not in head and "upgrade" not in head
    scope = json.loads(ws.recv())
    assert scope == {"http_version": "2", "scheme": "wss" if scheme == "https" else "ws", "path": "/scope",
                     "query_string": "x=1", "subprotocols": ["chat", "other"]}
    ws.send_text("héllo")
    assert ws.recv() == "héllo"
    ws.send(0x2, b"\x00\xff")
    assert ws.recv() == b"\x00\xff"
    big = os.urandom(1 << 20)   # four times the stream's window: flow control both ways
    ws.send(0x2, big)
    assert ws.recv(timeout=30) == big
    # A fragmented message and a ping in between.
    ws.send(0x1, b"frag", fin=False)
    ws.send(0x9, b"p")
    ws.send(0x0, b"mented", fin=True)
    f = ws.recv_frame()
    assert f == (0xA, b"p")
    assert ws.recv() == "fragmented"
    # Client close: answered with the same code (Beast echoes no reason), then END_STREAM.
    assert ws.close(4321, b"bye") == (0x8, close_payload(4321))
    assert ws.ended()
    assert wait_disconnect(c, 4321)
    # The connection goes on: a plain request on it.
    sid = c.request("/")
    r = c.response(sid)
    assert r["headers"][":status"] == "200"
    c.close()


def test_app_closes_with_its_code(ws_conn):
    srv, c, scheme = ws_conn()
    ws = H2WebSocket(c, scheme=scheme)
    assert ws.response()[":status"] == "200"
    ws.send_text("close-please")
    with pytest.raises(Closed) as info:
        ws.recv()
    assert (info.value.code, info.value.reason) == (4001, "asked")
    ws.send(0x8, close_payload(4001))
    assert ws.ended()
    c.close()


def test_denials_are_http_responses_on_the_stream(ws_conn):
    srv, c, scheme = ws_conn()
    ws = H2WebSocket(c, "/deny", scheme=scheme)
    assert ws.response()[":status"] == "403"
    assert ws.ended()
    ws = H2WebSocket(c, "/deny-http", scheme=scheme)
    assert ws.response()[":status"] == "401"
    assert ws.ended()
    assert ws.state["body"] == b"no entry"
    # The connection is still good.
    ws = H2WebSocket(c, scheme=scheme)
    assert ws.response()[":status"] == "200"
    ws.send_text("after")
    assert ws.recv() == "after"
    c.close()


def test_max_size_closes_with_1009(serve):
    srv = serve(APP, "--ws-max-size", "1000")
    c = H2(srv)
    ws = H2WebSocket(c)
    assert ws.response()[":status"] == "200"
    ws.send_text("x" * 1000)
    assert len(ws.recv()) == 1000
    ws.send_text("x" * 1001)
    with pytest.raises(Closed) as info:
        ws.recv()
    assert info.value.code == 1009
    c.close()


def test_many_websockets_and_requests_on_one_connection(serve):
    srv = serve(APP)
    c = H2(srv)
    sockets = [H2WebSocket(c, "/echo") for _ in range(50)]
    for ws in sockets:
        assert ws.response()[":status"] == "200"
    plain = [c.request("/") for _ in range(20)]
    for i, ws in enumerate(sockets):
        for j in range(10):
            ws.send_text("%d-%d" % (i, j))
    for i, ws in enumerate(sockets):
        assert [ws.recv() for _ in range(10)] == ["%d-%d" % (i, j) for j in range(10)]
    for sid in plain:
        assert c.response(sid)["headers"][":status"] == "200"
    for ws in sockets:
        assert ws.close()[0] == 0x8
    for ws in sockets:
        assert ws.ended()
    c.close()


def test_a_client_that_does_not_read_is_held_back_by_flow_control(serve):
    """The echo app's sends wait on the peer's window, then its receives stop, then the stream's
    window closes on the client: memory stays bounded on both sides of the server."""
    srv = serve(APP)
    c = H2(srv)
    c.auto_ack = False   # the client never opens its window again: nothing more reaches it
    ws = H2WebSocket(c)
    assert ws.response()[":status"] == "200"
    chunk = os.urandom(16000)
    frame = ws_frame(0x2, chunk)   # within one DATA frame
    sent = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sent < 64 * 1024 * 1024:
        if c.conn.local_flow_control_window(ws.sid) < len(frame):
            # Let the server have its say; its window updates arrive while it reads.
            before = c.conn.local_flow_control_window(ws.sid)
            c.pump(1.0)
            if c.conn.local_flow_control_window(ws.sid) <= before:
                c.pump(1.0)
                if c.conn.local_flow_control_window(ws.sid) < len(frame):
                    break   # the window stayed closed: the server stopped reading
            continue
        c.conn.send_data(ws.sid, frame)
        c.flush()
        sent += len(frame)
    assert c.conn.local_flow_control_window(ws.sid) < len(frame), "the server kept reading"
    # Bounded: the peer window (64 KiB), the app's hwm both ways and the stream window.
    assert sent < 16 * 1024 * 1024, sent
    # Opening the window lets everything through again.
    c.auto_ack = True
    c.conn.acknowledge_received_data(len(ws.state["body"]), ws.sid)
    c.flush()
    got = 0
    while got < sent:
        msg = ws.recv(timeout=30)
        assert msg == chunk
        got += len(frame)
    c.close()


def test_a_silent_peer_is_pinged_then_reset(serve):
    srv = serve(APP, "--ws-idle-timeout", "1")
    c = H2(srv)
    ws = H2WebSocket(c)
    assert ws.response()[":status"] == "200"
    start = time.monotonic()
    assert ws.recv_frame()[0] == 0x9   # a ping first; never answered
    assert ws.ended(timeout=10)
    assert c.resets.get(ws.sid) == 8, c.resets   # CANCEL: Beast gave up on the stream
    assert time.monotonic() - start < 8
    sid = c.request("/")   # the connection itself lives on
    assert c.response(sid)["headers"][":status"] == "200"
    c.close()


def test_a_reset_stream_is_a_1006_for_the_app(serve):
    srv = serve(APP)
    c = H2(srv)
    ws = H2WebSocket(c)
    assert ws.response()[":status"] == "200"
    ws.send_text("hi")
    assert ws.recv() == "hi"
    c.conn.reset_stream(ws.sid, 8)   # CANCEL
    c.flush()
    assert wait_disconnect(c, 1006)
    # The connection is still good.
    sid = c.request("/")
    assert c.response(sid)["headers"][":status"] == "200"
    c.close()


def test_bad_handshakes(serve):
    srv = serve(APP)
    c = H2(srv)
    wait_for_settings(c)

    def connect(protocol="websocket", version="13", path="/echo"):
        sid = c.conn.get_next_available_stream_id()
        hdrs = [(":method", "CONNECT"), (":protocol", protocol), (":scheme", "http"), (":path", path),
                (":authority", "localhost")]
        if version is not None:
            hdrs.append(("sec-websocket-version", version))
        c.conn.send_headers(sid, hdrs, end_stream=False)
        c.flush()
        c.streams[sid] = {"headers": None, "interim": [], "body": b"", "trailers": None, "ended": False}
        return c.response(sid)["headers"][":status"]

    assert connect(version=None) == "426"
    assert connect(version="8") == "426"
    assert connect(protocol="webtransport") == "501"
    c.close()


def test_websocket_to_a_wsgi_app_is_a_clean_400(serve):
    srv = serve("hello:app")
    c = H2(srv)
    ws = H2WebSocket(c, "/")
    assert ws.response()[":status"] == "400"
    c.close()


def test_not_offered_with_http_1_or_a_proxy_that_relays_websockets(serve):
    srv = serve(APP, "--http", "1")
    s = srv.connect()
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    data = s.recv(100)
    assert not data.startswith(b"\x00"), data   # HTTP/1.1 answers; no SETTINGS frame
    s.close()
    up = Upstream()
    try:
        srv = serve(APP, "/up=proxy:" + up.url())
        c = H2(srv)
        assert wait_for_settings(c) == 0
        assert c.conn.remote_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS) == 100
        c.close()
    finally:
        up.stop()


@pytest.mark.skipif(bool(os.environ.get("TRESTLE_SANITIZED")),
                    reason="the stop is timed; a sanitizer slows it past the bound")
def test_graceful_stop_closes_websockets_with_1001(serve):
    # Frames by hand: python3-h2 takes no frame after a GOAWAY, and the
    # server's GOAWAY comes before the WebSocket's close frame.
    srv = serve(APP, "--graceful-timeout", "20")
    c = RawH2(srv)
    assert c.read(5, until=lambda: c.settings_seen)
    block = c.enc.encode([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                          (":path", "/echo"), (":authority", "x"), ("sec-websocket-version", "13")])
    c.send(frame(1, 0x4, 1, block))
    assert c.read(5, until=lambda: 1 in c.headers)
    assert c.headers[1][":status"] == "200"
    c.send(frame(0, 0, 1, ws_frame(0x1, b"still here")))
    assert c.read(5, until=lambda: c.data.get(1, b"").endswith(b"still here"))
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    echoed = len(c.data[1])
    assert c.read(10, until=lambda: parse_frame(c.data[1][echoed:]) is not None)
    fin, opcode, payload, rest = parse_frame(c.data[1][echoed:])
    assert opcode == 0x8 and payload[:2] == close_payload(1001), payload
    assert c.goaway is not None and c.goaway[0] == 0   # NO_ERROR
    c.send(frame(0, 0x1, 1, ws_frame(0x8, close_payload(1001))))   # the close answered, and END_STREAM
    assert c.read(10, until=lambda: 1 in c.ended or 1 in c.resets)
    c.read(10)
    assert c.closed
    assert time.monotonic() - start < 10
    assert srv.proc.wait(20) == 0
