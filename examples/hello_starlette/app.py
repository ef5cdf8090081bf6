"""A Starlette app on Trestle:

    build/trestle --chdir examples/hello_starlette app:app
"""
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute

log = []


async def homepage(request):
    return PlainTextResponse("Hello from Starlette, served by Trestle!\n")


async def record(request):
    # The background task runs after the response has been sent.
    return JSONResponse({"queued": True}, background=BackgroundTask(log.append, request.url.path))


async def history(request):
    return JSONResponse({"log": log})


async def echo(ws):
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


app = Starlette(routes=[
    Route("/", homepage),
    Route("/record", record),
    Route("/history", history),
    WebSocketRoute("/ws", echo),
])
