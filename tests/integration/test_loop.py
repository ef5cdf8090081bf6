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
