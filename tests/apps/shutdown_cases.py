"""Fixture apps that make startup or shutdown wait (issue 10, item 18).

- swallows_cancel: lifespan startup starts a task that ignores cancellation.
- shutdown_hangs: never answers lifespan.shutdown (and ignores cancellation).
- startup_hangs: never answers lifespan.startup.
- flask_startup_hangs: a trestle.flask startup hook that never finishes.
- startup_waits: lifespan startup waits (up to 30 s) until the file named by
  STARTUP_FLAG exists.
"""
import asyncio
import os
import sys
import time

BACKGROUND = set()


async def _forever_ignoring_cancel(name):
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print("shutdown_cases: %s swallowed a CancelledError" % name, file=sys.stderr, flush=True)


async def _ok(send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def swallows_cancel(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                task = asyncio.get_running_loop().create_task(_forever_ignoring_cancel("background task"))
                BACKGROUND.add(task)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await _ok(send)


async def shutdown_hangs(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        print("shutdown_cases: lifespan shutdown received; never answering", file=sys.stderr, flush=True)
        await _forever_ignoring_cancel("lifespan shutdown")
    if scope["path"] == "/hang":
        await asyncio.Event().wait()   # keeps the connection in flight through the drain
    await _ok(send)


async def startup_waits(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        print("shutdown_cases: lifespan startup waiting", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(os.environ.get("STARTUP_FLAG", "/nonexistent")) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await _ok(send)


async def startup_hangs(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        print("shutdown_cases: lifespan startup received; never answering", file=sys.stderr, flush=True)
        await asyncio.Event().wait()
    await _ok(send)


def _flask_app():
    from flask import Flask

    import trestle.flask

    app = Flask(__name__)

    @trestle.flask.startup
    async def never_ready():
        print("shutdown_cases: flask startup hook waiting for ever", file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    @app.route("/")
    def index():
        return "never served"

    return app


def flask_startup_hangs():
    return _flask_app()
