#!/usr/bin/python3
"""HTTP/2 and TLS benchmarks (docs/benchmarks.md, "HTTP/2 and TLS").

Each suite starts the servers one after another, pinned to CPU 0 (the load
generator gets CPU 1), runs them interleaved --runs times, and prints each
run and the medians as ratios against the peer:

  h2         raw ASGI hello over HTTP/2 cleartext (prior knowledge) with
             h2load, 64 streams over 4 connections: trestle against
             hypercorn (uvloop worker), the one HTTP/2 peer Debian has.
  tls        raw WSGI and Flask hello over HTTPS keep-alive with wrk:
             trestle alone against nginx terminating TLS in front of
             gunicorn sync, both on the same core.
  handshake  new TLS 1.3 connections a second (wrk with Connection: close,
             so every request is a full handshake): trestle serving a
             static file against nginx serving the same file.
  tlsoff     the same apps with TLS on and off, trestle alone.

Usage: bench/proto.py [--suites h2,tls,handshake,tlsoff] [--runs 3] [--duration 8]
       [--trestle build/trestle]
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
APPS = os.path.join(ROOT, "tests", "apps")
PYTHON = "/usr/bin/python3"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen on %d" % port)


class Server:
    def __init__(self, cmds, port, logdir, name):
        self.procs = []
        self.log = open(os.path.join(logdir, name + ".log"), "w")
        for cmd in cmds:
            self.procs.append(subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, cwd=APPS, start_new_session=True))
        wait_port(port, self.procs[-1])

    def stop(self):
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()


def make_cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
                    "-subj", "/CN=localhost"], check=True, capture_output=True)
    return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")


def nginx_conf(d, name, server_block):
    prefix = os.path.join(d, name)
    os.makedirs(prefix, exist_ok=True)
    temp = "".join("    %s_temp_path %s;\n" % (t, os.path.join(prefix, t)) for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = ("daemon off;\nmaster_process on;\nworker_processes 1;\nerror_log stderr warn;\npid %s;\n"
            "events { worker_connections 4096; }\nhttp {\n    access_log off;\n%s"
            "    default_type text/plain;\n    keepalive_requests 1000000;\n%s}\n"
            % (os.path.join(prefix, "nginx.pid"), temp, server_block))
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return [NGINX, "-p", prefix, "-e", "stderr", "-c", path]


def h2load(port, duration):
    out = subprocess.run(["taskset", "-c", "1", "h2load", "-c", "4", "-m", "16", "-D", str(duration), "-t", "1",
                          "http://127.0.0.1:%d/" % port], capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    ok = re.search(r"requests: .* (\d+) succeeded, (\d+) failed", out)
    if not m or not ok or int(ok.group(2)) > 0:
        raise RuntimeError("h2load failed:\n" + out)
    return float(m.group(1))


def wrk(url, duration, conns=64, close=False):
    cmd = ["taskset", "-c", "1", "wrk", "-t", "1", "-c", str(conns), "-d", "%ds" % duration]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not m or errors:
        raise RuntimeError("wrk failed:\n" + out)
    return float(m.group(1))


def run_pairs(label, contenders, runs, log):
    """contenders: [(name, start(), measure(server) -> req/s)]; interleaved runs."""
    results = {name: [] for name, _, _ in contenders}
    for r in range(runs):
        for name, start, measure in contenders:
            srv = start()
            try:
                value = measure()
            finally:
                srv.stop()
            results[name].append(value)
            log("  %-28s run %d: %10.0f req/s" % (name, r + 1, value))
    med = {n: statistics.median(v) for n, v in results.items()}
    first = contenders[0][0]
    for name, _, _ in contenders[1:]:
        log("%s: %s %.0f, %s %.0f req/s (medians): %.2fx" % (label, first, med[first], name, med[name], med[first] / med[name]))
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suites", default="h2,tls,handshake,tlsoff")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--trestle", default=os.path.join(ROOT, "build", "trestle"))
    opts = ap.parse_args()
    d = tempfile.mkdtemp(prefix="trestle-proto-")
    os.chmod(d, 0o755)   # nginx's workers (nobody) read the static file and the certificate under it
    cert, key = make_cert(d)
    static = os.path.join(d, "static")
    os.makedirs(static)
    with open(os.path.join(static, "index.txt"), "w") as f:
        f.write("Hello, World!")
    for path in (cert, key, os.path.join(static, "index.txt")):
        os.chmod(path, 0o644)

    def log(msg):
        print(msg, flush=True)

    log("# bench/proto.py %s (%s)" % (" ".join(sys.argv[1:]), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    trestle = [opts.trestle, "--chdir", APPS]

    def trestle_server(args, port, name):
        return lambda: Server([trestle + args], port, d, name)

    for suite in opts.suites.split(","):
        if suite == "h2":
            log("## HTTP/2 cleartext, raw ASGI hello, h2load -c4 -m16 -D %d" % opts.duration)
            p1, p2 = free_port(), free_port()
            run_pairs("h2 asgi", [
                ("trestle", trestle_server(["asgi_hello:app", "--bind", "127.0.0.1:%d" % p1], p1, "t-h2"),
                 lambda: h2load(p1, opts.duration)),
                ("hypercorn", lambda: Server([[PYTHON, "-m", "hypercorn", "--bind", "127.0.0.1:%d" % p2, "--worker-class",
                                               "uvloop", "asgi_hello:app"]], p2, d, "hypercorn"),
                 lambda: h2load(p2, opts.duration)),
            ], opts.runs, log)
        elif suite == "tls":
            for app, target in (("raw WSGI hello", "hello:app"), ("Flask hello", "flask_hello:app")):
                log("## HTTPS keep-alive, %s, wrk -c64" % app)
                p1, p2, up = free_port(), free_port(), free_port()
                block = ("    upstream up { server 127.0.0.1:%d; keepalive 64; }\n"
                         "    server {\n        listen 127.0.0.1:%d ssl;\n        ssl_certificate %s;\n"
                         "        ssl_certificate_key %s;\n        location / {\n            proxy_pass http://up;\n"
                         "            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n"
                         "        }\n    }\n" % (up, p2, cert, key))
                ngx = nginx_conf(d, "tls-%s" % target.split(":")[0], block)
                gun = [PYTHON, "-m", "gunicorn", "--chdir", APPS, "--bind", "127.0.0.1:%d" % up, "--workers", "1",
                       "--worker-class", "sync", target]

                def pair(ngx=ngx, gun=gun, p2=p2, up=up):
                    s = Server([gun], up, d, "gunicorn")
                    n = Server([ngx], p2, d, "nginx")
                    both = s.procs + n.procs

                    class Both:
                        procs = both

                        def stop(self):
                            n.stop()
                            s.stop()
                    return Both()
                run_pairs("https " + app, [
                    ("trestle", trestle_server([target, "--bind", "127.0.0.1:%d" % p1, "--certfile", cert, "--keyfile", key],
                                               p1, "t-tls"), lambda p1=p1: wrk("https://127.0.0.1:%d/" % p1, opts.duration)),
                    ("nginx+gunicorn-sync", pair, lambda p2=p2: wrk("https://127.0.0.1:%d/" % p2, opts.duration)),
                ], opts.runs, log)
        elif suite == "handshake":
            log("## TLS 1.3 handshakes: a new connection per request (wrk -H 'Connection: close' -c16), a static file")
            p1, p2 = free_port(), free_port()
            block = ("    server {\n        listen 127.0.0.1:%d ssl;\n        ssl_certificate %s;\n"
                     "        ssl_certificate_key %s;\n        root %s;\n    }\n" % (p2, cert, key, static))
            ngx = nginx_conf(d, "handshake", block)
            run_pairs("handshakes", [
                ("trestle", trestle_server(["static:" + static, "--bind", "127.0.0.1:%d" % p1, "--certfile", cert,
                                            "--keyfile", key], p1, "t-hs"),
                 lambda: wrk("https://127.0.0.1:%d/index.txt" % p1, opts.duration, conns=16, close=True)),
                ("nginx", lambda: Server([ngx], p2, d, "nginx-hs"),
                 lambda: wrk("https://127.0.0.1:%d/index.txt" % p2, opts.duration, conns=16, close=True)),
            ], opts.runs, log)
        elif suite == "tlsoff":
            for app, target in (("raw WSGI hello", "hello:app"), ("Flask hello", "flask_hello:app"), ("raw ASGI hello", "asgi_hello:app")):
                log("## trestle, %s: TLS on against off (wrk -c64, keep-alive)" % app)
                p1, p2 = free_port(), free_port()
                run_pairs("tls on/off " + app, [
                    ("tls-on", trestle_server([target, "--bind", "127.0.0.1:%d" % p1, "--certfile", cert, "--keyfile", key],
                                              p1, "t-on"), lambda p1=p1: wrk("https://127.0.0.1:%d/" % p1, opts.duration)),
                    ("tls-off", trestle_server([target, "--bind", "127.0.0.1:%d" % p2], p2, "t-off"),
                     lambda p2=p2: wrk("http://127.0.0.1:%d/" % p2, opts.duration)),
                ], opts.runs, log)
        else:
            sys.exit("unknown suite %r (h2, tls, handshake, tlsoff)" % suite)
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
