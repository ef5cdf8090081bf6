"""Apps that hold a request until the test lets it go, for --limit-concurrency.

GET /hold logs "holding" and waits (up to 30 s) until the file named by the
HOLD_FLAG environment variable exists; any other path answers at once.
`wsgi` blocks a pool thread; `asgi` waits on the loop.
"""
import asyncio
import os
import sys
import time

FLAG = os.environ.get("HOLD_FLAG", "/nonexistent")


def _log(what):
    print(what, file=sys.stderr, flush=True)


def wsgi(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        _log("holding")
        deadline = time.monotonic() + 30
        while not os.path.exists(FLAG) and time.monotonic() < deadline:
            time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        _log("ws holding")
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if scope["path"] == "/hold":
        _log("holding")
        deadline = time.monotonic() + 30
        while not os.path.exists(FLAG) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
