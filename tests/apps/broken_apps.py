"""Fixture for tests/integration/test_broken_apps.py: apps that break the rules.

`app` is WSGI, one broken behaviour per path; `asgi_app` is ASGI (serve it as
`broken_apps:app /a=broken_apps:asgi_app`). Every response iterable records its
close() and any iteration after it; GET /a/state returns the record (from the
loop, so it answers while every pool thread is blocked).

Every wait in here is bounded in time so a server bug cannot wedge a test.
"""
import asyncio
import json
import os
import threading
import time

lock = threading.Lock()
RECORDS = {}       # name -> {"nexts", "closes", "nexts_after_close"}
LEAK = []          # grown by /leak and never freed
BLOCKED = []       # one entry per request that entered /block
released = threading.Event()


class Recorded:
    """A response iterable. `items` are yielded in turn; an exception instance among them is
    raised instead. It records close() calls and any __next__ after close(), and, unlike a
    well-behaved iterable, would go on yielding if asked after close() or after its end."""

    def __init__(self, name, items, delay=0.0):
        self.name, self.items, self.delay, self.pos = name, items, delay, 0
        with lock:
            RECORDS[name] = {"nexts": 0, "closes": 0, "nexts_after_close": 0}
        self.rec = RECORDS[name]

    def __iter__(self):
        return self

    def __next__(self):
        with lock:
            self.rec["nexts"] += 1
            if self.rec["closes"]:
                self.rec["nexts_after_close"] += 1
        if self.delay:
            time.sleep(self.delay)
        if self.pos >= len(self.items):
            if self.rec["closes"]:
                return b"yielded after close"
            raise StopIteration
        item = self.items[self.pos]
        self.pos += 1
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        with lock:
            self.rec["closes"] += 1


def stubborn_generator(name):
    """A generator that yields again when it is closed: its close() raises RuntimeError
    ('generator ignored GeneratorExit')."""
    with lock:
        RECORDS[name] = {"nexts": 0, "closes": 0, "nexts_after_close": 0}
    try:
        for _ in range(2000):
            time.sleep(0.005)
            yield b"x" * 1024
    except GeneratorExit:
        with lock:
            RECORDS[name]["closes"] += 1
        yield b"yielded after close"


BAD_BODY_ITEMS = {"str": "text", "int": 42, "none": None}

BAD_STATUS = {
    "no-code": "OK",
    "long-code": "2000 OK",
    "low-code": "099 Too Low",
    "no-space": "200OK",
    "letters": "2x0 OK",
    "bytes": b"200 OK",
    "int": 200,
    "crlf": "200 OK\r\nX-Injected: 1",
    "empty": "",
}

