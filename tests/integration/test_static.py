"""Static-file mounts: answered by the io threads from a directory, nginx-style.

Requests go over raw sockets so that nothing normalizes the paths or decodes
the bodies on the way.
"""
import email.utils
import gzip
import os
import shutil
import socket
import textwrap

import pytest

import conftest
from conftest import APPS, BIN, SANITIZER_MARKERS, Server, read_head, rss_kb, run_trestle, server_env

SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"
HELLO = b"hello from a static file\n"
RANGE_BODY = bytes(range(256)) * 40          # 10240 bytes, every offset recognizable
BR_BODY = b"pretend this is brotli"
GZ_BODY = gzip.compress(b"compressed text\n" * 10, mtime=0)


# ---- the site ---------------------------------------------------------------

def build_site(base):
    """base/secret.txt lies outside the root base/public."""
    (base / "secret.txt").write_bytes(SECRET)
    (base / "outside").mkdir()
    (base / "outside" / "secret.txt").write_bytes(SECRET)
    pub = base / "public"
    pub.mkdir()
    (pub / "hello.txt").write_bytes(HELLO)
    (pub / "range.bin").write_bytes(RANGE_BODY)
    (pub / "empty.txt").write_bytes(b"")
    (pub / ".hidden").write_bytes(b"dotfile\n")
    for name in ["style.css", "app.js", "data.json", "logo.svg", "pic.png", "photo.JPG", "font.woff2",
                 "mod.wasm", "blob.unknownext", "noext"]:
        (pub / name).write_bytes(b"x")
    (pub / "dir").mkdir()
    (pub / "dir" / "index.html").write_bytes(b"<h1>dir index</h1>\n")
    (pub / "dir" / "page.html").write_bytes(b"<p>page</p>\n")
    (pub / "dir" / "sp ace").mkdir()
    (pub / "dir" / "sp ace" / "index.html").write_bytes(b"space index\n")
    (pub / "noindex").mkdir()
    (pub / "noindex" / "file.txt").write_bytes(b"f\n")
    (pub / "comp.txt").write_bytes(b"plain text, uncompressed\n")
    (pub / "comp.txt.br").write_bytes(BR_BODY)
    (pub / "comp.txt.gz").write_bytes(GZ_BODY)
    (pub / "onlygz.css").write_bytes(b"body{}\n")
    (pub / "onlygz.css.gz").write_bytes(GZ_BODY)
    (pub / "in_link").symlink_to("hello.txt")
    (pub / "in_dir_link").symlink_to("dir")
    (pub / "out_link").symlink_to("../secret.txt")
    (pub / "abs_link").symlink_to(base / "secret.txt")
    (pub / "dir_out").symlink_to("../outside")
    (pub / "locked.txt").write_bytes(b"locked\n")
    os.chmod(pub / "locked.txt", 0)
    os.mkfifo(pub / "fifo")
    return pub


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(tmp_path_factory.mktemp("site"))


def start(*args, cwd=APPS):
    return Server(list(args) + ["--bind", "127.0.0.1:0"], cwd, server_env())


def stop(s):
    """Stops a server started by start(); a sanitizer report in its log fails the test (as serve() does)."""
    s.stop()
    log = s.log()
    os.unlink(s.log_path)
    assert not any(marker in log for marker in SANITIZER_MARKERS), log[-6000:]


@pytest.fixture(scope="module")
def srv(site):
    """A Python app at the root and the static mount at /static."""
    s = start("hello:app", "/static=static:" + str(site))
    yield s
    stop(s)


@pytest.fixture(scope="module")
def root_srv(site):
    """The static mount as the root: every path reaches it."""
    s = start("static:" + str(site))
    yield s
    stop(s)


