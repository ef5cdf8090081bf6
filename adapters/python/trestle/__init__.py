"""Helpers for apps served by Trestle.

The server puts this package's folder on sys.path, so `import trestle` works
in any app it serves.
"""

__all__ = ["__version__", "loop", "RequestTimeout"]
__version__ = "0.1.0"


class RequestTimeout(BaseException):
    """Raised inside a WSGI request (and a Flask async view's caller) that
    ran longer than ``--timeout``; the client has already been answered 504,
    or its connection closed if the response had started.

    A BaseException, like KeyboardInterrupt and asyncio.CancelledError, so
    that ``except Exception:`` in the app (a retry loop, a broad error
    handler) does not swallow it and keep the thread busy for good.
    ``finally`` blocks and ``with`` statements still run; catch it only to
    clean up, then re-raise. ASGI apps get asyncio.CancelledError instead.
    """

    def __str__(self):
        return super().__str__() or "the request ran longer than --timeout"


def loop():
    """The worker's asyncio event loop, shared by every request.

    From a pool thread (a WSGI view, a sync Quart view), schedule work on it
    with asyncio.run_coroutine_threadsafe(coro, trestle.loop()), or run a
    coroutine and wait for its result with trestle.flask.run(coro). Flask's
    async views run on it by themselves (see trestle.flask).
    """
    from trestle._runtime import get_loop

    return get_loop()
