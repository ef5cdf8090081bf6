"""A real nginx in front of Trestle (issue 10 item 2).

nginx is configured as its documentation and most deployments have it:
`proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;` (append the
client's address) and `proxy_set_header X-Forwarded-Proto $scheme;`
(replace). It passes any other header, `Forwarded` included, on untouched.
A client that sends its own Forwarded / X-Forwarded-For / X-Forwarded-Proto
must not be able to choose the address and scheme the app sees.

nginx connects to Trestle from 127.0.0.3 (proxy_bind), the only trusted
address, so that the client, on 127.0.0.1, is not itself a trusted proxy.
"""
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (Debian package nginx)")

CONF = """
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_bind 127.0.0.3;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def nginx(tmp_path):
    started = []

    def start(upstream_port):
        for _ in range(5):   # the free port can be taken before nginx binds it
            port = free_port()
            conf = tmp_path / "nginx.conf"
            conf.write_text(CONF.format(prefix=tmp_path, port=port, upstream=upstream_port))
            proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            started.append(proc)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None and not port_open(port):
                time.sleep(0.02)
            if proc.poll() is None and port_open(port):
                return "http://127.0.0.1:%d" % port
        raise RuntimeError("nginx did not start: %s" % (tmp_path / "error.log").read_text())

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


SPOOFS = [
    {"Forwarded": "for=6.6.6.6;proto=https"},
    {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"},
    {"Forwarded": "for=6.6.6.6;proto=https", "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"},
    {"X-Forwarded-For": "6.6.6.6, 127.0.0.3", "X-Forwarded-Proto": "https, https"},
    {"X-Forwarded-Proto": "https"},
]


@pytest.mark.parametrize("spoof", SPOOFS, ids=range(len(SPOOFS)))
def test_a_client_behind_nginx_cannot_choose_its_address_or_scheme(serve, nginx, spoof):
    srv = serve("wsgi_cases:app", "/a=asgi_scope_echo:app", "--forwarded-allow-ips", "127.0.0.3")
    front = nginx(srv.port)
    env = requests.get(front + "/environ", headers=spoof, timeout=10).json()
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http", env
    assert "HTTPS" not in env
    scope = requests.get(front + "/a/", headers=spoof, timeout=10).json()
    assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http", scope


def test_without_spoofing_nginx_reports_the_client(serve, nginx):
    srv = serve("wsgi_cases:app", "--forwarded-allow-ips", "127.0.0.3")
    front = nginx(srv.port)
    env = requests.get(front + "/environ", timeout=10).json()
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"
    # Straight to Trestle from an untrusted address, nothing is believed.
    env = requests.get(srv.url + "/environ", headers=SPOOFS[2], timeout=10).json()
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"
