"""Fixture for tests/integration/test_metrics.py: an ASGI app whose GET
/block?SECONDS blocks the event loop with time.sleep (as a careless view
would), GET /spin?SECONDS keeps it busy computing, and anything else is
answered at once; WebSockets are echoed."""
import time


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    if scope["path"] == "/block":
        time.sleep(min(float(scope["query_string"] or b"1"), 10))
    if scope["path"] == "/spin":
        end = time.monotonic() + min(float(scope["query_string"] or b"1"), 10)
        while time.monotonic() < end:
            pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