BAD_HEADERS = {
    "dict": {"X-A": "1"},
    "str": "X-A: 1",
    "list-of-lists": [["X-A", "1"]],
    "one-item": [("X-A",)],
    "three-items": [("X-A", "1", "2")],
    "bytes-name": [(b"X-A", "1")],
    "bytes-value": [("X-A", b"1")],
    "int-value": [("X-A", 1)],
    "none-value": [("X-A", None)],
    "non-latin1": [("X-A", "\u20ac")],
    "space-in-name": [("X A", "1")],
    "empty-name": [("", "1")],
    "crlf-value": [("X-A", "1\r\nX-Injected: 1")],
    "lf-value": [("X-A", "1\nX-Injected: 1")],
    "nul-value": [("X-A", "1\x00")],
    "bad-content-length": [("Content-Length", "ten")],
}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    parts = path.strip("/").split("/")
    if path == "/ok":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if parts[0] == "raise-first":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Recorded(path, [ValueError("raised for the first item")])
    if parts[0] == "yield" and len(parts) == 3:
        # /yield/<str|int|none>/<first|later>
        bad = BAD_BODY_ITEMS[parts[1]]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Recorded(path, [bad] if parts[2] == "first" else [b"good part\n", bad, b"never sent"])
    if path == "/start-twice":
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("201 Created", [("Content-Type", "text/plain")])   # raises
        return Recorded(path, [b"not reached"])
    if path == "/no-start-empty":
        return Recorded(path, [])
    if path == "/return-none":
        return None
    if path == "/return-int":
        return 42
    if path == "/yields-after-close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Recorded(path, [b"x" * 1024] * 2000, delay=0.005)
    if path == "/yields-after-end":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Recorded(path, [b"one ", b"two"])
    if path == "/stubborn-generator":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stubborn_generator(path)
    if path == "/close-raises":
        class CloseRaises(Recorded):
            def close(self):
                super().close()
                raise RuntimeError("close() failed")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return CloseRaises(path, [b"body"])
    if parts[0] == "status":
        start_response(BAD_STATUS[parts[1]], [("Content-Type", "text/plain")])
        return Recorded(path, [b"not reached"])
    if parts[0] == "headers":
        start_response("200 OK", BAD_HEADERS[parts[1]])
        return Recorded(path, [b"not reached"])
    if path == "/block":
        # Holds a pool thread until /a/release (bounded to 30 s).
        with lock:
            BLOCKED.append(1)
        released.wait(30)
        start_response("200 OK", [("Content-Length", "7")])
        return [b"blocked"]
    if path == "/leak":
        LEAK.append(bytearray(100 * 1024))
        body = str(len(LEAK)).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/exit":
        os._exit(3)
    if path == "/segfault":
        import ctypes
        ctypes.string_at(0)
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


# --- ASGI ------------------------------------------------------------------------------------------

HANGS = []


async def _respond(send, status, body):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


START = {"type": "http.response.start", "status": 200}

BAD_START = {
    "not-a-dict": ["http.response.start", 200],
    "no-type": {"status": 200},
    "type-not-str": {"type": b"http.response.start", "status": 200},
    "no-status": {"type": "http.response.start"},
    "status-str": dict(START, status="200"),
    "status-low": dict(START, status=99),
    "status-high": dict(START, status=1000),
    "headers-int": dict(START, headers=5),
    "header-one-item": dict(START, headers=[(b"x-a",)]),
    "header-str": dict(START, headers=[("x-a", "1")]),
    "header-space-in-name": dict(START, headers=[(b"x a", b"1")]),
    "header-crlf": dict(START, headers=[(b"x-a", b"1\r\nx-injected: 1")]),
    "bad-content-length": dict(START, headers=[(b"content-length", b"ten")]),
}

BAD_BODY = {
    "str": {"type": "http.response.body", "body": "text"},
    "int": {"type": "http.response.body", "body": 42},
}


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"][len(scope["root_path"]):]
    if path == "/ok":
        return await _respond(send, 200, b"ok")
    if path == "/state":
        with lock:
            snap = {"records": json.loads(json.dumps(RECORDS)), "hangs": list(HANGS), "blocked": len(BLOCKED)}
        snap["live_tasks"] = sum(1 for t in asyncio.all_tasks()
                                 if t.get_name() == "trestle-asgi" and not t.done())
        return await _respond(send, 200, json.dumps(snap).encode())
    if path == "/release":
        released.set()
        return await _respond(send, 200, b"released")
    if path.startswith("/bad-start/"):
        await send(BAD_START[path.rsplit("/", 1)[1]])   # raises; the app lets it propagate
        return await _respond(send, 200, b"not reached")
    if path.startswith("/bad-body/"):
        await send(START)
        await send(BAD_BODY[path.rsplit("/", 1)[1]])    # raises after the start
        return
    if path == "/hang":
        # Never answers within 2 s, and does not listen for the disconnect; then tries to answer.
        rec = {"outcome": None}
        HANGS.append(rec)
        await asyncio.sleep(2)
        try:
            await _respond(send, 200, b"too late")
            rec["outcome"] = "sent"
        except OSError as exc:
            rec["outcome"] = "%s: %s" % (type(exc).__name__, exc)
        return
    await _respond(send, 404, b"")


async def lifespan_shutdown_raises(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                raise RuntimeError("shutdown blew up")
    await _respond(send, 200, b"ok")
