"""Every case of the shared HTTP/1.1 request corpus, end to end.

The corpus (../shared/corpus/http1, see its README.md) holds raw request bytes
with the outcome a parser should reach: `valid/NAME` cases list the requests
that must come out, `invalid/NAME` cases must be refused. Each case is sent on
a fresh connection to one trestle serving tests/apps/echo.py, which answers
with a JSON description of what the app received.

Where trestle deliberately differs from the corpus, the case is in DEVIATIONS
below, the test expects trestle's behaviour, and docs/conformance.md gives the
reason. test_deviations_match_the_doc keeps the table and the doc in step.
"""
import base64
import json
import os
import re
import socket
from collections import namedtuple

import pytest

from conftest import APPS, ROOT, SHARED, Server, read_response, recv_until_closed, server_env

CORPUS = os.path.join(SHARED, "corpus", "http1")
DOC = os.path.join(ROOT, "docs", "conformance.md")
HITS_PATH = "/__trestle_hits"
TIMEOUT = 5.0

# ---- deviations -------------------------------------------------------------
#
# kind:
#   "reject"       a valid case is refused: the first `after` requests are
#                  answered normally, then one `status` response and the
#                  connection closes; the refused request never reaches the app.
#   "differ"       a valid case is served, but the app sees something other than
#                  the corpus lists; `adjust` names what (see expected_headers).
#   "accept"       an invalid case is served: the app gets the request.
#   "body_reject"  an invalid case whose fault is in the chunked body: the app is
#                  started once the head is read (bodies are streamed), its
#                  wsgi.input.read() raises, and the client gets `status`.
#   "silent"       an invalid case refused by closing without any response.
# adjust "dechunked": a chunked body reaches the app gathered, with
#                  CONTENT_LENGTH (its decoded length) in the place of
#                  Transfer-Encoding (docs/conformance.md#dechunked).
# reason: the heading key in docs/conformance.md.
Dev = namedtuple("Dev", "kind reason status after adjust", defaults=(None, 0, ()))

NO_HOST = "no-host"
DEVIATIONS = {
    # HTTP/1.1 without exactly one Host: 400 (RFC 9112 section 3.2).
    "valid/004": Dev("reject", NO_HOST, 400),
    "valid/005": Dev("reject", NO_HOST, 400),
    "valid/006": Dev("reject", NO_HOST, 400),
    "valid/007": Dev("reject", NO_HOST, 400),
    "valid/009": Dev("reject", NO_HOST, 400),
    "valid/010": Dev("reject", NO_HOST, 400),
    "valid/011": Dev("reject", NO_HOST, 400),
    "valid/012": Dev("reject", NO_HOST, 400),
    "valid/013": Dev("reject", NO_HOST, 400),
    "valid/014": Dev("reject", NO_HOST, 400),
    "valid/018": Dev("reject", NO_HOST, 400),
    "valid/021": Dev("reject", NO_HOST, 400),
    "valid/022": Dev("reject", NO_HOST, 400, after=1),
    "valid/023": Dev("reject", NO_HOST, 400),
    "valid/025": Dev("reject", NO_HOST, 400),
    "valid/025_line": Dev("reject", NO_HOST, 400),
    "valid/028": Dev("reject", NO_HOST, 400),
    "valid/029": Dev("reject", NO_HOST, 400),
    "valid/030": Dev("reject", NO_HOST, 400),
    "valid/031": Dev("reject", NO_HOST, 400),
    "valid/031compat": Dev("reject", NO_HOST, 400),
    "valid/031compat2": Dev("reject", NO_HOST, 400),
    "valid/100": Dev("reject", NO_HOST, 400),
    "valid/compat_obs_fold_huge": Dev("reject", NO_HOST, 400),
    "valid/pp_02": Dev("reject", NO_HOST, 400),
    # Transfer-Encoding other than one final `chunked`: 501 for a coding
    # trestle does not implement (RFC 9112 6.1), 400 for a malformed value.
    "valid/rfc9112_smuggle_te_identity_chunked_01": Dev("reject", "transfer-encoding", 501),
    "valid/rfc9112_smuggle_gzip_chunked_01": Dev("reject", "transfer-encoding", 501),
    # obs-fold: 400.
    "valid/compat_obs_fold": Dev("reject", "obs-fold", 400),
    # trestle's size limits, not gunicorn's.
    "valid/024": Dev("reject", "limits", 431),
    "valid/026": Dev("reject", "limits", 431),
    "invalid/006": Dev("accept", "limits"),
    "invalid/011": Dev("accept", "limits"),
    "invalid/012": Dev("accept", "limits"),
    # No PROXY protocol.
    "valid/pp_01": Dev("reject", "proxy-protocol", 400),
    "valid/pp_04": Dev("reject", "proxy-protocol", 400),
    "valid/pp_05": Dev("reject", "proxy-protocol", 400),
    # A body shorter than its Content-Length.
    "valid/099": Dev("reject", "truncated-body", 400),
    # Field names with '_' are always dropped.
    "valid/040_compat": Dev("differ", "underscore", adjust=("drop_underscore_names",)),
    "invalid/040": Dev("accept", "underscore"),
    # Content-Length "5, 5" is read as 5 (RFC 9110 8.6 allows it).
    "invalid/rfc9112_smuggle_cl_list_form_01": Dev("accept", "cl-list"),
    # Faults inside a chunked body: refused before the app runs, since a WSGI
    # body is gathered first (issue 10 item 6); no longer deviations. With a
    # streamed body they would surface in wsgi.input ("body_reject").
    # A chunked body reaches a WSGI app gathered, with a Content-Length.
    "valid/rfc9112_chunked_ext_quoted_01": Dev("differ", "dechunked", adjust=("dechunked",)),
    "valid/rfc9112_chunked_size_leading_zeros_01": Dev("differ", "dechunked", adjust=("dechunked",)),
    "valid/rfc9112_chunked_size_uppercase_hex_01": Dev("differ", "dechunked", adjust=("dechunked",)),
    # Input that ends inside the head: closed without an answer.
    "invalid/001": Dev("silent", "truncated-head"),
}
KINDS = {"reject", "differ", "accept", "body_reject", "silent"}
CASE_RE = re.compile(r"`((?:in)?valid/[A-Za-z0-9_]+)`")

