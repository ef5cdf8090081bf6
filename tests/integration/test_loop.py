"""The server-owned loop: its kind, trestle.loop(), and the pool as executor."""
import pytest
import requests


@pytest.mark.parametrize("kind,module", [("asyncio", "asyncio"), ("uvloop", "uvloop"), ("auto", "uvloop")])
def test_loop_kind_and_default_executor(serve, kind, module):
    srv = serve("asgi_loop_info:app", "--loop", kind)
    info = requests.get(srv.url + "/", timeout=10).json()
    assert info["loop_type"].startswith(module)
    assert info["trestle_loop_is_running_loop"] is True
    # run_in_executor(None, ...) ran on a Trestle pool thread (CPython calls
    # threads it did not start Dummy-N), not a ThreadPoolExecutor thread.
    assert info["executor_thread"].startswith("Dummy-"), info
    assert info["executor_thread"] != info["loop_thread"]


# --- a blocked loop (issue 10, item 16) ----------------------------------------------------------

import re  # noqa: E402
import textwrap  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from conftest import poll, run_trestle  # noqa: E402


def test_a_callback_that_blocks_the_loop_is_logged_with_its_stack(serve):
    srv = serve("flask_loop_block:app", "/a=flask_loop_block:asgi_app", "--loop-block-warn", "0.3")
    assert requests.get(srv.url + "/block/1.2", timeout=10).text == "slept"
    log = srv.wait_log(r"the event loop ran again after", timeout=5)
    m = re.search(r"\[WARNING\] the event loop has been blocked for [0-9.]+ s \(--loop-block-warn 0.3\)", log)
    assert m, log
    stack = log[m.end():]
    assert "blocking_view_7f3a" in stack, log   # the offending function, by name
    assert "time.sleep(seconds)" in stack, log
    assert "blocked 1 time(s) so far" in log, log
    # One stall, one warning, not one per watchdog tick.
    assert log.count("the event loop has been blocked for") == 1, log


def test_the_watchdog_stays_quiet_on_a_healthy_loop_and_can_be_turned_off(serve):
    srv = serve("flask_loop_block:app", "--loop-block-warn", "0")
    assert requests.get(srv.url + "/block/0.6", timeout=10).text == "slept"
    srv2 = serve("flask_loop_block:app", "/a=flask_loop_block:asgi_app")
    for _ in range(20):
        assert requests.get(srv2.url + "/a/", timeout=10).status_code == 200
    time.sleep(0.8)   # several watchdog periods with the loop idle; nothing may be reported
    assert "blocked" not in srv.log() + srv2.log()


def test_flask_loop_own_keeps_a_blocking_view_off_the_shared_loop(serve, tmp_path):
    cfg = tmp_path / "trestle.toml"
    cfg.write_text(textwrap.dedent("""
        [[mount]]
        prefix = "/"
        app = "flask_loop_block:app"
        flask_loop = "own"

        [[mount]]
        prefix = "/a"
        app = "flask_loop_block:asgi_app"
    """))
    srv = serve("--config=" + str(cfg))
    assert "flask_loop_block:app: Flask async views run on an event loop of their own" in srv.log()
    where = requests.get(srv.url + "/where", timeout=10).json()
    assert where["shared_loop"] is False
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", requests.get(srv.url + "/block/3.0", timeout=10)))
    th.start()
    assert poll(lambda: requests.get(srv.url + "/a/", timeout=5).text == "blocking", timeout=5)
    start = time.monotonic()
    assert requests.get(srv.url + "/a/", timeout=5).text == "blocking"   # answered while the view sleeps
    assert time.monotonic() - start < 1.0
    th.join(10)
    assert out["r"].text == "slept"
    # The watchdog names the app's own loop, and the shared loop never stalled.
    log = srv.wait_log(r"the event loop of flask_loop_block:app ran again after", timeout=5)
    assert "the event loop of flask_loop_block:app has been blocked for" in log
    assert "the event loop has been blocked" not in log


def test_flask_loop_is_checked_in_the_config_file(tmp_path):
    cfg = tmp_path / "trestle.toml"
    cfg.write_text('[[mount]]\nprefix = "/"\napp = "flask_loop_block:app"\nflask_loop = "private"\n')
    r = run_trestle("--config=" + str(cfg))
    assert r.returncode == 2
    assert 'trestle.toml:4: flask_loop must be "shared" or "own"' in r.stderr, r.stderr
