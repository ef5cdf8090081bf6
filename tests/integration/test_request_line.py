"""The request line's HTTP-version and the server's dates (issue 10 item 12).

- A request line with an empty version is refused at once, not after the
  head timeout.
- HTTP/1.2 ... 1.9 are served as HTTP/1.1 (RFC 9110 2.5, RFC 9112 2.3); any
  other major version in an HTTP/1 request line gets 505.
- The Date header and the access log's timestamp do not follow a locale the
  app sets: one locale-free formatter makes both.
"""
import re
import subprocess
import time

import pytest

from conftest import poll, read_response, recv_until_closed


def statuses(data):
    return [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


@pytest.mark.parametrize("line", [b"GET / \r\n\r\n", b"GET / \r\nHost: x\r\n", b"GET /  \r\n"])
def test_an_empty_version_is_400_at_once(serve, line):
    srv = serve("wsgi_cases:app", "--header-timeout", "60")
    with srv.connect() as s:
        t0 = time.monotonic()
        s.sendall(line)
        data = recv_until_closed(s, timeout=10)
        assert statuses(data) == [400], data
        assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("version", [b"HTTP/1.2", b"HTTP/1.9"])
def test_a_higher_http1_minor_version_is_served_as_1_1(serve, version):
    srv = serve("wsgi_cases:app")
    with srv.connect() as s:
        s.sendall(b"GET /environ HTTP/1.1\r\nHost: x\r\n\r\n".replace(b"HTTP/1.1", version, 1))
        status, headers, body, rest = read_response(s)
        assert status == 200
        assert b'"SERVER_PROTOCOL": "HTTP/1.1"' in body
        # HTTP/1.1 semantics: the connection stays open.
        s.sendall(b"GET /environ " + version + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body, rest = read_response(s)
        assert status == 200


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/3.0", b"HTTP/0.9", b"HTTP/9.1"])
def test_another_major_version_is_505(serve, version):
    srv = serve("wsgi_cases:app")
    with srv.connect() as s:
        s.sendall(b"GET / " + version + b"\r\nHost: x\r\n\r\nGET /hits HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(s)
        assert statuses(data) == [505], data
        assert data.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n")
        assert b"Connection: close" in data


@pytest.mark.parametrize("version", [b"HTTP/1.10", b"HTTP/11.1", b"http/1.1", b"HTTP/1"])
def test_a_malformed_version_is_400(serve, version):
    srv = serve("wsgi_cases:app")
    with srv.connect() as s:
        s.sendall(b"GET / " + version + b"\r\nHost: x\r\n\r\n")
        assert statuses(recv_until_closed(s)) == [400]


def foreign_locale():
    """A non-English locale that is installed, or None (nothing is installed for the test)."""
    try:
        names = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    for name in names:
        if name in ("C", "POSIX") or name.startswith(("C.", "en_")):
            continue
        return name
    return None


ENGLISH_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                          r"\d{4} \d\d:\d\d:\d\d GMT$")
ENGLISH_STAMP = re.compile(r"\[\d\d/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d\d:\d\d:\d\d \+0000\]")


def test_dates_do_not_follow_the_apps_locale(serve, tmp_path):
    name = foreign_locale()
    if not name:
        pytest.skip("no non-English locale installed (locale -a)")
    log = tmp_path / "access.log"
    srv = serve("locale_app:app", "--access-log", str(log), env={"TRESTLE_TEST_LOCALE": name})
    with srv.connect() as s:
        for _ in range(2):   # the second response comes after the switch
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body, rest = read_response(s)
            assert status == 200
            date = {k.lower(): v for k, v in headers.items()}["date"]
            assert ENGLISH_DATE.match(date), (name, date)
    srv.stop()
    text = poll(lambda: log.read_text() if log.exists() and log.read_text().count("\n") >= 2 else "")
    stamps = [line for line in text.splitlines() if line]
    assert len(stamps) == 2
    for line in stamps:
        assert ENGLISH_STAMP.search(line), (name, line)
