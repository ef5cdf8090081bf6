"""Fixture: a raw ASGI app for tests/integration/test_http2.py.

/count          how many requests started and finished (the stats endpoint itself excluded)
/sleep?s=X      sleeps X seconds, then 200 "slept"
/late-read?s=X  sleeps X seconds before it reads its body, then answers its size
/download?size=N&rid=R   N bytes in 64 KiB messages; /sent?rid=R says how many went to send()
/trailers       a body, then trailers (the http.response.trailers extension)
/hints          a 103 Early Hints, then the response (http.response.informational)
"""
import asyncio
import json
from urllib.parse import parse_qs

stats = {"started": 0, "finished": 0}
sent = {}


async def respond(send, status, body, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())] + list(headers)})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    q = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/count":
        return await respond(send, 200, json.dumps(stats).encode())
    if path == "/sent":
        return await respond(send, 200, str(sent.get(q.get("rid"), 0)).encode())
    stats["started"] += 1
    try:
        if path == "/sleep":
            await asyncio.sleep(float(q.get("s", "1")))
            return await respond(send, 200, b"slept")
        if path == "/late-read":
            await asyncio.sleep(float(q.get("s", "1")))
            size = 0
            while True:
                msg = await asyncio.wait_for(receive(), 20)
                if msg["type"] != "http.request":
                    return
                size += len(msg.get("body", b""))
                if not msg.get("more_body"):
                    break
            return await respond(send, 200, str(size).encode())
        if path == "/download":
            size, rid = int(q.get("size", "1048576")), q.get("rid", "")
            sent[rid] = 0
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(size).encode())]})
            chunk = b"x" * 65536
            left = size
            while left > 0:
                piece = chunk[:min(left, len(chunk))]
                await send({"type": "http.response.body", "body": piece, "more_body": left > len(piece)})
                sent[rid] += len(piece)
                left -= len(piece)
            return
        if path == "/trailers":
            await send({"type": "http.response.start", "status": 200, "trailers": True,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"body", "more_body": False})
            await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")],
                        "more_trailers": False})
            return
        if path == "/hints":
            await send({"type": "http.response.informational", "status": 103,
                        "headers": [(b"link", b"</style.css>; rel=preload; as=style")]})
            return await respond(send, 200, b"with hints")
        return await respond(send, 200, b"hello " + scope["http_version"].encode())
    finally:
        stats["finished"] += 1
