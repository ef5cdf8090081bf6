"""Flask async views on the server's shared loop (trestle.flask), end to end.

The fixture app is tests/apps/flask_async_app.py; --no-flask-async shows what
stock Flask (asgiref, a new loop per call) does with the same app.
"""
import asyncio
import os
import signal
import socket
import sys
import textwrap
import threading
import time

import pytest
import requests

from conftest import ROOT, poll, run_trestle, tsan_thread_leaks_allowed

APP = "flask_async_app:app"
TIMEOUT = 15


def get_json(srv, path, **kwargs):
    r = requests.get(srv.url + path, timeout=TIMEOUT, **kwargs)
    assert r.status_code == 200, (path, r.status_code, r.text[:2000])
    return r.json()


def task_state(srv, tid):
    return get_json(srv, "/task/" + tid)["state"]


def settled_state(srv, tid, timeout=10.0):
    """Polls a background task's state until it is no longer 'running'."""
    return poll(lambda: (lambda s: s if s not in (None, "running") else None)(task_state(srv, tid)),
                timeout=timeout)


def concurrently(n_threads, per_thread, fn):
    """Runs fn(thread, i) from n_threads client threads; returns results and errors."""
    results, errors = [], []
    lock = threading.Lock()

    def worker(t):
        for i in range(per_thread):
            try:
                value = fn(t, i)
            except Exception as exc:  # noqa: B902 - reported by the test
                with lock:
                    errors.append(repr(exc))
                return
            with lock:
                results.append(value)
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads), "client threads still running after 60 s"
    return results, errors


# --- tasks outlive the request ---------------------------------------------------------------

def test_background_task_keeps_running_after_the_response(serve):
    srv = serve(APP)
    assert "flask_async_app:app: Flask async views run on the server's event loop" in srv.log()
    data = get_json(srv, "/spawn/t1", params={"delay": "0.3"})
    assert data["on_trestle_loop"] is True
    assert data["state"] == "running"   # the response went out before the task ended
    assert settled_state(srv, "t1") == "done"


def test_stock_flask_cancels_the_task_with_its_loop(serve):
    srv = serve(APP, "--no-flask-async")
    assert "flask_async_app:app: flask_async off (--no-flask-async): Flask runs async views itself" in srv.log()
    data = get_json(srv, "/spawn/t1", params={"delay": "0.3"})
    assert data["on_trestle_loop"] is False   # asgiref's loop for this one call
    assert data["state"] == "running"
    assert settled_state(srv, "t1") == "cancelled"


# --- loop-bound objects made at startup ------------------------------------------------------

def test_startup_lock_and_queue_serve_every_request_and_thread(serve):
    srv = serve(APP, "--threads", "8")
    info = get_json(srv, "/loop")
    assert info["on_trestle_loop"] is True
    assert info["startup_loop_id"] == info["loop_id"]

    with requests.Session() as s0:
        sessions = [requests.Session() for _ in range(8)]

        def incr(t, i):
            r = sessions[t].get(srv.url + "/locked-incr", timeout=TIMEOUT)
            assert r.status_code == 200, r.text[:500]
            return r.json()["pool_thread"]
        pool_threads, errors = concurrently(8, 25, incr)
        assert errors == []
        assert len(pool_threads) == 200
        assert len(set(pool_threads)) > 1, "every request ran on one pool thread"
        # The asyncio.Lock made at startup kept the read-await-write sections apart.
        assert s0.get(srv.url + "/count", timeout=TIMEOUT).json()["count"] == 200

        def put(t, i):
            r = sessions[t].get(srv.url + "/enqueue/%d" % (t * 100 + i), timeout=TIMEOUT)
            assert r.status_code == 200, r.text[:500]
            return r.json()["pool_thread"]
        _, errors = concurrently(8, 10, put)
        assert errors == []
        expected = sorted(t * 100 + i for t in range(8) for i in range(10))
        # The consumer task started at startup drains the queue in the background.
        got = poll(lambda: (lambda items: items if items == expected else None)(
            s0.get(srv.url + "/consumed", timeout=TIMEOUT).json()["items"]))
        assert got == expected
        for s in sessions:
            s.close()


