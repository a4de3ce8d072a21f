"""Shared mode (ROUTERLY_DATABASE_URL) through the real binary, against the machine's
PostgreSQL with a fresh database per test: usage records reach PostgreSQL once each and in
order, every report and export read from it answers what the usage log says, two replicas
on one database share one usage history, and a change made through one replica is served
by the other within a second.
"""

from __future__ import annotations

import concurrent.futures
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    OPENAI_MODEL,
    create_database,
    drop_database,
    join_routerly,
    postgres_url,
    psql,
    start_routerly,
)
from test_usage_history import CALLS, admin_headers, answers, check_against_the_log, make_calls


def wait_for_rows(database: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while int(psql(database, "SELECT count(*) FROM usage_records")[0]) < count:
        assert time.monotonic() < deadline, f"fewer than {count} usage records reached PostgreSQL"
        time.sleep(0.05)


def shared_env(database: str) -> dict:
    return {"ROUTERLY_DATABASE_URL": postgres_url(database), "ROUTERLY_SECRET_KEY": secrets.token_hex(32)}


def start_pair(mock, root: Path, database: str, replicas: list) -> tuple:
    """Replica `a`, configured through the CLI, and replica `b` on the same database and key."""
    (root / "a").mkdir()
    replicas.append(start_routerly(mock, root / "a", shared_env(database)))
    (root / "b").mkdir()
    replicas.append(join_routerly(mock, root / "b", replicas[0]))
    return replicas[0], replicas[1]


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
        first, second = start_pair(mock_session, root, database, replicas)
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


def chat(replica, token: str, model: str) -> httpx.Response:
    return httpx.post(
        f"{replica.url}/v1/chat/completions",
        json={"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )


def served_within(what: str, check, limit: float = 1.0) -> float:
    """Seconds until `check()` held, failing past `limit` (a change must reach every replica
    within a second)."""
    started = time.monotonic()
    while not check():
        elapsed = time.monotonic() - started
        assert elapsed < limit, f"{what} not served by the other replica within {limit}s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_change_through_one_replica_is_served_by_the_other_within_a_second(mock_session) -> None:
    database = create_database()
    root = Path(tempfile.mkdtemp(prefix="routerly-pg-"))
    replicas: list = []
    try:
        first, second = start_pair(mock_session, root, database, replicas)
        # B serves what A configured at its start (it configured nothing itself).
        assert chat(second, first.token, OPENAI_MODEL.alias).status_code == 200

        # A model and a project using it, created through A.
        first.cli(
            "model", "add", "--id", "late-model", "--provider", "openai",
            "--endpoint", mock_session.openai_url, "--api-key", mock_session.api_key,
            "--upstream-model", OPENAI_MODEL.upstream, "--input-price", "1", "--output-price", "2",
        )  # fmt: skip
        first.cli("project", "create", "--name", "Late")
        first.cli("project", "model", "add", "late", "late-model", "--alias", "late-alias")
        # A project token created through A: B authenticates it within a second.
        created = first.cli_json("project", "token", "create", "late", "--json")
        token = created["token"]
        served_within("the new token and model", lambda: chat(second, token, "late-alias").status_code == 200)
        # The stored secret is sealed, never in clear.
        document = psql(database, "SELECT document::text FROM config_versions ORDER BY version DESC LIMIT 1")[0]
        assert mock_session.api_key not in document and "enc:v1:" in document

        # A limit created through A (no call allowed) is enforced by B within a second.
        first.cli("limit", "add", "--scope", f"token:{created['id']}", "--metric", "calls", "--period", "daily", "--value", "0")
        served_within("the new limit", lambda: chat(second, token, "late-alias").status_code == 503)
        refused = chat(second, token, "late-alias")
        assert refused.json()["error"]["type"] == "budget_exceeded" or "budget" in refused.text, refused.text

        # Changes through both replicas at once: none is lost.
        headers = [admin_headers(replica) for replica in replicas]

        def create(index: int) -> None:
            replica = replicas[index % 2]
            answer = httpx.post(
                f"{replica.url}/api/projects", json={"name": f"both-{index}"}, headers=headers[index % 2], timeout=30
            )
            assert answer.status_code in (200, 201), answer.text

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(16)))

        def concurrent_projects(index: int) -> int:
            answer = httpx.get(f"{replicas[index].url}/api/projects", headers=headers[index], timeout=10)
            return sum(project["name"].startswith("both-") for project in answer.json()["projects"])

        for index in range(2):
            served_within("every concurrent project", lambda index=index: concurrent_projects(index) == 16)
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                assert replica.stop() == 0, replica.log_tail()
        drop_database(database)
        shutil.rmtree(root, ignore_errors=True)


def test_an_admin_api_key_made_or_revoked_on_one_replica_holds_on_the_other(mock_session) -> None:
    database = create_database()
    root = Path(tempfile.mkdtemp(prefix="routerly-pg-"))
    replicas: list = []
    try:
        first, second = start_pair(mock_session, root, database, replicas)
        created = httpx.post(
            f"{first.url}/api/api-keys", json={"name": "ci", "role": "admin"}, headers=admin_headers(first), timeout=10
        )
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]
        with_key = {"authorization": f"Bearer {key}"}

        def me_on_b() -> int:
            return httpx.get(f"{second.url}/api/me", headers=with_key, timeout=10).status_code

        served_within("the new API key", lambda: me_on_b() == 200)
        # B lists it too; only its hash is stored, never the key.
        listed = httpx.get(f"{second.url}/api/api-keys", headers=admin_headers(second), timeout=10).json()["api_keys"]
        assert [item["id"] for item in listed] == [key_id], listed
        assert key not in " ".join(psql(database, "SELECT row_to_json(api_keys)::text FROM api_keys"))
        # A wrong key of the right shape is refused on both.
        for replica in replicas:
            wrong = {"authorization": f"Bearer {key[:-4]}AAAA"}
            assert httpx.get(f"{replica.url}/api/me", headers=wrong, timeout=10).status_code == 401

        revoked = httpx.delete(f"{first.url}/api/api-keys/{key_id}", headers=admin_headers(first), timeout=10)
        assert revoked.status_code == 204, revoked.text
        served_within("the revocation", lambda: me_on_b() == 401)
        # Revoked once: B cannot revoke it again, and the key works nowhere.
        again = httpx.delete(f"{second.url}/api/api-keys/{key_id}", headers=admin_headers(second), timeout=10)
        assert again.status_code == 404, again.text
        assert httpx.get(f"{first.url}/api/me", headers=with_key, timeout=10).status_code == 401
        for replica in replicas:
            assert not (replica.home / "data" / "api-keys.json").exists(), "shared mode keeps no key file"
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                assert replica.stop() == 0, replica.log_tail()
        drop_database(database)
        shutil.rmtree(root, ignore_errors=True)


