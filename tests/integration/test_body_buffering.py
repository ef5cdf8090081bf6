"""Request body buffering for WSGI apps (issue 10, item 6).

By default a WSGI request goes to the pool only once its whole body has arrived: in memory up to
--body-buffer-bytes, then in an unlinked temporary file in --body-temp-dir. A slow upload then
holds a connection, never a pool thread. `buffer_body = false` on a mount (or --no-buffer-body)
keeps streaming to wsgi.input. In both modes --min-body-rate cuts a client that trickles its body.

The server runs tests/apps/body_app.py. Every wait is polled and bounded.
"""
import hashlib
import json
import os
import select
import socket
import tempfile
import threading
import time

import pytest
import requests

from conftest import poll, read_head, read_response, recv_until_closed, rss_kb

APP = "body_app:app"
SANITIZED = bool(os.environ.get("TRESTLE_SANITIZED"))
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def body_of(size, seed=0):
    block = hashlib.sha256(b"%d" % seed).digest() * 2048   # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def chunked(data, piece=7000):
    out = b""
    for i in range(0, len(data), piece):
        part = data[i:i + piece]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def get_ok(srv, budget):
    """A GET on a new connection, answered within `budget` seconds."""
    start = time.monotonic()
    s = srv.connect(timeout=budget + 2)
    try:
        s.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_until_closed(s, timeout=budget + 2)
    finally:
        s.close()
    elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 200 "), data[:100]
    assert elapsed < budget, "GET /ok took %.2fs" % elapsed


def state(srv):
    return requests.get(srv.url + "/state", timeout=10).json()


class Upload:
    """One raw-socket upload of `data`, framed by Content-Length, chunked, or with Expect."""

    def __init__(self, srv, name, data, kind, path="/hash"):
        self.data, self.kind = data, kind
        self.wire = chunked(data) if kind == "chunked" else data
        self.s = srv.connect()
        head = b"POST %s?name=%s HTTP/1.1\r\nHost: x\r\n" % (path.encode(), name.encode())
        if kind == "chunked":
            head += b"Transfer-Encoding: chunked\r\n"
        else:
            head += b"Content-Length: %d\r\n" % len(data)
        if kind == "expect":
            head += b"Expect: 100-continue\r\n"
        self.s.sendall(head + b"\r\n")
        self.early = b""
        if kind == "expect":
            # The server buffers, so it says go ahead at once, before the app runs.
            self.s.settimeout(5)
            got = b""
            while len(got) < len(CONTINUE):
                more = self.s.recv(len(CONTINUE) - len(got))
                assert more, "closed before 100 Continue"
                got += more
            assert got == CONTINUE
        self.sent = 0

    def send(self, n):
        part = self.wire[self.sent:self.sent + n]
        self.s.sendall(part)
        self.sent += len(part)

    def finish(self):
        self.send(len(self.wire))
        status, _, body, _ = read_response(self.s, timeout=30)
        self.s.close()
        return status, body


def check_hash(status, body, data):
    assert status == 200, body[:300]
    got = json.loads(body)
    assert got["bytes"] == len(data)
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    return got


# --- slow uploads hold no pool thread -------------------------------------------------------------

def test_slow_uploaders_do_not_stop_gets(serve):
    """--threads 2, and 8 uploads of 100000 bytes (3 with Content-Length, 3 chunked, 2 with
    Expect: 100-continue) that send their head and a few bytes, then stop. GETs are answered
    within 2 s each meanwhile, the app has not been called for any upload, and once the bodies
    are sent, every upload is answered with the exact bytes (sha256 checked by the app).
    Checked before the fix (streaming, as with --no-buffer-body --min-body-rate 0): the GETs
    wait for a pool thread and the first one is not answered in 2 s."""
    srv = serve(APP, "--threads", "2", "--min-body-rate", "0")
    kinds = ["length"] * 3 + ["chunked"] * 3 + ["expect"] * 2
    ups = []
    for i, kind in enumerate(kinds):
        u = Upload(srv, "u%d" % i, body_of(100000, i), kind)
        u.send(10)
        ups.append(u)
    for _ in range(5):
        get_ok(srv, budget=2)
    assert state(srv)["calls"] == [], "the app ran before its body had arrived"
    for u in ups:
        u.send(50000)
    get_ok(srv, budget=2)
    for u in ups:
        check_hash(*u.finish(), u.data)
    assert sorted(state(srv)["calls"]) == sorted("u%d" % i for i in range(8))


