"""--timeout: a request that runs too long in its app gets 504 (or its
connection closed, if the response had started), the app is interrupted
(WSGI: trestle.RequestTimeout raised in its thread; ASGI and Flask async
views: the task cancelled), and a thread that never comes back is reported
stuck. Fixture apps: tests/apps/timeout_cases.py (WSGI), asgi_timeout.py,
flask_timeout.py."""
import asyncio
import os
import re
import time

import pytest
import requests
import websockets

from conftest import APPS, read_head, recv_until_closed
from upstream_server import Upstream

WSGI = "timeout_cases:app"
ASGI = "asgi_timeout:app"
FLASK = "flask_timeout:app"
# Short, so the tests are quick; the threads that stay stuck in a sleep are
# reported (and let go at shutdown) after the grace.
FLAGS = ("--timeout", "1", "--timeout-grace", "2")


def line_of(fixture, text):
    """The line number of `text` in a fixture app, as a traceback shows it."""
    with open(os.path.join(APPS, fixture)) as fh:
        for n, line in enumerate(fh, 1):
            if text in line:
                return n
    raise AssertionError("%r not in %s" % (text, fixture))


def timed_get(srv, path, timeout=10):
    t0 = time.monotonic()
    r = requests.get(srv.url + path, timeout=timeout)
    return r, time.monotonic() - t0


def assert_answered_at_the_deadline(r, elapsed):
    assert r.status_code == 504, (r.status_code, r.text)
    assert r.headers["connection"] == "close"
    assert 0.8 < elapsed < 5, elapsed


# --- WSGI ------------------------------------------------------------------------

def test_wsgi_sleep_gets_504_at_the_deadline_and_its_stack_is_logged(serve):
    srv = serve(WSGI, *FLAGS)
    r, elapsed = timed_get(srv, "/sleep")
    # time.sleep(30) cannot be interrupted: the server answers without
    # waiting for the thread.
    assert_answered_at_the_deadline(r, elapsed)
    line = line_of("timeout_cases.py", "time.sleep(float(environ.get")
    log = srv.wait_log(r"request timeout: GET /sleep ran longer than --timeout \(1 s\); answered 504; "
                       r"raising trestle.RequestTimeout in its thread, which is at \(most recent call last\):\n"
                       r"(.*\n)*?  File \".*timeout_cases.py\", line %d, in sleep_long\n    time.sleep" % line)
    assert "came back" not in log


def test_wsgi_thread_stuck_in_c_code_has_its_worker_replaced(serve):
    # --timeout runs the supervisor (options::supervised): the worker tells
    # it, which starts a new worker and stops this one; the old worker's
    # shutdown must not wait for its stuck thread (the whole
    # --graceful-timeout, or the 28 s its sleep has left).
    srv = serve(WSGI, *FLAGS, "--graceful-timeout", "30")
    r, _ = timed_get(srv, "/sleep")
    assert r.status_code == 504
    t0 = time.monotonic()
    srv.wait_log(r"\[WARNING\] \[worker 1\] request timeout: thread stuck in C code [0-9.]+ s after its timeout "
                 r"\(GET /sleep, --timeout-grace 2 s\); this worker will be replaced")
    srv.wait_log(r"starting worker 2 .* to replace worker 1 .*\(a thread stuck past --timeout-grace\)")
    srv.wait_log(r"\[worker 1\] a pool thread is stuck in C code \(see above\): not waiting for it")
    srv.wait_log(r"worker 1 \(pid \d+\) stopped")
    assert time.monotonic() - t0 < 10
    # The new worker serves.
    assert requests.get(srv.url + "/quick", timeout=10).text == "quick"


def test_a_view_stuck_in_ctypes_has_its_worker_replaced_while_other_requests_succeed(serve):
    # The case: C code the exception cannot interrupt (libc sleep
    # through ctypes), while a second client keeps doing requests back to
    # back through the replacement of the worker.
    from test_workers import Load
    srv = serve(WSGI, *FLAGS, "--graceful-timeout", "30")
    load = Load(srv.url, clients=2, max_seconds=60, path="/quick")
    try:
        load.wait_count(50)
        r, elapsed = timed_get(srv, "/ctypes-sleep")
        assert_answered_at_the_deadline(r, elapsed)
        srv.wait_log(r"starting worker 2 .* to replace worker 1 .*\(a thread stuck past --timeout-grace\)", timeout=15)
        srv.wait_log(r"worker 1 \(pid \d+\) stopped", timeout=15)
        n = load.count()
        load.wait_count(n + 50)
    finally:
        load.stop()
    assert not load.failures(), load.failures()[:5]
    assert {t for ok, t in load.results} == {"quick"}


def test_graceful_shutdown_does_not_wait_for_a_timed_out_request(serve):
    # Its connection was closed at the timeout, so the drain is over at
    # once; the thread, not back yet, is let go when the grace ends.
    srv = serve(WSGI, "--timeout", "1", "--timeout-grace", "3", "--graceful-timeout", "30")
    r, _ = timed_get(srv, "/sleep")
    assert r.status_code == 504
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 10
    assert "thread stuck in C code" in srv.log()


