#!/usr/bin/python3
"""Flask hello's latency tail on trestle: which requests overtake which while
the pool threads take turns at the GIL.

    /usr/bin/python3 bench/gil_order.py [--threads 8,2,1] [--switch-ms 5,1,20]
                                        [--duration 5] [--no-pin] [--trestle build/trestle]

For every combination of pool threads and sys.setswitchinterval, serves
bench/diag/wsgi_trace.py (Flask hello recording, per request, its thread,
when the app was entered and left and its CPU time) with trestle pinned to
CPU 0, loads it with wrk -t1 -c64 pinned to CPU 1 (the harness's helpers and
settings), reads the records back and prints, next to wrk's percentiles:

- app time: wall time from entering the app to leaving it (p50/p99/max),
  and the thread's CPU time in it. A request that takes 5 ms of wall for
  60 µs of CPU spent the rest without the GIL (or off the CPU);
- overtaken: the share of requests that some later-started request finished
  before, and by how many: with one thread draining the queue in order,
  none; a request preempted at the GIL by another pool thread is overtaken
  by everything that thread runs meanwhile;
- thread turns: how often the thread entering the app changes between two
  consecutive requests (GIL hand-overs between pool threads per second), and
  how many threads ran requests.
"""

import argparse
import bisect
import json
import os
import statistics
import sys
import time
import types

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
import bench  # noqa: E402  (the harness: Server, wrk, parsing)

DIAG_DIR = os.path.join(BENCH_DIR, "diag")
STALL_MS = 10   # a request held up this long at one stage is a stall


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else 0


def overtaken_counts(recs, key_start, key_end):
    """For each record (in order of key_start), how many records that started
    later ended earlier."""
    later_ends, out = [], []
    for r in reversed(recs):
        out.append(bisect.bisect_left(later_ends, key_end(r)))
        bisect.insort(later_ends, key_end(r))
    out.reverse()
    return out


