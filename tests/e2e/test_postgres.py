"""Shared mode (ROUTERLY_DATABASE_URL) through the real binary, against the machine's
PostgreSQL with a fresh database per test: usage records reach PostgreSQL once each and in
order, every report and export read from it answers what the usage log says, and two
replicas on one database share one usage history.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import httpx

from conftest import OPENAI_MODEL, create_database, drop_database, postgres_url, psql, start_routerly
from test_usage_history import CALLS, admin_headers, answers, check_against_the_log, make_calls


def wait_for_rows(database: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while int(psql(database, "SELECT count(*) FROM usage_records")[0]) < count:
        assert time.monotonic() < deadline, f"fewer than {count} usage records reached PostgreSQL"
        time.sleep(0.05)


def test_reports_read_postgres_and_match_the_log(mock_session) -> None:
    database = create_database()
    root = Path(tempfile.mkdtemp(prefix="routerly-pg-"))
    routerly = None
    try:
        routerly = start_routerly(mock_session, root, {"ROUTERLY_DATABASE_URL": postgres_url(database)})
        traces = make_calls(routerly)
        wait_for_rows(database, CALLS)
        check_against_the_log(routerly, answers(routerly, traces), traces)
        # Once each, in the order the log holds them.
        assert psql(database, "SELECT id FROM usage_records ORDER BY seq") == [r["id"] for r in routerly.usage_records()]
        ready = httpx.get(f"{routerly.url}/ready", timeout=10).json()
        assert ready["postgres"] == {"usage": "ok", "waiting_in_memory": 0, "waiting_on_disk": 0}, ready
        # A schema newer than the binary knows is refused at start, saying so.
        assert routerly.stop() == 0
        psql(database, "INSERT INTO routerly_schema (version) VALUES (999)")
        started = None
        (root / "again").mkdir()
        try:
            started = start_routerly(mock_session, root / "again", {"ROUTERLY_DATABASE_URL": postgres_url(database)})
        except AssertionError as error:
            assert "newer than this Routerly knows" in str(error), error
        else:
            started.stop()
            raise AssertionError("started against a newer schema")
    finally:
        if routerly is not None and routerly.process.poll() is None:
            routerly.stop()
        drop_database(database)
        shutil.rmtree(root, ignore_errors=True)


def test_two_replicas_share_one_usage_history(mock_session) -> None:
    database = create_database()
    root = Path(tempfile.mkdtemp(prefix="routerly-pg-"))
    replicas = []
    try:
        for name in ("a", "b"):
            (root / name).mkdir()
            replicas.append(start_routerly(mock_session, root / name, {"ROUTERLY_DATABASE_URL": postgres_url(database)}))
        first, second = replicas
        make_calls(first)
        with httpx.Client(timeout=30) as client:
            for index in range(5):
                answer = client.post(
                    f"{second.url}/v1/chat/completions",
                    json={"model": OPENAI_MODEL.alias, "messages": [{"role": "user", "content": f"b {index}"}]},
                    headers={"authorization": f"Bearer {second.token}"},
                )
                assert answer.status_code == 200, answer.text
        total = CALLS + 5
        wait_for_rows(database, total)
        ids = psql(database, "SELECT id FROM usage_records")
        assert len(ids) == len(set(ids)) == total, "exactly one record per answered call"
        for replica in replicas:
            summary = httpx.get(f"{replica.url}/api/usage/summary", headers=admin_headers(replica), timeout=10).json()
            assert summary["calls"] == total, f"{replica.url}: {summary}"
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                assert replica.stop() == 0, replica.log_tail()
        drop_database(database)
        shutil.rmtree(root, ignore_errors=True)
