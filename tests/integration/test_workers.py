"""Worker processes under a supervisor (issue 11): spreading, replacement of
a dead worker, boot failures, rolling reloads (HUP, --reload, --max-requests,
--max-rss), the binary upgrade (USR2), TTIN/TTOU, --preload, WEB_CONCURRENCY.

The load is real clients (requests sessions, keep-alive) doing requests back
to back; each load is bounded in requests and in seconds."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

import conftest
from conftest import APPS, poll, recv_until_closed, run_trestle

SANITIZED = bool(os.environ.get("TRESTLE_SANITIZED"))
SLOW = 4 if SANITIZED else 1   # sanitized builds boot and serve several times slower


def serving(n):
    return r"\[supervisor\] %d worker\(s\) serving" % n


def start(serve, app, *flags, workers=2, **kw):
    srv = serve(app, "--workers", str(workers), *flags, **kw)
    srv.wait_log(serving(workers), timeout=30 * SLOW)
    return srv


def children(pid):
    """The supervisor's live worker processes."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as fh:
            return [int(x) for x in fh.read().split()]
    except FileNotFoundError:
        return []


class Load:
    """`clients` threads, each a keep-alive session doing GETs back to back,
    until stop() or `max_seconds` or `max_requests` in all."""

    def __init__(self, url, clients=4, max_seconds=60, max_requests=200_000, path="/"):
        self.url = url + path
        self.results = []          # (ok, text or error), in completion order
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.max_requests = max_requests
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def client(self):
        with requests.Session() as s:
            while not self.done.is_set() and time.monotonic() < self.deadline:
                with self.lock:
                    if len(self.results) >= self.max_requests:
                        return
                try:
                    r = s.get(self.url, timeout=30)
                    item = (r.status_code == 200, r.text if r.status_code == 200 else "status %d" % r.status_code)
                except requests.RequestException as e:
                    item = (False, repr(e))
                with self.lock:
                    self.results.append(item)

    def count(self):
        with self.lock:
            return len(self.results)

    def wait_count(self, n, timeout=30):
        assert poll(lambda: self.count() >= n, timeout=timeout), "load stalled at %d requests" % self.count()

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(40)
        return self.results

    def failures(self):
        with self.lock:
            return [text for ok, text in self.results if not ok]


# ---------------------------------------------------------------- spreading