def analyse(records):
    """records: (seq, thread, app start, app end, thread CPU, queued, dequeued), ns."""
    diag = bool(records) and records[0][5] != 0
    # In the order the pool took them (dequeued), else the order they entered the app.
    recs = sorted(records, key=(lambda r: r[6]) if diag else (lambda r: r[2]))
    n = len(recs)
    us = lambda ns: ns / 1e3
    app = [us(r[3] - r[2]) for r in recs]
    cpu = [us(r[4]) for r in recs]
    res = {"requests": n, "threads_used": len({r[1] for r in recs}), "diag": diag}

    def dist(v):
        return {"p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "p99.9": pct(v, 99.9),
                "max": max(v) if v else 0}
    res["app_wall_us"], res["app_cpu_us"] = dist(app), dist(cpu)
    if diag:
        queue = [us(r[6] - r[5]) for r in recs]          # queued -> dequeued
        pre = [us(r[2] - r[6]) for r in recs]            # dequeued -> app entered
        service = [us(r[3] - r[6]) for r in recs]        # dequeued -> app left
        total = [us(r[3] - r[5]) for r in recs]          # queued -> app left
        res.update(queue_us=dist(queue), pre_app_us=dist(pre), service_us=dist(service),
                   server_us=dist(total))
        # The pool's queue is FIFO: were requests dequeued in the order queued?
        res["dequeued_out_of_order"] = sum(1 for a, b in zip(recs, recs[1:]) if b[5] < a[5])
        ends = lambda r: r[3]
    else:
        ends = lambda r: r[3]
    over = overtaken_counts(recs, None, ends)
    res["overtaken_share"] = sum(1 for k in over if k) / n if n else 0
    res["overtaken_by_median"] = pct([k for k in over if k], 50)
    # How much of the tail the overtaken requests are: of the slowest 1% (by
    # server time when known, else app time), the share that were overtaken.
    slow_key = res["server_us"]["p99"] if diag else res["app_wall_us"]["p99"]
    vals = [us(r[3] - r[5]) for r in recs] if diag else app
    tail = [k for v, k in zip(vals, over) if v >= slow_key]
    res["slowest_1pct_overtaken_share"] = sum(1 for k in tail if k) / len(tail) if tail else 0
    if diag:
        # Per connection (client port), consecutive requests: wrk sends the
        # next request as soon as it has read the response, so from one
        # app return to the next request's queueing is the response's way
        # out plus the next request's way in (the io thread reading it):
        # "between"; and from one app return to the next is what the client
        # saw for the next request, give or take wrk's own turn: "cycle".
        by_conn = {}
        for r in sorted(recs, key=lambda r: r[5]):
            by_conn.setdefault(r[7], []).append(r)
        between, cycle = [], []
        for rs in by_conn.values():
            for a, b in zip(rs, rs[1:]):
                between.append(us(b[5] - a[3]))
                cycle.append(us(b[3] - a[3]))
        res["between_us"], res["cycle_us"] = dist(between), dist(cycle)
    if diag and recs[0][8]:
        # Stalls over STALL_MS by where they happened, in % of the requests;
        # for those inside the server (dequeued -> handed over), how many
        # requests other threads dequeued meanwhile (a request whose thread
        # lost the GIL is overtaken by what the next thread runs).
        T = STALL_MS * 1e6
        st = {"queue": sum(1 for r in recs if r[6] - r[5] > T),
              "entry": sum(1 for r in recs if r[2] - r[6] > T),
              "app": sum(1 for r in recs if r[3] - r[2] > T),
              "after_app": sum(1 for r in recs if r[8] - r[3] > T),
              "out_and_in": sum(1 for rs in by_conn.values() for a, b in zip(rs, rs[1:])
                                if b[5] - a[8] > T)}
        runs = [r[6] for r in recs]
        inside = [bisect.bisect_left(runs, r[8]) - bisect.bisect_right(runs, r[6])
                  for r in recs if r[8] - r[6] > T]
        res["stalls"] = {k: v / n * 100 for k, v in st.items()}
        res["stalls_overtaken_by_median"] = pct(inside, 50) if inside else None
        res["stalls_overtaken_by_min"] = min(inside) if inside else None
    turns = sum(1 for a, b in zip(recs, recs[1:]) if a[1] != b[1])
    span = (recs[-1][3] - recs[0][2]) / 1e9 if n > 1 else 1
    res["thread_turns_per_s"] = turns / span
    return res


def schedstat(pid):
    """{thread name: [CPU ns, run-queue wait ns, timeslices, voluntary, involuntary
    switches]} summed over the threads of that name (the pool's share one prefix),
    from /proc/PID/task/*/schedstat and status."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                cpu, wait, slices = (int(x) for x in f.read().split())
            vol = invol = 0
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        vol = int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        invol = int(line.split()[1])
        except OSError:
            continue
        key = name.rstrip("0123456789") or name
        acc = out.setdefault(key, [0, 0, 0, 0, 0])
        for i, v in enumerate((cpu, wait, slices, vol, invol)):
            acc[i] += v
    return out


def trestle_command(opts, threads, switch_ms):
    def command(_o, server, app, port, logdir):
        cmd = [opts.trestle, "wsgi_trace:app", "--chdir", DIAG_DIR, "--bind", f"127.0.0.1:{port}",
               "--threads", str(threads)] + opts.trestle_args.split()
        return nice(opts, cmd if opts.no_pin else ["taskset", "-c", "0"] + cmd)
    return command


def nice(opts, cmd):
    """--nice N: run it at that nice level (root may go below 0), so that other
    work on a shared machine takes less of the server's and wrk's CPUs."""
    return ["nice", "-n", str(opts.nice)] + cmd if opts.nice else cmd


def autogroup_nice(opts, pid):
    """With the kernel's autogroups (sched_autogroup_enabled), CPU time is
    first shared between sessions, and a nice level counts only within its
    session: the server's session (the harness starts it in its own) and
    ours (wrk's) get --nice as a whole."""
    if not opts.nice:
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(opts.nice))
    except OSError as e:
        print(f"(autogroup nice of {pid} not set: {e})", file=sys.stderr)


