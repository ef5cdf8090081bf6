"""A Starlette app for tests/integration/test_starlette.py, served natively over ASGI."""
import asyncio
import sys
import threading
import time

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

BACKGROUND = {}
STREAMS = {}
STARTUP = {"count": 0}


async def on_startup():
    STARTUP["count"] += 1
    STARTUP["thread"] = threading.current_thread().name
    app.state.greeting = "set in on_startup"


async def on_shutdown():
    print("starlette_app: on_shutdown ran", file=sys.stderr, flush=True)


async def index(request: Request):
    return PlainTextResponse("Hello from Starlette on trestle")


async def json_route(request: Request):
    if request.method == "POST":
        data = await request.json()
    else:
        data = None
    return JSONResponse({"method": request.method, "received": data, "query": dict(request.query_params),
                         "path": request.url.path, "client_host": request.client.host})


async def slow_task(key: str, delay: float):
    await asyncio.sleep(delay)
    BACKGROUND[key].update(ran=True, finished_at=time.time())


async def background(request: Request):
    key = request.query_params["key"]
    delay = float(request.query_params.get("delay", "0.3"))
    BACKGROUND[key] = {"ran": False, "responded_at": time.time()}
    return JSONResponse({"key": key, "ran_before_response": BACKGROUND[key]["ran"]},
                        background=BackgroundTask(slow_task, key, delay))


async def background_status(request: Request):
    return JSONResponse(BACKGROUND.get(request.query_params["key"], {}))


async def startup_info(request: Request):
    return JSONResponse({"count": STARTUP["count"], "greeting": getattr(request.app.state, "greeting", None),
                         "thread": STARTUP.get("thread")})


async def stream(request: Request):
    key = request.query_params.get("key", "s")
    count = int(request.query_params.get("n", "5"))
    interval = float(request.query_params.get("interval", "0"))
    STREAMS[key] = {"sent": 0, "finished": False, "cancelled": False}

    async def gen():
        try:
            for i in range(count):
                yield "chunk %d\n" % i
                STREAMS[key]["sent"] = i + 1
                await asyncio.sleep(interval)
            STREAMS[key]["finished"] = True
        except BaseException:
            STREAMS[key]["cancelled"] = True
            raise

    return StreamingResponse(gen(), media_type="text/plain")


async def stream_status(request: Request):
    return JSONResponse(STREAMS.get(request.query_params["key"], {}))


async def disconnect_poll(request: Request):
    """Polls request.is_disconnected() a few times while the client is still there."""
    results = []
    for _ in range(3):
        results.append(await request.is_disconnected())
    return JSONResponse({"disconnected": results})


app = Starlette(routes=[
    Route("/", index),
    Route("/json", json_route, methods=["GET", "POST"]),
    Route("/background", background),
    Route("/background-status", background_status),
    Route("/startup", startup_info),
    Route("/stream", stream),
    Route("/stream-status", stream_status),
    Route("/disconnect-poll", disconnect_poll),
    Route("/urls", lambda request: JSONResponse({"external": str(request.url_for("stream")), "path": request.url.path})),
], on_startup=[on_startup], on_shutdown=[on_shutdown])
