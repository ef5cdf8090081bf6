"""A realistic Flask app for the end-to-end tests (tests/integration/test_flask.py)."""
import hashlib

from flask import (Flask, Response, abort, jsonify, make_response, redirect, request, session,
                   stream_with_context, url_for)

app = Flask(__name__)
app.secret_key = "trestle-test-secret-key"


@app.route("/")
def index():
    return "Hello from Flask on trestle"


@app.route("/json", methods=["GET", "POST"])
def json_echo():
    if request.method == "GET":
        return jsonify(method="GET", args=request.args.to_dict(flat=False), numbers=[1, 2, 3],
                       nested={"ok": True, "text": "caf\u00e9"})
    data = request.get_json(force=True)
    return jsonify(method="POST", received=data, content_type=request.content_type)


@app.route("/form", methods=["POST"])
def form():
    return jsonify(form=request.form.to_dict(flat=False), content_type=request.mimetype)


@app.route("/upload", methods=["POST"])
def upload():
    files = {}
    for field, storage in request.files.items(multi=True):
        data = storage.read()
        files.setdefault(field, []).append({
            "filename": storage.filename,
            "content_type": storage.mimetype,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        })
    return jsonify(files=files, form=request.form.to_dict(flat=False))


@app.route("/cookies/set")
def cookies_set():
    resp = make_response(jsonify(set=request.args.to_dict()))
    for k, v in request.args.items():
        resp.set_cookie(k, v)
    return resp


@app.route("/cookies")
def cookies_read():
    return jsonify(cookies=request.cookies.to_dict())


@app.route("/login", methods=["POST"])
def login():
    user = request.form.get("user")
    if not user:
        abort(400)
    session["user"] = user
    return jsonify(logged_in=user)


@app.route("/logout", methods=["POST"])
def logout():
    session.pop("user", None)
    return jsonify(logged_out=True)


@app.route("/me")
def me():
    user = session.get("user")
    if user is None:
        return jsonify(error="not logged in"), 401
    return jsonify(user=user)


@app.route("/redirect-plain")
def redirect_plain():
    return redirect("/json?from=plain")


@app.route("/redirect-url-for")
def redirect_url_for():
    return redirect(url_for("json_echo", source="url_for"))


@app.route("/redirect-chain/<int:n>")
def redirect_chain(n):
    if n <= 0:
        return redirect(url_for("index"), code=301)
    return redirect(url_for("redirect_chain", n=n - 1), code=302)


@app.route("/stream")
def stream():
    count = request.args.get("n", 5, type=int)

    def generate():
        # stream_with_context keeps `request` usable inside the generator.
        for i in range(count):
            yield "chunk %d of %d for %s\n" % (i, count, request.path)

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/stream-plain")
def stream_plain():
    def generate():
        for i in range(4):
            yield b"%d:" % i + b"x" * 1000 + b"\n"

    return Response(generate(), mimetype="application/octet-stream")


@app.route("/big-upload", methods=["POST", "PUT"])
def big_upload():
    """Reads the body in fixed chunks from request.stream; never holds it all."""
    digest = hashlib.sha256()
    total = 0
    reads = 0
    largest = 0
    stream = request.stream
    while True:
        chunk = stream.read(256 * 1024)
        if not chunk:
            break
        reads += 1
        largest = max(largest, len(chunk))
        total += len(chunk)
        digest.update(chunk)
    return jsonify(bytes=total, sha256=digest.hexdigest(), reads=reads, largest_read=largest,
                   content_length=request.headers.get("Content-Length"),
                   transfer_encoding=request.headers.get("Transfer-Encoding"),
                   input_terminated=request.environ.get("wsgi.input_terminated"))


class TrestleTestError(RuntimeError):
    pass


@app.route("/error")
def error():
    raise TrestleTestError("flask view exploded on purpose 8c1f")


@app.route("/missing")
def missing():
    abort(404)


@app.route("/environ")
def environ_view():
    env = request.environ
    wsgi = {}
    for key, value in env.items():
        if key.startswith("wsgi."):
            if isinstance(value, (str, bool, int, tuple, list)):
                wsgi[key] = value
            else:
                wsgi[key] = type(value).__name__
    cgi = {k: env[k] for k in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
                               "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
                               "REMOTE_PORT")
           if k in env}
    return jsonify(wsgi=wsgi, cgi=cgi,
                   has_errors_write=hasattr(env.get("wsgi.errors"), "write"),
                   has_file_wrapper=callable(env.get("wsgi.file_wrapper")))


@app.route("/head-check", methods=["GET"])
def head_check():
    body = "z" * 1234
    resp = make_response(body)
    resp.headers["X-Head-Check"] = "yes"
    resp.mimetype = "text/plain"
    return resp


@app.route("/urls")
def urls():
    # What url_for builds from the environ: SCRIPT_NAME, scheme and client.
    return jsonify(relative=url_for("json_echo", source="u"), external=url_for("index", _external=True),
                   remote_addr=request.remote_addr, scheme=request.scheme)
