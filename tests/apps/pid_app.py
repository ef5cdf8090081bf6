"""Answers with the worker's process id (tests/integration/test_workers.py).

/sleep?s=N sleeps N seconds first (appending the pid to $PID_APP_MARK
as it starts); /forked says whether the at-fork hook
ran in this process (--preload); /grow?mb=N keeps N MiB more alive.
"""
import os
import time
from urllib.parse import parse_qs

FORKED = []
HELD = []
os.register_at_fork(after_in_child=lambda: FORKED.append(os.getpid()))
IMPORTED_IN = os.getpid()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/sleep":
        mark = os.environ.get("PID_APP_MARK")
        if mark:   # lets a test see that the request is in the app
            with open(mark, "a") as fh:
                fh.write("%d\n" % os.getpid())
        time.sleep(float(query["s"][0]))
    if path == "/grow":
        HELD.append(bytearray(int(query["mb"][0]) << 20))
    if path == "/forked":
        body = ("imported_in=%d forked=%s pid=%d" % (IMPORTED_IN, FORKED, os.getpid())).encode()
    else:
        body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
