"""Fixture: apps that start their response before they read the request body
(issue 10 item 4). Each sends the head and the chunk b"early", then reads the
body and sends it back as the last chunk."""


def wsgi_app(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"early")
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n)
    return [body]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"early", "more_body": True})
    body = b""
    while True:
        msg = await receive()
        if msg["type"] != "http.request":
            return
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.body", "body": body})
