"""TRESTLE_<FLAG> environment variables (issue 11 item 6).

Every long flag can be set as TRESTLE_ plus its name in capitals with '_' for '-'. Precedence:
command line over environment over config file over default. Each layer is checked through
behaviour that is cheap to observe: --max-body-bytes (413 or not), --server-header (the Server
header), --no-flask-async (the Flask integration's startup line) and --bind (which sockets exist).
"""
import os
import socket

import pytest
import requests

from conftest import APPS, run_trestle

NO_APP = "no_such_module_for_env_checks:app"


def body_limit_is(srv, limit):
    """True if a body of `limit` bytes is accepted and one of limit + 1 gets 413."""
    ok = requests.post(srv.url + "/echo", data=b"x" * limit, timeout=10)
    over = requests.post(srv.url + "/echo", data=b"x" * (limit + 1), timeout=10)
    return ok.status_code == 200 and over.status_code == 413


def write_config(tmp_path, text):
    cfg = tmp_path / "t.toml"
    cfg.write_text("[server]\n" + text)
    return str(cfg)


def test_numeric_option_default_config_env_argv(serve, tmp_path):
    cfg = write_config(tmp_path, "max_body_bytes = 100\n")
    # config over default
    srv = serve("wsgi_cases:app", "--config", cfg)
    assert body_limit_is(srv, 100)
    # environment over config
    srv = serve("wsgi_cases:app", "--config", cfg, env={"TRESTLE_MAX_BODY_BYTES": "50"})
    assert body_limit_is(srv, 50)
    # command line over environment (a larger value: the last layer wins, not the smallest)
    srv = serve("wsgi_cases:app", "--config", cfg, "--max-body-bytes", "80", env={"TRESTLE_MAX_BODY_BYTES": "50"})
    assert body_limit_is(srv, 80)
    # environment alone, and the config file named by TRESTLE_CONFIG
    srv = serve("wsgi_cases:app", env={"TRESTLE_MAX_BODY_BYTES": "60"})
    assert body_limit_is(srv, 60)
    srv = serve("wsgi_cases:app", env={"TRESTLE_CONFIG": cfg})
    assert body_limit_is(srv, 100)


def test_string_option_default_config_env_argv(serve, tmp_path):
    cfg = write_config(tmp_path, 'server_header = "from-config"\n')
    srv = serve("hello:app")
    assert requests.get(srv.url, timeout=10).headers["Server"] == "trestle"
    srv = serve("hello:app", "--config", cfg)
    assert requests.get(srv.url, timeout=10).headers["Server"] == "from-config"
    srv = serve("hello:app", "--config", cfg, env={"TRESTLE_SERVER_HEADER": "from-env"})
    assert requests.get(srv.url, timeout=10).headers["Server"] == "from-env"
    srv = serve("hello:app", "--config", cfg, "--server-header", "from-argv", env={"TRESTLE_SERVER_HEADER": "from-env"})
    assert requests.get(srv.url, timeout=10).headers["Server"] == "from-argv"


ON = "Flask async views run on the server's event loop"
OFF = "flask_async off (--no-flask-async)"


def test_flag_default_config_env_argv(serve, tmp_path):
    off_cfg = write_config(tmp_path, "flask_async = false\n")
    srv = serve("flask_async_app:app")
    assert ON in srv.log()
    srv = serve("flask_async_app:app", "--config", off_cfg)
    assert OFF in srv.log()
    # TRESTLE_NO_FLASK_ASYNC=0 (false) beats the file's flask_async = false
    for value in ("0", "false", "No"):
        srv = serve("flask_async_app:app", "--config", off_cfg, env={"TRESTLE_NO_FLASK_ASYNC": value})
        assert ON in srv.log(), value
    for value in ("1", "true", "YES"):
        srv = serve("flask_async_app:app", env={"TRESTLE_NO_FLASK_ASYNC": value})
        assert OFF in srv.log(), value
    srv = serve("flask_async_app:app", "--no-flask-async", env={"TRESTLE_NO_FLASK_ASYNC": "0"})
    assert OFF in srv.log()


