"""Command line, app loading, Python environment, shutdown and logs."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests

from conftest import APPS, BIN, run_trestle

FLAGS = ["--bind", "--threads", "--io-threads", "--max-queue", "--retry-after", "--output-hwm", "--backlog",
         "--max-header-bytes", "--max-header-count", "--max-body-bytes", "--header-timeout",
         "--keepalive-timeout", "--io-timeout", "--graceful-timeout", "--chdir", "--pythonpath", "--venv",
         "--access-log", "--access-log-format", "--server-header", "--log-level", "--version", "--help",
         "--interface", "--loop",
         "--lifespan", "--ws-max-size", "--ws-idle-timeout", "--error-log",
         # gunicorn's and uvicorn's names (issue 11 item 6)
         "--keep-alive", "--timeout-keep-alive", "--limit-request-fields", "--access-logfile", "--error-logfile",
         "--proxy-headers", "--no-proxy-headers", "--log-file", "--no-access-log", "--no-server-header",
         "--access-logformat"]


def test_help_documents_every_flag():
    r = run_trestle("--help")
    assert r.returncode == 0
    for flag in FLAGS:
        assert flag in r.stdout, flag
    assert "default" in r.stdout


@pytest.mark.parametrize("args", [
    ["hello:app", "--no-such-flag"],
    ["hello:app", "--threads", "zero"],
    ["hello:app", "--threads", "0"],
    ["hello:app", "--bind", "nonsense"],
    ["hello:app", "--bind", "127.0.0.1:99999"],
    [],
])
def test_bad_flags_give_one_line_and_exit_2(args):
    r = run_trestle(*args)
    assert r.returncode == 2, r
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("trestle: error:"), r.stderr


@pytest.mark.parametrize("spec,needle", [
    ("no_such_module:app", "cannot import app module 'no_such_module'"),
    ("hello:missing", "has no attribute 'missing'"),
    ("factory:not_callable", "is not callable"),
    ("hello:", "nothing after ':'"),
])
def test_bad_app_spec_gives_one_line_and_exit_2(spec, needle):
    r = run_trestle(spec, "--bind", "127.0.0.1:0")
    assert r.returncode == 2, r
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_import_error_prints_traceback_and_exits_nonzero():
    r = run_trestle("broken_import:app", "--bind", "127.0.0.1:0")
    assert r.returncode not in (0, 2)
    assert "Traceback (most recent call last)" in r.stderr
    assert "this_module_does_not_exist_anywhere" in r.stderr


def test_factory_with_and_without_arguments(serve):
    srv = serve("factory:create_app()")
    assert requests.get(srv.url, timeout=10).text == "hello"
    srv = serve("factory:create_app('bonjour')")
    assert requests.get(srv.url, timeout=10).text == "bonjour"


def test_module_without_attr_uses_app(serve):
    srv = serve("hello")
    assert requests.get(srv.url, timeout=10).text == "Hello, World!"


def test_chdir_and_pythonpath(serve, tmp_path):
    (tmp_path / "appdir").mkdir()
    (tmp_path / "libdir").mkdir()
    (tmp_path / "libdir" / "helper_lib.py").write_text("WORD = 'from-pythonpath'\n")
    (tmp_path / "appdir" / "chapp.py").write_text(
        "import os, helper_lib\n"
        "def app(e, sr):\n"
        "    b = (helper_lib.WORD + ' ' + os.getcwd()).encode()\n"
        "    sr('200 OK', [('Content-Length', str(len(b)))])\n"
        "    return [b]\n")
    srv = serve("chapp:app", "--chdir", str(tmp_path / "appdir"), "--pythonpath", str(tmp_path / "libdir"),
                cwd="/")
    assert requests.get(srv.url, timeout=10).text == "from-pythonpath " + str(tmp_path / "appdir")


# Every repeatable flag, given before the app as in `gunicorn -b ADDR module:app`:
# it takes its one value, and the app after it is still the app. CLI11 gave
# `--metrics-bind ADDR hello:app` and `--shadow /=X hello:app` the app as a
# second value ("no app given").
@pytest.mark.parametrize("flag, value", [
    ("--bind", "127.0.0.1:0"),
    ("--insecure-bind", "127.0.0.1:0"),
    ("--metrics-bind", "127.0.0.1:0"),
    ("--shadow", "/=hello:app"),
    ("--forwarded-allow-ips", "127.0.0.1"),
    ("--metrics-allow", "127.0.0.1"),
    ("--dashboard-allow", "127.0.0.1"),
    ("--pythonpath", "."),
    ("--reload-dir", "."),
])
def test_a_repeatable_flag_before_the_app_leaves_the_app(serve, flag, value):
    srv = serve(flag, value, "hello:app", "/two=hello:app", "--bind", "127.0.0.1:0", bind=False)
    assert requests.get(srv.url + "/", timeout=10).text == "Hello, World!"
    assert requests.get(srv.url + "/two/", timeout=10).text == "Hello, World!"


def test_bad_chdir_is_exit_2(tmp_path):
    r = run_trestle("hello:app", "--chdir", str(tmp_path / "missing"))
    assert r.returncode == 2 and r.stderr.startswith("trestle: error: --chdir")


def make_venv(path):
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    site = subprocess.run([str(path / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    with open(os.path.join(site, "venv_only_module.py"), "w") as fh:
        fh.write("MARK = 'venv-ok'\n")
    return site


VENV_APP = ("import sys, venv_only_module\n"
            "def app(e, sr):\n"
            "    b = (venv_only_module.MARK + ' ' + sys.prefix).encode()\n"
            "    sr('200 OK', [('Content-Length', str(len(b)))])\n"
            "    return [b]\n")


def test_venv_flag_and_virtual_env_variable(serve, tmp_path):
    venv = tmp_path / "venv"
    make_venv(venv)
    (tmp_path / "vapp.py").write_text(VENV_APP)
    srv = serve("vapp:app", "--venv", str(venv), cwd=str(tmp_path))
    assert requests.get(srv.url, timeout=10).text == "venv-ok " + str(venv)
    srv = serve("vapp:app", cwd=str(tmp_path), env={"VIRTUAL_ENV": str(venv)})
    assert requests.get(srv.url, timeout=10).text == "venv-ok " + str(venv)
    r = run_trestle("vapp:app", "--venv", str(tmp_path / "nope"), cwd=str(tmp_path))
    assert r.returncode == 2 and "--venv" in r.stderr


def test_graceful_shutdown_finishes_in_flight_requests(serve):
    srv = serve("wsgi_cases:app", "--graceful-timeout", "10")
    result = {}

    def slow():
        result["r"] = requests.get(srv.url + "/sleep?1.0", timeout=20)
    t = threading.Thread(target=slow)
    t.start()
    # Wait until the request is inside the app, then signal.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if requests.get(srv.url + "/hits", timeout=10).json()["hits"] >= 2:
            break
        time.sleep(0.02)
    srv.proc.send_signal(signal.SIGTERM)
    t.join(20)
    assert result["r"].status_code == 200 and result["r"].text == "slept"
    assert srv.proc.wait(20) == 0
    assert "shutting down gracefully" in srv.log()
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url + "/", timeout=5)


def test_sigint_also_stops_cleanly(serve):
    srv = serve("hello:app")
    assert requests.get(srv.url, timeout=10).status_code == 200
    assert srv.stop(sig=signal.SIGINT) == 0


def test_queue_overflow_gets_503_with_retry_after(serve, tmp_path):
    flag = str(tmp_path / "release")
    srv = serve("wsgi_cases:app", "--threads", "1", "--max-queue", "1", "--retry-after", "7")
    results = []

    def blocked():
        results.append(requests.get(srv.url + "/block?" + flag, timeout=30).status_code)
    holder = threading.Thread(target=blocked)
    holder.start()
    deadline = time.monotonic() + 10
    while not os.path.exists(flag + ".entered") and time.monotonic() < deadline:
        time.sleep(0.01)
    # The only thread is busy: the first probe waits in the queue (and times
    # out on the client side), the next one is refused at once.
    statuses = []
    for _ in range(2):
        try:
            r = requests.get(srv.url + "/x", timeout=0.5)
            statuses.append((r.status_code, r.headers.get("Retry-After")))
        except requests.Timeout:
            statuses.append("queued")
    open(flag, "w").close()
    holder.join(20)
    assert statuses == ["queued", (503, "7")]
    assert results == [200]


def test_access_log_lines(serve, tmp_path):
    log = tmp_path / "access.log"
    srv = serve("wsgi_cases:app", "--access-log", str(log))
    requests.get(srv.url + "/hello?x=1", headers={"User-Agent": "tester/1.0", "Referer": "http://r/"}, timeout=10)
    requests.post(srv.url + "/echo", data=b"12345", timeout=10)
    # Buffered, but flushed within about a second while the server runs.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(log.read_text().splitlines()) < 2:
        time.sleep(0.05)
    assert srv.proc.poll() is None
    lines = log.read_text().splitlines()
    assert len(lines) == 2, lines
    pat = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "(.*?)" (\d{3}) (\d+|-) "(.*?)" "(.*?)" (\d+\.\d{6})$')
    m = pat.match(lines[0])
    assert m, lines[0]
    assert m.group(1) == "GET /hello?x=1 HTTP/1.1" and m.group(2) == "200"
    assert m.group(4) == "http://r/" and m.group(5) == "tester/1.0"
    m = pat.match(lines[1])
    assert m and m.group(1) == "POST /echo HTTP/1.1" and m.group(3) == "5"


# ---- every numeric option is range-checked (issue 10 item 19) -----------------------------------
# (flag, lowest, highest, seconds?) for every numeric flag. A value outside the range (negative
# numbers that used to wrap to "no limit", 2^64, nan) is a one-line error naming the flag and the
# range, exit 2. The app named does not exist, so a value wrongly accepted ends in an import error
# (which names no flag) instead of a running server.
NUMERIC = [
    ("--threads", 1, 1024, False),
    ("--io-threads", 1, 64, False),
    ("--max-queue", 1, 1 << 24, False),
    ("--retry-after", 0, 86400, False),
    ("--output-hwm", 4096, 1 << 30, False),
    ("--backlog", 1, 65535, False),
    ("--ws-max-size", 1, 1 << 40, False),
    ("--ws-idle-timeout", 1, 86400, True),
    ("--max-header-bytes", 256, 1 << 24, False),
    ("--max-header-count", 1, 10000, False),
    ("--max-body-bytes", 0, 1 << 40, False),
    ("--header-timeout", 0.1, 86400, True),
    ("--keepalive-timeout", 0.1, 86400, True),
    ("--io-timeout", 0.1, 86400, True),
    ("--graceful-timeout", 0, 86400, True),
    # aliases: gunicorn's --keep-alive and --limit-request-fields, uvicorn's --timeout-keep-alive
    ("--keep-alive", 0.1, 86400, True),
    ("--timeout-keep-alive", 0.1, 86400, True),
    ("--limit-request-fields", 1, 10000, False),
]
NO_APP = "no_such_module_for_range_checks:app"


def out_of_range(lo, hi, seconds):
    below = lo - 0.05 if seconds and lo > 0 else lo - 1
    return [str(below), str(hi + 1), "-1", str(2 ** 64), "nan", "-nan", "inf"]


def range_text(lo, hi):
    return "%s to %s" % (lo, hi)


def test_every_numeric_flag_is_in_the_table():
    numeric = {f for f, _, _, _ in NUMERIC}
    assert numeric <= set(FLAGS)
    assert set(FLAGS) - numeric == {"--bind", "--chdir", "--pythonpath", "--venv", "--access-log",
                                    "--access-log-format", "--access-logformat", "--server-header",
                                    "--log-level", "--version", "--help", "--interface", "--loop", "--lifespan",
                                    "--error-log", "--access-logfile", "--error-logfile", "--proxy-headers",
                                    "--no-proxy-headers", "--log-file", "--no-access-log", "--no-server-header"}


@pytest.mark.parametrize("flag,lo,hi,seconds", NUMERIC)
def test_a_numeric_flag_out_of_range_is_one_line_and_exit_2(flag, lo, hi, seconds):
    for value in out_of_range(lo, hi, seconds):
        r = run_trestle(NO_APP, flag + "=" + value)
        assert r.returncode == 2, (flag, value, r)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("trestle: error: " + flag + ":"), (value, r.stderr)
        assert "not in range " + range_text(lo, hi) in lines[0], (value, r.stderr)


@pytest.mark.parametrize("flag,lo,hi,seconds", NUMERIC)
def test_a_numeric_flag_takes_its_bounds(flag, lo, hi, seconds):
    # The bounds themselves pass the check: the run goes on to the (missing) app.
    for value in (lo, hi):
        r = run_trestle(NO_APP, "%s=%s" % (flag, value))
        assert r.returncode == 2 and "cannot import app module" in r.stderr, (flag, value, r.stderr)


# ---- gunicorn's and uvicorn's flags: aliases, or a loud refusal (issue 11 item 6) ---------------
@pytest.mark.parametrize("args", [["-t", "4"], ["-t4"], ["--timeout", "4"], ["--timeout=0.5"]])
def test_dash_t_is_gunicorns_timeout(args):
    # gunicorn's -t is --timeout; it once set the thread count here, silently.
    # It is accepted as the timeout: the run goes on to the (missing) app.
    r = run_trestle(NO_APP, *args)
    assert r.returncode == 2 and "cannot import app module" in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["-t"], ["-t", "-1"], ["-t", "nan"], ["--timeout", "86401"]])
def test_a_bad_timeout_is_one_line_and_exit_2(args):
    r = run_trestle(NO_APP, *args)
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("trestle: error:"), r.stderr


def test_threads_still_works(serve):
    srv = serve("hello:app", "--threads", "3")
    assert requests.get(srv.url, timeout=10).status_code == 200


def idle_close_after(srv, limit=8.0):
    """Seconds until the server closes a keep-alive connection left idle after one request."""
    s = srv.connect(timeout=limit)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"Hello, World!"):
        more = s.recv(4096)
        assert more, data
        data += more
    start = time.monotonic()
    try:
        assert s.recv(1) == b""
    finally:
        s.close()
    return time.monotonic() - start


@pytest.mark.parametrize("flag", ["--keep-alive", "--timeout-keep-alive", "--keepalive-timeout"])
def test_keep_alive_aliases_set_the_idle_timeout(serve, flag):
    took = idle_close_after(serve("hello:app", flag, "1"))
    assert 0.7 < took < 3.5, took   # the default is 5 s; timeouts fire up to 250 ms late, more on a busy machine


def test_keep_alive_alias_in_the_config_file(serve, tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text("[server]\nkeep_alive = 1\n")
    took = idle_close_after(serve("hello:app", "--config", str(cfg)))
    assert 0.7 < took < 3.5, took


def header_count_status(srv, fields):
    s = srv.connect()
    extra = b"".join(b"X-F%d: v\r\n" % i for i in range(fields - 2))   # with Host and Connection
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + extra + b"Connection: close\r\n\r\n")
    data = s.recv(100)
    s.close()
    return int(data.split(b" ")[1])


def test_limit_request_fields_is_max_header_count(serve):
    srv = serve("hello:app", "--limit-request-fields", "5")
    assert header_count_status(srv, 5) == 200
    assert header_count_status(srv, 6) == 431


def start_split(args, out, err):
    """Starts trestle with stdout and stderr in separate files; returns (proc, port)."""
    proc = subprocess.Popen([BIN] + args, cwd=APPS, stdout=open(out, "wb"), stderr=open(err, "wb"),
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(err, errors="replace").read())
        if m and "serving " in open(err, errors="replace").read():
            return proc, int(m.group(1))
        assert proc.poll() is None, open(err).read()
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("not ready: " + open(err).read())


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_access_logfile_writes_the_access_log(tmp_path):
    log = tmp_path / "access.log"
    proc, port = start_split(["hello:app", "--bind", "127.0.0.1:0", "--access-logfile", str(log)],
                             tmp_path / "out", tmp_path / "err")
    try:
        assert requests.get("http://127.0.0.1:%d/via-logfile" % port, timeout=10).status_code == 200
    finally:
        stop(proc)
    assert '"GET /via-logfile HTTP/1.1" 200' in log.read_text()


def test_access_logfile_dash_is_stdout_and_access_log_dash_stderr(tmp_path):
    out, err = tmp_path / "out", tmp_path / "err"
    proc, port = start_split(["hello:app", "--bind", "127.0.0.1:0", "--access-logfile", "-"], out, err)
    try:
        requests.get("http://127.0.0.1:%d/to-stdout" % port, timeout=10)
    finally:
        stop(proc)
    assert "GET /to-stdout" in out.read_text() and "GET /to-stdout" not in err.read_text()
    proc, port = start_split(["hello:app", "--bind", "127.0.0.1:0", "--access-log", "-"], out, err)
    try:
        requests.get("http://127.0.0.1:%d/to-stderr" % port, timeout=10)
    finally:
        stop(proc)
    assert "GET /to-stderr" in err.read_text() and "GET /to-stderr" not in out.read_text()


@pytest.mark.parametrize("flag", ["--error-log", "--error-logfile", "--log-file"])
def test_error_log_file_gets_the_log_and_tracebacks(tmp_path, flag):
    elog, out, err = tmp_path / "error.log", tmp_path / "out", tmp_path / "err"
    proc = subprocess.Popen([BIN, "wsgi_cases:app", "--bind", "127.0.0.1:0", flag, str(elog)], cwd=APPS,
                            stdout=open(out, "wb"), stderr=open(err, "wb"), stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        m = None
        while time.monotonic() < deadline and not m:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", elog.read_text() if elog.exists() else "")
            assert proc.poll() is None, err.read_text()
            time.sleep(0.02)
        assert m, err.read_text()
        assert requests.get("http://127.0.0.1:%s/raise" % m.group(1), timeout=10).status_code == 500
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "raised before start_response" not in elog.read_text():
            time.sleep(0.02)
    finally:
        stop(proc)
    text = elog.read_text()
    assert "Traceback" in text and "raised before start_response" in text, text
    assert err.read_text() == "", err.read_text()


def test_error_log_that_cannot_be_opened_is_exit_2(tmp_path):
    r = run_trestle("hello:app", "--error-logfile", str(tmp_path / "no" / "such" / "dir.log"))
    assert r.returncode == 2 and r.stderr.startswith("trestle: error: cannot open error log"), r


SPOOF = {"X-Forwarded-For": "203.0.113.7"}


def test_proxy_headers_is_an_accepted_no_op(serve):
    # Forwarded headers are believed from --forwarded-allow-ips peers, with or without it.
    srv = serve("wsgi_cases:app", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1")
    assert requests.get(srv.url + "/environ", headers=SPOOF, timeout=10).json()["REMOTE_ADDR"] == "203.0.113.7"
    srv = serve("wsgi_cases:app", "--proxy-headers")
    assert requests.get(srv.url + "/environ", headers=SPOOF, timeout=10).json()["REMOTE_ADDR"] == "127.0.0.1"


def test_no_proxy_headers_ignores_forwarded_headers(serve, tmp_path):
    srv = serve("wsgi_cases:app", "--forwarded-allow-ips", "127.0.0.1", "--no-proxy-headers")
    assert requests.get(srv.url + "/environ", headers=SPOOF, timeout=10).json()["REMOTE_ADDR"] == "127.0.0.1"
    # over a config file's forwarded_allow_ips too
    cfg = tmp_path / "t.toml"
    cfg.write_text('[server]\nforwarded_allow_ips = ["127.0.0.1"]\n')
    srv = serve("wsgi_cases:app", "--config", str(cfg), "--no-proxy-headers")
    assert requests.get(srv.url + "/environ", headers=SPOOF, timeout=10).json()["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("args,needle", [
    (["--limit-request-line", "4094"], "--max-header-bytes"),
    (["--root-path", "/api"], "mount the app"),
    (["--root-path"], "mount the app"),
])
def test_refused_flags_are_one_line_with_the_reason(args, needle):
    r = run_trestle(NO_APP, *args)
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("trestle: error: %s: not supported: " % args[0]), r.stderr
    assert needle in lines[0], lines[0]


def test_refused_flag_in_the_config_file_names_the_line(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text("[server]\nthreads = 2\nlimit_request_line = 10\n")
    r = run_trestle(NO_APP, "--config", str(cfg))
    assert r.returncode == 2 and "t.toml:3: --limit-request-line: not supported" in r.stderr, r.stderr


def test_no_server_header_sends_none(serve):
    srv = serve("hello:app", "--no-server-header")
    assert "Server" not in requests.get(srv.url, timeout=10).headers


def test_no_access_log_turns_off_the_config_files(serve, tmp_path):
    log = tmp_path / "access.log"
    cfg = tmp_path / "t.toml"
    cfg.write_text('[server]\naccess_log = "%s"\n' % log)
    srv = serve("hello:app", "--config", str(cfg))
    requests.get(srv.url + "/logged", timeout=10)
    srv.stop()
    assert "GET /logged" in log.read_text()
    log.unlink()
    srv = serve("hello:app", "--config", str(cfg), "--no-access-log")
    requests.get(srv.url + "/not-logged", timeout=10)
    srv.stop()
    assert not log.exists()


def raise_with_log_level(serve, tmp_path, level):
    """Serves wsgi_cases on a unix socket at `level` (the TCP port is logged at info only), gets
    /raise (a ValueError in the app: 500) and returns the whole log after a clean stop."""
    sock = tmp_path / ("%s.sock" % level)
    srv = serve("wsgi_cases:app", "--bind", "unix:%s" % sock, "--log-level", level, bind=False, expect_ready=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not sock.exists():
        assert srv.proc.poll() is None, srv.log()
        time.sleep(0.02)
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(10)
    c.connect(str(sock))
    c.sendall(b"GET /raise HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert c.recv(100).startswith(b"HTTP/1.1 500 ")
    c.close()
    assert srv.stop() == 0
    return srv.log()


def test_log_level_critical_drops_error_lines_and_tracebacks(serve, tmp_path):
    log = raise_with_log_level(serve, tmp_path, "error")
    assert "[ERROR] exception in app" in log and "Traceback" in log and "[INFO]" not in log, log
    log = raise_with_log_level(serve, tmp_path, "critical")
    assert "[ERROR]" not in log and "Traceback" not in log and "ValueError" not in log and "[INFO]" not in log, log
