"""--config: a TOML file with [server] settings and [[mount]] tables."""
import textwrap

import pytest
import requests

from conftest import APPS, run_trestle


def write(tmp_path, text):
    path = tmp_path / "trestle.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_mounts_and_server_settings_from_a_file(serve, tmp_path):
    cfg = write(tmp_path, f"""
        [server]
        threads = 3
        chdir = "{APPS}"
        server_header = "from-config"

        [[mount]]
        prefix = "/"
        app = "wsgi_cases:app"

        [[mount]]
        prefix = "/v2"
        app = "asgi_scope_echo:app"
        interface = "asgi"

        [[mount]]
        prefix = "/legacy"
        app = "flask_app:app"
        flask_async = false
    """)
    srv = serve("--config=" + cfg)
    r = requests.get(srv.url + "/environ", timeout=10)
    assert r.headers["Server"] == "from-config" and r.json()["SCRIPT_NAME"] == ""
    scope = requests.get(srv.url + "/v2/x", timeout=10).json()
    assert scope["root_path"] == "/v2" and scope["path"] == "/v2/x"
    assert requests.get(srv.url + "/legacy/urls", timeout=10).json()["relative"] == "/legacy/json?source=u"
    assert "serving with 3 thread(s)" in srv.log()


def test_the_command_line_wins(serve, tmp_path):
    cfg = write(tmp_path, """
        [server]
        server_header = "from-config"

        [[mount]]
        prefix = "/"
        app = "wsgi_cases:app"
    """)
    # A root app and a flag on the command line replace the file's.
    srv = serve("hello:app", "--config", cfg, "--server-header", "from-cli")
    r = requests.get(srv.url + "/", timeout=10)
    assert r.text == "Hello, World!" and r.headers["Server"] == "from-cli"


def test_a_file_without_a_root_answers_404_outside_its_mounts(serve, tmp_path):
    cfg = write(tmp_path, """
        [[mount]]
        prefix = "/h"
        app = "hello:app"
    """)
    srv = serve("--config=" + cfg)
    assert requests.get(srv.url + "/h/", timeout=10).text == "Hello, World!"
    r = requests.get(srv.url + "/elsewhere", timeout=10)
    assert r.status_code == 404


BAD = [
    # (file body, line the error names, words it must contain)
    ("[server]\nthreads = 0\n", 2, "threads"),
    ("[server]\nthreads = \"many\"\n", 2, "threads"),
    ("[server]\nno_such_flag = 1\n", 2, "unknown setting 'no_such_flag'"),
    ("[server]\nbind = [1, [2]]\n", 2, "wrong type"),
    ("[server]\nloop = \"tornado\"\n", 2, "loop"),
    ("[server]\nflask_async = \"no\"\n", 2, "true or false"),
    ("[server]\nserver_header = true\n", 2, "wrong type"),   # true/false only for flags without a value
    ("[servers]\nthreads = 2\n", 1, "unknown table or key 'servers'"),
    ("[[mount]]\nprefix = \"/a\"\n", 1, "exactly one of app, static or proxy"),
    ("[[mount]]\napp = \"hello:app\"\n", 1, "needs a prefix"),
    ("[[mount]]\nprefix = \"/a\"\napp = \"hello:app\"\nstatic = \"/tmp\"\n", 1, "exactly one"),
    ("[[mount]]\nprefix = \"a\"\napp = \"hello:app\"\n", 2, "must start with '/'"),
    ("[[mount]]\nprefix = \"/a\"\napp = \"hello:app\"\ncolour = 1\n", 4, "unknown mount key 'colour'"),
    ("[[mount]]\nprefix = \"/a\"\napp = \"hello:app\"\nindex = \"i.html\"\n", 4, "static mounts only"),
    ("[[mount]]\nprefix = \"/a\"\nproxy = \"ftp://x\"\n", 3, "http://"),
    ("[[mount]]\nprefix = \"/a\"\nproxy = \"http://127.0.0.1:9\"\nread_timeout = -1\n", 4, "seconds"),
    ("[[mount]]\nprefix = \"/a\"\napp = \"hello:app\"\n\n[[mount]]\nprefix = \"/a/\"\napp = \"hello:app\"\n", 5,
     "already mounted at"),
    ("[server\nthreads = 2\n", 1, ""),                   # TOML syntax error
    ("[server]\nthreads = 2\nthreads = 3\n", 3, ""),     # duplicate key
    ("mount = 3\n", 1, "[[mount]]"),
    ("[dashboard]\npaht = \"/d\"\n", 2, "unknown setting 'paht' in [dashboard]"),
    ("dashboard = \"/d\"\n", 1, "[dashboard]"),
]


@pytest.mark.parametrize("body,line,words", BAD)
def test_errors_name_the_file_and_line_and_exit_2(tmp_path, body, line, words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    r = run_trestle("--config", str(cfg))
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"trestle: error: {cfg}:{line}:"), r.stderr
    assert words in lines[0], r.stderr


