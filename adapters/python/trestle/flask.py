"""Flask async views on the server's event loop.

Stock Flask runs an ``async def`` view (and async hooks, error handlers and
teardown functions) through asgiref, which makes a new event loop for each
call and closes it afterwards: a task the view starts is cancelled, and a
client, pool or lock made on one call's loop cannot be used on the next.

Trestle installs this module's ``async_to_sync`` on every ``flask.Flask`` app
it serves (unless ``--no-flask-async``). The coroutine then runs on the
worker's one long-lived loop, ``trestle.loop()``, while the pool thread that
runs the request waits for it with the GIL released::

    import asyncio
    from flask import Flask
    import trestle.flask

    app = Flask(__name__)
    jobs = None

    @trestle.flask.startup            # runs once, on the loop, before the first request
    async def open_queue():
        global jobs
        jobs = asyncio.Queue()

    @app.post("/jobs")
    async def add_job():
        await jobs.put(1)             # the same queue, on the same loop, every request
        return "queued"

Public API: ``install``, ``run``, ``startup``, ``shutdown``, and the errors
``LoopThreadError`` and ``LoopStoppedError``. docs/configuration.md has the
details.
"""
import asyncio
import contextvars
import queue
import sys
import threading

from trestle import RequestTimeout, _runtime

__all__ = ["install", "run", "startup", "shutdown", "LoopThreadError", "LoopStoppedError"]


class LoopThreadError(RuntimeError):
    """A coroutine was to be waited for on the loop thread, which would wait for itself."""


class LoopStoppedError(RuntimeError):
    """The server's loop stopped (the server is shutting down) before the coroutine finished."""


# --------------------------------------------------------------- running a coroutine

_DONE = object()


class _Call:
    """One coroutine that a pool thread waits for.

    The thread blocks in ``inbox.get()`` (GIL released) until the loop side
    puts ``_DONE`` there, when the coroutine finished. It waits for nothing
    else: executor jobs that the coroutine or the tasks it started submit
    run on the loop's blocking threads, never on this one, so the response
    waits only for what the view awaits.
    """

    __slots__ = ("inbox", "open", "value", "error", "pending", "loop", "task", "timed_out")

    def __init__(self, pending, loop):
        self.inbox = queue.SimpleQueue()
        self.open = True
        self.value = None
        self.error = None
        self.pending = pending
        self.loop = loop
        self.task = None          # set on the loop thread by _start
        self.timed_out = False    # the request ran past --timeout: see _on_timeout

    def finish(self):
        # Loop thread only, so no two finishes race.
        if self.open:
            self.open = False
            self.pending.discard(self)
            self.inbox.put(_DONE)


async def _drive(call, coro):
    try:
        call.value = await coro
    except BaseException as exc:  # noqa: B902 - every outcome goes back to the waiting thread
        if isinstance(exc, asyncio.CancelledError):
            if call.timed_out:
                call.error = RequestTimeout("the coroutine was cancelled: the request ran longer than --timeout")
            else:
                call.error = LoopStoppedError("the coroutine was cancelled (is the server shutting down?)")
            call.error.__cause__ = exc
            raise
        call.error = exc
    finally:
        call.finish()


def _start(loop, call, coro, ctx):
    # On the loop thread. The task runs in ctx itself (3.11), which already is
    # the calling thread's copy, so reading it back later sees what the
    # coroutine set.
    try:
        call.task = loop.create_task(_drive(call, coro), name="trestle-flask", context=ctx)
    except BaseException as exc:  # noqa: B902 - handed to the waiting thread
        _discard(coro)
        call.error = exc
        call.finish()


def _discard(coro):
    close = getattr(coro, "close", None)   # a coroutine never awaited warns when collected
    if close is not None:
        close()


def _copy_back(ctx):
    """What the coroutine did to context variables becomes visible to the
    caller, as with stock Flask (asgiref does the same): an async
    before_request can set a ContextVar that a sync view reads."""
    for var, value in ctx.items():
        try:
            if var.get() is value:
                continue
        except LookupError:
            pass
        var.set(value)


