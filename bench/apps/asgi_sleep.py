"""Benchmark app: raw ASGI 3 hello that first awaits asyncio.sleep(0.01).

Used by bench/bench.py (`--apps sleep`, at 256 connections by default). Raw
ASGI rather than Quart on purpose: with 10 ms of waiting per request and 256
connections the ceiling is 256 / 0.01 s = 25,600 req/s, so the number shows
how well a server keeps many requests in flight on its event loop (timers,
wake-ups, scheduling), not a framework's per-request CPU cost (Quart hello
already measures that, and would cap this route at about its hello rate).
"""
import asyncio

BODY = b"Hello, World!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(0.01)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
