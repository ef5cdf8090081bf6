#!/usr/bin/python3
"""Instructions per request, by thread and by function, of trestle serving an
ASGI app under callgrind: repeatable whatever else the machine is doing.

    /usr/bin/python3 bench/callgrind_asgi.py [--apps asgi,quart] [--seconds 10]
                                             [--trestle build/trestle] [--top 40]

For each app (the harness's names: asgi, quart, starlette, ...): starts
`valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no`
on trestle, warms it up with wrk, switches instrumentation on, runs
`wrk -t1 -c16` for --seconds, switches it off and dumps. Then prints each
thread's instructions per request (the loop thread is the one that ran the
ASGI calls) and, for the loop thread, the functions with the most inclusive
instructions per request, from callgrind_annotate. With --inprocess-calls (default 2000) it also measures the app's own
instructions per call in the same binary and on the same loop (see
selfcall), and prints the server overhead (served minus own) and the
functions whose instructions differ most between the two. The raw profiles stay in
bench/results/logs/callgrind-<date-time>/ for callgrind_annotate or
kcachegrind.
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import bench  # noqa: E402

bench.READY_TIMEOUT = 600.0   # Python's start-up under valgrind takes a while


def command(outdir, opts):
    def build(_o, server, app, port, logdir):
        return (["valgrind", "--tool=callgrind", "--separate-threads=yes", "--instr-atstart=no",
                 f"--callgrind-out-file={os.path.join(outdir, app + '.%p')}",
                 opts.trestle, bench.APPS[app].target, "--chdir", bench.APPS[app].dir,
                 "--bind", f"127.0.0.1:{port}"] + opts.trestle_args.split())
    return build


def wrk(opts, port, seconds, path="/"):
    out, _ = bench.run_wrk(["wrk", "-t1", f"-c{opts.connections}", f"-d{seconds}s",
                            f"http://127.0.0.1:{port}{path}"])
    return bench.parse_wrk(out)


def annotate(path, top):
    """(total Ir, [(inclusive Ir, function)]) of one callgrind file."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no",
                          path], capture_output=True, text=True).stdout
    total = 0
    m = re.search(r"^([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", out, re.M)
    if m:
        total = int(m.group(1).replace(",", ""))
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            rows.append((int(m.group(1).replace(",", "")), m.group(2)))
    return total, rows[:top]


# Exclusive (self) instructions grouped by where the code is: by the object
# file, and within the trestle binary (which links libpython statically)
# Trestle's own C++ (namespace trestle::) apart from CPython's.
GROUPS = [("Trestle C++", lambda f, o: "trestle::" in f),
          ("CPython: bytecode eval", lambda f, o: "_PyEval_EvalFrameDefault" in f),
          ("CPython: GC", lambda f, o: re.search(r"\b(gc_\w+|visit_\w+|\w+_traverse|subtract_refs|"
                                                  r"update_refs|move_unreachable|deduce_unreachable|"
                                                  r"validate_list|handle_weakrefs|finalize_garbage|"
                                                  r"delete_garbage|move_legacy_finalizers|"
                                                  r"untrack_dicts|untrack_tuples)\b", f)),
          ("CPython: malloc/free", lambda f, o: re.search(r"\b(PyObject_Malloc|PyObject_Free|"
                                                         r"_PyObject_GC_\w*|PyObject_GC_\w+|"
                                                         r"pymalloc\w*|_PyMem_\w+)\b", f)),
          ("_asyncio (C tasks, futures)", lambda f, o: "_asyncio" in o),
          ("uvloop", lambda f, o: "uvloop" in o),
          ("libuv", lambda f, o: "libuv" in o),
          ("libc, libstdc++", lambda f, o: "libc.so" in o or "libstdc++" in o or "ld-linux" in o),
          ("CPython: the rest", lambda f, o: True)]
# Inclusive costs worth naming (a substring of callgrind's function name).
NAMED = ["gc_collect_main", "trestle::asgi::asgi_handler::start(", "trestle::asgi::asgi_handler::spawn(",
         "trestle::asgi::scope_builder::build(", "trestle::asgi::http_call::receive(",
         "trestle::asgi::http_call::send(", "trestle::asgi::http_call::send_body(",
         "trestle::asgi::http_call::start_response(", "trestle::asgi::http_call::complete_waiters(",
         "trestle::asgi::http_call::on_done(", "trestle::asgi::http_call::flush(",
         "trestle::asgi::(anonymous namespace)::call_dealloc(", "trestle::runtime::loop_thread::drain(",
         "PyTraceBack_Here", "PyImport_ImportModuleLevelObject", "PyUnicode_FromFormatV"]


