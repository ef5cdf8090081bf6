"""WebSocket over ASGI, end to end with the `websockets` client and raw sockets."""
import asyncio
import os
import signal
import time

import pytest
import requests
import websockets

from conftest import recv_until_closed, rss_kb, ws_handshake

APP = "asgi_ws:app"


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def ws_url(srv, path="/echo"):
    return "ws://%s:%d%s" % (srv.host, srv.port, path)


def test_echo_text_bytes_subprotocol_and_headers(serve):
    srv = serve(APP)

    async def go():
        async with websockets.connect(ws_url(srv), subprotocols=["chat", "other"]) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response_headers["x-extra"] == "yes"
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            big = os.urandom(1 << 20)
            await ws.send(big)
            assert await ws.recv() == big
    run(go())


def test_close_codes_both_ways(serve):
    srv = serve(APP)

    async def go():
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send("close-please")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.code == 4001 and info.value.reason == "asked"
        ws = await websockets.connect(ws_url(srv))
        await ws.close(code=4321, reason="bye")
    run(go())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if 4321 in requests.get(srv.url + "/", timeout=10).json()["disconnects"]:
            break
        time.sleep(0.02)
    assert 4321 in requests.get(srv.url + "/", timeout=10).json()["disconnects"]


def test_close_before_accept_is_403_and_denial_response(serve):
    srv = serve(APP)

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as info:
            await websockets.connect(ws_url(srv, "/deny"))
        assert info.value.status_code == 403
        with pytest.raises(websockets.InvalidStatusCode) as info:
            await websockets.connect(ws_url(srv, "/deny-http"))
        assert info.value.status_code == 401
    run(go())


def test_max_size_closes_with_1009(serve):
    srv = serve(APP, "--ws-max-size", "1000")

    async def go():
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send("x" * 1000)
            assert len(await ws.recv()) == 1000
            await ws.send("x" * 1001)
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.code == 1009
    run(go())


def handshake(srv):
    return ws_handshake(srv, "/echo")


def test_silent_peer_is_pinged_then_closed(serve):
    srv = serve(APP, "--ws-idle-timeout", "1")
    s = handshake(srv)
    start = time.monotonic()
    data = recv_until_closed(s, timeout=10)
    elapsed = time.monotonic() - start
    # A ping (opcode 0x9) arrives first; the peer never answers, so it is closed.
    assert data[:1] == b"\x89", data[:10]
    assert elapsed < 8


def test_200_connections_echo_100_messages_each(serve):
    srv = serve(APP)

    async def client(i):
        async with websockets.connect(ws_url(srv), max_queue=None) as ws:
            for j in range(100):
                await ws.send("%d-%d" % (i, j))
            got = [await ws.recv() for _ in range(100)]
            assert got == ["%d-%d" % (i, j) for j in range(100)]
            return len(got)

    async def go():
        counts = await asyncio.gather(*(client(i) for i in range(200)))
        assert sum(counts) == 20000
    run(go(), timeout=120)


def test_websocket_to_a_wsgi_app_is_a_clean_400(serve):
    srv = serve("hello:app")
    s = srv.connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 400 ")


@pytest.mark.skipif(bool(os.environ.get("TRESTLE_SANITIZED")),
                    reason="ASan's quarantine holds freed memory, so RSS says nothing there")
def test_5000_connect_echo_close_cycles_keep_rss_flat(serve):
    srv = serve(APP)

    async def cycles(n, parallel=8):
        async def worker(count):
            for i in range(count):
                async with websockets.connect(ws_url(srv)) as ws:
                    await ws.send("ping %d" % i)
                    assert await ws.recv() == "ping %d" % i
        await asyncio.gather(*(worker(n // parallel) for _ in range(parallel)))

    run(cycles(1000), timeout=120)
    after_first = rss_kb(srv.proc.pid)
    run(cycles(4000), timeout=300)
    after_all = rss_kb(srv.proc.pid)
    assert after_all - after_first < 10 * 1024, (after_first, after_all)
    assert requests.get(srv.url + "/", timeout=10).status_code == 200


def test_graceful_shutdown_closes_websockets_with_1001(serve):
    srv = serve(APP, "--graceful-timeout", "20")

    async def go():
        ws = await websockets.connect(ws_url(srv))
        await ws.send("still here")
        assert await ws.recv() == "still here"
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.code == 1001
        return time.monotonic() - start
    elapsed = run(go())
    assert elapsed < 10
    assert srv.proc.wait(20) == 0
