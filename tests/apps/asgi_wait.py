"""Fixture: an ASGI app that waits for http.disconnect and records it."""
import json

seen = []


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/seen":
        body = json.dumps(seen).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    msg = await receive()
    if msg["type"] == "http.request":
        # Long-poll: nothing to say until the client leaves.
        msg = await receive()
    seen.append(msg["type"])
