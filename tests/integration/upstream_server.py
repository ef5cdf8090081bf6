"""Upstream servers for the proxy tests.

`Upstream` is a small HTTP/1.1 server on raw sockets, one thread per
connection, so that a test sees exactly the bytes the proxy sent and decides
exactly what goes back (framing, keep-alive, stalls, deaths). It records
every request (raw head, a hash of the body, the first raw body bytes) and
counts connections. Routes, by the path's last segment, so they work under
any prefix mapping:

  .../echo (and anything else)  JSON of what was received
  .../big?n=N&mode=cl|chunked|close   N bytes of `pattern(N)`
  .../slow?s=SECONDS            waits, then echoes
  .../die?mode=cl|chunked       a head and part of a body, then the socket closes
  .../status?code=C             that status; a small body unless 1xx/204/304
  .../hop                       a response full of hop-by-hop fields
  .../interim                   a 103 Early Hints before the 200
  .../bye                       answers, then closes without Connection: close
  .../bad?kind=garbage|clte     an invalid response
  .../bad?kind=te&te=VALUE      a chunked body under Transfer-Encoding: VALUE
  .../switch                    101 (asked or not), "HELLO" in the same write, then echoes raw
                                bytes until end of stream, then "BYE" and close
  .../h2c                       101 to a request with Upgrade: h2c (as an h2c
                                server would), else the echo
  .../trailers?writes=one|many  a chunked body followed by trailer fields
                                (Set-Cookie, Location, a second Content-Type),
                                all in one write or in one write per part

`Dead` accepts connections and closes them at once, counting them.
"""
import hashlib
import json
import random
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

BLOCK = random.Random(7).randbytes(1 << 16)


def pattern(n):
    """The body /big sends, as blocks."""
    full, rest = divmod(n, len(BLOCK))
    for _ in range(full):
        yield BLOCK
    if rest:
        yield BLOCK[:rest]


def pattern_sha256(n):
    h = hashlib.sha256()
    for b in pattern(n):
        h.update(b)
    return h.hexdigest()


class Closed(Exception):
    pass


class Reader:
    """Buffered reads from a socket, keeping up to `keep` raw bytes read."""

    def __init__(self, sock, keep=1 << 20):
        self.sock = sock
        self.buf = b""
        self.raw = bytearray()
        self.keep = keep

    def _fill(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise Closed()
        self.buf += data

    def until(self, delim, limit=1 << 16):
        while delim not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (delim, limit))
            self._fill()
        head, _, self.buf = self.buf.partition(delim)
        self._keep(head + delim)
        return head

    def exact(self, n, sink):
        while n > 0:
            if not self.buf:
                self._fill()
            part, self.buf = self.buf[:n], self.buf[n:]
            self._keep(part)
            sink(part)
            n -= len(part)

    def _keep(self, data):
        room = self.keep - len(self.raw)
        if room > 0:
            self.raw += data[:room]


class Request:
    def __init__(self, conn_id, index):
        self.conn_id = conn_id          # which TCP connection (1, 2, ...)
        self.index = index              # the request's place on that connection (1, 2, ...)
        self.method = self.target = self.version = ""
        self.headers = []
        self.raw_head = b""
        self.raw_body = b""
        self.body_len = 0
        self.body_sha256 = ""
        self.complete = False           # the whole body arrived

    def header(self, name):
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    def count(self, name):
        return sum(1 for k, _ in self.headers if k.lower() == name.lower())

    def as_json(self):
        return {"method": self.method, "target": self.target, "headers": self.headers,
                "body_len": self.body_len, "body_sha256": self.body_sha256, "conn": self.conn_id,
                "index": self.index}


