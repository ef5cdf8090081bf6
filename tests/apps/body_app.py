"""Fixture for tests/integration/test_body_buffering.py: WSGI apps that read request bodies.

Serve it as `body_app:app` (and, for the per-mount streaming option, mount the same callable
again with buffer_body = false). Every path answers from one module-level state, so a test can
ask (GET /state) what the app has seen while an upload is still on the wire.

- POST /hash?name=N   reads wsgi.input in 64 KiB pieces and answers JSON with the sha256 and
                      byte count, the CONTENT_LENGTH and HTTP_TRANSFER_ENCODING it was given,
                      and when the app was called and saw its first bytes (recorded in state).
- POST /lines         reads with readline()/iteration/readlines() and answers the lines.
- POST /ignore        answers without reading the body.
- GET /ok, GET /state
"""
import hashlib
import json
import threading
import time

lock = threading.Lock()
state = {"calls": [], "first_bytes": []}


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    name = q.get("name", "")
    if path == "/ok":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/state":
        with lock:
            return _json(start_response, json.loads(json.dumps(state)))
    if path == "/hash":
        with lock:
            state["calls"].append(name)
        inp = environ["wsgi.input"]
        h = hashlib.sha256()
        n = 0
        first = True
        while True:
            data = inp.read(65536)   # an OSError (408, client gone) propagates: the server answers
            if not data:
                break
            if first:
                first = False
                with lock:
                    state["first_bytes"].append(name)
            h.update(data)
            n += len(data)
        return _json(start_response, {
            "sha256": h.hexdigest(), "bytes": n,
            "content_length": environ.get("CONTENT_LENGTH"),
            "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
            "expect": environ.get("HTTP_EXPECT"),
        })
    if path == "/lines":
        inp = environ["wsgi.input"]
        first = inp.readline()
        second = inp.readline(3)
        rest_iter = []
        for line in inp:
            rest_iter.append(line.decode())
            if len(rest_iter) == 2:
                break
        tail = inp.readlines()
        return _json(start_response, {"first": first.decode(), "second": second.decode(),
                                      "iter": rest_iter, "tail": [t.decode() for t in tail],
                                      "after": inp.read().decode()})
    if path == "/ignore":
        start_response("200 OK", [("Content-Length", "7")])
        return [b"ignored"]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
