"""Shadow-mode fixture: shadow_orders_v1 ported to Quart (ASGI), with one
deliberate difference: an order's total counts 11 a piece, not 10. Key
order differs too (it must not matter), and /page's text has one changed
line."""
import os
import time

from quart import Quart, jsonify, request

app = Quart(__name__)
ORDERS = {7: ["apple", "pear"], 8: ["fig"]}


def hit():
    path = os.environ.get("SHADOW_HITS_V2")
    if path:
        with open(path, "a") as f:
            f.write(f"{request.method} {request.path}\n")


@app.route("/orders/<int:oid>")
async def order(oid):
    hit()
    items = ORDERS.get(oid, [])
    return jsonify({"request_id": os.urandom(6).hex(), "total": 11 * len(items), "items": items, "id": oid,
                    "generated_at": time.time()})


@app.route("/orders")
async def orders():
    hit()
    return jsonify({"generated_at": time.time(), "orders": sorted(ORDERS)})


@app.route("/orders", methods=["POST"])
async def create():
    hit()
    return jsonify({"created": True, "size": len(await request.get_data())}), 201


@app.route("/health")
async def health():
    hit()
    return "ok\n"


@app.route("/page")
async def page():
    hit()
    return "<h1>Orders</h1>\n<p>2 orders</p>\n"
