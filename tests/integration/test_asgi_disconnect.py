"""An ASGI app waiting on receive() learns that an idle client has gone."""
import time

import requests


def test_idle_client_disconnect_reaches_the_app(serve):
    srv = serve("asgi_wait:app")
    s = srv.connect()
    s.sendall(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
    # Leave at once: whenever the app reaches its second receive(), the
    # server must already know, or find out, that the client is gone.
    s.close()
    deadline = time.monotonic() + 10
    seen = []
    while time.monotonic() < deadline:
        seen = requests.get(srv.url + "/seen", timeout=10).json()
        if seen:
            break
        time.sleep(0.02)
    assert seen == ["http.disconnect"]


def test_pipelined_request_is_not_taken_for_a_disconnect(serve):
    srv = serve("asgi_hello:app")
    s = srv.connect()
    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    s.settimeout(10)
    while data.count(b"Hello, World!") < 2:
        chunk = s.recv(65536)
        assert chunk
        data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2
