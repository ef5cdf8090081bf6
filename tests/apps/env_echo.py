"""Answers with the process environment's names, one a line, as an app (and
so its children, which inherit os.environ) sees it."""
import os


def app(environ, start_response):
    body = "\n".join(sorted(os.environ)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