def write_config(tmp_path, site, **mount):
    lines = ['[[mount]]', 'prefix = "/"', 'app = "hello:app"', '', '[[mount]]', 'prefix = "/static"',
             'static = "%s"' % site]
    for k, v in mount.items():
        lines.append("%s = %s" % (k, "true" if v is True else "false" if v is False else '"%s"' % v))
    path = tmp_path / "trestle.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# ---- raw HTTP -----------------------------------------------------------------

def send(sock, method, target, headers=()):
    if isinstance(target, str):
        target = target.encode("latin-1")
    req = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: test\r\n"
    for k, v in headers:
        req += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    sock.sendall(req + b"\r\n")


def receive(sock, method="GET", buf=b""):
    """One response: (status, {lower name: value}, body, rest). HEAD and 304 carry no body."""
    status, fields, rest = read_head(sock, buf)
    headers = {}
    for k, v in fields:
        assert k.lower() not in headers, "repeated field %s" % k
        headers[k.lower()] = v
    if method == "HEAD" or status == 304:
        return status, headers, b"", rest
    n = int(headers["content-length"])
    while len(rest) < n:
        data = sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed mid-body")
        rest += data
    return status, headers, rest[:n], rest[n:]


def fetch(server, target, headers=(), method="GET"):
    with server.connect() as s:
        send(s, method, target, headers)
        status, h, body, rest = receive(s, method)
        assert rest == b""
        return status, h, body


def expected_etag(path, variant=""):
    st = os.stat(path)
    tag = "%x.%x-%x-%x" % (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9, st.st_size, st.st_ino)
    return '"%s"' % (tag + ("-" + variant if variant else ""))


def http_date(path):
    return email.utils.formatdate(int(os.stat(path).st_mtime), usegmt=True)


# ---- plain GET and HEAD -------------------------------------------------------

def test_get_a_file(srv, site):
    status, h, body = fetch(srv, "/static/hello.txt")
    assert status == 200 and body == HELLO
    assert h["content-type"] == "text/plain; charset=utf-8"
    assert h["content-length"] == str(len(HELLO))
    assert h["accept-ranges"] == "bytes"
    assert h["etag"] == expected_etag(site / "hello.txt")
    assert h["last-modified"] == http_date(site / "hello.txt")
    assert "vary" not in h and "cache-control" not in h and "content-encoding" not in h
    assert "connection" not in h   # keep-alive


def test_head_has_the_get_fields_and_no_body(srv):
    _, get_h, _ = fetch(srv, "/static/hello.txt")
    with srv.connect() as s:
        # HEAD then GET on one connection: a stray body would corrupt the second.
        send(s, "HEAD", "/static/hello.txt")
        send(s, "GET", "/static/dir/page.html")
        status, h, body, rest = receive(s, "HEAD")
        assert status == 200 and body == b""
        for k in ("content-type", "content-length", "etag", "last-modified", "accept-ranges"):
            assert h[k] == get_h[k], k
        status, h, body, rest = receive(s, "GET", rest)
        assert status == 200 and body == b"<p>page</p>\n" and rest == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_are_405(srv, method):
    with srv.connect() as s:
        send(s, method, "/static/hello.txt", [("Content-Length", "3")])
        s.sendall(b"abc")
        status, h, body, rest = receive(s)
        assert status == 405 and h["allow"] == "GET, HEAD"
        # The connection survives it.
        send(s, "GET", "/static/hello.txt")
        assert receive(s, buf=rest)[:3:2] == (200, HELLO)


def test_missing_is_404_and_fifo_is_not_served(srv):
    assert fetch(srv, "/static/nope.txt")[0] == 404
    assert fetch(srv, "/static/dir/nope/deeper")[0] == 404
    assert fetch(srv, "/static/hello.txt/x")[0] == 404   # a file used as a directory
    assert fetch(srv, "/static/hello.txt/")[0] == 404
    assert fetch(srv, "/static/fifo")[0] == 404          # and the server did not hang on it
    assert fetch(srv, "/static/hello.txt")[0] == 200