def test_chunked_body_reaches_the_app_with_a_content_length(serve):
    """A dechunked, buffered body has a known length: the app gets CONTENT_LENGTH and no
    HTTP_TRANSFER_ENCODING, as behind nginx, which forwarded a buffered body with a Content-Length
    (so Django, which reads CONTENT_LENGTH, sees chunked uploads). Empty chunked bodies too."""
    srv = serve(APP)
    data = body_of(300000, 7)
    u = Upload(srv, "c", data, "chunked")
    got = check_hash(*u.finish(), data)
    assert got["content_length"] == "300000" and got["transfer_encoding"] is None

    s = srv.connect()
    s.sendall(b"POST /hash HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    status, _, body, _ = read_response(s)
    got = check_hash(status, body, b"")
    assert got["content_length"] == "0" and got["transfer_encoding"] is None


def test_wsgi_input_api_on_a_spilled_body(serve):
    """readline(), readline(size), iteration, readlines() and read() on a body that went to the
    temporary file (--body-buffer-bytes 16): the same bytes as from memory."""
    text = b"".join(b"line %d\n" % i for i in range(2000))
    for flags in ((), ("--body-buffer-bytes", "16")):
        srv = serve(APP, *flags)
        r = requests.post(srv.url + "/lines", data=text, timeout=10)
        assert r.status_code == 200
        got = r.json()
        assert got["first"] == "line 0\n" and got["second"] == "lin"
        assert got["iter"] == ["e 1\n", "line 2\n"]
        assert got["tail"] == ["line %d\n" % i for i in range(3, 2000)] and got["after"] == ""


def test_expect_continue_is_answered_when_buffering_starts(serve):
    """With buffering, the 100 goes out before the app runs (the app can no longer refuse the body
    first, as behind nginx), even to an app that never reads the body; the connection is then kept,
    since the body has been read. --max-body-bytes still answers 413 from the Content-Length,
    with no 100."""
    srv = serve(APP, "--max-body-bytes", "100000")
    s = srv.connect()
    s.sendall(b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    s.settimeout(10)
    got = b""
    while len(got) < len(CONTINUE):
        more = s.recv(64)
        assert more
        got += more
    assert got.startswith(CONTINUE)
    s.sendall(b"hello")
    status, headers, body, rest = read_response(s, got[len(CONTINUE):])
    assert (status, body) == (200, b"ignored") and headers.get("connection") != "close"
    s.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body, _ = read_response(s, rest)
    assert (status, body) == (200, b"ok")

    s = srv.connect()
    s.sendall(b"POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: 100001\r\nExpect: 100-continue\r\n\r\n")
    data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in data


# --- a large upload: bounded memory, a temporary file that leaves nothing -------------------------

def temp_fds(pid, tmp):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith(tmp):
            out.append(target)
    return out


def test_200mb_upload_spills_to_an_unlinked_file_with_bounded_memory(serve):
    """A 200 MB upload, streamed from the client: the server's RSS grows by less than 30 MB, the
    body goes to an unlinked file in --body-temp-dir (seen in /proc/PID/fd while it arrives, never
    as a name in the directory), the app's sha256 matches, and afterwards the directory is empty
    and the server holds no descriptor to it."""
    size = 200 << 20
    with tempfile.TemporaryDirectory(prefix="trestle-spill-") as tmp:
        srv = serve(APP, "--body-temp-dir", tmp)
        pid = srv.proc.pid
        get_ok(srv, budget=5)
        base_rss = rss_kb(pid)
        block = body_of(1 << 20, 3)
        digest = hashlib.sha256()
        for _ in range(size // len(block)):
            digest.update(block)
        result = {}
        sending = threading.Event()

        def upload():
            s = srv.connect(timeout=60)
            s.sendall(b"POST /hash?name=big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            for i in range(size // len(block)):
                s.sendall(block)
                if i == 20:
                    sending.set()
                    # Slow down a little so the test sees the file while the body arrives.
                    poll(lambda: result.get("seen"), timeout=5, interval=0.01)
            result["resp"] = read_response(s, timeout=60)
            s.close()

        t = threading.Thread(target=upload, daemon=True)
        t.start()
        assert sending.wait(30)
        seen = poll(lambda: temp_fds(pid, tmp), timeout=5, interval=0.01)
        result["seen"] = True
        assert seen and all(x.endswith("(deleted)") or "#" in x for x in seen), seen
        peak = rss_kb(pid)
        while t.is_alive():
            peak = max(peak, rss_kb(pid))
            assert not os.listdir(tmp), os.listdir(tmp)
            t.join(0.05)
        peak = max(peak, rss_kb(pid))
        status, _, body, _ = result["resp"]
        assert status == 200, body[:300]
        got = json.loads(body)
        assert got["bytes"] == size and got["sha256"] == digest.hexdigest()
        assert poll(lambda: not temp_fds(pid, tmp), timeout=5), temp_fds(pid, tmp)
        assert os.listdir(tmp) == []
        if not SANITIZED:
            assert peak - base_rss < 30 * 1024, "RSS grew by %d KiB" % (peak - base_rss)


def test_unusable_body_temp_dir_is_refused_at_startup(serve):
    from conftest import run_trestle
    r = run_trestle(APP, "--body-temp-dir", "/nonexistent-trestle-dir")
    assert r.returncode == 2 and "--body-temp-dir" in r.stderr


def test_a_temp_file_that_cannot_be_made_is_500_with_a_reason(serve):
    """The temporary directory disappears after startup: a body past --body-buffer-bytes gets 500
    (as from nginx), the log says why, the app is not called, and the server keeps serving."""
    tmp = tempfile.mkdtemp(prefix="trestle-gone-")
    srv = serve(APP, "--body-temp-dir", tmp, "--body-buffer-bytes", "1000")
    os.rmdir(tmp)
    r = requests.post(srv.url + "/hash?name=gone", data=body_of(100000), timeout=10)   # past the 64 KiB preread
    assert r.status_code == 500
    assert "cannot create a temporary file in " + tmp in srv.wait_log("cannot create a temporary file")
    r = requests.post(srv.url + "/hash?name=small", data=body_of(500), timeout=10)
    check_hash(r.status_code, r.content, body_of(500))
    assert state(srv)["calls"] == ["small"]


# --- the minimum body rate: 408 in both modes ----------------------------------------------------

def trickle_until_closed(s, interval=0.2, limit=8.0):
    """Sends a byte every `interval` s until the server answers and closes; returns what it sent."""
    s.setblocking(False)
    data = b""
    start = time.monotonic()
    next_byte = start
    while time.monotonic() - start < limit:
        if time.monotonic() >= next_byte:
            next_byte += interval
            try:
                s.send(b"x")
            except OSError:
                pass
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            try:
                more = s.recv(65536)
            except OSError:
                more = b""
            if not more:
                return data, time.monotonic() - start
            data += more
    raise AssertionError("still open after %.1fs: %r" % (limit, data[:200]))


@pytest.mark.parametrize("mode", ["buffered", "streamed"])
def test_body_trickled_below_the_minimum_rate_gets_408(serve, mode):
    """A client that sends its 100000-byte body a byte every 0.2 s (--io-timeout 5 never fires)
    against --min-body-rate 1000 --body-rate-window 1: 408 and close within about 1 s of waiting.
    Buffered, the app is never called; streamed (--no-buffer-body), its wsgi.input.read() raises
    and the client still gets 408. Checked before the fix: with --min-body-rate 0 it stays open."""
    flags = ["--io-timeout", "5", "--min-body-rate", "1000", "--body-rate-window", "1"]
    if mode == "streamed":
        flags.append("--no-buffer-body")
    srv = serve(APP, *flags)
    s = srv.connect()
    s.sendall(b"POST /hash?name=slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 70000)
    data, took = trickle_until_closed(s)
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert took < 3.5, took
    calls = state(srv)["calls"]
    assert calls == ([] if mode == "buffered" else ["slow"])
    # A steady client well above the rate is not cut.
    data = body_of(400000, 1)
    s = srv.connect()
    s.sendall(b"POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(data))
    for i in range(0, len(data), 20000):
        s.sendall(data[i:i + 20000])
        time.sleep(0.05)   # pacing the client (20000 B / 0.05 s), not waiting for the server
    status, _, body, _ = read_response(s)
    check_hash(status, body, data)


# --- streaming kept per mount --------------------------------------------------------------------

def test_buffer_body_false_on_a_mount_keeps_streaming(serve, tmp_path):
    """[[mount]] buffer_body = false: that mount's app sees the first bytes of a 100000-byte body
    before the rest is sent; the root mount (buffered by default) is not called until its body is
    complete. --no-buffer-body does the same server-wide."""
    cfg = tmp_path / "t.toml"
    cfg.write_text('[[mount]]\nprefix = "/"\napp = "body_app:app"\n\n'
                   '[[mount]]\nprefix = "/s"\napp = "body_app:app"\nbuffer_body = false\n')
    srv = serve("--config=" + str(cfg))   # run from tests/apps, where body_app is
    for path, streams in (("/s/hash", True), ("/hash", False)):
        name = path.strip("/").replace("/", "-")
        data = body_of(100000, 5)
        u = Upload(srv, name, data, "length", path=path)
        u.send(70000)   # more than the app's first read(65536)
        if streams:
            assert poll(lambda: name in state(srv)["first_bytes"], timeout=5), state(srv)
        else:
            get_ok(srv, budget=2)
            assert name not in state(srv)["calls"]
        check_hash(*u.finish(), data)

    srv = serve(APP, "--no-buffer-body")
    data = body_of(100000, 6)
    u = Upload(srv, "cli", data, "chunked")
    u.send(70000)
    assert poll(lambda: "cli" in state(srv)["first_bytes"], timeout=5), state(srv)
    check_hash(*u.finish(), data)
