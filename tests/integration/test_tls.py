"""TLS on the --bind listeners: real clients (curl, Python's ssl, openssl
s_client, websockets) against certificates made for the test with the
openssl command line: a CA, a server certificate for localhost, a client
certificate from that CA, and one from a CA the server does not trust."""
import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
import requests
import websockets

from conftest import APPS, poll, read_response, recv_until_closed, run_trestle
from upstream_server import Upstream

# Under the sanitizers memory figures mean nothing (ASan's quarantine).
SANITIZED = bool(os.environ.get("TRESTLE_SANITIZED"))

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command (Debian's openssl)")


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
            "-keyout", name + "-key.pem", "-out", name + ".pem", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_leaf(d, name, ca, cn, ext):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + "-key.pem",
            "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as fh:
        fh.write(ext)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + "-key.pem", "-CAcreateserial",
            "-days", "30", "-out", name + ".pem", "-extfile", name + ".ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    make_ca(d, "ca")
    make_ca(d, "rogue")
    server_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    make_leaf(d, "server", "ca", "localhost", server_ext)
    make_leaf(d, "server2", "ca", "localhost-second", server_ext)
    make_leaf(d, "client", "ca", "client-one", "extendedKeyUsage=clientAuth\n")
    make_leaf(d, "stranger", "rogue", "stranger", "extendedKeyUsage=clientAuth\n")
    return d


def p(pki, name):
    return os.path.join(pki, name)


def tls_flags(pki, cert="server"):
    return ["--certfile", p(pki, cert + ".pem"), "--keyfile", p(pki, cert + "-key.pem")]


def client_context(pki, cert=None, **kw):
    ctx = ssl.create_default_context(cafile=p(pki, "ca.pem"))
    for k, v in kw.items():
        setattr(ctx, k, v)
    if cert:
        ctx.load_cert_chain(p(pki, cert + ".pem"), p(pki, cert + "-key.pem"))
    return ctx


def tls_connect(srv, ctx, timeout=10.0):
    raw = socket.create_connection((srv.host, srv.port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def https(srv, path):
    return "https://localhost:%d%s" % (srv.port, path)


def ports(srv):
    """{scheme: port} for every listener the server logged."""
    text = srv.log()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"listening on (https?)://127\.0\.0\.1:(\d+)", text)}


# ---- serving ---------------------------------------------------------------


def test_curl_gets_a_wsgi_app_over_https(serve, pki):
    srv = serve("wsgi_cases:app", *tls_flags(pki))
    assert srv.scheme == "https"
    out = subprocess.run(["curl", "-sS", "--cacert", p(pki, "ca.pem"), https(srv, "/environ")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert env["SSL_CIPHER"].startswith("TLS_")
    assert env["SSL_CLIENT_VERIFY"] == "NONE"
    assert "SSL_CLIENT_CERT" not in env


def test_asgi_scope_has_https_and_the_tls_extension(serve, pki):
    srv = serve("asgi_scope_echo:app", *tls_flags(pki))
    r = requests.get(https(srv, "/x"), verify=p(pki, "ca.pem"), timeout=10)
    scope = r.json()
    assert scope["scheme"] == "https"
    tls = scope["extensions"]["tls"]
    assert tls["tls_version"] == 0x0304
    assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0
    with open(p(pki, "server.pem")) as fh:
        assert tls["server_cert"].strip() == fh.read().strip()
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert "http.response.pathsend" in scope["extensions"]


def test_openssl_s_client_negotiates_http11_by_alpn(serve, pki):
    srv = serve("hello:app", *tls_flags(pki))
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port, "-servername", "localhost",
                          "-CAfile", p(pki, "ca.pem"), "-alpn", "http/1.1", "-ign_eof"],
                         input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                         capture_output=True, timeout=30)
    text = out.stdout.decode("latin-1")
    assert "ALPN protocol: http/1.1" in text
    assert "Verify return code: 0 (ok)" in text
    assert "HTTP/1.1 200" in text
    # Offered both, the server picks HTTP/2.
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port, "-servername", "localhost",
                          "-CAfile", p(pki, "ca.pem"), "-alpn", "h2,http/1.1"],
                         input=b"", capture_output=True, timeout=30)
    assert "ALPN protocol: h2" in out.stdout.decode("latin-1")


def test_keep_alive_pipelining_and_large_bodies_over_tls(serve, pki):
    srv = serve("wsgi_cases:app", *tls_flags(pki))
    s = tls_connect(srv, client_context(pki))
    # Two pipelined requests in one write, then an 8 MiB upload echoed back.
    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    st1, _, b1, rest = read_response(s)
    st2, _, b2, rest = read_response(s, rest)
    assert (st1, json.loads(b1)["path"]) == (200, "/a")
    assert (st2, json.loads(b2)["path"]) == (200, "/b")
    body = os.urandom(8 << 20)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    st3, _, b3, _ = read_response(s, rest, timeout=30)
    assert st3 == 200
    assert hashlib.sha256(b3).hexdigest() == hashlib.sha256(body).hexdigest()
    s.close()