def test_startup_hook_failure_stops_the_server():
    res = run_trestle("flask_async_bad_startup:app", "--bind", "127.0.0.1:0")
    assert res.returncode == 1, res.stderr
    assert "startup hook flask_async_bad_startup.connect_to_nothing failed" in res.stderr
    assert "ConnectionError: startup hook exploded on purpose 3b7d" in res.stderr
    assert "listening on" not in res.stderr


# --- request context inside async views and hooks --------------------------------------------

@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_request_g_session_and_contextvars_in_async_view_and_hooks(serve, loop):
    srv = serve(APP, "--loop", loop)
    with requests.Session() as s:
        for visit in (1, 2):
            rid = "rid-%d" % visit
            r = s.post(srv.url + "/ctx", params=[("q", "a b"), ("q", "c")], data=("body \u00e9 %d" % visit).encode(),
                       headers={"X-Test": "header-%d" % visit, "X-Request-Id": rid,
                                "Content-Type": "text/plain; charset=utf-8"}, timeout=TIMEOUT)
            assert r.status_code == 200, r.text[:2000]
            data = r.json()
            assert data["on_trestle_loop"] is True
            assert data["args"] == {"q": ["a b", "c"]}
            assert data["header"] == "header-%d" % visit
            assert data["body"] == "body \u00e9 %d" % visit
            assert data["method"] == "POST"
            assert data["before"] == "async-before:/ctx"     # g, set by an async before_request
            assert data["request_id"] == rid                 # a ContextVar set by the same hook
            assert data["visits"] == visit                   # the session cookie round trip
            assert data["app_name"] == "flask_async_app"
            # The async after_request saw g and the ContextVar of this request.
            assert r.headers["X-After"] == "async-before:/ctx|" + rid
            # The async teardown function ran in the request's context too.
            seen = poll(lambda: get_json(srv, "/teardown/" + rid))
            assert seen == {"path": "/ctx", "before": "async-before:/ctx", "exc": None}


def test_contextvar_set_by_async_hook_reaches_a_sync_view(serve):
    srv = serve(APP)
    data = get_json(srv, "/ctx-sync", headers={"X-Request-Id": "sync-view-7"})
    assert data == {"request_id": "sync-view-7", "before": "async-before:/ctx-sync"}


