"""Fixture: the http.response.pathsend extension (serve a file by path)."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    qs = scope["query_string"].decode()
    if scope["path"] == "/extensions":
        body = repr(sorted(scope.get("extensions", {}))).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
    try:
        await send({"type": "http.response.pathsend", "path": qs})
    except OSError:
        # The file is gone: the response cannot be completed.
        raise
