"""examples/migration driven as a user would: its own trestle.toml, one
journey through every part (legacy pages, the async view, v2, its
websocket, static files, the proxied billing service)."""
import asyncio
import gzip
import os
import socket

import requests
import websockets

from conftest import ROOT, poll

EXAMPLE = os.path.join(ROOT, "examples", "migration")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(serve):
    # The example's own config; only the billing port is moved off 9001 so
    # that runs do not collide (a command-line mount replaces the file's).
    port = free_port()
    srv = serve("--config=" + os.path.join(EXAMPLE, "trestle.toml"),
                "/billing=proxy:http://127.0.0.1:%d" % port, env={"BILLING_PORT": str(port)})
    # The example starts billing as a child process: wait until it answers.
    assert poll(lambda: requests.get(srv.url + "/billing/health", timeout=2).status_code == 200, timeout=20)
    return srv


def test_the_whole_journey(serve):
    srv = start(serve)
    web = requests.Session()

    # A legacy page, and its login (a session cookie).
    home = web.get(srv.url + "/", timeout=10)
    assert home.status_code == 200 and "Log in" in home.text and "/static/style.css" in home.text
    assert web.get(srv.url + "/notes", allow_redirects=False, timeout=10).headers["Location"].endswith("/login")
    bad = web.post(srv.url + "/login", data={"username": "ada", "password": "nope"}, timeout=10)
    assert bad.status_code == 401 and "wrong password" in bad.text
    r = web.post(srv.url + "/login", data={"username": "ada", "password": "lovelace"}, allow_redirects=False,
                 timeout=10)
    assert r.status_code == 302 and r.headers["Location"].endswith("/notes") and "session" in web.cookies
    r = web.post(srv.url + "/notes", data={"text": "migrate /v2 first"}, timeout=10)
    assert r.status_code == 200 and "migrate /v2 first" in r.text and "ada" in r.text

    # The async def view: two awaits on the shared loop, to the billing service.
    report = web.get(srv.url + "/report", timeout=10)
    assert report.status_code == 200 and 'id="due">75.50<' in report.text and "Billing service: up" in report.text
    # The task it left behind finishes after the response, on the same loop.
    assert poll(lambda: web.get(srv.url + "/audit", timeout=10).json()["reports"] == ["ada"], timeout=10)

    # v2 (Quart) knows the user from the same cookie, and builds prefixed URLs.
    assert web.get(srv.url + "/v2/whoami", timeout=10).json() == {"user": "ada"}
    items = web.get(srv.url + "/v2/items", timeout=10).json()
    assert items["href"] == "/v2/items" and items["items"][0]["name"] == "trestle"
    created = web.post(srv.url + "/v2/items", json={"name": "truss"}, timeout=10)
    assert created.status_code == 201 and created.json()["name"] == "truss"
    assert web.post(srv.url + "/v2/items", json=["no"], timeout=10).status_code == 400

    # The websocket, with the login cookie on the handshake.
    cookie = "session=" + web.cookies["session"]

    async def talk():
        url = srv.url.replace("http://", "ws://") + "/v2/ws"
        async with websockets.connect(url, extra_headers={"Cookie": cookie}) as ws:
            greeting = await asyncio.wait_for(ws.recv(), 10)
            await ws.send("on the loop")
            return greeting, await asyncio.wait_for(ws.recv(), 10)
    assert asyncio.run(talk()) == ("hello ada", "ON THE LOOP")

    # A static asset, plain and precompressed, with caching headers.
    with open(os.path.join(EXAMPLE, "public", "style.css"), "rb") as f:
        css = f.read()
    plain = requests.get(srv.url + "/static/style.css", headers={"Accept-Encoding": "identity"}, timeout=10)
    assert plain.status_code == 200 and plain.content == css
    assert plain.headers["Content-Type"].startswith("text/css")
    assert plain.headers["Cache-Control"] == "public, max-age=3600" and "ETag" in plain.headers
    raw = requests.get(srv.url + "/static/style.css", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
    assert raw.headers["Content-Encoding"] == "gzip" and gzip.decompress(raw.raw.read()) == css
    again = requests.get(srv.url + "/static/style.css", headers={"If-None-Match": plain.headers["ETag"],
                                                                 "Accept-Encoding": "identity"}, timeout=10)
    assert again.status_code == 304 and again.content == b""

    # Billing, through the proxy, which says who the client was.
    bill = web.get(srv.url + "/billing/invoices?user=ada", timeout=10)
    assert bill.status_code == 200 and bill.json()["invoices"][1]["id"] == "INV-1002"
    assert bill.json()["forwarded"]["X-Forwarded-For"] == "127.0.0.1"
    assert bill.json()["forwarded"]["X-Forwarded-Host"] == "127.0.0.1:%d" % srv.port

    # Logging out ends the session for both apps.
    web.post(srv.url + "/logout", timeout=10)
    assert web.get(srv.url + "/v2/whoami", timeout=10).json() == {"user": None}


def test_every_part_is_in_the_startup_log(serve):
    srv = start(serve)
    log = srv.log()
    for part in ("legacy:app (WSGI)", "newapi:app (ASGI", "static:", "proxy:http://127.0.0.1:"):
        assert part in log, log
