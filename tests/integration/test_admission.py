"""Admission (issue 12): --limit-concurrency bounds the requests the apps hold
at once, for ASGI as for WSGI (beyond it 503 with Retry-After), and
--worker-connections bounds the connections a process keeps open (beyond it
new connections wait in the listen backlog)."""
import select

import pytest

from conftest import poll, read_response, run_trestle, ws_handshake

GET_HOLD = b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
GET_OK = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"


def held(srv, count, flag_path):
    """Starts `count` /hold requests and waits until the app has each of them."""
    socks = []
    for i in range(count):
        s = srv.connect()
        s.sendall(GET_HOLD)
        socks.append(s)
        poll(lambda: srv.log().count("holding") >= i + 1, timeout=10)
        assert srv.log().count("holding") >= i + 1, srv.log()
    return socks


@pytest.mark.parametrize("app", ["admission_app:wsgi", "admission_app:asgi"])
def test_requests_beyond_the_limit_get_503_until_a_place_frees(serve, tmp_path, app):
    flag = tmp_path / "go"
    srv = serve(app, "--limit-concurrency", "2", "--threads", "4", "--retry-after", "7",
                env={"HOLD_FLAG": str(flag)})
    holders = held(srv, 2, flag)
    extra = srv.connect()
    extra.sendall(GET_OK)
    status, headers, body, _ = read_response(extra)
    assert status == 503
    assert headers.get("retry-after") == "7"
    extra.close()

    flag.write_text("go")
    for s in holders:
        status, _, body, _ = read_response(s)
        assert (status, body) == (200, b"ok")
        s.close()

    def answered():
        s = srv.connect()
        s.sendall(GET_OK)
        st, _, b, _ = read_response(s)
        s.close()
        return st == 200 and b == b"ok"

    # The places come back when the apps finish, just after the responses.
    assert poll(answered, timeout=10)


def test_a_websocket_session_holds_a_place(serve, tmp_path):
    srv = serve("admission_app:asgi", "--limit-concurrency", "1", env={"HOLD_FLAG": str(tmp_path / "go")})
    ws = ws_handshake(srv, "/chat")
    srv.wait_log("ws holding")
    s = srv.connect()
    s.sendall(GET_OK)
    assert read_response(s)[0] == 503
    s.close()
    ws.close()   # the app sees websocket.disconnect and ends: its place comes back

    def answered():
        c = srv.connect()
        c.sendall(GET_OK)
        st = read_response(c)[0]
        c.close()
        return st == 200

    assert poll(answered, timeout=10)


def test_without_a_limit_nothing_is_refused(serve, tmp_path):
    flag = tmp_path / "go"
    srv = serve("admission_app:asgi", env={"HOLD_FLAG": str(flag)})
    holders = held(srv, 5, flag)
    s = srv.connect()
    s.sendall(GET_OK)
    assert read_response(s)[0] == 200
    flag.write_text("go")
    for h in holders:
        assert read_response(h)[0] == 200
        h.close()
    s.close()


def test_connections_beyond_worker_connections_wait_in_the_backlog(serve, tmp_path):
    srv = serve("admission_app:asgi", "--worker-connections", "2", env={"HOLD_FLAG": str(tmp_path / "go")})
    first, second = srv.connect(), srv.connect()
    for s in (first, second):
        s.sendall(GET_OK)
        assert read_response(s)[0] == 200   # both open, keep-alive
    third = srv.connect()   # the kernel completes the handshake; trestle does not take it
    third.sendall(GET_OK)
    readable, _, _ = select.select([third], [], [], 0.5)
    assert not readable, "a connection past --worker-connections was served"
    srv.wait_log("worker-connections")
    first.close()
    status, _, body, _ = read_response(third, timeout=10)
    assert (status, body) == (200, b"ok")
    second.close()
    third.close()


@pytest.mark.parametrize("flag", ["--limit-concurrency", "--worker-connections"])
def test_a_bad_limit_is_a_usage_error(flag):
    r = run_trestle("admission_app:asgi", flag, "0")
    assert r.returncode == 2, r.stderr
    assert flag in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
