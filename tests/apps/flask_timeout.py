"""Fixture: a Flask app whose async view runs past --timeout on the shared
loop (tests/integration/test_timeout.py)."""
import asyncio
import sys

from flask import Flask

app = Flask(__name__)


@app.get("/async-sleep")
async def async_sleep():
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        print("flask_timeout: the view's coroutine was cancelled", file=sys.stderr, flush=True)
        raise
    return "slept"


@app.get("/quick")
def quick():
    return "quick"
