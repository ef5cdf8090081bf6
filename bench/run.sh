#!/bin/bash
# Benchmark trestle against gunicorn sync and gthread (WSGI apps), uvicorn and
# hypercorn (ASGI apps), and nginx (static and proxy mounts); see docs/benchmarks.md.
# Usage: bench/run.sh [--apps hello,flask,asgi,quart,starlette,sleep,flask-async | mounts]
#                     [--servers trestle,trestle-no-flask-async,gunicorn-sync,gunicorn-gthread,uvicorn-uvloop,uvicorn-h11,hypercorn,nginx]
#                     [--duration 10s] [--runs 3] ...   (bench/run.sh --help for all)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export BENCH_COMMAND="bench/run.sh${*:+ $*}"
exec /usr/bin/python3 "$here/bench.py" "$@"
