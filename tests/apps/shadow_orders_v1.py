"""Shadow-mode fixture: the "legacy" orders API, in Flask (WSGI).

shadow_orders_v2 is its port to Quart, with one deliberate difference (the
total of an order). Each app appends "METHOD PATH" to the file named by
SHADOW_HITS_V1 / SHADOW_HITS_V2 (if set), so a test can see which requests
really reached it.
"""
import os
import time

from flask import Flask, jsonify, request

app = Flask(__name__)
ORDERS = {7: ["apple", "pear"], 8: ["fig"]}


def hit():
    path = os.environ.get("SHADOW_HITS_V1")
    if path:
        with open(path, "a") as f:
            f.write(f"{request.method} {request.path}\n")


@app.route("/orders/<int:oid>")
def order(oid):
    hit()
    items = ORDERS.get(oid, [])
    return jsonify({"id": oid, "items": items, "total": 10 * len(items), "generated_at": time.time(),
                    "request_id": os.urandom(6).hex()})


@app.route("/orders")
def orders():
    hit()
    return jsonify({"orders": sorted(ORDERS), "generated_at": time.time()})


@app.route("/orders", methods=["POST"])
def create():
    hit()
    return jsonify({"created": True, "size": len(request.get_data())}), 201


@app.route("/health")
def health():
    hit()
    return "ok\n"


@app.route("/page")
def page():
    hit()
    return "<h1>Orders</h1>\n<p>two orders</p>\n"
