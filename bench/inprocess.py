#!/usr/bin/python3
"""The physical limit: an app's own cost, called in-process with no HTTP.

    /usr/bin/python3 bench/inprocess.py DIR MODULE:ATTR wsgi|asgi [SECONDS]

Loads the app from DIR, calls it in a loop for about SECONDS (default 3), and
prints one JSON line: {"us_per_call": ..., "calls_per_s": ..., ...}.
bench/bench.py runs it pinned to the server's CPU (taskset -c 0), once per app,
so "server CPU µs/req" minus this is the server's own overhead.

- WSGI: a plain dict environ per call (a copy of a prebuilt one, with a fresh
  wsgi.input), a start_response that only records the status; the body
  iterable is consumed and closed, as a server would.
- ASGI: on a uvloop loop (asyncio if uvloop is missing), one `await app(scope,
  receive, send)` after another in a single task. Each call gets a copy of a
  prebuilt http scope; receive() returns the empty request body once and then
  waits until cancelled (as when the client stays connected; Quart's receiver
  task is cancelled when the response is done); send() only records.

Each call's response is checked (status 200, the expected body). The figure is
CPU time (time.process_time) per call: the median of 7 batches after a
warm-up, so a brief burst of other work on the CPU does not count.
"""

import asyncio
import io
import json
import statistics
import sys
import time

BATCHES = 7


def load(directory, target):
    sys.path.insert(0, directory)
    module, _, attr = target.partition(":")
    mod = __import__(module)
    return getattr(mod, attr or "app")


def wsgi_caller(app):
    base = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)

    def call():
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(b"")
        status.clear()
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return int(status[0].split()[0]), body

    def run(n):
        last = None
        for _ in range(n):
            last = call()
        return last

    return run


def asgi_runner(app, disconnect_at_end=False):
    """run(n) calls the app n times on a new uvloop loop (asyncio if uvloop
    is missing); see asgi_batch."""
    try:
        import uvloop
        loop, loop_name = uvloop.new_event_loop(), "uvloop"
    except ImportError:
        loop, loop_name = asyncio.new_event_loop(), "asyncio"
    asyncio.set_event_loop(loop)
    batch = asgi_batch(app, loop, disconnect_at_end)

    def run(n):
        return loop.run_until_complete(batch(n))

    return run, loop_name


def asgi_batch(app, loop, disconnect_at_end=False):
    """batch(n), a coroutine on `loop` that calls the app n times, one after
    the other, and returns the last (status, body). With disconnect_at_end, a
    receive() waiting after the body returns http.disconnect once send() has
    sent the last body, as trestle and uvicorn do (bench/callgrind_asgi.py
    measures the difference); by default it waits until cancelled."""
    base = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/",
        "raw_path": b"/", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"inprocess"),
                    (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }
    request = {"type": "http.request", "body": b"", "more_body": False}
    disconnect = {"type": "http.disconnect"}

    async def call():
        got_request = False
        out = {"status": None, "body": []}

        if not disconnect_at_end:
            async def receive():
                nonlocal got_request
                if not got_request:
                    got_request = True
                    return request
                await loop.create_future()  # stays connected until cancelled

            async def send(message):
                if message["type"] == "http.response.start":
                    out["status"] = message["status"]
                elif message["type"] == "http.response.body":
                    out["body"].append(message.get("body", b""))
        else:
            waiting = []

            async def receive():
                nonlocal got_request
                if not got_request:
                    got_request = True
                    return request
                if "ended" in out:
                    return disconnect
                waiting.append(loop.create_future())
                return await waiting[-1]   # until the response has ended

            async def send(message):
                if message["type"] == "http.response.start":
                    out["status"] = message["status"]
                elif message["type"] == "http.response.body":
                    out["body"].append(message.get("body", b""))
                    if not message.get("more_body", False):
                        out["ended"] = True
                        for f in waiting:
                            f.done() or f.set_result(disconnect)

        scope = dict(base)
        scope["headers"] = list(base["headers"])
        scope["state"] = {}
        await app(scope, receive, send)
        return out["status"], b"".join(out["body"])

    async def batch(n):
        last = None
        for _ in range(n):
            last = await call()
        return last

    return batch


def main(argv):
    directory, target, iface = argv[:3]
    seconds = float(argv[3]) if len(argv) > 3 else 3.0
    app = load(directory, target)
    loop_name = None
    if iface == "wsgi":
        run = wsgi_caller(app)
    else:
        run, loop_name = asgi_runner(app)
    status, body = run(1)
    # Calibrate: how many calls make one batch of about seconds / (BATCHES + 1).
    n, per_batch = 10, seconds / (BATCHES + 1)
    while True:
        t0 = time.process_time()
        run(n)
        took = time.process_time() - t0
        if took >= per_batch / 4 or n >= 10_000_000:
            break
        n *= 4
    n = max(1, int(n * per_batch / max(took, 1e-6)))
    run(n)  # warm-up batch
    samples = []
    for _ in range(BATCHES):
        t0 = time.process_time()
        status, body = run(n)
        samples.append((time.process_time() - t0) / n)
    us = statistics.median(samples) * 1e6
    print(json.dumps({"target": target, "interface": iface, "loop": loop_name,
                      "us_per_call": us, "calls_per_s": 1e6 / us, "calls_per_batch": n,
                      "batches_us": [s * 1e6 for s in samples],
                      "status": status, "body": body.decode("latin-1")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
