#!/usr/bin/env python3
"""Routerly against the nginx hop at one concurrency, taking turns round after round.

    bench/turns.py [--rounds 5] [--duration 5] [--concurrency 64]

The same set-up as `bench/bench.py` (its instant mock, its nginx hop and its Routerly, each
gateway pinned to the same core, the mock and wrk on the other), but instead of running one
target's cells back to back, each round runs nginx and then Routerly, plain calls and then
streams. A slow spell of a shared machine then weighs on both sides of a round alike: the
share printed for each mode is the median of the rounds' shares (Routerly's requests per
second over nginx's in the same round), beside each side's median requests per second.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import bench


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    parser.add_argument("--concurrency", type=int, default=64, help="connections (default 64)")
    parser.add_argument("--gateway-cpu", default="1", help="core(s) of the gateway under test")
    parser.add_argument("--client-cpu", default="0", help="core(s) of the mock and the load generator")
    args = parser.parse_args()

    bench.WORK = Path(tempfile.mkdtemp(prefix="routerly-turns-"))
    try:
        rounds = run(args)
    finally:
        for proc in reversed(bench.Proc.all):
            proc.stop()
        shutil.rmtree(bench.WORK, ignore_errors=True)
    print(f"\nconcurrency {args.concurrency}, {args.rounds} rounds of {args.duration} s, median of the rounds:")
    for mode in bench.MODES:
        nginx = [r[mode]["nginx"] for r in rounds]
        routerly = [r[mode]["routerly"] for r in rounds]
        shares = [r[mode]["routerly"] / r[mode]["nginx"] for r in rounds]
        print(f"  {mode:>6}: Routerly {statistics.median(routerly):9,.0f}/s, nginx {statistics.median(nginx):9,.0f}/s, "
              f"share {100 * statistics.median(shares):.0f} % (rounds: "
              + ", ".join(f"{100 * share:.0f} %" for share in shares) + ")")
    return 0


def run(args):
    gcpu, ccpu = args.gateway_cpu, args.client_cpu
    mock_port = bench.start_mock(ccpu)
    slow = bench.Proc("slow-mock", [str(bench.RELEASE / "routerly-mock"), "--record-limit", "0"], ccpu,
                      stdout=subprocess.PIPE)
    slow_url = json.loads(slow.popen.stdout.readline())["openai"]
    hop_port, hop = bench.start_nginx_hop(mock_port, gcpu)
    routerly_port, routerly, token, _home, _routed = bench.start_routerly(mock_port, slow_url, gcpu)
    sides = {
        "nginx": (hop_port, hop, {}, {"chat": "/v1/chat/completions", "stream": "/stream/v1/chat/completions"},
                  {"chat": "gpt-4o-mini", "stream": "gpt-4o-mini"}),
        "routerly": (routerly_port, routerly, {"Authorization": f"Bearer {token}"},
                     {"chat": "/v1/chat/completions", "stream": "/v1/chat/completions"},
                     {"chat": "bench-chat", "stream": "bench-stream"}),
    }
    rounds = []
    # One unmeasured round first: connections, pools and caches warm on both sides.
    for index in range(args.rounds + 1):
        measured = {}
        for mode in bench.MODES:
            measured[mode] = {}
            for name, (port, proc, headers, paths, models) in sides.items():
                body = bench.request_body(models[mode], mode == "stream")
                url = f"http://127.0.0.1:{port}{paths[mode]}"
                result = bench.wrk(url, body, headers, args.concurrency, args.duration, ccpu, proc)
                if result["errors"] + result["status_errors"]:
                    sys.exit(f"{name} {mode}: {result['errors'] + result['status_errors']} errors")
                measured[mode][name] = result["rps"]
            if index:
                print(f"  round {index} {mode:>6}: Routerly {measured[mode]['routerly']:9,.0f}/s, "
                      f"nginx {measured[mode]['nginx']:9,.0f}/s, "
                      f"{100 * measured[mode]['routerly'] / measured[mode]['nginx']:.0f} %",
                      file=sys.stderr, flush=True)
        if index:
            rounds.append(measured)
    return rounds


if __name__ == "__main__":
    sys.exit(main())
