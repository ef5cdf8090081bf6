"""Fixture: a Flask app with async views, hooks and error handlers, and
loop-bound objects made by a trestle.flask startup hook."""
import asyncio
import contextvars
import sys
import threading
import time

from flask import Flask, current_app, g, jsonify, request, session

import trestle
import trestle.flask

app = Flask(__name__)
app.secret_key = "flask-async-fixture-not-secret"

request_id = contextvars.ContextVar("request_id", default=None)

TASKS = {}          # task id -> "running", "done", "cancelled", "sleeping", "finished", "waiting"
TEARDOWNS = {}      # X-Request-Id -> what the async teardown function saw
BACKGROUND = set()  # strong references to background tasks
SHARED = {"count": 0, "consumed": [], "inflight": 0, "max_inflight": 0}


class Teapot(Exception):
    pass


class FlaskAsyncTestError(Exception):
    pass


def current_loop_info():
    loop = asyncio.get_running_loop()
    try:
        on_trestle = loop is trestle.loop()
    except RuntimeError:
        on_trestle = False
    return {"loop_id": id(loop), "on_trestle_loop": on_trestle}


# --- startup and shutdown -----------------------------------------------------------------

@trestle.flask.startup
async def make_shared_objects():
    SHARED["lock"] = asyncio.Lock()
    SHARED["queue"] = asyncio.Queue()
    SHARED["startup_loop_id"] = id(asyncio.get_running_loop())
    SHARED["consumer"] = asyncio.create_task(consume())


async def consume():
    while True:
        item = await SHARED["queue"].get()
        SHARED["consumed"].append(item)


@trestle.flask.shutdown
async def report_at_shutdown():
    print("flask_async_app: shutdown hook ran; consumer running: %s"
          % (not SHARED["consumer"].done()), file=sys.stderr, flush=True)


@trestle.flask.shutdown
def failing_shutdown_hook():
    # Registered last, so it runs first; the hook above must still run.
    raise ValueError("shutdown hook exploded on purpose 9c4d")


# --- hooks ---------------------------------------------------------------------------------

@app.before_request
def record_pool_thread():
    g.pool_thread = threading.get_ident()


@app.before_request
async def async_before():
    await asyncio.sleep(0)
    g.before = "async-before:" + request.path
    rid = request.headers.get("X-Request-Id")
    if rid is not None:
        request_id.set(rid)


@app.after_request
async def async_after(response):
    await asyncio.sleep(0)
    response.headers["X-After"] = "%s|%s" % (g.get("before"), request_id.get())
    return response


@app.teardown_request
async def async_teardown(exc):
    await asyncio.sleep(0)
    rid = request_id.get()
    if rid is not None:
        TEARDOWNS[rid] = {"path": request.path, "before": g.get("before"),
                          "exc": repr(exc) if exc is not None else None}


@app.errorhandler(Teapot)
async def teapot_handler(exc):
    await asyncio.sleep(0)
    return jsonify(error=str(exc), path=request.path, before=g.get("before"),
                   request_id=request_id.get(), **current_loop_info()), 418


# --- views ---------------------------------------------------------------------------------

@app.route("/loop")
async def loop_view():
    await asyncio.sleep(0)
    return jsonify(pool_thread=g.pool_thread, startup_loop_id=SHARED.get("startup_loop_id"),
                   **current_loop_info())


async def background(tid, delay):
    TASKS[tid] = "running"
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        TASKS[tid] = "cancelled"
        raise
    TASKS[tid] = "done"


@app.route("/spawn/<tid>")
async def spawn(tid):
    task = asyncio.create_task(background(tid, float(request.args.get("delay", "0.2"))))
    BACKGROUND.add(task)
    task.add_done_callback(BACKGROUND.discard)
    await asyncio.sleep(0)   # the task starts
    return jsonify(state=TASKS.get(tid), **current_loop_info())


@app.route("/task/<tid>")
def task_state(tid):
    return jsonify(state=TASKS.get(tid))


@app.route("/locked-incr")
async def locked_incr():
    # Without the lock, views interleaving at the await lose increments.
    async with SHARED["lock"]:
        n = SHARED["count"]
        await asyncio.sleep(0)
        SHARED["count"] = n + 1
    return jsonify(pool_thread=g.pool_thread)


@app.route("/count")
def count():
    return jsonify(count=SHARED["count"])


@app.route("/enqueue/<int:item>")
async def enqueue(item):
    await SHARED["queue"].put(item)
    return jsonify(pool_thread=g.pool_thread)


@app.route("/consumed")
def consumed():
    return jsonify(items=sorted(SHARED["consumed"]))


@app.route("/ctx", methods=["GET", "POST"])
async def ctx_view():
    await asyncio.sleep(0)
    session["visits"] = session.get("visits", 0) + 1
    return jsonify(args=request.args.to_dict(flat=False), header=request.headers.get("X-Test"),
                   body=request.get_data(as_text=True), method=request.method, before=g.before,
                   request_id=request_id.get(), visits=session["visits"], app_name=current_app.name,
                   **current_loop_info())


@app.route("/ctx-sync")
def ctx_sync():
    # request_id was set by the async before_request hook.
    return jsonify(request_id=request_id.get(), before=g.get("before"))


@app.route("/teardown/<rid>")
def teardown_seen(rid):
    return jsonify(TEARDOWNS.get(rid))


@app.route("/teapot")
async def teapot():
    await asyncio.sleep(0)
    raise Teapot("short and stout")


@app.route("/boom")
async def boom():
    await asyncio.sleep(0)
    raise FlaskAsyncTestError("async view exploded on purpose 5e2a")


@app.route("/sleep")
async def sleep_view():
    tid = request.args.get("id")
    if tid:
        TASKS[tid] = "sleeping"
    SHARED["inflight"] += 1
    SHARED["max_inflight"] = max(SHARED["max_inflight"], SHARED["inflight"])
    try:
        await asyncio.sleep(float(request.args.get("s", "0.02")))
    finally:
        SHARED["inflight"] -= 1
    if tid:
        TASKS[tid] = "finished"
    return jsonify(max_inflight=SHARED["max_inflight"], **current_loop_info())


@app.route("/wait-forever")
async def wait_forever():
    TASKS[request.args["id"]] = "waiting"
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        print("flask_async_app: wait-forever view cancelled", file=sys.stderr, flush=True)
        raise
    return "unreachable"


@app.route("/to-thread")
async def to_thread():
    seconds = float(request.args.get("s", "0.1"))

    def blocking():
        time.sleep(seconds)
        return threading.get_ident()

    ident = await asyncio.to_thread(blocking)
    return jsonify(worker=ident, pool_thread=g.pool_thread)
