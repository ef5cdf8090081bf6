"""The access log's formats against the real binary (issue 11): a gunicorn
format string with several atoms, json lines for a WSGI and an ASGI app, a
bad format refused at startup, and the format from the environment, a
config file and gunicorn's flag name."""
import json
import os
import re
import threading

import pytest
import requests

from conftest import poll, read_head, run_trestle

APPS_BY_KIND = [("hello:app", "wsgi"), ("asgi_hello:app", "asgi")]
JSON_KEYS = ["time", "remote_addr", "method", "path", "query", "protocol", "status", "bytes", "duration_ms",
             "referer", "user_agent", "request_id", "pid"]


def lines_of(path, n, timeout=10.0):
    """The log's lines once it has at least n (it is flushed about once a second)."""
    def read():
        if not os.path.exists(path):
            return None
        with open(path, "rb") as fh:
            data = fh.read()
        got = data.decode("utf-8").splitlines()   # strict: the log must be valid UTF-8
        return got if len(got) >= n else None
    got = poll(read, timeout=timeout)
    assert got, "fewer than %d lines in %s" % (n, path)
    return got


@pytest.mark.parametrize("app,kind", APPS_BY_KIND)
def test_a_gunicorn_format_with_several_atoms(serve, tmp_path, app, kind):
    log = str(tmp_path / "access.log")
    fmt = ('%(h)s|%(l)s|%(u)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%(f)s|%(a)s|%({X-Test}i)s|'
           '%({content-type}o)s|%({Content-Length}o)s|%(p)s|%(D)s|%(M)s|%(T)s|%(L)s|%({wsgi.url_scheme}e)s|'
           '%({HTTP_X_TEST}e)s|"%(r)s"|100%%|%(t)s')
    srv = serve(app, "--access-log", log, "--access-log-format", fmt)
    r = requests.get(srv.url + "/some/path?a=1&b=2", auth=("alice", "secret"),
                     headers={"X-Test": 'say "hi"', "User-Agent": "ua/1", "Referer": "http://ref/"}, timeout=10)
    assert r.status_code == 200
    (line,) = lines_of(log, 1)
    f = line.split("|")
    assert f[:12] == ["127.0.0.1", "-", "alice", "GET", "/some/path", "a=1&b=2", "HTTP/1.1", "200", "13", "13",
                      "http://ref/", "ua/1"], line
    assert f[12] == r"say \x22hi\x22", line   # the combined log's escaping, in every format string
    assert f[13:16] == ["text/plain", "13", "<%d>" % srv.proc.pid], line
    micros, millis, secs, decimal = int(f[16]), int(f[17]), int(f[18]), f[19]
    assert micros // 1000 == millis and millis // 1000 == secs == 0, line
    assert re.fullmatch(r"0\.\d{6}", decimal), line
    assert f[20:23] == ["http", r"say \x22hi\x22", '"GET /some/path?a=1&b=2 HTTP/1.1"'], line
    assert f[23] == "100%", line
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\]", f[24]), line


@pytest.mark.parametrize("app,kind", APPS_BY_KIND)
def test_json_lines(serve, tmp_path, app, kind):
    log = str(tmp_path / "access.log")
    srv = serve(app, "--access-log", log, "--access-log-format", "json")
    assert requests.get(srv.url + "/j?x=1&y=%22", headers={"User-Agent": "tester/2", "X-Request-ID": "req-42"},
                        timeout=10).status_code == 200
    # Bytes requests will not send: a quote, a backslash, a Latin-1 byte, valid UTF-8, HTTP/1.0.
    with srv.connect() as s:
        s.sendall(b'HEAD /raw\\"path HTTP/1.0\r\nHost: x\r\nUser-Agent: caf\xe9 "q" \\ \xe2\x82\xac\r\n'
                  b"Referer: http://r/\r\n\r\n")
        status, _, _ = read_head(s)
        assert status == 200
    first, second = [json.loads(line) for line in lines_of(log, 2)]
    for rec in (first, second):
        assert list(rec) == JSON_KEYS   # the same keys, in the same order, on every line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", rec["time"]), rec
        assert rec["remote_addr"] == "127.0.0.1" and rec["pid"] == srv.proc.pid
        assert isinstance(rec["duration_ms"], float) and 0 <= rec["duration_ms"] < 10000
    assert first["method"] == "GET" and first["path"] == "/j" and first["query"] == "x=1&y=%22"
    assert first["protocol"] == "HTTP/1.1" and first["status"] == 200 and first["bytes"] == 13
    assert first["user_agent"] == "tester/2" and first["referer"] is None and first["request_id"] == "req-42"
    assert second["method"] == "HEAD" and second["path"] == '/raw\\"path' and second["query"] == ""
    assert second["protocol"] == "HTTP/1.0" and second["status"] == 200 and second["bytes"] == 0
    assert second["user_agent"] == 'caf\u00e9 "q" \\ \u20ac', second   # 0xe9 read as Latin-1, the euro kept
    assert second["referer"] == "http://r/" and second["request_id"] is None