def test_bind_default_config_env_argv(serve, tmp_path):
    cfg_sock, env_sock = tmp_path / "cfg.sock", tmp_path / "env.sock"
    cfg = write_config(tmp_path, 'bind = ["unix:%s", "127.0.0.1:0"]\n' % cfg_sock)
    srv = serve("hello:app", "--config", cfg, bind=False)
    assert cfg_sock.exists()
    srv.stop()
    cfg_sock.unlink(missing_ok=True)
    # The environment's list (comma- or whitespace-separated) replaces the file's.
    srv = serve("hello:app", "--config", cfg, bind=False, env={"TRESTLE_BIND": "unix:%s, 127.0.0.1:0" % env_sock})
    assert env_sock.exists() and not cfg_sock.exists()
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(10)
    c.connect(str(env_sock))
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert c.recv(100).startswith(b"HTTP/1.1 200 ")
    c.close()
    assert requests.get(srv.url, timeout=10).status_code == 200
    srv.stop()
    env_sock.unlink(missing_ok=True)
    # The command line's --bind replaces the environment's.
    srv = serve("hello:app", "--config", cfg, env={"TRESTLE_BIND": "unix:%s" % env_sock})
    assert requests.get(srv.url, timeout=10).status_code == 200
    assert not env_sock.exists() and not cfg_sock.exists()


@pytest.mark.parametrize("name,value,needle", [
    ("TRESTLE_THREADS", "0", "--threads: Value 0 not in range 1 to 1024"),
    ("TRESTLE_THREADS", "many", "--threads"),
    ("TRESTLE_MAX_BODY_BYTES", "-1", "not in range 0 to"),
    ("TRESTLE_KEEPALIVE_TIMEOUT", "nan", "--keepalive-timeout"),
    ("TRESTLE_INTERFACE", "cgi", "--interface"),
    ("TRESTLE_NO_FLASK_ASYNC", "maybe", "1, true, yes or on"),
])
def test_bad_env_value_is_one_line_naming_the_variable_and_exit_2(name, value, needle):
    r = run_trestle(NO_APP, env={name: value})
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("trestle: error: %s: " % name), r.stderr
    assert needle in lines[0], lines[0]


def test_command_line_does_not_excuse_a_bad_env_value():
    # Every layer is checked, as a bad config key is even when argv sets the same flag.
    r = run_trestle(NO_APP, "--threads", "4", env={"TRESTLE_THREADS": "0"})
    assert r.returncode == 2 and "TRESTLE_THREADS" in r.stderr, r


def test_unknown_trestle_variable_warns_in_one_line(serve):
    srv = serve("hello:app", env={"TRESTLE_THRADS": "4"})
    assert requests.get(srv.url, timeout=10).status_code == 200
    lines = [x for x in srv.log().splitlines() if "TRESTLE_THRADS" in x]
    assert len(lines) == 1 and "warning" in lines[0] and "unknown" in lines[0], srv.log()


def test_tool_variables_and_compat_names_are_not_settings(serve):
    # The test and benchmark tools' own variables pass silently; a compat alias (gunicorn's name)
    # is not a variable: the TRESTLE_ name is the flag's own.
    srv = serve("hello:app", env={"TRESTLE_BIN": "/x", "TRESTLE_SOURCE_DIR": "/y", "TRESTLE_KEEP_ALIVE": "3"})
    log = srv.log()
    assert "TRESTLE_BIN" not in log and "TRESTLE_SOURCE_DIR" not in log
    assert "TRESTLE_KEEP_ALIVE" in log and "unknown" in log


def test_every_numeric_flag_has_its_variable_with_its_range():
    # The variables are derived from the flags: each numeric flag's is range-checked like the flag.
    from test_cli import NUMERIC
    compat = {"--keep-alive", "--timeout-keep-alive", "--limit-request-fields"}   # other servers' names: no variable
    for flag, lo, hi, seconds in NUMERIC:
        if flag in compat:
            continue
        name = "TRESTLE_" + flag[2:].upper().replace("-", "_")
        r = run_trestle(NO_APP, env={name: str(hi + 1)})
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2 and len(lines) == 1, (name, r.stderr)
        assert lines[0].startswith("trestle: error: %s: %s:" % (name, flag)) and "not in range" in lines[0], lines[0]
        r = run_trestle(NO_APP, env={name: str(hi)})
        assert r.returncode == 2 and "cannot import app module" in r.stderr, (name, r.stderr)


def test_access_log_from_the_environment(serve, tmp_path):
    log = tmp_path / "a.log"
    srv = serve("hello:app", env={"TRESTLE_ACCESS_LOG": str(log)})
    assert requests.get(srv.url + "/from-env", timeout=10).status_code == 200
    srv.stop()
    assert "GET /from-env HTTP/1.1" in log.read_text()
