#!/usr/bin/env bash
# Budget counters at start-up: times the rebuild of six counters from a usage log of
# 1,000,000 records (no checkpoint), and from a checkpoint plus 10,000 newer records.
# Usage: bench/rebuild.sh [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release --locked -p routerly-server --example rebuild_bench -- "${1:-1000000}"
