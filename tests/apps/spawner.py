"""Fixture: an app that spawns children the way apps do (issue 10 item 10).

GET /fds     a child (os.system-like: close_fds=False) lists the descriptors it
             inherited (`ls -l /proc/self/fd`)
GET /linger  starts `sleep 30` (close_fds=False, its own session) and answers
             its pid; the test ends it
"""
import os
import subprocess


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/fds":
        # ls itself is the child: /proc/self/fd is its own table.
        out = subprocess.run(["ls", "-l", "/proc/self/fd"], close_fds=False, stdout=subprocess.PIPE,
                             timeout=10).stdout
    elif path == "/linger":
        child = subprocess.Popen(["sleep", "30"], close_fds=False, start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = str(child.pid).encode()
    else:
        out = b"?"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]
