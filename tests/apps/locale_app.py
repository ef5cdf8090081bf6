"""Fixture: an app that switches the process's C locale (issue 10 item 12).
The locale's name comes from TRESTLE_TEST_LOCALE."""
import locale
import os


def app(environ, start_response):
    locale.setlocale(locale.LC_ALL, os.environ["TRESTLE_TEST_LOCALE"])
    body = locale.setlocale(locale.LC_ALL).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
