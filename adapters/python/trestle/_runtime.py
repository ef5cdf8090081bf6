"""Glue between Trestle's C++ runtime and asyncio. Not a public API."""
import asyncio
import concurrent.futures
import threading

_loop = None


class PoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor: Trestle's own thread pool.

    run_in_executor(None, ...), asyncio.to_thread and Quart's sync views all
    end up here, on the threads that also run WSGI apps. It subclasses
    ThreadPoolExecutor only because asyncio (3.11) insists on one; it never
    starts a thread of its own.
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


def setup_loop(loop, submit, fd, drain):
    """Runs on the loop thread before run_forever()."""
    global _loop
    asyncio.set_event_loop(loop)
    loop.set_default_executor(PoolExecutor(submit))
    loop.add_reader(fd, drain)
    _loop = loop
    return True


def close_loop(loop):
    """Runs on the loop thread after run_forever() returns."""
    global _loop
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        _loop = None
        loop.close()
    return True


def get_loop():
    if _loop is None:
        raise RuntimeError("trestle.loop() is only available inside a Trestle server running an event loop")
    return _loop
