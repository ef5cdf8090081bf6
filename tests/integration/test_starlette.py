"""A Starlette app (tests/apps/starlette_app.py) served natively over ASGI by trestle."""
import time

import pytest
import requests

from conftest import poll, read_response

APP = "starlette_app:app"
TIMEOUT = 15
QUICK = ("--graceful-timeout", "3")


@pytest.fixture
def srv(serve):
    return serve(APP, *QUICK)


def test_plain_route(srv):
    srv.wait_log(r"serving starlette_app:app \(ASGI, ")
    r = requests.get(srv.url + "/", timeout=TIMEOUT)
    assert r.status_code == 200 and r.text == "Hello from Starlette on trestle"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["Content-Length"] == str(len(r.content))
    assert requests.get(srv.url + "/missing", timeout=TIMEOUT).status_code == 404


def test_json_route(srv):
    r = requests.get(srv.url + "/json", params={"a": "1 2"}, timeout=TIMEOUT)
    assert r.json() == {"method": "GET", "received": None, "query": {"a": "1 2"}, "path": "/json",
                        "client_host": "127.0.0.1"}
    payload = {"x": [1, 2, {"y": "\u00e9"}], "ok": True}
    r = requests.post(srv.url + "/json", json=payload, timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.json()["received"] == payload and r.json()["method"] == "POST"


def test_background_task_runs_after_the_response(srv):
    delay = 0.5
    start = time.monotonic()
    r = requests.get(srv.url + "/background", params={"key": "bg1", "delay": delay}, timeout=TIMEOUT)
    elapsed = time.monotonic() - start
    assert r.status_code == 200 and r.json() == {"key": "bg1", "ran_before_response": False}
    # The response is delivered without waiting for the task (which sleeps `delay` seconds).
    assert elapsed < delay, "the response waited for the background task (%.2fs)" % elapsed

    def status():
        return requests.get(srv.url + "/background-status", params={"key": "bg1"}, timeout=TIMEOUT).json()
    assert status()["ran"] is False
    final = poll(lambda: (lambda s: s if s.get("ran") else None)(status()), timeout=10)
    assert final and final["ran"] is True
    assert final["finished_at"] - final["responded_at"] >= delay * 0.9


def test_lifespan_on_startup_and_on_shutdown(srv):
    assert "lifespan not supported" not in srv.log()
    info = requests.get(srv.url + "/startup", timeout=TIMEOUT).json()
    assert info["count"] == 1 and info["greeting"] == "set in on_startup"
    assert info["thread"] != "MainThread"
    assert srv.stop() == 0
    assert "starlette_app: on_shutdown ran" in srv.log()


def test_streaming_response(srv):
    s = srv.connect()
    s.sendall(b"GET /stream?key=st1&n=20 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == "".join("chunk %d\n" % i for i in range(20)).encode() and rest == b""
    # The connection is reusable after a streamed response whose listen_for_disconnect was cancelled.
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, _ = read_response(s)
    assert (status, body) == (200, b"Hello from Starlette on trestle")
    s.close()
    st = requests.get(srv.url + "/stream-status", params={"key": "st1"}, timeout=TIMEOUT).json()
    assert st == {"sent": 20, "finished": True, "cancelled": False}


def test_streaming_response_stops_when_the_client_leaves(srv):
    s = srv.connect()
    s.sendall(b"GET /stream?key=st2&n=500&interval=0.02 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(10)
    buf = b""
    deadline = time.monotonic() + 10
    while b"chunk 2\n" not in buf:
        assert time.monotonic() < deadline
        data = s.recv(65536)
        assert data
        buf += data
    s.close()

    def status():
        st = requests.get(srv.url + "/stream-status", params={"key": "st2"}, timeout=TIMEOUT).json()
        return st if st.get("cancelled") or st.get("finished") else None
    st = poll(status, timeout=15)
    assert st and st["cancelled"] is True and st["finished"] is False and st["sent"] < 500


def test_request_is_disconnected_can_be_polled(srv):
    # Request.is_disconnected() calls receive() inside an already-cancelled scope, every call.
    r = requests.get(srv.url + "/disconnect-poll", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json() == {"disconnected": [False, False, False]}
