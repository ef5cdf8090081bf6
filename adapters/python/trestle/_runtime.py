"""Glue between Trestle's C++ runtime and asyncio. Not a public API."""
import asyncio
import concurrent.futures
import sys
import threading
import traceback

_loop = None
_loop_thread = None        # threading.get_ident() of the loop thread while it runs

# Hooks that apps register at import time (trestle.flask.startup/shutdown):
# run on the loop, before the first request and after the last one.
startup_hooks = []
shutdown_hooks = []
# Internal callbacks run on the loop thread just before the loop closes, after
# its tasks were cancelled (trestle.flask fails the calls still waiting).
closing_callbacks = []
_hooks_ran = False         # the loop has started: too late to add a startup hook


class PoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor: Trestle's blocking threads.

    run_in_executor(None, ...), asyncio.to_thread and Quart's sync views all
    end up here. The jobs run on a set of threads of their own, apart from
    the pool that runs WSGI requests, which grows when a job finds no idle
    thread (up to --blocking-threads) and shrinks when they idle. So a job
    never waits behind pool threads that are parked waiting for a coroutine
    (a Flask async view), which may be waiting for this very job. It
    subclasses ThreadPoolExecutor only because asyncio (3.11) insists on
    one; it never starts a thread of its own.
    """

    def __init__(self, submit):
        super().__init__(max_workers=1, thread_name_prefix="trestle-unused")
        self._submit = submit
        self._shutdown = False
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        future = concurrent.futures.Future()

        def job():
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: B902 - handed to the awaiting coroutine
                future.set_exception(exc)
            else:
                future.set_result(result)

        self._submit(job)
        return future

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._lock:
            self._shutdown = True


def _hook_name(fn):
    return "%s.%s" % (getattr(fn, "__module__", "?"), getattr(fn, "__qualname__", repr(fn)))


async def _run_startup_hooks():
    for fn in list(startup_hooks):
        try:
            result = fn()
            if hasattr(result, "__await__"):
                await result
        except Exception as exc:
            raise RuntimeError("startup hook %s failed" % _hook_name(fn)) from exc


async def _run_shutdown_hooks():
    # Reverse order: what started last may depend on what started first.
    for fn in reversed(shutdown_hooks):
        try:
            result = fn()
            if hasattr(result, "__await__"):
                await result
        except (Exception, asyncio.CancelledError):  # noqa: B902 - one failing hook must not skip the others
            print("trestle: shutdown hook %s failed:" % _hook_name(fn), file=sys.stderr)
            traceback.print_exc(file=sys.stderr)


def setup_loop(loop, submit, fd, drain):
    """Runs on the loop thread before run_forever(). Startup hooks run here,
    so they are done before the server accepts a request; one that raises
    stops the server."""
    global _loop, _loop_thread, _hooks_ran
    asyncio.set_event_loop(loop)
    loop.set_default_executor(PoolExecutor(submit))
    loop.add_reader(fd, drain)
    _loop = loop
    _loop_thread = threading.get_ident()
    _hooks_ran = True
    if startup_hooks:
        try:
            loop.run_until_complete(_run_startup_hooks())
        except BaseException:
            _loop = _loop_thread = None
            raise
    return True


def close_loop(loop):
    """Runs on the loop thread after run_forever() returns."""
    global _loop, _loop_thread
    try:
        if shutdown_hooks:
            loop.run_until_complete(_run_shutdown_hooks())
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        for fn in closing_callbacks:
            try:
                fn()
            except Exception:  # noqa: B902 - the loop must still close
                traceback.print_exc(file=sys.stderr)
        _loop = _loop_thread = None
        loop.close()
    return True


def get_loop():
    if _loop is None:
        raise RuntimeError("trestle.loop() is only available inside a Trestle server running an event loop")
    return _loop
