#!/usr/bin/python3
"""Where an ASGI server's CPU per request goes, against the app's own cost
measured in the same process: robust to a busy machine, since it reads CPU
time, not requests per second.

    /usr/bin/python3 bench/asgi_cpu.py [--apps asgi,quart] [--servers trestle,uvicorn-uvloop]
                                       [--duration 5] [--calls 3000] [--rounds 3] [--nice -20]

Each server serves bench/diag/asgi_selfcall.py wrapped around the app
(pinned to CPU 0, wrk -t1 -c64 pinned to CPU 1, as the harness does). Per
round: a wrk run, reading the server's CPU time, each thread's (by name:
trestle's loop and io threads) and the GC's collections (gc.get_stats)
before and after; then GET /__selfcall?N, which calls the app N times on
the server's own loop, one after the other, and reports its thread CPU time
per call and the GC's work. Prints CPU µs per request, per thread, against
the app's own µs per call in the same process: the difference is what
serving it costs, with every request of the 64 connections interleaved on
one loop, over calling it alone.
"""

import argparse
import json
import os
import statistics
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import bench  # noqa: E402
import gil_order  # noqa: E402  (schedstat, autogroup_nice, nice)

DIAG_DIR = os.path.join(BENCH_DIR, "diag")


def command(opts):
    def build(_o, server, app, port, logdir):
        if server == "trestle":
            cmd = [opts.trestle, "asgi_selfcall:app", "--chdir", DIAG_DIR,
                   "--bind", f"127.0.0.1:{port}"] + opts.trestle_args.split()
        else:
            cmd = [bench.PYTHON, "-m", "uvicorn", "--app-dir", DIAG_DIR, "--host", "127.0.0.1",
                   "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                   "--no-access-log", "asgi_selfcall:app"]
        return gil_order.nice(opts, ["taskset", "-c", "0"] + cmd)
    return build


def get_json(port, path):
    status, body = bench.http_get(port, 600, path)
    return json.loads(body)


def gc_delta(a, b, n):
    """Per generation: collections per 1,000 requests, objects collected per
    request, µs in collections per request."""
    return [((y["collections"] - x["collections"]) * 1000 / n, (y["collected"] - x["collected"]) / n,
             (y["seconds"] - x["seconds"]) * 1e6 / n) for x, y in zip(a, b)]


def one(opts, app, server, logdir):
    spec = bench.APPS[app]
    os.environ["TRACE_DIR"], os.environ["TRACE_APP"] = spec.dir, spec.target
    srv = bench.Server(opts, server, app, logdir, command=command(opts))
    rows = []
    try:
        gil_order.autogroup_nice(opts, srv.proc.pid)
        srv.wait_ready()
        bench.run_wrk(gil_order.nice(opts, bench.wrk_command(opts, srv.port, 2, 64)))
        get_json(srv.port, f"/__selfcall?{opts.calls // 4}")
        for _ in range(opts.rounds):
            g0, s0, c0 = get_json(srv.port, "/__gc"), gil_order.schedstat(srv.proc.pid), \
                bench.tree_cpu(srv.proc.pid)
            out, _ = bench.run_wrk(gil_order.nice(opts, bench.wrk_command(opts, srv.port, opts.duration, 64)))
            c1, s1, g1 = bench.tree_cpu(srv.proc.pid), gil_order.schedstat(srv.proc.pid), \
                get_json(srv.port, "/__gc")
            w = bench.parse_wrk(out)
            n = w["requests"]
            threads = {k: (v[0] - s0.get(k, [0])[0]) / 1e3 / n for k, v in s1.items()
                       if (v[0] - s0.get(k, [0])[0]) / 1e3 / n >= 0.5}
            own = get_json(srv.port, f"/__selfcall?{opts.calls}")
            rows.append({"rps": w["rps"], "cpu": (c1 - c0) * 1e6 / n, "threads": threads,
                         "gc": gc_delta(g0, g1, n), "own": own["cpu_us_per_call"],
                         "own_gc": gc_delta([{"collections": 0, "collected": 0, "seconds": 0}] * 3,
                                            own["gc"], own["calls"])})
    finally:
        srv.stop()
    return rows


def main(argv):
    p = argparse.ArgumentParser(prog="bench/asgi_cpu.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", default="asgi,quart")
    p.add_argument("--servers", default="trestle,uvicorn-uvloop")
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nice", type=int, default=0)
    p.add_argument("--trestle", default=os.path.join(bench.ROOT, "build", "trestle"))
    p.add_argument("--trestle-args", default="")
    opts = p.parse_args(argv)
    opts.no_pin = False
    os.sched_setaffinity(0, {1})
    gil_order.autogroup_nice(opts, os.getpid())
    logdir = os.path.join(BENCH_DIR, "results", "logs", "asgi-cpu-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(logdir, exist_ok=True)
    print("CPU µs per request (server process; per thread where a thread used ≥ 0.5 µs) against "
          "the app's own µs per call measured in the same process between runs; GC: collections "
          "per 1,000 requests (gen 0/1/2), objects collected per request, and µs per request in "
          "collections (gen 0/1/2). Each round on its own line.\n")
    print("| app | server | req/s | server CPU µs/req | by thread | app's own µs/call | served − own "
          "| GC served: per 1k req, collected/req, µs/req | GC own: per 1k calls, collected/call, "
          "µs/call |")
    print("|---|---|---:|---:|---|---:|---:|---|---|")
    for app in opts.apps.split(","):
        app = bench.APP_ALIASES.get(app, app)
        for server in opts.servers.split(","):
            for r in one(opts, app, server, logdir):
                g = lambda gs: ("/".join(f"{c:.1f}" for c, _, _ in gs) + ", "
                                + f"{sum(o for _, o, _ in gs):.1f}, "
                                + "/".join(f"{t:.1f}" for _, _, t in gs))
                print(f"| {bench.APPS[app].label} | {server} | {r['rps']:,.0f} | {r['cpu']:.1f} | "
                      + ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["threads"].items())) + " | "
                      f"{r['own']:.1f} | {r['cpu'] - r['own']:.1f} | {g(r['gc'])} | {g(r['own_gc'])} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
