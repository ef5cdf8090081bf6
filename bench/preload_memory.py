#!/usr/bin/python3
"""Memory of `trestle --workers N` with and without --preload: RSS (VmRSS from
/proc/PID/status), PSS and USS (Pss, Private_Clean + Private_Dirty from
/proc/PID/smaps_rollup) of the supervisor and each worker, after every worker
has served requests. PSS divides each shared page among the processes that
map it, so the PSS column adds up to what the server really takes; the RSS
column counts shared pages once per process. See docs/benchmarks.md, "Worker
processes".

Usage: bench/preload_memory.py [--trestle build/trestle] [--workers 4]
                               [--app flask_app:app] [--chdir tests/apps]
                               [--requests 50] [-- extra trestle flags]

For each mode: start the server on a free loopback port, wait until it
answers and all workers are up; open keep-alive connections until every
worker holds at least one (which worker accepted a connection is read from
/proc/net/tcp and the workers' /proc/PID/fd); send --requests requests per
worker over them (GET / and GET /json, alternating), wait 1 s, read /proc,
stop the server. Prints a Markdown table. Standard library only.
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
PATHS = ("/", "/json")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path="/", timeout=5.0):
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


def server_inode(port, client_port):
    """The inode of the server's end of the loopback connection from client_port."""
    want_local, want_remote = f":{port:04X}", f":{client_port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1].endswith(want_local) and parts[2].endswith(want_remote):
                return parts[9]
    return None


def owner(inode, pids):
    target = f"socket:[{inode}]"
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


def request(conn, path):
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        sys.exit(f"GET {path}: status {resp.status}")


def memory(pid):
    """KiB: RSS, PSS, USS (private clean + dirty)."""
    rss = pss = uss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "Pss":
                pss = int(value.split()[0])
            elif key in ("Private_Clean", "Private_Dirty"):
                uss += int(value.split()[0])
    return rss, pss, uss


def measure(a, preload):
    port = free_port()
    cmd = [a.trestle, a.app, "--chdir", a.chdir, "--bind", f"127.0.0.1:{port}",
           "--workers", str(a.workers)] + (["--preload"] if preload else []) + a.extra
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
        while len(children(proc.pid)) < a.workers:
            if time.monotonic() > deadline:
                sys.exit(f"only {len(children(proc.pid))} of {a.workers} workers came up")
            time.sleep(0.05)
        time.sleep(0.5)
        workers = children(proc.pid)
        # Keep-alive connections until each worker holds one (the workers
        # share the listener: whichever wakes first accepts).
        held = {pid: [] for pid in workers}
        opened = []
        while any(not c for c in held.values()):
            if len(opened) >= 64 * a.workers:
                sys.exit(f"{len(opened)} connections, and still a worker without one")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
            request(conn, "/")
            opened.append(conn)
            pid = owner(server_inode(port, conn.sock.getsockname()[1]), workers)
            if pid is None:
                sys.exit("could not tell which worker accepted a connection")
            held[pid].append(conn)
        sent = len(opened)
        for pid, conns in held.items():
            for i in range(a.requests):
                request(conns[i % len(conns)], PATHS[i % 2])
                sent += 1
        for conn in opened:
            conn.close()
        time.sleep(1.0)
        if sorted(children(proc.pid)) != sorted(workers):
            print("warning: the workers changed while measuring", file=sys.stderr)
        rows = [("supervisor", memory(proc.pid))]
        rows += [(f"worker {i}", memory(pid)) for i, pid in enumerate(sorted(workers), 1)]
        return cmd, sent, rows
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def mib(kib):
    return f"{kib / 1024:.1f}"


def main(argv):
    p = argparse.ArgumentParser(prog="bench/preload_memory.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--trestle", default=os.path.join(ROOT, "build", "trestle"))
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--app", default="flask_app:app")
    p.add_argument("--chdir", default=os.path.join(ROOT, "tests", "apps"))
    p.add_argument("--requests", type=int, default=50, help="at least this many per worker (default 50)")
    p.add_argument("extra", nargs="*", help="extra trestle flags (after --)")
    a = p.parse_args(argv)

    results = [(mode, *measure(a, mode == "--preload")) for mode in ("without --preload", "--preload")]
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    print(f"`trestle --workers {a.workers} {a.app}` ({time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"commit {rev}), after {a.requests} or more requests to every worker (its own keep-alive connections); MiB:\n")
    print("| mode | process | RSS | PSS | USS (private) |")
    print("|---|---|---:|---:|---:|")
    for mode, _, sent, rows in results:
        for name, (rss, pss, uss) in rows:
            print(f"| {mode} | {name} | {mib(rss)} | {mib(pss)} | {mib(uss)} |")
        tot = [sum(r[1][i] for r in rows) for i in range(3)]
        print(f"| {mode} | **all {len(rows)} processes** ({sent} requests) | {mib(tot[0])} | "
              f"**{mib(tot[1])}** | {mib(tot[2])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