def wrk(opts, port, seconds):
    return bench.run_wrk(nice(opts, bench.wrk_command(opts, port, seconds, opts.connections)))


def one(opts, threads, switch_ms, logdir):
    if switch_ms is not None:
        os.environ["TRACE_SWITCH_MS"] = str(switch_ms)
    else:
        os.environ.pop("TRACE_SWITCH_MS", None)
    srv = bench.Server(opts, f"trestle-t{threads}-s{switch_ms}", "flask", logdir,
                       command=trestle_command(opts, threads, switch_ms))
    try:
        autogroup_nice(opts, srv.proc.pid)
        srv.wait_ready()
        wrk(opts, srv.port, 1)                                                   # warm-up
        bench.http_get(srv.port, 5.0, "/__trace")                                # reset
        cpu0, sched0 = bench.tree_cpu(srv.proc.pid), schedstat(srv.proc.pid)
        out, _ = wrk(opts, srv.port, opts.duration)
        cpu, sched1 = bench.tree_cpu(srv.proc.pid) - cpu0, schedstat(srv.proc.pid)
        status, body = bench.http_get(srv.port, 30.0, "/__trace")
        data = json.loads(body)
    finally:
        srv.stop()
    w = bench.parse_wrk(out)
    with open(os.path.join(logdir, f"t{threads}-s{switch_ms}-{time.time():.0f}.json"), "w") as f:
        json.dump({"wrk": out, "records": data["records"]}, f)
    a = analyse(data["records"])
    a["wrk_requests"] = w["requests"]
    a["switchinterval_ms"] = data["switchinterval"] * 1e3
    a["wrk"] = {k: w.get(k) for k in ("rps", "p50", "p90", "p99", "p999", "lat_max", "errors")}
    a["server_cpu_us_per_req"] = cpu / w["requests"] * 1e6 if w["requests"] else None
    # Per thread kind, per second of the run: CPU ms, ms runnable but waiting
    # for the CPU, and context switches (voluntary / involuntary).
    a["threads_sched"] = {k: [(v[i] - sched0.get(k, [0] * 5)[i]) / opts.duration / (1e6 if i < 2 else 1)
                              for i in range(5)] for k, v in sched1.items()}
    return a


