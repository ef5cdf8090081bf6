"""WSGI apps wrapped in wsgiref.validate.validator (tests/integration/test_validator.py).

The validator sits between trestle and each app and raises AssertionError if the
server breaks PEP 3333 (environ types, wsgi.input/wsgi.errors API, start_response
and write() contracts, close() of the app iterable...). WSGIWarnings (the
validator's "should" checks) are turned into errors too, so they also surface as
a 500 plus a traceback in the server log.
"""
import hashlib
import json
import sys
import threading
import urllib.parse
import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)

state = {"closed": [], "events": []}
lock = threading.Lock()


def record(kind, value):
    with lock:
        state[kind].append(value)


class Closing:
    """An app iterable that records its close() (called through the validator's wrapper)."""

    def __init__(self, name, iterable):
        self.name = name
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def close(self):
        if hasattr(self.iterable, "close"):
            self.iterable.close()
        record("closed", self.name)


def _json_response(start_response, obj, status="200 OK", name=None):
    body = json.dumps(obj, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Closing(name, [body]) if name else [body]


# --- hello -------------------------------------------------------------------------------------

def hello_raw(environ, start_response):
    body = b"Hello, validator!\n"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                              ("X-Method", environ["REQUEST_METHOD"])])
    return Closing("hello", [body])


hello_app = validator(hello_raw)


# --- request body readers ----------------------------------------------------------------------

def _remaining(environ):
    """Bytes the app may still read: CONTENT_LENGTH, or None when the server terminates the input."""
    cl = environ.get("CONTENT_LENGTH")
    if cl:
        return int(cl)
    if environ.get("wsgi.input_terminated"):
        return None
    return 0


def body_raw(environ, start_response):
    """Reads the body in the way the path names and reports what it saw."""
    mode = environ["PATH_INFO"].rsplit("/", 1)[-1]
    inp = environ["wsgi.input"]
    qs = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    size = int(qs.get("n", ["4096"])[0])
    left = _remaining(environ)
    pieces = []
    if mode == "read":
        # read(n) in chunks; with CONTENT_LENGTH never past it, else until b"".
        while left is None or left > 0:
            want = size if left is None else min(size, left)
            chunk = inp.read(want)
            if not chunk:
                break
            assert len(chunk) <= want, (len(chunk), want)
            pieces.append(chunk)
            if left is not None:
                left -= len(chunk)
    elif mode == "readline":
        for _ in range(1_000_000):
            line = inp.readline()
            if not line:
                break
            pieces.append(line)
    elif mode == "readline-size":
        for _ in range(1_000_000):
            line = inp.readline(size)
            if not line:
                break
            assert len(line) <= size, (len(line), size)
            pieces.append(line)
    elif mode == "readlines":
        pieces = inp.readlines()
    elif mode == "iter":
        pieces = [line for line in inp]
    elif mode == "mixed":
        # read(n), readline(), readlines() on one stream, each continuing where the last stopped.
        pieces.append(inp.read(size))
        pieces.append(inp.readline())
        pieces.extend(inp.readlines())
    else:
        return _json_response(start_response, {"error": "unknown mode " + mode}, "404 Not Found")
    body = b"".join(pieces)
    return _json_response(start_response, {
        "mode": mode,
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "pieces": [p.decode("latin-1") for p in pieces] if len(body) <= 4096 else len(pieces),
        "content_length": environ.get("CONTENT_LENGTH"),
        "input_terminated": environ.get("wsgi.input_terminated"),
        "method": environ["REQUEST_METHOD"],
    }, name="body-" + mode)


body_app = validator(body_raw)


# --- streaming generator -----------------------------------------------------------------------

def stream_raw(environ, start_response):
    qs = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    n = int(qs.get("n", ["5"])[0])
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["REQUEST_METHOD"] == "HEAD" and qs.get("empty_head"):
        # What Werkzeug/Flask do: no body at all for a HEAD, and no Content-Length.
        return Closing("stream", [])

    def gen():
        try:
            for i in range(n):
                yield b"line %d of %d\n" % (i, n)
        finally:
            record("events", "stream-generator-finished")

    return Closing("stream", gen())


stream_app = validator(stream_raw)


# --- wsgi.file_wrapper -------------------------------------------------------------------------

class TrackedFile:
    """A file-like object (read/close only) that records its close()."""

    def __init__(self, path):
        self.f = open(path, "rb")

    def read(self, n=-1):
        return self.f.read(n)

    def close(self):
        self.f.close()
        record("closed", "tracked-file")