class Upstream:
    def __init__(self, drop_reused=False):
        # drop_reused: a second request on a connection is read and then
        # the connection closes without an answer (a keep-alive race).
        self.drop_reused = drop_reused
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.closed_connections = 0     # ended by the peer (EOF or error)
        self.requests = []
        self.socks = set()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        self.stopped = True
        self.listener.close()
        with self.lock:
            for s in list(self.socks):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def last(self):
        with self.lock:
            return self.requests[-1]

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                cid = self.connections
                self.socks.add(conn)
            threading.Thread(target=self._serve, args=(conn, cid), daemon=True).start()

    def _serve(self, conn, cid):
        conn.settimeout(60)
        reader = Reader(conn)
        index = 0
        try:
            while True:
                index += 1
                req = Request(cid, index)
                reader.raw = bytearray()
                self._read_request(reader, req)
                with self.lock:
                    self.requests.append(req)
                if self.drop_reused and index > 1:
                    return
                if not self._respond(conn, req):
                    return
        except (Closed, OSError, ValueError):
            with self.lock:
                self.closed_connections += 1
        finally:
            with self.lock:
                self.socks.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _read_request(self, reader, req):
        head = reader.until(b"\r\n\r\n")
        req.raw_head = head + b"\r\n\r\n"
        lines = head.decode("latin-1").split("\r\n")
        req.method, req.target, req.version = lines[0].split(" ", 2)
        for line in lines[1:]:
            k, _, v = line.partition(":")
            req.headers.append((k, v.strip()))
        digest = hashlib.sha256()

        def sink(part):
            digest.update(part)
            req.body_len += len(part)
        start = len(reader.raw)
        te = req.header("Transfer-Encoding")
        if te is not None:
            assert te.lower() == "chunked", te
            while True:
                size = int(reader.until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    while reader.until(b"\r\n"):   # trailer fields, then the blank line
                        pass
                    break
                reader.exact(size, sink)
                assert reader.until(b"\r\n") == b""
        elif req.header("Content-Length") is not None:
            reader.exact(int(req.header("Content-Length")), sink)
        req.raw_body = bytes(reader.raw[start:])
        req.body_sha256 = digest.hexdigest()
        req.complete = True

    def _respond(self, conn, req):
        url = urlsplit(req.target)
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        route = url.path.rstrip("/").rsplit("/", 1)[-1]
        return getattr(self, "_r_" + route, self._r_echo)(conn, req, q)

    @staticmethod
    def _send(conn, status, fields, body=b"", reason="OK"):
        head = "HTTP/1.1 %d %s\r\n" % (status, reason)
        head += "".join("%s: %s\r\n" % kv for kv in fields)
        conn.sendall(head.encode("latin-1") + b"\r\n" + body)

    def _r_echo(self, conn, req, q):
        body = json.dumps(req.as_json()).encode()
        self._send(conn, 200, [("Content-Type", "application/json"), ("Content-Length", len(body)),
                               ("Server", "upstream/1.0"), ("Date", "Mon, 01 Jan 2001 00:00:00 GMT")],
                   b"" if req.method == "HEAD" else body)
        return True

    def _r_big(self, conn, req, q):
        n, mode = int(q.get("n", "0")), q.get("mode", "cl")
        fields = [("Content-Type", "application/octet-stream")]
        if mode == "cl":
            fields.append(("Content-Length", n))
        elif mode == "chunked":
            fields.append(("Transfer-Encoding", "chunked"))
        else:
            fields.append(("Connection", "close"))
        self._send(conn, 200, fields)
        if req.method == "HEAD":
            return mode != "close"
        for block in pattern(n):
            conn.sendall(b"%x\r\n%s\r\n" % (len(block), block) if mode == "chunked" else block)
        if mode == "chunked":
            conn.sendall(b"0\r\n\r\n")
        return mode != "close"

    def _r_slow(self, conn, req, q):
        time.sleep(float(q.get("s", "1")))
        return self._r_echo(conn, req, q)

    def _r_die(self, conn, req, q):
        if q.get("mode", "cl") == "chunked":
            self._send(conn, 200, [("Transfer-Encoding", "chunked")], b"400\r\n" + b"x" * 1024 + b"\r\n")
        else:
            self._send(conn, 200, [("Content-Length", 100000)], b"x" * 1000)
        time.sleep(0.05)
        conn.shutdown(socket.SHUT_RDWR)
        return False

    def _r_status(self, conn, req, q):
        code = int(q.get("code", "200"))
        bodiless = code < 200 or code in (204, 304)
        fields = [("X-Status", code)]
        if code == 304:
            fields.append(("Content-Length", 42))   # the length of what a GET would send
        elif not bodiless:
            fields.append(("Content-Length", 2))
        self._send(conn, code, fields, b"" if bodiless or req.method == "HEAD" else b"ok", reason="Whatever")
        return True

    def _r_hop(self, conn, req, q):
        self._send(conn, 200, [("Connection", "keep-alive, X-Internal"), ("X-Internal", "secret"),
                               ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                               ("Trailer", "X-Checksum"), ("Upgrade", "h2c"), ("X-Kept", "yes"),
                               ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Length", 2)], b"ok")
        return True

    def _r_h2c(self, conn, req, q):
        if (req.header("Upgrade") or "").lower() != "h2c":
            return self._r_echo(conn, req, q)
        self._send(conn, 101, [("Connection", "Upgrade"), ("Upgrade", "h2c")], reason="Switching Protocols")
        return False

    def _r_trailers(self, conn, req, q):
        parts = [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
                 b"Trailer: Set-Cookie, Location, Content-Type, X-Checksum\r\n\r\n",
                 b"5\r\nhello\r\n", b"6\r\n world\r\n0\r\n",
                 b"Set-Cookie: evil=1\r\nLocation: http://evil.test/\r\nContent-Type: text/evil\r\n"
                 b"X-Checksum: abc\r\n\r\n"]
        if q.get("writes", "one") == "one":
            conn.sendall(b"".join(parts))
            return True
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for part in parts:
            conn.sendall(part)
            time.sleep(0.05)   # separate reads on the proxy's side, most of the time
        return True

    def _r_interim(self, conn, req, q):
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        return self._r_echo(conn, req, q)

    def _r_bye(self, conn, req, q):
        self._r_echo(conn, req, q)
        return False

    def _r_bad(self, conn, req, q):
        if q.get("kind") == "clte":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        elif q.get("kind") == "te":
            # A chunked body under the Transfer-Encoding value given as ?te=
            te = q.get("te", "chunked").encode("latin-1")
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        else:
            conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        return False

    def _r_switch(self, conn, req, q):
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + (req.header("Upgrade") or "h2c").encode() +
                     b"\r\nConnection: Upgrade\r\nX-Tunnel: yes\r\n\r\nHELLO")
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
        conn.sendall(b"BYE")
        return False


class Dead:
    """Accepts and at once closes every connection (a crashed upstream whose
    port still listens)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()   # a reset

    def stop(self):
        self.listener.close()


def refused_port():
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
