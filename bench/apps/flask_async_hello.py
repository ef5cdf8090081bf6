"""Benchmark app: Flask hello from an `async def` view that awaits asyncio.sleep(0).

Used by bench/bench.py (`--apps flask-async`). The await makes the view
really suspend once, so the number is what a Flask async view costs end to
end: on trestle the coroutine runs on the server's shared loop (trestle.flask),
under --no-flask-async and on gunicorn it runs through stock Flask's asgiref,
which makes and closes a new event loop for every call.
"""
import asyncio

from flask import Flask

app = Flask(__name__)


@app.route("/")
async def hello():
    await asyncio.sleep(0)
    return "Hello, World!"
