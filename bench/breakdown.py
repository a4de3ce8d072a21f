#!/usr/bin/env python3
"""Where a proxied request's instructions go, per phase, from a callgrind dump.

    bench/callgrind-guard.sh --keep        # writes bench/results/callgrind.{chat,stream}.out
    bench/breakdown.py [--requests 100] bench/results/callgrind.chat.out

Every function's own (exclusive) instructions are given to a phase by the module that
defines it (the table PHASES, first match wins). Shared code that belongs to no phase
(serde_json, the allocator, memcpy, hashing, formatting) is charged to whoever called it,
in proportion to the instructions of each caller's calls into it, following callers up
through other shared code: so the JSON parse of a request counts as "request scan" and the
JSON writing of a usage record as "usage record". Counts are divided by the number of
requests the dump covers.
"""

import argparse
import re
import sys
from collections import defaultdict

# (phase, patterns): a function belongs to the first phase one of whose patterns its
# demangled name contains. Order matters: specific modules before the crates around them.
PHASES = [
    ("log line", ["routerly_server::logging", "tracing_subscriber::", "tracing_core::", "tracing::"]),
    ("trace", ["routerly_server::routing::trace", "routerly_server::proxy::route"]),
    ("usage record", ["routerly_server::store::usage_log", "routerly_server::proxy::record",
                      "routerly_core::usage", "uuid::"]),
    ("budgets", ["routerly_server::budgets", "routerly_server::proxy::budget", "routerly_core::limits",
                 "routerly_server::store::state"]),
    ("routing", ["routerly_server::routing", "routerly_core::routing", "routerly_server::proxy::candidates"]),
    ("metrics", ["routerly_server::metrics"]),
    ("relay", ["routerly_server::proxy::relay", "routerly_core::members", "routerly_core::wire::openai::stream",
               "routerly_core::wire::anthropic::stream", "routerly_core::accumulate"]),
    ("upstream client", ["routerly_providers::", "hyper_util::client", "hyper::client", "hyper_rustls",
                         "hyper::proto::h1::role::Client", "hyper::proto::h1::dispatch::Client"]),
    ("authentication", ["routerly_server::proxy::auth", "sha2::", "subtle::"]),
    ("request scan", ["routerly_server::proxy", "routerly_core::wire", "routerly_core::canonical",
                      "routerly_core::estimate"]),
    # hyper's protocol code (parsing, chunked bodies, buffered IO) serves both sides: it is
    # charged through its callers to the server connection or to the client's.
    ("HTTP server", ["hyper::server", "hyper_util::server", "hyper_util::service", "axum::", "axum_core::",
                     "tower::", "tower_http::", "routerly_server::serve", "routerly_server::net"]),
    ("runtime", ["tokio::", "mio::", "futures_util::", "futures_core::", "parking_lot", "std::sys::", "std::thread",
                 "crossbeam", "arc_swap::"]),
]

def phase_of(name):
    for phase, patterns in PHASES:
        if any(p in name for p in patterns):
            return phase
    return None


def is_shared(name):
    """Code of no phase (serde_json, the allocator, memcpy, core and alloc generics): charged to its callers."""
    return phase_of(name) is None


def parse(path):
    """Self cost per function and inclusive cost per (caller, callee) edge."""
    names = {}
    self_cost = defaultdict(int)
    edges = defaultdict(int)
    current = None
    callee = None
    pending_call = False

    def resolve(text):
        m = re.match(r"\((\d+)\)(?: (.*))?", text)
        if not m:
            return text
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names[m.group(1)]

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("fn="):
                current = resolve(line[3:])
            elif line.startswith("cfn="):
                callee = resolve(line[4:])
            elif line.startswith("calls="):
                pending_call = True
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                if len(parts) < 2 or current is None:
                    continue
                cost = int(parts[1])
                if pending_call:
                    edges[(current, callee)] += cost
                    pending_call = False
                else:
                    self_cost[current] += cost
    return self_cost, edges


def attribute(self_cost, edges):
    callers = defaultdict(list)
    for (caller, callee), cost in edges.items():
        if caller != callee:
            callers[callee].append((caller, cost))
    memo = {}

    def shares(name, depth=0, seen=frozenset()):
        """How the cost of `name` splits over phases: {phase: fraction}."""
        if not is_shared(name):
            return {phase_of(name): 1.0}
        if name in memo:
            return memo[name]
        ups = [(c, w) for c, w in callers.get(name, []) if c not in seen]
        total = sum(w for _, w in ups)
        if depth > 40 or total == 0:
            result = {"other (no caller in a phase)": 1.0}
        else:
            result = defaultdict(float)
            for caller, weight in ups:
                for phase, fraction in shares(caller, depth + 1, seen | {name}).items():
                    result[phase] += fraction * weight / total
            result = dict(result)
        if not seen:
            memo[name] = result
        return result

    phases = defaultdict(float)
    for name, cost in self_cost.items():
        for phase, fraction in shares(name).items():
            phases[phase] += cost * fraction
    return phases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", help="a callgrind dump written by `bench/callgrind-guard.sh --keep`")
    parser.add_argument("--requests", type=int, default=100, help="requests the dump covers")
    args = parser.parse_args()
    self_cost, edges = parse(args.dump)
    phases = attribute(self_cost, edges)
    total = sum(phases.values())
    print(f"{'phase':<30} {'instructions/request':>21} {'share':>7}")
    for phase, cost in sorted(phases.items(), key=lambda item: -item[1]):
        print(f"{phase:<30} {cost / args.requests:>21,.0f} {100 * cost / total:>6.1f}%")
    print(f"{'total':<30} {total / args.requests:>21,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
