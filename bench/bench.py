#!/usr/bin/python3
"""Trestle benchmark harness: trestle against gunicorn (sync and gthread) on
WSGI apps, against uvicorn and hypercorn on ASGI apps, and against nginx on
static and proxy mounts (no Python: the 'mounts' apps).

Run it with bench/run.sh (see docs/benchmarks.md). Standard library only, so
it runs under Debian's /usr/bin/python3 with nothing installed.

For every selected app and every selected server that speaks its interface
(WSGI: trestle, gunicorn; ASGI: trestle, uvicorn, hypercorn; mounts:
trestle, nginx), in one go:
  0. measure the app's own cost in-process, pinned to CPU 0 (bench/inprocess.py);
  1. pick a free port (bind port 0), start the server pinned to CPU 0;
  2. poll with HTTP GETs until it answers 200 with the expected body;
  3. warm up with wrk, then run wrk (pinned to CPU 1) N times;
  4. parse wrk's output, measure the server's CPU time per request and how
     busy the two CPUs were with anything else (to spot a noisy machine);
  5. stop the server: SIGTERM, wait, SIGKILL on timeout.
Then print a Markdown table per interface (ratios against gunicorn sync for
WSGI, uvicorn uvloop+httptools for ASGI, nginx for the mounts; latency
p50/p99/p99.9) and the in-process limits, and write
them, with machine facts and per-run details, to bench/results/latest.md.
"""

import argparse
import collections
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
APPS_DIR = os.path.join(ROOT, "tests", "apps")
BENCH_APPS_DIR = os.path.join(BENCH_DIR, "apps")
PYTHON = "/usr/bin/python3"

# path: what wrk, the readiness poll and the probe request.
App = collections.namedtuple("App", "target label body dir interface sleep path", defaults=("/",))
HELLO = b"Hello, World!"


