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


def test_rfc7239_forwarded(serve):
    srv = serve("wsgi_cases:app", "/a=asgi_scope_echo:app", "--forwarded-allow-ips", "127.0.0.1")
    hdr = {"Forwarded": 'for="[2001:db8::17]:4711";proto=https', "X-Forwarded-For": "9.9.9.9"}
    env = requests.get(srv.url + "/environ", headers=hdr, timeout=10).json()
    assert env["REMOTE_ADDR"] == "2001:db8::17" and env["REMOTE_PORT"] == "4711"
    assert env["wsgi.url_scheme"] == "https"
    scope = requests.get(srv.url + "/a/", headers=hdr, timeout=10).json()
    assert scope["client"] == ["2001:db8::17", 4711] and scope["scheme"] == "https"


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
