"""An ASGI app that serves TRACE_APP (module:attr, from TRACE_DIR) and, on
GET /__selfcall?N, first calls that app N times in-process on the server's
own loop, one call after the other (bench/inprocess.py's caller: receive()
gives the empty body, then http.disconnect once the response has ended, as
trestle does; send() only records), then answers with the last response's
status, the thread CPU time per call and the GC's work meanwhile, as JSON.
bench/callgrind_asgi.py and bench/asgi_cpu.py use it to measure the app's
own cost in the same binary, on the same loop, as the served requests.
GET /__gc answers gc.get_stats() as JSON, with the thread CPU seconds spent
in collections per generation (timed with gc.callbacks).
"""
import asyncio
import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import inprocess  # noqa: E402

target = inprocess.load(os.environ["TRACE_DIR"], os.environ["TRACE_APP"])
_batch = None

# The GC's own time: thread CPU seconds inside collections, per generation.
gc_time = [0.0, 0.0, 0.0]
_gc_started = [0.0]


def _gc_timer(phase, info):
    if phase == "start":
        _gc_started[0] = time.thread_time()
    else:
        gc_time[info["generation"]] += time.thread_time() - _gc_started[0]


gc.callbacks.append(_gc_timer)
# Experiments: TRACE_GC_THRESHOLD=700,10,10 sets gc.set_threshold;
# TRACE_GC_FREEZE=1 moves everything alive after the import to the permanent
# generation (gc.freeze), so that full collections skip it.
if os.environ.get("TRACE_GC_THRESHOLD"):
    gc.set_threshold(*(int(x) for x in os.environ["TRACE_GC_THRESHOLD"].split(",")))
if os.environ.get("TRACE_GC_FREEZE"):
    gc.freeze()


def gc_stats():
    return [dict(s, seconds=t) for s, t in zip(gc.get_stats(), gc_time)]


async def app(scope, receive, send):
    global _batch
    path = scope.get("path") if scope["type"] == "http" else None
    if path not in ("/__selfcall", "/__gc"):
        return await target(scope, receive, send)
    if path == "/__gc":
        body = json.dumps(gc_stats()).encode()
    else:
        if _batch is None:
            _batch = inprocess.asgi_batch(target, asyncio.get_running_loop(), disconnect_at_end=True)
        n = int(scope["query_string"] or b"1")
        gc0, t0 = gc_stats(), time.thread_time()
        status, out = await _batch(n)
        cpu, gc1 = time.thread_time() - t0, gc_stats()
        body = json.dumps({"calls": n, "status": status, "body": out.decode("latin-1"),
                           "cpu_us_per_call": cpu / n * 1e6,
                           "gc": [{k: b[k] - a[k] for k in a} for a, b in zip(gc0, gc1)]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
