"""Raw WSGI fixture app for the end-to-end tests: one behaviour per path."""
import json
import os
import threading
import time

state = {"produced": 0, "closed": [], "hits": 0}
lock = threading.Lock()


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Closing:
    """An iterable that records close() and can stall between chunks."""

    def __init__(self, name, chunks, delay=0.0, fail_at=None):
        self.name, self.chunks, self.delay, self.fail_at = name, chunks, delay, fail_at

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if self.fail_at == i:
                raise RuntimeError("boom in iteration")
            if self.delay:
                time.sleep(self.delay)
            yield c

    def close(self):
        with lock:
            state["closed"].append(self.name)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    with lock:
        state["hits"] += 1
    if path == "/environ":
        keep = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
        keep["wsgi.input"] = type(environ["wsgi.input"]).__name__
        return _json(start_response, keep)
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/echo-lines":
        lines = [line.decode("latin-1") for line in environ["wsgi.input"]]
        return _json(start_response, lines)
    if path == "/ignore-body":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/count-body":
        total = 0
        inp = environ["wsgi.input"]
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            total += len(chunk)
        return _json(start_response, {"bytes": total})
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"chunk%d\n" % i for i in range(3))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path == "/multi":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a", b"b", b"c"]
    if path == "/raise":
        raise ValueError("raised before start_response")
    if path == "/raise-late":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("raise-late", [b"first\n", b"second\n"], fail_at=1)
    if path == "/status":
        # Any status line the app likes, from the query string (e.g. 101, 199, 600).
        start_response(environ["QUERY_STRING"].replace("%20", " "), [("Content-Length", "2")])
        return [b"hi"]
    if path == "/hop":
        start_response("200 OK", [("Connection", "close"), ("Content-Length", "0")])
        return [b""]
    if path == "/no-start":
        return [b"never started"]
    if path == "/short":
        start_response("200 OK", [("Content-Length", "10")])
        return [b"12345"]
    if path == "/slow-stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Closing("slow-stream", [b"x" * 1024] * 200, delay=0.01)
    if path == "/big-stream":
        # 64 MiB in 64 KiB chunks; counts how much the app has produced so a
        # test can see the app pause when the client stops reading.
        def gen():
            chunk = b"y" * 65536
            for _ in range(1024):
                with lock:
                    state["produced"] += len(chunk)
                yield chunk
        with lock:
            state["produced"] = 0
        start_response("200 OK", [("Content-Length", str(65536 * 1024))])
        return gen()
    if path == "/produced":
        with lock:
            return _json(start_response, {"produced": state["produced"]})
    if path == "/closed":
        with lock:
            return _json(start_response, {"closed": list(state["closed"])})
    if path == "/hits":
        with lock:
            return _json(start_response, {"hits": state["hits"]})
    if path == "/sleep":
        qs = environ.get("QUERY_STRING") or "0.5"
        time.sleep(float(qs))
        start_response("200 OK", [("Content-Length", "5")])
        return [b"slept"]
    if path == "/block":
        # Blocks a pool thread until the flag file named in the query exists
        # (bounded to 10 s).
        flag = environ["QUERY_STRING"]
        open(flag + ".entered", "w").close()
        deadline = time.monotonic() + 10
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.01)
        start_response("200 OK", [("Content-Length", "7")])
        return [b"blocked"]
    if path == "/file":
        f = open(environ["QUERY_STRING"], "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/file-noread":
        class Tracked(object):
            def __init__(self, f):
                self.f = f
            def read(self, n=-1):
                with lock:
                    state["closed"].append("file-read-through-python")
                return self.f.read(n)
            def fileno(self):
                return self.f.fileno()
            def tell(self):
                return self.f.tell()
            def close(self):
                with lock:
                    state["closed"].append("file-noread")
                self.f.close()
        f = Tracked(open(environ["QUERY_STRING"], "rb"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/exc-info":
        try:
            raise KeyError("handled")
        except KeyError:
            import sys
            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response("503 Service Unavailable", [("Content-Length", "8")], sys.exc_info())
            return [b"replaced"]
    return _json(start_response, {"path": path, "method": environ["REQUEST_METHOD"],
                                  "query": environ["QUERY_STRING"]})