def main(argv):
    p = argparse.ArgumentParser(prog="bench/gil_order.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="8,2,1")
    p.add_argument("--switch-ms", default="5", help="comma list of sys.setswitchinterval values "
                   "in ms ('default' leaves CPython's 5 ms untouched)")
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--nice", type=int, default=0, help="nice level of the server and wrk "
                   "(e.g. -20 on a shared machine; needs root below 0)")
    p.add_argument("--trestle", default=os.path.join(bench.ROOT, "build", "trestle"))
    p.add_argument("--trestle-args", default="")
    p.add_argument("--repeat", type=int, default=1, help="rounds over all combinations")
    p.add_argument("--json", help="also write every result to this file")
    p.add_argument("--label", default="", help="a name for the binary in the table")
    opts = p.parse_args(argv)
    if not opts.no_pin:
        os.sched_setaffinity(0, {1})
    autogroup_nice(opts, os.getpid())
    logdir = os.path.join(BENCH_DIR, "results", "logs", "gil-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(logdir, exist_ok=True)
    combos = [(int(t), None if s == "default" else float(s))
              for t in opts.threads.split(",") for s in opts.switch_ms.split(",")]
    os.environ["TRESTLE_DIAG_POOL_TRACE"] = "1"   # a no-op for a build without the diag commit
    results, sched = [], []
    ft = bench.fmt_time
    d = lambda x, k: f"{x[k] / 1e3:.2f}" if x else "–"   # µs -> ms
    print("Latency in ms. wrk: what the client saw. between: one request's app return -> the "
          "next request on the same connection queued for the pool; cycle: app return -> the "
          "next app return on the same connection; queue: queued for the pool -> dequeued; "
          "service: dequeued -> app returned; app: app entered -> returned (all but app "
          "need the diag build).\n")
    print("| threads | switch ms | label | req/s | wrk p50 | wrk p99 | wrk p99.9 | wrk max | "
          "between p50 / p99 / p99.9 | cycle p50 / p99 / p99.9 | "
          "queue p50 / p99 | service p50 / p99 / p99.9 / max | app p99.9 / max | overtaken | "
          "by (median) | slowest 1% overtaken | thread turns/s | threads used | CPU µs/req |")
    print("|" + "---:|" * 19)
    for rnd in range(opts.repeat):
        for threads, switch in combos:
            a = one(opts, threads, switch, logdir)
            a["threads"], a["round"], a["label"] = threads, rnd, opts.label
            results.append(a)
            w, q, sv, ap = a["wrk"], a.get("queue_us"), a.get("service_us"), a["app_wall_us"]
            print(f"| {threads} | {a['switchinterval_ms']:g} | {opts.label} | {w['rps']:,.0f} | "
                  f"{ft(w['p50'])} | {ft(w['p99'])} | {ft(w['p999'])} | {ft(w['lat_max'])} | "
                  + " | ".join(f"{d(a.get(k), 'p50')} / {d(a.get(k), 'p99')} / {d(a.get(k), 'p99.9')}"
                               for k in ("between_us", "cycle_us")) + " | "
                  f"{d(q, 'p50')} / {d(q, 'p99')} | "
                  f"{d(sv, 'p50')} / {d(sv, 'p99')} / {d(sv, 'p99.9')} / {d(sv, 'max')} | "
                  f"{d(ap, 'p99.9')} / {d(ap, 'max')} | {a['overtaken_share'] * 100:.2f}% | "
                  f"{a['overtaken_by_median']} | {a['slowest_1pct_overtaken_share'] * 100:.0f}% | "
                  f"{a['thread_turns_per_s']:.0f} | {a['threads_used']} | "
                  f"{a['server_cpu_us_per_req'] or 0:.0f} |", flush=True)
            sched.append((threads, a["switchinterval_ms"], a["threads_sched"]))
    print(f"\nStalls over {STALL_MS} ms (diag build), by where, in % of the requests: queue "
          "(queued -> dequeued), entry (dequeued -> app entered), app (entered -> returned), "
          "after (app returned -> response handed to the connection), out and in (handed over "
          "-> the same connection's next request queued: the response's way out, wrk, the next "
          "request's way in); and, for the stalls inside the server (dequeued -> handed over), "
          "how many requests other threads dequeued meanwhile (median, least):\n")
    for a in results:
        if "stalls" in a:
            st = a["stalls"]
            print(f"- threads {a['threads']}, switch {a['switchinterval_ms']:g} ms {a['label']}: "
                  + ", ".join(f"{k.replace('_', ' ')} {v:.2f}%" for k, v in st.items())
                  + (f"; overtaken by {a['stalls_overtaken_by_median']} (least "
                     f"{a['stalls_overtaken_by_min']})" if a["stalls_overtaken_by_median"] is not None
                     else ""))
    print("\nPer second of the run, per kind of thread (the pool's threads summed): CPU ms, ms "
          "runnable but waiting for a CPU (schedstat run delay), context switches voluntary / "
          "involuntary:\n")
    for threads, sw, ts in sched:
        print(f"- threads {threads}, switch {sw:g} ms: " + "; ".join(
            f"{k} {v[0]:.0f} / wait {v[1]:.0f} / {v[3]:.0f} vol {v[4]:.0f} invol"
            for k, v in sorted(ts.items()) if v[0] > 1 or v[3] > 5))
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
