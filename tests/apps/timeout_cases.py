"""Fixture: WSGI requests that run past --timeout, in the ways they do
(tests/integration/test_timeout.py). Each view prints to stderr (the server
log) what it saw, so the tests can tell where the timeout's exception
landed."""
import sys
import time


def say(text):
    print("timeout_cases: " + text, file=sys.stderr, flush=True)


def respond(start_response, body=b"ok"):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def sleep_long(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or 30))   # one C call: the exception waits for its end
    return respond(start_response, b"slept")


def busy(environ, start_response):
    n = 0
    try:
        while True:   # pure Python: the exception lands at once
            n += 1
    finally:
        say("busy loop left after %s turns" % ("many" if n > 1000 else "few"))


def naps(environ, start_response):
    while True:
        time.sleep(0.05)


def swallow(environ, start_response):
    # An app that hides every error: RequestTimeout is no Exception, so it
    # still gets out.
    while True:
        try:
            time.sleep(0.05)
        except Exception:  # noqa: B902 - the point of the fixture
            say("swallowed an exception")


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first chunk\n"
        while True:   # then stalls
            time.sleep(0.05)
        yield b"never\n"
    return body()


def ctypes_sleep(environ, start_response):
    # libc's sleep(3) through ctypes: C code that never returns to Python
    # until it is done, and does not retry on a signal the way time.sleep does.
    import ctypes
    ctypes.CDLL(None).sleep(30)
    return respond(start_response, b"slept")


def quick(environ, start_response):
    return respond(start_response, b"quick")


def slow(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or 2))
    return respond(start_response, b"slow but in time")


ROUTES = {"/sleep": sleep_long, "/busy": busy, "/naps": naps, "/swallow": swallow, "/stream": stream,
          "/quick": quick, "/slow": slow, "/ctypes-sleep": ctypes_sleep}


def app(environ, start_response):
    return ROUTES.get(environ["PATH_INFO"], quick)(environ, start_response)
