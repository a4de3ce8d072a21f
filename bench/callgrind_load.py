#!/usr/bin/env python3
"""Instructions per plain call under concurrent load, counted by callgrind: what a call costs
when the usage, trace and log writers batch, beside the guard's one-call-at-a-time count.

    bench/callgrind_load.py [--concurrency 64] [--seconds 10]

Starts the release `routerly serve` under callgrind with the guard's configuration (one model
on `routerly-mock`, a project cost limit), warms it up with wrk, then counts the process's
instructions while wrk drives plain chat calls; prints instructions per call and keeps the dump
as `bench/results/callgrind.load.out` for `bench/breakdown.py --requests N`. Needs wrk and
valgrind. A call under callgrind is some fifty times slower, so the figures are instructions,
not time.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import callgrind_guard as guard


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    release = guard.ROOT / "target" / "release"
    work = Path(tempfile.mkdtemp(prefix="routerly-load-"))
    mock, urls = guard.start_mock(release)
    server = None
    try:
        server, port, _usage_log = guard.start_routerly(work, release, urls)
        script = work / "call.lua"
        script.write_text(f'wrk.method = "POST"\nwrk.body = [==[{guard.body(False).decode()}]==]\n'
                          f'wrk.headers["Content-Type"] = "application/json"\n'
                          f'wrk.headers["Authorization"] = "Bearer {guard.TOKEN}"\n')
        url = f"http://127.0.0.1:{port}/v1/chat/completions"

        def load(seconds):
            out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{args.concurrency}", f"-d{seconds}s",
                                  "-s", str(script), url], capture_output=True, text=True, check=True).stdout
            return int(re.search(r"(\d+) requests in", out).group(1))

        load(3)
        guard.control(server.pid, "--instr=on")
        guard.control(server.pid, "--zero")
        calls = load(args.seconds)
        before = set(work.glob("callgrind.out*"))
        guard.control(server.pid, "--dump=load")
        dump = max(set(work.glob("callgrind.out*")) - before, key=lambda p: p.stat().st_mtime)
        kept = guard.ROOT / "bench" / "results" / "callgrind.load.out"
        kept.parent.mkdir(exist_ok=True)
        shutil.copy(dump, kept)
        print(f"{calls} plain calls at concurrency {args.concurrency}: "
              f"{guard.totals(dump) / calls:,.0f} instructions per call "
              f"(bench/breakdown.py --requests {calls} {kept.relative_to(guard.ROOT)})")
    finally:
        guard.stop(*(p for p in (server, mock) if p is not None))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