@pytest.mark.parametrize("path", ["/busy", "/naps", "/swallow"])
def test_wsgi_exception_lands_and_the_thread_serves_again(serve, path):
    # /busy: a pure Python loop; /naps: short sleeps; /swallow: short sleeps
    # inside `except Exception:`, which RequestTimeout (a BaseException)
    # goes through.
    srv = serve(WSGI, *FLAGS, "--threads", "1")
    r, elapsed = timed_get(srv, path)
    assert_answered_at_the_deadline(r, elapsed)
    log = srv.wait_log(r"the thread of GET %s came back [0-9.e-]+ s after its timeout \(recovered\)" % path)
    assert re.search(r"exception in app while handling GET %s, after its --timeout:\nTraceback(.*\n)*?"
                     r"trestle.RequestTimeout: the request ran longer than --timeout\n" % path, log), log
    assert "swallowed an exception" not in log
    assert "thread stuck" not in log
    # With one thread, this request is served only if that thread came back.
    r = requests.get(srv.url + "/quick", timeout=10)
    assert r.status_code == 200 and r.text == "quick"


def test_wsgi_stream_that_stalls_is_closed_not_answered_504(serve):
    srv = serve(WSGI, *FLAGS)
    s = srv.connect()
    t0 = time.monotonic()
    s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    status, fields, rest = read_head(s)
    assert status == 200
    assert ("Transfer-Encoding", "chunked") in fields
    rest += recv_until_closed(s)
    elapsed = time.monotonic() - t0
    s.close()
    assert 0.8 < elapsed < 5, elapsed
    assert b"first chunk" in rest
    assert b"504" not in rest and b"HTTP/1.1" not in rest
    assert not rest.endswith(b"0\r\n\r\n")   # truncated: no last chunk
    srv.wait_log(r"GET /stream ran longer than --timeout \(1 s\); its response had started, so its connection "
                 r"was closed")
    srv.wait_log(r"the thread of GET /stream came back")


def test_wsgi_without_timeout_a_slow_request_finishes(serve):
    srv = serve(WSGI)   # --timeout 0, the default
    r, elapsed = timed_get(srv, "/slow?2")
    assert r.status_code == 200 and r.text == "slow but in time"
    assert elapsed >= 2
    assert "request timeout" not in srv.log()


def test_wsgi_request_within_its_timeout_is_untouched(serve):
    srv = serve(WSGI, "--timeout", "3")
    r, _ = timed_get(srv, "/slow?1")
    assert r.status_code == 200 and r.text == "slow but in time"
    # Keep-alive still works for requests that finish in time.
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(srv.url + "/quick", timeout=10).text == "quick"
    assert "request timeout: GET" not in srv.log()


# --- ASGI --------------------------------------------------------------------------

def test_asgi_sleep_gets_504_and_the_app_sees_cancelled_error(serve):
    srv = serve(ASGI, *FLAGS)
    r, elapsed = timed_get(srv, "/sleep")
    assert_answered_at_the_deadline(r, elapsed)
    line = line_of("asgi_timeout.py", "await asyncio.sleep(30)")
    srv.wait_log(r"request timeout: GET /sleep ran longer than --timeout \(1 s\) in the ASGI app; answered 504; "
                 r"cancelling its task, which waits at \(most recent call last\):\n"
                 r"  File \".*asgi_timeout.py\", line %d, in app\n" % line)
    srv.wait_log(r"asgi_timeout: CancelledError in /sleep: trestle: the request ran longer than --timeout")
    assert requests.get(srv.url + "/quick", timeout=10).text == "quick"


def test_asgi_stream_that_stalls_is_closed(serve):
    srv = serve(ASGI, *FLAGS)
    s = srv.connect()
    s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, rest = read_head(s)
    assert status == 200
    rest += recv_until_closed(s)
    s.close()
    assert b"first chunk" in rest and b"504" not in rest
    srv.wait_log(r"asgi_timeout: CancelledError in /stream")


def test_websocket_is_not_cut_by_the_request_timeout(serve):
    srv = serve(ASGI, *FLAGS)

    async def go():
        async with websockets.connect("ws://%s:%d/ws" % (srv.host, srv.port)) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            await asyncio.sleep(1.8)   # held open past --timeout (and its scan)
            await ws.send("after")
            assert await ws.recv() == "after"
    asyncio.run(asyncio.wait_for(go(), 20))
    assert "request timeout: GET" not in srv.log()


# --- Flask async views (WSGI requests waiting for a coroutine on the loop) ----------------

def test_flask_async_view_gets_504_and_its_coroutine_is_cancelled(serve):
    srv = serve(FLASK, *FLAGS, "--threads", "1")
    r, elapsed = timed_get(srv, "/async-sleep")
    assert_answered_at_the_deadline(r, elapsed)
    line = line_of("flask_timeout.py", "await asyncio.sleep(30)")
    srv.wait_log(r"It waits for a coroutine on the event loop, cancelled now, which is at \(most recent call "
                 r"last\):\n(.*\n)*?  File \".*flask_timeout.py\", line %d, in async_sleep" % line)
    srv.wait_log(r"flask_timeout: the view's coroutine was cancelled")
    srv.wait_log(r"the thread of GET /async-sleep came back")
    # The one pool thread was not left waiting for the coroutine.
    assert requests.get(srv.url + "/quick", timeout=10).text == "quick"


# --- mounts the timeout does not apply to ------------------------------------------------

def test_proxy_mount_has_its_own_timeout_not_this_one(serve):
    up = Upstream()
    try:
        srv = serve(WSGI, "/up=proxy:" + up.url(), *FLAGS)
        r, elapsed = timed_get(srv, "/up/slow?s=2")
        assert r.status_code == 200, r.text
        assert elapsed >= 2
        # And the app next to it still times out.
        assert requests.get(srv.url + "/naps", timeout=10).status_code == 504
    finally:
        up.stop()
