"""Flask hello (tests/apps/flask_hello.py) wrapped to record, for every
request, which pool thread ran it, when the app was entered and left
(time.perf_counter_ns, CLOCK_MONOTONIC), with TRACE_CPU=1 the thread's CPU
time in between (time.thread_time_ns), and, from a trestle built with the diagnostic
commit and run with TRESTLE_DIAG_POOL_TRACE=1, when the request was queued
for the pool and when a pool thread dequeued it. bench/gil_order.py serves it with trestle, loads it
with wrk and reads the records back from GET /__trace.

TRACE_SWITCH_MS, if set, is passed to sys.setswitchinterval (in ms) at import.
"""
import itertools
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "apps"))
from flask_hello import app as inner  # noqa: E402

if os.environ.get("TRACE_SWITCH_MS"):
    sys.setswitchinterval(float(os.environ["TRACE_SWITCH_MS"]) / 1000.0)

# (seq, thread, start ns, end ns, thread CPU ns, queued ns, dequeued ns,
# client port: the connection, the environ: when the dump is asked for, its
# "trestle.diag.done_ns", when trestle had handed the response over); the
# last two from trestle's environ when it runs with TRESTLE_DIAG_POOL_TRACE
# (a diagnostic build), else 0.
records = []
_seq = itertools.count()
_perf, _ident = time.perf_counter_ns, threading.get_ident
# The thread's CPU time is a system call (clock_gettime with the thread's CPU
# clock), and a system call is where the kernel switches threads, so a pool
# thread waiting for the GIL tends to get it there: measuring CPU time moves
# GIL hand-overs into the traced code. Off unless TRACE_CPU=1.
_cpu = time.thread_time_ns if os.environ.get("TRACE_CPU") else int


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/__trace":
        rows = [r[:-1] + (r[-1].get("trestle.diag.done_ns", 0),) for r in records]
        data = json.dumps({"switchinterval": sys.getswitchinterval(), "records": rows}).encode()
        records.clear()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(data)))])
        return [data]
    seq = next(_seq)
    t0, c0 = _perf(), _cpu()
    result = inner(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    records.append((seq, _ident(), t0, _perf(), _cpu() - c0,
                    environ.get("trestle.diag.submit_ns", 0), environ.get("trestle.diag.run_ns", 0),
                    environ.get("REMOTE_PORT"), environ))
    return [body]
