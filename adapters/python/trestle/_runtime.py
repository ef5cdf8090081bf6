"""Glue between Trestle's C++ runtime and asyncio. Not a public API."""
import asyncio
import concurrent.futures
import sys
import threading
import time
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
_current_hook = None       # the startup hook running now, named when it overruns


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
    global _current_hook
    for fn in list(startup_hooks):
        _current_hook = fn
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


def _run_for(loop, coro, timeout):
    """Runs coro on loop (not running) for at most timeout seconds (None: no
    bound). True if it finished; otherwise it is cancelled, not waited for:
    a coroutine that ignores cancellation must not hold the caller."""
    task = loop.create_task(coro)
    loop.run_until_complete(asyncio.wait({task}, timeout=timeout))
    if not task.done():
        task.cancel()
        return False
    task.result()
    return True


def _task_name(task):
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or task.get_name()


def _start_heartbeat(loop, beat, interval):
    """Calls beat() every `interval` seconds while the loop turns. The C++
    watchdog (loop_thread) reports a loop whose heartbeat stops, and the
    metrics read the loop's lag from how late each beat comes; about once a
    second the beat also carries the number of tasks alive."""
    every = max(1, int(round(1.0 / interval))) if interval else 1
    count = [0]

    def tick():
        count[0] += 1
        beat(len(asyncio.all_tasks(loop)) if count[0] % every == 1 or every == 1 else None)
        loop.call_later(interval, tick)
    loop.call_soon(tick)


def thread_stack(ident):
    """The Python stack of thread `ident`, for the watchdogs' log lines."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return "  (no Python frame: the thread is in C code)\n"
    try:
        return "".join(traceback.format_stack(frame))
    finally:
        del frame


loop_stack = thread_stack   # the loop watchdog's name for it


def coroutine_stack(coro):
    """Where a suspended coroutine waits, outermost call first. Follows its
    awaits down (task.get_stack() shows only the outermost frame)."""
    frames = []
    while coro is not None and len(frames) < 200:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    if not frames:
        return "  (no Python frame)\n"
    return "".join(traceback.format_list(traceback.StackSummary.extract(frames)))


# --timeout. Hooks called as hook(ident, message) for a WSGI thread whose
# request ran past it (trestle.flask adds one, to cancel the coroutine a
# Flask async view waits for); each returns text for the log, or None.
timeout_hooks = []


def timeout_report(ident, message):
    """Called by the server's request watchdog, GIL held, before it raises
    trestle.RequestTimeout in thread `ident`: that thread's stack, and what
    the hooks add."""
    text = thread_stack(ident)
    for hook in timeout_hooks:
        try:
            extra = hook(ident, message)
        except Exception:  # noqa: B902 - the report must still be made
            extra = "  (timeout hook %s failed: %s)\n" % (_hook_name(hook), traceback.format_exc())
        if extra:
            text += extra
    return text


def absorb_pending():
    """Does nothing. The server calls it at the end of a request that timed
    out, so that a RequestTimeout raised into the thread and not landed yet
    lands here (the call's first instruction checks) and is dropped,
    instead of in the thread's next request."""


def cancel_timed_out(task, message):
    """An ASGI request ran past --timeout (on the loop thread): where its
    task waits, for the log; then the task is cancelled."""
    try:
        return coroutine_stack(task.get_coro())
    finally:
        task.cancel(message)


def setup_loop(loop, submit, fd, drain, startup_timeout=None, beat=None, beat_interval=None, owner=None):
    """Runs on the loop thread before run_forever(). Startup hooks run here,
    so they are done before the server accepts a request; one that raises,
    or runs past startup_timeout seconds, stops the server.

    owner: for a loop of one Flask app's own (flask_loop = "own"), its
    trestle.flask runner; that loop is not trestle.loop() and runs no hooks.
    """
    global _loop, _loop_thread, _hooks_ran
    asyncio.set_event_loop(loop)
    loop.set_default_executor(PoolExecutor(submit))
    loop.add_reader(fd, drain)
    if beat is not None:
        _start_heartbeat(loop, beat, beat_interval)
    if owner is not None:
        owner.attach(loop, threading.get_ident())
        return True
    _loop = loop
    _loop_thread = threading.get_ident()
    _hooks_ran = True
    if startup_hooks:
        try:
            if not _run_for(loop, _run_startup_hooks(), startup_timeout):
                raise RuntimeError("startup hook %s did not finish within %g s (--startup-timeout)"
                                   % (_hook_name(_current_hook), startup_timeout))
        except BaseException:
            _loop = _loop_thread = None
            raise
    return True


def close_loop(loop, timeout=None, owner=None):
    """Runs on the loop thread after run_forever() returns.

    The shutdown hooks, the cancelled tasks and the async generators share
    `timeout` seconds (None: no bound); what is still running then is left
    behind, with a line in the log, so the process can still exit in time.
    """
    global _loop, _loop_thread
    deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)

    def left():
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    try:
        if owner is None and shutdown_hooks and not _run_for(loop, _run_shutdown_hooks(), left()):
            print("trestle: the shutdown hooks did not finish within the graceful timeout; cancelling them",
                  file=sys.stderr, flush=True)
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            done, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=left()))
            for t in done:
                if not t.cancelled():
                    t.exception()   # retrieved: cancellation ends tasks, not errors worth a warning
            if pending:
                for t in pending:
                    t._log_destroy_pending = False   # named just below; asyncio would repeat it at exit
                print("trestle: %d task(s) still running after cancellation (do they catch CancelledError?): %s; "
                      "closing the loop without them" % (len(pending), ", ".join(sorted(_task_name(t) for t in pending))),
                      file=sys.stderr, flush=True)
        if not _run_for(loop, loop.shutdown_asyncgens(), left()):
            print("trestle: async generators did not close in time", file=sys.stderr, flush=True)
    finally:
        for fn in closing_callbacks if owner is None else [owner.sweep]:
            try:
                fn()
            except Exception:  # noqa: B902 - the loop must still close
                traceback.print_exc(file=sys.stderr)
        if owner is None:
            _loop = _loop_thread = None
        loop.close()
    return True


def get_loop():
    if _loop is None:
        raise RuntimeError("trestle.loop() is only available inside a Trestle server running an event loop")
    return _loop
