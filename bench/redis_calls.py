#!/usr/bin/env python3
"""Redis commands per call, counted: one replica on PostgreSQL + Redis (set up as in
bench/replicas.py: a project cost limit and a token call limit), `--calls` sequential chat
calls, and every command Redis receives under this run's key prefix, read from `MONITOR`
(the machine's Redis is shared with other work, so `INFO commandstats` would count theirs
too). The idle window before the calls is counted the same way and subtracted, so what is
printed is what the calls cost, per call, by command name.

    ROUTERLY_BENCH_BIN_DIR=target/release python3 bench/redis_calls.py --calls 200
"""

import argparse
import collections
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import bench
import replicas
from bench import Proc, request_body, start_mock


def monitor(prefix, seconds, during=None):
    """Commands naming `prefix` that Redis receives over `seconds` (while `during` runs)."""
    # To a file, not a pipe: a full pipe would stall redis-cli and Redis would drop lines.
    log_path = bench.WORK / f"monitor-{time.time_ns()}.log"
    log = open(log_path, "w")
    watcher = subprocess.Popen(["redis-cli", "MONITOR"], stdout=log, text=True)
    time.sleep(0.3)
    started = time.time()
    if during:
        during()
    time.sleep(max(0.0, seconds - (time.time() - started)))
    watcher.terminate()
    watcher.wait(timeout=10)
    log.close()
    output = log_path.read_text(errors="replace")
    counts = collections.Counter()
    for line in output.splitlines():
        if prefix not in line or '"' not in line:
            continue
        # A command a script runs is shown as from `[db lua]`; top-level ones are round trips
        # (or parts of a pipeline).
        in_script = " lua]" in line
        counts[line.split('"')[1].lower() + (" (in script)" if in_script else "")] += 1
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="sequential calls counted (default 200)")
    parser.add_argument("--window", type=float, default=12.0, help="seconds counted, idle and with the calls")
    args = parser.parse_args()
    bench.WORK = Path(tempfile.mkdtemp(prefix="routerly-redis-calls-"))
    database = f"routerly_bench_{secrets.token_hex(6)}"
    prefix = f"routerly-bench-{secrets.token_hex(6)}"
    subprocess.run([*replicas.PSQL, "-c", f"CREATE DATABASE {database}"], check=True, capture_output=True)
    try:
        mock_port = start_mock("0")
        shared = (f"host=127.0.0.1 port=5432 user=postgres dbname={database}", secrets.token_hex(32), prefix)
        port, _, env = replicas.start_replica("shared-1", "1", shared)
        token = replicas.configure(port, env, mock_port)
        body = request_body("bench-chat", False).encode()

        def calls():
            for _ in range(args.calls):
                request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                                 headers={"authorization": f"Bearer {token}",
                                                          "content-type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as answer:
                    assert answer.status == 200, f"a call answered {answer.status}"

        calls()  # warm: scripts loaded, connections open
        idle = monitor(prefix, args.window)
        busy = monitor(prefix, args.window, calls)
        names = sorted(set(idle) | set(busy), key=lambda name: -(busy[name] - idle[name]))
        total = sum(busy.values()) - sum(idle.values())
        print(f"{args.calls} calls, {args.window:.0f} s windows; commands naming the prefix:")
        print(f"  {'command':<28}{'idle':>8}{'with calls':>12}{'per call':>10}")
        for name in names:
            print(f"  {name:<28}{idle[name]:>8}{busy[name]:>12}{(busy[name] - idle[name]) / args.calls:>10.2f}")
        print(f"  {'total':<28}{sum(idle.values()):>8}{sum(busy.values()):>12}{total / args.calls:>10.2f}")
    finally:
        for proc in reversed(Proc.all):
            proc.stop()
        subprocess.run([*replicas.PSQL, "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"],
                       capture_output=True)
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", f"{prefix}:*"], capture_output=True,
                              text=True).stdout.split()
        if keys:
            subprocess.run(["redis-cli", "DEL", *keys], capture_output=True)
        shutil.rmtree(bench.WORK, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