def test_async_error_handler_runs_in_the_request_context(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/teapot", headers={"X-Request-Id": "tea-1"}, timeout=TIMEOUT)
    assert r.status_code == 418, r.text[:2000]
    data = r.json()
    assert data["error"] == "short and stout"
    assert data["path"] == "/teapot"
    assert data["before"] == "async-before:/teapot"
    assert data["request_id"] == "tea-1"
    assert data["on_trestle_loop"] is True
    assert r.headers["X-After"] == "async-before:/teapot|tea-1"
    assert "Traceback" not in srv.log()


def test_exception_in_async_view_is_500_with_the_traceback_logged(serve):
    srv = serve(APP)
    r = requests.get(srv.url + "/boom", headers={"X-Request-Id": "boom-1"}, timeout=TIMEOUT)
    assert r.status_code == 500
    assert b"Internal Server Error" in r.content
    log = srv.wait_log(r"FlaskAsyncTestError: async view exploded on purpose 5e2a")
    assert "Exception on /boom [GET]" in log   # Flask's own handler logged it
    assert "Traceback (most recent call last)" in log
    assert 'flask_async_app.py", line' in log and "in boom" in log   # the view's own frame
    # The teardown function saw the exception; the server keeps serving.
    seen = poll(lambda: get_json(srv, "/teardown/boom-1"))
    assert seen["exc"] == "FlaskAsyncTestError('async view exploded on purpose 5e2a')"
    assert get_json(srv, "/loop")["on_trestle_loop"] is True


# --- concurrency and the one loop ------------------------------------------------------------

@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_many_concurrent_async_requests_share_one_loop(serve, loop):
    srv = serve(APP, "--threads", "8", "--loop", loop)
    sessions = [requests.Session() for _ in range(16)]

    def call(t, i):
        r = sessions[t].get(srv.url + "/sleep", params={"s": "0.02"}, timeout=TIMEOUT)
        assert r.status_code == 200, r.text[:500]
        return r.json()
    start = time.monotonic()
    results, errors = concurrently(16, 20, call)
    elapsed = time.monotonic() - start
    for s in sessions:
        s.close()
    assert errors == []
    assert len(results) == 320
    assert {r["on_trestle_loop"] for r in results} == {True}
    assert len({r["loop_id"] for r in results}) == 1
    # Views from different pool threads were suspended on the loop at once.
    assert max(r["max_inflight"] for r in results) > 1
    # 320 sleeps of 20 ms, 8 at a time, take 0.8 s; much more means they ran one by one.
    assert elapsed < 6.4, elapsed


def test_stock_flask_gets_a_new_loop_per_call(serve):
    srv = serve(APP, "--no-flask-async")
    results = [get_json(srv, "/sleep", params={"s": "0"}) for _ in range(3)]
    assert {r["on_trestle_loop"] for r in results} == {False}


def test_mounted_flask_app_gets_the_integration(serve):
    srv = serve("hello:app", "/f=flask_async_app:app")
    assert "flask_async_app:app: Flask async views run on the server's event loop" in srv.log()
    data = get_json(srv, "/f/spawn/m1", params={"delay": "0.05"})
    assert data["on_trestle_loop"] is True
    assert poll(lambda: get_json(srv, "/f/task/m1")["state"] == "done")


def test_flask_async_per_mount_in_a_config_file(serve, tmp_path):
    # Two Flask apps in one process: the root one keeps the integration, the
    # mount that says flask_async = false gets stock Flask.
    cfg = tmp_path / "trestle.toml"
    cfg.write_text(textwrap.dedent("""
        [[mount]]
        prefix = "/"
        app = "flask_async_app:app"

        [[mount]]
        prefix = "/stock"
        app = "flask_async_stock:app"
        flask_async = false
    """))
    srv = serve("--config=" + str(cfg))
    assert get_json(srv, "/loop")["on_trestle_loop"] is True
    assert get_json(srv, "/stock/loop") == {"on_trestle_loop": False}
    assert "flask_async_stock:app: flask_async off" in srv.log()


def test_to_thread_in_async_views_cannot_starve_the_pool(serve):
    # Two pool threads, eight requests whose views await asyncio.to_thread:
    # the jobs run on the loop's blocking threads while both pool threads
    # wait, so this finishes instead of deadlocking.
    srv = serve(APP, "--threads", "2")
    sessions = [requests.Session() for _ in range(8)]

    def call(t, i):
        r = sessions[t].get(srv.url + "/to-thread", params={"s": "0.1"}, timeout=10)
        assert r.status_code == 200, r.text[:500]
        return r.json()
    results, errors = concurrently(8, 2, call)
    for s in sessions:
        s.close()
    assert errors == []
    assert len(results) == 16
    pool_threads = {r["pool_thread"] for r in results}
    assert len(pool_threads) <= 2
    assert not pool_threads & {r["worker"] for r in results}   # never on a waiting pool thread


def test_sync_call_on_the_loop_thread_raises_instead_of_hanging(serve):
    srv = serve(APP, "/asgi=asgi_calls_flask_on_loop:app")
    r = requests.get(srv.url + "/asgi/", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.text.startswith("LoopThreadError: trestle.flask: an async function"), r.text
    assert "await it instead" in r.text
    # The loop is still running: an async Flask view answers.
    assert get_json(srv, "/loop")["on_trestle_loop"] is True


# --- disconnects and shutdown ----------------------------------------------------------------

def test_client_disconnect_while_the_view_waits(serve):
    srv = serve(APP, "--threads", "2")
    s = socket.create_connection((srv.host, srv.port), timeout=TIMEOUT)
    s.sendall(b"GET /sleep?s=0.5&id=gone HTTP/1.1\r\nHost: x\r\n\r\n")
    assert poll(lambda: task_state(srv, "gone") == "sleeping")
    s.close()
    # The view runs to its end (WSGI requests are not cancelled when the
    # client goes), and its pool thread serves again: two sleeping views at
    # once need both threads.
    assert poll(lambda: task_state(srv, "gone") == "finished")
    results, errors = concurrently(2, 1, lambda t, i: get_json(srv, "/sleep", params={"s": "0.2"}))
    assert errors == [] and len(results) == 2
    assert max(r["max_inflight"] for r in results) == 2
    assert "Traceback" not in srv.log()


def test_graceful_shutdown_lets_a_waiting_view_finish(serve):
    srv = serve(APP)
    out = {}

    def client():
        out["r"] = requests.get(srv.url + "/sleep", params={"s": "1.0", "id": "g1"}, timeout=TIMEOUT)
    th = threading.Thread(target=client)
    th.start()
    assert poll(lambda: task_state(srv, "g1") == "sleeping")
    srv.proc.send_signal(signal.SIGTERM)
    th.join(TIMEOUT)
    assert out["r"].status_code == 200
    assert out["r"].json()["on_trestle_loop"] is True
    assert srv.proc.wait(TIMEOUT) == 0
    log = srv.log()
    # Shutdown hooks run in reverse order, before the loop cancels its tasks;
    # one that raises is logged and the next one still runs.
    failed = log.index("trestle: shutdown hook flask_async_app.failing_shutdown_hook failed:")
    assert "ValueError: shutdown hook exploded on purpose 9c4d" in log
    assert log.index("flask_async_app: shutdown hook ran; consumer running: True") > failed
    assert log.rstrip().endswith("stopped")


def test_shutdown_does_not_hang_on_a_view_that_never_finishes(serve):
    # When the woken pool thread is not done by the cleanup deadline the
    # server leaves by `_exit` on purpose, and ThreadSanitizer would call the
    # pool's threads leaked: only that report is off here.
    srv = serve(APP, "--graceful-timeout", "0.5", env=tsan_thread_leaks_allowed())
    out = {}

    def client():
        try:
            out["status"] = requests.get(srv.url + "/wait-forever", params={"id": "w1"}, timeout=TIMEOUT).status_code
        except requests.RequestException as exc:
            out["error"] = exc
    th = threading.Thread(target=client)
    th.start()
    assert poll(lambda: task_state(srv, "w1") == "waiting")
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(TIMEOUT) == 0
    assert time.monotonic() - start < 8
    th.join(TIMEOUT)
    # The loop cancelled the view when it closed. (Whether the pool thread it
    # woke finishes before the process exits is a race on this unclean path;
    # test_waiting_thread_is_woken_when_the_loop_closes checks the wake-up.)
    assert "flask_async_app: wait-forever view cancelled" in srv.log()


def test_waiting_thread_is_woken_when_the_loop_closes():
    # trestle.flask in this process, on a loop set up and closed by the same
    # _runtime functions the server's loop thread calls.
    sys.path.insert(0, os.path.join(ROOT, "adapters", "python"))
    try:
        from trestle import _runtime
        import trestle.flask as tflask
    finally:
        sys.path.pop(0)
    loop = asyncio.new_event_loop()
    rfd, wfd = os.pipe()
    ready = threading.Event()

    def loop_thread():
        _runtime.setup_loop(loop, lambda job: None, rfd, lambda: None)
        loop.call_soon(ready.set)
        loop.run_forever()
        _runtime.close_loop(loop)
    lt = threading.Thread(target=loop_thread)
    lt.start()
    try:
        assert ready.wait(TIMEOUT)
        started = threading.Event()
        outcome = {}

        async def never_finishes():
            started.set()
            await asyncio.Event().wait()

        def waiter():
            try:
                outcome["value"] = tflask.run(never_finishes())
            except BaseException as exc:  # noqa: B902 - what the waiting thread got
                outcome["error"] = exc
        wt = threading.Thread(target=waiter)
        wt.start()
        assert started.wait(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        wt.join(TIMEOUT)
        assert not wt.is_alive(), "the waiting thread was never woken"
        assert isinstance(outcome.get("error"), tflask.LoopStoppedError), outcome
        # Once the loop is closed, a new call fails at once instead of waiting.
        # (One that races with close_loop gets LoopStoppedError from the sweep.)
        lt.join(TIMEOUT)
        assert not lt.is_alive()
        coro = never_finishes()
        with pytest.raises(RuntimeError, match="no event loop"):
            tflask.run(coro)
    finally:
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        lt.join(TIMEOUT)
        os.close(rfd)
        os.close(wfd)


# --- parked views and the loop's executor (issue 10, items 13 and 14) -----------------------
#
# A Flask async view parks its pool thread until its coroutine ends. Executor
# jobs from the loop (asyncio.to_thread, run_in_executor(None, ...), Quart's
# run_sync) run on the blocking threads, never behind those parked threads,
# and a view's response waits only for what the view awaits.

POOL_APP = "flask_async_pool:app"


def test_consumer_task_runs_while_every_pool_thread_waits_for_it(serve):
    # The "queue with a consumer task" pattern: the consumer, made by a
    # startup hook, does the work with asyncio.to_thread. Four requests park
    # both pool threads; the consumer's jobs must still run.
    srv = serve(POOL_APP, "--threads", "2")
    start = time.monotonic()
    results, errors = concurrently(4, 1, lambda t, i: requests.get(
        srv.url + "/queued/%d" % t, timeout=5))
    assert errors == [], errors
    assert sorted(r.json()["value"] for r in results) == [0, 2, 4, 6]
    for r in results:
        assert r.json()["worker"] != r.json()["pool_thread"]
    r = requests.get(srv.url + "/sync", timeout=5)
    assert r.status_code == 200 and r.text == "sync ok"
    assert time.monotonic() - start < 8


def test_views_waiting_on_a_lock_held_by_a_quart_run_sync_call(serve):
    # A Quart view holds an asyncio.Lock while it calls a sync function; two
    # Flask async views wait on that lock and park both pool threads.
    srv = serve(POOL_APP, "/q=flask_async_pool_quart:app", "--threads", "2")
    out = {}

    def holder():
        out["hold"] = requests.get(srv.url + "/q/hold", timeout=8)
    th = threading.Thread(target=holder)
    th.start()
    assert poll(lambda: requests.get(srv.url + "/q/held", timeout=5).text == "yes", timeout=5)
    waiters = [threading.Thread(target=lambda i=i: out.__setitem__(i, requests.get(srv.url + "/locked", timeout=8)))
               for i in range(2)]
    for w in waiters:
        w.start()
    assert poll(lambda: requests.get(srv.url + "/q/waiters", timeout=5).text == "2", timeout=5)
    start = time.monotonic()
    assert requests.get(srv.url + "/q/go", timeout=5).status_code == 200
    th.join(10)
    for w in waiters:
        w.join(10)
    assert out["hold"].status_code == 200 and out["hold"].text == "ran"
    assert [out[i].text for i in range(2)] == ["got the lock"] * 2
    assert requests.get(srv.url + "/sync", timeout=5).text == "sync ok"
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("threads", ["1", "8"])
@pytest.mark.parametrize("path", ["/wait-slow", "/leave-task"])
def test_executor_work_the_view_does_not_await_does_not_delay_its_response(serve, threads, path):
    # slow() sleeps 2 s in asyncio.to_thread; the view gives up on it after
    # 0.1 s (wait_for) or leaves it to a task. Its response must not wait.
    srv = serve(POOL_APP, "--threads", threads)
    with requests.Session() as s:
        for _ in range(4):
            start = time.monotonic()
            r = s.get(srv.url + path, timeout=10)
            elapsed = time.monotonic() - start
            assert r.status_code == 200, r.text[:500]
            assert elapsed < 1.5, "%s answered in %.2f s" % (path, elapsed)