def static_body(size):
    """The content of the static files the 'mount' apps serve: printable,
    deterministic, so the readiness check can compare it."""
    line = b"".join(bytes([48 + (i % 75)]) for i in range(63)) + b"\n"
    return (line * (size // len(line) + 1))[:size]


# The 'http' interface: no Python app, a static or proxy mount of trestle
# against nginx (see docs/benchmarks.md, "Static and proxy mounts against
# nginx"). The target is the file (served from a directory the harness
# writes) or, for the proxy, the upstream: an nginx answering `return 200`,
# pinned with wrk (see Upstream).
STATIC_FILES = {"static-1k": ("1k.txt", 1024), "static-64k": ("64k.txt", 65536)}
# name -> the app: module:attr, label in the table, expected body, directory,
# interface, whether it is the asyncio.sleep route (measured at
# --sleep-connections, 256 by default, instead of --connections), and the path
# requested (default /).
APPS = {
    "hello": App("hello:app", "raw WSGI hello", HELLO, APPS_DIR, "wsgi", False),
    "flask": App("flask_hello:app", "Flask hello", HELLO, APPS_DIR, "wsgi", False),
    "asgi": App("asgi_hello:app", "raw ASGI hello", HELLO, APPS_DIR, "asgi", False),
    "quart": App("quart_hello:app", "Quart hello", HELLO, BENCH_APPS_DIR, "asgi", False),
    "starlette": App("starlette_hello:app", "Starlette hello", HELLO, BENCH_APPS_DIR, "asgi", False),
    "sleep": App("asgi_sleep:app", "raw ASGI sleep(0.01)", HELLO, BENCH_APPS_DIR, "asgi", True),
    "flask-async": App("flask_async_hello:app", "Flask async view, sleep(0)", HELLO, BENCH_APPS_DIR,
                       "wsgi", False),
    "static-1k": App("static", "static file, 1 KiB", static_body(1024), BENCH_DIR, "http", False,
                     "/1k.txt"),
    "static-64k": App("static", "static file, 64 KiB", static_body(65536), BENCH_DIR, "http", False,
                      "/64k.txt"),
    "proxy": App("proxy", "proxy to nginx return 200", HELLO, BENCH_DIR, "http", False),
}
# 'all' is the Python apps (the default run); 'mounts' the static and proxy
# mounts, measured against nginx.
APP_GROUPS = {"all": [a for a in APPS if APPS[a].interface != "http"],
              "mounts": [a for a in APPS if APPS[a].interface == "http"]}
APP_ALIASES = {"raw": "hello", "wsgi": "hello", "flask_hello": "flask", "flask-hello": "flask",
               "asgi_hello": "asgi", "asgi-hello": "asgi", "raw-asgi": "asgi",
               "quart_hello": "quart", "quart-hello": "quart",
               "starlette_hello": "starlette", "starlette-hello": "starlette",
               "asgi_sleep": "sleep", "asgi-sleep": "sleep",
               "flask_async": "flask-async", "flask_async_hello": "flask-async",
               "static1k": "static-1k", "static-1kib": "static-1k",
               "static64k": "static-64k", "static-64kib": "static-64k"}
# Apps whose in-process cost would not be what trestle runs: the Flask async
# view in-process goes through stock Flask's asgiref (a new loop per call).
NO_INPROCESS = {"flask-async"} | set(APP_GROUPS["mounts"])

# Which interfaces each server is run on; a server is only run on apps it speaks.
SERVER_INTERFACES = {
    "trestle": ("wsgi", "asgi", "http"),
    # trestle with --no-flask-async: Flask's own asgiref for async views.
    "trestle-no-flask-async": ("wsgi",),
    "gunicorn-sync": ("wsgi",), "gunicorn-gthread": ("wsgi",),
    "uvicorn-uvloop": ("asgi",), "uvicorn-h11": ("asgi",),
    "hypercorn": ("asgi",), "hypercorn-asyncio": ("asgi",),
    "nginx": ("http",),
}
SERVERS = list(SERVER_INTERFACES)  # what 'all' selects
# The default run: everything but hypercorn's asyncio worker (slow: it stalls
# on Nagle, see the anchors; select it by name or with 'all') and trestle
# --no-flask-async (only of interest for the flask-async app).
DEFAULT_SERVERS = [s for s in SERVERS if s not in ("hypercorn-asyncio", "trestle-no-flask-async")]
SERVER_ALIASES = {"sync": "gunicorn-sync", "gthread": "gunicorn-gthread",
                  "gunicorn": "gunicorn-sync", "uvicorn": "uvicorn-uvloop",
                  "httptools": "uvicorn-uvloop", "h11": "uvicorn-h11",
                  "hypercorn-uvloop": "hypercorn", "trestle-stock": "trestle-no-flask-async"}

# The server every ratio is taken against, per interface, and its label.
BASELINE = {"wsgi": "gunicorn-sync", "asgi": "uvicorn-uvloop", "http": "nginx"}
# ...and with several worker processes (any server name + "-wN"): the same
# server with the same number of workers.
BASELINE_LABEL = {"wsgi": "gunicorn sync", "asgi": "uvicorn uvloop+httptools", "http": "nginx"}

# Acceptance targets: trestle req/s divided by the baseline's req/s, per app.
TARGETS = {"hello": 4.0, "flask": 2.0, "asgi": 1.5, "quart": 1.1, "sleep": 0.9}
# With several worker processes (issue 11): trestle -wN against gunicorn sync
# -wN on Flask hello, and CPU per request against trestle with one worker.
WORKERS_TARGETS = {"flask": 2.5}
WORKERS_CPU_MAX = 1.10    # trestle -wN CPU µs/req ÷ one worker's: at most this
SLEEP_S = 0.01            # what asgi_sleep.py awaits

CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 30.0      # seconds for a server to start answering
STOP_TIMEOUT = 20.0       # seconds after SIGTERM before SIGKILL
NOISE_CPU0 = 5.0          # % of CPU 0 used by others during a run: "noisy"
NOISE_CPU1 = 10.0         # % of CPU 1 used by others (besides wrk)
NOISE_ALL = 10.0          # unpinned: % of one CPU used by others on both (besides server and wrk)
NOISE_SPREAD = 10.0       # (max - min) / median req/s across runs, in %
PROBE_INTERVAL = 0.25     # seconds between starvation-probe requests
PROBE_SLOW = 1.0          # a probe answer slower than this means starvation
QUIET_BUSY = 10.0         # % busy per CPU below which the machine counts as quiet
TAIL_MAX = 1.0            # wrk max latency at or above this (s): long tail
DRIFT_MAX = 10.0          # % change of an app's in-process cost, before vs after: noisy


def split_workers(server):
    """'gunicorn-sync-w2' -> ('gunicorn-sync', 2); 'trestle' -> ('trestle', 1)."""
    m = re.fullmatch(r"(.+)-w(\d+)", server)
    return (m.group(1), int(m.group(2))) if m else (server, 1)


def base_of(server):
    return split_workers(server)[0]


def workers_of(server):
    return split_workers(server)[1]


def multi_worker(opts):
    return any(workers_of(s) > 1 for s in opts.servers)


def log(msg):
    try:
        print(msg, file=sys.stderr, flush=True)
    except BrokenPipeError:  # e.g. piped into head: keep benchmarking, keep the report
        pass


# ---------------------------------------------------------------- options

def parse_list(text, known, aliases, what, groups=None):
    """Comma list of names from known (or their aliases); a group name
    (default: 'all', every known name) stands for its members."""
    groups = groups or {"all": known}
    out = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        if item in groups:
            out.extend(k for k in groups[item] if k not in out)
            continue
        item = aliases.get(item, item)
        if item not in known:
            sys.exit(f"bench: unknown {what} '{item}' (known: {', '.join(known)})")
        if item not in out:
            out.append(item)
    if not out:
        sys.exit(f"bench: no {what} selected")
    return out


def parse_servers(text):
    """Like parse_list, and any server may carry a worker count: 'trestle-w2',
    'gunicorn-sync-w2' (or 'sync-w2'), 'uvicorn-uvloop-w2'. Without one it runs
    one worker process; an explicit '-w1' passes the count (trestle --workers 1
    is the same single process as plain trestle)."""
    out = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        if item == "all":
            out.extend(k for k in SERVERS if k not in out)
            continue
        base, n = split_workers(item)
        suffixed = base != item
        base = SERVER_ALIASES.get(base, base)
        if base not in SERVER_INTERFACES:
            sys.exit(f"bench: unknown server '{item}' (known: {', '.join(SERVERS)}, "
                     "each optionally with -wN for N worker processes, e.g. trestle-w2)")
        if n < 1:
            sys.exit(f"bench: server '{item}': the worker count must be >= 1")
        name = f"{base}-w{n}" if suffixed else base
        if name not in out:
            out.append(name)
    if not out:
        sys.exit("bench: no server selected")
    return out


def parse_duration(text):
    """wrk-style duration ('10s', '2s', '1m', '500ms' is not wrk's) -> seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", text.strip())
    if not m:
        sys.exit(f"bench: bad duration '{text}' (use e.g. 10s, 30, 1m)")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if value < 1 or value != int(value):
        sys.exit(f"bench: duration '{text}' must be a whole number of seconds >= 1")
    return int(value)


def options(argv):
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="Benchmark trestle with wrk: against gunicorn sync and gthread on WSGI "
                    "apps, against uvicorn and hypercorn on ASGI apps, against nginx on static "
                    "and proxy mounts (--apps mounts --servers trestle,nginx). "
                    "Every option can also be set by the environment variable in brackets.")
    p.add_argument("--apps", default=env("APPS", "all"),
                   help="comma list of: " + ", ".join(APPS) + "; all (the Python apps: "
                        + ", ".join(APP_GROUPS["all"]) + "), mounts (static and proxy mounts "
                        "against nginx: " + ", ".join(APP_GROUPS["mounts"]) + ") [APPS] "
                        "(default all)")
    p.add_argument("--servers", default=env("SERVERS", ",".join(DEFAULT_SERVERS)),
                   help="comma list of: " + ", ".join(SERVERS) + ", all [SERVERS] (default all "
                        "but hypercorn-asyncio and trestle-no-flask-async); each runs only "
                        "the apps of its interface; NAME-wN runs N worker processes "
                        "(e.g. trestle-w2, gunicorn-sync-w2, uvicorn-uvloop-w2; needs --no-pin)")
    p.add_argument("--duration", default=env("DURATION", "10s"),
                   help="wrk -d for each measured run [DURATION] (default 10s)")
    p.add_argument("--runs", type=int, default=int(env("RUNS", "3")),
                   help="measured runs per app and server; the median by req/s is "
                        "reported [RUNS] (default 3)")
    p.add_argument("--warmup", default=env("WARMUP", "2s"),
                   help="wrk warm-up before the measured runs, 0 for none [WARMUP] (default 2s)")
    p.add_argument("--connections", type=int, default=int(env("CONNECTIONS", "64")),
                   help="wrk -c for every app but sleep [CONNECTIONS] (default 64)")
    p.add_argument("--sleep-connections", type=int, default=int(env("SLEEP_CONNECTIONS", "256")),
                   help="wrk -c for the sleep app [SLEEP_CONNECTIONS] (default 256)")
    p.add_argument("--threads", type=int, default=int(env("THREADS", "8")),
                   help="trestle --threads and gunicorn gthread --threads [THREADS] (default 8)")
    p.add_argument("--trestle", default=env("TRESTLE", os.path.join(ROOT, "build", "trestle")),
                   help="trestle binary [TRESTLE] (default build/trestle)")
    p.add_argument("--trestle-args", default=env("TRESTLE_ARGS", ""),
                   help="extra trestle flags, shell-quoted [TRESTLE_ARGS]")
    p.add_argument("--no-pin", action="store_true", default=env("PIN", "1") == "0",
                   help="do not pin the server to CPU 0 and wrk to CPU 1 [PIN=0]")
    p.add_argument("--no-probe", action="store_true", default=env("PROBE", "1") == "0",
                   help="no starvation probe connection during measured runs [PROBE=0]")
    p.add_argument("--no-inprocess", action="store_true", default=env("INPROCESS", "1") == "0",
                   help="skip measuring each app's own cost in-process [INPROCESS=0]")
    p.add_argument("--interleave", action="store_true", default=env("INTERLEAVE", "0") == "1",
                   help="start all of an app's servers at once and measure them in turns (run 1 "
                        "of each, then run 2 of each, ...) instead of one server after the "
                        "other, so drift in the machine's speed hits all alike [INTERLEAVE=1]")
    p.add_argument("--quiet-wait", type=float, default=float(env("QUIET_WAIT", "60")),
                   help="before each measured run, wait up to this many seconds for both "
                        "CPUs to be idle (under 10%% busy for a second); 0 to skip "
                        "[QUIET_WAIT] (default 60)")
    p.add_argument("--output", default=env("OUTPUT", os.path.join(BENCH_DIR, "results", "latest.md")),
                   help="report file [OUTPUT] (default bench/results/latest.md)")
    a = p.parse_args(argv)
    a.apps = parse_list(a.apps, list(APPS), APP_ALIASES, "app", APP_GROUPS)
    a.servers = parse_servers(a.servers)
    a.pairs = [(app, server) for app in a.apps for server in a.servers
               if APPS[app].interface in SERVER_INTERFACES[base_of(server)]]
    a.upstream = None      # the proxy app's upstream Server while it runs
    a.static_dir = None    # where the static apps' files are, once written
    if multi_worker(a) and not a.no_pin:
        sys.exit("bench: servers with several worker processes need both cores: add --no-pin "
                 "(server and wrk then both run unpinned, for every server of the run)")
    if not a.pairs:
        sys.exit("bench: none of the selected servers speaks the selected apps' interface "
                 "(WSGI: trestle, gunicorn-*; ASGI: trestle, uvicorn-*, hypercorn*)")
    a.duration_s = parse_duration(a.duration)
    a.warmup_s = 0 if a.warmup.strip() in ("0", "0s") else parse_duration(a.warmup)
    if a.runs < 1:
        sys.exit("bench: --runs must be >= 1")
    if a.connections < 1 or a.sleep_connections < 1 or a.threads < 1:
        sys.exit("bench: --connections, --sleep-connections and --threads must be >= 1")
    return a


# ---------------------------------------------------------------- machine

def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


PACKAGES = ["gunicorn", "flask", "asgiref", "uvicorn", "httptools", "h11", "uvloop", "hypercorn",
            "quart", "starlette"]
PACKAGE_VERSIONS = ("import importlib.metadata as m, json\nv = {}\nfor p in %r:\n"
                    "    try: v[p] = m.version(p)\n    except Exception: v[p] = 'missing'\n"
                    "print(json.dumps(v))" % PACKAGES)


def nginx_version():
    try:   # nginx -v writes to stderr
        out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=10)
        return (out.stderr or out.stdout).strip().removeprefix("nginx version: ") or "?"
    except (OSError, subprocess.SubprocessError):
        return "missing"


def machine_facts(opts):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    try:
        versions = json.loads(sh([PYTHON, "-c", PACKAGE_VERSIONS]))
    except ValueError:
        pass
    wver = sh(["wrk", "--version"]).splitlines()
    tver = sh([opts.trestle, "--version"]) if os.access(opts.trestle, os.X_OK) else "missing"
    rev = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    # Changes to the harness or the docs do not change what is measured.
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--",
                ".", ":!bench", ":!docs"])
    try:
        built = datetime.datetime.fromtimestamp(os.path.getmtime(opts.trestle)).strftime("%Y-%m-%d %H:%M:%S")
    except OSError:
        built = "?"
    return [
        ("nproc", str(os.cpu_count())),
        ("CPU", model),
        ("kernel", platform.release()),
        ("python", sh([PYTHON, "--version"])),
    ] + [(name, versions.get(name, "?")) for name in PACKAGES] + [
        ("wrk", wver[0] if wver else "?"),
        ("nginx", nginx_version()),
        ("trestle", f"{tver} (commit {rev}{', uncommitted changes outside bench/ and docs/' if dirty else ''}; "
                    f"binary built {built})"),
        ("load average at start", " ".join(open("/proc/loadavg").read().split()[:3])),
    ]


def cpu_jiffies():
    """{'cpu0': (busy, total), ...} from /proc/stat. Busy includes irq, softirq, steal."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                v = [int(x) for x in parts[1:]]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                total = sum(v[:8])  # guest time is already in user
                out[parts[0]] = (total - idle, total, v[7] if len(v) > 7 else 0)
    return out


def tree_cpu(root_pid):
    """CPU seconds (user + system) used by root_pid and its live descendants."""
    return tree_stats(root_pid)[0]


def tree_stats(root_pid):
    """(CPU seconds, number of processes) of root_pid and its live descendants:
    a supervisor and its workers, gunicorn's arbiter and its workers,
    uvicorn's parent and its workers."""
    cpu, pids = tree_scan(root_pid)
    return cpu, len(pids)


def tree_scan(root_pid):
    """(CPU seconds, [pids]) of root_pid and its live descendants, root first."""
    children, times = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        pid, ppid = int(name), int(rest[1])
        children.setdefault(ppid, []).append(pid)
        times[pid] = int(rest[11]) + int(rest[12])
    total, todo, pids = 0, [root_pid], []
    while todo:
        pid = todo.pop(0)
        if pid in times:
            pids.append(pid)
        total += times.get(pid, 0)
        todo.extend(sorted(children.get(pid, [])))
    return total / CLK_TCK, pids


def connections_per_worker(root_pid, port):
    """How the server's established connections on port are spread over its
    worker processes: [count per worker], in pid order. The workers are the
    processes of the tree that hold the listening socket, less the root when
    others do too (a supervisor, gunicorn's arbiter and uvicorn's parent keep
    the listener but do not serve)."""
    listen, established = set(), set()
    suffix = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(suffix):
                        (listen if parts[3] == "0A" else established if parts[3] == "01"
                         else set()).add(parts[9])
        except OSError:
            continue
    held = {}
    for pid in tree_scan(root_pid)[1]:
        inodes = []
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.append(link[8:-1])
        except OSError:
            continue
        if any(i in listen for i in inodes):
            held[pid] = len({i for i in inodes if i in established})
    if len(held) > 1:
        held.pop(root_pid, None)
    return [held[pid] for pid in sorted(held)]


# ---------------------------------------------------------------- servers

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# Requests on one keep-alive connection before nginx closes it: nginx's
# default is 1,000 (for wrk's connections and for those to the upstream),
# trestle has no such limit, so nginx gets one high enough never to close a
# connection during a run.
NGINX_KEEPALIVE_REQUESTS = 100_000_000
# Idle keep-alive connections each front keeps to the upstream: nginx
# `upstream { keepalive N; }`, trestle's proxy mount `max_idle` (default 32).
# As many as wrk's connections, so neither closes one under a full load.
UPSTREAM_IDLE = 64
# Apps that need the upstream nginx (started once per app, see Upstream).
UPSTREAM_APPS = {"proxy"}
# The upstream's stub_status, asked directly (not through the front) before
# and after each run: how many connections the front opened to it.
UPSTREAM_STATUS = "/upstream-status"


def upstream_accepts(port):
    """Connections the upstream nginx has accepted so far (its stub_status,
    less the one this asks on), or None."""
    try:
        status, body = http_get(port, 2.0, UPSTREAM_STATUS)
        m = re.search(rb"\n\s*(\d+)\s+\d+\s+\d+", body)
        return int(m.group(1)) - 1 if status == 200 and m else None
    except (OSError, http.client.HTTPException):
        return None


def nginx_config(prefix, workers, body):
    """Write PREFIX/nginx.conf: nginx in the foreground (master and `workers`
    worker processes), its error log on stderr (the server's log), no access
    log, its pid and temporary files under PREFIX, and `body` inside http{}.
    Returns the command that runs it."""
    os.makedirs(prefix, exist_ok=True)
    temp = "".join(f"    {d}_temp_path {os.path.join(prefix, d)};\n"
                   for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = (f"daemon off;\nmaster_process on;\nworker_processes {workers};\n"
            f"error_log stderr warn;\npid {os.path.join(prefix, 'nginx.pid')};\n"
            "events { worker_connections 4096; }\n"
            "http {\n    access_log off;\n" + temp +
            "    types { text/plain txt; }\n    default_type text/plain;\n"
            f"    keepalive_requests {NGINX_KEEPALIVE_REQUESTS};\n" + body + "}\n")
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return [NGINX, "-p", prefix, "-e", "stderr", "-c", path]


def nginx_front(opts, app, bind, workers, prefix):
    """nginx as the front for an 'http' app, set up as trestle's mount is:
    static files from the same directory with sendfile, or a proxy to the
    upstream over keep-alive connections, sending the forwarded fields
    trestle's proxy mount sends."""
    if app in STATIC_FILES:
        body = (f"    server {{\n        listen {bind};\n        sendfile on;\n"
                f"        root {opts.static_dir};\n    }}\n")
    else:
        body = (f"    upstream up {{\n        server 127.0.0.1:{opts.upstream.port};\n"
                f"        keepalive {UPSTREAM_IDLE};\n"
                f"        keepalive_requests {NGINX_KEEPALIVE_REQUESTS};\n    }}\n"
                f"    server {{\n        listen {bind};\n        location / {{\n"
                "            proxy_pass http://up;\n"
                "            proxy_http_version 1.1;\n"
                '            proxy_set_header Connection "";\n'
                "            proxy_set_header X-Forwarded-For $remote_addr;\n"
                "            proxy_set_header X-Forwarded-Proto $scheme;\n"
                "            proxy_set_header X-Forwarded-Host $http_host;\n"
                '            proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=$http_host";\n'
                "        }\n    }\n")
    return nginx_config(prefix, workers, body)


def trestle_target(opts, app, logdir):
    """What trestle serves for an app: module:attr, or for the 'http' apps a
    static root or a --config file with the proxy mount (its max_idle is only
    settable there)."""
    if app in STATIC_FILES:
        return [f"static:{opts.static_dir}"]
    if app in UPSTREAM_APPS:
        path = os.path.join(logdir, f"trestle-{app}.toml")
        with open(path, "w") as f:
            f.write(f'[[mount]]\nprefix = "/"\nproxy = "http://127.0.0.1:{opts.upstream.port}"\n'
                    f"max_idle = {UPSTREAM_IDLE}\n")
        return ["--config", path]
    return [APPS[app].target]


def upstream_command(opts, server, app, port, logdir):
    """The upstream of the proxy app: an nginx `return 200` with one worker,
    on wrk's CPU (the front has CPU 0 to itself)."""
    body = (f"    server {{\n        listen 127.0.0.1:{port};\n"
            f'        location / {{ return 200 "{HELLO.decode()}"; }}\n'
            f"        location = {UPSTREAM_STATUS} {{ stub_status; }}\n    }}\n")
    cmd = nginx_config(os.path.join(logdir, f"{app}-{server}"), 1, body)
    return cmd if opts.no_pin else ["taskset", "-c", "1"] + cmd


def server_command(opts, server, app, port, logdir):
    target, appdir = APPS[app].target, APPS[app].dir
    bind = f"127.0.0.1:{port}"
    name = server
    server, workers = split_workers(name)
    if server.startswith("trestle"):
        # ASGI apps run on trestle's default loop (auto: uvloop when it imports).
        cmd = [opts.trestle] + trestle_target(opts, app, logdir) + [
               "--chdir", appdir, "--bind", bind,
               "--threads", str(opts.threads)] + shlex.split(opts.trestle_args)
        if server == "trestle-no-flask-async":
            cmd.append("--no-flask-async")
        if name != server:   # trestle-wN: --workers N (more than 1 starts the supervisor)
            cmd += ["--workers", str(workers)]
    elif server.startswith("gunicorn"):
        cmd = [PYTHON, "-m", "gunicorn", "--chdir", appdir, "--bind", bind,
               "--workers", str(workers)]
        if server == "gunicorn-sync":
            cmd += ["--worker-class", "sync"]
        else:
            cmd += ["--worker-class", "gthread", "--threads", str(opts.threads)]
        cmd.append(target)
    elif server == "nginx":
        cmd = nginx_front(opts, app, bind, workers, os.path.join(logdir, f"{app}-{name}"))
    elif server.startswith("uvicorn"):
        # --no-access-log: uvicorn logs every request by default; trestle,
        # gunicorn and hypercorn do not.
        loop, http = ("uvloop", "httptools") if server == "uvicorn-uvloop" else ("asyncio", "h11")
        cmd = [PYTHON, "-m", "uvicorn", "--app-dir", appdir, "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--loop", loop, "--http", http,
               "--no-access-log", target]
    else:
        # hypercorn 0.13: -w 1 serves in this process (no worker subprocess);
        # it imports the module relative to the working directory (appdir).
        worker = "asyncio" if server == "hypercorn-asyncio" else "uvloop"
        cmd = [PYTHON, "-m", "hypercorn", "--bind", bind, "--workers", str(workers),
               "--worker-class", worker, target]
    if not opts.no_pin:
        cmd = ["taskset", "-c", "0"] + cmd
    return cmd


def http_get(port, timeout, path="/"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Server:
    def __init__(self, opts, server, app, logdir, command=server_command):
        self.name, self.app = server, app
        self.port = free_port()
        self.cmd = command(opts, server, app, self.port, logdir)
        self.logpath = os.path.join(logdir, f"{app}-{server}.log")
        self.logfile = open(self.logpath, "wb")
        self.proc = subprocess.Popen(self.cmd, cwd=APPS[app].dir, stdin=subprocess.DEVNULL,
                                     stdout=self.logfile, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.notes = []

    def log_tail(self, n=15):
        try:
            with open(self.logpath, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def wait_ready(self):
        """Poll with HTTP GETs until the server answers 200 with the app's body."""
        expected = APPS[self.app].body
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it "
                                   f"was ready; log {self.logpath}:\n{self.log_tail()}")
            try:
                status, body = http_get(self.port, 1.0, APPS[self.app].path)
                if status == 200 and body == expected:
                    return time.monotonic() - t0
                last = f"status {status}, body {body[:60]!r}"
            except (OSError, http.client.HTTPException) as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.02)  # poll interval, not a readiness guess
        raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT:.0f}s ({last}); "
                           f"log {self.logpath}:\n{self.log_tail()}")

    def stop(self):
        """SIGTERM, wait; SIGKILL the whole process group on timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            try:
                self.proc.wait(STOP_TIMEOUT)
                took = time.monotonic() - t0
                if took > 5:
                    self.notes.append(f"took {took:.1f}s to exit after SIGTERM")
            except subprocess.TimeoutExpired:
                self.notes.append(f"did not exit {STOP_TIMEOUT:.0f}s after SIGTERM: SIGKILLed")
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
            rc = self.proc.returncode
            if rc not in (0, -signal.SIGTERM) and not any("SIGKILL" in n for n in self.notes):
                self.notes.append(f"exit status {rc} after SIGTERM")
        # Workers left behind by a master that died (same session, same group).
        # A helper may take a moment to notice its parent is gone (uvicorn
        # --workers N leaves multiprocessing's resource tracker, which exits
        # when its pipe closes): up to 2 s before it counts as left behind.
        deadline = time.monotonic() + 2.0
        try:
            while True:
                os.killpg(self.proc.pid, 0)
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.notes.append("left processes behind after exiting: SIGKILLed them")
        except (ProcessLookupError, PermissionError):
            pass
        self.logfile.close()


# ---------------------------------------------------------------- wrk

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def to_seconds(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def to_count(text):
    m = re.fullmatch(r"([\d.]+)([kMG]?)", text)
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]


def parse_wrk(out):
    """The numbers in wrk 4.x's --latency output."""
    r = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise ValueError("no Requests/sec in wrk output")
    r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+),", out)
    r["requests"] = int(m.group(1))
    r["elapsed"] = to_seconds(m.group(2))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+\w+)\s*$", out, re.M)
        r["p" + pct] = to_seconds(m.group(1)) if m else None
    # bench/percentiles.lua's line: the same histogram in µs, with p99.9 and p99.99.
    m = re.search(r"^Latency percentiles \(us\): (.*)$", out, re.M)
    pcts = dict(re.findall(r"(p[\d.]+|max) (\d+)", m.group(1))) if m else {}
    r["p999"] = int(pcts["p99.9"]) * 1e-6 if "p99.9" in pcts else None
    r["p9999"] = int(pcts["p99.99"]) * 1e-6 if "p99.99" in pcts else None
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        r["lat_avg"], r["lat_stdev"], r["lat_max"] = (to_seconds(m.group(i)) for i in (1, 2, 3))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["connect"], r["read"], r["write"], r["timeout"] = (int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["non2xx"]
    return r


def connections_for(opts, app):
    return opts.sleep_connections if APPS[app].sleep else opts.connections


PERCENTILES_LUA = os.path.join(BENCH_DIR, "percentiles.lua")


def wrk_command(opts, port, seconds, connections, path="/"):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
           "-s", PERCENTILES_LUA, f"http://127.0.0.1:{port}{path}"]
    return cmd if opts.no_pin else ["taskset", "-c", "1"] + cmd


