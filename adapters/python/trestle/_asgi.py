"""Interface detection and the ASGI lifespan protocol. Not a public API."""
import asyncio
import concurrent.futures
import inspect
import sys
import traceback


def _is_coroutine_callable(obj):
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)
    return inspect.iscoroutinefunction(call)


def detect(app):
    """'asgi3', 'asgi2' or 'wsgi', by the shape of the callable.

    - a coroutine function, or an object whose __call__ is one: ASGI 3
      (Quart, Starlette, FastAPI, Django's ASGIHandler);
    - a class whose instances have a coroutine __call__: ASGI 2
      (``App(scope)`` then ``await instance(receive, send)``);
    - anything else: WSGI.
    """
    if inspect.isclass(app):
        if inspect.iscoroutinefunction(getattr(app, "__call__", None)):
            return "asgi2"
        return "wsgi"
    if _is_coroutine_callable(app):
        return "asgi3"
    return "wsgi"


def path_excludes_root(app):
    """True for an app built on Starlette older than 0.33 (FastAPI included).

    The ASGI spec's `path` is the whole request path, `root_path` included,
    and Quart, Django and Starlette 0.33+ route on it that way. Older
    Starlette reads `path` as the part after `root_path` (its Mount strips
    it), so for those apps the server strips the mount prefix itself.
    """
    starlette = sys.modules.get("starlette")
    if starlette is None:
        return False
    try:
        version = tuple(int(p) for p in starlette.__version__.split(".")[:2])
    except (AttributeError, ValueError):
        return False
    if version >= (0, 33):
        return False
    from starlette.applications import Starlette
    from starlette.routing import Router

    return isinstance(app, (Starlette, Router))


def asgi2_to_3(app):
    """Wraps an ASGI 2 (double-callable) app as ASGI 3."""

    async def app3(scope, receive, send):
        instance = app(scope)
        return await instance(receive, send)

    return app3


class Lifespan:
    """Runs the lifespan protocol (asgiref specs/lifespan.rst) for one app.

    mode 'auto': an app that raises before it answers startup does not
    support lifespan; serving goes on. mode 'on': that is an error.
    startup.failed stops the server in both modes.
    """

    def __init__(self, app, mode, loop):
        self.app = app
        self.mode = mode
        self.loop = loop
        self.state = {}
        self.supported = True
        self.queue = None
        self.startup_done = None
        self.shutdown_done = None
        self.task = None
        self.error = None

    async def _receive(self):
        return await self.queue.get()

    async def _send(self, message):
        kind = message.get("type")
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            if self.startup_done.done():
                raise RuntimeError("lifespan: %s sent twice or out of order" % kind)
            ok = kind.endswith("complete")
            self.startup_done.set_result((ok, "" if ok else str(message.get("message", ""))))
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if self.shutdown_done is None or self.shutdown_done.done():
                raise RuntimeError("lifespan: %s before lifespan.shutdown" % kind)
            ok = kind.endswith("complete")
            self.shutdown_done.set_result((ok, "" if ok else str(message.get("message", ""))))
        else:
            raise RuntimeError("lifespan: unexpected message type %r" % (kind,))

    async def _main(self):
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except GeneratorExit:
            raise   # the task was abandoned at shutdown (it ignored its cancellation) and is being collected
        except BaseException as exc:  # noqa: B902 - reported below, never lost
            self.error = exc
            if not self.startup_done.done():
                if self.mode == "auto":
                    self.supported = False
                    self.startup_done.set_result((True, ""))
                else:
                    self.startup_done.set_result((False, "exception in lifespan startup"))
                    traceback.print_exception(exc, file=sys.stderr)
            elif self.shutdown_done is not None and not self.shutdown_done.done():
                traceback.print_exception(exc, file=sys.stderr)
                self.shutdown_done.set_result((False, "exception in lifespan shutdown"))
            else:
                traceback.print_exception(exc, file=sys.stderr)
        finally:
            if not self.startup_done.done():
                # Returning at once is how many apps say "no lifespan here".
                if self.mode == "auto":
                    self.supported = False
                    self.startup_done.set_result((True, ""))
                else:
                    self.startup_done.set_result((False, "the app returned during lifespan startup"))
            if self.shutdown_done is not None and not self.shutdown_done.done():
                self.shutdown_done.set_result((True, ""))

    async def startup(self):
        self.queue = asyncio.Queue()
        self.startup_done = self.loop.create_future()
        self.task = self.loop.create_task(self._main())
        await self.queue.put({"type": "lifespan.startup"})
        return await self.startup_done

    async def shutdown(self):
        if not self.supported or self.task is None or self.task.done():
            return (True, "")
        self.shutdown_done = self.loop.create_future()
        await self.queue.put({"type": "lifespan.shutdown"})
        return await self.shutdown_done


def _wait(fut, timeout, what):
    try:
        return fut.result(timeout)
    except concurrent.futures.TimeoutError:
        fut.cancel()   # the app's task is cancelled with the loop; nobody waits for it
        return (False, "did not finish within %.3g s%s" % (timeout, what))


def run_startup(lifespan, timeout):
    """Called from the main thread: runs startup on the loop and waits up to
    timeout seconds. Returns (ok, message)."""
    fut = asyncio.run_coroutine_threadsafe(lifespan.startup(), lifespan.loop)
    return _wait(fut, timeout, " (--startup-timeout)")


def run_shutdown(lifespan, timeout):
    fut = asyncio.run_coroutine_threadsafe(lifespan.shutdown(), lifespan.loop)
    return _wait(fut, timeout, "")
