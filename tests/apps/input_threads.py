"""Fixture for tests/integration/test_wsgi_input_threads.py: wsgi.input used from threads other
than the one running the app (issue 10 item 11).

POST /two-readers: two threads read wsgi.input at once, 1000 bytes at a time, while the app waits
for both (bounded). The response says how many bytes each got and a Counter of the byte values,
so the test can check that together they got the body exactly once.
POST /leave-reader/<name>: starts a thread that reads the whole of wsgi.input and returns at once,
while the client has sent only part of the body. The thread records what became of its read
under <name> (GET /state/<name>): the bytes, or the exception it got.
GET /two-writers: the same on the response side: a thread calls write() 40 times (64 KiB each)
while the app iterates its own 40 chunks; the app's iterable ends after the thread is done.
GET /leave-writer/<name>: starts a thread that calls write() in a loop, and returns at once; the
thread records the exception that stops it under <name>.
GET /sane: the interpreter and the server still work.
"""
import collections
import json
import sys
import threading

lock = threading.Lock()
STATE = {}


def _blocking_read(stream):
    return stream.read()


def _json(start_response, body, status="200 OK"):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    stream = environ["wsgi.input"]
    if path == "/two-readers":
        results = [None, None]

        def reader(i):
            got, counts = 0, collections.Counter()
            try:
                for _ in range(100000):
                    data = stream.read(1000)
                    if not data:
                        break
                    got += len(data)
                    counts.update(data)
                results[i] = {"bytes": got, "counts": counts}
            except BaseException as e:  # noqa: B902 - reported to the test
                results[i] = {"error": "%s: %s" % (type(e).__name__, e)}

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        if any(r is None for r in results):
            return _json(start_response, {"error": "a reader did not finish"}, "500 Internal Server Error")
        if any("error" in r for r in results):
            return _json(start_response, {"error": [r.get("error") for r in results]}, "500 Internal Server Error")
        counts = results[0]["counts"] + results[1]["counts"]
        return _json(start_response, {"bytes": [r["bytes"] for r in results],
                                      "counts": {str(k): v for k, v in counts.items()}})
    if path.startswith("/leave-reader/"):
        name = path.rsplit("/", 1)[1]

        def reader():
            try:
                data = _blocking_read(stream)
                result = {"bytes": len(data)}
            except BaseException as e:  # noqa: B902 - reported to the test
                result = {"error": type(e).__name__, "message": str(e)}
            with lock:
                STATE[name] = result
            # Used again after the request: an exception too, never a crash.
            try:
                stream.read(10)
                again = "no error"
            except BaseException as e:  # noqa: B902
                again = type(e).__name__
            with lock:
                STATE[name]["again"] = again

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        # Until the thread is inside read(), waiting for the body without the GIL: its frame has
        # been in _blocking_read on several polls in a row, while this thread let the GIL go
        # between them (bounded: 2 s).
        seen = 0
        for _ in range(400):
            frame = sys._current_frames().get(t.ident)
            seen = seen + 1 if frame is not None and frame.f_code is _blocking_read.__code__ else 0
            if seen >= 4:
                break
            threading.Event().wait(0.005)
        return _json(start_response, {"started": True, "blocked": seen >= 4})
    if path == "/two-writers":
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        errors = []

        def writer():
            try:
                for _ in range(40):
                    write(b"x" * 65536)
            except BaseException as e:  # noqa: B902 - reported to the test
                errors.append(repr(e))

        t = threading.Thread(target=writer)
        t.start()

        def body():
            for _ in range(40):
                yield b"y" * 65536
            t.join(60)
            if errors or t.is_alive():
                raise RuntimeError("writer failed: %r" % (errors or "still running",))
        return body()
    if path.startswith("/leave-writer/"):
        name = path.rsplit("/", 1)[1]
        write = start_response("200 OK", [("Content-Type", "text/plain")])

        def writer():
            n = 0
            try:
                for n in range(100000):
                    write(b"z" * 1000)
                result = {"error": None}
            except BaseException as e:  # noqa: B902 - reported to the test
                result = {"error": type(e).__name__, "message": str(e)}
            result["writes"] = n
            with lock:
                STATE[name] = result

        threading.Thread(target=writer, daemon=True).start()
        return [b"main\n"]
    if path.startswith("/state/"):
        with lock:
            return _json(start_response, STATE.get(path.rsplit("/", 1)[1]))
    return _json(start_response, {"type_ok": type(3) is int, "sum": 2 + 3})
