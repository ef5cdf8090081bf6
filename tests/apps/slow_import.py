"""An app whose import waits (bounded, 20 s) for the file named by
$SLOW_IMPORT_GATE: tests signal the server while its apps are loading."""
import os
import sys
import time

_gate = os.environ.get("SLOW_IMPORT_GATE", "")
print("slow_import: waiting for the gate", file=sys.stderr, flush=True)
_deadline = time.monotonic() + 20
while _gate and not os.path.exists(_gate) and time.monotonic() < _deadline:
    time.sleep(0.01)


def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "5")])
    return [b"ready"]
