#!/usr/bin/python3
"""Observability benchmarks (docs/benchmarks.md, "Metrics").

  metrics   Flask hello and raw WSGI hello with wrk (64 keep-alive
            connections): trestle with --metrics-path against without,
            interleaved --runs times, pinned to CPU 0 (wrk on CPU 1), a
            scrape every second during the metrics-on runs as Prometheus
            would. The target is >= 0.97 on Flask (issue 14).

Usage: bench/observe.py [--runs 5] [--duration 8] [--trestle build/trestle]
"""
import argparse
import os
import sys
import tempfile
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proto import APPS, ROOT, Server, free_port, run_pairs, wrk  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--trestle", default=os.path.join(ROOT, "build", "trestle"))
    opts = ap.parse_args()
    d = tempfile.mkdtemp(prefix="trestle-observe-")
    trestle = [opts.trestle, "--chdir", APPS]

    def log(line):
        print(line, flush=True)

    def measure(port, scrape):
        stop = threading.Event()

        def scraper():
            while not stop.wait(1.0):
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    r.read()
        t = threading.Thread(target=scraper, daemon=True)
        if scrape:
            t.start()
        try:
            return wrk("http://127.0.0.1:%d/" % port, opts.duration)
        finally:
            stop.set()
            if scrape:
                t.join()

    for app, target in (("Flask hello", "flask_hello:app"), ("raw WSGI hello", "hello:app")):
        log("## trestle, %s: metrics on against off (wrk -c64, keep-alive, a scrape a second)" % app)
        p1, p2 = free_port(), free_port()
        run_pairs(app, [
            ("metrics-on", lambda: Server([trestle + [target, "--bind", "127.0.0.1:%d" % p1, "--metrics-path", "/metrics"]],
                                          p1, d, "on"), lambda: measure(p1, True)),
            ("metrics-off", lambda: Server([trestle + [target, "--bind", "127.0.0.1:%d" % p2]], p2, d, "off"),
             lambda: measure(p2, False)),
        ], opts.runs, log)


if __name__ == "__main__":
    main()
