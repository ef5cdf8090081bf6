"""gunicorn's signal set on the single-process server (issue 11).

With one process and no supervisor: USR1 reopens the access log (logrotate),
HUP/USR2/TTIN/TTOU are logged and the server keeps serving (they used to kill
it without a drain), QUIT stops at once with exit 0, TERM/INT drain as before.
"""
import os
import signal
import time

import pytest

from conftest import poll, read_response


def get(srv, path="/"):
    s = srv.connect()
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        status, _, body, _ = read_response(s)
        return status, body
    finally:
        s.close()


def file_text(path):
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


def test_usr1_reopens_the_access_log(serve, tmp_path):
    log_path = str(tmp_path / "access.log")
    srv = serve("hello:app", "--access-log", log_path)
    assert get(srv, "/before")[0] == 200
    # The log is flushed once a second: wait until the first line is there.
    assert poll(lambda: "/before" in file_text(log_path), timeout=5)
    rotated = str(tmp_path / "access.log.1")
    os.rename(log_path, rotated)
    srv.proc.send_signal(signal.SIGUSR1)
    srv.wait_log(r"access log reopened")
    assert get(srv, "/after")[0] == 200
    assert poll(lambda: "/after" in file_text(log_path), timeout=5), srv.log()
    old = file_text(rotated)
    assert "/before" in old and "/after" not in old
    assert "/before" not in file_text(log_path)
    assert srv.proc.poll() is None


def test_usr1_with_an_unopenable_path_keeps_the_old_file(serve, tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    log_path = str(logdir / "access.log")
    srv = serve("hello:app", "--access-log", log_path)
    os.rename(str(logdir), str(tmp_path / "gone"))   # the path cannot be opened now
    srv.proc.send_signal(signal.SIGUSR1)
    srv.wait_log(r"cannot reopen access log")
    assert get(srv, "/still")[0] == 200
    assert poll(lambda: "/still" in file_text(str(tmp_path / "gone" / "access.log")), timeout=5)


@pytest.mark.parametrize("sig,needle", [
    (signal.SIGHUP, "received SIGHUP: a reload replaces worker processes"),
    (signal.SIGUSR2, "received SIGUSR2"),
    (signal.SIGTTIN, "received SIGTTIN"),
    (signal.SIGTTOU, "received SIGTTOU"),
    (signal.SIGUSR1, "received SIGUSR1"),
])
def test_signal_is_logged_and_the_server_keeps_serving(serve, sig, needle):
    srv = serve("hello:app")
    srv.proc.send_signal(sig)
    srv.wait_log(needle)
    assert srv.proc.poll() is None
    assert get(srv) == (200, b"Hello, World!")
    # A second one is handled the same way (the wait is re-armed).
    srv.proc.send_signal(sig)
    poll(lambda: srv.log().count(needle) >= 2, timeout=5)
    assert srv.log().count(needle) >= 2
    assert get(srv) == (200, b"Hello, World!")
    # And TERM still drains and exits cleanly afterwards.
    assert srv.stop() == 0


def test_quit_stops_at_once_with_a_request_in_flight(serve):
    srv = serve("wsgi_cases:app", "--graceful-timeout", "30")
    s = srv.connect()
    s.sendall(b"GET /sleep?30 HTTP/1.1\r\nHost: x\r\n\r\n")
    # Give the request a moment to reach the app (nothing to poll for); QUIT
    # must not wait for it either way.
    time.sleep(0.2)
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGQUIT)
    rc = srv.proc.wait(5)
    assert rc == 0
    assert time.monotonic() - started < 3
    assert "received SIGQUIT: stopping now" in srv.log()
    s.settimeout(5)
    assert s.recv(100) == b""   # the connection went with the process
    s.close()


# While the apps load, the server's signal handling is not running yet: the
# same signals must not kill it then either.

def test_hup_and_usr1_while_the_app_imports_do_not_kill_it(serve, tmp_path):
    gate = str(tmp_path / "gate")
    srv = serve("slow_import:app", env={"SLOW_IMPORT_GATE": gate}, expect_ready=False)
    srv.wait_log(r"slow_import: waiting for the gate")
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
        srv.proc.send_signal(sig)
    open(gate, "w").close()
    srv.wait_ready()
    assert get(srv) == (200, b"ready")
    assert srv.stop() == 0


def test_quit_while_the_app_imports_exits_0(serve, tmp_path):
    srv = serve("slow_import:app", env={"SLOW_IMPORT_GATE": str(tmp_path / "never")}, expect_ready=False)
    srv.wait_log(r"slow_import: waiting for the gate")
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGQUIT)
    assert srv.proc.wait(5) == 0
    assert time.monotonic() - started < 3
    assert "SIGQUIT: stopping now" in srv.log()


def test_usr1_reopens_a_relative_access_log_after_chdir(serve, tmp_path):
    # The path is relative to where trestle started, not to --chdir's folder.
    appdir = tmp_path / "app"
    appdir.mkdir()
    with open(str(appdir / "relapp.py"), "w") as fh:
        fh.write("def app(environ, start_response):\n"
                 "    start_response('200 OK', [('Content-Length', '2')])\n"
                 "    return [b'ok']\n")
    srv = serve("relapp:app", "--chdir", str(appdir), "--access-log", "access.log", cwd=str(tmp_path))
    log_path = str(tmp_path / "access.log")
    assert get(srv, "/one")[0] == 200
    assert poll(lambda: "/one" in file_text(log_path), timeout=5)
    os.rename(log_path, log_path + ".1")
    srv.proc.send_signal(signal.SIGUSR1)
    srv.wait_log(r"access log reopened")
    assert get(srv, "/two")[0] == 200
    assert poll(lambda: "/two" in file_text(log_path), timeout=5), srv.log()
    assert not os.path.exists(str(appdir / "access.log"))
