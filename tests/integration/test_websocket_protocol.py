"""RFC 6455 corners that Beast 1.81's defaults got wrong (issue 10 item 20), on raw sockets and
with the `websockets` client.

- A peer's close code that no endpoint may send fails the connection with 1002 instead of being
  echoed. Beast already did that for 0-999, 1004-1006 and 1014-2999; 5000 and above were echoed.
- After a close the app started, the app's websocket.disconnect carries the code the peer
  answered with (it was 1006 even when the peer answered cleanly).
- The app's own close code is checked in send() (test_websocket_fields.py: 1005, 1006, 1015,
  under 1000 and from 5000 on raise; 70000 no longer wraps to 4464).
- The handshake itself (a malformed Sec-WebSocket-Key, a wrong Sec-WebSocket-Version) is in
  test_hostile.py's last section.
"""
import asyncio
import os
import struct
import sys
import time

import pytest
import requests
import websockets

from conftest import APPS, SANITIZER_MARKERS, Server, poll, server_env
from test_websocket_fields import mask_frame, open_handshake, read_close

TIMEOUT = 10


@pytest.fixture(scope="module")
def shared():
    srv = Server(["asgi_ws_fields:app", "--bind", "127.0.0.1:0", "--graceful-timeout", "3"], APPS, server_env())
    yield srv
    srv.stop()
    log = srv.log()
    os.unlink(srv.log_path)
    assert not any(marker in log for marker in SANITIZER_MARKERS), log[-6000:]


def record(srv, path):
    return requests.get(srv.url + "/record" + path, timeout=TIMEOUT).json()


@pytest.mark.parametrize("code", [5000, 5001, 65535, 1004, 1005, 1006, 1015, 999, 0, 2999])
def test_peer_close_code_that_may_not_be_sent_fails_with_1002(shared, code):
    path = "/echo-bad-%d" % code
    s, head, rest = open_handshake(shared, path)
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        s.sendall(mask_frame(0x8, struct.pack("!H", code) + b"bye"))
        assert read_close(s, rest)[0] == 1002
    finally:
        s.close()
    assert poll(lambda: record(shared, path)) == {"disconnect": 1002}


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 4000, 4999])
def test_peer_close_code_that_may_be_sent_is_echoed_and_reaches_the_app(shared, code):
    path = "/echo-%d" % code
    s, head, rest = open_handshake(shared, path)
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        s.sendall(mask_frame(0x8, struct.pack("!H", code) + b"bye"))
        assert read_close(s, rest)[0] == code   # Beast echoes the code without the reason
    finally:
        s.close()
    assert poll(lambda: record(shared, path)) == {"disconnect": code}


def test_peer_close_code_split_across_segments_is_still_checked(shared):
    """The close frame arrives one byte per TCP segment (TCP_NODELAY, a pause between bytes)."""
    s, head, rest = open_handshake(shared, "/echo-split")
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        for b in mask_frame(0x8, struct.pack("!H", 65000)):
            s.sendall(bytes([b]))
            # Each byte in its own segment: wait until it has left the socket before the next.
            time.sleep(0.01)
        assert read_close(s, rest)[0] == 1002
    finally:
        s.close()


@pytest.mark.parametrize("code", [4001, 1000, 3000])
def test_app_started_close_reports_the_peers_answer(shared, code):
    """The app closes with `code`; the `websockets` client answers the close handshake with the
    same code (what it does by default); the app's websocket.disconnect carries it, not 1006."""
    path = "/closer/%d" % code

    async def go():
        async with websockets.connect("ws://%s:%d%s" % (shared.host, shared.port, path)) as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.code == code
    asyncio.run(asyncio.wait_for(go(), 30))
    assert poll(lambda: record(shared, path)) == {"disconnect": code}


def test_app_started_close_with_a_raw_peer_answering_another_code(shared):
    """A raw peer answers the app's close (4002) with its own 4003: the app hears 4003."""
    path = "/closer/4002"
    s, head, rest = open_handshake(shared, path)
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert read_close(s, rest)[0] == 4002
        s.sendall(mask_frame(0x8, struct.pack("!H", 4003)))
    finally:
        s.close()
    assert poll(lambda: record(shared, path)) == {"disconnect": 4003}
