"""A Flask app halfway through its migration: one sync view, one async
view (run on the server's loop by trestle.flask)."""
import asyncio

from flask import Flask

app = Flask(__name__)


@app.route("/sync")
def sync_view():
    return "sync"


@app.route("/async")
async def async_view():
    await asyncio.sleep(0)
    return "async"
