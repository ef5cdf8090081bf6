"""Fixture: reports which loop runs the app and where the executor runs."""
import asyncio
import json
import threading

import trestle


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    loop = asyncio.get_running_loop()
    worker = await loop.run_in_executor(None, lambda: threading.current_thread().name)
    info = {
        "loop_type": type(loop).__module__ + "." + type(loop).__name__,
        "trestle_loop_is_running_loop": trestle.loop() is loop,
        "executor_thread": worker,
        "loop_thread": threading.current_thread().name,
    }
    body = json.dumps(info).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
