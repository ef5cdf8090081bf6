"""--forwarded-allow-ips: proxy headers believed only from trusted peers."""
import pytest
import requests

from conftest import run_trestle

SPOOF = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


def test_ignored_without_the_flag(serve):
    srv = serve("wsgi_cases:app", "/a=asgi_scope_echo:app")
    env = requests.get(srv.url + "/environ", headers=SPOOF, timeout=10).json()
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"
    assert "HTTPS" not in env
    scope = requests.get(srv.url + "/a/", headers=SPOOF, timeout=10).json()
    assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"


def test_ignored_from_an_untrusted_peer(serve):
    srv = serve("wsgi_cases:app", "/a=asgi_scope_echo:app", "--forwarded-allow-ips", "10.0.0.0/8,192.0.2.1")
    env = requests.get(srv.url + "/environ", headers=SPOOF, timeout=10).json()
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"
    scope = requests.get(srv.url + "/a/", headers=SPOOF, timeout=10).json()
    assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"


@pytest.mark.parametrize("allow", ["127.0.0.1", "127.0.0.0/8", "*"])
def test_applied_from_a_trusted_peer(serve, allow):
    srv = serve("wsgi_cases:app", "/a=asgi_scope_echo:app", "--forwarded-allow-ips", allow)
    env = requests.get(srv.url + "/environ", headers=SPOOF, timeout=10).json()
    assert env["REMOTE_ADDR"] == "203.0.113.7" and env["REMOTE_PORT"] == "0"
    assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
    scope = requests.get(srv.url + "/a/", headers=SPOOF, timeout=10).json()
    assert scope["client"] == ["203.0.113.7", 0] and scope["scheme"] == "https"
    # The next request on another connection without the headers is plain again.
    env = requests.get(srv.url + "/environ", timeout=10).json()
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"


def test_the_client_is_the_rightmost_untrusted_hop(serve):
    srv = serve("wsgi_cases:app", "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8")
    hdr = {"X-Forwarded-For": "6.6.6.6, 198.51.100.2, 10.1.2.3"}
    env = requests.get(srv.url + "/environ", headers=hdr, timeout=10).json()
    assert env["REMOTE_ADDR"] == "198.51.100.2"


def test_rfc7239_forwarded_when_chosen(serve):
    srv = serve("wsgi_cases:app", "/a=asgi_scope_echo:app", "--forwarded-allow-ips", "127.0.0.1",
                "--forwarded-headers", "forwarded")
    hdr = {"Forwarded": 'for="[2001:db8::17]:4711";proto=https', "X-Forwarded-For": "9.9.9.9"}
    env = requests.get(srv.url + "/environ", headers=hdr, timeout=10).json()
    assert env["REMOTE_ADDR"] == "2001:db8::17" and env["REMOTE_PORT"] == "4711"
    assert env["wsgi.url_scheme"] == "https"
    scope = requests.get(srv.url + "/a/", headers=hdr, timeout=10).json()
    assert scope["client"] == ["2001:db8::17", 4711] and scope["scheme"] == "https"
    # X-Forwarded-* is not read in this mode: a proxy that writes Forwarded
    # passes a client's X-Forwarded-For on untouched.
    env = requests.get(srv.url + "/environ", headers=SPOOF, timeout=10).json()
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"


# Issue 10 item 2: nginx appends to X-Forwarded-For, replaces
# X-Forwarded-Proto with $scheme, and passes a client's Forwarded on as it is.
def test_a_clients_forwarded_does_not_beat_the_proxys_x_forwarded(serve):
    srv = serve("wsgi_cases:app", "/a=asgi_scope_echo:app", "--forwarded-allow-ips", "127.0.0.1")
    hdr = {"Forwarded": "for=6.6.6.6;proto=https", "X-Forwarded-For": "6.6.6.6, 198.51.100.2",
           "X-Forwarded-Proto": "http"}
    env = requests.get(srv.url + "/environ", headers=hdr, timeout=10).json()
    assert env["REMOTE_ADDR"] == "198.51.100.2" and env["wsgi.url_scheme"] == "http"
    scope = requests.get(srv.url + "/a/", headers=hdr, timeout=10).json()
    assert scope["client"][0] == "198.51.100.2" and scope["scheme"] == "http"


def test_a_proto_list_of_another_length_gives_only_the_rightmost(serve):
    srv = serve("wsgi_cases:app", "--forwarded-allow-ips", "127.0.0.1")
    # The client sent "https"; the proxy appended the "http" it saw.
    hdr = {"X-Forwarded-For": "198.51.100.2", "X-Forwarded-Proto": "https, http"}
    env = requests.get(srv.url + "/environ", headers=hdr, timeout=10).json()
    assert env["REMOTE_ADDR"] == "198.51.100.2" and env["wsgi.url_scheme"] == "http"


def test_a_proxy_mount_passes_on_the_trusted_family_only(serve):
    from upstream_server import Upstream
    up = Upstream()
    try:
        srv = serve("proxy:" + up.url(), "--forwarded-allow-ips", "127.0.0.1")
        requests.get(srv.url + "/echo", headers={"Forwarded": "for=6.6.6.6;proto=https",
                                                 "X-Forwarded-For": "198.51.100.2"}, timeout=10)
        got = up.last()
        assert got.header("X-Forwarded-For") == "198.51.100.2, 127.0.0.1"
        assert "6.6.6.6" not in got.header("Forwarded")
        assert got.header("Forwarded").startswith("for=198.51.100.2;proto=http, for=127.0.0.1;proto=http")
    finally:
        up.stop()


def test_bad_forwarded_headers_value_exits_2():
    r = run_trestle("hello:app", "--forwarded-headers", "both")
    assert r.returncode == 2 and "forwarded-headers" in r.stderr, r.stderr


def test_url_for_builds_https_urls_behind_a_trusted_proxy(serve):
    srv = serve("flask_app:app", "/q=quart_app:app", "--forwarded-allow-ips", "127.0.0.1")
    hdr = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https", "Host": "shop.example"}
    flask = requests.get(srv.url + "/urls", headers=hdr, timeout=10).json()
    assert flask["external"] == "https://shop.example/" and flask["remote_addr"] == "198.51.100.9"
    quart = requests.get(srv.url + "/q/urls", headers=hdr, timeout=10).json()
    assert quart["external"] == "https://shop.example/q/user/ann" and quart["remote_addr"] == "198.51.100.9"
    assert quart["scheme"] == "https"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "example.com", "1.2.3", ""])
def test_bad_entries_exit_2(bad):
    r = run_trestle("hello:app", "--forwarded-allow-ips", bad, "--bind", "127.0.0.1:0")
    assert r.returncode == 2, r
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--forwarded-allow-ips" in lines[0], r.stderr