# ---- corpus -----------------------------------------------------------------


def load_cases():
    names = []
    for kind in ("valid", "invalid"):
        folder = os.path.join(CORPUS, kind)
        if not os.path.isdir(folder):
            continue
        for fn in sorted(os.listdir(folder)):
            if fn.endswith(".json"):
                names.append("%s/%s" % (kind, fn[:-5]))
    return names


CASES = load_cases()
MISSING = "corpus-missing"
# A user's clone has no ../shared beside it: the corpus tests skip there.
needs_corpus = pytest.mark.skipif(not os.path.isdir(CORPUS), reason="no ../shared/corpus/http1 beside the checkout")


def read_case(name):
    base = os.path.join(CORPUS, name)
    with open(base + ".bin", "rb") as fh:
        data = fh.read()
    with open(base + ".json", "r", encoding="ascii") as fh:
        spec = json.load(fh)
    return data, spec


@needs_corpus
def test_corpus_is_present():
    assert os.path.isdir(CORPUS), "the shared HTTP/1.1 corpus is missing: %s" % CORPUS
    for kind in ("valid", "invalid"):
        assert any(c.startswith(kind + "/") for c in CASES), "no %s cases in %s" % (kind, CORPUS)
    for name in CASES:
        assert os.path.isfile(os.path.join(CORPUS, name + ".bin")), name


@needs_corpus
def test_deviations_match_the_doc():
    assert os.path.isfile(DOC), DOC
    with open(DOC, encoding="utf-8") as fh:
        doc = fh.read()
    in_doc = set(CASE_RE.findall(doc))
    for name, dev in sorted(DEVIATIONS.items()):
        assert name in CASES, "DEVIATIONS names %s, which is not a corpus case" % name
        assert dev.kind in KINDS, (name, dev.kind)
        assert (dev.kind in ("reject", "differ")) == name.startswith("valid/"), (name, dev.kind)
        assert name in in_doc, "%s is in DEVIATIONS but not in docs/conformance.md" % name
        assert '<a id="%s"></a>' % dev.reason in doc, "docs/conformance.md has no anchor %s" % dev.reason
    extra = sorted(in_doc - set(DEVIATIONS))
    assert not extra, "docs/conformance.md lists cases that are not in DEVIATIONS: %s" % extra


# ---- server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def srv():
    server = Server(["echo:app", "--bind", "127.0.0.1:0"], APPS, server_env())
    try:
        yield server
    finally:
        server.stop()
        try:
            os.unlink(server.log_path)
        except OSError:
            pass


def hits(srv):
    s = srv.connect(timeout=TIMEOUT)
    try:
        s.sendall(b"GET " + HITS_PATH.encode() + b" HTTP/1.1\r\nHost: corpus\r\nConnection: close\r\n\r\n")
        status, _, body, _ = read_response(s, timeout=TIMEOUT)
    finally:
        s.close()
    assert status == 200, status
    return json.loads(body)