def test_a_missing_file_is_a_usage_error(tmp_path):
    r = run_trestle("--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and "nope.toml" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r


def test_no_app_at_all_is_a_usage_error():
    r = run_trestle("--bind", "127.0.0.1:0")
    assert r.returncode == 2 and "no app given" in r.stderr, r


@pytest.mark.parametrize("spec,words", [("static:", "directory"), ("proxy:ftp://x", "http://"),
                                        ("proxy:http://", "http://"), ("proxy:http://a,", "http://")])
def test_bad_mount_targets_on_the_command_line(spec, words):
    r = run_trestle("hello:app", "/m=" + spec)
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and words in lines[0], r.stderr


def test_a_command_line_mount_replaces_the_files_at_that_prefix(serve, tmp_path):
    cfg = write(tmp_path, """
        [[mount]]
        prefix = "/"
        app = "hello:app"

        [[mount]]
        prefix = "/x"
        app = "hello:app"
    """)
    # The first positional is a mount here, since the file has the root app.
    srv = serve("/x=wsgi_cases:app", "--config", cfg)
    assert requests.get(srv.url + "/x/environ", timeout=10).json()["SCRIPT_NAME"] == "/x"
    assert requests.get(srv.url + "/", timeout=10).text == "Hello, World!"


def test_relative_paths_are_relative_to_the_file(serve, tmp_path):
    sub = tmp_path / "site"
    sub.mkdir()
    (sub / "myapp.py").write_text("def app(environ, start_response):\n"
                                  "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                                  "    return [b'from the config folder']\n")
    cfg = sub / "trestle.toml"
    cfg.write_text('[server]\nchdir = "."\n\n[[mount]]\nprefix = "/"\napp = "myapp:app"\n')
    srv = serve("--config=" + str(cfg), cwd=str(tmp_path))   # started from elsewhere
    assert requests.get(srv.url + "/", timeout=10).text == "from the config folder"


# ---- numeric [server] settings are range-checked like their flags (issue 10 item 19) -----------
from test_cli import NUMERIC, NO_APP, range_text  # noqa: E402


def toml_values(lo, hi, seconds):
    below = lo - 0.05 if seconds and lo > 0 else lo - 1
    return [repr(below) if isinstance(below, float) else str(below), str(hi + 1), "-1", "nan", "-inf",
            "1.8446744073709552e19"]


@pytest.mark.parametrize("flag,lo,hi,seconds", NUMERIC)
def test_a_numeric_setting_out_of_range_is_one_line_and_exit_2(tmp_path, flag, lo, hi, seconds):
    key = flag[2:].replace("-", "_")
    cfg = tmp_path / "range.toml"
    for value in toml_values(lo, hi, seconds):
        cfg.write_text("[server]\n%s = %s\n" % (key, value))
        r = run_trestle(NO_APP, "--config", str(cfg))
        assert r.returncode == 2, (key, value, r)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1, (value, r.stderr)
        assert lines[0].startswith("trestle: error: %s:2: %s:" % (cfg, flag)), (value, r.stderr)
        assert "not in range " + range_text(lo, hi) in lines[0], (value, r.stderr)


def test_an_integer_past_64_bits_in_the_file_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "big.toml"
    cfg.write_text("[server]\nmax_body_bytes = %d\n" % 2 ** 64)
    r = run_trestle(NO_APP, "--config", str(cfg))
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("trestle: error: %s:2" % cfg), r.stderr


@pytest.mark.parametrize("key", ["connect_timeout", "read_timeout", "fail_timeout"])
@pytest.mark.parametrize("value", ["nan", "-inf", "inf", "0", "86401", "-1"])
def test_a_proxy_mount_timeout_out_of_range_is_refused(tmp_path, key, value):
    cfg = tmp_path / "mount.toml"
    cfg.write_text('[[mount]]\nprefix = "/a"\nproxy = "http://127.0.0.1:9"\n%s = %s\n' % (key, value))
    r = run_trestle(NO_APP, "--config", str(cfg))
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "%s must be a number of seconds (0 < s <= 86400)" % key in lines[0], r.stderr


@pytest.mark.parametrize("key,hi", [("max_fails", 1000), ("max_idle", 100000)])
def test_a_proxy_mount_count_out_of_range_is_refused(tmp_path, key, hi):
    cfg = tmp_path / "mount.toml"
    for value in ("-1", str(hi + 1), "1.5", "nan"):
        cfg.write_text('[[mount]]\nprefix = "/a"\nproxy = "http://127.0.0.1:9"\n%s = %s\n' % (key, value))
        r = run_trestle(NO_APP, "--config", str(cfg))
        assert r.returncode == 2, r
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "%s must be an integer from 0 to %d" % (key, hi) in lines[0], (value, r.stderr)


def test_a_flag_without_a_value_takes_true_or_false(serve, tmp_path):
    # Any such flag, gunicorn's and uvicorn's names included (issue 11): true gives it, false not.
    cfg = write(tmp_path, """
        [server]
        no_server_header = true
        proxy_headers = true
        """)
    srv = serve("hello:app", "--config", cfg)
    assert "Server" not in requests.get(srv.url, timeout=10).headers
    cfg = write(tmp_path, """
        [server]
        no_server_header = false
        """)
    srv = serve("hello:app", "--config", cfg)
    assert requests.get(srv.url, timeout=10).headers["Server"] == "trestle"
