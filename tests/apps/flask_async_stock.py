"""Fixture: a second Flask app with an async view, for a mount that turns the
integration off (flask_async = false)."""
import asyncio

from flask import Flask, jsonify

import trestle

app = Flask(__name__)


@app.route("/loop")
async def loop_view():
    await asyncio.sleep(0)
    try:
        on_trestle = asyncio.get_running_loop() is trestle.loop()
    except RuntimeError:
        on_trestle = False
    return jsonify(on_trestle_loop=on_trestle)