def run_wrk(cmd):
    """Run wrk; return (stdout, its CPU seconds)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}:\n{out}")
    return out, ru.ru_utime + ru.ru_stime


class Probe(threading.Thread):
    """One extra client, besides wrk's connections, that sends a GET every
    PROBE_INTERVAL during a measured run. A server that serves some connections
    and starves the rest (uWSGI with keep-alive in the anchors) leaves it
    unanswered; a fair one answers it about as fast as wrk's p99."""

    def __init__(self, port, path="/"):
        super().__init__(daemon=True)
        self.port, self.path, self.stop_event = port, path, threading.Event()
        self.latencies, self.failures = [], []
        self.reconnects = 0  # idle keep-alive connections the server had closed

    def get(self, conn):
        conn.request("GET", self.path)
        resp = conn.getresponse()
        resp.read()
        return resp

    def run(self):
        conn, reused = None, False
        while not self.stop_event.is_set():
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2 * PROBE_SLOW + 1)
                    reused = False
                try:
                    resp = self.get(conn)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if not reused:
                        raise
                    # The server closed the kept-alive connection after the last
                    # answer without saying so (hypercorn 0.13 does when the app
                    # never called receive()); retry once on a new one, as HTTP
                    # clients (and wrk) do.
                    self.reconnects += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2 * PROBE_SLOW + 1)
                    resp = self.get(conn)
                self.latencies.append(time.monotonic() - t0)
                reused = True
                if resp.status != 200:
                    self.failures.append(f"status {resp.status}")
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                self.latencies.append(time.monotonic() - t0)
                self.failures.append(type(e).__name__)
                if conn is not None:
                    conn.close()
                conn = None
            self.stop_event.wait(PROBE_INTERVAL)
        if conn is not None:
            conn.close()

    def finish(self):
        self.stop_event.set()
        self.join()
        lat = sorted(self.latencies)
        return {"n": len(lat), "max": lat[-1] if lat else None,
                "median": statistics.median(lat) if lat else None,
                "slow": sum(1 for x in lat if x >= PROBE_SLOW), "failures": self.failures,
                "reconnects": self.reconnects}


