"""Fixture: a Flask async view that blocks its event loop with time.sleep
(issue 10, item 16), and a tiny ASGI app to see whether the shared loop
still answers meanwhile."""
import asyncio
import threading
import time

from flask import Flask, jsonify

import trestle

app = Flask(__name__)
STATE = {"blocking": False}


def blocking_view_7f3a(seconds):
    STATE["blocking"] = True
    try:
        time.sleep(seconds)   # the mistake: a blocking call on the loop
    finally:
        STATE["blocking"] = False


@app.get("/block/<float:seconds>")
async def block(seconds):
    blocking_view_7f3a(seconds)
    return "slept"


@app.get("/where")
async def where():
    loop = asyncio.get_running_loop()
    try:
        shared = loop is trestle.loop()
    except RuntimeError:
        shared = False
    return jsonify(shared_loop=shared, thread=threading.current_thread().name)


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"blocking" if STATE["blocking"] else b"idle"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
