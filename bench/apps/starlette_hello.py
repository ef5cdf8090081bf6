"""Benchmark app: the smallest Starlette app, one route answering "Hello, World!".

Used by bench/bench.py (`--apps starlette`).
"""
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("Hello, World!")


app = Starlette(routes=[Route("/", hello)])
