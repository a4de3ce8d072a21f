"""Exports stream: a history many times larger than the memory either side may use goes out
through `GET /api/usage/export` (CSV and JSON Lines) and `routerly report calls --export`
while the server's and the CLI's resident memory stay within a small bound, and what comes
out is the records, every one. On a terminal the CLI draws a progress bar; in a pipe it
prints nothing but the result.

The history is written by hand: into `data/usage.jsonl` while the server is stopped (file
mode: the next start reads the log's tail into its indexes and rollups), or into the
`usage_records` table (PostgreSQL mode, where the export reads the table).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    SHARED_MODE,
    find_binary,
    postgres_url,
    run_on_terminal,
    spawn_routerly,
    start_routerly,
)

RECORDS = 64_000
# What an export may add to the server's resident memory. An export that held the history
# (about 50 MB of JSON Lines here) or its CSV rendering would need several times this.
SERVER_BOUND_MB = 16
# The CLI's peak resident memory while it writes the export to a file (a debug build idles
# at about 10 MB; buffering the download would add the whole file).
CLI_BOUND_MB = 32
MODELS = ["gpt-4o-mini", "claude-sonnet", "gemini-flash"]
OUTCOMES = ["success"] * 17 + ["error", "timeout", "budget_exceeded"]


def synthetic_lines(project_id: str, token_id: str) -> list[str]:
    """RECORDS usage records, one a few milliseconds after another over the past hour, in the
    byte layout the usage writer gives them (`UsageRecord::write_json`), about 1.2 KB each."""
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    step = timedelta(hours=1) / (RECORDS + 1)
    # Line breaks and quotes, as a provider's error text may hold: a CSV export quotes them,
    # and its records are still counted (by the CLI too) one per record, not per line.
    detail = 'the provider answered 529:\n"overloaded", retry; ' * 12
    lines = []
    for index in range(RECORDS):
        at = (start + step * (index + 1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        outcome = OUTCOMES[index % len(OUTCOMES)]
        record = {
            "id": str(uuid.uuid4()),
            "timestamp": at,
            "project_id": project_id,
            "token_id": token_id,
            "model_id": MODELS[index % len(MODELS)],
            "provider": "openai",
            "surface": "chat_completions",
            "call_type": "completion",
            "stream": index % 2 == 0,
            "input_tokens": 100 + index % 900,
            "output_tokens": 10 + index % 300,
            "cached_input_tokens": 0,
            "cache_write_tokens": 0,
            "cost_usd": 0.000125,
            "input_cost_usd": 0.0001,
            "output_cost_usd": 0.000025,
            "latency_ms": 250.5,
            "ttft_ms": 80.25,
            "overhead_ms": 0.5,
            "outcome": outcome,
            "status": 200 if outcome == "success" else 502,
            "error": None if outcome == "success" else detail,
            "trace_id": str(uuid.uuid4()),
            "user": f"user-{index % 50}",
            "tags": [f"team-{index % 7}", "export-test", "a-longer-tag-to-fill-the-record"],
        }
        if outcome == "success":
            record["requested_model"] = "auto"
        lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
    return lines


def memory_mb(pid: int) -> tuple[float, float]:
    """Resident memory now and its peak since the last reset, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()

    def kb(field: str) -> int:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE).group(1))

    return kb("VmRSS") / 1024, kb("VmHWM") / 1024


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def store_in_postgres(database: str, lines: list[str]) -> None:
    """The records as the PostgreSQL usage history keeps them (one row per record, the line
    as written), by COPY."""
    rows = io.StringIO()
    for line in lines:
        record = json.loads(line)
        fields = [
            record["id"],
            record["timestamp"],
            record["project_id"],
            record["token_id"],
            record["model_id"],
            record["user"],
            record["outcome"],
            record["trace_id"],
            json.dumps(record["tags"]),
            line,
        ]
        rows.write("\t".join(field.replace("\\", "\\\\") for field in fields) + "\n")
    subprocess.run(
        ["psql", postgres_url(database), "-q", "-v", "ON_ERROR_STOP=1", "-c",
         "COPY usage_records (id, at, project_id, token_id, model_id, user_field, outcome, trace_id, tags, line) FROM STDIN"],
        input=rows.getvalue(), text=True, check=True, capture_output=True,
    )  # fmt: skip


