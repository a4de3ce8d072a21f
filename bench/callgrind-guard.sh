#!/usr/bin/env bash
# The instruction-count guard run by ./scripts/check: builds the release binaries, then counts
# instructions per proxied request under callgrind and compares them with
# bench/instruction-budget.json (fails above budget + 10 %), and counts nginx proxying to the
# same mock the same way (the floor of one proxy hop); prints heap allocations per request too
# (the allocator calls callgrind recorded). `--update` records a new budget, `--keep` keeps the
# dumps for bench/breakdown.py (instructions per phase).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
  echo "installing valgrind (apt)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (apt), the floor the guard compares with" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
cargo build --release --locked --bin routerly --bin routerly-mock
exec python3 bench/callgrind_guard.py "$@"