def test_plain_and_tls_listeners_in_one_process(serve, pki):
    srv = serve("hello:app", *tls_flags(pki), "--insecure-bind", "127.0.0.1:0")
    got = ports(srv)
    assert set(got) == {"http", "https"}
    assert requests.get("http://127.0.0.1:%d/" % got["http"], timeout=10).status_code == 200
    assert requests.get("https://localhost:%d/" % got["https"], verify=p(pki, "ca.pem"), timeout=10).status_code == 200


def test_insecure_bind_from_the_config_file(serve, pki, tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text('[server]\ncertfile = "%s"\nkeyfile = "%s"\ninsecure_bind = ["127.0.0.1:0"]\n'
                   % (p(pki, "server.pem"), p(pki, "server-key.pem")))
    srv = serve("hello:app", "--config", str(cfg))
    assert set(ports(srv)) == {"http", "https"}


def test_tls_1_2_is_accepted_and_can_be_refused(serve, pki):
    srv = serve("hello:app", *tls_flags(pki))
    ctx = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    s = tls_connect(srv, ctx)
    assert s.version() == "TLSv1.2"
    # The Mozilla intermediate suites: ECDHE with AES-GCM or ChaCha20.
    assert s.cipher()[0].startswith("ECDHE-") and ("GCM" in s.cipher()[0] or "CHACHA20" in s.cipher()[0])
    s.close()
    strict = serve("hello:app", *tls_flags(pki), "--tls-min-version", "1.3")
    with pytest.raises(ssl.SSLError):
        tls_connect(strict, client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2))
    s = tls_connect(strict, client_context(pki))
    assert s.version() == "TLSv1.3"
    s.close()


def test_weak_cbc_suites_are_not_offered(serve, pki):
    srv = serve("hello:app", *tls_flags(pki))
    ctx = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("AES128-SHA:AES256-SHA:ECDHE-RSA-AES128-SHA")
    with pytest.raises(ssl.SSLError):
        tls_connect(srv, ctx)


def test_sessions_resume(serve, pki):
    srv = serve("hello:app", *tls_flags(pki))
    ctx = client_context(pki)

    def one(session=None):
        s = ctx.wrap_socket(socket.create_connection((srv.host, srv.port), timeout=10), server_hostname="localhost",
                            session=session)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(s)   # TLS 1.3 tickets come after the handshake: read something first
        sess, reused = s.session, s.session_reused
        s.close()
        return sess, reused

    first, reused = one()
    assert not reused
    _, reused = one(first)
    assert reused


def test_sessions_resume_across_worker_processes(serve, pki):
    srv = serve("pid_app:app", *tls_flags(pki), "--workers", "2")
    ctx = client_context(pki)

    def connect(session=None):
        s = ctx.wrap_socket(socket.create_connection((srv.host, srv.port), timeout=10), server_hostname="localhost",
                            session=session)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return s, read_response(s)[2].strip()

    first, _ = connect()
    session = first.session
    first.close()
    resumed = set()
    # Connections held open at once spread over the workers (each worker
    # leaves a new connection to a less loaded one); a few rounds, bounded.
    for _ in range(10):
        held = [connect(session) for _ in range(6)]
        resumed |= {pid for s, pid in held if s.session_reused}
        for s, _ in held:
            s.close()
        if len(resumed) == 2:
            break
    assert len(resumed) == 2, "sessions resumed on %d worker(s) only" % len(resumed)


# ---- client certificates ---------------------------------------------------


def test_client_certificate_required(serve, pki):
    srv = serve("wsgi_cases:app", *tls_flags(pki), "--ca-certs", p(pki, "ca.pem"), "--cert-reqs", "required")
    r = requests.get(https(srv, "/environ"), verify=p(pki, "ca.pem"),
                     cert=(p(pki, "client.pem"), p(pki, "client-key.pem")), timeout=10)
    env = r.json()
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert env["SSL_CLIENT_S_DN"] == "CN=client-one"
    assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    for cert in (None, ("stranger.pem", "stranger-key.pem")):
        kw = {"cert": (p(pki, cert[0]), p(pki, cert[1]))} if cert else {}
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.get(https(srv, "/environ"), verify=p(pki, "ca.pem"), timeout=10, **kw)