def exclusive(path):
    """{function: exclusive Ir} of one callgrind file."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", path],
                         capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            # The same code is named by its object file: the trestle binary
            # and /usr/bin/python3.11 both hold libpython.
            name = re.sub(r"'\d+", "", m.group(2))   # recursion depth marks
            res[name] = res.get(name, 0) + int(m.group(1).replace(",", ""))
    return res


def diff(served, n_served, own, n_own, top):
    """The functions whose exclusive instructions per request differ most
    between the served run's loop thread and the app in-process."""
    a, b = exclusive(served), exclusive(own)
    rows = sorted(((a.get(k, 0) / n_served - b.get(k, 0) / n_own, k) for k in set(a) | set(b)),
                  reverse=True)
    print(f"\nLoop thread served minus the app in-process in trestle, "
          f"exclusive instructions per request, the {top} largest differences each way:\n")
    print("| served − in-process | function |\n|---:|---|")
    for d, k in rows[:top] + rows[-top:]:
        print(f"| {d:+,.0f} | `{k[:150]}` |")


def breakdown(path, n):
    """{group: exclusive Ir per request}, {named function: inclusive Ir per request}."""
    excl = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", path],
                          capture_output=True, text=True).stdout
    groups = {g: 0 for g, _ in GROUPS}
    for line in excl.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*?)(?:\s+\[(.*)\])?$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        ir, func, obj = int(m.group(1).replace(",", "")), m.group(2), m.group(3) or ""
        for g, test in GROUPS:
            if test(func, obj):
                groups[g] += ir
                break
    _, rows = annotate(path, 100000)
    named = {}
    for key in NAMED:
        # The outermost entry (no recursion mark) that names it.
        hits = [ir for ir, name in rows if key in name and "'" not in name.split(key)[1][:40]]
        if hits:
            named[key] = max(hits) / n
    return {g: v / n for g, v in groups.items()}, named


def print_breakdown(path, n, prefix, per):
    groups, named = breakdown(path, n)
    title = lambda t: "\n" + (prefix + t)[0].upper() + (prefix + t)[1:] + "\n"
    print(title(f"exclusive instructions per {per} by where the code is:"))
    print(f"| where | per {per} |\n|---|---:|")
    for g, v in groups.items():
        print(f"| {g} | {v:,.0f} |")
    print(title(f"inclusive instructions per {per} of some functions:"))
    print(f"| function | per {per} |\n|---|---:|")
    for k, v in named.items():
        print(f"| `{k}` | {v:,.0f} |")


def one(opts, app, outdir):
    srv = bench.Server(opts, "trestle-callgrind", app, outdir, command=command(outdir, opts))
    try:
        srv.wait_ready()
        wrk(opts, srv.port, opts.warmup)
        subprocess.run(["callgrind_control", "-i", "on", str(srv.proc.pid)], capture_output=True)
        w = wrk(opts, srv.port, opts.seconds)
        subprocess.run(["callgrind_control", "-i", "off", str(srv.proc.pid)], capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(srv.proc.pid)], capture_output=True)
        pid = srv.proc.pid
    finally:
        srv.stop()
    n = w["requests"]
    files = sorted(f for f in glob.glob(os.path.join(outdir, f"{app}.*")) if re.search(r"-\d+$", f))
    print(f"\n## {bench.APPS[app].label}: {n} requests measured ({w['errors']} errors)\n")
    print("| thread file | instructions per request |\n|---|---:|")
    loop_file, loop_total, per_thread = None, 0, []
    for f in files:
        total, rows = annotate(f, 400)
        if not total:
            continue
        per_thread.append((f, total))
        names = " ".join(r[1] for r in rows)
        print(f"| {os.path.basename(f)} | {total / n:,.0f} |")
        if "http_call" in names and total > loop_total:
            loop_file, loop_total = f, total
    if loop_file:
        total, rows = annotate(loop_file, opts.top)
        print(f"\nLoop thread ({os.path.basename(loop_file)}): {total / n:,.0f} instructions per "
              f"request; the functions with the most, inclusive, per request:\n")
        print("| instructions per request | function |\n|---:|---|")
        for ir, name in rows:
            print(f"| {ir / n:,.0f} | `{name[:140]}` |")
    if loop_file:
        print_breakdown(loop_file, n, "Loop thread, ", "request")
    return {"requests": n, "threads": per_thread, "loop": loop_file,
            "loop_per_request": loop_total / n if n else None,
            "all_per_request": sum(t for _, t in per_thread) / n if n else None}


