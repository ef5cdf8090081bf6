"""A Quart app (tests/apps/quart_app.py) served natively over ASGI by trestle."""
import hashlib
import os

import pytest
import requests

from conftest import read_response

APP = "quart_app:app"
TIMEOUT = 15
QUICK = ("--graceful-timeout", "3")


@pytest.fixture
def srv(serve):
    return serve(APP, *QUICK)


def test_routes_and_detection(srv):
    srv.wait_log(r"serving quart_app:app \(ASGI, ")
    assert "lifespan not supported" not in srv.log()
    r = requests.get(srv.url + "/", timeout=TIMEOUT)
    assert r.status_code == 200 and r.text == "Hello from Quart on trestle"
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Content-Length"] == str(len(r.content))
    r = requests.get(srv.url + "/user/caf%C3%A9", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"name": "caf\u00e9", "upper": "CAF\u00c9"}


def test_json_in_and_out(srv):
    payload = {"name": "trestle", "list": list(range(20)), "unicode": "\u2603", "nested": {"a": [None, 1.5, True]}}
    r = requests.post(srv.url + "/json", params={"q": ["1", "2"]}, json=payload, timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"received": payload, "method": "POST", "content_type": "application/json",
                        "args": {"q": ["1", "2"]}}


def test_streamed_response_from_an_async_generator(srv):
    s = srv.connect()
    s.sendall(b"GET /stream?n=50 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert status == 200
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert headers["x-streamed"] == "yes"
    assert body == b"".join(b"line %d\n" % i for i in range(50)) and rest == b""
    # Keep-alive after a streamed response.
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, _ = read_response(s)
    assert status == 200 and body == b"Hello from Quart on trestle"
    s.close()


def test_before_serving_ran_once_and_after_serving_on_stop(srv):
    info = requests.get(srv.url + "/serving", timeout=TIMEOUT).json()
    assert info["started"] is True and info["startups"] == 1
    assert info["loop_thread"] != "MainThread"
    assert srv.stop() == 0
    assert "quart_app: after_serving ran" in srv.log()


def test_sync_view_runs_on_the_pool(srv):
    loop = requests.get(srv.url + "/loop-thread", timeout=TIMEOUT).json()
    for _ in range(3):
        r = requests.get(srv.url + "/sync", timeout=TIMEOUT)
        assert r.status_code == 200
        info = r.json()
        assert info["thread"] != "MainThread"
        assert info["thread"] != loop["thread"] and info["ident"] != loop["ident"]
        assert not info["thread"].startswith("ThreadPoolExecutor")
        assert info["thread"].startswith("Dummy-") and info["thread_class"] == "_DummyThread"


def test_large_body_with_get_data(srv):
    data = os.urandom(10 * 1024 * 1024 + 17)
    r = requests.post(srv.url + "/upload", data=data, timeout=30)
    assert r.status_code == 200
    assert r.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_404_and_403(srv):
    r = requests.get(srv.url + "/no/such/route", timeout=TIMEOUT)
    assert r.status_code == 404
    r = requests.get(srv.url + "/forbidden", timeout=TIMEOUT)
    assert r.status_code == 403


def test_exception_is_500_and_logged(srv):
    r = requests.get(srv.url + "/boom", timeout=TIMEOUT)
    assert r.status_code == 500
    srv.wait_log(r"RuntimeError: quart view exploded")
    # The server keeps serving.
    assert requests.get(srv.url + "/", timeout=TIMEOUT).status_code == 200
