"""Health checks (--health-path) for load balancers and Kubernetes: liveness
while the process answers, readiness while it serves, readiness failing from
the moment a graceful stop begins (with --drain-delay, while the server still
serves everything else), and nothing to probe while the apps load and their
lifespan startup runs (the server listens only after both)."""
import signal
import socket
import time

import pytest
import requests

from conftest import poll, read_response


def get(srv, path):
    return requests.get(srv.url + path, timeout=10)


def test_live_and_ready(serve):
    srv = serve("hello:app", "--health-path", "/health")
    r = get(srv, "/health/live")
    assert (r.status_code, r.text) == (200, "live\n")
    assert r.headers["cache-control"] == "no-store"
    for path in ("/health/ready", "/health", "/health/"):
        r = get(srv, path)
        assert (r.status_code, r.text) == (200, "ready\n"), path
    assert requests.head(srv.url + "/health/ready", timeout=10).status_code == 200
    assert requests.post(srv.url + "/health/ready", timeout=10).status_code == 405
    assert get(srv, "/health/other").status_code == 404
    assert get(srv, "/").text == "Hello, World!"   # the app keeps every other path


def test_from_the_config_file(serve, tmp_path):
    conf = tmp_path / "t.toml"
    conf.write_text('[health]\npath = "/_h"\n\n[metrics]\npath = "/_m"\n')
    srv = serve("hello:app", "--config", str(conf))
    assert get(srv, "/_h/live").status_code == 200
    assert get(srv, "/_m").status_code == 200
    conf.write_text('[health]\npaht = "/_h"\n')
    bad = serve("hello:app", "--config", str(conf), expect_ready=False)
    assert bad.proc.wait(30) == 2
    assert "unknown setting 'paht' in [health]" in bad.log()


@pytest.mark.parametrize("flags, message", [
    (["--health-path", "health"], "must start with /"),
    (["--health-path", "/x", "--metrics-path", "/x"], "are both /x"),
    (["--drain-delay", "-1"], "--drain-delay"),
])
def test_bad_settings_are_one_line_and_exit_2(serve, flags, message):
    srv = serve("hello:app", *flags, expect_ready=False)
    assert srv.proc.wait(30) == 2
    assert message in srv.log().strip().splitlines()[-1]


def test_readiness_fails_as_soon_as_a_stop_begins_and_the_server_serves_through_the_delay(serve):
    srv = serve("hello:app", "--health-path", "/health", "--drain-delay", "3", "--graceful-timeout", "5")
    assert get(srv, "/health/ready").status_code == 200
    start = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert poll(lambda: get(srv, "/health/ready").status_code == 503, timeout=5)
    # Still serving, new connections included, and alive.
    assert get(srv, "/").status_code == 200
    assert get(srv, "/health/live").status_code == 200
    r = get(srv, "/health/ready")
    assert (r.status_code, r.text) == (503, "draining\n")
    assert time.monotonic() - start < 3
    # After the delay the drain: no new connections, and the process ends.
    assert srv.proc.wait(20) == 0
    assert time.monotonic() - start >= 3
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=1).close()


def test_without_a_delay_new_probes_are_refused_at_once(serve, tmp_path):
    # The listeners close as the drain begins: a load balancer's next probe
    # fails, while the request in flight finishes.
    flag = tmp_path / "go"
    srv = serve("admission_app:wsgi", "--health-path", "/health", "--graceful-timeout", "20",
                env={"HOLD_FLAG": str(flag)})
    holder = srv.connect()
    holder.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")   # keeps the drain going
    assert poll(lambda: "holding" in srv.log(), timeout=10)
    assert get(srv, "/health/ready").status_code == 200
    srv.proc.send_signal(signal.SIGTERM)

    def refused():
        try:
            socket.create_connection((srv.host, srv.port), timeout=1).close()
            return False
        except OSError:
            return True
    assert poll(refused, timeout=10)
    assert srv.proc.poll() is None   # still draining
    flag.write_text("go")
    assert read_response(holder)[0] == 200
    holder.close()
    assert srv.proc.wait(20) == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_answer_while_the_lifespan_startup_runs(serve, tmp_path):
    flag = tmp_path / "go"
    port = free_port()
    srv = serve("shutdown_cases:startup_waits", "--health-path", "/health", "--bind", "127.0.0.1:%d" % port,
                bind=False, env={"STARTUP_FLAG": str(flag)}, expect_ready=False)
    assert poll(lambda: "lifespan startup waiting" in srv.log(), timeout=20)
    with pytest.raises(OSError):   # not listening yet: a probe fails
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    flag.write_text("go")
    srv.wait_ready()
    r = get(srv, "/health/ready")
    assert (r.status_code, r.text) == (200, "ready\n")
