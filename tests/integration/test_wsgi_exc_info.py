"""start_response(status, headers, exc_info) with an exc_info that is not what sys.exc_info()
returns (issue 10 item 5).

The rule (PEP 3333, as wsgiref re-raises): exc_info is None, or a 3-tuple (type, value, traceback)
of one exception, or (None, None, None) (sys.exc_info() outside an except block). Anything else
is the app's TypeError, raised from start_response: logged, then a 500 if the head is not out yet,
a cut connection if it is. A good exc_info after the head went out re-raises exc_info[1] with
exc_info[2] as its traceback; (None, None, None) then has nothing to re-raise and is a TypeError
too. Before the head goes out, any valid exc_info lets the app replace the headers.

Before the fix, (1, 2, None) after the first body chunk went to PyErr_Restore unchecked and left
`type(3)` a traceback object for the rest of the process: every case below is followed by a
request that checks the interpreter is still sane.
"""
import os
import sys

import pytest
import requests

from conftest import APPS, SANITIZER_MARKERS, Server, recv_until_closed, server_env

sys.path.insert(0, APPS)
import exc_info_cases as cases  # noqa: E402

BAD = sorted(set(cases.EXC_INFO) - {"real", "mismatched", "nones"})
TIMEOUT = 10


@pytest.fixture(scope="module")
def shared():
    srv = Server(["exc_info_cases:app", "--bind", "127.0.0.1:0", "--graceful-timeout", "3"], APPS, server_env())
    yield srv
    srv.stop()
    log = srv.log()
    os.unlink(srv.log_path)
    assert not any(marker in log for marker in SANITIZER_MARKERS), log[-6000:]


def raw_get(srv, path):
    s = srv.connect()
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        return recv_until_closed(s)
    finally:
        s.close()


def record(srv, path):
    return requests.get(srv.url + "/record" + path, timeout=TIMEOUT).json()


def assert_sane(srv):
    r = requests.get(srv.url + "/sane", timeout=TIMEOUT)
    assert r.status_code == 200, r.content
    assert r.json() == {"type_ok": True, "sum": 5, "mul": 42, "str": "12345", "isinstance": True}
    assert srv.proc.poll() is None


@pytest.mark.parametrize("kind", BAD + ["nones"])
def test_bad_exc_info_after_the_head_is_a_type_error_and_cuts_the_response(shared, kind):
    path = "/after/" + kind
    data = raw_get(shared, path)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), data[:300]
    # The head and the first chunk went out; no last chunk: the client sees a cut response.
    assert body == b"d\r\npartial body\n\r\n", body
    rec = record(shared, path)
    assert rec["raised"] == "TypeError", rec
    assert "exc_info" in rec["message"], rec
    shared.wait_log(r"TypeError: [^\n]*exc_info")
    assert_sane(shared)


@pytest.mark.parametrize("kind", BAD)
def test_bad_exc_info_before_the_head_is_a_type_error_and_a_500(shared, kind):
    path = "/before/" + kind
    data = raw_get(shared, path)
    assert data.startswith(b"HTTP/1.1 500 "), data[:300]
    assert b"replaced" not in data
    rec = record(shared, path)
    assert rec["raised"] == "TypeError", rec
    assert_sane(shared)


@pytest.mark.parametrize("kind", ["real", "mismatched"])
def test_good_exc_info_after_the_head_reraises_the_apps_exception(shared, kind):
    """As wsgiref: raise exc_info[1].with_traceback(exc_info[2]); exc_info[0] is not used."""
    path = "/after/" + kind
    data = raw_get(shared, path)
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"d\r\npartial body\n\r\n"), data[-200:]
    rec = record(shared, path)
    assert rec == {"raised": "AppFailure", "message": "the app's own error", "traceback_kept": True}
    assert_sane(shared)


@pytest.mark.parametrize("kind", ["real", "mismatched", "nones"])
def test_valid_exc_info_before_the_head_replaces_the_headers(shared, kind):
    """(None, None, None) is what sys.exc_info() gives outside an except block; wsgiref and
    gunicorn take any exc_info as leave to replace unsent headers, and so does Trestle."""
    path = "/before/" + kind
    data = raw_get(shared, path)
    assert data.startswith(b"HTTP/1.1 500 Oops\r\n") and data.endswith(b"\r\n\r\nreplaced\n"), data
    assert record(shared, path) == {"raised": None}
    assert_sane(shared)


# --- a sibling: an integer from the app used unchecked (wsgi.file_wrapper's fileno()) --------------

@pytest.mark.parametrize("fileno", [2**32 + 1, 2**32 + 2, -1, 2**70])
def test_file_wrapper_with_an_out_of_range_fileno_is_read_through_python(shared, fileno):
    """fileno() values that are no descriptor (2**32 + 1 once wrapped to 1, stdout, which is the
    server's log here) make the server iterate the wrapper instead of sendfile()ing that fd."""
    r = requests.get(shared.url + "/file-wrapper/%d" % fileno, timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b"from read()", r.content[:300]
    assert_sane(shared)
