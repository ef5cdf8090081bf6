"""Benchmark app: the smallest Quart app, one route answering "Hello, World!".

Used by bench/bench.py (`--apps quart`); kept out of tests/apps because no test
uses it. tests/apps/quart_app.py is the feature-rich Quart app the tests use.
"""
from quart import Quart

app = Quart(__name__)


@app.route("/")
async def hello():
    return "Hello, World!"
