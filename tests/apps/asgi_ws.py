"""Fixture: a raw ASGI WebSocket echo with subprotocol choice and close codes; /scope first
sends what the scope says of the protocol."""
import json

disconnects = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        body = json.dumps({"disconnects": disconnects}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    path = scope["path"]
    if path == "/deny":
        await send({"type": "websocket.close"})
        return
    if path == "/deny-http":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"no entry"})
        return
    sub = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": sub, "headers": [(b"x-extra", b"yes")]})
    if path == "/scope":
        await send({"type": "websocket.send", "text": json.dumps({
            "http_version": scope["http_version"], "scheme": scope["scheme"], "path": scope["path"],
            "query_string": scope["query_string"].decode(), "subprotocols": scope["subprotocols"]})})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            disconnects.append(msg["code"])
            del disconnects[:-100]   # bounded: the leak tests open hundreds
            return
        if msg.get("text") == "close-please":
            await send({"type": "websocket.close", "code": 4001, "reason": "asked"})
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})
