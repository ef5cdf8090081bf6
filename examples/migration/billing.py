"""The "billing" service: a separate HTTP service the migration example
proxies to under /billing, standing in for a service that still lives
elsewhere (another team's app, a legacy Java service...).

Run alone:  /usr/bin/python3 billing.py 9001
The example's legacy app starts it in the background (see start_background).
"""
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

INVOICES = {
    "ada": [{"id": "INV-1001", "amount": 120.0, "paid": True},
            {"id": "INV-1002", "amount": 75.5, "paid": False}],
    "alan": [{"id": "INV-2001", "amount": 42.0, "paid": False}],
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, so the proxy can reuse connections
    server_version = "billing/1.0"

    def log_message(self, fmt, *args):   # quiet: trestle logs the requests
        pass

    def _json(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/billing/health":
            return self._json(200, {"ok": True, "pid": os.getpid()})
        if url.path == "/billing/invoices":
            user = parse_qs(url.query).get("user", [""])[0]
            # What the proxy told us about the original request.
            seen = {h: self.headers.get(h) for h in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host")}
            return self._json(200, {"user": user, "invoices": INVOICES.get(user, []), "forwarded": seen})
        return self._json(404, {"error": "no such billing endpoint", "path": url.path})

    do_HEAD = do_GET


def serve(port):
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Stop with the process that started us (the example's trestle).
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    server.shutdown()


def start_background(port):
    """Starts this service as a child process, unless something already
    listens on the port (a billing service from an earlier run)."""
    import socket

    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return None
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), str(port)],
                            stdin=subprocess.DEVNULL)


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 9001)