def test_client_certificate_optional_reaches_asgi(serve, pki):
    srv = serve("asgi_scope_echo:app", *tls_flags(pki), "--ca-certs", p(pki, "ca.pem"), "--cert-reqs", "1")
    anon = requests.get(https(srv, "/"), verify=p(pki, "ca.pem"), timeout=10).json()["extensions"]["tls"]
    assert anon["client_cert_chain"] == [] and anon["client_cert_name"] is None
    named = requests.get(https(srv, "/"), verify=p(pki, "ca.pem"), timeout=10,
                         cert=(p(pki, "client.pem"), p(pki, "client-key.pem"))).json()["extensions"]["tls"]
    assert named["client_cert_name"] == "CN=client-one"
    assert named["client_cert_error"] is None
    with open(p(pki, "client.pem")) as fh:
        assert named["client_cert_chain"][0].strip() == fh.read().strip()


# ---- bad input --------------------------------------------------------------


@pytest.mark.parametrize("flags, message", [
    (["--certfile", "/nonexistent/cert.pem"], "--certfile /nonexistent/cert.pem: No such file or directory"),
    (["--certfile", "{server.pem}", "--keyfile", "{client-key.pem}"], "does not match --certfile"),
    (["--certfile", "{server-key.pem}", "--keyfile", "{server-key.pem}"], "--certfile"),
    (["--keyfile", "{server-key.pem}"], "--keyfile needs --certfile"),
    (["--certfile", "{server.pem}", "--keyfile", "{server-key.pem}", "--cert-reqs", "required"], "--cert-reqs needs --ca-certs"),
    (["--certfile", "{server.pem}", "--keyfile", "{server-key.pem}", "--ca-certs", "/nonexistent/ca.pem"],
     "--ca-certs /nonexistent/ca.pem: No such file or directory"),
    (["--certfile", "{server.pem}", "--keyfile", "{server-key.pem}", "--ciphers", "NO-SUCH-CIPHER"], "--ciphers"),
    (["--certfile", "{server.pem}", "--tls-min-version", "1.1"], "--tls-min-version"),
])
def test_bad_tls_settings_are_one_line_and_exit_2(pki, flags, message):
    flags = [p(pki, f[1:-1]) if f.startswith("{") else f for f in flags]
    r = run_trestle("hello:app", "--bind", "127.0.0.1:0", *flags)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0]


