"""Fixture: answers with the parts of its ASGI scope that can be JSON."""
import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    out = {k: v for k, v in scope.items() if isinstance(v, (str, int, float, bool, type(None)))}
    out["raw_path"] = scope["raw_path"].decode("latin-1")
    out["query_string"] = scope["query_string"].decode("latin-1")
    out["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
    out["client"] = list(scope["client"]) if scope.get("client") else None
    out["server"] = list(scope["server"]) if scope.get("server") else None
    out["asgi"] = scope["asgi"]
    out["extensions"] = scope.get("extensions")
    body = json.dumps(out).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
