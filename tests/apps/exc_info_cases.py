"""Fixture for tests/integration/test_wsgi_exc_info.py: start_response(..., exc_info) with
tuples that are not what sys.exc_info() returns (issue 10 item 5).

GET /<when>/<kind>: `when` is "before" (headers set but not sent) or "after" (a body chunk was
written, so the head is out); `kind` names an entry of EXC_INFO. The app records what
start_response did (returned, or the exception's type and message) and lets any exception
propagate, as a real error handler would. GET /record/<when>/<kind> returns that record.
GET /sane does arithmetic and type checks that a corrupted interpreter gets wrong.

A sibling, GET /file-wrapper/<n>: a wsgi.file_wrapper over an object whose fileno() returns
`n`, such as 2**32 + 1, which a cast to int once turned into descriptor 1 (the server's log).
"""
import json
import sys
import threading

lock = threading.Lock()
RECORDS = {}


class AppFailure(Exception):
    pass


def _real():
    try:
        raise AppFailure("the app's own error")
    except AppFailure:
        return sys.exc_info()


def _mismatched():
    t, v, tb = _real()
    return (KeyError, v, tb)   # [0] is a type, but not the value's: raise uses the value


EXC_INFO = {
    "ints": lambda: (1, 2, None),
    "nones": lambda: (None, None, None),
    "short": lambda: (AppFailure, AppFailure("x")),
    "long": lambda: (AppFailure, AppFailure("x"), None, None),
    "list": lambda: [AppFailure, AppFailure("x"), None],
    "str": lambda: "not a tuple",
    "bad-tb": lambda: (AppFailure, AppFailure("x"), 5),
    "bad-type": lambda: (5, AppFailure("x"), None),
    "class-value": lambda: (AppFailure, AppFailure, None),
    "value-none": lambda: (AppFailure, None, None),
    "non-exception-type": lambda: (int, AppFailure("x"), None),
    "real": _real,
    "mismatched": _mismatched,
}


def _record(key, value):
    with lock:
        RECORDS[key] = value


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sane":
        body = json.dumps({"type_ok": type(3) is int, "sum": 2 + 3, "mul": 6 * 7,
                           "str": str(12345), "isinstance": isinstance(3, int)}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path.startswith("/record/"):
        with lock:
            body = json.dumps(RECORDS.get(path[len("/record"):])).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path.startswith("/file-wrapper/"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](OddFileno(int(path.rsplit("/", 1)[1])))
    _, when, kind = path.split("/")
    exc_info = EXC_INFO[kind]()
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    if when == "after":
        write(b"partial body\n")
    try:
        start_response("500 Oops", [("Content-Type", "text/plain"), ("Content-Length", "9")], exc_info)
    except BaseException as e:  # noqa: B902 - recorded, then propagated as an app would
        tb_is_given = len(exc_info) == 3 and e.__traceback__ is not None and exc_info[2] is not None \
            and exc_info[2] in _tb_chain(e.__traceback__)
        _record(path, {"raised": type(e).__name__, "message": str(e), "traceback_kept": tb_is_given})
        raise
    _record(path, {"raised": None})
    return [b"replaced\n"]


def _tb_chain(tb):
    out = []
    while tb is not None and len(out) < 100:
        out.append(tb)
        tb = tb.tb_next
    return out


class OddFileno:
    """A file-like object whose fileno() is not a usable descriptor: the server must read()."""

    def __init__(self, fileno):
        self._fileno, self._data = fileno, [b"from read()"]

    def fileno(self):
        return self._fileno

    def tell(self):
        return 0

    def read(self, n=-1):
        return self._data.pop() if self._data else b""
