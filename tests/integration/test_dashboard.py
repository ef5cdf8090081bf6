"""The live dashboard (--dashboard PATH): the page and its JSON answers, the
Server-Sent Events stream (framing, the first event at once, the metrics
text inside it parsed by python3-prometheus-client's parser, its end when
the client leaves or a graceful stop begins, HTTP/2), the allow-list and
the token, the settings; and the page itself in real headless Chromium
(Debian's chromium + chromium-driver, driven by python3-selenium): no
console errors, numbers that move under load, the sync/async split, a
reconnect after a restart, and a screenshot in the test's artifacts
(TRESTLE_ARTIFACTS if set, else the test's tmp_path)."""
import http.server
import json
import os
import shutil
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import poll, read_head

parser = pytest.importorskip("prometheus_client.parser", reason="needs python3-prometheus-client (Debian)")

DASH = ("--dashboard", "/dash")
NO_SHADOW = {"mounts": [], "mismatches": []}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(text, name, **labels):
    """The value of one sample in a text-format exposition (None if absent)."""
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


class EventReader:
    """Reads an SSE response on a raw HTTP/1.1 socket: the head, then events
    out of the chunked body. Every read is bounded by `timeout`."""

    def __init__(self, srv, path="/dash/events", extra=b""):
        self.sock = srv.connect()
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
        self.status, fields, self.raw = read_head(self.sock)
        self.headers = {k.lower(): v for k, v in fields}
        self.body = b""
        self.ended = False   # the last chunk came

    def _dechunk(self):
        while not self.ended:
            line, sep, rest = self.raw.partition(b"\r\n")
            if not sep:
                return
            size = int(line.split(b";")[0], 16)
            if size == 0:
                self.ended = True
                return
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.raw = rest[size + 2:]

    def _more(self, deadline):
        self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("closed")
        self.raw += data
        self._dechunk()

    def event(self, timeout=5.0):
        """The next event's fields: {"retry": ..., "data": ...}."""
        deadline = time.monotonic() + timeout
        self._dechunk()
        while b"\n\n" not in self.body:
            if self.ended:
                raise EOFError("the stream ended")
            assert time.monotonic() < deadline, "no whole event in %ss: %r" % (timeout, self.body[:200])
            self._more(deadline)
        block, _, self.body = self.body.partition(b"\n\n")
        fields = {}
        for line in block.decode().split("\n"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = fields[name] + "\n" + value if name in fields else value
        return fields

    def wait_end(self, timeout=5.0):
        """Reads until the last chunk and the close; returns the seconds it took."""
        start = time.monotonic()
        deadline = start + timeout
        while not self.ended:
            assert time.monotonic() < deadline, "the stream did not end in %ss" % timeout
            try:
                self._more(deadline)
            except EOFError:
                break
        return time.monotonic() - start

    def close(self):
        self.sock.close()


# ---- plain HTTP ------------------------------------------------------------------------


def test_the_page_and_the_json_answers(serve):
    srv = serve("hello:app", *DASH)
    for _ in range(5):
        assert requests.get(srv.url + "/", timeout=10).text == "Hello, World!"
    for path in ("/dash", "/dash/"):
        r = requests.get(srv.url + path, timeout=10)
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
        assert r.text.startswith("<!doctype html>") and 'id="shadow-table"' in r.text
        # Nothing from another origin: it works offline.
        assert "http://" not in r.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in r.text
    head = requests.head(srv.url + "/dash", timeout=10)
    assert head.status_code == 200 and head.content == b""

    r = requests.get(srv.url + "/dash/data", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    data = r.json()
    assert abs(data["t"] - time.time()) < 60
    assert data["shadow"] == NO_SHADOW
    assert metric(data["metrics"], "trestle_requests_total", mount="/", interface="wsgi", code="2xx") == 5
    assert metric(data["metrics"], "trestle_pool_threads") >= 1
    r = requests.get(srv.url + "/dash/shadow", timeout=10)
    assert r.status_code == 200 and r.json() == NO_SHADOW

    r = requests.post(srv.url + "/dash/data", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert requests.get(srv.url + "/dash/nope", timeout=10).status_code == 404
    assert requests.get(srv.url + "/dash/events/x", timeout=10).status_code == 404
    # --dashboard turns the registry on, not the /metrics route: the app keeps it.
    assert requests.get(srv.url + "/metrics", timeout=10).text == "Hello, World!"


def test_events_first_at_once_then_one_a_second(serve):
    srv = serve("hello:app", *DASH)
    sent = time.time()
    ev = EventReader(srv)
    try:
        assert ev.status == 200
        assert ev.headers["content-type"] == "text/event-stream"
        assert ev.headers["cache-control"] == "no-store"
        assert ev.headers["transfer-encoding"] == "chunked"
        first = ev.event(timeout=5)
        assert first["retry"] == "1000"
        assert "\n" not in first["data"]   # one line of JSON
        one = json.loads(first["data"])
        assert one["t"] - sent < 0.9   # made at once, not a period later
        assert set(one) == {"t", "metrics", "shadow"} and one["shadow"] == NO_SHADOW
        families = {f.name for f in parser.text_string_to_metric_families(one["metrics"])}
        assert {"trestle_requests", "trestle_request_duration_seconds", "trestle_pool_threads"} <= families
        for _ in range(3):
            requests.get(srv.url + "/", timeout=10)
        second = json.loads(ev.event(timeout=5)["data"])
        assert 0.5 < second["t"] - one["t"] < 3
        # An event made while the requests ran may not count them all yet.
        for _ in range(5):
            if metric(second["metrics"], "trestle_requests_total", mount="/", interface="wsgi", code="2xx") == 3:
                break
            second = json.loads(ev.event(timeout=5)["data"])
        assert metric(second["metrics"], "trestle_requests_total", mount="/", interface="wsgi", code="2xx") == 3
        # The stream counts as one request in flight on the dashboard's mount.
        assert metric(second["metrics"], "trestle_requests_in_flight", mount="/dash", interface="dashboard") == 1
    finally:
        ev.close()


def test_a_client_that_leaves_ends_its_stream(serve):
    srv = serve("hello:app", *DASH)
    streams = [EventReader(srv) for _ in range(3)]
    for ev in streams:
        ev.event()
    text = requests.get(srv.url + "/dash/data", timeout=10).json()["metrics"]
    assert metric(text, "trestle_requests_in_flight", mount="/dash", interface="dashboard") == 4   # with /data
    for ev in streams:
        ev.close()

    def in_flight():
        text = requests.get(srv.url + "/dash/data", timeout=10).json()["metrics"]
        return metric(text, "trestle_requests_in_flight", mount="/dash", interface="dashboard")
    assert poll(lambda: in_flight() == 1, timeout=10), in_flight()


def test_a_graceful_stop_ends_the_stream_at_once(serve):
    srv = serve("hello:app", *DASH)
    ev = EventReader(srv)
    ev.event()
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    took = ev.wait_end(timeout=5)
    assert took < 1.0, took
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - start < 3.0
    ev.close()


def test_with_a_drain_delay_the_stream_ends_while_the_server_still_serves(serve):
    srv = serve("hello:app", *DASH, "--drain-delay", "3", "--graceful-timeout", "5")
    ev = EventReader(srv)
    ev.event()
    srv.proc.send_signal(signal.SIGTERM)
    assert ev.wait_end(timeout=5) < 1.0
    assert srv.proc.poll() is None   # still in its --drain-delay
    assert requests.get(srv.url + "/", timeout=10).status_code == 200
    ev.close()


def test_over_http2(serve):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("h2")
    srv = serve("hello:app", *DASH)
    with httpx.Client(http1=False, http2=True, timeout=10) as c:
        r = c.get(srv.url + "/dash/data")
        assert r.http_version == "HTTP/2" and r.json()["shadow"] == NO_SHADOW
        start = time.monotonic()
        with c.stream("GET", srv.url + "/dash/events") as r:
            assert r.http_version == "HTTP/2"
            assert r.headers["content-type"] == "text/event-stream"
            datas = []
            for line in r.iter_lines():
                if line.startswith("data: "):
                    datas.append(json.loads(line[6:]))
                    if len(datas) == 2:
                        break
                assert time.monotonic() - start < 10
        assert datas[1]["t"] > datas[0]["t"]
        assert metric(datas[0]["metrics"], "trestle_pool_threads") >= 1
        # The stream was reset by the client: the connection serves on.
        assert c.get(srv.url + "/").text == "Hello, World!"


@pytest.mark.parametrize("path", ["/dash", "/dash/", "/dash/events", "/dash/data", "/dash/shadow"])
def test_the_allow_list_refuses_others_and_the_token_lets_them_in(serve, path):
    srv = serve("hello:app", *DASH, "--dashboard-allow", "10.0.0.0/8", "--dashboard-token", "s3cr-et")
    url = srv.url + path
    r = requests.get(url, timeout=10)
    assert r.status_code == 403 and "trestle_" not in r.text
    assert requests.post(url, timeout=10).status_code == 403
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 403
    assert requests.get(url + "?token=s3cr-e", timeout=10).status_code == 403
    for kw in ({"headers": {"Authorization": "Bearer s3cr-et"}}, {"params": {"token": "s3cr-et"}}):
        with requests.get(url, stream=True, timeout=10, **kw) as r:
            assert r.status_code == 200, kw
    # Without a token set, nobody outside the list gets in.
    srv2 = serve("hello:app", *DASH, "--dashboard-allow", "10.0.0.0/8")
    assert requests.get(srv2.url + path, params={"token": ""}, timeout=10).status_code == 403


def test_from_the_config_file(serve, tmp_path):
    conf = tmp_path / "t.toml"
    conf.write_text('[dashboard]\npath = "/_d"\nallow = ["10.0.0.0/8"]\ntoken = "tok"\n')
    srv = serve("hello:app", "--config", str(conf))
    assert requests.get(srv.url + "/_d/data", timeout=10).status_code == 403
    assert requests.get(srv.url + "/_d/data?token=tok", timeout=10).json()["shadow"] == NO_SHADOW


@pytest.mark.parametrize("flags, message", [
    (["--dashboard", "dash"], "must start with /"),
    (["--dashboard", "/"], "a path of their own"),
    (["--dashboard", "/x", "--metrics-path", "/x"], "another of the server's paths"),
    (["--dashboard", "/x", "--health-path", "/x"], "another of the server's paths"),
    (["--dashboard", "/x", "--dashboard-allow", "not-an-address"], "--dashboard-allow"),
    (["--dashboard", "/x", "--dashboard-token", "has space"], "--dashboard-token"),
    (["--dashboard-token", "t"], "needs --dashboard"),
])
def test_bad_settings_are_one_line_and_exit_2(serve, flags, message):
    srv = serve("hello:app", *flags, expect_ready=False)
    assert srv.proc.wait(30) == 2
    err = srv.log().strip().splitlines()
    assert message in err[-1], err


def test_with_workers_it_shows_the_sum(serve):
    srv = serve("hello:app", *DASH, "--workers", "2")
    for _ in range(20):
        assert requests.get(srv.url + "/", timeout=10).status_code == 200

    def count():
        text = requests.get(srv.url + "/dash/data", timeout=10).json()["metrics"]
        return metric(text, "trestle_requests_total", mount="/", interface="wsgi", code="2xx"), \
            metric(text, "trestle_workers")
    assert poll(lambda: count() == (20, 2), timeout=20), count()


# ---- in headless Chromium --------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def have_selenium():
    try:
        import selenium  # noqa: F401
        return True
    except ImportError:
        return False


browser_needed = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER and have_selenium()),
                                    reason="needs chromium, chromium-driver and python3-selenium (Debian)")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,1500", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def artifacts_dir(tmp_path):
    d = os.environ.get("TRESTLE_ARTIFACTS")
    if d:
        os.makedirs(d, exist_ok=True)
        return d
    return str(tmp_path)


def wait_for(driver, fn, timeout=30):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: fn(d))
    except TimeoutException:
        # What the page showed, and what the browser logged, to see why.
        raise AssertionError("the page never got there: status %r, requests %r, log %r" % (
            text_of(driver, "#status"), text_of(driver, "#total-requests"), driver.get_log("browser")))