def test_sessions_conversations_traces_and_audit_are_shared(mock_session) -> None:
    database = create_database()
    root = Path(tempfile.mkdtemp(prefix="routerly-pg-"))
    replicas: list = []
    try:
        first, second = start_pair(mock_session, root, database, replicas)

        # Log in on A; the access token works on B, and B rotates A's refresh token.
        login = httpx.post(f"{first.url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=10)
        assert login.status_code == 200, login.text
        session = login.json()
        on_b = {"authorization": f"Bearer {session['access_token']}"}
        assert httpx.get(f"{second.url}/api/me", headers=on_b, timeout=10).status_code == 200
        refreshed = httpx.post(f"{second.url}/api/auth/refresh", json={"refresh_token": session["refresh_token"]}, timeout=10)
        assert refreshed.status_code == 200, refreshed.text
        # The rotated token presented again, on A: refused, and the whole family ends on both.
        reused = httpx.post(f"{first.url}/api/auth/refresh", json={"refresh_token": session["refresh_token"]}, timeout=10)
        assert reused.status_code == 401, reused.text
        for replica in replicas:
            headers = {"authorization": f"Bearer {refreshed.json()['access_token']}"}
            assert httpx.get(f"{replica.url}/api/me", headers=headers, timeout=10).status_code == 401, replica.url

        # A Responses conversation begun on A is continued on B, within its project only.
        def respond(replica, **body) -> httpx.Response:
            return httpx.post(
                f"{replica.url}/v1/responses",
                json={"model": OPENAI_MODEL.alias, **body},
                headers={"authorization": f"Bearer {first.token}"},
                timeout=30,
            )

        begun = respond(first, input="My name is Ada")
        assert begun.status_code == 200, begun.text
        continued = respond(second, input="What is my name?", previous_response_id=begun.json()["id"])
        assert continued.status_code == 200, continued.text
        sent = str(mock_session.requests("openai")[-1]["body"])
        assert "My name is Ada" in sent and "What is my name?" in sent, sent
        fetched = httpx.get(
            f"{second.url}/v1/responses/{begun.json()['id']}", headers={"authorization": f"Bearer {first.token}"}, timeout=10
        )
        assert fetched.status_code == 200 and fetched.json()["id"] == begun.json()["id"], fetched.text
        # Another project's token cannot continue it, on either replica.
        first.cli("project", "create", "--name", "Elsewhere")
        other = first.cli_json("project", "token", "create", "elsewhere", "--json")["token"]
        for replica in replicas:
            refused = httpx.post(
                f"{replica.url}/v1/responses",
                json={"model": OPENAI_MODEL.alias, "input": "x", "previous_response_id": begun.json()["id"]},
                headers={"authorization": f"Bearer {other}"},
                timeout=30,
            )
            assert refused.status_code in (400, 404), refused.text

        # Changes through each replica land in one audit log, which both read.
        headers = [admin_headers(replica) for replica in replicas]
        # The routing trace of a call answered by A is found through B.
        trace_id = begun.headers["x-routerly-trace-id"]
        deadline = time.monotonic() + 5
        while (found := httpx.get(f"{second.url}/api/traces/{trace_id}", headers=headers[1], timeout=10)).status_code != 200:
            assert time.monotonic() < deadline, found.text
            time.sleep(0.05)
        assert found.json()["id"] == trace_id, found.text
        assert psql(database, f"SELECT count(*) FROM traces WHERE id = '{trace_id}'") == ["1"]
        for index, replica in enumerate(replicas):
            answer = httpx.post(f"{replica.url}/api/projects", json={"name": f"audited-{index}"}, headers=headers[index], timeout=10)
            assert answer.status_code in (200, 201), answer.text
        logs = [
            httpx.get(f"{replica.url}/api/audit?limit=1000", headers=headers[index], timeout=10).json()["entries"]
            for index, replica in enumerate(replicas)
        ]
        assert logs[0] == logs[1], "one log, read the same from both replicas"
        created = [entry for entry in logs[0] if entry.get("action") == "POST /api/projects"]
        assert len(created) >= 3, created  # "Elsewhere" and one through each replica
        assert int(psql(database, "SELECT count(*) FROM audit_log")[0]) >= len(logs[0])
        for replica in replicas:
            audit_file = replica.home / "data" / "audit.jsonl"
            assert not audit_file.exists(), "the audit log is in PostgreSQL, not in a replica's files"
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                assert replica.stop() == 0, replica.log_tail()
        drop_database(database)
        shutil.rmtree(root, ignore_errors=True)
