"""One decoded path for the router and every kind of mount (issue 10 items 15 and 3).

The path is percent-decoded once, in the core; mounts match on that decoded
path, and WSGI, ASGI (HTTP and WebSocket), static files and proxies see the
same one. `%2F` is a '/', an encoded NUL is 400 and so is a '..' segment,
however they are spelt. Mount prefixes are decoded paths too.
"""
import base64
import json
import os
import socket

import pytest

from conftest import read_response, run_trestle
from upstream_server import Upstream


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.stop()


@pytest.fixture
def site(serve, upstream, tmp_path):
    root = tmp_path / "files"
    root.mkdir()
    (root / "a.txt").write_bytes(b"static a\n")
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_bytes(b"static b\n")
    srv = serve("path_echo:wsgi_app", "/v2=path_echo:wsgi_app", "/as=path_echo:asgi_app",
                "/static=static:%s" % root, "/up=proxy:" + upstream.url("/base/"))
    return srv


def get(srv, target, extra=b""):
    s = srv.connect()
    try:
        s.sendall(b"GET " + target.encode("latin-1") + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"Connection: close\r\n\r\n")
        status, headers, body, _ = read_response(s)
    finally:
        s.close()
    return status, body


def get_json(srv, target):
    status, body = get(srv, target)
    assert status == 200, (target, status, body)
    return json.loads(body)


def ws_handshake(srv, target):
    """A WebSocket opening handshake; (status, the first text message or the body)."""
    s = srv.connect()
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + target.encode("latin-1") + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
    s.settimeout(10)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        if status != 101:
            return status, rest
        while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7F):
            data = s.recv(65536)
            assert data, "closed before the first message"
            rest += data
        assert rest[0] == 0x81 and rest[1] < 126, rest[:4]   # one small unmasked text frame
        return status, rest[2:2 + rest[1]]
    finally:
        s.close()


def hits(srv):
    return get_json(srv, "/v2/hits")


# ---- item 15: mounts match the decoded path the apps see ------------------------------------

def test_encoded_prefixes_reach_their_mount(site, upstream):
    got = get_json(site, "/%76%32/x")
    assert (got["script_name"], got["path_info"]) == ("/v2", "/x")
    got = get_json(site, "/%61s/x")
    assert (got["app"], got["root_path"], got["path"], got["raw_path"]) == ("asgi", "/as", "/as/x", "/%61s/x")
    assert get(site, "/%73tatic/a.txt") == (200, b"static a\n")
    assert get(site, "/static%2Fa.txt") == (200, b"static a\n")
    assert get(site, "/static/sub%2Fb.txt") == (200, b"static b\n")
    got = get_json(site, "/%75p/plain")
    assert got["target"] == "/base/plain"
    assert upstream.last().target == "/base/plain"


def test_an_encoded_slash_is_a_slash_for_the_router_and_the_apps(site, upstream):
    got = get_json(site, "/v2%2Fx%2Fy")
    assert (got["script_name"], got["path_info"], got["raw_uri"]) == ("/v2", "/x/y", "/v2%2Fx%2Fy")
    got = get_json(site, "/elsewhere%2Fz")
    assert (got["script_name"], got["path_info"]) == ("", "/elsewhere/z")
    got = get_json(site, "/as%2Fq")
    assert (got["root_path"], got["path"]) == ("/as", "/as/q")
    # The upstream gets the rest of the path as the client wrote it.
    assert get_json(site, "/up%2Fa%2Fb?q=1")["target"] == "/base/a%2Fb?q=1"


def test_empty_and_dot_segments_do_not_hide_a_prefix(site):
    for target in ("//v2/x", "/./v2/x", "/%2e/v2/x", "/%2F/v2/x"):
        got = get_json(site, target)
        assert (got["script_name"], got["path_info"]) == ("/v2", "/x"), target
    assert get(site, "//static/a.txt") == (200, b"static a\n")
    got = get_json(site, "//as//x")
    assert (got["root_path"], got["path"]) == ("/as", "/as//x")


def test_dot_dot_segments_are_400_for_every_mount(site, upstream):
    before = hits(site)
    for target in ("/v2/../x", "/as/%2e%2e/x", "/static/..%2Fa.txt", "/static/%2E%2e/a.txt",
                   "/up/a%2F..%2F..%2Fadmin", "/up/%2e%2e/admin", "/x/.%2e/v2", "/.."):
        status, _ = get(site, target)
        assert status == 400, target
    assert ws_handshake(site, "/as/x/%2e%2e/y")[0] == 400
    assert upstream.requests == []
    after = hits(site)
    assert (after["wsgi"] - before["wsgi"], after["asgi"] - before["asgi"]) == (1, 0)   # only the /hits itself


def test_decoded_prefixes_and_non_ascii_ones(serve):
    srv = serve("path_echo:wsgi_app", "/my%20app=path_echo:wsgi_app", "/caf\u00e9=path_echo:asgi_app")
    got = get_json(srv, "/my%20app/x")
    assert (got["script_name"], got["path_info"]) == ("/my app", "/x")
    got = get_json(srv, "/caf%C3%A9/x%20y")
    assert (got["root_path"], got["path"]) == ("/caf\u00e9", "/caf\u00e9/x y")
    # WSGI native strings are the bytes as latin-1 (PEP 3333).
    srv2 = serve("path_echo:wsgi_app", "/caf\u00e9=path_echo:wsgi_app")
    got = get_json(srv2, "/caf%c3%a9/x")
    assert got["script_name"] == "/caf\u00e9".encode().decode("latin-1") and got["path_info"] == "/x"


def test_prefixes_that_cannot_be_a_decoded_path_exit_2(tmp_path):
    for prefix in ("/a%00b", "/a/../b", "/a/%2e%2e", "/a%2F.."):
        r = run_trestle("hello:app", prefix + "=hello:app")
        assert r.returncode == 2, (prefix, r.stderr)
        assert r.stderr.startswith("trestle: error:"), r.stderr
    conf = tmp_path / "t.toml"
    conf.write_text('[[mount]]\nprefix = "/x%00"\napp = "hello:app"\n')
    r = run_trestle("hello:app", "--config", str(conf))
    assert r.returncode == 2 and "prefix" in r.stderr, r.stderr


# ---- item 3: an encoded NUL is 400 everywhere ---------------------------------------------------

@pytest.mark.parametrize("target", ["/secret.txt%00.png", "/v2/secret.txt%00.png", "/as/secret.txt%00.png",
                                    "/static/a.txt%00.png", "/up/secret.txt%00.png", "/v%002/x"])
def test_an_encoded_nul_is_400(site, upstream, target):
    before = hits(site)
    status, _ = get(site, target)
    assert status == 400
    after = hits(site)
    assert (after["wsgi"] - before["wsgi"], after["asgi"] - before["asgi"]) == (1, 0)
    assert upstream.requests == []


def test_an_encoded_nul_in_a_websocket_path_is_400(site):
    assert ws_handshake(site, "/as/ok")[0] == 101
    status, _ = ws_handshake(site, "/as/secret%00.png")
    assert status == 400
    status, msg = ws_handshake(site, "/%61s/ws%2Fx")
    assert status == 101
    got = json.loads(msg)
    assert (got["type"], got["root_path"], got["path"], got["raw_path"]) == ("websocket", "/as", "/as/ws/x", "/%61s/ws%2Fx")