def send(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass   # the server may answer and close before reading everything


def half_close_and_drain(sock):
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    return recv_until_closed(sock, timeout=TIMEOUT)


def split_responses(data, limit=16):
    """Parses raw response bytes (all with Content-Length) into (status, body)."""
    out = []
    for _ in range(limit):
        if not data:
            break
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, "incomplete response: %r" % data[:200]
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 "), "not a status line: %r" % lines[0]
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        out.append((int(lines[0].split(" ")[1]), rest[:length]))
        data = rest[length:]
    assert not data, "more responses than expected"
    return out


# ---- expectations -----------------------------------------------------------


def cgi_name(name):
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def expected_headers(headers, adjust=(), body_len=0):
    """The corpus headers as the echo app reports them: CGI names (without
    "HTTP_"), repeated fields joined with ", " ("; " for Cookie), in order of
    first appearance."""
    chunked = any(n.lower() == "transfer-encoding" for n, _ in headers)
    out = {}
    for name, value in headers:
        if "drop_underscore_names" in adjust and "_" in name:
            continue
        key = cgi_name(name)
        if key == "CONTENT_LENGTH" and chunked:
            continue
        if key == "HTTP_TRANSFER_ENCODING" and "dechunked" in adjust:
            key, value = "CONTENT_LENGTH", str(body_len)
            if key in out:
                continue
        if key in out:
            out[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            out[key] = value
    return [[k[5:] if k.startswith("HTTP_") else k, v] for k, v in out.items()]


def check_echo(name, i, got, want, adjust=()):
    where = "%s request %d" % (name, i)
    assert got["method"] == want["method"], where
    assert got["target"] == want["target"], where
    target = want["target"]
    if target.startswith("/") or "://" in target:
        # authority-form and asterisk-form: the corpus says compare the target only
        assert got["path"] == want["path"], where
        assert got["query"] == want["query"], where
    assert got["version"] == "HTTP/" + want["version"], where
    body_len = len(base64.b64decode(want["body_b64"]))
    assert got["headers"] == expected_headers(want["headers"], adjust, body_len), where
    assert not want["trailers"], "%s: trailers are not passed to WSGI apps" % where
    assert base64.b64decode(got["body"]) == base64.b64decode(want["body_b64"]), where


# ---- the cases --------------------------------------------------------------


def run_valid(srv, name, data, spec, dev):
    wants = spec["requests"]
    answered = wants[:dev.after] if dev and dev.kind == "reject" else wants
    before = hits(srv)
    s = srv.connect(timeout=TIMEOUT)
    try:
        send(s, data)
        rest = b""
        for i, want in enumerate(answered):
            status, _, body, rest = read_response(s, rest, timeout=TIMEOUT)
            assert status == 200, "%s request %d: %d %r" % (name, i, status, body[:200])
            check_echo(name, i, json.loads(body), want, dev.adjust if dev else ())
        tail = split_responses(rest + half_close_and_drain(s))
    finally:
        s.close()
    if dev and dev.kind == "reject":
        assert [st for st, _ in tail] == [dev.status], "%s: %r" % (name, tail)
    else:
        assert tail == [], "%s: responses after the listed requests: %r" % (name, tail)
    after = hits(srv)
    assert after["hits"] - before["hits"] == len(answered), name
    assert after["completed"] - before["completed"] == len(answered), name


def run_invalid(srv, name, data, dev):
    before = hits(srv)
    s = srv.connect(timeout=TIMEOUT)
    try:
        send(s, data)
        got = split_responses(half_close_and_drain(s))
    finally:
        s.close()
    after = hits(srv)
    entered = after["hits"] - before["hits"]
    completed = after["completed"] - before["completed"]
    kind = dev.kind if dev else "refuse"
    if kind == "silent":
        assert got == [], "%s: %r" % (name, got)
        assert (entered, completed) == (0, 0), name
    elif kind == "accept":
        assert got and all(st == 200 for st, _ in got), "%s: %r" % (name, got)
        method, target, _ = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        echo = json.loads(got[0][1])
        assert (echo["method"], echo["target"]) == (method, target), name
        assert entered == completed == len(got), name
    elif kind == "body_reject":
        assert [st for st, _ in got] == [dev.status], "%s: %r" % (name, got)
        assert (entered, completed) == (1, 0), "%s: the app must not get the body" % name
    else:
        assert len(got) == 1, "%s: expected one refusal, got %r" % (name, got)
        status = got[0][0]
        assert 400 <= status < 500 or status == 505, "%s: %d %r" % (name, status, got[0][1][:200])
        assert entered == 0 and completed == 0, "%s reached the app: %r" % (name, got[0][1][:300])


@needs_corpus
@pytest.mark.parametrize("name", CASES or [MISSING])
def test_case(srv, name):
    data, spec = read_case(name)
    dev = DEVIATIONS.get(name)
    if name.startswith("valid/"):
        run_valid(srv, name, data, spec, dev)
    else:
        run_invalid(srv, name, data, dev)