def measured_run(opts, srv):
    path = APPS[srv.app].path
    cmd = wrk_command(opts, srv.port, opts.duration_s, connections_for(opts, srv.app), path)
    probe = None if opts.no_probe else Probe(srv.port, path)
    upstream = opts.upstream
    up_before = tree_cpu(upstream.proc.pid) if upstream else 0.0
    accepts_before = upstream_accepts(upstream.port) if upstream else None
    cpu_before, srv_before, t0 = cpu_jiffies(), tree_cpu(srv.proc.pid), time.monotonic()
    if probe:
        probe.start()
    # Halfway through: how wrk's connections are spread over the workers
    # (they share one listener: whichever process accepts keeps the
    # connection for the whole run).
    spread = []
    sampler = threading.Timer(opts.duration_s / 2, lambda: spread.append(
        connections_per_worker(srv.proc.pid, srv.port)))
    sampler.start()
    out, wrk_cpu = run_wrk(cmd)
    sampler.join()
    probe_result = probe.finish() if probe else None
    wall = time.monotonic() - t0
    srv_after, procs = tree_stats(srv.proc.pid)
    srv_cpu = srv_after - srv_before
    # The proxy app's upstream nginx runs on wrk's CPU: its CPU is ours, not
    # other work's.
    up_cpu = tree_cpu(upstream.proc.pid) - up_before if upstream else 0.0
    accepts_after = upstream_accepts(upstream.port) if upstream else None
    cpu_after = cpu_jiffies()
    r = parse_wrk(out)
    r["raw"], r["probe"] = out, probe_result
    r["server_cpu"], r["procs"], r["wall"] = srv_cpu, procs, wall
    r["cores"] = srv_cpu / wall       # CPU seconds per second: how many cores the server kept busy
    r["conns"] = spread[0] if spread else []
    r["cpu_us_per_req"] = srv_cpu / r["requests"] * 1e6 if r["requests"] else None
    if upstream:
        r["upstream_cpu_us_per_req"] = up_cpu / r["requests"] * 1e6 if r["requests"] else None
        # New connections to the upstream during the run (the status request
        # before it is one): about none when the front keeps them alive.
        if accepts_before is not None and accepts_after is not None:
            r["upstream_connections"] = accepts_after - accepts_before - 1
    r["wrk_cores"] = (wrk_cpu + up_cpu) / wall   # how busy wrk's CPU was with wrk (and the upstream)
    # What else ran on the two CPUs: busy time minus ours (pinned runs only).
    r["other"] = {}
    for cpu, ours in (("cpu0", srv_cpu), ("cpu1", wrk_cpu + up_cpu)):
        if cpu in cpu_before and cpu in cpu_after:
            busy = (cpu_after[cpu][0] - cpu_before[cpu][0]) / CLK_TCK
            steal = (cpu_after[cpu][2] - cpu_before[cpu][2]) / CLK_TCK
            r["other"][cpu] = (max(0.0, busy - ours) / wall * 100, steal / wall * 100)
    # Unpinned, only the sum over all CPUs says something: everything busy
    # minus the server and wrk (the harness's own probe is in "others"), in %
    # of one CPU.
    busy_all = sum(cpu_after[c][0] - cpu_before[c][0] for c in cpu_after if c in cpu_before) / CLK_TCK
    r["other"]["all"] = (max(0.0, busy_all - srv_cpu - wrk_cpu - up_cpu) / wall * 100, 0.0)
    return r


