"""The legacy Flask app of the migration example: server-rendered pages,
a session login, and one view already made `async def`.

Under Trestle its async view runs on the server's shared event loop, so the
connection it opens to the billing service and the task it leaves behind
do not die with the request (stock Flask would start and stop a new loop
for every call).
"""
import asyncio
import datetime
import json
import os

from flask import Flask, abort, g, redirect, render_template, request, session, url_for

import billing

try:   # under Trestle: hooks on the server's event loop
    from trestle.flask import startup
except ImportError:   # under another server the example still imports
    def startup(fn):
        return fn

app = Flask(__name__)
# The v2 Quart app uses the same key, so both read the same session cookie.
app.secret_key = os.environ.get("EXAMPLE_SECRET_KEY", "change-me: example only")

USERS = {"ada": "lovelace", "alan": "turing"}
NOTES = {}   # user -> list of notes (in memory: an example)
BILLING_PORT = int(os.environ.get("BILLING_PORT", "9001"))

# Example only: start the billing service that /billing is proxied to. In a
# real deployment it is a separate service with its own lifecycle.
if os.environ.get("BILLING_AUTOSTART", "1") == "1":
    billing.start_background(BILLING_PORT)


AUDIT = []       # users whose report was made, written after the response
LOOP_STATE = {}  # objects made once on the loop, shared by every request


@startup
async def make_loop_objects():
    # Runs once on the server's loop before it listens: a lock that belongs
    # to that loop, usable from every async view.
    LOOP_STATE["audit_lock"] = asyncio.Lock()


async def record_report(user):
    # Runs after the response has gone: under Trestle the task lives on the
    # server's loop; stock Flask would cancel it when the view returns.
    async with LOOP_STATE["audit_lock"]:
        await asyncio.sleep(0.05)   # stands for a slow audit-log write
        AUDIT.append(user)


@app.before_request
def load_user():
    g.user = session.get("user")


@app.route("/")
def index():
    return render_template("index.html")


@app.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        name = request.form.get("username", "")
        if USERS.get(name) == request.form.get("password"):
            session["user"] = name
            return redirect(url_for("notes"))
        error = "Unknown user or wrong password."
    return render_template("login.html", error=error), (401 if error else 200)


@app.route("/logout", methods=["POST"])
def logout():
    session.pop("user", None)
    return redirect(url_for("index"))


@app.route("/notes", methods=["GET", "POST"])
def notes():
    if not g.user:
        return redirect(url_for("login"))
    mine = NOTES.setdefault(g.user, [])
    if request.method == "POST":
        text = request.form.get("text", "").strip()
        if not text:
            abort(400)
        mine.append(text)
        return redirect(url_for("notes"))
    return render_template("notes.html", notes=mine)


async def billing_get(path):
    """One HTTP/1.0 GET to the billing service, with asyncio streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", BILLING_PORT)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: billing\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return json.loads(body)


@app.route("/report")
async def report():
    # The one async view: two awaits at once, on the server's loop.
    if not g.user:
        return redirect(url_for("login"))
    invoices, health = await asyncio.gather(billing_get(f"/billing/invoices?user={g.user}"),
                                            billing_get("/billing/health"))
    due = sum(i["amount"] for i in invoices["invoices"] if not i["paid"])
    asyncio.create_task(record_report(g.user))
    return render_template("report.html", invoices=invoices["invoices"], due=due, billing_ok=health["ok"])


@app.route("/audit")
def audit():
    return {"reports": AUDIT}


@app.route("/health")
def health():
    return {"ok": True}


@app.route("/summary/<user>")
def summary(user):
    # What a user owes. Ported to Quart in legacy_v2.py; step 4 of the guide
    # proves the port with shadow mode before it takes traffic.
    unpaid = [i for i in billing.INVOICES.get(user, []) if not i["paid"]]
    return {"user": user, "open_invoices": len(unpaid), "due": sum(i["amount"] for i in unpaid),
            "currency": "EUR", "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
