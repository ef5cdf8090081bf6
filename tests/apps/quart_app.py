"""A Quart app for tests/integration/test_quart.py, served natively over ASGI."""
import asyncio
import hashlib
import sys
import threading

from quart import Quart, abort, jsonify, request, url_for

app = Quart(__name__)
app.config["MAX_CONTENT_LENGTH"] = 32 * 1024 * 1024

SERVING = {}


@app.before_serving
async def startup():
    SERVING["started"] = True
    SERVING["loop_thread"] = threading.current_thread().name
    SERVING["startups"] = SERVING.get("startups", 0) + 1


@app.after_serving
async def shutdown():
    print("quart_app: after_serving ran", file=sys.stderr, flush=True)


@app.route("/")
async def index():
    return "Hello from Quart on trestle"


@app.route("/serving")
async def serving():
    return jsonify(SERVING)


@app.route("/json", methods=["POST"])
async def json_echo():
    data = await request.get_json()
    return jsonify(received=data, method=request.method, content_type=request.content_type,
                   args=request.args.to_dict(flat=False))


@app.route("/user/<name>")
async def user(name):
    return {"name": name, "upper": name.upper()}


@app.route("/stream")
async def stream():
    count = int(request.args.get("n", "5"))

    async def gen():
        for i in range(count):
            yield b"line %d\n" % i
            await asyncio.sleep(0)

    return gen(), 200, {"Content-Type": "text/plain", "X-Streamed": "yes"}


@app.route("/sync")
def sync_view():
    # A plain def view: Quart runs it with run_in_executor(None, ...), i.e. on trestle's pool.
    return jsonify(thread=threading.current_thread().name, thread_class=type(threading.current_thread()).__name__,
                   ident=threading.get_ident())


@app.route("/loop-thread")
async def loop_thread():
    return jsonify(thread=threading.current_thread().name, ident=threading.get_ident())


@app.route("/upload", methods=["POST"])
async def upload():
    data = await request.get_data()
    return jsonify(size=len(data), sha256=hashlib.sha256(data).hexdigest())


@app.route("/boom")
async def boom():
    raise RuntimeError("quart view exploded")


@app.route("/forbidden")
async def forbidden():
    abort(403)


@app.route("/urls")
async def urls():
    # What url_for builds from the scope: root_path, scheme and client.
    return jsonify(relative=url_for("user", name="ann"), external=url_for("user", name="ann", _external=True),
                   remote_addr=request.remote_addr, scheme=request.scheme)
