#!/usr/bin/env bash
# Usage history at scale: for each N (default 1,000,000 and 10,000,000) writes N synthetic
# usage records into a fresh home and prints start-up to ready, every report's and look-up's
# latency, export throughput and peak memory (bench/usage_bench.py). Release build, at nice.
# 10M records take about 7 GB of disk under $BENCH_DIR (default /tmp); removed afterwards.
# `--sqlite` also indexes the same records in SQLite as a derived index beside the log and
# prints its disk, writes and answers beside Routerly's from the same run
# (bench/usage_sqlite.py), the alternative ARCHITECTURE.md weighs.
# Usage: bench/usage.sh [--sqlite] [N ...]
set -euo pipefail
cd "$(dirname "$0")/.."
nice cargo build --quiet --release --locked --bins -p routerly
nice cargo build --quiet --release --locked -p routerly-server --example usage_bench_gen
python="${PYTHON:-.venv/bin/python}"
sqlite=""
if [ "${1:-}" = --sqlite ]; then
  sqlite=1
  shift
fi
counts=("$@")
[ ${#counts[@]} -eq 0 ] && counts=(1000000 10000000)
for count in "${counts[@]}"; do
  home="$(mktemp -d "${BENCH_DIR:-/tmp}/routerly-usage-bench-XXXXXX")"
  trap 'rm -rf "$home"' EXIT
  started=$(date +%s)
  meta="$(nice target/release/examples/usage_bench_gen "$home" "$count" 30)"
  echo "wrote $count records in $(( $(date +%s) - started )) s" >&2
  nice "$python" bench/usage_bench.py target/release/routerly "$home" "$meta"
  if [ -n "$sqlite" ]; then
    nice "$python" bench/usage_sqlite.py "$home" "$meta"
  fi
  rm -rf "$home"
  trap - EXIT
done