# ---------------------------------------------------------------- report

def fmt_time(s):
    if s is None:
        return "?"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 0.01:
        return f"{s * 1e3:.0f} ms" if s >= 0.1 else f"{s * 1e3:.1f} ms"
    return f"{s * 1e3:.2f} ms"


def flags_for(opts, runs):
    """Warnings for one app and server, over all its runs."""
    flags = []
    errs = {k: sum(r[k] for r in runs) for k in ("connect", "read", "write", "timeout", "non2xx")}
    if errs["timeout"]:
        flags.append(f"STARVATION: {errs['timeout']} wrk timeouts (requests unanswered for 2 s; "
                     "their latency is missing from the distribution)")
    if errs["non2xx"]:
        flags.append(f"{errs['non2xx']} non-2xx/3xx responses")
    sock = {k: v for k, v in errs.items() if k in ("connect", "read", "write") and v}
    if sock:
        flags.append("socket errors: " + ", ".join(f"{k} {v}" for k, v in sock.items()))
    reconnects = sum(r["probe"].get("reconnects", 0) for r in runs if r.get("probe"))
    if reconnects:
        flags.append(f"socket errors: the server closed the probe's idle keep-alive connection "
                     f"{reconnects} time(s) without a Connection: close (so wrk's read errors are "
                     "most likely such closes: wrk reconnects and counts each as an error)")
    tail = [r["lat_max"] for r in runs if r.get("lat_max") and r["lat_max"] >= TAIL_MAX]
    if tail:
        flags.append(f"long tail: max latency {fmt_time(max(tail))} in {len(tail)} run(s)")
    probes = [r["probe"] for r in runs if r.get("probe")]
    if probes:
        slow = sum(p["slow"] for p in probes)
        fails = [f for p in probes for f in p["failures"]]
        worst = max((p["max"] for p in probes if p["max"] is not None), default=None)
        if slow or fails:
            flags.append(f"STARVATION: the probe connection got {slow} answer(s) slower than "
                         f"{PROBE_SLOW:.0f} s and {len(fails)} failure(s) (worst {fmt_time(worst)}); "
                         "if the run is also flagged noisy, other load may be the cause")
    rps = [r["rps"] for r in runs]
    if len(rps) > 1:
        spread = (max(rps) - min(rps)) / statistics.median(rps) * 100
        if spread > NOISE_SPREAD:
            flags.append(f"noisy: req/s spread {spread:.0f}% across runs")
    if opts.no_pin:
        worst = max((r["other"].get("all", (0, 0))[0] for r in runs), default=0)
        if worst > NOISE_ALL:
            flags.append(f"noisy: other work used up to {worst:.0f}% of a CPU (both CPUs together, "
                         "besides the server and wrk)")
    else:
        worst0 = max((r["other"].get("cpu0", (0, 0))[0] for r in runs), default=0)
        worst1 = max((r["other"].get("cpu1", (0, 0))[0] for r in runs), default=0)
        if worst0 > NOISE_CPU0:
            flags.append(f"noisy: other work used up to {worst0:.0f}% of CPU 0 (the server's)")
        if worst1 > NOISE_CPU1:
            flags.append(f"noisy: other work used up to {worst1:.0f}% of CPU 1 (wrk's)")
    return flags


def short_flag(flag):
    """The table's one-word form of a flag; latest.md's details have the rest."""
    for word in ("STARVATION", "noisy", "long tail", "socket errors"):
        if flag.startswith(word):
            return word
    if "non-2xx" in flag:
        return "non-2xx"
    if flag.startswith("machine busy"):
        return "noisy"
    return flag


