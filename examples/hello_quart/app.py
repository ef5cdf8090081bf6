"""Quart served natively on Trestle's event loop:

    build/trestle --chdir examples/hello_quart app:app
"""
import asyncio

from quart import Quart, jsonify, request

app = Quart(__name__)


@app.before_serving
async def startup():
    # Runs once, through the ASGI lifespan protocol, on the server's loop.
    app.config["STARTED"] = asyncio.get_running_loop().time()


@app.get("/")
async def index():
    return "Hello from Quart, served by Trestle!\n"


@app.get("/json")
async def json_view():
    return jsonify(started=app.config["STARTED"], args=request.args)


@app.get("/sleep")
async def sleep():
    await asyncio.sleep(0.01)
    return "slept\n"


@app.get("/sync")
def sync_view():
    # A plain `def` view: Quart runs it in the loop's default executor,
    # which under Trestle is the same thread pool that serves WSGI apps.
    import threading

    return threading.current_thread().name + "\n"