def text_of(driver, css):
    from selenium.webdriver.common.by import By
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else None


def state(driver):
    return driver.find_element("id", "status").get_attribute("data-state")


def shown_requests(driver):
    t = text_of(driver, "#total-requests")
    return int(t) if t and t.isdigit() else -1


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


@browser_needed
def test_the_page_loads_clean_and_its_numbers_move_under_load(serve, browser, tmp_path):
    srv = serve("hello:app", "/v2=asgi_hello:app", *DASH)
    browser.get(srv.url + "/dash")
    wait_for(browser, lambda d: state(d) == "connected")
    wait_for(browser, lambda d: shown_requests(d) == 0)
    before = shown_requests(browser)
    for _ in range(30):
        assert requests.get(srv.url + "/", timeout=10).status_code == 200
    for _ in range(10):
        assert requests.get(srv.url + "/v2/", timeout=10).status_code == 200
    wait_for(browser, lambda d: shown_requests(d) == before + 40)
    wait_for(browser, lambda d: text_of(d, '#mounts-table tbody tr[data-mount="/v2"] .total') == "10")
    assert text_of(browser, '#mounts-table tbody tr[data-mount="/"] .iface') == "wsgi"
    assert text_of(browser, '#mounts-table tbody tr[data-mount="/v2"] .iface') == "asgi"
    assert text_of(browser, '#mounts-table tbody tr[data-mount="/"] .p50') not in ("", "–")
    # Per route, too.
    wait_for(browser, lambda d: text_of(d, '#routes-table tbody tr[data-route="GET /v2/"] .total') == "10")
    assert text_of(browser, '#routes-table tbody tr[data-route="GET /v2/"] .iface') == "asgi"
    # The migration's split: 30 sync, 10 async in the last minute.
    wait_for(browser, lambda d: text_of(d, "#sync-share") == "75%" and text_of(d, "#async-share") == "25%")
    # Rates show while traffic flows.
    deadline = time.monotonic() + 15
    while text_of(browser, "#total-rps") in ("–", "0.0"):
        assert time.monotonic() < deadline, text_of(browser, "#total-rps")
        requests.get(srv.url + "/", timeout=10)
        time.sleep(0.05)
    assert text_of(browser, "#pool-threads").isdigit()
    assert text_of(browser, "#shadow-none") == "No mount has a shadow."
    shot = os.path.join(artifacts_dir(tmp_path), "dashboard.png")
    assert browser.save_screenshot(shot)
    print("dashboard screenshot:", shot)
    assert os.path.getsize(shot) > 10000
    assert console_errors(browser) == []


