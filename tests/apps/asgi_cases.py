"""Raw ASGI 3 fixture apps for tests/integration/test_asgi.py.

Every request that carries `?rid=NAME` is recorded: the scope, every message the
app receives and sends (in order), every exception a send()/receive() raised and
whether the app finished. Tests read a record back with GET /__record?rid=NAME
(that endpoint runs on the same loop, so it answers even while an app is
suspended on backpressure or waiting on receive()).

Bodies longer than 512 bytes are recorded as {"len": N, "sha256": HEX} so large
transfers do not bloat the record. Every wait inside an app is bounded in time
so a misbehaving server cannot wedge the loop forever.
"""
import asyncio
import hashlib
import json
import random
import sys
import threading
import time
from urllib.parse import parse_qs

RECORDS = {}

MB = 1024 * 1024


def pattern_bytes(size, seed=1234):
    """Deterministic pseudo-random bytes; the tests compute the same."""
    return random.Random(seed).randbytes(size)


_DOWNLOAD_CACHE = {}


def download_data(size):
    if size not in _DOWNLOAD_CACHE:
        _DOWNLOAD_CACHE.clear()
        _DOWNLOAD_CACHE[size] = pattern_bytes(size)
    return _DOWNLOAD_CACHE[size]


# --- recording ---------------------------------------------------------------------------------

def snap(value):
    """A JSON-able copy of an ASGI message value."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        if len(b) <= 512:
            return b.decode("latin-1")
        return {"len": len(b), "sha256": hashlib.sha256(b).hexdigest()}
    if isinstance(value, dict):
        return {str(k): snap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [snap(v) for v in value]
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return repr(value)


def scope_snapshot(scope):
    out = {}
    for k, v in scope.items():
        if k == "state":
            out["state"] = {str(sk): snap(sv) for sk, sv in v.items()}
        elif k in ("headers",):
            out[k] = [[n.decode("latin-1"), val.decode("latin-1")] for n, val in v]
        else:
            out[k] = snap(v)
    out["_types"] = {k: type(v).__name__ for k, v in scope.items()}
    if isinstance(scope.get("headers"), list) and scope["headers"]:
        out["_header_item_type"] = type(scope["headers"][0]).__name__
        out["_header_part_types"] = sorted({type(p).__name__ for item in scope["headers"] for p in item})
    return out


class Record:
    def __init__(self, rid, scope):
        self.rid = rid
        self.data = {"rid": rid, "scope": scope_snapshot(scope), "events": [], "done": False,
                     "outcome": None, "sent_bytes": 0, "received_bytes": 0, "marks": []}
        if rid is not None:
            RECORDS[rid] = self.data

    def event(self, **kw):
        self.data["events"].append(kw)

    def mark(self, name, **kw):
        self.data["events"].append(dict(ev="mark", name=name, **kw))

    def wrap(self, receive, send):
        async def rec_receive():
            try:
                msg = await receive()
            except BaseException as exc:  # recorded, then propagated
                self.event(ev="recv-error", exc=type(exc).__name__, text=str(exc))
                raise
            self.event(ev="recv", msg=snap(msg), types={k: type(v).__name__ for k, v in msg.items()})
            body = msg.get("body")
            if isinstance(body, (bytes, bytearray)):
                self.data["received_bytes"] += len(body)
            return msg

        async def rec_send(message):
            self.event(ev="send", msg=snap(message))
            try:
                result = await send(message)
            except BaseException as exc:
                self.event(ev="send-error", exc=type(exc).__name__, text=str(exc))
                raise
            body = message.get("body") if isinstance(message, dict) else None
            if isinstance(body, (bytes, bytearray)):
                self.data["sent_bytes"] += len(body)
            return result

        return rec_receive, rec_send


# --- small helpers used by the handlers ----------------------------------------------------------

def qs(scope):
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True).items()}


async def respond(send, status, body, content_type=b"text/plain", extra=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())] + list(extra)})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send, obj, status=200):
    await respond(send, status, json.dumps(obj).encode(), b"application/json")


async def read_body(receive, limit_s=10.0):
    chunks = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise OSError("client disconnected while the body was read")
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body", False):
            return b"".join(chunks)
    raise TimeoutError("body not complete in time")


# --- handlers: (scope, receive, send, rec, q) -------------------------------------------------------

HANDLERS = {}


def route(path):
    def deco(fn):
        HANDLERS[path] = fn
        return fn
    return deco


@route("/scope")
async def h_scope(scope, receive, send, rec, q):
    await read_body(receive)
    await respond_json(send, scope_snapshot(scope))


@route("/hello")
async def h_hello(scope, receive, send, rec, q):
    await respond(send, 200, b"Hello, ASGI!")


@route("/loop")
async def h_loop(scope, receive, send, rec, q):
    import trestle
    loop = asyncio.get_running_loop()
    try:
        same = trestle.loop() is loop
    except Exception as exc:  # reported in the answer
        same = "error: %r" % (exc,)
    cls = type(loop)
    await respond_json(send, {"loop_class": cls.__module__ + "." + cls.__qualname__, "trestle_loop_is_running_loop": same,
                              "thread": threading.current_thread().name})


@route("/executor")
async def h_executor(scope, receive, send, rec, q):
    loop = asyncio.get_running_loop()
    here = threading.current_thread()
    via_executor = await loop.run_in_executor(None, threading.current_thread)
    via_to_thread = await asyncio.to_thread(lambda: threading.current_thread().name)
    executor_ident = await loop.run_in_executor(None, threading.get_ident)
    import trestle
    loop_from_pool = await loop.run_in_executor(None, lambda: trestle.loop() is loop)
    await respond_json(send, {"loop_thread": here.name, "loop_ident": here.ident,
                              "executor_thread": via_executor.name, "executor_class": type(via_executor).__name__,
                              "executor_ident": executor_ident, "to_thread": via_to_thread,
                              "trestle_loop_from_pool_thread": loop_from_pool})


@route("/echo")
async def h_echo(scope, receive, send, rec, q):
    """Streams every received chunk straight back (chunked response)."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = await receive()
        if msg["type"] != "http.request":
            return
        if msg.get("body"):
            await send({"type": "http.response.body", "body": msg["body"], "more_body": True})
        if not msg.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@route("/upload")
