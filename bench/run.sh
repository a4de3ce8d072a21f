#!/usr/bin/env bash
# Routerly's benchmark, one command: `./bench/run.sh [--duration S] [--repeat N] [--peers]`
# (or `./bench/run.sh --replicas [--duration S] [--repeat N]`, see bench/replicas.py).
# Builds the release binary, installs the load tools it lacks (wrk and nginx from apt), then
# measures the mock directly, the mock behind one nginx hop, and Routerly on the same mock
# (with --peers also LiteLLM and Portkey), and prints and writes the table (bench/results/);
# then times the rebuild of budget counters from 1,000,000 usage records.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (apt)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release --locked --bin routerly --bin routerly-mock
# `--replicas`: the shared backends' cost instead (bench/replicas.py: one replica in file
# mode, one on PostgreSQL + Redis, three behind nginx, side by side).
if [ "${1:-}" = "--replicas" ]; then
  shift
  exec python3 bench/replicas.py "$@"
fi
python3 bench/bench.py "$@"

# Budget counters at start-up: 1,000,000 usage records rebuilt from the log alone and from
# a checkpoint (issue: start-up stays fast however long the history).
rebuild=$(bench/rebuild.sh)
printf '\n%s\n' "$rebuild"
for arg in "$@"; do
  if [ "$arg" = "--latest" ]; then
    printf '\n## Budget counters at start-up\n\n```\n%s\n```\n' "$rebuild" >> bench/LATEST.md
  fi
done
