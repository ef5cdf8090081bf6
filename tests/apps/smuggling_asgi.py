"""The ASGI twin of the wsgi_cases routes that tests/integration/test_smuggling.py uses.

Same paths, same response bodies, same counting as wsgi_cases:app, so each smuggling case asserts
the same things against either interface:

- every HTTP request that reaches the app is counted in `hits` as soon as the app is called
  (before it reads a byte of the body, as the WSGI app counts before wsgi.input.read());
- /echo answers the request body (application/octet-stream with a Content-Length);
- /hits answers {"hits": N};
- /environ answers what the forwarding tests look at: the scope's client and scheme, and the
  headers as the app received them;
- any other path answers {"path", "method", "query"}.

A body the server cannot read (a malformed chunk, a stall, a limit) reaches the app as
http.disconnect; the app then returns without a response and the server answers the client (400,
408, 413), as an ASGI app should. Every wait is bounded so a server bug cannot wedge the loop.
"""
import json
import time

state = {"hits": 0}


async def _respond(send, body, ctype=b"application/json", status=200):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive, limit_s=10.0):
    """The whole body, or None if the client went away (or the server could not read it)."""
    chunks = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body", False):
            return b"".join(chunks)
    raise TimeoutError("body not complete in %ss" % limit_s)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    state["hits"] += 1
    path = scope["path"]
    if path == "/echo":
        body = await _read_body(receive)
        if body is not None:
            await _respond(send, body, b"application/octet-stream")
        return
    if path == "/hits":
        return await _respond(send, json.dumps({"hits": state["hits"]}).encode())
    if path == "/environ":
        client = scope.get("client")
        return await _respond(send, json.dumps({
            "client": list(client) if client else None,
            "scheme": scope["scheme"],
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        }).encode())
    return await _respond(send, json.dumps({"path": path, "method": scope["method"],
                                            "query": scope["query_string"].decode("latin-1")}).encode())
