#!/usr/bin/env python3
"""Instructions per proxied request, counted by callgrind: a deterministic guard for CI.

Starts the release `routerly serve` under `valgrind --tool=callgrind` with instrumentation
off, beside `routerly-mock` (not under valgrind), warms both request kinds up, then for a
non-streamed and a streamed chat completion: zeroes the counters, sends N requests one at a
time on one keep-alive connection, waits until their usage records are on disk (the usage
writer's work is part of a request's cost), and dumps the counters. Instructions counted
include every thread of the process (handler, runtime, usage writer, the log line).

Compared with `bench/instruction-budget.json`: fails when a kind exceeds its budget by more
than the tolerance (10 %); says so when it runs well under, so the budget can be lowered
with `--update`.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET = ROOT / "bench" / "instruction-budget.json"
TOKEN = "sk-lr-guard-0123456789abcdef0123456789abcdef"


def body(stream):
    request = {"model": "guard", "max_tokens": 64, "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hello in one short sentence, please."}]}
    if stream:
        request["stream"] = True
    return json.dumps(request, separators=(",", ":")).encode()


def write_config(home, mock_openai_url):
    config = home / "config"
    config.mkdir(parents=True)
    (config / "models.json").write_text(json.dumps({"models": [{
        "id": "guard", "provider": "openai", "endpoint": mock_openai_url, "upstream_model": "gpt-4o-mini",
        "pricing": {"input": 0.15, "output": 0.6}}]}))
    (config / "projects.json").write_text(json.dumps({"projects": [{
        "id": "proj-guard", "name": "Guard", "slug": "guard", "models": [{"model_id": "guard"}],
        "tokens": [{"id": "tok-guard", "hash": hashlib.sha256(TOKEN.encode()).hexdigest(),
                    "snippet": TOKEN[:10] + "…"}]}]}))


def request(sock, port, stream):
    payload = body(stream)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                 b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (port, TOKEN.encode(), len(payload), payload))
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed mid-answer: {buf[:300]!r}")
        buf += chunk
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            continue
        head = buf[:end].decode("latin-1").lower()
        if not head.startswith("http/1.1 200"):
            raise RuntimeError(f"unexpected answer: {buf[:400]!r}")
        length = re.search(r"content-length: *(\d+)", head)
        if length and len(buf) - end - 4 >= int(length.group(1)):
            return
        if not length and buf.endswith(b"\r\n0\r\n\r\n"):
            return


def wait_records(usage_log, count, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if usage_log.exists() and usage_log.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"expected {count} usage records in {usage_log}")


def control(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, text=True)


def totals(path):
    for line in path.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def measure(args, work):
    release = Path(os.environ.get("ROUTERLY_BENCH_BIN_DIR", ROOT / "target" / "release"))
    mock = subprocess.Popen([str(release / "routerly-mock"), "--record-limit", "0"], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    server = None
    try:
        urls = json.loads(mock.stdout.readline())
        home = work / "home"
        write_config(home, urls["openai"])
        env = dict(os.environ, ROUTERLY_HOME=str(home), ROUTERLY_LOG="info")
        env.pop("ROUTERLY_LOG_FORMAT", None)
        out_file = work / "callgrind.out"
        server = subprocess.Popen(
            ["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out_file}", str(release / "routerly"), "serve", "--host", "127.0.0.1",
             "--port", "0"],
            env=env, stdout=subprocess.PIPE, stderr=open(work / "routerly.log", "wb"), text=True,
            start_new_session=True)
        port = None
        deadline = time.time() + 120
        while port is None:
            line = server.stdout.readline()
            if not line:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("routerly did not start under valgrind; see its log:\n"
                                       + (work / "routerly.log").read_text()[-3000:])
                continue
            match = re.search(r"listening on http://[^:]+:(\d+)", line)
            if match:
                port = int(match.group(1))
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        usage_log = home / "data" / "usage.jsonl"
        sent = 0
        for _ in range(args.warmup):
            for stream in (False, True):
                request(sock, port, stream)
                sent += 1
        wait_records(usage_log, sent)
        control(server.pid, "--instr=on")
        results = {}
        for kind, stream in (("chat", False), ("stream", True)):
            control(server.pid, "--zero")
            for _ in range(args.requests):
                request(sock, port, stream)
                sent += 1
            wait_records(usage_log, sent)
            before = set(work.glob("callgrind.out*"))
            control(server.pid, f"--dump={kind}")
            dumps = sorted(set(work.glob("callgrind.out*")) - before, key=lambda p: p.stat().st_mtime)
            if not dumps:
                raise RuntimeError("callgrind wrote no dump")
            results[kind] = totals(dumps[-1]) / args.requests
            if args.keep:
                shutil.copy(dumps[-1], ROOT / "bench" / "results" / f"callgrind.{kind}.out")
        sock.close()
        return results
    finally:
        for proc in (server, mock):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20, help="requests counted per kind")
    parser.add_argument("--warmup", type=int, default=10, help="requests of each kind before counting")
    parser.add_argument("--update", action="store_true", help="record the measured counts as the budget")
    parser.add_argument("--keep", action="store_true", help="copy the dumps to bench/results/ for callgrind_annotate")
    args = parser.parse_args()
    if args.keep:
        (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="routerly-callgrind-") as work:
        measured = measure(args, Path(work))
    elapsed = time.time() - started
    budget = json.loads(BUDGET.read_text()) if BUDGET.exists() else {"tolerance": 0.10, "per_request": {}}
    tolerance = budget.get("tolerance", 0.10)
    failed = False
    for kind, value in measured.items():
        allowed = budget["per_request"].get(kind)
        if allowed is None:
            print(f"{kind:>6}: {value:,.0f} instructions per request (no budget yet)")
            continue
        ratio = value / allowed
        verdict = "ok"
        if ratio > 1 + tolerance:
            verdict = f"OVER BUDGET by {100 * (ratio - 1):.1f} % (allowed {100 * tolerance:.0f} %)"
            failed = True
        elif ratio < 1 - tolerance:
            verdict = "well under budget: lower it with `bench/callgrind-guard.sh --update`"
        print(f"{kind:>6}: {value:,.0f} instructions per request, budget {allowed:,.0f} "
              f"({100 * (ratio - 1):+.1f} %) {verdict}")
    print(f"callgrind guard took {elapsed:.0f} s")
    if args.update:
        budget["per_request"] = {kind: round(value) for kind, value in measured.items()}
        budget["tolerance"] = tolerance
        budget["note"] = ("Instructions per proxied request through the release binary, counted by "
                          "bench/callgrind-guard.sh (callgrind, all threads, usage write and log line "
                          "included). CI fails above budget × (1 + tolerance); lower it when code gets faster.")
        BUDGET.write_text(json.dumps(budget, indent=2) + "\n")
        print(f"wrote {BUDGET}")
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
