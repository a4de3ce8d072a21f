"""Usage history through the real binary: every report, page, trace look-up and export
answers from the rollups and segment indexes exactly what the usage log says, and the same
after a SIGKILL and after a clean restart; `routerly report calls --export` streams the same
file as the API; bad parameters get a clear 400 naming the field.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    ANTHROPIC_MODEL,
    OPENAI_MODEL,
    Routerly,
    find_binary,
    spawn_routerly,
    start_routerly,
)

CALLS = 30


def admin_headers(routerly: Routerly) -> dict:
    answer = httpx.post(
        f"{routerly.url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=10
    )
    answer.raise_for_status()
    return {"authorization": f"Bearer {answer.json()['access_token']}"}


def make_calls(routerly: Routerly) -> list[str]:
    """CALLS chat completions over both models, with users, tags and a few refused ones;
    their trace ids."""
    traces = []
    with httpx.Client(timeout=30) as client:
        for index in range(CALLS):
            model = OPENAI_MODEL if index % 3 else ANTHROPIC_MODEL
            headers = {"authorization": f"Bearer {routerly.token}", "x-routerly-tags": f"team-{index % 2},all"}
            body = {
                "model": model.alias,
                "messages": [{"role": "user", "content": f"call {index}"}],
                "user": f"user-{index % 4}",
            }
            if index % 10 == 9:
                # An invalid request: the provider refuses it, the record says error.
                body["temperature"] = 99
            answer = client.post(f"{routerly.url}/v1/chat/completions", json=body, headers=headers)
            traces.append(answer.headers["x-routerly-trace-id"])
    deadline = time.monotonic() + 5
    while len(routerly.usage_records()) < CALLS:
        assert time.monotonic() < deadline, "usage records not written"
        time.sleep(0.02)
    # In shared mode the reports read PostgreSQL, which the shipper reaches shortly after.
    reported = {call["trace_id"] for call in routerly.reported_calls(set(traces))}
    assert set(traces) <= reported, "the calls did not reach the usage history"
    return traces


REPORTS = [
    ("/api/usage/summary", {}),
    ("/api/usage/summary", {"model": OPENAI_MODEL.id, "outcome": "success"}),
    ("/api/usage/by-model", {}),
    ("/api/usage/by-project", {}),
    ("/api/usage/by-token", {}),
    ("/api/usage/by-user", {}),
    ("/api/usage/by-user", {"tag": "team-1"}),
    ("/api/usage/timeline", {"bucket": "hour"}),
    ("/api/usage/timeline", {"bucket": "day", "tz": "Asia/Tokyo"}),
    ("/api/usage", {"limit": 7}),
    ("/api/usage", {"limit": 5, "offset": 3, "model": ANTHROPIC_MODEL.id}),
    ("/api/usage", {"outcome": "error"}),
]


def answers(routerly: Routerly, traces: list[str]) -> dict:
    """Every report, page, trace look-up and export, by name."""
    headers = admin_headers(routerly)
    found = {}
    with httpx.Client(base_url=routerly.url, headers=headers, timeout=30) as client:
        for path, params in REPORTS:
            answer = client.get(path, params=params)
            assert answer.status_code == 200, f"{path} {params}: {answer.text}"
            found[f"{path} {sorted(params.items())}"] = answer.json()
        for trace in (traces[0], traces[-1]):
            answer = client.get("/api/usage", params={"trace": trace})
            assert answer.status_code == 200, answer.text
            found[f"trace {trace}"] = answer.json()
        for fmt in ("csv", "jsonl"):
            answer = client.get("/api/usage/export", params={"format": fmt})
            assert answer.status_code == 200, answer.text
            found[f"export {fmt}"] = answer.text
    return found


def same(got, expected, where: str = "") -> None:
    """`got` equals `expected`, floats to 1e-9 (sums kept in a checkpoint may differ in the
    last bit from sums kept live)."""
    if isinstance(expected, float) or isinstance(got, float):
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), where
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), f"{where}: {got} vs {expected}"
        for key in expected:
            same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: {got} vs {expected}"
        for index, (a, b) in enumerate(zip(got, expected)):
            same(a, b, f"{where}[{index}]")
    else:
        assert got == expected, f"{where}: {got!r} vs {expected!r}"


def check_against_the_log(routerly: Routerly, found: dict, traces: list[str]) -> None:
    """What the answers must be, computed from data/usage.jsonl."""
    records = routerly.usage_records()
    assert len(records) == CALLS
    summary = found["/api/usage/summary []"]
    assert summary["calls"] == CALLS
    assert summary["errors"] == sum(r["outcome"] != "success" for r in records) > 0
    assert summary["input_tokens"] == sum(r["input_tokens"] for r in records)
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in records), rel=1e-9)
    assert summary["p50_latency_ms"] is not None and summary["p95_latency_ms"] >= summary["p50_latency_ms"]
    models = {row["model_id"]: row["calls"] for row in found["/api/usage/by-model []"]["models"]}
    assert models == {
        model: sum(r["model_id"] == model for r in records) for model in {r["model_id"] for r in records}
    }
    projects = found["/api/usage/by-project []"]["projects"]
    assert [(row["project_id"], row["calls"]) for row in projects] == [(routerly.project_id, CALLS)]
    tags = {row["tag"]: row["calls"] for row in found["/api/usage/by-user []"]["tags"]}
    assert tags == {"team-0": 15, "team-1": 15, "all": 30}
    only_team_1 = found["/api/usage/by-user [('tag', 'team-1')]"]
    assert {row["tag"] for row in only_team_1["tags"]} == {"team-1"}
    assert sum(row["calls"] for row in only_team_1["users"]) == 15
    hours = found["/api/usage/timeline [('bucket', 'hour')]"]["points"]
    assert sum(point["calls"] for point in hours) == CALLS
    newest = [r["id"] for r in reversed(records)]
    page = found["/api/usage [('limit', 7)]"]
    assert [r["id"] for r in page["records"]] == newest[:7]
    assert page["total"] == CALLS and page["has_more"] is True
    anthropic_ids = [r["id"] for r in reversed(records) if r["model_id"] == ANTHROPIC_MODEL.id]
    filtered = found[f"/api/usage [('limit', 5), ('model', '{ANTHROPIC_MODEL.id}'), ('offset', 3)]"]
    assert [r["id"] for r in filtered["records"]] == anthropic_ids[3:8]
    errors = found["/api/usage [('outcome', 'error')]"]
    assert [r["id"] for r in errors["records"]] == [r["id"] for r in reversed(records) if r["outcome"] == "error"]
    for trace in (traces[0], traces[-1]):
        assert [r["trace_id"] for r in found[f"trace {trace}"]["records"]] == [trace]
    exported = [json.loads(line) for line in found["export jsonl"].splitlines()]
    assert exported == records, "the JSON Lines export is the log, record for record"
    rows = list(csv.DictReader(io.StringIO(found["export csv"])))
    assert [row["id"] for row in rows] == [r["id"] for r in records]
    assert rows[0]["tags"] == ";".join(records[0]["tags"])


def test_usage_history_survives_sigkill_and_restart(mock_session) -> None:
    root = Path(tempfile.mkdtemp(prefix="routerly-e2e-usage-"))
    routerly = start_routerly(mock_session, root)
    try:
        traces = make_calls(routerly)
        before = answers(routerly, traces)
        check_against_the_log(routerly, before, traces)

        # SIGKILL: the rollups' last checkpoint (every 30 s) is older than these records.
        routerly.signal(signal.SIGKILL)
        routerly.wait(10)
        process, url = spawn_routerly(routerly.home, routerly.env, routerly.log_path)
        routerly.process, routerly.url = process, url
        same(answers(routerly, traces), before, "after a SIGKILL and restart")

        assert routerly.stop() == 0
        assert (routerly.home / "data" / "checkpoints" / "usage.bin").exists()
        process, url = spawn_routerly(routerly.home, routerly.env, routerly.log_path)
        routerly.process, routerly.url = process, url
        routerly.cli("auth", "login", "--url", url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
        same(answers(routerly, traces), before, "after a clean restart")

        # The CLI streams the same export to a file.
        for name, fmt in (("calls.csv", "csv"), ("calls.jsonl", "jsonl")):
            target = root / name
            routerly.cli("report", "calls", "--export", str(target))
            assert target.read_text() == before[f"export {fmt}"]
            assert not (root / f"{name}.part").exists()
        by_model = routerly.cli_json("report", "summary", "--by", "model", "--json")
        assert sum(row["calls"] for row in by_model) == CALLS
        anthropic_only = root / "anthropic.jsonl"
        routerly.cli("report", "calls", "--export", str(anthropic_only), "--model", ANTHROPIC_MODEL.id)
        lines = [json.loads(line) for line in anthropic_only.read_text().splitlines()]
        assert lines and all(r["model_id"] == ANTHROPIC_MODEL.id for r in lines)
    finally:
        if routerly.process.poll() is None:
            routerly.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/usage/export", {"format": "xlsx"}, "format"),
        ("/api/usage/timeline", {"tz": "Mars/Olympus"}, "tz"),
        ("/api/usage/timeline", {"bucket": "fortnight"}, "bucket"),
        ("/api/usage/summary", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ("/api/usage/summary", {"outcome": "maybe"}, "outcome"),
        ("/api/usage", {"model": "m" * 600}, "model"),
        ("/api/usage", {"trace": "t" * 100}, "trace"),
    ],
)
def test_bad_usage_parameters_are_refused_naming_the_field(routerly, path, params, field) -> None:
    answer = httpx.get(f"{routerly.url}{path}", params=params, headers=admin_headers(routerly), timeout=10)
    assert answer.status_code == 400, answer.text
    assert field in answer.text, answer.text


def test_unknown_usage_parameters_and_strangers_are_refused(routerly) -> None:
    answer = httpx.get(f"{routerly.url}/api/usage/export", params={"formt": "csv"}, headers=admin_headers(routerly))
    assert answer.status_code == 400, answer.text
    for path in ("/api/usage/export", "/api/usage/by-project", "/api/usage/by-token"):
        assert httpx.get(f"{routerly.url}{path}").status_code == 401


def test_retention_settings_are_checked_and_saved(routerly) -> None:
    refused = subprocess.run(
        [str(find_binary("ROUTERLY_BIN", "target/debug/routerly")), "service", "configure", "--usage-retention-days", "0"],
        env=routerly.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode != 0 and "usage_retention_days" in refused.stderr, refused.stderr
    saved = routerly.cli_json(
        "service", "configure", "--usage-retention-days", "90", "--usage-compress-after-days", "never",
        "--usage-hourly-rollup-days", "14", "--json",
    )  # fmt: skip
    assert (saved["usage_retention_days"], saved["usage_compress_after_days"], saved["usage_hourly_rollup_days"]) == (90, None, 14)
    back = routerly.cli_json("service", "configure", "--usage-retention-days", "forever", "--usage-compress-after-days", "30", "--json")
    assert (back["usage_retention_days"], back["usage_compress_after_days"]) == (None, 30)
