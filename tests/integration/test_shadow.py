"""Shadow mode: a mount's requests replayed to a second handler and the two
answers compared (docs/configuration.md, "Shadow mode").

The fixture apps are an orders API in Flask (tests/apps/shadow_orders_v1.py)
and its Quart port (shadow_orders_v2.py) with one deliberate difference: an
order's total. Each records the requests that reached it in a file, so a
test sees what the shadow was really given. Verdicts are read from the
metrics (parsed with python3-prometheus-client's parser) and the mismatches
from the JSONL file (shadow_log)."""
import json
import os
import re
import signal
import time

import pytest
import requests

parser = pytest.importorskip("prometheus_client.parser", reason="needs python3-prometheus-client (Debian)")

from conftest import poll, run_trestle, tsan_thread_leaks_allowed  # noqa: E402

IGNORE = '["$.generated_at", "$.request_id"]'
# The shadow app in a child process at idle priority (the default), and in
# the primary's own process (shadow_process = false).
MODES = pytest.mark.parametrize("process", ["true", "false"], ids=["own-process", "same-process"])


def config(tmp_path, app="shadow_orders_v1:app", shadow="shadow_orders_v2:app", **keys):
    lines = ["[[mount]]", 'prefix = "/"', f'app = "{app}"', f'shadow = "{shadow}"']
    for k, v in keys.items():
        lines.append(f"{k} = {v}")
    path = tmp_path / "trestle.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def start(serve, tmp_path, *flags, env=None, **keys):
    keys.setdefault("shadow_log", json.dumps(str(tmp_path / "mismatches.jsonl")))
    hits = {"SHADOW_HITS_V1": str(tmp_path / "v1.hits"), "SHADOW_HITS_V2": str(tmp_path / "v2.hits")}
    hits.update(env or {})
    return serve("--config=" + config(tmp_path, **keys), "--metrics-path", "/metrics", *flags, env=hits)


