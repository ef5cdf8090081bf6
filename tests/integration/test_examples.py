"""The bundled examples start and answer, as the README says they do."""
import asyncio
import os
import time

import requests
import websockets

from conftest import ROOT


def example(name):
    return os.path.join(ROOT, "examples", name)


def test_hello_flask(serve):
    srv = serve("app:app", cwd=example("hello_flask"))
    assert requests.get(srv.url + "/", timeout=10).text.startswith("Hello from Flask")
    assert requests.post(srv.url + "/echo", data=b"x" * 100000, timeout=10).json() == {"received_bytes": 100000}


def test_hello_quart_async_sync_and_lifespan(serve):
    srv = serve("app:app", cwd=example("hello_quart"))
    assert "(ASGI" in srv.log()
    assert requests.get(srv.url + "/", timeout=10).text.startswith("Hello from Quart")
    assert isinstance(requests.get(srv.url + "/json", timeout=10).json()["started"], float)
    assert requests.get(srv.url + "/sleep", timeout=10).text == "slept\n"
    # The sync view ran on a pool thread, not on the loop's thread.
    name = requests.get(srv.url + "/sync", timeout=10).text.strip()
    assert name.startswith("Dummy-"), name


def test_quart_chat_broadcasts_to_every_client(serve):
    srv = serve("app:app", cwd=example("quart_chat"))
    url = "ws://%s:%d/ws" % (srv.host, srv.port)

    async def go():
        clients = [await websockets.connect(url) for _ in range(20)]
        for c in clients:
            assert await asyncio.wait_for(c.recv(), 10) == "welcome"
        await clients[3].send("hello, room")
        got = [await asyncio.wait_for(c.recv(), 10) for c in clients]
        assert got == ["hello, room"] * 20
        for c in clients:
            await c.close()
    asyncio.run(asyncio.wait_for(go(), 60))


def test_hello_starlette_background_task(serve):
    srv = serve("app:app", cwd=example("hello_starlette"))
    assert requests.get(srv.url + "/record", timeout=10).json() == {"queued": True}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not requests.get(srv.url + "/history", timeout=10).json()["log"]:
        time.sleep(0.02)
    assert requests.get(srv.url + "/history", timeout=10).json()["log"] == ["/record"]
