"""Fixture: an ASGI app that calls a Flask async function synchronously on the
loop thread, which must fail with a clear error rather than hang the loop."""
import flask_async_app


async def probe():
    return "the coroutine ran"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    try:
        body = "no error: %s" % flask_async_app.app.ensure_sync(probe)()
    except Exception as exc:  # noqa: B902 - the error is the answer
        body = "%s: %s" % (type(exc).__name__, exc)
    data = body.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
