"""Several apps in one process: WSGI and ASGI side by side under prefixes."""
import threading
import time

import pytest
import requests

from conftest import run_trestle


def test_longest_prefix_on_segment_boundaries(serve):
    srv = serve("wsgi_cases:app", "/v2=asgi_ws:app", "/v2/deep=hello:app", "/h/=hello:app")
    # Root WSGI app: PATH_INFO is the whole path, SCRIPT_NAME empty.
    env = requests.get(srv.url + "/environ", timeout=10).json()
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/environ"
    assert requests.get(srv.url + "/v20", timeout=10).json()["path"] == "/v20"
    assert "disconnects" in requests.get(srv.url + "/v2", timeout=10).json()
    assert "disconnects" in requests.get(srv.url + "/v2/x", timeout=10).json()
    assert requests.get(srv.url + "/v2/deep/x", timeout=10).text == "Hello, World!"
    assert requests.get(srv.url + "/h/anything", timeout=10).text == "Hello, World!"


def test_script_name_and_root_path(serve):
    srv = serve("hello:app", "/w=wsgi_cases:app", "/a=asgi_scope_echo:app")
    env = requests.get(srv.url + "/w/environ?q=1", timeout=10).json()
    assert env["SCRIPT_NAME"] == "/w" and env["PATH_INFO"] == "/environ" and env["QUERY_STRING"] == "q=1"
    scope = requests.get(srv.url + "/a/some/path", timeout=10).json()
    # The ASGI spec's path is the whole path; root_path names the mount.
    assert scope["root_path"] == "/a" and scope["path"] == "/a/some/path" and scope["raw_path"] == "/a/some/path"


def test_flask_url_for_under_a_prefix(serve):
    srv = serve("hello:app", "/legacy=flask_app:app")
    r = requests.get(srv.url + "/legacy/redirect-url-for", allow_redirects=False, timeout=10)
    assert r.status_code in (301, 302, 303, 307, 308)
    assert r.headers["Location"].startswith("/legacy/json?")
    assert requests.get(srv.url + r.headers["Location"], timeout=10).status_code == 200


def test_loop_answers_while_every_pool_thread_sleeps(serve):
    srv = serve("wsgi_cases:app", "/a=asgi_ws:app", "--threads", "8")
    results = []

    def sleeper():
        results.append(requests.get(srv.url + "/sleep?2.0", timeout=30).status_code)
    threads = [threading.Thread(target=sleeper) for _ in range(8)]
    for t in threads:
        t.start()
    # Once every pool thread sleeps, a WSGI request can only queue.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(srv.url + "/hits", timeout=0.2)
        except requests.Timeout:
            break
    start = time.monotonic()
    for _ in range(20):
        assert requests.get(srv.url + "/a/", timeout=10).status_code == 200
    elapsed = time.monotonic() - start
    assert elapsed < 0.9, "ASGI requests waited for the pool: %.2fs" % elapsed
    assert results == []  # the WSGI sleepers were still running meanwhile
    for t in threads:
        t.join(30)
    assert results == [200] * 8


def test_bad_mount_specs_exit_2():
    for spec in ["v2=hello:app", "/v2=", "/v2", "/a=hello:app"]:
        args = ["hello:app", spec] + (["/a=hello:app"] if spec == "/a=hello:app" else [])
        r = run_trestle(*args)
        assert r.returncode == 2, (spec, r.stderr)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("trestle: error:"), r.stderr


def test_quart_routes_and_url_for_under_a_prefix(serve):
    srv = serve("hello:app", "/q=quart_app:app")
    assert requests.get(srv.url + "/q/user/bob", timeout=10).json() == {"name": "bob", "upper": "BOB"}
    urls = requests.get(srv.url + "/q/urls", headers={"Host": "example.test"}, timeout=10).json()
    assert urls["relative"] == "/q/user/ann"
    assert urls["external"] == "http://example.test/q/user/ann"
    assert requests.get(srv.url + "/user/bob", timeout=10).text == "Hello, World!"   # not Quart's


def test_flask_url_for_builds_prefixed_urls(serve):
    srv = serve("hello:app", "/legacy=flask_app:app")
    urls = requests.get(srv.url + "/legacy/urls", headers={"Host": "example.test"}, timeout=10).json()
    assert urls["relative"] == "/legacy/json?source=u"
    assert urls["external"] == "http://example.test/legacy/"


def test_starlette_routes_and_url_for_under_a_prefix(serve):
    # Debian's Starlette (0.26) reads path as the part after root_path.
    srv = serve("hello:app", "/s=starlette_app:app")
    r = requests.get(srv.url + "/s/", timeout=10)
    assert r.status_code == 200 and r.text == "Hello from Starlette on trestle"
    urls = requests.get(srv.url + "/s/urls", headers={"Host": "example.test"}, timeout=10).json()
    assert urls == {"external": "http://example.test/s/stream", "path": "/s/urls"}