def median_run(runs):
    """The run with the median req/s (for an even count, the lower middle one)."""
    return sorted(runs, key=lambda r: r["rps"])[(len(runs) - 1) // 2]


def table_apps(opts, interface):
    return [a for a in opts.apps if APPS[a].interface == interface
            and any(p[0] == a for p in opts.pairs)]


def table_servers(opts, interface):
    return [s for s in opts.servers if interface in SERVER_INTERFACES[base_of(s)]]


def baseline_server(opts, app, workers=1):
    """The server a row's ratio is taken against: the interface's baseline
    with the same number of worker processes."""
    base = BASELINE[APPS[app].interface]
    return next((s for s in opts.servers if split_workers(s) == (base, workers)), None)


def median_of(results, app, server):
    res = results.get((app, server)) if server else None
    return median_run(res["runs"]) if res and res.get("runs") else None


def baseline_rps(opts, results, app, workers=1):
    m = median_of(results, app, baseline_server(opts, app, workers))
    return m["rps"] if m else None


def build_table(opts, results, interface):
    """One Markdown table per interface; the WSGI one keeps its original columns.
    With several worker processes in the run, each ratio is against the
    baseline with the same worker count, and the CPU columns are for the
    whole process tree: CPU seconds per 1,000 requests, and the cores it kept
    busy (CPU seconds per second)."""
    asgi, multi = interface == "asgi", multi_worker(opts)
    ratio_head = f"× {BASELINE_LABEL[interface]}" + (", same workers" if multi else "")
    cpu_head = ("processes | server CPU s per 1,000 req | server cores busy" if multi
                else "server CPU µs/req")
    head = ("| app | server | " + ("conns | " if asgi else "") + "req/s | p50 | p99 | p99.9 | errors | "
            f"{ratio_head} | {cpu_head} | flags |\n"
            "|---|---|" + ("---:|" if asgi else "") + "---:|---:|---:|---:|---:|---:|"
            + ("---:|---:|---:|" if multi else "---:|") + "---|")
    rows = [head]
    for app in table_apps(opts, interface):
        conns = f"{connections_for(opts, app)} | " if asgi else ""
        for server in table_servers(opts, interface):
            res = results.get((app, server))
            label = APPS[app].label
            if not res or not res.get("runs"):
                err = res.get("error", "not run") if res else "not run"
                rows.append(f"| {label} | {server} | {conns}– | – | – | – | – | – | "
                            + ("– | – | – | " if multi else "– | ") + f"FAILED: {err.splitlines()[0]} |")
                continue
            m = median_run(res["runs"])
            base_rps = baseline_rps(opts, results, app, workers_of(server))
            ratio = f"{m['rps'] / base_rps:.2f}×" if base_rps else "–"
            errors = sum(r["errors"] for r in res["runs"])
            if multi:
                cpu = (f"{m.get('procs', '?')} | "
                       + (f"{m['cpu_us_per_req'] / 1000:.3f}" if m.get("cpu_us_per_req") else "?")
                       + f" | {m['cores']:.2f}" if m.get("cores") is not None else " | ?")
            else:
                cpu = f"{m['cpu_us_per_req']:.0f}" if m.get("cpu_us_per_req") else "?"
            flags = "; ".join(dict.fromkeys(short_flag(f) for f in res["flags"] + res["server_notes"]))
            rows.append(f"| {label} | {server} | {conns}{m['rps']:,.0f} | {fmt_time(m['p50'])} | "
                        f"{fmt_time(m['p99'])} | {fmt_time(m.get('p999'))} | {errors} | {ratio} | "
                        f"{cpu} | {flags} |")
    return "\n".join(rows) if len(rows) > 1 else ""


def cpu_median(results, app, server):
    """The median over an app and server's runs of the server CPU µs per request."""
    res = results.get((app, server)) if server else None
    cpu = [r["cpu_us_per_req"] for r in (res or {}).get("runs", []) if r.get("cpu_us_per_req")]
    return statistics.median(cpu) if cpu else None


def trestle_servers(opts):
    """The selected plain trestle servers (any worker count), in order."""
    return [s for s in opts.servers if base_of(s) == "trestle"]


def targets_text(opts, results):
    lines = []
    for app in opts.apps:
        label = BASELINE_LABEL[APPS[app].interface]
        conns = f" at {connections_for(opts, app)} connections" if APPS[app].sleep else ""
        for server in trestle_servers(opts):
            workers = workers_of(server)
            target = TARGETS.get(app) if workers == 1 else WORKERS_TARGETS.get(app)
            t = median_of(results, app, server)
            b_server = baseline_server(opts, app, workers)
            b = median_of(results, app, b_server)
            if target is None or not (t and b):
                continue
            ratio = t["rps"] / b["rps"]
            ok = "met" if ratio >= target else "NOT met"
            if workers == 1 and opts.no_pin:
                # The one-process targets are for the pinned setup.
                ok = "not judged: that target is for the pinned setup"
            lines.append(f"- {APPS[app].label}{conns}: {server} is {ratio:.2f}× "
                         f"{b_server if workers > 1 else label} ({t['rps']:,.0f} vs {b['rps']:,.0f} "
                         f"req/s); target ≥ {target:g}×: **{ok}**")
        # Several workers must not cost more CPU per request than one. The
        # median over the runs of each one's CPU per request: the run with the
        # median req/s is not necessarily the typical one for CPU.
        one = next((s for s in trestle_servers(opts) if workers_of(s) == 1), None)
        o = cpu_median(results, app, one)
        for server in trestle_servers(opts):
            if workers_of(server) == 1:
                continue
            t = cpu_median(results, app, server)
            if not (o and t):
                continue
            ratio = t / o
            ok = "met" if ratio <= WORKERS_CPU_MAX else "NOT met"
            lines.append(f"- {APPS[app].label}{conns}: {server} used {ratio:.2f}× the CPU per "
                         f"request of {one} ({t / 1000:.3f} vs {o / 1000:.3f} CPU s per 1,000 "
                         f"requests, all processes, median of the runs); target ≤ "
                         f"{WORKERS_CPU_MAX:g}×: **{ok}**")
    return "\n".join(lines)


def limits_table(opts, results, inproc):
    """The app's own cost in-process against what the servers reached."""
    rows = ["| app | app's own cost, µs/call (in-process, before → after) | limit on one core, req/s | "
            "trestle req/s | trestle, % of limit | trestle server overhead µs/req | "
            "baseline | baseline server overhead µs/req |",
            "|---|---:|---:|---:|---:|---:|---|---:|"]
    # One worker process each: the limit is one core's.
    trestle = next((s for s in trestle_servers(opts) if workers_of(s) == 1), "trestle")
    for app in opts.apps:
        spec = APPS[app]
        base = baseline_server(opts, app) or BASELINE[spec.interface]
        t, b = median_of(results, app, trestle), median_of(results, app, base)
        if spec.sleep and not (t or b):
            continue
        if spec.sleep:
            conns = connections_for(opts, app)
            limit = conns / SLEEP_S
            cost = f"(waits {SLEEP_S * 1e3:.0f} ms)"
            app_us = None
        else:
            ok = [m["us_per_call"] for m in (inproc.get(app) or {}).values() if "us_per_call" in m]
            if not ok:
                continue
            app_us = statistics.mean(ok)
            limit = 1e6 / app_us
            cost = " → ".join(f"{u:.2f}" if u < 10 else f"{u:.1f}" for u in ok)
        t_rps = f"{t['rps']:,.0f}" if t else "–"
        pct = f"{t['rps'] / limit * 100:.0f}%" if t else "–"

        def overhead(m):
            if not m or not m.get("cpu_us_per_req") or app_us is None:
                return "–"
            return f"{m['cpu_us_per_req'] - app_us:.0f}"
        limit_txt = f"{limit:,.0f}" + (f" ({conns} connections / {SLEEP_S * 1e3:.0f} ms)"
                                        if spec.sleep else "")
        rows.append(f"| {spec.label} | {cost} | {limit_txt} | {t_rps} | {pct} | {overhead(t)} | "
                    f"{base} | {overhead(b)} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def drift_notes(inproc):
    """Flag apps whose in-process cost changed between before and after."""
    out = []
    for app, ip in inproc.items():
        b, a = ip.get("before", {}), ip.get("after", {})
        if "us_per_call" in b and "us_per_call" in a:
            change = (a["us_per_call"] - b["us_per_call"]) / b["us_per_call"] * 100
            if abs(change) > DRIFT_MAX:
                out.append(f"- noisy: {APPS[app].label}'s own cost in-process went from "
                           f"{b['us_per_call']:.2f} µs/call before its servers ran to "
                           f"{a['us_per_call']:.2f} after ({change:+.0f}%): the machine's speed "
                           "changed during its runs, so compare its servers' ratios with care")
    return out


def details_text(opts, results):
    out = []
    for app in opts.apps:
        for server in opts.servers:
            res = results.get((app, server))
            if not res:
                continue
            out.append(f"### {APPS[app].label}, {server}\n")
            out.append(f"Server: `{shlex.join(res.get('cmd', []))}` (ready {res.get('ready', 0):.2f} s after start"
                       + (f"; trestle logged: {res['serving']}" if res.get("serving") else "") + ")  ")
            out.append(f"wrk: `{shlex.join(res.get('wrk_cmd', []))}`\n")
            if res.get("error"):
                out.append("FAILED:\n\n```\n" + res["error"] + "\n```\n")
            if res.get("runs"):
                out.append("| run | req/s | requests | p50 | p75 | p90 | p99 | p99.9 | p99.99 | max | errors "
                           "(connect/read/write/timeout/non-2xx) | server CPU µs/req | "
                           "server processes, cores busy, connections per worker halfway | "
                           + ("others on both CPUs (% of one) | " if opts.no_pin else "others on CPU0 / CPU1 | ")
                           + "probe n, median, max |"
                           + (" upstream: CPU µs/req, connections opened to it, CPU 1 busy "
                              "with wrk and it |"
                              if app in UPSTREAM_APPS else ""))
                out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|"
                           + ("---|" if app in UPSTREAM_APPS else ""))
                for i, r in enumerate(res["runs"], 1):
                    o = r["other"]
                    cpus = ("all",) if opts.no_pin else ("cpu0", "cpu1")
                    others = " / ".join(f"{o[c][0]:.1f}%" for c in cpus if c in o) or "?"
                    tree = f"{r.get('procs', '?')}, {r['cores']:.2f}" if "cores" in r else "?"
                    tree += f", {'/'.join(map(str, r['conns']))}" if r.get("conns") else ""
                    p = r.get("probe")
                    probe = (f"{p['n']}, {fmt_time(p['median'])}, {fmt_time(p['max'])}"
                             + (f" ({p['reconnects']} reconnects)" if p.get("reconnects") else "")
                             if p and p["n"] else "–")
                    cpu = f"{r['cpu_us_per_req']:.0f}" if r.get("cpu_us_per_req") else "?"
                    up = ""
                    if app in UPSTREAM_APPS:
                        u = r.get("upstream_cpu_us_per_req")
                        up = ((f" {u:.0f}" if u else " ?") + f", {r.get('upstream_connections', '?')}"
                              f", {r.get('wrk_cores', 0):.2f} |")
                    out.append(f"| {i} | {r['rps']:,.0f} | {r['requests']:,} | {fmt_time(r['p50'])} | "
                               f"{fmt_time(r['p75'])} | {fmt_time(r['p90'])} | {fmt_time(r['p99'])} | "
                               f"{fmt_time(r.get('p999'))} | {fmt_time(r.get('p9999'))} | "
                               f"{fmt_time(r.get('lat_max'))} | {r['connect']}/{r['read']}/{r['write']}/"
                               f"{r['timeout']}/{r['non2xx']} | {cpu} | {tree} | {others} | {probe} |{up}")
                out.append("")
            for f in res.get("flags", []) + res.get("server_notes", []):
                out.append(f"- {f}")
            out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- main

def check_tools(opts):
    missing = []
    for tool in ["wrk"] + ([] if opts.no_pin else ["taskset"]):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            missing.append(tool)
    if missing:
        sys.exit(f"bench: missing {', '.join(missing)} (apt-get install wrk util-linux)")
    if any(s.startswith("trestle") for _, s in opts.pairs) and not os.access(opts.trestle, os.X_OK):
        sys.exit(f"bench: no trestle binary at {opts.trestle} (build it first, e.g. .ci/build)")
    servers = {base_of(server) for _, server in opts.pairs}
    apps = {app for app, _ in opts.pairs}
    if ("nginx" in servers or apps & UPSTREAM_APPS) and not os.access(NGINX, os.X_OK):
        sys.exit("bench: nginx missing (apt-get install nginx, or .ci/deps): it is the baseline "
                 "of the static and proxy mounts and the proxy's upstream")
    needs = []  # (module to import, Debian package)
    if any(s.startswith("gunicorn") for s in servers):
        needs.append(("gunicorn", "gunicorn"))
    if "uvicorn-uvloop" in servers:
        needs += [("uvicorn", "python3-uvicorn"), ("uvloop", "python3-uvloop"),
                  ("httptools", "python3-httptools")]
    if "uvicorn-h11" in servers:
        needs += [("uvicorn", "python3-uvicorn"), ("h11", "python3-h11")]
    if "hypercorn" in servers:
        needs += [("hypercorn", "python3-hypercorn"), ("uvloop", "python3-uvloop")]
    if "hypercorn-asyncio" in servers:
        needs.append(("hypercorn", "python3-hypercorn"))
    for app, module, package in (("flask", "flask", "python3-flask"),
                                 ("flask-async", "flask", "python3-flask"),
                                 ("flask-async", "asgiref", "python3-asgiref"),
                                 ("quart", "quart", "python3-quart"),
                                 ("starlette", "starlette", "python3-starlette")):
        if app in apps:
            needs.append((module, package))
    for module, package in dict.fromkeys(needs):
        if subprocess.run([PYTHON, "-c", f"import {module}"], capture_output=True).returncode:
            sys.exit(f"bench: {module} missing for /usr/bin/python3 (apt-get install {package})")
    if not opts.no_pin and (os.cpu_count() or 1) < 2:
        sys.exit("bench: pinning needs 2 CPUs; use --no-pin")


def wait_quiet(max_wait):
    """Wait up to max_wait seconds until both CPUs were under QUIET_BUSY % busy
    for a whole second (another user's build or tests skew every number).
    Returns the seconds waited, or None if the machine never went quiet."""
    deadline = time.monotonic() + max_wait
    t0, waited_log = time.monotonic(), False
    while True:
        before = cpu_jiffies()
        time.sleep(1.0)  # the sampling window
        after = cpu_jiffies()
        busy = {c: (after[c][0] - before[c][0]) / max(1, after[c][1] - before[c][1]) * 100
                for c in after if c in before}
        if all(b < QUIET_BUSY for b in busy.values()):
            return time.monotonic() - t0
        if time.monotonic() >= deadline:
            return None
        if not waited_log:
            log("  waiting for the machine to go quiet (" +
                ", ".join(f"{c} {b:.0f}% busy" for c, b in sorted(busy.items())) + ")")
            waited_log = True


def write_static_files(logdir):
    """The static apps' files, in LOGDIR/static: both fronts serve this
    directory. World-readable, since nginx's worker runs as nobody when the
    harness runs as root."""
    root = os.path.join(logdir, "static")
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)
    for app, (name, size) in STATIC_FILES.items():
        path = os.path.join(root, name)
        with open(path, "wb") as f:
            f.write(static_body(size))
        os.chmod(path, 0o644)
    return root


