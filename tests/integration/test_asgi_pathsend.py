"""http.response.pathsend: a file sent by path, with no copy through Python."""
import hashlib
import os
import tempfile

import requests

from conftest import read_response, recv_until_closed


def test_pathsend_is_advertised_and_serves_the_file(serve):
    srv = serve("asgi_pathsend:app")
    assert "'http.response.pathsend'" in requests.get(srv.url + "/extensions", timeout=10).text
    data = os.urandom(5 * 1024 * 1024 + 3)
    with tempfile.NamedTemporaryFile(delete=False) as fh:
        fh.write(data)
    try:
        r = requests.get(srv.url + "/file?" + fh.name, timeout=30)
        assert r.status_code == 200
        assert r.headers["Content-Length"] == str(len(data))
        assert hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()
        # Keep-alive survives a pathsend response.
        s = srv.connect()
        for _ in range(2):
            s.sendall(("GET /f?%s HTTP/1.1\r\nHost: x\r\n\r\n" % fh.name).encode())
            status, headers, body, rest = read_response(s)
            assert status == 200 and body == data and rest == b""
        r = requests.head(srv.url + "/f?" + fh.name, timeout=10)
        assert r.headers["Content-Length"] == str(len(data)) and r.content == b""
    finally:
        os.unlink(fh.name)


def test_pathsend_of_a_missing_file_closes_the_connection(serve):
    # The app had already sent http.response.start, so the error ends the
    # connection rather than becoming a 500 (the ASGI error rule).
    srv = serve("asgi_pathsend:app")
    s = srv.connect()
    s.sendall(b"GET /f?/no/such/file HTTP/1.1\r\nHost: x\r\n\r\n")
    assert recv_until_closed(s) == b""
    srv.wait_log("No such file or directory")