def test_a_stalled_handshake_is_cut(serve, pki):
    srv = serve("hello:app", *tls_flags(pki), "--tls-handshake-timeout", "0.5")
    ctx = client_context(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    # A connection that sends nothing, and one that sends half a ClientHello.
    silent = socket.create_connection((srv.host, srv.port), timeout=10)
    half = socket.create_connection((srv.host, srv.port), timeout=10)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    half.sendall(hello[: len(hello) // 2])
    start = time.monotonic()
    assert recv_until_closed(silent, timeout=10) == b""
    assert recv_until_closed(half, timeout=10) == b""
    # 0.5 s, checked on a 250 ms tick: well before the default 10 s.
    assert time.monotonic() - start < 5
    # The server still serves.
    assert requests.get(https(srv, "/"), verify=p(pki, "ca.pem"), timeout=10).status_code == 200


def test_plain_http_on_the_tls_port_gets_a_clear_400(serve, pki):
    srv = serve("hello:app", *tls_flags(pki))
    s = srv.connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"HTTPS" in data
    # And a TLS client right after is fine.
    assert requests.get(https(srv, "/"), verify=p(pki, "ca.pem"), timeout=10).status_code == 200


def test_garbage_on_the_tls_port_is_closed(serve, pki):
    srv = serve("hello:app", *tls_flags(pki))
    s = srv.connect()
    s.sendall(b"\x16\x03\x01\x00\x05hello" + os.urandom(64))
    assert recv_until_closed(s) is not None   # closed, not hung (recv_until_closed bounds the wait)
    assert requests.get(https(srv, "/"), verify=p(pki, "ca.pem"), timeout=10).status_code == 200


# ---- static files, proxy, WebSocket ------------------------------------------


def test_static_files_over_tls_whole_and_ranges(serve, pki, tmp_path):
    root = tmp_path / "public"
    root.mkdir()
    data = os.urandom(3 * 1024 * 1024 + 17)
    (root / "big.bin").write_bytes(data)
    srv = serve("hello:app", "/files=static:" + str(root), *tls_flags(pki))
    # The log says which way files go out over TLS.
    assert re.search(r"TLS: (kernel TLS is available|no kernel TLS)", srv.log())
    r = requests.get(https(srv, "/files/big.bin"), verify=p(pki, "ca.pem"), timeout=30)
    assert r.status_code == 200 and r.content == data
    r = requests.get(https(srv, "/files/big.bin"), verify=p(pki, "ca.pem"), timeout=30,
                     headers={"Range": "bytes=1000000-1999999"})
    assert r.status_code == 206 and r.content == data[1000000:2000000]


def test_a_slow_reader_of_a_large_file_over_tls_keeps_memory_bounded(serve, pki, tmp_path):
    root = tmp_path / "public"
    root.mkdir()
    data = os.urandom(64 * 1024 * 1024)
    (root / "huge.bin").write_bytes(data)
    srv = serve("hello:app", "/files=static:" + str(root), *tls_flags(pki))
    from conftest import rss_kb
    before = rss_kb(srv.proc.pid)
    s = tls_connect(srv, client_context(pki))
    s.sendall(b"GET /files/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    got = 0
    h = hashlib.sha256()
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, buf = buf.partition(b"\r\n\r\n")
    h.update(buf)
    got = len(buf)
    peak = before
    deadline = time.monotonic() + 60
    while got < len(data) and time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        got += len(chunk)
        if got % (8 << 20) < (1 << 20):
            peak = max(peak, rss_kb(srv.proc.pid))
    assert got == len(data)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    # The file is never in memory whole: well under its 64 MiB.
    if not SANITIZED:
        assert peak - before < 16 * 1024, "RSS grew by %d KiB" % (peak - before)


def test_proxy_mount_over_tls(serve, pki):
    up = Upstream()
    try:
        srv = serve("hello:app", "/api=proxy:" + up.url(), *tls_flags(pki))
        r = requests.get(https(srv, "/api/thing?x=1"), verify=p(pki, "ca.pem"), timeout=10)
        assert r.status_code == 200
        req = up.last()
        assert req.target == "/api/thing?x=1"
        # The upstream learns the client came over HTTPS.
        assert req.header("x-forwarded-proto") == "https"
    finally:
        up.stop()


def test_websocket_over_tls(serve, pki):
    srv = serve("asgi_ws:app", *tls_flags(pki))

    async def go():
        async with websockets.connect("wss://localhost:%d/echo" % srv.port, ssl=client_context(pki)) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00" * 100000)
            assert await ws.recv() == b"\x00" * 100000

    asyncio.run(asyncio.wait_for(go(), 20))


# ---- reload -------------------------------------------------------------------


def peer_cn(srv, pki):
    s = tls_connect(srv, client_context(pki))
    cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    s.close()
    return cn


def test_hup_reloads_the_certificate_without_dropping_connections(serve, pki, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(p(pki, "server.pem"), cert)
    shutil.copy(p(pki, "server-key.pem"), key)
    srv = serve("hello:app", "--certfile", str(cert), "--keyfile", str(key))
    assert peer_cn(srv, pki) == "localhost"
    open_conn = tls_connect(srv, client_context(pki))
    open_conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(open_conn)[0] == 200
    shutil.copy(p(pki, "server2.pem"), cert)
    shutil.copy(p(pki, "server2-key.pem"), key)
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_log(r"TLS certificate and key reloaded")
    assert peer_cn(srv, pki) == "localhost-second"
    # The connection opened before still works, on its old session.
    open_conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(open_conn)[0] == 200
    open_conn.close()
    # A broken file on the next HUP keeps the current certificate.
    cert.write_text("not a certificate\n")
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_log(r"TLS not reloaded, still serving the old certificate")
    assert peer_cn(srv, pki) == "localhost-second"


def test_hup_with_workers_loads_the_new_certificate(serve, pki, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(p(pki, "server.pem"), cert)
    shutil.copy(p(pki, "server-key.pem"), key)
    srv = serve("hello:app", "--certfile", str(cert), "--keyfile", str(key), "--workers", "2")
    assert peer_cn(srv, pki) == "localhost"
    shutil.copy(p(pki, "server2.pem"), cert)
    shutil.copy(p(pki, "server2-key.pem"), key)
    srv.proc.send_signal(signal.SIGHUP)
    # Every connection after the new workers are in comes with the new one.
    assert poll(lambda: all(peer_cn(srv, pki) == "localhost-second" for _ in range(6)), timeout=30)


@pytest.mark.skipif(shutil.which("testssl") is None, reason="needs testssl (Debian's testssl.sh)")
def test_testssl_finds_no_weak_protocol_or_vulnerability(serve, pki):
    """testssl.sh's protocol and vulnerability checks against a TLS bind
    (docs/reliability.md lists a whole run's findings)."""
    srv = serve("hello:app", *tls_flags(pki))
    out = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "--ip", "one", "-p", "-U",
                          "127.0.0.1:%d" % srv.port], capture_output=True, text=True, timeout=600).stdout
    for old in ("SSLv2", "SSLv3", "TLS 1", "TLS 1.1"):
        line = next(l for l in out.splitlines() if l.strip().startswith(old + " "))
        assert "not offered" in line, line
    assert "TLS 1.2    offered" in out and "TLS 1.3    offered" in out
    assert "ALPN/HTTP2 h2, http/1.1" in out
    assert "Heartbleed" in out   # the vulnerability checks ran
    flagged = [l for l in out.splitlines() if "VULNERABLE" in l or "NOT ok" in l]
    assert not flagged, "\n".join(flagged)