def measure_inprocess(opts, app, logdir, when):
    """The app's own cost: bench/inprocess.py, pinned to the server's CPU."""
    spec = APPS[app]
    cmd = [PYTHON, os.path.join(BENCH_DIR, "inprocess.py"), spec.dir, spec.target,
           spec.interface, "4"]
    if not opts.no_pin:
        cmd = ["taskset", "-c", "0"] + cmd
    if opts.quiet_wait > 0 and wait_quiet(opts.quiet_wait) is None:
        log(f"  machine still busy after {opts.quiet_wait:.0f}s; measuring anyway")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=spec.dir)
        with open(os.path.join(logdir, f"{app}-inprocess-{when}.log"), "w") as f:
            f.write(proc.stdout + proc.stderr)
        if proc.returncode:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if r.get("status") != 200 or r.get("body", "").encode("latin-1") != spec.body:
            raise RuntimeError(f"unexpected response {r.get('status')} {r.get('body')!r}")
    except (OSError, ValueError, IndexError, RuntimeError, subprocess.SubprocessError) as e:
        log(f"  in-process measurement FAILED: {e}")
        return {"error": str(e), "cmd": cmd}
    r["cmd"] = cmd
    log(f"  in-process: {r['us_per_call']:.2f} µs/call ({r['calls_per_s']:,.0f} calls/s"
        + (f", {r['loop']} loop" if r.get("loop") else "") + ")")
    return r


class Bench:
    """One app on one server: start, warm up, measured runs, stop."""

    def __init__(self, opts, app, server, logdir):
        self.opts, self.app, self.server = opts, app, server
        self.res = {"runs": [], "flags": [], "server_notes": []}
        self.conns = connections_for(opts, app)
        self.busy_starts = 0
        self.srv = None
        self.logdir = logdir

    def start(self):
        """Start the server, wait until it answers, warm it up. False if it failed."""
        opts, res = self.opts, self.res
        try:
            self.srv = srv = Server(opts, self.server, self.app, self.logdir)
            res["cmd"] = srv.cmd
            res["wrk_cmd"] = wrk_command(opts, srv.port, opts.duration_s, self.conns,
                                         APPS[self.app].path)
            res["ready"] = srv.wait_ready()
            if self.server.startswith("trestle"):
                # e.g. "serving asgi_hello:app (ASGI, uvloop loop)": which loop it chose.
                m = re.search(r"serving \S+ \(([^)]*)\)", srv.log_tail(40))
                if m:
                    res["serving"] = m.group(1)
            if opts.warmup_s:
                run_wrk(wrk_command(opts, srv.port, opts.warmup_s, self.conns, APPS[self.app].path))
            return True
        except (RuntimeError, ValueError, OSError) as e:
            self.fail(e)
            return False

    def run(self, i):
        """Measured run i (0-based). False if it failed."""
        opts, res, srv = self.opts, self.res, self.srv
        try:
            if opts.quiet_wait > 0 and wait_quiet(opts.quiet_wait) is None:
                log(f"  machine still busy after {opts.quiet_wait:.0f}s; running anyway")
                self.busy_starts += 1
            r = measured_run(opts, srv)
            res["runs"].append(r)
            probe = r["probe"]
            log(f"  run {i + 1}/{opts.runs}: {r['rps']:,.0f} req/s, p50 {fmt_time(r['p50'])}, "
                f"p99 {fmt_time(r['p99'])}, p99.9 {fmt_time(r.get('p999'))}, "
                f"max {fmt_time(r.get('lat_max'))}, errors {r['errors']}"
                + (f", probe max {fmt_time(probe['max'])}" if probe and probe["n"] else "")
                + f", server CPU {r['cpu_us_per_req'] or 0:.0f} µs/req over {r['procs']} process(es), "
                  f"{r['cores']:.2f} cores"
                + (f", connections per worker {'/'.join(map(str, r['conns']))}" if len(r["conns"]) > 1 else "")
                + (f", others {r['other'].get('all', (0, 0))[0]:.0f}% of a CPU" if opts.no_pin
                   else f", CPU0 others {r['other'].get('cpu0', (0, 0))[0]:.0f}%"))
            if srv.proc.poll() is not None:
                raise RuntimeError(f"{self.server} exited with {srv.proc.returncode} during the "
                                   f"run; log {srv.logpath}:\n{srv.log_tail()}")
            return True
        except (RuntimeError, ValueError, OSError) as e:
            self.fail(e)
            return False

    def fail(self, e):
        self.res["error"] = str(e)
        log(f"  FAILED ({self.server}): {e}")

    def finish(self):
        res = self.res
        if self.busy_starts:
            res["server_notes"].append(f"machine busy when {self.busy_starts} run(s) started "
                                       f"(waited {self.opts.quiet_wait:.0f} s for quiet)")
        if self.srv is not None:
            self.srv.stop()
            res["server_notes"] += self.srv.notes
            for n in self.srv.notes:
                log(f"  note ({self.server}): {n}")
        res["flags"] = flags_for(self.opts, res["runs"]) if res["runs"] else []
        for f in res["flags"]:
            log(f"  FLAG ({self.server}): {f}")
        return res


def bench_app(opts, app, logdir, results):
    """Every selected server on one app: one server after the other, or, with
    --interleave, all started at once and measured in turns (run 1 of each
    server, then run 2 of each, ...), so a change in the machine's speed hits
    every server alike. Fills results[(app, server)]."""
    servers = [s for s in opts.servers if (app, s) in opts.pairs]
    if app in UPSTREAM_APPS:
        with_upstream(opts, app, logdir, results, servers)
    else:
        bench_servers(opts, app, logdir, results, servers)


def with_upstream(opts, app, logdir, results, servers):
    """Start the upstream nginx, bench the app's servers against it, stop it.
    If it does not start, every server of the app fails with its error."""
    log(f"{APPS[app].label}: starting the upstream nginx")
    up = None
    try:
        up = Server(opts, "upstream-nginx", app, logdir, command=upstream_command)
        up.wait_ready()
    except (RuntimeError, OSError) as e:
        log(f"  FAILED (upstream nginx): {e}")
        if up is not None:
            up.stop()
        for server in servers:
            results[(app, server)] = {"runs": [], "flags": [], "server_notes": [],
                                      "error": f"the upstream nginx did not start: {e}"}
        return
    opts.upstream = up
    try:
        bench_servers(opts, app, logdir, results, servers)
    finally:
        opts.upstream = None
        up.stop()
        for n in up.notes:
            log(f"  note (upstream nginx): {n}")
            for server in servers:
                if (app, server) in results:
                    results[(app, server)]["server_notes"].append(f"upstream nginx: {n}")


def bench_servers(opts, app, logdir, results, servers):
    conns = connections_for(opts, app)
    if not opts.interleave:
        for server in servers:
            log(f"{APPS[app].label} on {server} ({conns} connections):")
            b = Bench(opts, app, server, logdir)
            try:
                if b.start():
                    for i in range(opts.runs):
                        if not b.run(i):
                            break
            finally:
                results[(app, server)] = b.finish()
        return
    benches = [Bench(opts, app, server, logdir) for server in servers]
    try:
        log(f"{APPS[app].label}: starting {', '.join(servers)} (interleaved, {conns} connections)")
        live = [b for b in benches if b.start()]
        for i in range(opts.runs):
            for b in list(live):
                log(f"{APPS[app].label} on {b.server}:")
                if not b.run(i):
                    live.remove(b)
    finally:
        for b in benches:
            results[(app, b.server)] = b.finish()


