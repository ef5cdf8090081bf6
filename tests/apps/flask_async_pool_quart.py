"""Fixture: a Quart app that holds flask_async_pool.LOCK while it calls a
sync function (run_sync, the loop's default executor). Mounted beside
flask_async_pool:app."""
import asyncio
import time

from quart import Quart
from quart.utils import run_sync

from flask_async_pool import LOCK, STATE

app = Quart(__name__)
GO = {}


def blocking():
    time.sleep(0.05)
    return "ran"


@app.get("/hold")
async def hold():
    GO["event"] = asyncio.Event()
    async with LOCK:
        GO["held"] = True
        await GO["event"].wait()        # the test parks Flask views on LOCK meanwhile
        result = await run_sync(blocking)()
    return result


@app.get("/held")
async def held():
    return "yes" if GO.get("held") else "no"


@app.get("/waiters")
async def waiters():
    return str(STATE["lock_waiters"])


@app.get("/go")
async def go():
    GO["event"].set()
    return "go"
