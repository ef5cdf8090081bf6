#!/usr/bin/python3
"""Shadow mode's cost to the primary (docs/benchmarks.md, "Shadow mode").

Flask hello as the primary, on a fixed offered load (wrk with
bench/paced.lua: --conns connections, each pausing --interval ms on
average between requests), with and without a Quart hello shadow at 100%
sampling (shadow_sample = 1.0). Trestle is pinned to CPU 0 and wrk to CPU
1; the runs are interleaved --runs times. Reported: the primary's p50,
p99 and p99.9 as wrk measured them (medians over the runs), the rate
achieved, and from each shadowed run's metrics the replays, their
verdicts and the drops. The issue's target: the shadowed p99 within 10%
of the unshadowed one.

By default the Quart shadow runs as Trestle runs a module:app shadow: in
a child process at idle priority (shadow_process, the default), on the
same CPU 0. With --same-process it runs in the primary's own process
(shadow_process = false), sharing its GIL.

With --proxy, the Quart shadow is a service of its own (another Trestle
process, on CPU 1 beside wrk) reached through `shadow = "proxy:URL"`: the
primary's process then spends no Python time on the shadow.

Usage: bench/shadow.py [--runs 5] [--duration 10] [--conns 20] [--interval 10] [--same-process | --proxy]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proto import ROOT, Server, free_port, wait_port  # noqa: E402

BENCH_APPS = os.path.join(ROOT, "bench", "apps")


def paced_wrk(url, duration, conns, interval):
    cmd = ["taskset", "-c", "1", "wrk", "-t", "1", "-c", str(conns), "-d", "%ds" % duration,
           "-s", os.path.join(ROOT, "bench", "paced.lua"), url]
    env = dict(os.environ, WRK_INTERVAL_MS=str(interval))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, env=env).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    pct = re.search(r"p50 (\d+) p90 (\d+) p99 (\d+) p99.9 (\d+) max (\d+)", out)
    if not rate or not pct or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError("wrk failed:\n" + out)
    p50, p90, p99, p999, mx = (int(x) for x in pct.groups())
    return {"rate": float(rate.group(1)), "p50": p50, "p90": p90, "p99": p99, "p99.9": p999, "max": mx}


def shadow_counts(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    counts = {}
    for m in re.finditer(r'^(trestle_shadow_(?:requests|dropped|replayed)_total)\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        key = m.group(1).replace("trestle_shadow_", "").replace("_total", "")
        key += ":" + (labels.get("verdict") or labels.get("reason") or "all")
        counts[key] = counts.get(key, 0) + float(m.group(3))
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", type=int, default=20)
    ap.add_argument("--interval", type=float, default=10.0, help="ms between a response and the next request")
    ap.add_argument("--trestle", default=os.path.join(ROOT, "build", "trestle"))
    ap.add_argument("--proxy", action="store_true", help="the shadow in a process of its own, through a proxy target")
    ap.add_argument("--same-process", action="store_true", help="shadow_process = false: the shadow in the primary's process")
    opts = ap.parse_args()
    d = tempfile.mkdtemp(prefix="trestle-shadow-")
    conf = os.path.join(d, "shadow.toml")
    upstream = None
    target = "quart_hello:app"
    if opts.proxy:
        up_port = free_port()
        upstream = subprocess.Popen(["taskset", "-c", "1", opts.trestle, "--pythonpath", BENCH_APPS, "quart_hello:app",
                                     "--bind", "127.0.0.1:%d" % up_port], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=ROOT)
        wait_port(up_port, upstream)
        target = "proxy:http://127.0.0.1:%d" % up_port
    with open(conf, "w") as f:
        f.write('[[mount]]\nprefix = "/"\napp = "flask_hello:app"\nshadow = "%s"\nshadow_sample = 1.0\n' % target)
        if opts.same_process:
            f.write("shadow_process = false\n")
    base = [opts.trestle, "--pythonpath", BENCH_APPS, "--metrics-path", "/metrics"]
    print("## Flask hello primary, paced: %d connections, %.1f ms apart on average; Quart hello shadow (%s%s) at 100%%"
          % (opts.conns, opts.interval, target, ", shadow_process = false" if opts.same_process else ""), flush=True)
    results = {"unshadowed": [], "shadowed": []}
    totals = {}
    for r in range(opts.runs):
        for name in ("unshadowed", "shadowed"):
            port = free_port()
            cmd = base + ["--bind", "127.0.0.1:%d" % port]
            cmd += ["--config", conf] if name == "shadowed" else ["flask_hello:app"]
            srv = Server([cmd], port, d, name)
            try:
                res = paced_wrk("http://127.0.0.1:%d/" % port, opts.duration, opts.conns, opts.interval)
                if name == "shadowed":
                    for k, v in shadow_counts(port).items():
                        totals[k] = totals.get(k, 0) + v
            finally:
                srv.stop()
            results[name].append(res)
            print("  %-11s run %d: %7.0f req/s  p50 %5d us  p99 %6d us  p99.9 %6d us  max %6d us"
                  % (name, r + 1, res["rate"], res["p50"], res["p99"], res["p99.9"], res["max"]), flush=True)
    med = {n: {k: statistics.median(x[k] for x in v) for k in v[0]} for n, v in results.items()}
    for n in ("unshadowed", "shadowed"):
        m = med[n]
        print("%s (medians): %.0f req/s, p50 %d us, p90 %d us, p99 %d us, p99.9 %d us"
              % (n, m["rate"], m["p50"], m["p90"], m["p99"], m["p99.9"]))
    print("shadowed/unshadowed p99: %.2f (target <= 1.10); p50: %.2f"
          % (med["shadowed"]["p99"] / med["unshadowed"]["p99"], med["shadowed"]["p50"] / med["unshadowed"]["p50"]))
    # Each shadowed run against the unshadowed run just before it: a whole
    # run that the machine slowed down moves both sides of its pair.
    pairs = [s["p99"] / u["p99"] for u, s in zip(results["unshadowed"], results["shadowed"])]
    print("p99 ratio of each pair: %s; median %.2f" % (" ".join("%.2f" % r for r in pairs), statistics.median(pairs)))
    print("shadow, all runs: " + ", ".join("%s %d" % (k, v) for k, v in sorted(totals.items())))
    if upstream:
        upstream.terminate()
        upstream.wait(20)


if __name__ == "__main__":
    main()