async def h_upload(scope, receive, send, rec, q):
    """Hashes the body as it streams in; never holds it whole."""
    h = hashlib.sha256()
    size = messages = max_chunk = 0
    more_flags = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = await receive()
        if msg["type"] != "http.request":
            return
        body = msg.get("body", b"")
        h.update(body)
        size += len(body)
        messages += 1
        max_chunk = max(max_chunk, len(body))
        more_flags.append(bool(msg.get("more_body", False)))
        if not msg.get("more_body", False):
            break
    await respond_json(send, {"size": size, "sha256": h.hexdigest(), "messages": messages, "max_chunk": max_chunk,
                              "all_but_last_more": all(more_flags[:-1]), "last_more": more_flags[-1]})


@route("/download")
async def h_download(scope, receive, send, rec, q):
    """`size` bytes of pattern_bytes(size) in `chunk`-byte messages (chunked response)."""
    size = int(q.get("size", 10 * MB))
    chunk = int(q.get("chunk", 64 * 1024))
    data = download_data(size)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
    view = memoryview(data)
    for off in range(0, size, chunk):
        await send({"type": "http.response.body", "body": bytes(view[off:off + chunk]), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@route("/download-quiet")
async def h_download_quiet(scope, receive, send, rec, q):
    """Like /download but records only byte counts (no per-message events)."""
    size = int(q.get("size", 10 * MB))
    chunk = int(q.get("chunk", 64 * 1024))
    data = download_data(size)
    raw_send = rec.raw_send
    await raw_send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
    view = memoryview(data)
    for off in range(0, size, chunk):
        piece = bytes(view[off:off + chunk])
        await raw_send({"type": "http.response.body", "body": piece, "more_body": True})
        rec.data["sent_bytes"] += len(piece)
    await raw_send({"type": "http.response.body", "body": b""})
    rec.mark("download-complete")


@route("/slow")
async def h_slow(scope, receive, send, rec, q):
    """A chunk every `interval` s, up to `n` chunks; stops on the OSError a gone client causes."""
    n = int(q.get("n", 400))
    interval = float(q.get("interval", 0.02))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    try:
        for i in range(n):
            await send({"type": "http.response.body", "body": b"tick %d\n" % i, "more_body": True})
            await asyncio.sleep(interval)
        await send({"type": "http.response.body", "body": b""})
        rec.mark("completed")
    except OSError as exc:
        rec.mark("caught", exc=type(exc).__name__, text=str(exc))
        msg = await asyncio.wait_for(receive(), 5)
        rec.mark("after-error-receive", type=msg["type"])


@route("/disconnect-mid-body")
async def h_disconnect_mid_body(scope, receive, send, rec, q):
    """Receives until http.disconnect (the client goes away half-way through the body)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            rec.mark("saw-disconnect")
            return
        if not msg.get("more_body", False):
            rec.mark("body-complete")
            await respond(send, 200, b"whole body")
            return


@route("/disconnect-after-body")
async def h_disconnect_after_body(scope, receive, send, rec, q):
    """Reads the whole body, then waits on receive() with no response sent: the next
    message must be http.disconnect, and only once the client is gone."""
    await read_body(receive)
    task = asyncio.ensure_future(receive())
    done, _ = await asyncio.wait({task}, timeout=0.3)
    rec.mark("pending-after-0.3s", pending=not done)
    done, _ = await asyncio.wait({task}, timeout=10)
    if not done:
        rec.mark("no-disconnect-in-10s")
        task.cancel()
        return
    rec.mark("receive-returned", type=task.result()["type"])


@route("/disconnect-after-response")
async def h_disconnect_after_response(scope, receive, send, rec, q):
    """receive() after the body blocks while the response is incomplete and returns
    http.disconnect once the response is complete (no cancellation involved)."""
    await read_body(receive)
    task = asyncio.ensure_future(receive())
    done, _ = await asyncio.wait({task}, timeout=0.3)
    rec.mark("pending-before-response", pending=not done)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"part1;", "more_body": True})
    await asyncio.sleep(0)
    rec.mark("pending-mid-response", pending=not task.done())
    await send({"type": "http.response.body", "body": b"part2"})
    done, _ = await asyncio.wait({task}, timeout=5)
    rec.mark("after-response", done=bool(done), type=task.result()["type"] if done else None)
    if not done:
        task.cancel()
    msg = await asyncio.wait_for(receive(), 5)
    rec.mark("receive-again", type=msg["type"])


@route("/receive-cancel")
async def h_receive_cancel(scope, receive, send, rec, q):
    """A receive() cancelled by a timeout, then receive() again (Starlette / anyio do this)."""
    await read_body(receive)
    try:
        await asyncio.wait_for(receive(), 0.2)
        rec.mark("first-receive-returned")
    except asyncio.TimeoutError:
        rec.mark("first-receive-timed-out")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
    try:
        msg = await asyncio.wait_for(receive(), 5)
        rec.mark("second-receive", type=msg["type"])
    except BaseException as exc:
        rec.mark("second-receive-error", exc=type(exc).__name__, text=str(exc))


@route("/receive-cancel-twice")
async def h_receive_cancel_twice(scope, receive, send, rec, q):
    """Two cancelled receive() calls before the response (Starlette's request.is_disconnected()
    does exactly this: it calls receive() in an already-cancelled scope), then a normal answer."""
    await read_body(receive)
    for i in range(2):
        try:
            msg = await asyncio.wait_for(receive(), 0.1)
            rec.mark("receive-returned", attempt=i, type=msg["type"])
        except asyncio.TimeoutError:
            rec.mark("receive-timed-out", attempt=i)
        except RuntimeError as exc:
            rec.mark("receive-error", attempt=i, exc=type(exc).__name__, text=str(exc))
    await respond(send, 200, b"ok")


# error rules

@route("/raise-before-start")
async def h_raise_before_start(scope, receive, send, rec, q):
    raise ValueError("boom-before-start")


@route("/raise-after-start")
async def h_raise_after_start(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    raise ValueError("boom-after-start")


@route("/raise-after-body")
async def h_raise_after_body(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"partial-", "more_body": True})
    raise ValueError("boom-after-body")


@route("/raise-after-body-cl")
async def h_raise_after_body_cl(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
    await send({"type": "http.response.body", "body": b"0123456789", "more_body": True})
    raise ValueError("boom-after-body-cl")


@route("/return-no-response")
async def h_return_no_response(scope, receive, send, rec, q):
    return None


@route("/return-after-start")
async def h_return_after_start(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})


@route("/return-incomplete")
async def h_return_incomplete(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"half-", "more_body": True})


async def _try_send(rec, send, message, label):
    try:
        await send(message)
    except RuntimeError as exc:
        rec.mark("caught", label=label, exc=type(exc).__name__, text=str(exc))
        return False
    rec.mark("no-error", label=label)
    return True


@route("/order-body-first")
async def h_order_body_first(scope, receive, send, rec, q):
    await _try_send(rec, send, {"type": "http.response.body", "body": b"too early"}, "body-before-start")
    await respond(send, 200, b"recovered")


@route("/order-unknown-first")
async def h_order_unknown_first(scope, receive, send, rec, q):
    await _try_send(rec, send, {"type": "http.response.bogus"}, "unknown-before-start")
    await respond(send, 200, b"recovered")


@route("/order-start-twice")
async def h_order_start_twice(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-first", b"1")]})
    await _try_send(rec, send, {"type": "http.response.start", "status": 202, "headers": [(b"x-second", b"1")]},
                    "second-start")
    await send({"type": "http.response.body", "body": b"after second start"})


@route("/order-after-complete")
async def h_order_after_complete(scope, receive, send, rec, q):
    await respond(send, 200, b"complete")
    await _try_send(rec, send, {"type": "http.response.body", "body": b"extra"}, "body-after-complete")
    await _try_send(rec, send, {"type": "http.response.start", "status": 200, "headers": []}, "start-after-complete")


# framing and headers

@route("/single")
async def h_single(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"one shot body", "more_body": False})


@route("/streamed")
async def h_streamed(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for part in (b"alpha,", b"beta,", b"gamma"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@route("/status")
async def h_status(scope, receive, send, rec, q):
    code = int(q.get("code", 200))
    await send({"type": "http.response.start", "status": code, "headers": [(b"x-code", str(code).encode())]})
    await send({"type": "http.response.body", "body": b"" if code in (204, 304) else b"status %d" % code})


@route("/headers-iter")
async def h_headers_iter(scope, receive, send, rec, q):
    """Headers as a generator of lists, duplicates and order preserved."""
    def gen():
        yield [b"x-one", b"1"]
        yield [b"Set-Cookie", b"a=1"]
        yield [b"set-cookie", b"b=2"]
        yield (b"x-two", bytearray(b"2"))
    await send({"type": "http.response.start", "status": 200, "headers": gen()})
    await send({"type": "http.response.body", "body": b"headers"})


@route("/body-omitted")
async def h_body_omitted(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body"})


@route("/hop")
async def h_hop(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"x-before", b"1"), (b"connection", b"keep-alive"), (b"keep-alive", b"timeout=99"),
        (b"transfer-encoding", b"chunked"), (b"upgrade", b"h2c"), (b"te", b"trailers"), (b"trailer", b"x-t"),
        (b"proxy-authenticate", b"Basic"), (b"x-after", b"2")]})
    await send({"type": "http.response.body", "body": b"hop body"})


@route("/conn-close")
async def h_conn_close(scope, receive, send, rec, q):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"connection", b"close"), (b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"bye"})


async def _record_endpoint(scope, receive, send):
    rid = qs(scope).get("rid")
    if rid not in RECORDS:
        await respond(send, 404, b"no such record")
        return
    await respond_json(send, RECORDS[rid])


async def _reset_endpoint(scope, receive, send):
    RECORDS.clear()
    await respond(send, 200, b"reset")


async def app(scope, receive, send):
    if scope["type"] != "http":
        # No lifespan support here: returning at once says so (auto mode).
        return
    if scope["path"] == "/__record":
        return await _record_endpoint(scope, receive, send)
    if scope["path"] == "/__reset":
        return await _reset_endpoint(scope, receive, send)
    handler = HANDLERS.get(scope["path"])
    if handler is None and scope["path"].startswith("/scope/"):
        handler = h_scope
    q = qs(scope)
    rec = Record(q.get("rid"), scope)
    rec.raw_send = send
    if handler is None:
        await respond(send, 404, b"not found: " + scope["path"].encode("utf-8", "replace"))
        rec.data["done"] = True
        return
    r_receive, r_send = rec.wrap(receive, send)
    try:
        await handler(scope, r_receive, r_send, rec, q)
        rec.data["outcome"] = "returned"
    except BaseException as exc:
        rec.data["outcome"] = "raised %s: %s" % (type(exc).__name__, exc)
        raise
    finally:
        rec.data["done"] = True


# --- interface detection variants ------------------------------------------------------------------

class Asgi3Object:
    """An instance whose __call__ is a coroutine function: ASGI 3."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        await respond(send, 200, b"asgi3 object")


asgi3_object = Asgi3Object()


class Asgi2App:
    """ASGI 2: the class is called with the scope, the instance with (receive, send)."""

    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        if self.scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await asyncio.wait_for(receive(), 10)
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        out = json.dumps({"kind": "asgi2", "path": self.scope["path"], "body": body.decode("latin-1"),
                          "asgi": self.scope["asgi"]}).encode()
        await respond(send, 200, out, b"application/json")


def wsgi_app(environ, start_response):
    """A plain function: detected as WSGI."""
    body = ("wsgi %s" % threading.current_thread().name).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def plain_def_asgi(scope, receive, send):
    """A plain def returning a coroutine: WSGI by shape, ASGI only with --interface asgi."""
    async def run():
        if scope["type"] != "http":
            return
        await respond(send, 200, b"forced asgi")
    return run()


# --- lifespan variants -----------------------------------------------------------------------------

LIFESPAN_LOG = []
SHARED_LIST = []


async def lifespan_state_app(scope, receive, send):
    """Sets state in startup; requests read it (and try to mutate their copy)."""
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            LIFESPAN_LOG.append(msg["type"])
            if msg["type"] == "lifespan.startup":
                assert "state" in scope
                scope["state"]["token"] = "from-startup"
                scope["state"]["shared_list"] = SHARED_LIST
                scope["state"]["startup_thread"] = threading.current_thread().name
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                print("lifespan_state_app: shutdown ran after %d startup(s)" % LIFESPAN_LOG.count("lifespan.startup"),
                      file=sys.stderr, flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    state = scope.get("state")
    out = {"has_state": "state" in scope, "lifespan_log": list(LIFESPAN_LOG)}
    if state is not None:
        out["token"] = state.get("token")
        out["shared_list_before"] = list(state.get("shared_list", []))
        out["added_before"] = state.get("added")
        # A shallow copy: a new key stays in this request; the shared list is shared.
        state["added"] = scope["path"]
        state["shared_list"].append(scope["path"])
        out["startup_thread"] = state.get("startup_thread")
    await respond(send, 200, json.dumps(out).encode(), b"application/json")


async def lifespan_failed_app(scope, receive, send):
    if scope["type"] == "lifespan":
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed", "message": "database unreachable at db:5432"})
            return
    if scope["type"] == "http":
        await respond(send, 200, b"served without lifespan")


async def lifespan_failed_surrogate_app(scope, receive, send):
    """A failure message that UTF-8 cannot encode (a lone surrogate)."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "bad \ud800 byte"})


async def lifespan_raise_app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("lifespan is not for me")
    await respond(send, 200, json.dumps({"has_state": "state" in scope}).encode(), b"application/json")


async def lifespan_return_app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    await respond(send, 200, json.dumps({"has_state": "state" in scope}).encode(), b"application/json")


async def lifespan_shutdown_fails_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.failed", "message": "could not flush the cache"})
                return
    await respond(send, 200, b"ok")