class _Runner:
    """Runs coroutines for pool threads on one loop: the server's shared
    loop, or (flask_loop = "own") a loop that only one app's views use."""

    def __init__(self, shared):
        self.shared = shared
        self.loop = None            # an own loop: set on its thread (attach), cleared at close
        self.thread = None
        self.lock = threading.Lock()   # orders registering a call against the sweep at close
        self.pending = set()        # calls scheduled and not yet finished (loop thread, or under lock)
        self.closed = False

    def attach(self, loop, thread):
        self.loop, self.thread = loop, thread

    def current(self):
        if self.shared:
            return _runtime._loop, _runtime._loop_thread
        return self.loop, self.thread

    def sweep(self):
        """Fails every call still waiting when the loop closes (it never will finish them)."""
        with self.lock:
            self.closed = True
            calls = list(self.pending)
            if not self.shared:
                self.loop = self.thread = None
        for call in calls:
            if call.error is None:
                call.error = LoopStoppedError("the server's event loop stopped before the coroutine finished")
            call.finish()

    def run(self, coro):
        loop, loop_thread = self.current()
        if loop is None or threading.get_ident() == loop_thread:
            _discard(coro)
            if loop is None:
                raise RuntimeError("trestle.flask: no event loop (not running under Trestle, or the server has stopped)")
            raise LoopThreadError(
                "trestle.flask: an async function (an async Flask view or hook?) was called synchronously on the "
                "event loop thread, where waiting for it would block the loop forever; await it instead, or call "
                "it from a pool thread (loop.run_in_executor / asyncio.to_thread)")
        call = _Call(self.pending, loop)
        ctx = contextvars.copy_context()
        me = threading.get_ident()
        _waiting[me] = call   # before it can start, so a timeout always finds it
        try:
            with self.lock:
                if self.closed:
                    _discard(coro)
                    raise LoopStoppedError("trestle.flask: the server's event loop has stopped")
                self.pending.add(call)
                try:
                    loop.call_soon_threadsafe(_start, loop, call, coro, ctx)
                except BaseException:
                    self.pending.discard(call)
                    _discard(coro)
                    raise
            call.inbox.get()   # _DONE: nothing else is ever put there
        finally:
            _waiting.pop(me, None)
        _copy_back(ctx)
        value, error = call.value, call.error
        call.value = call.error = None
        if error is not None:
            try:
                raise error
            finally:
                del error   # no cycle through this frame's traceback
        return value

    def async_to_sync(self, func):
        run = self.run

        def call_on_loop(*args, **kwargs):
            _mark_async_view()
            return run(func(*args, **kwargs))

        call_on_loop.__wrapped__ = func
        return call_on_loop


def _mark_async_view():
    """Tells the server's metrics that this request ran async code on the
    loop (its mount's `flask-async` interface; see docs/configuration.md)."""
    try:
        from flask import request
        request.environ["trestle.async_view"] = True
    except (ImportError, RuntimeError):   # outside a request (a startup hook, a CLI command)
        pass


_shared = _Runner(shared=True)
_runtime.closing_callbacks.append(_shared.sweep)


# --------------------------------------------------------------- --timeout

# threading.get_ident() of a pool thread -> the call it waits for, on any runner.
_waiting = {}


def _cancel(call, message):
    # On the loop thread, after _start (both went through call_soon_threadsafe).
    if call.task is not None and not call.task.done():
        call.task.cancel(message)


def _on_timeout(ident, message):
    """The server's request watchdog: the request on pool thread `ident` ran
    past --timeout. If that thread waits for a coroutine here, the
    coroutine is cancelled (the thread then raises RequestTimeout), since
    the exception raised into the waiting thread cannot end its wait."""
    call = _waiting.get(ident)
    if call is None or not call.open:
        return None
    call.timed_out = True
    task = call.task
    where = _runtime.coroutine_stack(task.get_coro()) if task is not None else "  (not started yet)\n"
    try:
        call.loop.call_soon_threadsafe(_cancel, call, message)
    except RuntimeError:   # the loop has closed: the sweep fails the call
        pass
    return "It waits for a coroutine on the event loop, cancelled now, which is at (most recent call last):\n" + where


