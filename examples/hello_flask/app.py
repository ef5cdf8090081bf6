"""A small Flask app served by Trestle: `build/trestle --chdir examples/hello_flask app:app`.

Nothing here knows about Trestle; the same file runs under gunicorn.
"""
import time

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return "Hello from Flask, served by Trestle!\n"


@app.get("/json")
def json_view():
    return jsonify(server=request.environ.get("SERVER_SOFTWARE"), path=request.path, args=request.args)


@app.post("/echo")
def echo():
    # Streams the upload in chunks: Trestle never buffers a large body whole.
    total = 0
    while chunk := request.stream.read(65536):
        total += len(chunk)
    return jsonify(received_bytes=total)


@app.get("/stream")
def stream():
    def ticks():
        for i in range(5):
            yield f"tick {i}\n"
            time.sleep(0.2)

    return Response(ticks(), mimetype="text/plain")