@pytest.mark.parametrize("fmt,words", [
    ("%(h)s %(nope)s", "unknown atom %(nope)s (known: h l u t r m U q H s B b f a T M D L p"),
    ("%(h)-15s", "only %(NAME)s is supported"),
    ("50% %(s)s", "'%' must begin %(NAME)s, or be written %%"),
    ("%({PATH_INFO}e)s", "not a value the access log knows"),
    ("Json", "is neither a format name (combined, common, json) nor a format string"),
    ("", "missing"),   # CLI11's words for "--flag="
])
def test_a_bad_format_is_one_line_and_exit_2(fmt, words):
    for flag in ("--access-log-format", "--access-logformat"):
        r = run_trestle("hello:app", "--access-log", "-", flag + "=" + fmt)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2 and len(lines) == 1, (flag, fmt, r.stderr)
        assert lines[0].startswith("trestle: error: %s: " % flag) and words in lines[0], lines[0]


def test_the_format_from_the_environment(serve, tmp_path):
    log = str(tmp_path / "access.log")
    srv = serve("hello:app", env={"TRESTLE_ACCESS_LOG": log, "TRESTLE_ACCESS_LOG_FORMAT": "%(m)s %(U)s %(s)s"})
    assert requests.get(srv.url + "/from-env", timeout=10).status_code == 200
    assert lines_of(log, 1) == ["GET /from-env 200"]
    r = run_trestle("hello:app", env={"TRESTLE_ACCESS_LOG_FORMAT": "%(x)s"})
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("trestle: error: TRESTLE_ACCESS_LOG_FORMAT: --access-log-format: unknown atom")


def test_the_format_from_a_config_file(serve, tmp_path):
    log = str(tmp_path / "access.log")
    cfg = tmp_path / "trestle.toml"
    cfg.write_text('[server]\naccess_log = "%s"\naccess_log_format = "common"\n' % log)
    srv = serve("hello:app", "--config", str(cfg))
    assert requests.get(srv.url + "/from-file", timeout=10).status_code == 200
    (line,) = lines_of(log, 1)
    assert re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "GET /from-file HTTP/1\.1" 200 13', line), line
    cfg.write_text('[server]\naccess_log_format = "%(h)s %(q"\n')
    r = run_trestle("hello:app", "--config", str(cfg))
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0] == "trestle: error: %s:2: --access-log-format: '%%(' without its ')' (at offset 6)" % cfg


def test_the_command_line_wins_and_gunicorns_name_works(serve, tmp_path):
    log = str(tmp_path / "access.log")
    srv = serve("hello:app", "--access-log", log, "--access-logformat", "%(s)s %(U)s",
                env={"TRESTLE_ACCESS_LOG_FORMAT": "json"})
    assert requests.get(srv.url + "/alias", timeout=10).status_code == 200
    assert lines_of(log, 1) == ["200 /alias"]


def test_the_default_is_the_combined_line(serve, tmp_path):
    log = str(tmp_path / "access.log")
    srv = serve("hello:app", "--access-log", log)
    requests.get(srv.url + "/d?x=1", headers={"User-Agent": "ua", "Referer": "http://r/"}, timeout=10)
    (line,) = lines_of(log, 1)
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                        r'"GET /d\?x=1 HTTP/1\.1" 200 13 "http://r/" "ua" \d+\.\d{6}', line), line


def test_a_format_without_a_log_is_a_warning(serve):
    srv = serve("hello:app", "--access-log-format", "json")
    srv.wait_log(r"\[WARNING\] --access-log-format is set, but there is no access log")


def test_workers_log_whole_lines_with_their_own_pid(serve, tmp_path):
    log = str(tmp_path / "access.log")
    srv = serve("hello:app", "--workers", "2", "--access-log", log, "--access-log-format", "json")
    url = srv.url + "/w/" + "x" * 200

    def hit(n):
        for _ in range(n):
            assert requests.get(url, headers={"Connection": "close"}, timeout=10).status_code == 200

    threads = [threading.Thread(target=hit, args=(100,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    records = [json.loads(line) for line in lines_of(log, 400)]   # every line whole
    assert len(records) == 400
    pids = {r["pid"] for r in records}
    assert srv.proc.pid not in pids
    for pid in pids:   # a worker: a child of the supervisor
        with open("/proc/%d/stat" % pid) as fh:
            assert int(fh.read().rsplit(")", 1)[1].split()[1]) == srv.proc.pid
