"""Fixture: a trestle.flask startup hook that fails, which must stop the server."""
from flask import Flask

import trestle.flask

app = Flask(__name__)


@trestle.flask.startup
async def connect_to_nothing():
    raise ConnectionError("startup hook exploded on purpose 3b7d")


@app.route("/")
async def index():
    return "never served"
