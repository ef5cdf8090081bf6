"""A websocket chat room in Quart: every message goes to every client.

    build/trestle --chdir examples/quart_chat app:app

then connect several clients to ws://127.0.0.1:8000/ws, for example with
python3 -m websockets ws://127.0.0.1:8000/ws
"""
import asyncio

from quart import Quart, websocket

app = Quart(__name__)
clients = set()


@app.get("/")
async def index():
    return f"{len(clients)} client(s) connected; chat at /ws\n"


@app.websocket("/ws")
async def chat():
    queue = asyncio.Queue()
    clients.add(queue)
    try:
        await websocket.send("welcome")

        async def forward():
            while True:
                await websocket.send(await queue.get())

        sender = asyncio.ensure_future(forward())
        try:
            while True:
                message = await websocket.receive()
                for q in list(clients):
                    q.put_nowait(message)
        finally:
            sender.cancel()
    finally:
        clients.discard(queue)
