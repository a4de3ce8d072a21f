"""Usage history at scale: one home with N synthetic records (written by the
`usage_bench_gen` example), served by the release binary. Prints, as a Markdown table row
set: first start (indexes and rollups built from the whole log), start-up to ready from the
checkpoint (median of STARTS starts, with where the time went, from the start-up's own log
line), each report's and look-up's p50/p95 over repeated calls, export throughput, and
the process's idle and peak resident memory while answering. Leaves the p50s and
the records each page and look-up answered (their ids) in HOME/routerly-figures.json, for
bench/usage_sqlite.py to print beside SQLite's and check SQLite answers the same.

Run by bench/usage.sh; not a test (it asserts nothing about timings).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPEAT = 21
STARTS = 3
EMAIL, PASSWORD = "bench@example.com", "a long bench password"


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def start(binary: str, home: Path, log_level: str = "warn") -> tuple[subprocess.Popen, str, float]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ROUTERLY_")}
    env.update(
        ROUTERLY_HOME=str(home),
        ROUTERLY_ADMIN_EMAIL=EMAIL,
        ROUTERLY_ADMIN_PASSWORD=PASSWORD,
        ROUTERLY_LOG=log_level,
    )
    started = time.monotonic()
    log = open(home / "serve.log", "ab")
    process = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=log, text=True
    )
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(600):
        raise RuntimeError("routerly did not start within 600 s")
    line = process.stdout.readline()
    if not line.startswith("routerly listening on "):
        raise RuntimeError(f"routerly did not start: {line!r}")
    url = line.removeprefix("routerly listening on ").strip()
    while httpx.get(f"{url}/ready", timeout=10).status_code != 200:
        time.sleep(0.01)
    return process, url, time.monotonic() - started


def stop(process: subprocess.Popen) -> float:
    started = time.monotonic()
    process.terminate()
    process.wait(600)
    return time.monotonic() - started


def timed(client: httpx.Client, path: str, params: dict) -> tuple[float, float, dict]:
    samples = []
    body = {}
    for _ in range(REPEAT):
        began = time.perf_counter()
        answer = client.get(path, params=params)
        samples.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
        body = answer.json()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], body


def startup_phases(log: str) -> str:
    """Where a start-up's time went, from the lines `Service::open` logs at info."""
    names = {
        "indexes_ms": "segment indexes",
        "checkpoint_ms": "rollup checkpoint",
        "replay_ms": "log tail replay",
        "compact_ms": "compaction",
        "rest_ms": "the rest",
    }
    parts = []
    for key, name in names.items():
        found = re.search(rf"\b{key}=(\d+)", log)
        if found:
            parts.append(f"{name} {found.group(1)} ms")
    records = re.search(r"usage log read at start-up.*? records=(\d+)", log)
    if records:
        parts.append(f"{int(records.group(1)):,} records replayed")
    return ", ".join(parts)