_runtime.timeout_hooks.append(_on_timeout)


def run(coro):
    """Runs a coroutine on the server's event loop and returns its result.

    For a pool thread (a sync Flask view, any WSGI code). The coroutine runs in
    a copy of the caller's context, so Flask's ``request``, ``g``,
    ``session``, ``current_app`` and the caller's ContextVars work inside it;
    its exception is raised here. The thread waits with the GIL released.

    Raises LoopThreadError on the loop thread itself (await the coroutine
    there instead), and RuntimeError when there is no loop (not under
    Trestle, or the server has stopped).
    """
    return _shared.run(coro)


def async_to_sync(func):
    """Flask's ``async_to_sync`` hook: a sync callable that runs ``func`` on the loop."""
    return _shared.async_to_sync(func)


# --------------------------------------------------------------- installing

_installed_any = False


def install(app):
    """Runs ``app``'s async views and hooks on the server's loop.

    Trestle does this by itself for a ``flask.Flask`` instance it serves,
    also under a mount prefix. Call it yourself when the app you give
    Trestle wraps the Flask app (a WSGI middleware, a dispatcher); then the
    server starts its loop for it. Returns ``app``.
    """
    global _installed_any
    app.async_to_sync = async_to_sync
    _installed_any = True
    return app


def _overrides_async_to_sync(app, flask_cls):
    return type(app).async_to_sync is not flask_cls.async_to_sync


def _attach(app, auto, own_loop=False):
    """Called by the server for each WSGI app it loaded, in order.

    Returns (the shared loop must run, a note for the log or None, the
    runner the server must give a loop of its own, or None).
    """
    note = None
    runner = None
    flask_mod = sys.modules.get("flask")   # an app that never imported Flask is no Flask app
    is_flask = flask_mod is not None and isinstance(app, getattr(flask_mod, "Flask", ()))
    if is_flask:
        if getattr(app, "async_to_sync", None) is async_to_sync:
            note = "Flask async views run on the server's event loop (trestle.flask.install)"
        elif not auto:
            note = "flask_async off (--no-flask-async): Flask runs async views itself, on a new event loop per call"
        elif _overrides_async_to_sync(app, flask_mod.Flask):
            note = "the app's class overrides async_to_sync; Trestle leaves its async views to it"
        elif own_loop:
            runner = _Runner(shared=False)
            app.async_to_sync = runner.async_to_sync
            note = "Flask async views run on an event loop of their own (flask_loop = \"own\")"
        else:
            install(app)
            note = "Flask async views run on the server's event loop"
    needs_loop = _installed_any or bool(_runtime.startup_hooks or _runtime.shutdown_hooks)
    return needs_loop, note, runner


# --------------------------------------------------------------- startup and shutdown

def _check_hook(fn, what):
    if not callable(fn):
        raise TypeError("trestle.flask.%s: %r is not callable" % (what, fn))
    if _runtime._hooks_ran:
        raise RuntimeError("trestle.flask.%s: the server has already started; register hooks when the "
                           "app's module is imported" % what)


def startup(fn):
    """Registers ``fn`` to run once on the server's loop before the first request.

    ``fn`` is an ``async def`` function or a plain one (called on the loop
    thread, so ``asyncio.get_running_loop()`` works in it). Make loop-bound
    objects there: an aiohttp session, a database pool, a background task.
    Hooks run in the order they were registered, before the server listens;
    one that raises stops the server. Usable as a decorator; returns ``fn``.
    """
    _check_hook(fn, "startup")
    _runtime.startup_hooks.append(fn)
    return fn


def shutdown(fn):
    """Registers ``fn`` to run once on the loop after the last request.

    Hooks run in the reverse order of registration, before the loop cancels
    the tasks still running; an exception is logged and the next hook runs.
    Usable as a decorator; returns ``fn``.
    """
    _check_hook(fn, "shutdown")
    _runtime.shutdown_hooks.append(fn)
    return fn
