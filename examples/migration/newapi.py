"""The v2 API of the migration example: a Quart app mounted at /v2, with a
websocket. It shares the legacy app's session cookie (same secret key and
the cookie format both use), so a user logged in on the old pages is known
here too.
"""
import os

from quart import Quart, jsonify, request, session, url_for, websocket

app = Quart(__name__)
app.secret_key = os.environ.get("EXAMPLE_SECRET_KEY", "change-me: example only")

ITEMS = [{"id": 1, "name": "trestle"}, {"id": 2, "name": "bridge"}]


@app.get("/items")
async def items():
    return jsonify(items=ITEMS, href=url_for("items"))


@app.post("/items")
async def add_item():
    data = await request.get_json()
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return jsonify(error="send {\"name\": \"...\"}"), 400
    item = {"id": len(ITEMS) + 1, "name": data["name"]}
    ITEMS.append(item)
    return jsonify(item), 201


@app.get("/whoami")
async def whoami():
    return jsonify(user=session.get("user"))


@app.websocket("/ws")
async def ws():
    # Greets the logged-in user (the session cookie comes with the
    # handshake), then echoes every message in upper case.
    await websocket.accept()
    await websocket.send(f"hello {session.get('user') or 'stranger'}")
    while True:
        message = await websocket.receive()
        await websocket.send(message.upper())
