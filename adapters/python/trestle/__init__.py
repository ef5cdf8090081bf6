"""Helpers for apps served by Trestle.

The server puts this package's folder on sys.path, so `import trestle` works
in any app it serves.
"""

__all__ = ["__version__", "loop"]
__version__ = "0.1.0"


def loop():
    """The worker's asyncio event loop, shared by every request.

    From a pool thread (a WSGI view, a sync Quart view), schedule work on it
    with asyncio.run_coroutine_threadsafe(coro, trestle.loop()), or run a
    coroutine and wait for its result with trestle.flask.run(coro). Flask's
    async views run on it by themselves (see trestle.flask).
    """
    from trestle._runtime import get_loop

    return get_loop()
