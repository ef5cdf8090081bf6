"""Fixture: Flask async views that wait for work done by the loop's executor
from somewhere else than the view (issue 10, items 13 and 14).

- /queued: the view hands (x, future) to a consumer task a startup hook made,
  and the consumer runs the work with asyncio.to_thread. With every pool
  thread parked in such a view, the consumer's executor job must still run.
- /locked: waits on LOCK, which the Quart app in flask_async_pool_quart.py
  holds while it calls a sync function (run_sync).
- /wait-slow and /leave-task: executor work the view does not wait for must
  not delay its response.
- /sync: a plain sync view.
"""
import asyncio
import threading
import time

from flask import Flask, jsonify

import trestle.flask

app = Flask(__name__)

LOCK = asyncio.Lock()       # binds to the server's loop on first use
STATE = {"lock_waiters": 0, "consumed": 0}
WORK = {}


def blocking(x):
    time.sleep(0.05)
    return (x * 2, threading.get_ident())


def slow():
    time.sleep(2)


@trestle.flask.startup
async def start_consumer():
    WORK["queue"] = asyncio.Queue()
    WORK["consumer"] = asyncio.create_task(consume())


async def consume():
    queue = WORK["queue"]
    while True:
        x, fut = await queue.get()
        try:
            result = await asyncio.to_thread(blocking, x)
        except Exception as exc:  # noqa: B902 - handed to the view
            if not fut.done():
                fut.set_exception(exc)
        else:
            if not fut.done():
                fut.set_result(result)
        STATE["consumed"] += 1


@app.get("/queued/<int:x>")
async def queued(x):
    fut = asyncio.get_running_loop().create_future()
    await WORK["queue"].put((x, fut))
    value, worker = await fut
    return jsonify(value=value, worker=worker, pool_thread=threading.get_ident())


@app.get("/locked")
async def locked():
    STATE["lock_waiters"] += 1
    try:
        async with LOCK:
            return "got the lock"
    finally:
        STATE["lock_waiters"] -= 1


@app.get("/state")
def state():
    return jsonify(lock_waiters=STATE["lock_waiters"], consumed=STATE["consumed"])


@app.get("/wait-slow")
async def wait_slow():
    try:
        await asyncio.wait_for(asyncio.to_thread(slow), 0.1)
    except asyncio.TimeoutError:
        return "timed out"
    return "finished"


@app.get("/leave-task")
async def leave_task():
    task = asyncio.get_running_loop().create_task(asyncio.to_thread(slow))
    WORK.setdefault("left", set()).add(task)
    task.add_done_callback(WORK["left"].discard)
    return "left a task"


@app.get("/sync")
def sync_view():
    return "sync ok"