def main(argv):
    opts = options(argv)
    check_tools(opts)
    if not opts.no_pin:
        # Keep this harness (and its probe thread) off the server's CPU.
        try:
            os.sched_setaffinity(0, {1})
        except OSError:
            pass
    started = datetime.datetime.now().astimezone()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    logdir = os.path.join(BENCH_DIR, "results", "logs", stamp)
    os.makedirs(logdir, exist_ok=True)
    facts = machine_facts(opts)
    if any(server.startswith("trestle") for _, server in opts.pairs):
        # Serve from a copy: build/ may be rebuilt by someone else mid-run, and
        # every trestle row should come from the same binary.
        snap = os.path.join(logdir, "trestle")
        shutil.copy2(opts.trestle, snap)
        digest = hashlib.sha256(open(snap, "rb").read()).hexdigest()[:12]
        facts.append(("trestle binary", f"{opts.trestle}, copied to "
                      f"{os.path.relpath(snap, ROOT)} for the run (sha256 {digest})"))
        opts.trestle = snap
    if any(app in STATIC_FILES for app, _ in opts.pairs):
        opts.static_dir = write_static_files(logdir)
    command = os.environ.get("BENCH_COMMAND") or shlex.join([sys.argv[0]] + argv)
    env_set = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in
                       ("APPS", "SERVERS", "DURATION", "RUNS", "WARMUP", "CONNECTIONS",
                        "SLEEP_CONNECTIONS", "THREADS", "TRESTLE", "TRESTLE_ARGS", "PIN", "PROBE",
                        "INPROCESS", "INTERLEAVE", "QUIET_WAIT", "OUTPUT") if k in os.environ)
    if env_set:
        command = env_set + " " + command
    inproc_apps = [] if opts.no_inprocess else [a for a in opts.apps if not APPS[a].sleep
                                                and a not in NO_INPROCESS
                                                and any(p[0] == a for p in opts.pairs)]
    load_s = len(opts.pairs) * (opts.warmup_s + opts.runs * opts.duration_s)
    # Besides the load: a 1 s quiet check before each run, about 3 s to start
    # and stop each server, about 7 s per in-process measurement.
    total = load_s + len(opts.pairs) * (opts.runs + 3) + 14 * len(inproc_apps)
    used = [s for s in opts.servers if any(p[1] == s for p in opts.pairs)]
    log(f"bench: {len(opts.pairs)} app/server pairs ({', '.join(opts.apps)} on "
        f"{', '.join(used)}), {opts.runs} × {opts.duration_s}s runs after "
        f"{opts.warmup_s}s warm-up, {opts.connections} connections"
        + (f" ({opts.sleep_connections} for sleep)" if "sleep" in opts.apps else "")
        + f": {load_s // 60} min {load_s % 60} s of load, about {total // 60} min "
        f"{total % 60} s in all on a quiet machine")

    results, inproc = {}, {}
    interrupted = False
    try:
        for app in opts.apps:
            if app in inproc_apps:
                log(f"{APPS[app].label}, in-process (the app's own cost), before its servers:")
                inproc[app] = {"before": measure_inprocess(opts, app, logdir, "before")}
            bench_app(opts, app, logdir, results)
            if app in inproc_apps:
                # Again after: the same work taking longer means the machine
                # (a VM: its host) got slower meanwhile, which skews ratios.
                log(f"{APPS[app].label}, in-process, after its servers:")
                inproc[app]["after"] = measure_inprocess(opts, app, logdir, "after")
    except KeyboardInterrupt:
        interrupted = True
        log("bench: interrupted; reporting what ran")

    with open(os.path.join(logdir, "wrk.txt"), "w") as f:
        for (app, server), res in results.items():
            for i, r in enumerate(res["runs"], 1):
                f.write(f"==== {app} {server} run {i}\n{r['raw']}\n")

    if any(server.startswith("trestle") for _, server in opts.pairs):
        try:
            os.remove(os.path.join(logdir, "trestle"))  # 15 MB; the sha256 is in the report
        except OSError:
            pass

    tables = [(i, build_table(opts, results, i)) for i in ("wsgi", "asgi", "http")]
    tables = [(i, t) for i, t in tables if t]
    targets = targets_text(opts, results)
    limits = limits_table(opts, results, inproc)
    finished = datetime.datetime.now().astimezone()
    pin = "not pinned" if opts.no_pin else "server pinned to CPU 0 (`taskset -c 0`), wrk to CPU 1 (`taskset -c 1`)"
    conns = f"-c{opts.connections}" + (f" (-c{opts.sleep_connections} for the sleep app)"
                                       if "sleep" in opts.apps else "")
    method = (f"wrk -t1 {conns} -d{opts.duration_s}s --latency, {pin}; "
              f"{opts.warmup_s} s warm-up, then {opts.runs} run(s) per app and server"
              + (" (interleaved: all of an app's servers up at once, measured in turns)"
                 if opts.interleave else " (one server after the other)")
              + f", the run with the median req/s reported; errors summed over all runs; trestle and gunicorn gthread "
              f"with {opts.threads} threads, "
              + ("one worker process unless the server's name says -wN (N worker processes; the "
                 "server CPU is that of the whole process tree: supervisor, arbiter or parent, and "
                 "workers); " if multi_worker(opts) else "one worker process throughout; ")
              + "trestle on its default ASGI loop, uvicorn without its access log"
              + ("; static and proxy mounts: trestle (`static:DIR`, or a `--config` proxy mount "
                 f"with max_idle = {UPSTREAM_IDLE}) against nginx (one worker process, sendfile "
                 f"on, `keepalive {UPSTREAM_IDLE}` to the upstream with HTTP/1.1, the same "
                 "forwarded fields as trestle's proxy sends), both without an access log; the "
                 "proxy's upstream is one nginx `return 200` worker"
                 + (" pinned with wrk to CPU 1" if not opts.no_pin else "")
                 if any(APPS[a].interface == "http" for a, _ in opts.pairs) else "")
              + (f"; before each run, waited up to {opts.quiet_wait:.0f} s for both CPUs to be idle."
                 if opts.quiet_wait > 0 else "."))
    titles = {"wsgi": "WSGI apps (ratio: ÷ gunicorn sync)",
              "asgi": "ASGI apps (ratio: ÷ uvicorn --loop uvloop --http httptools)",
              "http": "Static and proxy mounts (ratio: trestle ÷ nginx)"}
    report = [
        "# Trestle benchmark: latest results", "",
        f"Date: {started.strftime('%Y-%m-%d %H:%M %Z')} (finished {finished.strftime('%H:%M %Z')})"
        + ("; INTERRUPTED" if interrupted else ""), "",
        f"Command: `{command}` (from {ROOT})", "",
        f"Method: {method}", "",
    ]
    for i, t in tables:
        report += [f"### {titles[i]}", "", t, ""]
    if targets:
        report += ["Acceptance targets (trestle ÷ the baseline's req/s):", "", targets, ""]
    if limits:
        report += ["### The physical limit: the app's own cost in-process", "",
                   "CPU time per call of the app itself, no HTTP (bench/inprocess.py, pinned to "
                   "CPU 0; ASGI apps on uvloop), measured before and after the app's servers ran; "
                   "the limit and the overheads use the mean of the two. Server overhead = server "
                   "CPU µs/req − the app's own cost.", "", limits, ""]
        report += drift_notes(inproc)
        for app, ip in inproc.items():
            for when, m in ip.items():
                if m.get("error"):
                    report.append(f"- {APPS[app].label}: in-process measurement ({when}) failed: "
                                  f"{m['error']}")
        report.append("")
    report += ["## Machine", ""] + [f"- {k}: {v}" for k, v in facts] + [""]
    report += ["## Runs", "", details_text(opts, results),
               f"Raw wrk output and server logs: `{os.path.relpath(logdir, ROOT)}/`", ""]
    os.makedirs(os.path.dirname(os.path.abspath(opts.output)), exist_ok=True)
    with open(opts.output, "w") as f:
        f.write("\n".join(report))

    for n, (i, t) in enumerate(tables):
        if len(tables) > 1:
            print(("\n" if n else "") + f"{titles[i]}:\n")
        print(t)
    if targets:
        print()
        print(targets)
    if limits:
        print("\nThe app's own cost in-process (server overhead = server CPU µs/req − app µs/call):\n")
        print(limits)
        drift = drift_notes(inproc)
        if drift:
            print()
            print("\n".join(drift))
    flagged = [(k, f) for k, res in results.items() for f in res["flags"] + res["server_notes"]]
    if flagged:
        print()
        for (app, server), f in flagged:
            print(f"- {APPS[app].label}, {server}: {f}")
    log(f"\nbench: report written to {os.path.relpath(opts.output)}")
    failed = any(res.get("error") for res in results.values())
    return 130 if interrupted else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
