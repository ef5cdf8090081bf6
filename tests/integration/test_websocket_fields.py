"""What an ASGI WebSocket app sends is checked like an HTTP response (issue 10 item 8).

The rules: websocket.accept's subprotocol is None or a token that the client offered in
Sec-WebSocket-Protocol; its headers are [name, value] byte pairs with a token name and a value
without CR, LF or NUL, as in http.response.start. A denial (websocket.http.response.start) has an
int status from 200 to 599 and headers as above. websocket.close has an int code that may go on
the wire (1000-1003, 1007-1014, 3000-4999; never 1005, 1006, 1015) and a str reason of at most
123 bytes in UTF-8. A message that breaks them raises in the app's send() (TypeError for a wrong
type, ValueError for a wrong value, OverflowError for an int too large), and the wire gets a 500
(before the accept) or a close with 1011 (after it), as when the app raises anything else.

Before the fix: a subprotocol with CRLF put a header into the 101; a close reason over 123 bytes
threw std::length_error out of the session (no close frame); 1006 and 70000 (wrapped to 4464)
went on the wire; a denial status of 100 went out as a final response; PyLong_AsLong overflow left
an exception set.
"""
import base64
import os
import struct
import sys

import pytest
import requests

from conftest import APPS, SANITIZER_MARKERS, Server, server_env

sys.path.insert(0, APPS)
import asgi_ws_fields as cases  # noqa: E402

TIMEOUT = 10
VALUE_ERRORS = ("ValueError", "TypeError", "OverflowError")


@pytest.fixture(scope="module")
def shared():
    srv = Server(["asgi_ws_fields:app", "--bind", "127.0.0.1:0", "--graceful-timeout", "3"], APPS, server_env())
    yield srv
    srv.stop()
    log = srv.log()
    os.unlink(srv.log_path)
    assert not any(marker in log for marker in SANITIZER_MARKERS), log[-6000:]


def open_handshake(srv, path, extra=b"Sec-WebSocket-Protocol: chat, superchat\r\n", key=None):
    """Sends a WebSocket handshake; returns (socket, raw head with each line ending in CRLF, bytes
    after the head)."""
    s = srv.connect(timeout=TIMEOUT)
    key = key if key is not None else base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, head + b"\r\n" if head else head, rest


def read_exact(s, buf, n):
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed with %d of %d bytes: %r" % (len(buf), n, buf))
        buf += chunk
    return buf


def read_frame(s, buf=b""):
    """One unmasked server frame: (opcode, payload, rest)."""
    buf = read_exact(s, buf, 2)
    opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
    at = 2
    if n == 126:
        buf = read_exact(s, buf, 4)
        n, at = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        buf = read_exact(s, buf, 10)
        n, at = struct.unpack("!Q", buf[2:10])[0], 10
    buf = read_exact(s, buf, at + n)
    return opcode, buf[at:at + n], buf[at + n:]


def mask_frame(opcode, payload):
    """A masked client frame (payload under 126 bytes)."""
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_close(s, buf=b""):
    """Reads frames up to the server's close frame; returns (code, reason)."""
    for _ in range(100):
        opcode, payload, buf = read_frame(s, buf)
        if opcode == 0x8:
            if len(payload) < 2:
                return None, b""
            return struct.unpack("!H", payload[:2])[0], payload[2:]
    raise AssertionError("no close frame")


def record(srv, path):
    return requests.get(srv.url + "/record" + path, timeout=TIMEOUT).json()


def status_of(head):
    return int(head.split(b" ", 2)[1]) if head else None


BAD_ACCEPT = sorted(set(cases.ACCEPT) - {"sub-offered", "none", "sub-empty", "sub-in-headers"})


@pytest.mark.parametrize("case", BAD_ACCEPT)
def test_invalid_accept_raises_in_send_and_the_client_gets_500(shared, case):
    path = "/accept/" + case
    s, head, _ = open_handshake(shared, path)
    s.close()
    assert status_of(head) == 500, head
    assert b"injected" not in head.lower()
    assert record(shared, path)["raised"] in VALUE_ERRORS
    assert shared.proc.poll() is None


def test_valid_accept_fields_are_in_the_101(shared):
    s, head, _ = open_handshake(shared, "/accept/sub-offered")
    s.close()
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert b"\r\nsec-websocket-protocol: chat\r\n" in head.lower() and b"\r\nx-extra: yes" in head.lower(), head
    for case in ("none", "sub-empty"):
        s, head, _ = open_handshake(shared, "/accept/" + case)
        s.close()
        assert head.startswith(b"HTTP/1.1 101 ") and b"sec-websocket-protocol" not in head.lower(), head
    s, head, _ = open_handshake(shared, "/accept/sub-in-headers")
    s.close()
    assert head.startswith(b"HTTP/1.1 101 ") and head.lower().count(b"sec-websocket-protocol") == 1, head
    assert b"\r\nsec-websocket-protocol: superchat\r\n" in head.lower(), head


BAD_DENY = sorted(set(cases.DENY) - {"ok-401"})


@pytest.mark.parametrize("case", BAD_DENY)
def test_invalid_denial_raises_in_send_and_the_client_gets_500(shared, case):
    path = "/deny/" + case
    s, head, _ = open_handshake(shared, path)
    s.close()
    assert status_of(head) == 500, head
    assert b"injected" not in head.lower()
    assert record(shared, path)["raised"] in VALUE_ERRORS
    assert shared.proc.poll() is None


def test_valid_denial_goes_out(shared):
    s, head, rest = open_handshake(shared, "/deny/ok-401")
    s.close()
    assert status_of(head) == 401 and b"\r\nx-extra: yes" in head.lower(), head
    assert rest == b"denied"


BAD_CLOSE = sorted(c for c in cases.CLOSE if not c.startswith("ok-"))


@pytest.mark.parametrize("case", BAD_CLOSE)
def test_invalid_close_raises_in_send_and_the_peer_gets_1011(shared, case):
    path = "/close/" + case
    s, head, rest = open_handshake(shared, path)
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        code, _ = read_close(s, rest)
    finally:
        s.close()
    assert code == 1011
    assert record(shared, path)["raised"] in VALUE_ERRORS
    assert shared.proc.poll() is None


@pytest.mark.parametrize("case,code,reason", [("ok-4999", 4999, b"y" * 123), ("ok-1000", 1000, b""),
                                               ("ok-default", 1000, b"")])
def test_valid_close_goes_out(shared, case, code, reason):
    s, head, rest = open_handshake(shared, "/close/" + case)
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert read_close(s, rest) == (code, reason)
    finally:
        s.close()
    assert record(shared, "/close/" + case)["raised"] is None


# --- a sibling: an exception from bool(more_body) was left set while send() went on ---------------

def test_more_body_whose_bool_raises_is_the_apps_error(shared):
    s, head, _ = open_handshake(shared, "/more-body-raises")
    s.close()
    assert status_of(head) == 500, head
    assert record(shared, "/more-body-raises") == {"raised": "ZeroDivisionError", "message": "bool() of more_body"}
    # Over HTTP, as any malformed body after http.response.start
    # (test_broken_apps.py::test_asgi_malformed_body_after_the_start_closes_the_connection).
    with pytest.raises(requests.ConnectionError):
        requests.get(shared.url + "/http-more-body-raises", timeout=TIMEOUT)
    assert record(shared, "/http-more-body-raises") == {"raised": "ZeroDivisionError",
                                                        "message": "bool() of more_body"}
