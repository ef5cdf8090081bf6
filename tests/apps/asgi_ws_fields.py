"""Fixture for tests/integration/test_websocket_fields.py: an ASGI WebSocket app that sends the
fields it is told to (issue 10 items 8 and 20).

WebSocket path /<step>/<case>: `step` is "accept" (the websocket.accept message is CASES[case]),
"deny" (websocket.http.response.start is CASES[case]) or "close" (accept, then the
websocket.close message is CASES[case]). send() either returns or raises; the app records which
(GET /record/<step>/<case> over HTTP) and lets any exception propagate, as an app would.
/closer/<code>: accepts, closes with `code`, then records the websocket.disconnect code it receives.
/echo: accepts and echoes until the peer goes; records the disconnect code under /echo.
/more-body-raises (WebSocket): a denial whose body's more_body raises in bool(); over HTTP,
/http-more-body-raises: an http.response.body whose more_body does the same. send() must raise
that error, with no other exception left set.
Every app wait is bounded in time.
"""
import asyncio
import json

RECORDS = {}

ACCEPT = {
    "sub-crlf": {"subprotocol": "chat\r\nSet-Cookie: injected=1"},
    "sub-space": {"subprotocol": "chat x"},
    "sub-not-offered": {"subprotocol": "other"},
    "sub-not-str": {"subprotocol": 5},
    "header-crlf": {"headers": [(b"x-extra", b"a\r\nSet-Cookie: injected=1")]},
    "header-bad-name": {"headers": [(b"x extra", b"1")]},
    "header-not-bytes": {"headers": [("x-extra", "1")]},
    "header-not-pairs": {"headers": [(b"x-extra",)]},
    "headers-not-list": {"headers": 5},
    "sub-header-not-offered": {"headers": [(b"sec-websocket-protocol", b"other")]},
    "sub-header-contradicts": {"subprotocol": "chat", "headers": [(b"sec-websocket-protocol", b"superchat")]},
    # Valid ones: the 101 carries them.
    "sub-offered": {"subprotocol": "chat", "headers": [(b"x-extra", b"yes")]},
    "none": {"subprotocol": None},
    "sub-empty": {"subprotocol": ""},   # no subprotocol, as uvicorn reads it
    "sub-in-headers": {"headers": [(b"sec-websocket-protocol", b"superchat")]},
}

DENY = {
    "status-100": {"status": 100},
    "status-101": {"status": 101},
    "status-199": {"status": 199},
    "status-600": {"status": 600},
    "status-huge": {"status": 2**70},
    "status-negative-huge": {"status": -2**70},
    "status-str": {"status": "401"},
    "header-crlf": {"status": 401, "headers": [(b"x-extra", b"a\r\nSet-Cookie: injected=1")]},
    "header-bad-name": {"status": 401, "headers": [(b"x:extra", b"1")]},
    "ok-401": {"status": 401, "headers": [(b"x-extra", b"yes")]},
}

CLOSE = {
    "code-1004": {"code": 1004},
    "code-1005": {"code": 1005},
    "code-1006": {"code": 1006},
    "code-1015": {"code": 1015},
    "code-999": {"code": 999},
    "code-2999": {"code": 2999},
    "code-5000": {"code": 5000},
    "code-70000": {"code": 70000},
    "code-huge": {"code": 2**70},
    "code-str": {"code": "1000"},
    "reason-124": {"code": 4000, "reason": "x" * 124},
    "reason-124-utf8": {"code": 4000, "reason": "\u00e9" * 62},
    "reason-not-str": {"code": 4000, "reason": b"bytes"},
    # Valid ones: the peer gets them.
    "ok-4999": {"code": 4999, "reason": "y" * 123},
    "ok-1000": {"code": 1000},
    "ok-default": {},
}


def _json(body):
    data = json.dumps(body).encode()
    return [{"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]},
            {"type": "http.response.body", "body": data}]


async def _send_recorded(send, key, message):
    try:
        await send(message)
    except BaseException as e:  # noqa: B902 - recorded, then propagated
        RECORDS[key] = {"raised": type(e).__name__, "message": str(e)}
        raise
    RECORDS[key] = {"raised": None}


class BadBool:
    def __bool__(self):
        raise ZeroDivisionError("bool() of more_body")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    path = scope["path"]
    if scope["type"] == "http" and path == "/http-more-body-raises":
        await send({"type": "http.response.start", "status": 200})
        await _send_recorded(send, path, {"type": "http.response.body", "body": b"x", "more_body": BadBool()})
        return
    if scope["type"] == "http":
        for m in _json(RECORDS.get(path[len("/record"):]) if path.startswith("/record/") else None):
            await send(m)
        return
    msg = await asyncio.wait_for(receive(), 10)
    assert msg["type"] == "websocket.connect", msg
    RECORDS.setdefault("/connects", {"count": 0})["count"] += 1
    step, _, case = path[1:].partition("/")
    if step == "accept":
        await _send_recorded(send, path, dict(ACCEPT[case], type="websocket.accept"))
    elif step == "deny":
        await _send_recorded(send, path, dict(DENY[case], type="websocket.http.response.start"))
        await send({"type": "websocket.http.response.body", "body": b"denied"})
        return
    elif step == "close":
        await send({"type": "websocket.accept"})
        await _send_recorded(send, path, dict(CLOSE[case], type="websocket.close"))
        return
    elif step == "more-body-raises":
        await send({"type": "websocket.http.response.start", "status": 401})
        await _send_recorded(send, path, {"type": "websocket.http.response.body", "body": b"x",
                                          "more_body": BadBool()})
        return
    elif step == "closer":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": int(case)})
        msg = await asyncio.wait_for(receive(), 10)
        RECORDS[path] = {"disconnect": msg.get("code")}
        return
    else:
        await send({"type": "websocket.accept"})
    while True:
        msg = await asyncio.wait_for(receive(), 30)
        if msg["type"] == "websocket.disconnect":
            RECORDS[path] = {"disconnect": msg["code"]}
            return
        await send({"type": "websocket.send", "text": msg.get("text"), "bytes": msg.get("bytes")})
