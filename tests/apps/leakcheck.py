"""Fixture: reports the interpreter's allocated memory blocks (after a full
collection), for the reference-leak tests (tests/integration/test_refleaks.py).
Mount it next to the app under test; it answers on any path."""
import gc
import json
import sys


def app(environ, start_response):
    gc.collect()
    body = json.dumps({"blocks": sys.getallocatedblocks(), "objects": len(gc.get_objects())}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
