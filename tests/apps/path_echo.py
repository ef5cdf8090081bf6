"""Fixture: reports the path a request reached its app with.

`wsgi_app` answers JSON of SCRIPT_NAME, PATH_INFO and RAW_URI; `asgi_app`
answers JSON of path, root_path and raw_path, over HTTP and, for a
WebSocket, as one text message after the accept. Both count their calls in
`hits`, so a test can see that a refused request never reached an app.
"""
import json

hits = {"wsgi": 0, "asgi": 0}


def wsgi_app(environ, start_response):
    hits["wsgi"] += 1
    if environ["PATH_INFO"].endswith("/hits"):
        body = json.dumps(hits).encode()
    else:
        body = json.dumps({"app": "wsgi", "script_name": environ["SCRIPT_NAME"], "path_info": environ["PATH_INFO"],
                           "raw_uri": environ["RAW_URI"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _scope_json(scope):
    return json.dumps({"app": "asgi", "type": scope["type"], "path": scope["path"], "root_path": scope["root_path"],
                       "raw_path": scope["raw_path"].decode("latin-1")})


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    hits["asgi"] += 1
    if scope["type"] == "websocket":
        msg = await receive()
        assert msg["type"] == "websocket.connect", msg
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": _scope_json(scope)})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = (json.dumps(hits) if scope["path"].endswith("/hits") else _scope_json(scope)).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
