"""The native ASGI 3 adapter, end to end, against raw fixture apps (tests/apps/asgi_cases.py).

The fixture apps record every message they receive and send; GET /__record?rid=ID
returns that record, so these tests assert exact message order and contents.
WebSocket is out of scope here.
"""
import hashlib
import json
import os
import random
import re
import signal
import socket
import time

import pytest
import requests

from conftest import poll, read_head, read_response, recv_until_closed, run_trestle

APP = "asgi_cases:app"
TIMEOUT = 10
MB = 1024 * 1024
# A request left hanging by a failed assertion must not hold up teardown for the default 30 s.
QUICK = ("--graceful-timeout", "3")


# --- helpers -------------------------------------------------------------------------------------

def get_record(srv, rid, done=True, timeout=10.0, until=None):
    """Polls /__record until the record exists (and the app finished, or `until(rec)` holds)."""
    last = {}

    def attempt():
        r = requests.get(srv.url + "/__record", params={"rid": rid}, timeout=TIMEOUT)
        if r.status_code != 200:
            return None
        rec = r.json()
        last["rec"] = rec
        if until is not None:
            return rec if until(rec) else None
        if done and not rec["done"]:
            return None
        return rec

    rec = poll(attempt, timeout)
    assert rec, "record %r never reached the expected state; last: %r" % (rid, last.get("rec"))
    return rec


def marks(rec, name=None):
    return [e for e in rec["events"] if e["ev"] == "mark" and (name is None or e["name"] == name)]


def messages(rec):
    """The recorded recv/send traffic as (direction, message) pairs, marks left out."""
    return [(e["ev"], e.get("msg")) for e in rec["events"] if e["ev"] in ("recv", "send")]


