"""Metrics (--metrics-path): the text format parsed by python3-prometheus-client's
parser, the counts after a known number of requests per mount and interface,
a 503 counted as shed, HTTP/2 streams counted like HTTP/1.1 requests, the
pool's queue and GIL waits, the allow-list, and a real Prometheus server
(Debian's prometheus) scraping a running Trestle and read back through its
HTTP API."""
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

parser = pytest.importorskip("prometheus_client.parser", reason="needs python3-prometheus-client (Debian)")

from conftest import poll, read_response, ws_handshake  # noqa: E402

GET_OK = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
GET_HOLD = b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"


def scrape(srv, path="/metrics"):
    r = requests.get(srv.url + path, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for fam in parser.text_string_to_metric_families(r.text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_counts_per_mount_and_interface(serve, tmp_path):
    (tmp_path / "f.txt").write_bytes(b"x" * 1000)
    srv = serve("body_app:app", "/a=asgi_hello:app", "/s=static:" + str(tmp_path), "--metrics-path", "/metrics")
    for _ in range(7):
        assert requests.post(srv.url + "/hash", data=b"y" * 100, timeout=10).status_code == 200
    for _ in range(5):
        assert requests.get(srv.url + "/a/", timeout=10).status_code == 200
    for _ in range(3):
        assert requests.get(srv.url + "/s/f.txt", timeout=10).status_code == 200
    assert requests.get(srv.url + "/s/missing", timeout=10).status_code == 404
    m = scrape(srv)
    root = {"mount": "/", "interface": "wsgi"}
    assert value(m, "trestle_requests_total", code="2xx", **root) == 7
    assert value(m, "trestle_request_duration_seconds_count", **root) == 7
    assert value(m, "trestle_request_duration_seconds_bucket", le="+Inf", **root) == 7
    assert value(m, "trestle_request_body_bytes_total", **root) == 700
    assert value(m, "trestle_requests_in_flight", **root) == 0
    a = {"mount": "/a", "interface": "asgi"}
    assert value(m, "trestle_requests_total", code="2xx", **a) == 5
    s = {"mount": "/s", "interface": "static"}
    assert value(m, "trestle_requests_total", code="2xx", **s) == 3
    assert value(m, "trestle_requests_total", code="4xx", **s) == 1
    assert value(m, "trestle_response_body_bytes_total", **s) >= 3000
    # The WSGI requests went through the pool's queue, and its threads took the GIL.
    assert value(m, "trestle_pool_queue_wait_seconds_count") >= 7
    assert value(m, "trestle_pool_gil_waits_total") >= 1
    assert value(m, "trestle_pool_threads") >= 1
    assert value(m, "trestle_connections_open") >= 1
    # The scrape itself is counted under its own mount, after it is answered.
    m2 = scrape(srv)
    assert value(m2, "trestle_requests_total", code="2xx", mount="/metrics", interface="metrics") >= 1


def test_latency_lands_in_its_bucket(serve):
    srv = serve("timeout_cases:app", "--metrics-path", "/metrics")
    r = requests.get(srv.url + "/sleep?0.3", timeout=10)
    assert r.status_code == 200, r.text
    m = scrape(srv)
    root = {"mount": "/", "interface": "wsgi"}
    assert value(m, "trestle_request_duration_seconds_bucket", le="0.25", **root) == 0
    assert value(m, "trestle_request_duration_seconds_bucket", le="0.5", **root) == 1
    assert 0.3 <= value(m, "trestle_request_duration_seconds_sum", **root) < 0.5


def test_a_503_is_counted_as_shed(serve, tmp_path):
    flag = tmp_path / "go"
    srv = serve("admission_app:wsgi", "--limit-concurrency", "1", "--metrics-path", "/metrics",
                env={"HOLD_FLAG": str(flag)})
    holder = srv.connect()
    holder.sendall(GET_HOLD)
    assert poll(lambda: "holding" in srv.log(), timeout=10)
    extra = srv.connect()
    extra.sendall(GET_OK)
    assert read_response(extra)[0] == 503
    extra.close()
    m = scrape(srv)
    root = {"mount": "/", "interface": "wsgi"}
    assert value(m, "trestle_requests_shed_total", **root) == 1
    assert value(m, "trestle_requests_total", code="5xx", **root) == 1
    assert value(m, "trestle_requests_in_flight", **root) == 1   # the held one
    flag.write_text("go")
    assert read_response(holder)[0] == 200
    holder.close()
    assert poll(lambda: value(scrape(srv), "trestle_requests_in_flight", **root) == 0, timeout=10)


def test_http2_streams_are_counted(serve):
    h2 = pytest.importorskip("h2", reason="needs python3-h2 (Debian)")  # noqa: F841
    from test_http2 import H2
    srv = serve("hello:app", "--metrics-path", "/metrics")
    c = H2(srv)
    sids = [c.request("/") for _ in range(10)]
    for sid in sids:
        assert c.response(sid)["headers"][":status"] == "200"
    c.close()
    m = scrape(srv)
    assert value(m, "trestle_requests_total", code="2xx", mount="/", interface="wsgi") == 10


def test_the_allow_list_refuses_other_peers(serve):
    srv = serve("hello:app", "--metrics-path", "/metrics", "--metrics-allow", "10.0.0.0/8")
    r = requests.get(srv.url + "/metrics", timeout=10)
    assert r.status_code == 403
    assert "trestle_" not in r.text
    assert requests.post(srv.url + "/metrics", timeout=10).status_code == 403
    srv2 = serve("hello:app", "--metrics-path", "/metrics")
    assert requests.post(srv2.url + "/metrics", timeout=10).status_code == 405
    assert requests.get(srv2.url + "/metrics/other", timeout=10).status_code == 404
    assert requests.get(srv2.url + "/", timeout=10).status_code == 200   # the app is untouched


@pytest.mark.parametrize("flags, message", [
    (["--metrics-path", "metrics"], "must start with /"),
    (["--metrics-path", "/"], "a path of their own"),
    (["--metrics-path", "/m", "--metrics-allow", "not-an-address"], "--metrics-allow"),
    (["--metrics-bind", "nowhere"], "--metrics-bind nowhere"),
    (["--metrics-bind", "127.0.0.1:99999"], "--metrics-bind 127.0.0.1:99999: bad port"),
    (["--metrics-bind", "fd://x"], "--metrics-bind fd://x: expected fd://N"),
    (["--insecure-bind", "127.0.0.1:x"], "--insecure-bind 127.0.0.1:x: bad port"),
])
def test_bad_settings_are_one_line_and_exit_2(serve, flags, message):
    srv = serve("hello:app", *flags, expect_ready=False)
    assert srv.proc.wait(30) == 2
    err = srv.log().strip().splitlines()
    assert message in err[-1], err


def metrics_url(srv):
    """The --metrics-bind listener's address, as the log names it."""
    import re
    m = re.search(r"listening for metrics on (http://\S+)", srv.wait_log(r"listening for metrics on http://\S+"))
    return m.group(1)


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
def test_metrics_bind_serves_them_on_a_listener_of_their_own(serve, workers):
    """--metrics-bind: the metrics there (at /metrics by default), 404 for
    anything else there, and the app's listener no longer serves them (the
    app answers that path). With workers, the supervisor's listener is
    shared and any worker's answer is the sum."""
    from test_workers import SLOW, serving
    srv = serve("hello:app", "--metrics-bind", "127.0.0.1:0", "--workers", str(workers))
    if workers > 1:
        srv.wait_log(serving(2), timeout=30 * SLOW)
    url = metrics_url(srv)
    assert url != srv.url
    for _ in range(5):
        assert requests.get(srv.url + "/", timeout=10).status_code == 200
    assert requests.get(srv.url + "/metrics", timeout=10).text == "Hello, World!"   # the app's own

    def counted():
        r = requests.get(url + "/metrics", timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
        m = {}
        for fam in parser.text_string_to_metric_families(r.text):
            for smp in fam.samples:
                m[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
        return value(m, "trestle_requests_total", code="2xx", mount="/", interface="wsgi") == 6
    assert poll(counted, timeout=30), requests.get(url + "/metrics", timeout=10).text[:3000]
    assert requests.get(url + "/", timeout=10).status_code == 404
    assert requests.get(url + "/metrics/x", timeout=10).status_code == 404
    assert requests.post(url + "/metrics", timeout=10).status_code == 405


def test_metrics_bind_in_the_config_file(serve, tmp_path):
    conf = tmp_path / "t.toml"
    conf.write_text('[metrics]\nbind = ["127.0.0.1:0"]\n\n[[mount]]\nprefix = "/"\napp = "hello:app"\n')
    srv = serve("--config=" + str(conf))
    assert requests.get(metrics_url(srv) + "/metrics", timeout=10).status_code == 200
    assert requests.get(srv.url + "/metrics", timeout=10).text == "Hello, World!"


def test_metrics_bind_keeps_the_allow_list_and_its_own_path(serve):
    srv = serve("hello:app", "--metrics-bind", "127.0.0.1:0", "--metrics-path", "/_m", "--metrics-allow", "10.0.0.0/8")
    url = metrics_url(srv)
    assert requests.get(url + "/_m", timeout=10).status_code == 403
    assert requests.get(url + "/metrics", timeout=10).status_code == 404


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not shutil.which("prometheus"), reason="needs Debian's prometheus package")
def test_a_real_prometheus_scrapes_it(serve, tmp_path):
    srv = serve("hello:app", "--metrics-path", "/metrics")
    for _ in range(12):
        assert requests.get(srv.url + "/", timeout=10).status_code == 200
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: trestle\n    static_configs:\n"
        "      - targets: ['%s:%d']\n" % (srv.host, srv.port))
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(["prometheus", "--config.file=%s" % (tmp_path / "prometheus.yml"),
                             "--storage.tsdb.path=%s" % (tmp_path / "data"),
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=log, stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % port

    def query(q):
        try:
            r = requests.get(base + "/api/v1/query?query=" + urllib.parse.quote(q), timeout=5)
        except requests.RequestException:
            return None
        if r.status_code != 200:
            return None
        res = r.json()["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    try:
        q = 'trestle_requests_total{mount="/",interface="wsgi",code="2xx"}'
        assert poll(lambda: query(q) == 12, timeout=60), (query(q), (tmp_path / "prometheus.log").read_text()[-2000:])
        assert query('up{job="trestle"}') == 1
        assert query('trestle_request_duration_seconds_count{mount="/"}') == 12
        # More traffic shows in the next scrapes.
        for _ in range(8):
            requests.get(srv.url + "/", timeout=10)
        assert poll(lambda: query(q) == 20, timeout=30), query(q)
    finally:
        prom.terminate()
        try:
            prom.wait(20)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()


def test_loop_lag_rises_while_an_app_blocks_the_loop(serve):
    srv = serve("loop_blocker:app", "--metrics-path", "/metrics", "--loop-block-warn", "0")
    m = scrape(srv)
    assert value(m, "trestle_loop_lag_seconds") < 0.2
    assert poll(lambda: value(scrape(srv), "trestle_loop_tasks") >= 1, timeout=10)
    blocker = threading.Thread(target=lambda: requests.get(srv.url + "/block?2", timeout=20))
    blocker.start()
    try:
        # The metrics are answered on an io thread, so they come while the loop is stuck.
        assert poll(lambda: value(scrape(srv), "trestle_loop_lag_seconds") >= 1.0, timeout=10)
    finally:
        blocker.join()
    assert poll(lambda: value(scrape(srv), "trestle_loop_lag_seconds") < 0.2, timeout=10)


def test_loop_cpu_time_counts_the_time_python_runs_on_the_loop(serve):
    srv = serve("loop_blocker:app", "--metrics-path", "/metrics")
    before = value(scrape(srv), "trestle_loop_cpu_seconds_total")
    assert requests.get(srv.url + "/block?0.5", timeout=20).status_code == 200   # asleep: no CPU
    slept = value(scrape(srv), "trestle_loop_cpu_seconds_total")
    assert requests.get(srv.url + "/spin?1", timeout=20).status_code == 200      # a second computing
    spun = value(scrape(srv), "trestle_loop_cpu_seconds_total")
    assert slept - before < 0.3, (before, slept)
    assert spun - slept > 0.3, (slept, spun)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_each_turn_of_the_loop_is_timed(serve, loop):
    """A request that holds the loop for 0.3 s (time.sleep in an async view)
    is one turn over 0.1 s; quick requests are turns well under 1 ms; the
    turns' time adds up. Both loops wait in epoll_wait or epoll_pwait, which
    is where a turn is marked."""
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="needs python3-uvloop (Debian)")
    srv = serve("loop_blocker:app", "--metrics-path", "/metrics", "--loop", loop, "--loop-block-warn", "0")
    for _ in range(20):
        assert requests.get(srv.url + "/", timeout=10).status_code == 200
    m = scrape(srv)
    turns, took = value(m, "trestle_loop_turns_total"), value(m, "trestle_loop_turn_seconds_total")
    assert turns >= 20, m   # at least a turn a request
    assert value(m, "trestle_loop_long_turns_total", over="0.1") == 0
    assert took / turns < 0.01, (took, turns)
    for _ in range(3):
        assert requests.get(srv.url + "/block?0.3", timeout=20).status_code == 200
    # A turn is counted when it ends, as the loop next waits: the last one
    # may still be running when its response has reached this client (seen
    # on a loaded machine: 2 of 3 at the first scrape).
    assert poll(lambda: value(scrape(srv), "trestle_loop_long_turns_total", over="0.1") >= 3, timeout=10)
    m = scrape(srv)
    assert value(m, "trestle_loop_long_turns_total", over="0.1") == 3, m
    assert value(m, "trestle_loop_long_turns_total", over="0.01") >= 3
    assert value(m, "trestle_loop_long_turns_total", over="0.001") >= 3
    assert value(m, "trestle_loop_turn_seconds_total") - took >= 0.9
    assert value(m, "trestle_loop_turns_total") > turns


def test_websockets_open_are_counted(serve):
    srv = serve("loop_blocker:app", "--metrics-path", "/metrics")
    s = ws_handshake(srv, "/ws")
    assert poll(lambda: value(scrape(srv), "trestle_websockets_open") == 1, timeout=10)
    assert value(scrape(srv), "trestle_websockets_total") == 1
    s.close()
    assert poll(lambda: value(scrape(srv), "trestle_websockets_open") == 0, timeout=10)


def test_workers_sum_into_every_answer_and_restarts_keep_the_counts(serve):
    # Two workers: whichever answers a scrape answers for both; a worker
    # replaced by --max-requests leaves its counts behind, and the restart
    # is counted by cause.
    from test_workers import SLOW, serving
    srv = serve("pid_app:app", "--workers", "2", "--metrics-path", "/metrics", "--max-requests", "60",
                "--max-requests-jitter", "0")
    srv.wait_log(serving(2), timeout=30 * SLOW)
    pids = set()
    total = 0
    deadline = time.monotonic() + 60 * SLOW
    # Each new connection may land on either worker; keep-alive ones stay put.
    while total < 150 and time.monotonic() < deadline:
        r = requests.get(srv.url + "/", timeout=10)
        assert r.status_code == 200
        pids.add(r.text.strip())
        total += 1
    assert total == 150
    root = {"mount": "/", "interface": "wsgi"}

    def settled():
        m = scrape(srv)
        return value(m, "trestle_requests_total", code="2xx", **root) == total and \
            value(m, "trestle_worker_restarts_total", cause="max_requests") >= 1
    # The replaced workers' counts are folded in, and the survivors publish
    # four times a second.
    assert poll(settled, timeout=30 * SLOW), scrape(srv)
    # Every scrape gives the same sum, whichever worker answers it.
    for _ in range(10):
        m = scrape(srv)
        assert value(m, "trestle_requests_total", code="2xx", **root) >= total
    # One series per worker, labelled; a worker that --max-requests is
    # replacing shows until it has drained, beside its successor.
    def per_worker():
        m = scrape(srv)
        workers = {lab for (name, lab) in m if name == "trestle_pool_threads"}
        return (m, workers) if len(workers) == 2 else None
    found = poll(per_worker, timeout=30 * SLOW)
    assert found, {lab for (name, lab) in scrape(srv) if name == "trestle_pool_threads"}
    m, workers = found
    assert all(dict(lab).get("worker") is not None for lab in workers)
    assert value(m, "trestle_workers") == 2
    assert len(pids) >= 2   # the traffic reached more than one worker


def test_flask_async_views_are_their_own_interface(serve):
    """A WSGI mount's requests that ran a Flask async view count under
    interface="flask-async", the others under "wsgi": the migration's
    progress, per mount."""
    srv = serve("flask_mixed:app", "/q=asgi_hello:app", "--metrics-path", "/metrics")
    for _ in range(4):
        assert requests.get(srv.url + "/sync", timeout=10).text == "sync"
    for _ in range(3):
        assert requests.get(srv.url + "/async", timeout=10).text == "async"
    m = scrape(srv)
    wsgi = {"mount": "/", "interface": "wsgi"}
    fa = {"mount": "/", "interface": "flask-async"}
    assert value(m, "trestle_requests_total", code="2xx", **wsgi) == 4
    assert value(m, "trestle_requests_total", code="2xx", **fa) == 3
    assert value(m, "trestle_request_duration_seconds_count", **fa) == 3
    assert value(m, "trestle_requests_in_flight", **wsgi) == 0
    assert value(m, "trestle_requests_in_flight", **fa) == 0
    # An ASGI mount has no flask-async row.
    assert value(m, "trestle_requests_total", code="2xx", mount="/q", interface="flask-async") is None
    assert not [k for k in m if dict(k[1]).get("interface") == ""]


def test_flask_async_rows_sum_across_workers(serve):
    srv = serve("flask_mixed:app", "--workers", "2", "--metrics-path", "/metrics")
    for _ in range(6):
        assert requests.get(srv.url + "/async", timeout=10).status_code == 200
    fa = {"mount": "/", "interface": "flask-async"}
    assert poll(lambda: value(scrape(srv), "trestle_requests_total", code="2xx", **fa) == 6, timeout=10), scrape(srv)


def test_connections_by_protocol_idle_and_timeouts_by_kind(serve):
    srv = serve("asgi_hello:app", "/w=asgi_ws:app", "--metrics-path", "/metrics", "--header-timeout", "0.3",
                "--keepalive-timeout", "1")
    idle = []
    for _ in range(3):
        s = srv.connect()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status = read_response(s)[0]
        assert status == 200
        idle.append(s)
    ws = ws_handshake(srv, "/w/echo")
    m = scrape(srv)   # on a connection of its own, busy while it is answered
    assert value(m, "trestle_connections", protocol="http1") == 4
    assert value(m, "trestle_connections", protocol="websocket") == 1
    assert value(m, "trestle_connections", protocol="h2") == 0
    assert value(m, "trestle_connections_idle") == 3
    assert value(m, "trestle_timeouts_total", kind="header") == 0

    # A head that never ends: the header timeout; the idle ones: keep-alive.
    slow = srv.connect()
    slow.sendall(b"GET / HTTP/1.1\r\nHost")
    slow.settimeout(10)
    assert b"408" in slow.recv(4096)
    for s in idle:
        s.settimeout(10)
        assert s.recv(1) == b""   # closed by the server at --keepalive-timeout
    ws.close()
    slow.close()

    def settled():
        m = scrape(srv)
        return (value(m, "trestle_connections", protocol="websocket") == 0
                and value(m, "trestle_connections", protocol="http1") == 1
                and value(m, "trestle_connections_idle") == 0) and m
    m = poll(settled, timeout=10)
    assert m, scrape(srv)
    assert value(m, "trestle_timeouts_total", kind="header") == 1
    assert value(m, "trestle_timeouts_total", kind="keepalive") == 3
    assert value(m, "trestle_timeouts_total", kind="request") == 0


def test_proxy_upstreams_up_or_ejected_and_their_failures(serve):
    live = serve("hello:app")
    with socket.socket() as s:   # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    live_url, dead_url = "http://127.0.0.1:%d" % live.port, "http://127.0.0.1:%d" % dead_port
    srv = serve("hello:app", "/p=proxy:%s,%s" % (live_url, dead_url), "--metrics-path", "/metrics")
    m = scrape(srv)
    assert value(m, "trestle_proxy_upstream_up", mount="/p", upstream=live_url) == 1
    assert value(m, "trestle_proxy_upstream_up", mount="/p", upstream=dead_url) == 1
    # Round-robin: within two requests one goes to the dead upstream, fails
    # (and is retried on the live one), and ejects it (max_fails 1).
    for _ in range(4):
        assert requests.get(srv.url + "/p/", timeout=10).status_code == 200
    m = scrape(srv)
    assert value(m, "trestle_proxy_upstream_up", mount="/p", upstream=dead_url) == 0
    assert value(m, "trestle_proxy_upstream_failures_total", mount="/p", upstream=dead_url) == 1
    assert value(m, "trestle_proxy_upstream_up", mount="/p", upstream=live_url) == 1
    assert value(m, "trestle_proxy_upstream_failures_total", mount="/p", upstream=live_url) == 0


def test_traffic_per_route(serve, tmp_path):
    srv = serve("flask_mixed:app", "/s=static:" + str(tmp_path), "--metrics-path", "/metrics")
    for i in range(3):
        assert requests.get(srv.url + "/sync", timeout=10).status_code == 200
        assert requests.get(srv.url + "/async", timeout=10).status_code == 200
    for i in range(4):
        requests.get(srv.url + "/s/item/%d" % (1000 + i), timeout=10)
    m = scrape(srv)
    assert value(m, "trestle_route_requests_total", mount="/", interface="wsgi", route="GET /sync") == 3
    assert value(m, "trestle_route_requests_total", mount="/", interface="flask-async", route="GET /async") == 3
    # Numbers in a path are one route, not four.
    assert value(m, "trestle_route_requests_total", mount="/s", interface="static", route="GET /s/item/:id") == 4
    assert value(m, "trestle_route_errors_total", mount="/", interface="wsgi", route="GET /sync") == 0
    assert value(m, "trestle_route_duration_seconds_total", mount="/", interface="wsgi", route="GET /sync") > 0
