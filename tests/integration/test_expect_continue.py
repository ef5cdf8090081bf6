"""`Expect: 100-continue` once the final response has started (issue 10 item 4).

An interim response after the final one has started would land in the middle of
its body and break the framing (RFC 9110 15.2: interim responses come before
the final one). The rule: once any byte of the response is queued or sent, the
server sends no 100 (Continue); it reads the body when the app asks for it, as
it would without the expectation. A client that waits for the 100 sends the body
after its own timeout (RFC 9110 10.1.1), or reads the final response and stops.
"""
import time

import pytest

from conftest import read_head

HEAD = (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")


def recv_until(sock, buf, marker, timeout=10.0):
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while marker not in buf:
        assert time.monotonic() < deadline, "never received %r: %r" % (marker, buf)
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before %r: %r" % (marker, buf))
        buf += data
    return buf


# A WSGI app reads a body it has not been given yet only when it streams
# (buffer_body = false): by default the body is gathered, and the 100 sent,
# before the app runs (docs/configuration.md, "Request bodies").
@pytest.mark.parametrize("app, flags", [("early_response:wsgi_app", ["--no-buffer-body"]),
                                        ("early_response:asgi_app", [])])
def test_no_100_continue_after_the_response_started(serve, app, flags):
    srv = serve(app, *flags)
    with srv.connect() as s:
        s.sendall(HEAD)
        # The app answers before it reads: the head and its first chunk arrive
        # while the client still holds the body back.
        status, fields, rest = read_head(s)
        assert status == 200, fields
        assert ("Transfer-Encoding", "chunked") in fields
        rest = recv_until(s, rest, b"early\r\n")
        # Now the client gives up waiting for a 100 and sends the body.
        s.sendall(b"hello")
        rest = recv_until(s, rest, b"0\r\n\r\n")
        # The body is exactly the two chunks and the last chunk: no interim
        # response anywhere in it.
        assert rest == b"5\r\nearly\r\n5\r\nhello\r\n0\r\n\r\n"
        # The head went out before the body was read, so it announced the
        # close (RFC 9110 10.1.1: say whether the connection stays): the
        # connection ends after the response, with nothing more on it.
        assert ("Connection", "close") in fields
        s.settimeout(10)
        assert s.recv(65536) == b""


def test_each_request_on_a_connection_gets_its_own_100_continue(serve):
    # The "100 sent" mark was kept per connection: the second request that
    # expected a 100 on a keep-alive connection never got one.
    srv = serve("wsgi_cases:app")
    with srv.connect() as s:
        for body in (b"first", b"again"):
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            buf = recv_until(s, b"", b"\r\n\r\n", timeout=5)
            assert buf == b"HTTP/1.1 100 Continue\r\n\r\n", buf
            s.sendall(body)
            status, fields, rest = read_head(s)
            assert status == 200
            rest = recv_until(s, rest, body)
            assert rest.endswith(body)