def test_dotfiles_are_served(srv):
    status, h, body = fetch(srv, "/static/.hidden")
    assert status == 200 and body == b"dotfile\n" and h["content-type"] == "application/octet-stream"


def test_empty_file(srv):
    status, h, body = fetch(srv, "/static/empty.txt")
    assert status == 200 and body == b"" and h["content-length"] == "0"


@pytest.mark.parametrize("name,ctype", [
    ("hello.txt", "text/plain; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("data.json", "application/json"),
    ("logo.svg", "image/svg+xml"),
    ("pic.png", "image/png"),
    ("photo.JPG", "image/jpeg"),
    ("font.woff2", "font/woff2"),
    ("mod.wasm", "application/wasm"),
    ("dir/page.html", "text/html; charset=utf-8"),
    ("blob.unknownext", "application/octet-stream"),
    ("noext", "application/octet-stream"),
])
def test_content_type_by_extension(srv, name, ctype):
    status, h, _ = fetch(srv, "/static/" + name)
    assert status == 200 and h["content-type"] == ctype


def test_unreadable_file_is_403(serve, site, tmp_path, monkeypatch):
    if os.geteuid() == 0:
        # Root reads anything; drop the capabilities that let it, for trestle only.
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("running as root without setpriv")
        wrapper = tmp_path / "trestle-no-dac"
        wrapper.write_text("#!/bin/sh\nexec %s --bounding-set=-dac_override,-dac_read_search -- %s \"$@\"\n"
                           % (setpriv, BIN))
        wrapper.chmod(0o755)
        monkeypatch.setattr(conftest, "BIN", str(wrapper))
    s = serve("hello:app", "/static=static:" + str(site))
    status, _, body = fetch(s, "/static/locked.txt")
    assert status == 403 and b"locked" not in body
    assert fetch(s, "/static/hello.txt")[0] == 200


# ---- directories ----------------------------------------------------------------

def test_directory_without_slash_redirects(srv):
    status, h, _ = fetch(srv, "/static/dir")
    assert status == 301 and h["location"] == "/static/dir/"
    status, h, _ = fetch(srv, "/static/dir?a=1&b=%20")
    assert status == 301 and h["location"] == "/static/dir/?a=1&b=%20"
    status, h, _ = fetch(srv, "/static")
    assert status == 301 and h["location"] == "/static/"
    # The Location is rebuilt from the decoded path, re-encoded.
    status, h, _ = fetch(srv, "/static//dir/./sp%20ace")
    assert status == 301 and h["location"] == "/static/dir/sp%20ace/"


def test_directory_with_slash_serves_the_index(srv):
    status, h, body = fetch(srv, "/static/dir/")
    assert status == 200 and body == b"<h1>dir index</h1>\n"
    assert h["content-type"] == "text/html; charset=utf-8"
    assert fetch(srv, "/static/dir/sp%20ace/")[2] == b"space index\n"
    assert fetch(srv, "/static/in_dir_link/")[2] == b"<h1>dir index</h1>\n"


def test_no_index_no_listing(srv):
    status, _, body = fetch(srv, "/static/noindex/")
    assert status == 404 and b"file.txt" not in body
    assert fetch(srv, "/static/")[0] == 404   # the root has no index.html either


def test_root_mount_redirect_cannot_become_protocol_relative(root_srv):
    # "//dir" would be a protocol-relative URL if echoed back.
    status, h, _ = fetch(root_srv, "//dir")
    assert status == 301 and h["location"] == "/dir/"


def test_index_and_cache_control_from_the_config(serve, site, tmp_path):
    cfg = write_config(tmp_path, site, index="page.html", cache_control="public, max-age=3600")
    s = serve("--config=" + cfg)
    status, h, body = fetch(s, "/static/dir/")
    assert status == 200 and body == b"<p>page</p>\n"
    assert h["cache-control"] == "public, max-age=3600"
    etag = h["etag"]
    status, h, _ = fetch(s, "/static/dir/page.html", [("If-None-Match", etag)])
    assert status == 304 and h["cache-control"] == "public, max-age=3600"


def test_empty_index_means_none(serve, site, tmp_path):
    s = serve("--config=" + write_config(tmp_path, site, index=""))
    assert fetch(s, "/static/dir/")[0] == 404
    assert fetch(s, "/static/dir/index.html")[0] == 200


# ---- traversal ------------------------------------------------------------------

TRICKY = [
    "/../secret.txt",
    "/../../secret.txt",
    "/..",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/%2e./secret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/dir/..%2f..%2fsecret.txt",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/..%5Csecret.txt",
    "/%5c..%5csecret.txt",
    "/%2e%2e%5csecret.txt",
    "/dir/../../secret.txt",
    "/dir/%2e%2e/%2e%2e/secret.txt",
    "//../secret.txt",
    "/./../secret.txt",
    "/dir/./../../secret.txt",
    "/%252e%252e/secret.txt",
    "/..%252fsecret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/%c0%af..%c0%afsecret.txt",
    "/..%c0%afsecret.txt",
    "/..%c1%9csecret.txt",
    "/%e0%80%ae%e0%80%ae/secret.txt",
    "/%f0%80%80%ae%f0%80%80%ae/secret.txt",
    "/..%00/secret.txt",
    "/hello.txt%00.png",
    "/%00",
    "/%%32%65%%32%65/secret.txt",
    "/%2/secret.txt",
    "/..%u2216secret.txt",
    "/..;/secret.txt",
    "/.../secret.txt",
    "/out_link",
    "/abs_link",
    "/dir_out/secret.txt",
    "/in_dir_link/../../secret.txt",
    "http://test/../secret.txt",
]


@pytest.mark.parametrize("tricky", TRICKY)
@pytest.mark.parametrize("mount", ["root", "prefix"])
def test_traversal_never_leaves_the_root(srv, root_srv, mount, tricky):
    server, target = (root_srv, tricky) if mount == "root" else (srv, "/static" + tricky)
    if tricky.startswith("http://"):
        target = tricky if mount == "root" else "http://test/static" + tricky[len("http://test"):]
    with server.connect() as s:
        send(s, "GET", target)
        data = s.recv(65536)
        while b"\r\n\r\n" not in data:
            more = s.recv(65536)
            if not more:
                break
            data += more
    assert data.startswith(b"HTTP/1.1 400 ") or data.startswith(b"HTTP/1.1 404 "), data[:200]
    assert SECRET not in data


def test_the_traversal_probe_can_see_a_leak(site, tmp_path):
    # The same request shapes do reach the secret where it is meant to be
    # served, so the checks above would notice a leak.
    s = start("static:" + str(site.parent))
    try:
        status, _, body = fetch(s, "/secret.txt")
        assert status == 200 and body == SECRET
        status, _, body = fetch(s, "/public/../secret.txt")
        assert status == 400 and SECRET not in body
    finally:
        stop(s)


# ---- symlinks -------------------------------------------------------------------

def test_symlinks_inside_the_root_work(srv):
    assert fetch(srv, "/static/in_link")[2] == HELLO
    assert fetch(srv, "/static/in_dir_link/page.html")[2] == b"<p>page</p>\n"


def test_symlinks_out_of_the_root_are_refused_by_default(srv):
    for target in ["/static/out_link", "/static/abs_link", "/static/dir_out/secret.txt"]:
        status, _, body = fetch(srv, target)
        assert status == 404 and SECRET not in body, target


def test_follow_symlinks_lets_them_out(serve, site, tmp_path):
    s = serve("--config=" + write_config(tmp_path, site, follow_symlinks=True))
    for target in ["/static/out_link", "/static/abs_link", "/static/dir_out/secret.txt"]:
        status, _, body = fetch(s, target)
        assert status == 200 and body == SECRET, target
    # Still no ".." in the request path.
    assert fetch(s, "/static/../secret.txt")[0] == 400


# ---- conditional requests --------------------------------------------------------

def test_if_none_match(srv, site):
    _, h, _ = fetch(srv, "/static/hello.txt")
    etag, lm = h["etag"], h["last-modified"]
    for inm in [etag, "W/" + etag, '"nope", ' + etag, "*", '"a",W/"b" ,  ' + etag]:
        for method in ("GET", "HEAD"):
            status, h304, body = fetch(srv, "/static/hello.txt", [("If-None-Match", inm)], method)
            assert status == 304 and body == b"", (inm, method)
            assert h304["etag"] == etag and h304["last-modified"] == lm
            assert "content-length" not in h304 and "content-type" not in h304
    assert fetch(srv, "/static/hello.txt", [("If-None-Match", '"nope"')])[0] == 200
    # Split over two fields.
    with srv.connect() as s:
        send(s, "GET", "/static/hello.txt", [("If-None-Match", '"x"'), ("If-None-Match", etag)])
        assert receive(s)[0] == 304


def test_if_modified_since(srv, site):
    lm = http_date(site / "hello.txt")
    mtime = int(os.stat(site / "hello.txt").st_mtime)
    assert fetch(srv, "/static/hello.txt", [("If-Modified-Since", lm)])[0] == 304
    later = email.utils.formatdate(mtime + 86400, usegmt=True)
    assert fetch(srv, "/static/hello.txt", [("If-Modified-Since", later)])[0] == 304
    earlier = email.utils.formatdate(mtime - 1, usegmt=True)
    assert fetch(srv, "/static/hello.txt", [("If-Modified-Since", earlier)])[0] == 200
    assert fetch(srv, "/static/hello.txt", [("If-Modified-Since", "not a date")])[0] == 200
    # With If-None-Match present, the date is not looked at.
    assert fetch(srv, "/static/hello.txt", [("If-Modified-Since", lm), ("If-None-Match", '"other"')])[0] == 200


def test_if_match_and_if_unmodified_since(srv, site):
    _, h, _ = fetch(srv, "/static/hello.txt")
    assert fetch(srv, "/static/hello.txt", [("If-Match", h["etag"])])[0] == 200
    assert fetch(srv, "/static/hello.txt", [("If-Match", '"other"')])[0] == 412
    assert fetch(srv, "/static/hello.txt", [("If-Match", "W/" + h["etag"])])[0] == 412
    mtime = int(os.stat(site / "hello.txt").st_mtime)
    old = email.utils.formatdate(mtime - 10, usegmt=True)
    assert fetch(srv, "/static/hello.txt", [("If-Unmodified-Since", old)])[0] == 412
    assert fetch(srv, "/static/hello.txt", [("If-Unmodified-Since", h["last-modified"])])[0] == 200


def test_etag_follows_the_file(serve, tmp_path):
    root = tmp_path / "pub"
    root.mkdir()
    f = root / "f.txt"
    f.write_bytes(b"one")
    s = serve("hello:app", "/s=static:" + str(root))
    etag1 = fetch(s, "/s/f.txt")[1]["etag"]
    f.write_bytes(b"two")                           # same size, new mtime
    os.utime(f, ns=(os.stat(f).st_atime_ns, os.stat(f).st_mtime_ns + 1))
    status, h, body = fetch(s, "/s/f.txt", [("If-None-Match", etag1)])
    assert status == 200 and body == b"two" and h["etag"] != etag1


# ---- ranges ----------------------------------------------------------------------

SIZE = len(RANGE_BODY)


@pytest.mark.parametrize("spec,first,last", [
    ("bytes=0-9", 0, 9),
    ("bytes=100-199", 100, 199),
    ("bytes=10000-", 10000, SIZE - 1),
    ("bytes=-16", SIZE - 16, SIZE - 1),
    ("bytes=-999999", 0, SIZE - 1),
    ("bytes=5000-999999", 5000, SIZE - 1),
    ("bytes=0-9,10-19", 0, 19),                     # touching ranges merge
])
def test_single_range(srv, spec, first, last):
    status, h, body = fetch(srv, "/static/range.bin", [("Range", spec)])
    assert status == 206
    assert h["content-range"] == "bytes %d-%d/%d" % (first, last, SIZE)
    assert body == RANGE_BODY[first:last + 1] and h["content-length"] == str(last - first + 1)
    assert h["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("spec", ["bytes=%d-" % SIZE, "bytes=%d-%d" % (SIZE + 5, SIZE + 10), "bytes=-0"])
def test_unsatisfiable_range_is_416(srv, spec):
    status, h, _ = fetch(srv, "/static/range.bin", [("Range", spec)])
    assert status == 416 and h["content-range"] == "bytes */%d" % SIZE


@pytest.mark.parametrize("spec", ["bytes=0-9,100-109", "bytes=5-2", "bytes=abc", "items=0-9", "bytes=0-9;x"])
def test_multiple_or_invalid_ranges_get_the_whole_file(srv, spec):
    status, h, body = fetch(srv, "/static/range.bin", [("Range", spec)])
    assert status == 200 and body == RANGE_BODY and "content-range" not in h


def test_if_range(srv, site):
    _, h, _ = fetch(srv, "/static/range.bin")
    etag, lm = h["etag"], h["last-modified"]
    assert fetch(srv, "/static/range.bin", [("Range", "bytes=0-3"), ("If-Range", etag)])[0] == 206
    assert fetch(srv, "/static/range.bin", [("Range", "bytes=0-3"), ("If-Range", lm)])[0] == 206
    for stale in ['"stale"', "W/" + etag, email.utils.formatdate(0, usegmt=True)]:
        status, _, body = fetch(srv, "/static/range.bin", [("Range", "bytes=0-3"), ("If-Range", stale)])
        assert status == 200 and body == RANGE_BODY, stale


def test_head_with_range(srv):
    status, h, body = fetch(srv, "/static/range.bin", [("Range", "bytes=10-19")], "HEAD")
    assert status == 206 and body == b"" and h["content-range"] == "bytes 10-19/%d" % SIZE
    assert h["content-length"] == "10"


def test_conditional_beats_range(srv):
    _, h, _ = fetch(srv, "/static/range.bin")
    status, _, body = fetch(srv, "/static/range.bin", [("Range", "bytes=0-3"), ("If-None-Match", h["etag"])])
    assert status == 304 and body == b""


# ---- precompressed siblings ---------------------------------------------------------

@pytest.mark.parametrize("accept,encoding", [
    ("gzip, deflate, br", "br"),
    ("br", "br"),
    ("gzip", "gzip"),
    ("x-gzip", "gzip"),
    ("br;q=0, gzip", "gzip"),
    ("gzip;q=0.5, br;q=0.1", "gzip"),
    ("*", "br"),
    ("*, br;q=0", "gzip"),
    ("gzip;q=0, br;q=0", None),
    ("*;q=0", None),
    ("deflate", None),
    ("identity", None),
    (None, None),
])
def test_precompressed_choice(srv, site, accept, encoding):
    headers = [("Accept-Encoding", accept)] if accept is not None else []
    status, h, body = fetch(srv, "/static/comp.txt", headers)
    assert status == 200
    assert h["content-type"] == "text/plain; charset=utf-8"
    assert h["vary"] == "Accept-Encoding"
    if encoding is None:
        assert "content-encoding" not in h and body == b"plain text, uncompressed\n"
        assert h["etag"] == expected_etag(site / "comp.txt")
    else:
        suffix = {"br": "br", "gzip": "gz"}[encoding]
        assert h["content-encoding"] == encoding
        assert body == (BR_BODY if encoding == "br" else GZ_BODY)
        assert h["content-length"] == str(len(body))
        assert h["etag"] == expected_etag(site / ("comp.txt." + suffix), suffix)


def test_precompressed_variants_have_their_own_etags(srv):
    tags = {fetch(srv, "/static/comp.txt", [("Accept-Encoding", ae)])[1]["etag"] for ae in ("br", "gzip", "identity")}
    assert len(tags) == 3
    gz_tag = fetch(srv, "/static/comp.txt", [("Accept-Encoding", "gzip")])[1]["etag"]
    status, h, _ = fetch(srv, "/static/comp.txt", [("Accept-Encoding", "gzip"), ("If-None-Match", gz_tag)])
    assert status == 304 and h["vary"] == "Accept-Encoding"
    # The gzip variant's tag does not validate the plain one.
    status, h, body = fetch(srv, "/static/comp.txt", [("If-None-Match", gz_tag)])
    assert status == 200 and body == b"plain text, uncompressed\n"


def test_only_one_sibling(srv):
    status, h, body = fetch(srv, "/static/onlygz.css", [("Accept-Encoding", "br")])
    assert status == 200 and body == b"body{}\n" and h["vary"] == "Accept-Encoding"
    assert "content-encoding" not in h
    status, h, body = fetch(srv, "/static/onlygz.css", [("Accept-Encoding", "br, gzip")])
    assert h["content-encoding"] == "gzip" and body == GZ_BODY
    assert h["content-type"] == "text/css; charset=utf-8"


def test_no_sibling_no_vary(srv):
    _, h, _ = fetch(srv, "/static/hello.txt", [("Accept-Encoding", "gzip, br")])
    assert "vary" not in h and "content-encoding" not in h


def test_range_of_a_precompressed_variant(srv):
    status, h, body = fetch(srv, "/static/comp.txt", [("Accept-Encoding", "gzip"), ("Range", "bytes=0-1")])
    assert status == 206 and body == GZ_BODY[:2] and h["content-encoding"] == "gzip"
    assert h["content-range"] == "bytes 0-1/%d" % len(GZ_BODY)


def test_precompressed_off(serve, site, tmp_path):
    s = serve("--config=" + write_config(tmp_path, site, precompressed=False))
    status, h, body = fetch(s, "/static/comp.txt", [("Accept-Encoding", "gzip, br")])
    assert status == 200 and body == b"plain text, uncompressed\n"
    assert "vary" not in h and "content-encoding" not in h


# ---- connections, size, logs ----------------------------------------------------------

def test_pipelined_requests_keep_the_connection(srv):
    with srv.connect() as s:
        reqs = [("GET", "/static/hello.txt", []), ("HEAD", "/static/range.bin", []),
                ("GET", "/static/range.bin", [("Range", "bytes=0-3")]), ("GET", "/static/missing", []),
                ("GET", "/static/dir", []), ("GET", "/", []), ("GET", "/static/dir/", [])]
        for method, target, headers in reqs:
            send(s, method, target, headers)
        rest = b""
        got = []
        for method, _, _ in reqs:
            status, h, body, rest = receive(s, method, rest)
            assert "connection" not in h
            got.append((status, body))
        assert got == [(200, HELLO), (200, b""), (206, RANGE_BODY[:4]), (404, b"404 Not Found\n"),
                       (301, b"301 Moved Permanently\n"), (200, b"Hello, World!"), (200, b"<h1>dir index</h1>\n")]
        assert rest == b""


def test_http10_and_connection_close(srv):
    with srv.connect() as s:
        s.sendall(b"GET /static/hello.txt HTTP/1.0\r\n\r\n")
        data = conftest.recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(HELLO) and b"Connection: close" in data
    with srv.connect() as s:
        send(s, "GET", "/static/range.bin", [("Connection", "close")])
        data = conftest.recv_until_closed(s)
    assert data.endswith(RANGE_BODY) and b"Connection: close" in data


def test_next_to_a_python_app(srv):
    assert fetch(srv, "/")[2] == b"Hello, World!"
    assert fetch(srv, "/staticx/hello.txt")[2] == b"Hello, World!"   # not the mount: another segment
    assert fetch(srv, "/static/hello.txt")[2] == HELLO


def test_large_file_keeps_rss_flat(serve, tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    size = 128 << 20
    with open(root / "large.bin", "wb") as fh:
        fh.truncate(size)                        # sparse: no disk needed
    s = serve("hello:app", "/s=static:" + str(root))
    pid = s.proc.pid
    assert fetch(s, "/")[0] == 200               # Python warmed up
    base = rss_kb(pid)
    peak = base
    with s.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 << 10)
        send(sock, "GET", "/s/large.bin")
        status, fields, rest = read_head(sock)
        assert status == 200 and dict(fields)["Content-Length"] == str(size)
        got = len(rest)
        n = 0
        while got < size:
            data = sock.recv(1 << 20)
            assert data, "closed after %d bytes" % got
            assert data.count(0) == len(data)
            got += len(data)
            n += 1
            if n % 16 == 0:
                peak = max(peak, rss_kb(pid))
        assert got == size
        # The connection is still usable after a sendfile of this size.
        send(sock, "GET", "/s/large.bin", [("Range", "bytes=-5")])
        status, _, body, _ = receive(sock)
        assert status == 206 and body == b"\0" * 5
    assert peak - base < 16 * 1024, "RSS grew by %d KiB while sending %d MiB" % (peak - base, size >> 20)


def test_access_log_reflects_the_response(serve, site, tmp_path):
    log = tmp_path / "access.log"
    s = serve("hello:app", "/static=static:" + str(site), "--access-log", str(log))
    _, h, _ = fetch(s, "/static/hello.txt")
    fetch(s, "/static/hello.txt", [("If-None-Match", h["etag"])])
    fetch(s, "/static/range.bin", [("Range", "bytes=0-99")])
    fetch(s, "/static/hello.txt", method="HEAD")
    fetch(s, "/static/nope")
    fetch(s, "/static/hello.txt", method="DELETE")
    s.stop()
    lines = log.read_text().splitlines()
    fields = [(line.split('"')[1], line.split('"')[2].split()[:2]) for line in lines]
    assert fields == [
        ("GET /static/hello.txt HTTP/1.1", ["200", str(len(HELLO))]),
        ("GET /static/hello.txt HTTP/1.1", ["304", "-"]),
        ("GET /static/range.bin HTTP/1.1", ["206", "100"]),
        ("HEAD /static/hello.txt HTTP/1.1", ["200", "-"]),
        ("GET /static/nope HTTP/1.1", ["404", "14"]),
        ("DELETE /static/hello.txt HTTP/1.1", ["405", "23"]),
    ]


# ---- startup ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_bad_root_is_a_one_line_error(tmp_path, kind):
    root = tmp_path / "nope"
    if kind == "file":
        root.write_text("not a directory")
    r = run_trestle("hello:app", "/static=static:" + str(root), "--bind", "127.0.0.1:0")
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("trestle: error: "), r.stderr
    assert str(root) in lines[0] and "/static" in lines[0]


def test_a_bad_root_in_the_config_names_the_line(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text(textwrap.dedent("""\
        [[mount]]
        prefix = "/"
        app = "hello:app"

        [[mount]]
        prefix = "/assets"
        static = "%s"
        """ % (tmp_path / "missing")))
    r = run_trestle("--config", str(cfg), "--bind", "127.0.0.1:0")
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("trestle: error: %s:5:" % cfg), r.stderr


def test_a_relative_root_follows_chdir(serve, site):
    s = serve("static:public", "--chdir", str(site.parent))
    assert fetch(s, "/hello.txt")[2] == HELLO
