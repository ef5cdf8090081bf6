"""Fixture for tests/integration/test_hostile.py: the apps hostile clients attack.

Serve it as `hostile_app:wsgi /a=hostile_app:asgi`: one WSGI and one ASGI app
in one process, sharing the module's state, so a test can read what either app
saw (GET /state or /a/state) and release a blocked pool thread from the loop
(GET /a/release).

Every wait in here is bounded in time so a server bug cannot wedge a test.
"""
import asyncio
import json
import threading
import time
from urllib.parse import parse_qs

lock = threading.Lock()
state = {"closed": [], "uploads": [], "streams": [], "hangs": [], "hits": 0, "small": 0}
released = threading.Event()

CHUNK = b"z" * 65536


def _q(raw):
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _snapshot():
    with lock:
        return json.loads(json.dumps(state))


class Closing:
    """A response iterable that records close() and how far iteration got."""

    def __init__(self, name, record, chunks):
        self.name, self.record, self.chunks = name, record, chunks

    def __iter__(self):
        for c in self.chunks:
            with lock:
                self.record["produced"] += len(c)
            yield c

    def close(self):
        with lock:
            state["closed"].append(self.name)


# --- WSGI ------------------------------------------------------------------------------------------

def _json(start_response, obj):
    body = json.dumps(obj).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    q = _q(environ.get("QUERY_STRING", ""))
    with lock:
        state["hits"] += 1
    if path == "/ok":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/state":
        return _json(start_response, _snapshot())
    if path == "/small":
        with lock:
            state["small"] += 1
        body = b"s" * int(q.get("n", "100"))
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/upload":
        # Reads the body as it comes; a client that stalls or vanishes makes
        # wsgi.input raise, which is recorded, and the app still answers.
        rec = {"name": q.get("name", ""), "bytes": 0, "error": None, "done": False}
        with lock:
            state["uploads"].append(rec)
        inp = environ["wsgi.input"]
        try:
            while True:
                data = inp.read(65536)
                if not data:
                    break
                with lock:
                    rec["bytes"] += len(data)
        except Exception as exc:  # recorded: that is what the test looks at
            with lock:
                rec["error"] = "%s: %s" % (type(exc).__name__, exc)
        with lock:
            rec["done"] = True
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("upload-" + rec["name"], {"produced": 0}, [b"read %d" % rec["bytes"]])
    if path == "/stream":
        # `size` bytes in 64 KiB chunks, counted as produced, close() recorded.
        rec = {"name": q.get("name", ""), "produced": 0}
        with lock:
            state["streams"].append(rec)
        n = int(q.get("size", str(64 << 20))) // len(CHUNK)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Closing("stream-" + rec["name"], rec, (CHUNK for _ in range(n)))
    if path == "/block":
        # Holds a pool thread until /a/release (bounded to 30 s).
        with lock:
            state.setdefault("blocked", 0)
            state["blocked"] += 1
        released.wait(30)
        start_response("200 OK", [("Content-Length", "7")])
        return [b"blocked"]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


# --- ASGI ------------------------------------------------------------------------------------------

async def _respond(send, status, body, ctype=b"text/plain"):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _live_request_tasks():
    return sum(1 for t in asyncio.all_tasks() if t.get_name() == "trestle-asgi" and not t.done())


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"][len(scope["root_path"]):]
    q = _q(scope["query_string"].decode("latin-1"))
    if path == "/ok":
        return await _respond(send, 200, b"ok")
    if path == "/state":
        snap = _snapshot()
        snap["live_tasks"] = _live_request_tasks()
        return await _respond(send, 200, json.dumps(snap).encode(), b"application/json")
    if path == "/small":
        with lock:
            state["small"] += 1
        return await _respond(send, 200, b"s" * int(q.get("n", "100")))
    if path == "/release":
        released.set()
        return await _respond(send, 200, b"released")
    if path == "/upload":
        rec = {"name": q.get("name", ""), "bytes": 0, "error": None, "done": False, "asgi": True}
        with lock:
            state["uploads"].append(rec)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                rec["error"] = "http.disconnect"
                break
            rec["bytes"] += len(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        rec["done"] = True
        if rec["error"] is None:
            await _respond(send, 200, b"read %d" % rec["bytes"])
        return
    if path == "/stream":
        rec = {"name": q.get("name", ""), "produced": 0, "error": None, "asgi": True}
        with lock:
            state["streams"].append(rec)
        n = int(q.get("size", str(64 << 20))) // len(CHUNK)
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream")]})
            for _ in range(n):
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
                rec["produced"] += len(CHUNK)
            await send({"type": "http.response.body", "body": b""})
        except OSError as exc:
            rec["error"] = "%s: %s" % (type(exc).__name__, exc)
        with lock:
            state["closed"].append("stream-" + rec["name"])
        return
    if path == "/hang":
        # Never answers within `hold` seconds, then tries to.
        rec = {"name": q.get("name", ""), "outcome": None}
        with lock:
            state["hangs"].append(rec)
        await asyncio.sleep(float(q.get("hold", "2")))
        try:
            await _respond(send, 200, b"too late")
            rec["outcome"] = "sent"
        except OSError as exc:
            rec["outcome"] = "%s: %s" % (type(exc).__name__, exc)
        return
    await _respond(send, 404, b"")