def selfcall(opts, app, outdir):
    """The app's own instructions per call, in the same binary and on the same
    loop as the served requests: trestle serves bench/diag/asgi_selfcall.py
    around the app, and one GET /__selfcall?N (instrumented alone) makes the
    loop thread call the app N times in-process, one after the other
    (bench/inprocess.py's caller; receive() gives http.disconnect once the
    response has ended, as trestle does)."""
    spec = bench.APPS[app]
    os.environ["TRACE_DIR"], os.environ["TRACE_APP"] = spec.dir, spec.target

    def build(_o, server, _app, port, logdir):
        return (["valgrind", "--tool=callgrind", "--separate-threads=yes", "--instr-atstart=no",
                 f"--callgrind-out-file={os.path.join(outdir, app + '-selfcall.%p')}",
                 opts.trestle, "asgi_selfcall:app", "--chdir", os.path.join(BENCH_DIR, "diag"),
                 "--bind", f"127.0.0.1:{port}"] + opts.trestle_args.split())
    srv = bench.Server(opts, "trestle-callgrind-selfcall", app, outdir, command=build)
    n = opts.inprocess_calls
    try:
        srv.wait_ready()
        bench.http_get(srv.port, 600, f"/__selfcall?{max(1, n // 4)}")   # warm-up
        subprocess.run(["callgrind_control", "-i", "on", str(srv.proc.pid)], capture_output=True)
        status, body = bench.http_get(srv.port, 600, f"/__selfcall?{n}")
        subprocess.run(["callgrind_control", "-i", "off", str(srv.proc.pid)], capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(srv.proc.pid)], capture_output=True)
    finally:
        srv.stop()
    files = [f for f in glob.glob(os.path.join(outdir, f"{app}-selfcall.*")) if re.search(r"-\d+$", f)]
    best = max(((annotate(f, 1)[0], f) for f in files), default=(0, None))
    total, path = best
    print(f"\n## {spec.label} in-process in trestle ({n} calls on the loop thread, "
          f"{body.decode(errors='replace')[:50]}...): {total / n:,.0f} instructions per call\n")
    print_breakdown(path, n, "", "call")
    return total / n, path


def main(argv):
    p = argparse.ArgumentParser(prog="bench/callgrind_asgi.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", default="asgi,quart")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--trestle", default=os.path.join(bench.ROOT, "build", "trestle"))
    p.add_argument("--trestle-args", default="")
    p.add_argument("--diff", type=int, default=30, help="list the N functions whose cost "
                   "differs most between served and in-process (0: none)")
    p.add_argument("--inprocess-calls", type=int, default=2000,
                   help="also measure the app in-process in trestle, this many calls (0: not)")
    opts = p.parse_args(argv)
    opts.no_pin = True
    outdir = os.path.join(BENCH_DIR, "results", "logs", "callgrind-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(outdir, exist_ok=True)
    for app in opts.apps.split(","):
        app = bench.APP_ALIASES.get(app, app)
        served = one(opts, app, outdir)
        if opts.inprocess_calls:
            own, own_path = selfcall(opts, app, outdir)
            if served.get("loop_per_request"):
                print(f"\nServer overhead: {served['loop_per_request'] - own:,.0f} instructions per "
                      "request on the loop thread (its instructions per request - the app's own "
                      f"per call), {served['all_per_request'] - own:,.0f} on all threads")
            if served.get("loop") and opts.diff:
                diff(served["loop"], served["requests"], own_path, opts.inprocess_calls, opts.diff)
    print(f"\nprofiles: {os.path.relpath(outdir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
