#!/usr/bin/python3
"""What an idle `trestle --workers N` costs: the supervisor's CPU time over an
idle spell (utime + stime from /proc/PID/stat, before and after: it should not
move), its wake-ups (context switches from /proc/PID/status) and its memory,
with the workers' for context. See docs/benchmarks.md, "Worker processes".

Usage: bench/supervisor_idle.py [--trestle build/trestle] [--workers 2]
                                [--idle 30] [--app flask_hello:app]
                                [--chdir tests/apps] [-- extra trestle flags]

Starts the server on a free loopback port, waits until it answers, sends a
few requests, lets it settle for 2 s, then reads /proc before and after the
idle spell and prints a Markdown table. Standard library only.
"""

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path="/", timeout=2.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def stat(pid):
    """(utime + stime in ticks, threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12]), int(rest[17])


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def switches(pid):
    """Voluntary + involuntary context switches over all the process's threads."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            st = status(f"{pid}/task/{tid}")
        except OSError:
            continue
        total += int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
    return total


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def sample(pid):
    ticks, threads = stat(pid)
    st = status(pid)
    return {"ticks": ticks, "threads": threads, "switches": switches(pid),
            "rss_kib": int(st["VmRSS"].split()[0]), "pss_kib": pss_kib(pid)}


def main(argv):
    p = argparse.ArgumentParser(prog="bench/supervisor_idle.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--trestle", default=os.path.join(ROOT, "build", "trestle"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--idle", type=float, default=30.0, help="seconds of idling measured (default 30)")
    p.add_argument("--app", default="flask_hello:app")
    p.add_argument("--chdir", default=os.path.join(ROOT, "tests", "apps"))
    p.add_argument("extra", nargs="*", help="extra trestle flags (after --)")
    a = p.parse_args(argv)

    port = free_port()
    cmd = [a.trestle, a.app, "--chdir", a.chdir, "--bind", f"127.0.0.1:{port}",
           "--workers", str(a.workers)] + a.extra
    print(f"server: `{' '.join(cmd)}`", file=sys.stderr)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                sys.exit(f"trestle exited with {proc.returncode}:\n{proc.stderr.read().decode()}")
            try:
                if get(port, timeout=1.0)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("trestle did not answer within 60 s")
            time.sleep(0.05)
        # All workers up (the supervisor logs nothing we need: count its children).
        while len(children(proc.pid)) < a.workers and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(20):
            get(port)
        time.sleep(2.0)   # settle: nothing in flight, keep-alive connections closed client-side
        sup, workers = proc.pid, children(proc.pid)
        before = {pid: sample(pid) for pid in [sup] + workers}
        t0 = time.monotonic()
        time.sleep(a.idle)
        wall = time.monotonic() - t0
        after = {pid: sample(pid) for pid in [sup] + workers}
        if sorted(children(sup)) != sorted(workers):
            print("warning: the workers changed during the idle spell", file=sys.stderr)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    print(f"`trestle --workers {a.workers} {a.app}` idle for {wall:.1f} s "
          f"({time.strftime('%Y-%m-%d %H:%M %Z')}, commit {rev}, {CLK_TCK} ticks/s):\n")
    print("| process | CPU ticks during the idle spell (utime + stime) | context switches "
          "during it | threads | RSS MiB | PSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for pid in [sup] + workers:
        b, e = before[pid], after.get(pid, before[pid])
        name = "supervisor" if pid == sup else f"worker (pid {pid})"
        pss = f"{e['pss_kib'] / 1024:.1f}" if e["pss_kib"] is not None else "?"
        print(f"| {name} | {e['ticks'] - b['ticks']} | {e['switches'] - b['switches']} | "
              f"{e['threads']} | {e['rss_kib'] / 1024:.1f} | {pss} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