@browser_needed
def test_the_page_reconnects_after_a_restart(serve, browser):
    port = free_port()
    bind = ("--bind", "127.0.0.1:%d" % port)
    srv = serve("hello:app", *bind, *DASH, bind=False)
    for _ in range(3):
        requests.get(srv.url + "/", timeout=10)
    browser.get(srv.url + "/dash")
    wait_for(browser, lambda d: state(d) == "connected" and shown_requests(d) == 3)
    srv.stop()
    wait_for(browser, lambda d: state(d) != "connected", timeout=15)

    srv2 = serve("hello:app", *bind, *DASH, bind=False)
    for _ in range(7):
        requests.get(srv2.url + "/", timeout=10)
    # The browser's own retry, or the page's fallback, finds the new server.
    wait_for(browser, lambda d: state(d) == "connected" and shown_requests(d) == 7, timeout=30)
    for _ in range(5):
        requests.get(srv2.url + "/", timeout=10)
    wait_for(browser, lambda d: shown_requests(d) == 12)

    # A server that answers the stream with something else (here the app's
    # text/plain) makes the browser give up (EventSource CLOSED): the page
    # keeps trying on its own.
    srv2.stop()
    srv3 = serve("hello:app", *bind, bind=False)
    wait_for(browser, lambda d: state(d) == "disconnected", timeout=20)
    srv3.stop()
    srv4 = serve("hello:app", *bind, *DASH, bind=False)
    requests.get(srv4.url + "/", timeout=10)
    wait_for(browser, lambda d: state(d) == "connected" and shown_requests(d) == 1, timeout=30)