def test_exports_stream_in_constant_memory_with_a_progress_bar_on_a_terminal(mock_session) -> None:
    root = Path(tempfile.mkdtemp(prefix="routerly-e2e-export-"))
    routerly = start_routerly(mock_session, root)
    try:
        lines = synthetic_lines(routerly.project_id, routerly.token_id)
        history_mb = sum(len(line) + 1 for line in lines) / 1e6
        assert history_mb > 3 * SERVER_BOUND_MB and history_mb > 1.5 * CLI_BOUND_MB, history_mb
        if SHARED_MODE:
            store_in_postgres(routerly.database, lines)
        else:
            assert routerly.stop() == 0
            with routerly.usage_path.open("a") as log:
                log.writelines(line + "\n" for line in lines)
            process, url = spawn_routerly(routerly.home, routerly.env, routerly.log_path)
            routerly.process, routerly.url = process, url
            routerly.cli("auth", "login", "--url", url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
        token = httpx.post(
            f"{routerly.url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
        ).json()["access_token"]
        pid = routerly.process.pid

        with httpx.Client(base_url=routerly.url, headers={"authorization": f"Bearer {token}"}, timeout=120) as client:
            for fmt in ("jsonl", "csv"):
                time.sleep(0.3)
                before, _ = memory_mb(pid)
                reset_peak(pid)
                body = bytearray()
                with client.stream("GET", "/api/usage/export", params={"format": fmt}) as answer:
                    assert answer.status_code == 200, answer.read()
                    for chunk in answer.iter_bytes():
                        body += chunk
                        # A slow reader: the server must wait for it, not buffer ahead.
                        time.sleep(0.0005)
                _, peak = memory_mb(pid)
                assert len(body) / 1e6 > 1.5 * SERVER_BOUND_MB, len(body)
                assert peak - before < SERVER_BOUND_MB, (
                    f"the {fmt} export ({len(body) / 1e6:.0f} MB) took the server from {before:.0f} MB "
                    f"to {peak:.0f} MB"
                )
                text = body.decode()
                if fmt == "jsonl":
                    assert text.splitlines() == lines, "the JSON Lines export is the records, line for line"
                else:
                    rows = list(csv.DictReader(io.StringIO(text)))
                    assert [row["id"] for row in rows] == [json.loads(line)["id"] for line in lines]
                    assert rows[-1]["tags"] == ";".join(json.loads(lines[-1])["tags"])

        # The CLI on a terminal: a progress bar while it writes, then the result.
        target = root / "calls.jsonl"
        reset_peak(pid)
        before, _ = memory_mb(pid)
        code, screen = run_on_terminal(["report", "calls", "--export", str(target)], routerly.env, timeout=120)
        assert code == 0, screen
        # Its length is the rollups' count of the calls (here, in PostgreSQL mode, not the
        # records written into the table by hand), raised as more arrive.
        assert re.search(r"\d+/\d+ calls, [\d.]+ [KM]iB", screen), f"no progress bar drawn: {screen!r}"
        assert f"exported {RECORDS} calls" in screen, screen
        assert target.read_text().splitlines() == lines
        assert not Path(f"{target}.part").exists()
        _, peak = memory_mb(pid)
        assert peak - before < SERVER_BOUND_MB, f"the CLI's export took the server from {before:.0f} to {peak:.0f} MB"

        # In a pipe: no bar, no terminal codes, only the result; the CLI's own memory stays
        # flat while it writes a file larger than its bound.
        for name in ("calls.csv", "piped.jsonl"):
            piped_target = root / name
            cli = subprocess.Popen(
                [str(find_binary("ROUTERLY_BIN", "target/debug/routerly")), "report", "calls", "--export", str(piped_target)],
                env=routerly.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            cli_peak = 0.0
            while cli.poll() is None:
                try:
                    cli_peak = max(cli_peak, memory_mb(cli.pid)[1])
                except (OSError, AttributeError):  # it exited between poll and read
                    break
                time.sleep(0.01)
            out, err = cli.communicate(timeout=120)
            assert cli.returncode == 0, err
            assert out == ""
            assert err == f"exported {RECORDS} calls ({piped_target.stat().st_size} bytes) to {piped_target}\n"
            assert cli_peak < CLI_BOUND_MB, f"the CLI peaked at {cli_peak:.0f} MB writing {name}"
        exported = list(csv.DictReader(io.StringIO((root / "calls.csv").read_text())))
        assert [(row["id"], row["error"]) for row in exported] == [
            (record["id"], record["error"] or "") for record in map(json.loads, lines)
        ]
        assert (root / "piped.jsonl").read_text().splitlines() == lines
    finally:
        if routerly.process.poll() is None:
            routerly.stop()
        shutil.rmtree(root, ignore_errors=True)