def main() -> None:
    binary, home, meta = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    records = meta["records"]
    disk = sum(path.stat().st_size for path in (home / "data").glob("usage*.jsonl"))
    rows: list[tuple[str, str]] = [("records on disk", f"{records:,} ({disk / 1e9:.2f} GB, {meta['segments']} segments)")]

    process, url, first = start(binary, home)
    rows.append(("first start: index every segment, rollups from the whole log", f"{first:.1f} s"))
    rows.append(("shutdown (final checkpoint)", f"{stop(process):.1f} s"))
    checkpoint = home / "data" / "checkpoints" / "usage.bin"
    rows.append(("usage checkpoint", f"{checkpoint.stat().st_size / 1e6:.1f} MB"))

    # Start-up from the checkpoint, STARTS times; the service logs where its time went.
    readies, phases = [], []
    for _ in range(STARTS):
        log = home / "serve.log"
        log.unlink(missing_ok=True)
        process, url, ready = start(binary, home, "info")
        stop(process)
        readies.append(ready)
        phases.append(startup_phases(log.read_text()))
    middle = sorted(range(STARTS), key=lambda i: readies[i])[STARTS // 2]
    runs = ", ".join(f"{r * 1000:.0f}" for r in readies)
    rows.append(("**start-up to ready** (from the checkpoint, median of %d)" % STARTS, f"**{readies[middle] * 1000:.0f} ms** ({runs} ms)"))
    rows.append(("of which (the median start)", phases[middle]))

    process, url, _ = start(binary, home)
    try:
        token = httpx.post(f"{url}/api/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30).json()["access_token"]
        client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=600)
        time.sleep(1.0)
        idle = rss_kib(process.pid, "VmRSS")
        figures: dict[str, float] = {}
        answers: dict[str, list[str]] = {}
        # Reset the peak so it measures the reports, not the start-up.
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")
        questions = [
            ("summary", "/api/usage/summary", {}),
            ("summary, one model", "/api/usage/summary", {"model": meta["model"]}),
            ("timeline by day (30 days)", "/api/usage/timeline", {"bucket": "day"}),
            ("timeline by day in Europe/Rome", "/api/usage/timeline", {"bucket": "day", "tz": "Europe/Rome"}),
            ("timeline by hour, last 7 days", "/api/usage/timeline", {"bucket": "hour", "from": meta["day_from"]}),
            ("by model", "/api/usage/by-model", {}),
            ("by project", "/api/usage/by-project", {}),
            ("by token", "/api/usage/by-token", {}),
            ("by user and tag", "/api/usage/by-user", {}),
            ("page of 50 calls", "/api/usage", {"limit": 50}),
            ("page 20 (offset 1000)", "/api/usage", {"limit": 50, "offset": 1000}),
            ("filtered page: one project", "/api/usage", {"limit": 50, "project": meta["project"]}),
            ("filtered page: timeouts", "/api/usage", {"limit": 50, "outcome": "timeout"}),
            ("filtered page: one token's errors", "/api/usage", {"limit": 50, "token": meta["token"], "outcome": "error"}),
            ("filtered page: one model, one day", "/api/usage", {"limit": 50, "model": meta["model"], "from": meta["day_from"], "to": meta["day_to"]}),
            ("trace look-up (newest)", "/api/usage", {"trace": meta["newest_trace"]}),
            ("trace look-up (mid-history)", "/api/usage", {"trace": meta["middle_trace"]}),
        ]
        for name, path, params in questions:
            p50, p95, body = timed(client, path, params)
            if path == "/api/usage" and "trace" in params:
                assert len(body["records"]) == 1, f"{name}: {body}"
            if path == "/api/usage":
                assert body["records"], f"{name}: no records"
                answers[name] = [record["id"] for record in body["records"]]
            rows.append((name, f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"))
            figures[name] = p50
        # What any answer costs over HTTP: an unauthenticated GET that reads nothing.
        figures["HTTP round trip (GET /ready)"] = timed(client, "/ready", {})[0]
        rows.append(("HTTP round trip (GET /ready), p50", f"{figures['HTTP round trip (GET /ready)']:.2f} ms"))
        for fmt, params in (("jsonl", {"from": meta["day_from"], "to": meta["day_to"]}), ("csv", {"from": meta["day_from"], "to": meta["day_to"]})):
            began = time.perf_counter()
            size = lines = 0
            with client.stream("GET", "/api/usage/export", params={"format": fmt, **params}) as answer:
                answer.raise_for_status()
                for chunk in answer.iter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")
            seconds = time.perf_counter() - began
            rows.append((f"export {fmt}, one day", f"{lines:,} records in {seconds:.2f} s: {lines / seconds:,.0f} records/s, {size / seconds / 1e6:.0f} MB/s"))
        peak = rss_kib(process.pid, "VmHWM")
        rows.append(("resident memory idle → peak while answering", f"{idle / 1024:.0f} MB → {peak / 1024:.0f} MB (+{(peak - idle) / 1024:.0f} MB)"))
    finally:
        stop(process)
    # bench/usage_sqlite.py, run next on the same home, prints these beside its own.
    figures["checkpoint bytes"] = checkpoint.stat().st_size
    (home / "routerly-figures.json").write_text(json.dumps({"p50_ms": figures, "answers": answers}))
    print(f"\n| {records:,} records | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
