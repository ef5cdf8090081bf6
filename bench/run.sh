#!/bin/bash
# Benchmark trestle against gunicorn sync and gthread; see docs/benchmarks.md.
# Usage: bench/run.sh [--apps hello,flask] [--servers trestle,gunicorn-sync,gunicorn-gthread]
#                     [--duration 10s] [--runs 3] ...   (bench/run.sh --help for all)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export BENCH_COMMAND="bench/run.sh${*:+ $*}"
exec /usr/bin/python3 "$here/bench.py" "$@"