@browser_needed
def test_a_peer_outside_the_allow_list_reads_with_the_token(serve, browser):
    srv = serve("hello:app", *DASH, "--dashboard-allow", "10.0.0.0/8", "--dashboard-token", "tok3n")
    browser.get(srv.url + "/dash?token=tok3n")
    wait_for(browser, lambda d: state(d) == "connected")
    requests.get(srv.url + "/", timeout=10)
    wait_for(browser, lambda d: shown_requests(d) == 1)
    assert console_errors(browser) == []


class FakeFeed:
    """Serves the dashboard's page (as Trestle serves it) and an event stream
    of the test's own, on loopback: the page's rendering of a shadow JSON
    that shadow mode will produce, checked before shadow mode exists."""

    def __init__(self, page, data):
        self.stop = threading.Event()
        feed = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/dash/events"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-store")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    deadline = time.monotonic() + 60
                    while not feed.stop.is_set() and time.monotonic() < deadline:
                        data = dict(feed.data, t=time.time())
                        try:
                            self.wfile.write(("data: %s\n\n" % json.dumps(data)).encode())
                            self.wfile.flush()
                        except OSError:
                            return
                        feed.stop.wait(0.5)
                    return
                body = feed.page.encode()
                self.send_response(200 if self.path in ("/dash", "/dash/") else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.page, self.data = page, data
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@browser_needed
def test_the_shadow_view_shows_a_providers_json_as_text(serve, browser):
    from selenium.webdriver.common.by import By
    srv = serve("hello:app", *DASH)
    page = requests.get(srv.url + "/dash", timeout=10).text
    metrics = requests.get(srv.url + "/dash/data", timeout=10).json()["metrics"]
    evil = '<img src=x id=pwned onerror="document.title=\'pwned\'">'
    shadow = {
        "mounts": [{"mount": "/orders", "shadow": "newapi:app", "sampled": 10, "dropped": 1, "compared": 9,
                    "mismatched": 2, "errors": 0,
                    "routes": [{"route": "GET /orders/:id", "compared": 9, "mismatched": 2, "errors": 0,
                                "primary_p50": 0.001, "primary_p99": 0.01, "shadow_p50": 0.002,
                                "shadow_p99": 0.02}]}],
        "mismatches": [{"time": time.time(), "mount": "/orders", "route": "GET /orders/:id", "method": "GET",
                        "target": "/orders/7?q=" + evil, "diff": '-  "total": 10\n+  "total": 11\n' + evil,
                        "primary": {"status": 200, "headers": {}, "body": evil},
                        "shadow": {"status": 200, "headers": {}, "body": "{}"}}],
    }
    feed = FakeFeed(page, {"metrics": metrics, "shadow": shadow})
    try:
        browser.get(feed.url + "/dash")
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#shadow-table tbody tr")) == 1)
        row = '#shadow-table tbody tr[data-route="GET /orders/:id"]'
        assert text_of(browser, row + " .mismatched") == "2"
        assert text_of(browser, row + " .primary-p99") == "10.0 ms"
        assert text_of(browser, row + " .shadow-p99") == "20.0 ms"
        assert text_of(browser, '#shadow-mounts tbody tr[data-mount="/orders"] .dropped') == "1"
        items = browser.find_elements(By.CSS_SELECTOR, "#mismatches .mismatch")
        assert len(items) == 1
        diff = items[0].find_element(By.CSS_SELECTOR, ".diff").get_attribute("textContent")
        assert '+  "total": 11' in diff and evil in diff
        assert evil in items[0].find_element(By.CSS_SELECTOR, ".target").text
        # Text, never markup: no element came out of the data.
        assert browser.find_elements(By.ID, "pwned") == []
        assert browser.title != "pwned"
        assert text_of(browser, "#shadow-none") == ""
        assert console_errors(browser) == []
    finally:
        feed.close()


@browser_needed
def test_a_shadow_mismatch_appears_in_its_table(serve, browser, tmp_path):
    """A real shadow (tests/apps/shadow_orders_v2.py, the Quart port with a
    deliberate difference in an order's total) behind a Flask primary: the
    route that disagrees shows its mismatches and the diff, the route that
    agrees shows none."""
    from selenium.webdriver.common.by import By
    conf = tmp_path / "shadow.toml"
    conf.write_text('[[mount]]\nprefix = "/"\napp = "shadow_orders_v1:app"\nshadow = "shadow_orders_v2:app"\n'
                    'shadow_ignore = ["$.generated_at", "$.request_id"]\n')
    srv = serve("--config=" + str(conf), *DASH)
    browser.get(srv.url + "/dash")
    wait_for(browser, lambda d: state(d) == "connected")
    for path in ("/orders/7", "/orders/8", "/health", "/health", "/orders"):
        assert requests.get(srv.url + path, timeout=10).status_code == 200
    bad = '#shadow-table tbody tr[data-route="GET /orders/:id"]'
    good = '#shadow-table tbody tr[data-route="GET /health"]'
    wait_for(browser, lambda d: text_of(d, bad + " .compared") == "2" and text_of(d, good + " .compared") == "2")
    assert text_of(browser, bad + " .mismatched") == "2"
    assert text_of(browser, good + " .mismatched") == "0"
    assert text_of(browser, '#shadow-table tbody tr[data-route="GET /orders"] .mismatched') == "0"
    assert text_of(browser, '#shadow-mounts tbody tr[data-mount="/"] .shadow') == "shadow_orders_v2:app"
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#mismatches .mismatch")) == 2)
    diffs = sorted(e.find_element(By.CSS_SELECTOR, ".diff").get_attribute("textContent").strip()
                   for e in browser.find_elements(By.CSS_SELECTOR, "#mismatches .mismatch"))
    assert diffs == ["$.total: primary 10, shadow 11", "$.total: primary 20, shadow 22"], diffs
    shot = os.path.join(artifacts_dir(tmp_path), "dashboard-shadow.png")
    assert browser.save_screenshot(shot)
    print("dashboard screenshot:", shot)
    assert console_errors(browser) == []