def parse_raw(data):
    """Splits a whole (closed) raw response into (status, {lower name: value}, body bytes)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no complete head in %r" % data[:200]
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    return int(lines[0].split(" ")[1]), headers, body


def dechunk(data):
    """Decodes a chunked body in linear time. Returns (body, complete: saw the 0-size chunk)."""
    out = []
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return b"".join(out), False
        size = int(data[pos:eol].split(b";")[0], 16)
        if size == 0:
            return b"".join(out), data[eol + 2:eol + 4] == b"\r\n"
        start = eol + 2
        if len(data) < start + size + 2:
            out.append(data[start:start + size])
            return b"".join(out), False
        out.append(data[start:start + size])
        pos = start + size + 2


def pattern_bytes(size, seed=1234):
    return random.Random(seed).randbytes(size)


def exchange(srv, raw, timeout=10.0):
    s = srv.connect(timeout=timeout)
    try:
        s.sendall(raw)
        return read_response(s, timeout=timeout)
    finally:
        s.close()


def closed_exchange(srv, raw, timeout=10.0):
    """Sends `raw`, reads until the server closes; returns all bytes."""
    s = srv.connect(timeout=timeout)
    try:
        s.sendall(raw)
        return recv_until_closed(s, timeout=timeout)
    finally:
        s.close()


# --- scope ---------------------------------------------------------------------------------------

def test_http_scope_contents(serve):
    srv = serve(APP, *QUICK)
    srv.wait_log(r"ASGI lifespan not supported by asgi_cases:app; continuing without it")
    s = srv.connect()
    s.sendall(b"POST /scope/caf%C3%A9/a%2Fb/%7e?x=%20y&z=%C3%A9&rid=sc1 HTTP/1.1\r\n"
              b"Host: example.org:81\r\nX-Thing: 1\r\nx-thing: 2\r\nContent-Type: text/plain\r\n"
              b"X-Mixed-CASE: VaLue\r\nContent-Length: 3\r\n\r\nabc")
    status, headers, body, rest = read_response(s)
    assert status == 200 and rest == b""
    assert headers["content-type"] == "application/json"
    sc = json.loads(body)
    assert sc["type"] == "http"
    assert sc["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert sc["http_version"] == "1.1"
    assert sc["method"] == "POST"
    assert sc["scheme"] == "http"
    assert sc["path"] == "/scope/caf\u00e9/a/b/~"
    assert sc["raw_path"] == "/scope/caf%C3%A9/a%2Fb/%7e"
    assert sc["query_string"] == "x=%20y&z=%C3%A9&rid=sc1"
    assert sc["root_path"] == ""
    assert sc["headers"] == [["host", "example.org:81"], ["x-thing", "1"], ["x-thing", "2"],
                             ["content-type", "text/plain"], ["x-mixed-case", "VaLue"], ["content-length", "3"]]
    assert sc["client"] == ["127.0.0.1", s.getsockname()[1]]
    assert sc["server"] == ["127.0.0.1", srv.port]
    # No lifespan ran, so no state.
    assert "state" not in sc
    assert set(sc) - {"_types", "_header_item_type", "_header_part_types"} == {
        "type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string", "root_path",
        "headers", "client", "server", "extensions"}
    types = sc["_types"]
    assert types["path"] == "str" and types["raw_path"] == "bytes" and types["query_string"] == "bytes"
    assert types["method"] == "str" and types["http_version"] == "str" and types["headers"] == "list"
    assert types["client"] in ("tuple", "list") and types["server"] in ("tuple", "list")
    assert sc["_header_part_types"] == ["bytes"]
    s.close()


def test_http10_scope_and_other_methods(serve):
    srv = serve(APP, *QUICK)
    status, _, body, _ = exchange(srv, b"GET /scope/ten HTTP/1.0\r\nHost: x\r\n\r\n")
    sc = json.loads(body)
    assert status == 200
    assert sc["http_version"] == "1.0"
    assert sc["method"] == "GET"
    assert sc["raw_path"] == "/scope/ten" and sc["query_string"] == ""
    status, _, body, _ = exchange(srv, b"PATCH /scope/p?q HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    sc = json.loads(body)
    assert sc["method"] == "PATCH" and sc["http_version"] == "1.1" and sc["query_string"] == "q"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_basic_request_on_each_loop(serve, loop):
    srv = serve(APP, *QUICK, "--loop", loop)
    srv.wait_log(r"serving asgi_cases:app \(ASGI, %s loop\)" % loop)
    r = requests.get(srv.url + "/hello", timeout=TIMEOUT)
    assert r.status_code == 200 and r.text == "Hello, ASGI!"
    assert r.headers["Content-Length"] == "12"
    info = requests.get(srv.url + "/loop", timeout=TIMEOUT).json()
    expected = {"asyncio": "asyncio.unix_events._UnixSelectorEventLoop", "uvloop": "uvloop.Loop"}[loop]
    assert info["loop_class"] == expected
    assert info["trestle_loop_is_running_loop"] is True
    assert info["thread"] != "MainThread"


def test_default_executor_is_the_trestle_pool(serve):
    srv = serve(APP, *QUICK)
    info = requests.get(srv.url + "/executor", timeout=TIMEOUT).json()
    assert not info["executor_thread"].startswith("ThreadPoolExecutor")
    assert info["executor_thread"].startswith("Dummy-")
    assert info["executor_class"] == "_DummyThread"
    assert info["executor_ident"] != info["loop_ident"]
    assert info["executor_thread"] not in ("MainThread", info["loop_thread"])
    assert info["to_thread"].startswith("Dummy-") and info["to_thread"] != info["loop_thread"]
    # trestle.loop() is the server's loop from a pool thread too.
    assert info["trestle_loop_from_pool_thread"] is True


@pytest.mark.parametrize("path,expected", [("/hello", b"Hello, ASGI!"), ("/streamed", b"alpha,beta,gamma")])
def test_quiet_keep_alive_connection_after_an_asgi_response_still_times_out(serve, tmp_path, path, expected):
    # The loop thread writes a response straight to the socket (whole, or
    # streamed in several body messages) and posts no wakeup to the
    # connection; the watchdog must still notice the finished request, start
    # the keep-alive timeout and close the connection, and the access log
    # must time the request, not the idle wait after it.
    log = tmp_path / "access.log"
    srv = serve(APP, *QUICK, "--keepalive-timeout", "0.5", "--access-log", str(log))
    s = srv.connect()
    s.sendall(b"GET %s?rid=quiet HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    status, headers, body, rest = read_response(s)
    assert (status, body, rest) == (200, expected, b"") and "connection" not in headers
    start = time.monotonic()
    s.settimeout(5)
    assert s.recv(1) == b""   # closed by the server, silently
    assert time.monotonic() - start < 4
    s.close()
    line = poll(lambda: next((l for l in log.read_text().splitlines() if "rid=quiet" in l), None))
    assert line.split('" 200 ')[0].endswith("GET %s?rid=quiet HTTP/1.1" % path)
    assert float(line.rsplit(" ", 1)[1]) < 0.4, line   # not the ~0.5 s the client sat idle


def test_graceful_stop_does_not_wait_for_a_quiet_asgi_keep_alive_connection(serve):
    srv = serve(APP, "--graceful-timeout", "15")
    s = srv.connect()
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, _ = read_response(s)
    assert (status, body) == (200, b"Hello, ASGI!")
    start = time.monotonic()
    assert srv.stop(timeout=20) == 0
    assert time.monotonic() - start < 8, "waited for the idle connection instead of closing it"
    s.settimeout(5)
    assert s.recv(1) == b""
    s.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_each_request_runs_in_an_asyncio_task_or_the_apps_task_factory(serve, loop):
    srv = serve("asgi_task_factory:app", *QUICK, "--loop", loop)
    get = lambda path: requests.get(srv.url + path, timeout=TIMEOUT).text
    # Without a factory: a plain asyncio Task, named by the server.
    assert get("/") == "Task trestle-asgi 0"
    assert get("/install") == "Task trestle-asgi 0"
    # Once the app installs one, the server's tasks come from it.
    assert get("/") == "Task from-factory-0 1"
    assert get("/again") == "Task from-factory-1 2"


def test_keep_alive_socket_serves_several_asgi_requests(serve):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    port = s.getsockname()[1]
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert (status, body, rest) == (200, b"Hello, ASGI!", b"") and "connection" not in headers
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nping!!")
    status, headers, body, rest = read_response(s)
    assert (status, body, rest) == (200, b"ping!!", b"") and headers["transfer-encoding"] == "chunked"
    s.sendall(b"GET /streamed HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert (status, body, rest) == (200, b"alpha,beta,gamma", b"")
    s.sendall(b"GET /scope/ka HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, rest = read_response(s)
    assert status == 200 and rest == b"" and json.loads(body)["client"] == ["127.0.0.1", port]
    # Two pipelined requests on the same socket, answered in order.
    s.sendall(b"GET /status?code=201 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, rest = read_response(s)
    assert (status, body) == (201, b"status 201")
    status, _, body, rest = read_response(s, rest)
    assert (status, body, rest) == (200, b"Hello, ASGI!", b"")
    s.close()


# --- receive(): request bodies -----------------------------------------------------------------------

def test_echo_message_order(serve):
    srv = serve(APP, *QUICK)
    status, headers, body, _ = exchange(srv, b"POST /echo?rid=echo1 HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
                                        b"hello world")
    assert status == 200 and body == b"hello world"
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    rec = get_record(srv, "echo1")
    assert rec["outcome"] == "returned"
    assert messages(rec) == [
        ("send", {"type": "http.response.start", "status": 200, "headers": [["content-type", "application/octet-stream"]]}),
        ("recv", {"type": "http.request", "body": "hello world", "more_body": False}),
        ("send", {"type": "http.response.body", "body": "hello world", "more_body": True}),
        ("send", {"type": "http.response.body", "body": "", "more_body": False}),
    ]
    recv = [e for e in rec["events"] if e["ev"] == "recv"][0]
    assert recv["types"] == {"type": "str", "body": "bytes", "more_body": "bool"}


def test_empty_body_is_one_request_message(serve):
    srv = serve(APP, *QUICK)
    status, _, body, _ = exchange(srv, b"GET /echo?rid=echo0 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and body == b""
    rec = get_record(srv, "echo0")
    assert [m for d, m in messages(rec) if d == "recv"] == [{"type": "http.request", "body": "", "more_body": False}]


def test_echo_streams_chunks_before_the_body_is_complete(serve):
    # Bodies up to 64 KiB may be read ahead before the app starts; this one is larger.
    srv = serve(APP, *QUICK)
    s = srv.connect()
    first, second = b"a" * 100000, b"b" * 100000
    s.sendall(b"POST /echo?rid=echo2 HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + first)
    status, fields, rest = read_head(s)
    assert status == 200 and ("Transfer-Encoding", "chunked") in fields
    s.settimeout(10)
    deadline = time.monotonic() + 10
    # The whole first half comes back before the client sends the second.
    while dechunk(rest)[0] != first:
        assert time.monotonic() < deadline and len(dechunk(rest)[0]) <= len(first), len(dechunk(rest)[0])
        data = s.recv(65536)
        assert data, "closed early"
        rest += data
    s.sendall(second)
    while not dechunk(rest)[1]:
        assert time.monotonic() < deadline
        data = s.recv(65536)
        assert data, "closed early"
        rest += data
    assert dechunk(rest) == (first + second, True)
    rec = get_record(srv, "echo2")
    recvs = [m for d, m in messages(rec) if d == "recv"]
    assert all(m["type"] == "http.request" for m in recvs)
    assert [m["more_body"] for m in recvs] == [True] * (len(recvs) - 1) + [False]
    s.close()


def test_10mb_upload_is_streamed_in_chunks(serve):
    srv = serve(APP, *QUICK)
    data = pattern_bytes(10 * MB, seed=7)
    r = requests.post(srv.url + "/upload", data=data, timeout=30)
    assert r.status_code == 200
    info = r.json()
    assert info["size"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["messages"] >= 10 and info["max_chunk"] <= 1 * MB
    assert info["all_but_last_more"] is True and info["last_more"] is False

    # The same with a chunked request body.
    def gen():
        for off in range(0, len(data), MB):
            yield data[off:off + MB]
    r = requests.post(srv.url + "/upload", data=gen(), timeout=30)
    info = r.json()
    assert info["size"] == len(data) and info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["messages"] >= 10 and info["max_chunk"] <= 1 * MB and info["last_more"] is False


def test_10mb_download_is_streamed_chunked(serve):
    srv = serve(APP, *QUICK)
    size = 10 * MB
    r = requests.get(srv.url + "/download", params={"size": size, "chunk": 65536}, timeout=30)
    assert r.status_code == 200
    assert r.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in r.headers
    assert len(r.content) == size
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(pattern_bytes(size)).digest()


# --- receive(): http.disconnect ---------------------------------------------------------------------

@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_disconnect_mid_body(serve, framing):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    half = b"h" * 50000
    if framing == "content-length":
        s.sendall(b"POST /disconnect-mid-body?rid=dmb HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + half)
    else:
        s.sendall(b"POST /disconnect-mid-body?rid=dmb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"%x\r\n" % len(half) + half + b"\r\n")
    # The app has the first half before the client goes away: the body is streamed.
    get_record(srv, "dmb", until=lambda rec: rec["received_bytes"] == len(half))
    s.close()
    rec = get_record(srv, "dmb", timeout=15)
    assert rec["outcome"] == "returned"
    recvs = [m for d, m in messages(rec) if d == "recv"]
    assert recvs[-1] == {"type": "http.disconnect"}
    assert all(m["type"] == "http.request" and m["more_body"] is True for m in recvs[:-1])
    assert sum(len(m["body"]) if isinstance(m["body"], str) else m["body"]["len"] for m in recvs[:-1]) == len(half)
    assert [m["name"] for m in marks(rec)] == ["saw-disconnect"]
    assert not [e for e in rec["events"] if e["ev"] == "send"]


def test_receive_after_body_waits_for_the_client_to_go(serve):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    s.sendall(b"POST /disconnect-after-body?rid=dab HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde")
    rec = get_record(srv, "dab", until=lambda rec: marks(rec, "pending-after-0.3s"))
    assert marks(rec, "pending-after-0.3s")[0]["pending"] is True
    s.close()
    rec = get_record(srv, "dab", timeout=15)
    assert not marks(rec, "no-disconnect-in-10s"), "http.disconnect never arrived after the client closed"
    assert marks(rec, "receive-returned")[0]["type"] == "http.disconnect"
    assert messages(rec) == [("recv", {"type": "http.request", "body": "abcde", "more_body": False}),
                             ("recv", {"type": "http.disconnect"})]


def test_a_client_gone_with_its_request_is_seen_as_disconnected(serve):
    # The request and the client's end of stream come in one batch, so epoll
    # reports them once: the watch on the connection must still see the end.
    srv = serve(APP, *QUICK)
    for i in range(3):
        rid = "dgone%d" % i
        s = srv.connect()
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[0] == 200
        # The server now waits for the next request. Stopped, it gets the
        # request and the end of stream in one epoll event when it resumes.
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            s.sendall(b"POST /disconnect-after-body?rid=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
                      % rid.encode())
            s.close()
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        rec = get_record(srv, rid, timeout=15)
        assert not marks(rec, "no-disconnect-in-10s"), "http.disconnect never arrived after the client closed"
        # Seen while the app waits after the body, or already in place of it.
        assert ("recv", {"type": "http.disconnect"}) in messages(rec), rec


def test_receive_after_body_returns_disconnect_once_the_response_is_complete(serve):
    srv = serve(APP, *QUICK)
    status, headers, body, rest = exchange(
        srv, b"POST /disconnect-after-response?rid=dar HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz")
    assert status == 200 and body == b"part1;part2" and headers["transfer-encoding"] == "chunked"
    rec = get_record(srv, "dar")
    assert rec["outcome"] == "returned"
    assert marks(rec, "pending-before-response")[0]["pending"] is True
    assert marks(rec, "pending-mid-response")[0]["pending"] is True
    after = marks(rec, "after-response")[0]
    assert after["done"] is True and after["type"] == "http.disconnect"
    assert marks(rec, "receive-again")[0]["type"] == "http.disconnect"
    assert messages(rec) == [
        ("recv", {"type": "http.request", "body": "xyz", "more_body": False}),
        ("send", {"type": "http.response.start", "status": 200, "headers": [["content-type", "text/plain"]]}),
        ("send", {"type": "http.response.body", "body": "part1;", "more_body": True}),
        ("send", {"type": "http.response.body", "body": "part2"}),
        ("recv", {"type": "http.disconnect"}),
        ("recv", {"type": "http.disconnect"}),
    ]


def test_receive_can_be_called_again_after_a_cancelled_receive(serve):
    # asyncio.wait_for / anyio cancel scopes cancel a pending receive(); the app may call it again.
    srv = serve(APP, *QUICK)
    r = requests.post(srv.url + "/receive-cancel?rid=rc", data=b"body", timeout=TIMEOUT)
    assert r.status_code == 200 and r.text == "ok"
    rec = get_record(srv, "rc")
    assert marks(rec, "first-receive-timed-out")
    assert not marks(rec, "second-receive-error"), marks(rec, "second-receive-error")
    assert marks(rec, "second-receive")[0]["type"] == "http.disconnect"


def test_receive_cancelled_twice_before_the_response(serve):
    # Starlette's Request.is_disconnected() calls receive() and cancels it at once; apps poll it
    # repeatedly while producing a response. Each cancelled call must leave receive() usable.
    srv = serve(APP, *QUICK)
    r = requests.post(srv.url + "/receive-cancel-twice?rid=rc2", data=b"body", timeout=TIMEOUT)
    assert r.status_code == 200 and r.text == "ok"
    rec = get_record(srv, "rc2")
    assert [(m["name"], m["attempt"]) for m in marks(rec)] == [("receive-timed-out", 0), ("receive-timed-out", 1)], \
        marks(rec)


def test_send_after_client_disconnect_raises_oserror(serve):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    s.sendall(b"GET /slow?rid=slow1&n=400&interval=0.02 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, rest = read_head(s)
    assert status == 200
    deadline = time.monotonic() + 10
    while b"tick 1\n" not in rest:
        assert time.monotonic() < deadline
        data = s.recv(65536)
        assert data
        rest += data
    s.close()
    rec = get_record(srv, "slow1", timeout=15)
    assert not marks(rec, "completed"), "the app streamed to the end although the client was gone"
    caught = marks(rec, "caught")
    assert caught and caught[0]["exc"] in ("OSError", "ConnectionError", "ConnectionResetError", "BrokenPipeError")
    assert caught[0]["text"] == "the client has disconnected"
    errors = [e for e in rec["events"] if e["ev"] == "send-error"]
    assert len(errors) == 1 and rec["events"][rec["events"].index(errors[0]) - 1]["ev"] == "send"
    assert marks(rec, "after-error-receive")[0]["type"] == "http.disconnect"
    # A gone client is not an app error.
    assert "exception in ASGI app while handling GET /slow" not in srv.log()


# --- send(): framing and headers ---------------------------------------------------------------------

def test_content_length_for_one_body_chunked_for_streams(serve):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    s.sendall(b"GET /single HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert status == 200 and body == b"one shot body" and rest == b""
    assert headers["content-length"] == "13" and "transfer-encoding" not in headers
    s.sendall(b"GET /streamed HTTP/1.1\r\nHost: x\r\n\r\n")
    status, fields, rest = read_head(s)
    names = [k.lower() for k, _ in fields]
    assert ("Transfer-Encoding", "chunked") in fields and "content-length" not in names
    deadline = time.monotonic() + 10
    while not rest.endswith(b"0\r\n\r\n"):
        assert time.monotonic() < deadline
        rest += s.recv(65536)
    assert rest == b"6\r\nalpha,\r\n5\r\nbeta,\r\n5\r\ngamma\r\n0\r\n\r\n"
    s.close()
    # HTTP/1.0: no chunked encoding; the close ends a streamed body.
    status, headers, body = parse_raw(closed_exchange(srv, b"GET /streamed HTTP/1.0\r\nHost: x\r\n\r\n"))
    assert status == 200 and body == b"alpha,beta,gamma"
    assert "transfer-encoding" not in headers and "content-length" not in headers
    assert headers["connection"].lower() == "close"
    status, headers, body = parse_raw(closed_exchange(srv, b"GET /single HTTP/1.0\r\nHost: x\r\n\r\n"))
    assert status == 200 and body == b"one shot body" and headers["content-length"] == "13"
    # No headers, no body key at all: an empty final body with Content-Length: 0.
    status, headers, body, _ = exchange(srv, b"GET /body-omitted HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and body == b"" and headers["content-length"] == "0"
    assert "transfer-encoding" not in headers


def test_status_codes_and_bodiless_responses(serve):
    srv = serve(APP, *QUICK)
    for code in (201, 404, 418, 503):
        r = requests.get(srv.url + "/status", params={"code": code}, timeout=TIMEOUT)
        assert r.status_code == code and r.text == "status %d" % code and r.headers["x-code"] == str(code)
    s = srv.connect()
    s.sendall(b"GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    status, fields, rest = read_head(s)
    assert status == 204
    assert "transfer-encoding" not in [k.lower() for k, _ in fields]
    status, _, body, rest = read_response(s, rest)
    assert (status, body, rest) == (200, b"Hello, ASGI!", b"")
    s.close()


def test_response_headers_from_an_iterable_keep_order_and_duplicates(serve):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    s.sendall(b"GET /headers-iter HTTP/1.1\r\nHost: x\r\n\r\n")
    status, fields, rest = read_head(s)
    assert status == 200
    app_fields = [f for f in fields if f[0].lower() in ("x-one", "set-cookie", "x-two")]
    assert app_fields == [("x-one", "1"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("x-two", "2")]
    assert dict((k.lower(), v) for k, v in fields)["content-length"] == "7"
    s.close()


def test_hop_by_hop_headers_are_dropped(serve):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    s.sendall(b"GET /hop HTTP/1.1\r\nHost: x\r\n\r\n")
    status, fields, rest = read_head(s)
    names = [k.lower() for k, _ in fields]
    assert status == 200
    for hop in ("connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-authenticate"):
        assert hop not in names, fields
    assert names.index("x-before") < names.index("x-after")
    assert dict((k.lower(), v) for k, v in fields)["content-length"] == "8"
    assert rest == b"hop body"
    # The connection stays usable.
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, rest = read_response(s)
    assert (status, body, rest) == (200, b"Hello, ASGI!", b"")
    s.close()


def test_app_connection_close_is_honoured(serve):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    s.sendall(b"GET /conn-close HTTP/1.1\r\nHost: x\r\n\r\n")
    data = recv_until_closed(s)
    status, headers, body = parse_raw(data)
    assert status == 200 and body == b"bye"
    assert headers["connection"].lower() == "close" and headers["content-length"] == "3"
    s.close()


def test_backpressure_suspends_send_above_output_hwm(serve):
    srv = serve(APP, *QUICK, "--output-hwm", "65536")
    size = 48 * MB
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(10)
    s.connect((srv.host, srv.port))
    s.sendall(("GET /download-quiet?rid=bp&size=%d&chunk=65536 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               % size).encode())
    # Not reading: the app's sends must stall well short of the whole body, and the loop stays responsive.
    samples = []
    deadline = time.monotonic() + 10
    stable_since = None
    while time.monotonic() < deadline:
        rec = get_record(srv, "bp", done=False)
        samples.append(rec["sent_bytes"])
        if len(samples) >= 2 and samples[-1] == samples[-2] and samples[-1] > 0:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 0.5:
                break
        else:
            stable_since = None
        time.sleep(0.05)
    stalled = samples[-1]
    assert 0 < stalled < 16 * MB, "sent %d of %d bytes without the client reading" % (stalled, size)
    assert not rec["done"]
    data = recv_until_closed(s, limit=size + MB, timeout=20)
    s.close()
    status, headers, raw_body = parse_raw(data)
    body, complete = dechunk(raw_body)
    assert status == 200 and complete and len(body) == size
    assert hashlib.sha256(body).digest() == hashlib.sha256(pattern_bytes(size)).digest()
    rec = get_record(srv, "bp")
    assert rec["outcome"] == "returned" and marks(rec, "download-complete")


# --- error rules -------------------------------------------------------------------------------------

def test_exception_before_start_is_500_with_traceback(serve):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    s.sendall(b"GET /raise-before-start?rid=e1 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert status == 500
    srv.wait_log(r"(?s)\[ERROR\] exception in ASGI app while handling GET /raise-before-start\?rid=e1:\n"
                 r"Traceback \(most recent call last\):.*ValueError: boom-before-start")
    rec = get_record(srv, "e1")
    assert rec["outcome"] == "raised ValueError: boom-before-start"
    # The 500 is a complete response: the connection goes on.
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, _ = read_response(s)
    assert (status, body) == (200, b"Hello, ASGI!")
    s.close()


def test_exception_after_start_closes_the_connection(serve):
    srv = serve(APP, *QUICK, "--keepalive-timeout", "1")
    data = closed_exchange(srv, b"GET /raise-after-start HTTP/1.1\r\nHost: x\r\n\r\n")
    srv.wait_log(r"(?s)exception in ASGI app while handling GET /raise-after-start:.*ValueError: boom-after-start")
    # The response had started (http.response.start was sent): the server must not turn it into a
    # complete 500; it closes the connection instead.
    assert not data.startswith(b"HTTP/1.1 500"), "got a complete 500 response: %r" % data
    if data:
        status, headers, body = parse_raw(data)
        assert status == 200 and headers.get("transfer-encoding") == "chunked"
        assert not dechunk(body)[1]


def test_exception_after_body_truncates_and_closes(serve):
    srv = serve(APP, *QUICK)
    data = closed_exchange(srv, b"GET /raise-after-body HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = parse_raw(data)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == b"8\r\npartial-\r\n"   # no terminating 0-size chunk
    srv.wait_log(r"(?s)exception in ASGI app while handling GET /raise-after-body:.*ValueError: boom-after-body")

    data = closed_exchange(srv, b"GET /raise-after-body-cl HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = parse_raw(data)
    assert status == 200 and headers["content-length"] == "100" and body == b"0123456789"
    srv.wait_log(r"(?s)ValueError: boom-after-body-cl")


def test_return_without_response_is_500_and_logged(serve):
    srv = serve(APP, *QUICK)
    status, _, _, _ = exchange(srv, b"GET /return-no-response?rid=e2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 500
    srv.wait_log(r"\[ERROR\] ASGI app returned without sending a response for GET /return-no-response\?rid=e2; "
                 r"answering 500")
    assert get_record(srv, "e2")["outcome"] == "returned"


def test_return_with_incomplete_response_closes(serve):
    srv = serve(APP, *QUICK)
    data = closed_exchange(srv, b"GET /return-incomplete HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = parse_raw(data)
    assert status == 200 and headers["transfer-encoding"] == "chunked" and body == b"5\r\nhalf-\r\n"
    srv.wait_log(r"\[ERROR\] ASGI app returned before completing the response for GET /return-incomplete; closing")
    # Only a start, no body at all: closed too.
    data = closed_exchange(srv, b"GET /return-after-start HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not data.startswith(b"HTTP/1.1 500"), data
    srv.wait_log(r"ASGI app returned before completing the response for GET /return-after-start; closing")


@pytest.mark.parametrize("path,label,text", [
    ("/order-body-first", "body-before-start",
     "Expected ASGI message 'http.response.start', but got 'http.response.body'."),
    ("/order-unknown-first", "unknown-before-start",
     "Expected ASGI message 'http.response.start', but got 'http.response.bogus'."),
])
def test_message_before_start_raises_runtimeerror_in_the_app(serve, path, label, text):
    srv = serve(APP, *QUICK)
    rid = label
    r = requests.get(srv.url + path, params={"rid": rid}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.text == "recovered" and r.headers["Content-Length"] == "9"
    rec = get_record(srv, rid)
    assert marks(rec, "caught") == [{"ev": "mark", "name": "caught", "label": label, "exc": "RuntimeError", "text": text}]
    errors = [e for e in rec["events"] if e["ev"] == "send-error"]
    assert errors == [{"ev": "send-error", "exc": "RuntimeError", "text": text}]
    assert rec["outcome"] == "returned"


def test_second_start_raises_runtimeerror(serve):
    srv = serve(APP, *QUICK)
    r = requests.get(srv.url + "/order-start-twice", params={"rid": "o2"}, timeout=TIMEOUT)
    assert r.status_code == 201 and r.text == "after second start"
    assert r.headers["x-first"] == "1" and "x-second" not in r.headers
    rec = get_record(srv, "o2")
    assert [(m["label"], m["exc"], m["text"]) for m in marks(rec, "caught")] == [
        ("second-start", "RuntimeError", "Expected ASGI message 'http.response.body', but got 'http.response.start'.")]
    assert [(e["ev"], e.get("msg", {}).get("type")) for e in rec["events"] if e["ev"] != "mark"] == [
        ("send", "http.response.start"), ("send", "http.response.start"), ("send-error", None),
        ("send", "http.response.body")]


def test_messages_after_completion_raise_runtimeerror(serve):
    srv = serve(APP, *QUICK)
    s = srv.connect()
    s.sendall(b"GET /order-after-complete?rid=o3 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest = read_response(s)
    assert (status, body) == (200, b"complete") and headers["content-length"] == "8"
    rec = get_record(srv, "o3")
    assert [(m["label"], m["exc"], m["text"]) for m in marks(rec, "caught")] == [
        ("body-after-complete", "RuntimeError",
         "Unexpected ASGI message 'http.response.body' sent, after response already completed."),
        ("start-after-complete", "RuntimeError",
         "Unexpected ASGI message 'http.response.start' sent, after response already completed."),
    ]
    # Nothing extra reached the wire: the next response on the socket is clean.
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, rest2 = read_response(s, rest)
    assert (status, body, rest2) == (200, b"Hello, ASGI!", b"")
    s.close()


# --- interface detection -----------------------------------------------------------------------------

def test_object_with_async_call_is_asgi3(serve):
    srv = serve("asgi_cases:asgi3_object")
    srv.wait_log(r"serving asgi_cases:asgi3_object \(ASGI, ")
    r = requests.get(srv.url + "/", timeout=TIMEOUT)
    assert r.status_code == 200 and r.text == "asgi3 object"


def test_asgi2_class_is_wrapped(serve):
    srv = serve("asgi_cases:Asgi2App")
    srv.wait_log(r"serving asgi_cases:Asgi2App \(ASGI, ")
    r = requests.post(srv.url + "/two/x", data=b"payload", timeout=TIMEOUT)
    assert r.status_code == 200
    info = r.json()
    assert info["kind"] == "asgi2" and info["path"] == "/two/x" and info["body"] == "payload"


def test_plain_function_is_wsgi(serve):
    srv = serve("asgi_cases:wsgi_app")
    srv.wait_log(r"serving asgi_cases:wsgi_app \(WSGI\)")
    r = requests.get(srv.url + "/", timeout=TIMEOUT)
    assert r.status_code == 200 and r.text.startswith("wsgi ")


def test_interface_asgi_forces_asgi3(serve):
    srv = serve("asgi_cases:plain_def_asgi", "--interface", "asgi")
    srv.wait_log(r"serving asgi_cases:plain_def_asgi \(ASGI, ")
    r = requests.get(srv.url + "/", timeout=TIMEOUT)
    assert r.status_code == 200 and r.text == "forced asgi"


# --- lifespan ----------------------------------------------------------------------------------------

def test_lifespan_state_reaches_requests_and_shutdown_runs_on_sigterm(serve):
    srv = serve("asgi_cases:lifespan_state_app")
    assert "lifespan not supported" not in srv.log()
    a = requests.get(srv.url + "/a", timeout=TIMEOUT).json()
    assert a["has_state"] is True and a["token"] == "from-startup"
    assert a["lifespan_log"] == ["lifespan.startup"]
    assert a["added_before"] is None and a["shared_list_before"] == []
    b = requests.get(srv.url + "/b", timeout=TIMEOUT).json()
    # Each request gets a shallow copy: a key set by /a is not seen by /b; the shared list is.
    assert b["token"] == "from-startup" and b["added_before"] is None and b["shared_list_before"] == ["/a"]
    assert srv.stop() == 0
    log = srv.log()
    assert "lifespan_state_app: shutdown ran after 1 startup(s)" in log
    assert "lifespan shutdown failed" not in log


def test_lifespan_off_skips_startup_and_state(serve):
    srv = serve("asgi_cases:lifespan_state_app", "--lifespan", "off")
    a = requests.get(srv.url + "/a", timeout=TIMEOUT).json()
    assert a == {"has_state": False, "lifespan_log": []}


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_lifespan_startup_failed_exits_with_the_message(mode):
    r = run_trestle("asgi_cases:lifespan_failed_app", "--bind", "127.0.0.1:0", "--lifespan", mode, timeout=20)
    assert r.returncode != 0
    err_lines = [l for l in r.stderr.splitlines() if "trestle: error:" in l]
    assert err_lines == ["trestle: error: ASGI lifespan startup failed for asgi_cases:lifespan_failed_app: "
                         "database unreachable at db:5432"], r.stderr
    assert "listening on" not in r.stderr


def test_lifespan_startup_failed_with_an_unencodable_message_exits_1():
    # The message went through PyUnicode_AsUTF8 unchecked: NULL for a lone
    # surrogate, then a std::string made from NULL (a crash).
    r = run_trestle("asgi_cases:lifespan_failed_surrogate_app", "--bind", "127.0.0.1:0", timeout=20)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert ("trestle: error: ASGI lifespan startup failed for asgi_cases:lifespan_failed_surrogate_app: "
            "bad \\ud800 byte") in r.stderr.splitlines(), r.stderr


def test_lifespan_failed_app_serves_with_lifespan_off(serve):
    srv = serve("asgi_cases:lifespan_failed_app", "--lifespan", "off")
    assert requests.get(srv.url + "/", timeout=TIMEOUT).text == "served without lifespan"


@pytest.mark.parametrize("app", ["lifespan_raise_app", "lifespan_return_app"])
def test_lifespan_raise_or_return_in_auto_mode_means_unsupported(serve, app):
    srv = serve("asgi_cases:" + app)
    srv.wait_log(r"\[INFO\] ASGI lifespan not supported by asgi_cases:%s; continuing without it" % app)
    r = requests.get(srv.url + "/", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"has_state": False}
    assert srv.stop() == 0


@pytest.mark.parametrize("app,why", [("lifespan_raise_app", "exception in lifespan startup"),
                                     ("lifespan_return_app", "the app returned during lifespan startup")])
def test_lifespan_on_requires_support(app, why):
    r = run_trestle("asgi_cases:" + app, "--bind", "127.0.0.1:0", "--lifespan", "on", timeout=20)
    assert r.returncode != 0
    assert ("trestle: error: ASGI lifespan startup failed for asgi_cases:%s: %s" % (app, why)) in r.stderr.splitlines()
    if app == "lifespan_raise_app":
        assert "RuntimeError: lifespan is not for me" in r.stderr


def test_lifespan_shutdown_failed_is_logged(serve):
    srv = serve("asgi_cases:lifespan_shutdown_fails_app")
    assert requests.get(srv.url + "/", timeout=TIMEOUT).text == "ok"
    srv.stop()
    assert re.search(r"\[ERROR\] ASGI lifespan shutdown failed for asgi_cases:lifespan_shutdown_fails_app: "
                     r"could not flush the cache", srv.log()), srv.log()