def test_four_workers_share_2000_requests_over_64_connections(serve):
    srv = start(serve, "pid_app:app", workers=4)
    workers = set(children(srv.proc.pid))
    assert len(workers) == 4
    counts = {}
    lock = threading.Lock()
    errors = []

    def client(n):
        with requests.Session() as s:
            for _ in range(n):
                try:
                    r = s.get(srv.url + "/", timeout=30)
                    with lock:
                        counts[int(r.text)] = counts.get(int(r.text), 0) + 1
                except requests.RequestException as e:
                    errors.append(repr(e))

    # 64 keep-alive connections, 2,000 requests in all.
    threads = [threading.Thread(target=client, args=(32 if i < 16 else 31,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert sum(counts.values()) == 2000
    assert set(counts) == workers, counts
    # Every worker serves a share: at least a quarter of an even split.
    assert min(counts.values()) >= 2000 // 4 // 4, counts


def one_request(sock, path="/"):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    data = recv_until_closed(sock)
    sock.close()
    return data.split(b"\r\n\r\n", 1)[1]


def test_a_burst_of_connections_is_shared_evenly(serve):
    # A load balancer's or wrk's pool: 64 keep-alive connections opened at
    # once. Without the shared connection counts, the worker that happened
    # to be awake took them all (64/0) and kept them.
    srv = start(serve, "pid_app:app", workers=2)
    for _ in range(3):
        socks = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(64)]
        counts = {}
        for sock in socks:
            pid = one_request(sock)
            counts[pid] = counts.get(pid, 0) + 1
        assert len(counts) == 2 and min(counts.values()) >= 16, counts


# ---------------------------------------------------------------- a worker dies

def test_a_killed_worker_is_replaced_within_2s_and_only_its_requests_fail(serve):
    srv = start(serve, "pid_app:app", workers=2)
    load = Load(srv.url, clients=4, max_seconds=60)
    try:
        load.wait_count(200)
        victim = children(srv.proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        srv.wait_log(r"pid %d\) died while serving: killed by signal 9 \(SIGKILL\)" % victim, timeout=5)
        # A new worker serves within 2 s of the kill.
        srv.wait_log(r"worker 3 \(pid \d+\) is serving", timeout=2 * SLOW + 1)
        assert time.monotonic() - killed_at < 2 * SLOW
        now = set(children(srv.proc.pid))
        assert victim not in now and len(now) == 2
        n = load.count()
        load.wait_count(n + 200)
    finally:
        load.stop()
    # At most the requests the dead worker had in flight: one per client.
    assert len(load.failures()) <= 4, load.failures()
    assert {t for ok, t in load.results if ok} - {str(victim)}


def test_a_worker_that_fails_to_boot_stops_the_supervisor_with_exit_1():
    started = time.monotonic()
    r = run_trestle("broken_import:app", "--workers", "2", "--bind", "127.0.0.1:0", timeout=60)
    assert r.returncode == 1, r
    assert "Traceback" in r.stderr, r.stderr
    assert "failed to boot" in r.stderr, r.stderr
    # One attempt, not a respawn loop.
    assert len(re.findall(r"starting worker \d+", r.stderr)) == 2, r.stderr
    assert time.monotonic() - started < 30


# ---------------------------------------------------------------- reloads

def write_app(path, version, size_pad=""):
    path.write_text(
        "import os\n"
        "def app(environ, start_response):\n"
        "    body = b'%s %%d%s' %% os.getpid()\n"
        "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
        "    return [body]\n" % (version, size_pad))


def test_hup_reloads_the_code_under_load_without_a_failed_request(serve, tmp_path):
    write_app(tmp_path / "hup_app.py", "v1")
    srv = start(serve, "hup_app:app", workers=2, cwd=str(tmp_path))
    load = Load(srv.url, clients=6, max_seconds=90)
    try:
        load.wait_count(300)
        write_app(tmp_path / "hup_app.py", "v2", size_pad=" new")
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_log(r"reload done", timeout=30 * SLOW)
        n = load.count()
        load.wait_count(n + 300)
    finally:
        load.stop()
    assert not load.failures(), load.failures()[:5]
    texts = [t for ok, t in load.results if ok]
    assert texts[0].startswith("v1 ") and texts[-1].startswith("v2 ")
    # After the reload only the new code answers.
    assert requests.get(srv.url, timeout=10).text.startswith("v2 ")
    assert srv.proc.poll() is None


def test_hup_with_broken_code_keeps_the_old_workers(serve, tmp_path):
    write_app(tmp_path / "hup_app.py", "v1")
    srv = start(serve, "hup_app:app", workers=2, cwd=str(tmp_path))
    before = set(children(srv.proc.pid))
    (tmp_path / "hup_app.py").write_text("def app(:\n")
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_log(r"reload failed: .* the old workers keep serving", timeout=30 * SLOW)
    assert "SyntaxError" in srv.log()
    assert requests.get(srv.url, timeout=10).text.startswith("v1 ")
    assert set(children(srv.proc.pid)) == before


def test_max_requests_recycles_workers_without_a_failed_request(serve):
    srv = start(serve, "pid_app:app", "--max-requests", "100", "--max-requests-jitter", "20", workers=2)
    load = Load(srv.url, clients=4, max_seconds=90, max_requests=50_000)
    try:
        # The two first workers, then three replacements, each ready before
        # the worker it replaces stops.
        srv.wait_log(r"(?s)(is serving.*){5}", timeout=60 * SLOW)
    finally:
        load.stop()
    assert not load.failures(), load.failures()[:5]
    # The load reached replacements (the newest may not have served yet).
    assert len({t for ok, t in load.results if ok}) >= 3
    assert len(re.findall(r"to replace worker \d+ \(pid \d+\) \(--max-requests\)", srv.log())) >= 3
    assert re.search(r"served 1[01]\d requests \(--max-requests\)", srv.log())


def test_max_rss_replaces_a_worker_that_grows(serve):
    srv = start(serve, "pid_app:app", "--max-rss", "200", workers=1)
    big = requests.get(srv.url + "/grow?mb=300", timeout=30).text
    srv.wait_log(r"pid %s\) uses \d+ MiB, over --max-rss 200 MiB" % big, timeout=10)
    srv.wait_log(r"stopping worker 1 \(pid %s\): replaced by worker 2" % big, timeout=20 * SLOW)
    assert poll(lambda: int(big) not in children(srv.proc.pid), timeout=20)
    assert requests.get(srv.url, timeout=10).text != big


def test_reload_flag_follows_an_edit_and_survives_a_syntax_error(serve, tmp_path):
    write_app(tmp_path / "dev_app.py", "v1")
    srv = start(serve, "dev_app:app", "--reload", workers=1, cwd=str(tmp_path))
    srv.wait_log(r"--reload: watching", timeout=5)
    assert requests.get(srv.url, timeout=10).text.startswith("v1 ")
    write_app(tmp_path / "dev_app.py", "v2")   # the same size, within the same second
    edited = time.monotonic()
    assert poll(lambda: requests.get(srv.url, timeout=10).text.startswith("v2 "), timeout=10 * SLOW)
    assert time.monotonic() - edited < 2 * SLOW
    (tmp_path / "dev_app.py").write_text("def app(:\n")
    srv.wait_log(r"reload failed", timeout=20 * SLOW)
    assert requests.get(srv.url, timeout=10).text.startswith("v2 ")
    # A fixed file is picked up again.
    write_app(tmp_path / "dev_app.py", "v3")
    assert poll(lambda: requests.get(srv.url, timeout=10).text.startswith("v3 "), timeout=10 * SLOW)


# ---------------------------------------------------------------- the binary upgrade

def test_usr2_starts_the_binary_on_disk_and_hands_over_without_a_failed_request(serve, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    copy = bindir / "trestle"
    shutil.copy2(conftest.BIN, copy)
    monkeypatch.setattr(conftest, "BIN", str(copy))
    write_app(tmp_path / "up_app.py", "v1")
    srv = start(serve, "up_app:app", workers=2, cwd=str(tmp_path))
    new_pid = None
    load = Load(srv.url, clients=6, max_seconds=90)
    try:
        load.wait_count(300)
        # "Rebuilt": a new file at the program's path, and new app code.
        shutil.copy2(conftest.BIN, str(copy) + ".new")
        os.rename(str(copy) + ".new", copy)
        write_app(tmp_path / "up_app.py", "v2", size_pad=" new")
        srv.proc.send_signal(signal.SIGUSR2)
        text = srv.wait_log(r"starting %s \(pid (\d+)\)" % re.escape(str(copy)), timeout=10)
        new_pid = int(re.search(r"starting %s \(pid (\d+)\)" % re.escape(str(copy)), text).group(1))
        srv.wait_log(r"binary upgrade: the new supervisor \(pid %d\) serves" % new_pid, timeout=30 * SLOW)
        assert srv.proc.wait(60) == 0   # the old supervisor stopped once its workers drained
        n = load.count()
        load.wait_count(n + 300)
    finally:
        load.stop()
        if new_pid:
            os.kill(new_pid, signal.SIGTERM)
            assert poll(lambda: not os.path.exists("/proc/%d" % new_pid) or
                        open("/proc/%d/stat" % new_pid).read().split()[2] == "Z", timeout=30)
    assert not load.failures(), load.failures()[:5]
    assert load.results[-1][1].startswith("v2 ")


# ---------------------------------------------------------------- signals and settings

def test_ttin_and_ttou_add_and_remove_a_worker(serve):
    srv = start(serve, "pid_app:app", workers=2)
    srv.proc.send_signal(signal.SIGTTIN)
    srv.wait_log(r"worker 3 \(pid \d+\) is serving", timeout=20 * SLOW)
    assert poll(lambda: len(children(srv.proc.pid)) == 3, timeout=10)
    srv.proc.send_signal(signal.SIGTTOU)
    srv.wait_log(r"stopping worker \d \(pid \d+\): fewer workers wanted \(2\)", timeout=10)
    assert poll(lambda: len(children(srv.proc.pid)) == 2, timeout=20)
    assert requests.get(srv.url, timeout=10).status_code == 200


def test_term_drains_a_request_in_flight_on_every_worker(serve, tmp_path):
    mark = tmp_path / "in-app"
    srv = start(serve, "pid_app:app", workers=2, env={"PID_APP_MARK": str(mark)})
    results = []
    threads = [threading.Thread(target=lambda: results.append(requests.get(srv.url + "/sleep?s=1", timeout=30)))
               for _ in range(6)]
    for t in threads:
        t.start()
    # Every request is in the app, on both workers, before the signal.
    assert poll(lambda: mark.exists() and len(mark.read_text().split()) == 6, timeout=10)
    assert len(set(mark.read_text().split())) == 2
    srv.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(30)
    assert srv.proc.wait(30) == 0
    assert [r.status_code for r in results] == [200] * 6
    assert "received SIGTERM: stopping 2 worker(s) gracefully" in srv.log()


def test_quit_stops_everything_at_once(serve):
    srv = start(serve, "pid_app:app", workers=2)
    workers = children(srv.proc.pid)
    srv.proc.send_signal(signal.SIGQUIT)
    assert srv.proc.wait(10) == 0
    assert poll(lambda: not any(os.path.exists("/proc/%d/status" % p) and
                                "State:\tZ" not in open("/proc/%d/status" % p).read() for p in workers), timeout=10)


def test_preload_imports_once_and_forks_the_workers(serve):
    srv = start(serve, "pid_app:app", "--preload", workers=2)
    seen = {}
    for _ in range(5):
        # Connections open at once: the workers share them.
        socks = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(16)]
        for sock in socks:
            text = one_request(sock, "/forked").decode()
            m = re.fullmatch(r"imported_in=(\d+) forked=\[(.*)\] pid=(\d+)", text)
            assert m, text
            seen[m.group(3)] = m
        if len(seen) == 2:
            break
    assert len(seen) == 2, seen
    for pid, m in seen.items():
        # Imported in the supervisor, and Python's at-fork hooks ran in the worker.
        assert int(m.group(1)) == srv.proc.pid
        assert m.group(2) == pid


@pytest.mark.parametrize("env,flags,expected", [
    ({"WEB_CONCURRENCY": "3"}, [], 3),
    ({"WEB_CONCURRENCY": "3"}, ["--workers", "2"], 2),
    ({"WEB_CONCURRENCY": "3", "TRESTLE_WORKERS": "2"}, [], 2),
])
def test_web_concurrency_is_the_default_worker_count(serve, env, flags, expected):
    srv = serve("pid_app:app", *flags, env=env)
    srv.wait_log(serving(expected), timeout=30 * SLOW)
    assert poll(lambda: len(children(srv.proc.pid)) == expected, timeout=5)


@pytest.mark.parametrize("value", ["0", "-1", "many", "2000"])
def test_a_bad_web_concurrency_is_one_line_and_exit_2(value):
    r = run_trestle("pid_app:app", env={"WEB_CONCURRENCY": value})
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "WEB_CONCURRENCY" in lines[0], r.stderr


def test_usr1_reopens_every_workers_access_log(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = start(serve, "pid_app:app", "--access-log", str(log), workers=2)
    for _ in range(4):
        requests.get(srv.url, headers={"Connection": "close"}, timeout=10)
    assert poll(lambda: log.exists() and log.read_text().count("GET / ") == 4, timeout=5)
    os.rename(log, tmp_path / "access.log.1")
    srv.proc.send_signal(signal.SIGUSR1)
    assert poll(lambda: srv.log().count("access log reopened") == 2, timeout=5), srv.log()
    for _ in range(4):
        requests.get(srv.url, headers={"Connection": "close"}, timeout=10)
    assert poll(lambda: log.exists() and log.read_text().count("GET / ") == 4, timeout=5)
    assert (tmp_path / "access.log.1").read_text().count("GET / ") == 4


def test_reload_follows_the_config_file_and_a_broken_one_keeps_the_old_workers(serve, tmp_path):
    conf = tmp_path / "trestle.toml"
    conf.write_text('[server]\nserver_header = "one"\n')
    srv = start(serve, "hello:app", "--reload", "--config", str(conf), "--reload-dir", str(tmp_path), workers=1)
    assert requests.get(srv.url, timeout=10).headers["Server"] == "one"
    conf.write_text('[server]\nserver_header = "two"\n')
    # A worker reads the settings anew when it starts.
    assert poll(lambda: requests.get(srv.url, timeout=10).headers["Server"] == "two", timeout=10 * SLOW)
    conf.write_text('[server]\nserver_header = \n')
    srv.wait_log(r"reload failed", timeout=20 * SLOW)
    assert requests.get(srv.url, timeout=10).headers["Server"] == "two"
