"""Fixture: ASGI requests that run past --timeout, and a WebSocket that
stays open longer than it (tests/integration/test_timeout.py)."""
import asyncio
import sys


def say(text):
    print("asgi_timeout: " + text, file=sys.stderr, flush=True)


async def respond(send, body, status=200):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": msg.get("text") or ""})
    path = scope["path"]
    if path == "/sleep":
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            say("CancelledError in /sleep: %s" % (exc.args[0] if exc.args else ""))
            raise
        await respond(send, b"slept")
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first chunk\n", "more_body": True})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            say("CancelledError in /stream")
            raise
    else:
        await respond(send, b"quick")
