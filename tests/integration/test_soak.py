"""A bounded soak: mixed WSGI, ASGI and WebSocket traffic on one server for
TRESTLE_SOAK_SECONDS (default 15 in the suite; docs/reliability.md has the
long run), with errors injected: app exceptions, malformed requests, clients
that reset mid-request and mid-response.

Asserts that no request is lost (every request sent gets exactly one
response, or the connection closes where the error says it must), and that
RSS, open descriptors and threads come back within bounds afterwards."""
import asyncio
import os
import random
import socket
import struct
import threading
import time

import requests
import websockets

from conftest import poll, read_response, rss_kb

SECONDS = float(os.environ.get("TRESTLE_SOAK_SECONDS", "15"))
WORKERS = 6
MAX_OPS = 200_000          # per worker: a hard bound besides the time


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def threads(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.lost = []

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def fail(self, what):
        with self.lock:
            self.lost.append(what)


def http_worker(srv, tally, deadline, seed):
    rnd = random.Random(seed)
    session = requests.Session()
    for _ in range(MAX_OPS):
        if time.monotonic() > deadline:
            break
        op = rnd.randrange(100)
        try:
            if op < 30:
                body = os.urandom(rnd.randrange(0, 70_000))
                r = session.post(srv.url + "/echo", data=body, timeout=10)
                ok = r.status_code == 200 and r.content == body
            elif op < 50:
                r = session.get(srv.url + "/a/hello", timeout=10)
                ok = r.status_code == 200 and r.text == "Hello, World!"
            elif op < 60:
                r = session.get(srv.url + "/gen", timeout=10)
                ok = r.status_code == 200
            elif op < 70:
                r = session.get(srv.url + "/raise", timeout=10)   # an app exception
                ok = r.status_code == 500
            elif op < 80:
                # A malformed request: exactly one 400, then the close.
                s = socket.create_connection((srv.host, srv.port), timeout=10)
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
                status, _, _, _ = read_response(s)
                ok = status == 400 and s.recv(1) == b""
                s.close()
            elif op < 90:
                # A client that resets mid-request body.
                s = socket.create_connection((srv.host, srv.port), timeout=10)
                s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
                rst_close(s)
                ok = True
            else:
                # A client that resets while a large response streams.
                s = socket.create_connection((srv.host, srv.port), timeout=10)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(b"GET /big-stream HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(1024)
                rst_close(s)
                ok = True
        except (requests.RequestException, OSError, ConnectionError) as e:
            tally.fail("op %d: %r" % (op, e))
            session = requests.Session()
            continue
        tally.add("ops")
        if not ok:
            tally.fail("op %d: wrong answer" % op)


def ws_worker(srv, tally, deadline):
    url = srv.url.replace("http://", "ws://") + "/ws/echo"

    async def run():
        for _ in range(MAX_OPS):
            if time.monotonic() > deadline:
                return
            try:
                async with websockets.connect(url) as ws:
                    for i in range(5):
                        await ws.send("m%d" % i)
                        if await asyncio.wait_for(ws.recv(), 10) != "m%d" % i:
                            tally.fail("websocket: wrong echo")
                tally.add("ws")
            except (OSError, websockets.WebSocketException, asyncio.TimeoutError) as e:
                tally.fail("websocket: %r" % e)
    asyncio.run(run())


def test_mixed_traffic_loses_nothing_and_returns_to_baseline(serve):
    srv = serve("wsgi_cases:app", "/a=asgi_hello:app", "/ws=asgi_ws:app", "--threads", "4",
                "--io-timeout", "2", "--keepalive-timeout", "2")
    # Warm up (imports, caches, pool threads), then take the baseline.
    for _ in range(200):
        requests.get(srv.url + "/a/hello", timeout=10)
        requests.post(srv.url + "/echo", data=b"x" * 1000, timeout=10)
    base_rss, base_fds, base_threads = rss_kb(srv.proc.pid), fds(srv.proc.pid), threads(srv.proc.pid)

    tally = Tally()
    deadline = time.monotonic() + SECONDS
    workers = [threading.Thread(target=http_worker, args=(srv, tally, deadline, i)) for i in range(WORKERS)]
    workers.append(threading.Thread(target=ws_worker, args=(srv, tally, deadline)))
    for t in workers:
        t.start()
    for t in workers:
        t.join(SECONDS + 60)
    assert not any(t.is_alive() for t in workers), "a worker hung"

    assert tally.lost == [], tally.lost[:10]
    assert tally.counts.get("ops", 0) > 50 * SECONDS and tally.counts.get("ws", 0) > 0, tally.counts

    # Everything the soak opened is closed again within the timeouts.
    assert poll(lambda: fds(srv.proc.pid) <= base_fds + 2, timeout=10), (base_fds, fds(srv.proc.pid))
    assert poll(lambda: threads(srv.proc.pid) <= base_threads, timeout=10), (base_threads, threads(srv.proc.pid))
    rss = rss_kb(srv.proc.pid)
    # ASan keeps freed memory in quarantine: RSS means nothing there.
    if not os.environ.get("TRESTLE_SANITIZED"):
        assert rss - base_rss < 40_000, "RSS grew by %d kB" % (rss - base_rss)
    print("soak: %.0f s, %s; RSS %d -> %d kB, fds %d -> %d, threads %d -> %d" % (
        SECONDS, tally.counts, base_rss, rss, base_fds, fds(srv.proc.pid), base_threads, threads(srv.proc.pid)))
    # And the server still answers.
    assert requests.get(srv.url + "/a/hello", timeout=10).text == "Hello, World!"
