"""WSGI app for the request-corpus tests: answers every request with a JSON
description of what it received, so a test can compare it with the corpus.

JSON fields:
  method   REQUEST_METHOD
  target   RAW_URI, the request-target exactly as sent
  path     the path part of the raw target: scheme and authority of an
           absolute-form target, the query and the fragment split off, not
           percent-decoded
  query    QUERY_STRING
  version  SERVER_PROTOCOL ("HTTP/1.1")
  headers  [name, value] pairs rebuilt from the HTTP_*, CONTENT_TYPE and
           CONTENT_LENGTH keys: names are CGI-style (upper case, '-' read as
           '_'), repeated fields arrive joined by the server
  body     base64 of wsgi.input.read()
  hits     requests that reached the app so far, this one included

`GET /__trestle_hits` answers {"hits": N, "completed": M} without counting
itself: N is the requests that reached the app, M the ones whose body was read
to the end. A test reads it before and after sending bytes the server must
refuse, to check they never reached the app.
"""
import base64
import json
import re
import threading

HITS_PATH = "/__trestle_hits"

_lock = threading.Lock()
_state = {"hits": 0, "completed": 0}
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def split_target(target):
    """(path, query, fragment) of a raw request-target, as the corpus splits it."""
    rest = target
    if _ABSOLUTE.match(rest):
        after = rest.split("://", 1)[1]
        cut = [i for i in (after.find("/"), after.find("?"), after.find("#")) if i >= 0]
        rest = after[min(cut):] if cut else ""
    rest, _, fragment = rest.partition("#")
    path, _, query = rest.partition("?")
    return path, query, fragment


def _headers(environ):
    out = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out.append([key[5:], value])
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            out.append([key, value])
    return out


def _json(start_response, obj):
    body = json.dumps(obj).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    path, _, _ = split_target(target)
    if path == HITS_PATH and environ["REQUEST_METHOD"] == "GET":
        with _lock:
            return _json(start_response, dict(_state))
    with _lock:
        _state["hits"] += 1
        hits = _state["hits"]
    body = environ["wsgi.input"].read()   # raises if the body cannot be read
    with _lock:
        _state["completed"] += 1
    return _json(start_response, {
        "method": environ["REQUEST_METHOD"],
        "target": target,
        "path": path,
        "query": environ.get("QUERY_STRING", ""),
        "version": environ["SERVER_PROTOCOL"],
        "headers": _headers(environ),
        "body": base64.b64encode(body).decode("ascii"),
        "hits": hits,
    })