def shadow_metrics(srv):
    text = requests.get(srv.url + "/metrics", timeout=10).text
    verdicts, drops, other = {}, {}, {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "trestle_shadow_requests_total":
                verdicts[(s.labels["route"], s.labels["verdict"])] = s.value
            elif s.name == "trestle_shadow_dropped_total":
                drops[s.labels["reason"]] = s.value
            elif s.name.startswith("trestle_shadow_"):
                other[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return verdicts, drops, other


def judged(srv, n, timeout=20.0):
    """Polls until `n` replays have a verdict; returns the verdicts."""
    seen = {}

    def enough():
        seen.update(shadow_metrics(srv)[0])
        return sum(seen.values()) >= n

    assert poll(enough, timeout=timeout), f"only {sum(seen.values())} of {n} replays judged: {seen}"
    return shadow_metrics(srv)[0]


def only_nonzero(verdicts):
    return {k: v for k, v in verdicts.items() if v}


def mismatches(tmp_path):
    path = tmp_path / "mismatches.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def hits(tmp_path, side):
    path = tmp_path / f"{side}.hits"
    return path.read_text().splitlines() if path.exists() else []


def get(srv, path, **kw):
    r = requests.get(srv.url + path, timeout=10, **kw)
    assert r.status_code == 200, r.text
    return r


@MODES
def test_the_deliberate_difference_shows_on_its_route_only(serve, tmp_path, process):
    """WSGI primary, ASGI shadow: only GET /orders/:id disagrees, with the
    total named in the diff; the ignored paths (a timestamp, a random id)
    and the key order do not count; the client always gets the primary's."""
    srv = start(serve, tmp_path, shadow_process=process, shadow_ignore=IGNORE)
    for oid in (7, 7, 8, 9):
        body = get(srv, f"/orders/{oid}").json()
        assert body["total"] == 10 * {7: 2, 8: 1, 9: 0}[oid]   # the primary's answer
    for _ in range(3):
        get(srv, "/orders")
        assert get(srv, "/health").text == "ok\n"
    v = only_nonzero(judged(srv, 10))
    assert v == {("GET /orders/:id", "mismatch"): 3, ("GET /orders/:id", "match"): 1,
                 ("GET /orders", "match"): 3, ("GET /health", "match"): 3}
    found = poll(lambda: len(mismatches(tmp_path)) == 3) and mismatches(tmp_path)
    assert found, mismatches(tmp_path)
    by_target = {m["target"]: m for m in found}
    assert set(by_target) == {"/orders/7", "/orders/8"}
    for target, (p, s) in {"/orders/7": (20, 22), "/orders/8": (10, 11)}.items():
        m = by_target[target]
        assert m["route"] == "GET /orders/:id" and m["method"] == "GET" and m["mount"] == "/"
        assert m["diff"] == f"$.total: primary {p}, shadow {s}", m["diff"]
        assert m["primary"]["status"] == m["shadow"]["status"] == 200
        assert json.loads(m["primary"]["body"])["total"] == p
        assert json.loads(m["shadow"]["body"])["total"] == s
        assert m["primary"]["headers"]["content-type"] == "application/json"


def test_without_ignored_paths_the_timestamps_differ(serve, tmp_path):
    srv = start(serve, tmp_path)
    get(srv, "/orders")
    v = only_nonzero(judged(srv, 1))
    assert v == {("GET /orders", "mismatch"): 1}
    m = poll(lambda: mismatches(tmp_path)) and mismatches(tmp_path)
    assert m and m[0]["diff"].startswith("$.generated_at: primary "), m


def test_a_text_body_gets_a_unified_diff(serve, tmp_path):
    srv = start(serve, tmp_path)
    assert get(srv, "/page").text == "<h1>Orders</h1>\n<p>two orders</p>\n"
    assert only_nonzero(judged(srv, 1)) == {("GET /page", "mismatch"): 1}
    m = poll(lambda: mismatches(tmp_path)) and mismatches(tmp_path)
    diff = m[0]["diff"].splitlines()
    assert "-<p>two orders</p>" in diff and "+<p>2 orders</p>" in diff, diff


def test_unsafe_methods_are_not_replayed_unless_the_mount_opts_in(serve, tmp_path):
    srv = start(serve, tmp_path, shadow_ignore=IGNORE)
    r = requests.post(srv.url + "/orders", data=b"abc", timeout=10)
    assert r.status_code == 201 and r.json() == {"created": True, "size": 3}
    get(srv, "/orders")
    assert only_nonzero(judged(srv, 1)) == {("GET /orders", "match"): 1}
    assert hits(tmp_path, "v1") == ["POST /orders", "GET /orders"]
    assert hits(tmp_path, "v2") == ["GET /orders"]   # the shadow never saw the POST
    srv.stop()


def test_an_opted_in_method_is_replayed_with_its_body(serve, tmp_path):
    srv = start(serve, tmp_path, shadow_methods='["GET", "POST"]')
    for size in (0, 5, 70000):
        r = requests.post(srv.url + "/orders", data=b"x" * size, timeout=10)
        assert r.status_code == 201 and r.json()["size"] == size
    # Both saw the same body: their answers (which echo its size) agree.
    assert only_nonzero(judged(srv, 3)) == {("POST /orders", "match"): 3}
    assert hits(tmp_path, "v2") == ["POST /orders"] * 3


@MODES
def test_asgi_primary_and_wsgi_shadow(serve, tmp_path, process):
    srv = start(serve, tmp_path, shadow_process=process, app="shadow_orders_v2:app", shadow="shadow_orders_v1:app", shadow_ignore=IGNORE)
    assert get(srv, "/orders/7").json()["total"] == 22
    get(srv, "/orders")
    assert only_nonzero(judged(srv, 2)) == {("GET /orders/:id", "mismatch"): 1, ("GET /orders", "match"): 1}
    m = poll(lambda: mismatches(tmp_path)) and mismatches(tmp_path)
    assert m[0]["diff"] == "$.total: primary 22, shadow 20"


def test_a_proxy_shadow(serve, tmp_path):
    """The port runs as a service of its own (here another Trestle serving
    the Quart app), shadowed through a proxy target."""
    upstream = serve("shadow_orders_v2:app", env={"SHADOW_HITS_V2": str(tmp_path / "v2.hits")})
    srv = start(serve, tmp_path, shadow=f"proxy:http://127.0.0.1:{upstream.port}", shadow_ignore=IGNORE)
    assert get(srv, "/orders/8").json()["total"] == 10
    get(srv, "/health")
    assert only_nonzero(judged(srv, 2)) == {("GET /orders/:id", "mismatch"): 1, ("GET /health", "match"): 1}
    assert hits(tmp_path, "v2") == ["GET /orders/8", "GET /health"]
    m = poll(lambda: mismatches(tmp_path)) and mismatches(tmp_path)
    assert m[0]["diff"] == "$.total: primary 10, shadow 11"


def test_a_normalizer_applies_to_both_bodies(serve, tmp_path):
    srv = start(serve, tmp_path, shadow_ignore=IGNORE, shadow_normalizer='"shadow_misbehaving:normalize_total"')
    get(srv, "/orders/7")   # 20 against 22: both 20 once normalized
    assert only_nonzero(judged(srv, 1)) == {("GET /orders/:id", "match"): 1}


def test_routes_and_sampling_choose_what_is_replayed(serve, tmp_path):
    srv = start(serve, tmp_path, shadow_ignore=IGNORE, shadow_routes='["/orders/*"]')
    get(srv, "/orders/7")
    get(srv, "/orders")     # not under the pattern
    get(srv, "/health")
    assert only_nonzero(judged(srv, 1)) == {("GET /orders/*", "mismatch"): 1}
    assert hits(tmp_path, "v2") == ["GET /orders/7"]
    srv.stop()

    none = tmp_path / "none"
    none.mkdir()
    srv = start(serve, none, shadow_sample="0.0")
    for _ in range(5):
        get(srv, "/orders")
    _, _, other = shadow_metrics(srv)
    assert other[("trestle_shadow_replayed_total", (("mount", "/"),))] == 0
    assert hits(none, "v2") == []


@MODES
def test_a_slow_shadow_never_slows_the_primary_and_its_queue_stays_bounded(serve, tmp_path, process):
    srv = start(serve, tmp_path, shadow_process=process, shadow="shadow_misbehaving:slow", shadow_queue="2", env={"SHADOW_SLEEP": "3"})
    took = []
    for _ in range(20):
        t0 = time.monotonic()
        assert get(srv, "/health").text == "ok\n"
        took.append(time.monotonic() - t0)
    # Each shadow request sleeps 3 s; no primary answer waited for one.
    assert max(took) < 1.5, took
    verdicts, drops, other = shadow_metrics(srv)
    assert other[("trestle_shadow_queue", (("mount", "/"),))] <= 2
    replayed = other[("trestle_shadow_replayed_total", (("mount", "/"),))]
    assert replayed >= 2 and drops["queue_full"] >= 20 - 2 * 2, (replayed, drops)   # 2 slots, 3 s each
    assert replayed + drops["queue_full"] == 20
    # The replays finish in time and agree (the slow shadow answers "ok").
    assert only_nonzero(judged(srv, replayed)) == {("GET /health", "match"): replayed}


def test_a_slow_wsgi_shadow_holds_at_most_its_slots(serve, tmp_path):
    srv = start(serve, tmp_path, "--threads", "4", shadow="shadow_misbehaving:slow_wsgi", shadow_queue="1",
                env={"SHADOW_SLEEP": "2"})
    took = []
    for _ in range(10):
        t0 = time.monotonic()
        assert get(srv, "/health").text == "ok\n"
        took.append(time.monotonic() - t0)
    assert max(took) < 1.0, took
    _, drops, other = shadow_metrics(srv)
    assert drops["queue_full"] >= 8 and other[("trestle_shadow_queue", (("mount", "/"),))] <= 1


@MODES
def test_a_raising_shadow_is_a_mismatch_and_the_client_never_sees_it(serve, tmp_path, process):
    srv = start(serve, tmp_path, shadow_process=process, shadow="shadow_misbehaving:raising", shadow_ignore=IGNORE)
    for _ in range(3):
        assert get(srv, "/orders/7").json()["total"] == 20
    assert only_nonzero(judged(srv, 3)) == {("GET /orders/:id", "mismatch"): 3}
    m = poll(lambda: len(mismatches(tmp_path)) == 3) and mismatches(tmp_path)
    assert m[0]["diff"].splitlines()[0] == "status: primary 200, shadow 500"
    srv.wait_log("the shadow broke on purpose")


@MODES
def test_a_shadow_past_its_timeout_is_an_error(serve, tmp_path, process):
    srv = start(serve, tmp_path, shadow_process=process, shadow="shadow_misbehaving:slow", shadow_timeout="0.3", env={"SHADOW_SLEEP": "5"})
    t0 = time.monotonic()
    get(srv, "/health")
    assert only_nonzero(judged(srv, 1)) == {("GET /health", "error"): 1}
    assert time.monotonic() - t0 < 4   # judged at the timeout, not when the shadow ends


def test_the_latencies_of_both_sides_are_reported(serve, tmp_path):
    srv = start(serve, tmp_path, shadow="shadow_misbehaving:slow", env={"SHADOW_SLEEP": "0.2"})
    for _ in range(3):
        get(srv, "/health")
    judged(srv, 3)
    _, _, other = shadow_metrics(srv)

    def q(side, quantile):
        return other[("trestle_shadow_latency_seconds", (("mount", "/"), ("quantile", quantile),
                                                          ("route", "GET /health"), ("side", side)))]
    assert 0.2 <= q("shadow", "0.5") < 2.0
    assert 0 < q("primary", "0.99") < 0.2


@pytest.mark.parametrize("keys,flags,message", [
    ({"shadow": "static:/tmp"}, [], "a shadow must be module:app or proxy:URL"),
    ({"shadow_ignore": '["$.a[oops"]'}, [], "shadow_ignore: cannot read '$.a[oops'"),
    ({"shadow_sample": "2"}, [], "shadow_sample must be a number from 0 to 1"),
    ({"shadow_methods": '["GET", "P0ST"]'}, [], "shadow_methods must be method names"),
    ({"shadow_routes": '["orders"]'}, [], "shadow_routes are paths under the mount"),
    ({"shadow_wat": "1"}, [], "unknown mount key 'shadow_wat'"),
    ({"shadow_normalizer": '"no_such_module_here:f"'}, [], "No module named 'no_such_module_here'"),
    ({}, ["--shadow", "/nope=shadow_orders_v2:app"], "--shadow '/nope=shadow_orders_v2:app': no mount at /nope"),
    ({}, ["--shadow", "shadow_orders_v2:app"], "expected PREFIX=TARGET"),
    ({"shadow": "proxy:http://127.0.0.1:9", "shadow_process": "true"}, [],
     "shadow_process runs a module:app shadow in a process of its own"),
    ({"shadow_process": '"yes"'}, [], "shadow_process"),
])
def test_bad_shadow_settings_are_one_line_and_exit_2(tmp_path, keys, flags, message):
    r = run_trestle("--config=" + config(tmp_path, **keys), "--bind", "127.0.0.1:0", *flags)
    assert r.returncode == 2, (r.returncode, r.stderr)
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], r.stderr


def child_pid(srv):
    m = re.search(r"shadow: \S+ \(pid (\d+), a process of its own at idle priority", srv.log())
    assert m, srv.log()
    return int(m.group(1))


def stat_fields(pid):
    """/proc/PID/stat's fields after the command name: state first."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def gone(pid):
    try:
        return stat_fields(pid)[0] in ("Z", "X")   # a zombie has ended
    except FileNotFoundError:
        return True


def test_the_shadow_app_runs_in_a_child_at_idle_priority_that_ends_with_the_server(serve, tmp_path):
    srv = start(serve, tmp_path, shadow_ignore=IGNORE)
    pid = child_pid(srv)
    fields = stat_fields(pid)
    assert int(fields[1]) == srv.proc.pid        # ppid: the server
    assert int(fields[38]) == 5                   # policy: SCHED_IDLE
    for task in os.listdir(f"/proc/{pid}/task"):  # every thread of it, the loop and the pool too
        assert int(stat_fields(f"{pid}/task/{task}")[38]) == 5, task
    get(srv, "/orders/7")
    assert only_nonzero(judged(srv, 1)) == {("GET /orders/:id", "mismatch"): 1}
    assert hits(tmp_path, "v2") == ["GET /orders/7"]   # the child served the replay
    assert "warning" not in srv.log().lower(), srv.log()   # its environment raised nothing
    srv.stop()
    assert srv.proc.returncode == 0
    assert gone(pid)   # stopped and reaped before the server exited


def test_the_shadow_process_ends_when_the_server_is_killed(serve, tmp_path):
    """PR_SET_PDEATHSIG: the child is told (SIGTERM) when the thread that
    started it dies; as a killed server's threads die one by one it may be
    told more than once, and a second signal stops it at once, with its
    threads still running (which ThreadSanitizer calls a leak: allowed here,
    races are still reported)."""
    srv = start(serve, tmp_path, env=tsan_thread_leaks_allowed())
    pid = child_pid(srv)
    srv.proc.kill()
    srv.proc.wait()
    assert poll(lambda: gone(pid), timeout=30), stat_fields(pid)


def test_a_shadow_process_that_dies_is_started_again(serve, tmp_path):
    """A child that ends on its own (here SIGKILL, as the OOM killer would)
    is logged and started again on the same socket after 1 s; the replays
    are judged again, and the primary never noticed."""
    srv = start(serve, tmp_path, shadow_ignore=IGNORE)
    pid = child_pid(srv)
    get(srv, "/orders/7")
    assert only_nonzero(judged(srv, 1)) == {("GET /orders/:id", "mismatch"): 1}
    restarts = ("trestle_shadow_process_restarts_total", (("mount", "/"),))
    assert shadow_metrics(srv)[2][restarts] == 0
    os.kill(pid, signal.SIGKILL)
    assert poll(lambda: "serves again" in srv.log(), timeout=30), srv.log()
    log = srv.log()
    assert re.search(r"the shadow process of / \(pid %d\) was killed by signal 9" % pid, log), log
    assert "starting the shadow process of / again in 1 s" in log, log
    again = int(re.search(r"the shadow process of / serves again \(pid (\d+)\)", log).group(1))
    assert again != pid and not gone(again)
    fields = stat_fields(again)
    assert int(fields[1]) == srv.proc.pid and int(fields[38]) == 5   # the server's child, at idle priority
    for _ in range(3):
        get(srv, "/health")                     # the primary answered throughout
    assert only_nonzero(judged(srv, 4))[("GET /health", "match")] == 3
    assert hits(tmp_path, "v2")[-3:] == ["GET /health"] * 3   # the new child served them
    assert shadow_metrics(srv)[2][restarts] == 1
    srv.stop()
    assert srv.proc.returncode == 0
    assert gone(again)


def test_a_shadow_app_that_does_not_load_stops_the_server(tmp_path):
    """The child's own error, then the server's line; the child's exit
    status (2: an app that does not import) is the server's."""
    r = run_trestle("--config=" + config(tmp_path, shadow="no_such_shadow_module:app"), "--bind", "127.0.0.1:0")
    assert r.returncode == 2, (r.returncode, r.stderr)
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 2, r.stderr
    assert "cannot import app module 'no_such_shadow_module'" in errors[0], r.stderr
    assert re.search(r"the shadow process of / \(pid \d+\) exited with status 2 before it served", errors[1]), r.stderr
    assert "listening on" not in r.stderr


def test_the_command_line_form(serve, tmp_path):
    srv = serve("shadow_orders_v1:app", "--shadow", "/=shadow_orders_v2:app", "--metrics-path", "/metrics")
    get(srv, "/health")
    assert only_nonzero(judged(srv, 1)) == {("GET /health", "match"): 1}


def test_json_paths_the_ignore_list_understands():
    """trestle._shadow's path reader and remover, run directly (the package
    is plain Python, in adapters/python)."""
    import copy
    import os
    import sys
    from conftest import ROOT
    sys.path.insert(0, os.path.join(ROOT, "adapters", "python"))
    try:
        from trestle import _shadow
    finally:
        sys.path.pop(0)
    doc = {"id": 1, "at": "x", "items": [{"id": 2, "sku": "a"}, {"id": 3, "sku": "b"}],
           "meta": {"trace": {"id": 4}, "tags": ["p", "q"]}, "weird key": 5}

    def without(*paths):
        d = copy.deepcopy(doc)
        for p in paths:
            _shadow._drop(d, _shadow.parse_path(p))
        return d

    assert without("$.at") == {k: v for k, v in doc.items() if k != "at"}
    assert without("at") == without("$.at")
    assert [i for i in without("$.items[*].id")["items"]] == [{"sku": "a"}, {"sku": "b"}]
    assert without("$.items[0]")["items"] == [{"id": 3, "sku": "b"}]
    assert without("$..id") == {"at": "x", "items": [{"sku": "a"}, {"sku": "b"}],
                                "meta": {"trace": {}, "tags": ["p", "q"]}, "weird key": 5}
    assert "weird key" not in without("$['weird key']")
    assert without("$.meta.*") ["meta"] == {}
    assert without("$.nothing.here") == doc
    for bad in ("$", "$.a[", "$.a..", "$[x]"):
        with pytest.raises(ValueError):
            _shadow.parse_path(bad)
