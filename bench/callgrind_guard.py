#!/usr/bin/env python3
"""Instructions per proxied request, counted by callgrind: a deterministic guard for CI.

Starts the release `routerly serve` under `valgrind --tool=callgrind` with instrumentation
off, beside `routerly-mock` (not under valgrind), warms both request kinds up, then for a
non-streamed and a streamed chat completion: zeroes the counters, sends N requests one at a
time on one keep-alive connection, waits until their usage records are on disk (the usage
writer's work is part of a request's cost), and dumps the counters. Instructions counted
include every thread of the process (handler, runtime, usage writer, the log line). The same
dumps give the heap allocations per request: the calls they record into the allocator's entry
points.

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
        # A provider key, as every deployed model has: its credential header is part of a call.
        "api_key": "env:GUARD_UPSTREAM_API_KEY",
        "pricing": {"input": 0.15, "output": 0.6}}]}))
    (config / "projects.json").write_text(json.dumps({"projects": [{
        "id": "proj-guard", "name": "Guard", "slug": "guard", "models": [{"model_id": "guard"}],
        "tokens": [{"id": "tok-guard", "hash": hashlib.sha256(TOKEN.encode()).hexdigest(),
                    "snippet": TOKEN[:10] + "…"}]}]}))
    # Budgets on: a project cost limit that every call reserves against and adds to.
    (config / "limits.json").write_text(json.dumps({"limits": [{
        "id": "guard-daily", "scope": "project:proj-guard", "metric": "cost", "window": "daily",
        "value": 1000000}]}))


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


def start_mock(release):
    mock = subprocess.Popen([str(release / "routerly-mock"), "--record-limit", "0"], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    return mock, json.loads(mock.stdout.readline())


def under_callgrind(out_file, command, env, log):
    """`command` under callgrind on CPU 0, instrumentation off until `--instr=on`."""
    options = ["--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}"]
    return subprocess.Popen(["taskset", "-c", "0", "valgrind", *options, *command], env=env,
                            stdout=subprocess.PIPE, stderr=open(log, "wb"), text=True, start_new_session=True)


def start_routerly(work, release, mock_urls):
    home = work / "home"
    write_config(home, mock_urls["openai"])
    env = dict(os.environ, ROUTERLY_HOME=str(home), ROUTERLY_LOG="info",
               GUARD_UPSTREAM_API_KEY="sk-guard-upstream-0123456789abcdef")
    env.pop("ROUTERLY_LOG_FORMAT", None)
    server = under_callgrind(work / "callgrind.out", [str(release / "routerly"), "serve", "--host", "127.0.0.1",
                                                      "--port", "0"], env, work / "routerly.log")
    deadline = time.time() + 120
    while True:
        line = server.stdout.readline()
        if not line:
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("routerly did not start under valgrind; see its log:\n"
                                   + (work / "routerly.log").read_text()[-3000:])
            continue
        match = re.search(r"listening on http://[^:]+:(\d+)", line)
        if match:
            return server, int(match.group(1)), home / "data" / "usage.jsonl"


def start_nginx(work, mock_urls):
    """nginx as a plain reverse proxy to the same mock: the floor of one proxy hop."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    upstream = re.match(r"http://([^/]+)", mock_urls["openai"]).group(1)
    # The guard's requests go to /v1/…; the mock's OpenAI base URL may carry its own prefix.
    prefix = re.sub(r"^http://[^/]+", "", mock_urls["openai"]).rstrip("/")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = work / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx.error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  upstream mock {{ server {upstream}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port};
    location /v1/ {{
      proxy_pass http://mock{prefix}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
""")
    server = under_callgrind(work / "callgrind.out", [nginx, "-p", str(work), "-c", str(conf),
                                                      "-e", f"{work}/nginx.error.log"],
                             dict(os.environ), work / "nginx.log")
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("nginx did not start under valgrind: " + (work / "nginx.log").read_text()[-2000:])
            time.sleep(0.1)
    raise RuntimeError("nginx did not start listening")


def stop(*procs):
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def count(args, work, server, port, usage_log, keep_prefix):
    """Instructions and heap allocations per request of each kind, all threads of `server`
    (under callgrind)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sent = 0

    def settle():
        # The usage writer's work is part of a request's cost: wait until every record is on disk.
        if usage_log is not None:
            wait_records(usage_log, sent)

    for _ in range(args.warmup):
        for stream in (False, True):
            request(sock, port, stream)
            sent += 1
    settle()
    control(server.pid, "--instr=on")
    results = {}
    heap = {}
    for kind, stream in (("chat", False), ("stream", True)):
        control(server.pid, "--zero")
        for _ in range(args.requests):
            request(sock, port, stream)
            sent += 1
        settle()
        before = set(work.glob("callgrind.out*"))
        control(server.pid, f"--dump={kind}")
        dumps = sorted(set(work.glob("callgrind.out*")) - before, key=lambda p: p.stat().st_mtime)
        if not dumps:
            raise RuntimeError("callgrind wrote no dump")
        results[kind] = totals(dumps[-1]) / args.requests
        heap[kind] = {what: n / args.requests for what, n in allocator_calls(dumps[-1]).items()}
        if args.keep:
            shutil.copy(dumps[-1], ROOT / "bench" / "results" / f"callgrind.{keep_prefix}{kind}.out")
    sock.close()
    return results, heap


# The entry points of the allocators: Rust's allocations reach mimalloc (the binary's global
# allocator) through its `mi_*_aligned` functions, and C code, nginx and glibc's own reach the
# C library's; the calls into them that a dump records are the process's heap allocations,
# as valgrind's DHAT counts them.
ALLOCATING = {"malloc": "allocations", "calloc": "allocations", "posix_memalign": "allocations",
              "aligned_alloc": "allocations", "memalign": "allocations", "realloc": "reallocations",
              "mi_malloc_aligned": "allocations", "mi_zalloc_aligned": "allocations",
              "mi_malloc": "allocations", "mi_zalloc": "allocations", "mi_calloc": "allocations",
              "mi_realloc_aligned": "reallocations", "mi_realloc": "reallocations"}


def allocator_calls(path):
    """Calls into the allocator recorded in a callgrind dump: {"allocations": n, "reallocations": n}."""
    names = {}
    counts = {"allocations": 0, "reallocations": 0}
    callee = None
    with open(path, errors="replace") as dump:
        for line in dump:
            # A name is given once, where its number first appears (fn= or cfn=).
            match = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if match:
                if match.group(2) is not None:
                    names[match.group(1)] = match.group(2)
                if line.startswith("cfn="):
                    callee = names.get(match.group(1))
            elif line.startswith("calls=") and callee in ALLOCATING:
                counts[ALLOCATING[callee]] += int(line.split("=")[1].split()[0])
    return counts


def measure(args, work):
    release = Path(os.environ.get("ROUTERLY_BENCH_BIN_DIR", ROOT / "target" / "release"))
    mock, urls = start_mock(release)
    try:
        routerly_dir = work / "routerly"
        routerly_dir.mkdir()
        server, port, usage_log = start_routerly(routerly_dir, release, urls)
        try:
            measured, heap = count(args, routerly_dir, server, port, usage_log, "")
        finally:
            stop(server)
        floor = None
        if not args.no_floor:
            nginx_dir = work / "nginx"
            nginx_dir.mkdir()
            server, port = start_nginx(nginx_dir, urls)
            try:
                floor, _ = count(args, nginx_dir, server, port, None, "nginx.")
            finally:
                stop(server)
        return measured, heap, floor
    finally:
        stop(mock)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 100: the writers' per-batch work (a write every 10 ms, a blocking-pool thread now and
    # then) spreads over enough calls that runs agree within about 0.5 % (at 20 they spread
    # over 3 %); at callgrind's speed it is about a second more.
    parser.add_argument("--requests", type=int, default=100, help="requests counted per kind")
    parser.add_argument("--warmup", type=int, default=10, help="requests of each kind before counting")
    parser.add_argument("--update", action="store_true", help="record the measured counts as the budget")
    parser.add_argument("--no-floor", action="store_true", help="skip counting nginx as the same proxy hop")
    parser.add_argument("--keep", action="store_true", help="copy the dumps to bench/results/ for callgrind_annotate")
    args = parser.parse_args()
    if args.keep:
        (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="routerly-callgrind-") as work:
        measured, heap, floor = measure(args, Path(work))
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
    if floor:
        for kind, value in measured.items():
            print(f"{kind:>6}: nginx as the same hop {floor[kind]:,.0f} instructions per request; "
                  f"Routerly {value / floor[kind]:.1f}x nginx")
    for kind, calls in heap.items():
        print(f"{kind:>6}: {calls['allocations']:,.0f} heap allocations and {calls['reallocations']:,.0f} "
              f"reallocations per request")
    print(f"callgrind guard took {time.time() - started:.0f} s")
    if args.update:
        budget["per_request"] = {kind: round(value) for kind, value in measured.items()}
        budget["tolerance"] = tolerance
        budget["note"] = ("Instructions per proxied request through the release binary, counted by "
                          "bench/callgrind-guard.sh (callgrind, all threads, usage write, trace and log line "
                          "included, with a project cost limit so every call reserves and adds to a budget "
                          "counter). CI fails above budget × (1 + tolerance); lower it when code gets faster.")
        BUDGET.write_text(json.dumps(budget, indent=2) + "\n")
        print(f"wrote {BUDGET}")
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
