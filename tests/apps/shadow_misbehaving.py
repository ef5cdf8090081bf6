"""Shadow-mode fixture: shadows that misbehave. `slow` (ASGI) sleeps
SHADOW_SLEEP seconds (default 2) before it answers like shadow_orders_v1;
`raising` (ASGI) raises on every request; `slow_wsgi` sleeps on a pool
thread."""
import asyncio
import os
import time

SLEEP = float(os.environ.get("SHADOW_SLEEP", "2"))


async def slow(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await asyncio.sleep(SLEEP)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b"ok\n"})


async def raising(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    raise RuntimeError("the shadow broke on purpose")


def slow_wsgi(environ, start_response):
    time.sleep(SLEEP)
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [b"ok\n"]


def normalize_total(value):
    """A normalizer: totals are compared rounded down to tens."""
    if isinstance(value, dict) and "total" in value:
        value["total"] = value["total"] // 10 * 10
    return value