def file_raw(environ, start_response):
    qs = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    path = qs["path"][0]
    headers = [("Content-Type", "application/octet-stream")]
    if qs.get("length"):
        headers.append(("Content-Length", qs["length"][0]))
    if qs.get("tracked"):
        f = TrackedFile(path)
    else:
        f = open(path, "rb")
        if qs.get("offset"):
            f.seek(int(qs["offset"][0]))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, int(qs.get("block", ["8192"])[0]))


file_app = validator(file_raw)


# --- the write() callable ----------------------------------------------------------------------

def write_raw(environ, start_response):
    mode = environ["PATH_INFO"].rsplit("/", 1)[-1]
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-1 ")
    write(b"")
    write(b"written-2 ")
    if mode == "only":
        return Closing("write-only", [])
    return Closing("write-mixed", [b"returned-1 ", b"returned-2"])


write_app = validator(write_raw)


# --- start_response with exc_info --------------------------------------------------------------

class AppFailure(Exception):
    pass


def exc_info_raw(environ, start_response):
    mode = environ["PATH_INFO"].rsplit("/", 1)[-1]
    if mode == "replace":
        # The usual pattern: headers were set, then an error before any body; the app
        # calls start_response again with exc_info and the server must use the new status.
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Original", "1")])
        try:
            raise AppFailure("failed before the body")
        except AppFailure:
            body = b"replaced after error\n"
            start_response("503 Service Unavailable",
                           [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                           sys.exc_info())
            return Closing("exc-replace", [body])
    if mode == "first":
        # exc_info on the very first call (no headers set yet) is legal too.
        try:
            raise AppFailure("failed first")
        except AppFailure:
            body = b"error page\n"
            start_response("500 Internal Server Error",
                           [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                           sys.exc_info())
            return Closing("exc-first", [body])
    if mode == "after-body":
        # Once the headers are sent (write() forces that), start_response with exc_info
        # must re-raise the app's exception (PEP 3333). The app records what happened.
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial body\n")
        try:
            raise AppFailure("failed after the body started")
        except AppFailure:
            try:
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            except AppFailure as e:
                record("events", "reraised:" + str(e))
            except BaseException as e:  # noqa: B902 - recorded for the test to report
                record("events", "raised-other:%s:%s" % (type(e).__name__, e))
            else:
                record("events", "not-raised")
        return Closing("exc-after-body", [])
    return _json_response(start_response, {"error": "unknown mode " + mode}, "404 Not Found")


exc_info_app = validator(exc_info_raw)


# --- misc --------------------------------------------------------------------------------------

def no_content_raw(environ, start_response):
    start_response("204 No Content", [])
    return Closing("no-content", [])


no_content_app = validator(no_content_raw)


def environ_raw(environ, start_response):
    keep = {k: v for k, v in environ.items() if type(v) in (str, bool, int)}
    keep["wsgi.version"] = repr(environ["wsgi.version"])
    keep["environ_type"] = type(environ).__name__
    return _json_response(start_response, keep, name="environ")


environ_app = validator(environ_raw)


def errors_raw(environ, start_response):
    """Writes through wsgi.errors (str only, per PEP 3333): write, writelines, flush."""
    errors = environ["wsgi.errors"]
    errors.write("validated-errors-write marker-5b2e\n")
    errors.writelines(["validated-errors-writelines-1 marker-5b2e\n", "validated-errors-writelines-2 marker-5b2e\n"])
    errors.flush()
    body = b"logged\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return Closing("errors", [body])


errors_app = validator(errors_raw)


def state_raw(environ, start_response):
    with lock:
        snapshot = {k: list(v) for k, v in state.items()}
    return _json_response(start_response, snapshot)


# --- one app that routes to all of the above, validated once -----------------------------------

ROUTES = [
    ("/hello", hello_raw),
    ("/body/", body_raw),
    ("/stream", stream_raw),
    ("/file", file_raw),
    ("/write/", write_raw),
    ("/exc-info/", exc_info_raw),
    ("/no-content", no_content_raw),
    ("/environ", environ_raw),
    ("/errors", errors_raw),
    ("/_state", state_raw),
]


def router(environ, start_response):
    path = environ.get("PATH_INFO", "")
    for prefix, target in ROUTES:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return target(environ, start_response)
    body = b"no route\n"
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


app = validator(router)
