"""Moving an installation into PostgreSQL and its configuration in and out, through the real
binary: `routerly migrate --from-files` copies a file installation (configuration with its
secrets still sealed, usage history) and changes nothing when run again, refuses a database
holding another installation without --force; `routerly config export|import` round-trips
the six config files, and an imported change reaches a running replica within a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    OPENAI_MODEL,
    Routerly,
    create_database,
    drop_database,
    find_binary,
    postgres_url,
    psql,
    routerly_env,
    spawn_routerly,
    start_routerly,
)
from test_usage_history import CALLS, admin_headers, make_calls

FILE_MODE = {"ROUTERLY_DATABASE_URL": ""}  # file mode even under ROUTERLY_E2E_SHARED


def storage_command(env: dict, *args: str) -> subprocess.CompletedProcess:
    binary = find_binary("ROUTERLY_BIN", "target/debug/routerly")
    return subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=120)


def pg_replica(mock, root: Path, database: str, secret_key: str) -> Routerly:
    """A replica on `database` with a home of its own, nothing configured through it."""
    env = routerly_env(root)
    env.update(ROUTERLY_DATABASE_URL=postgres_url(database), ROUTERLY_SECRET_KEY=secret_key)
    home = Path(env["ROUTERLY_HOME"])
    process, url = spawn_routerly(home, env, root / "routerly.log")
    return Routerly(process, url, home, env, root / "routerly.log", mock)


def versions(database: str) -> list[str]:
    return psql(database, "SELECT version FROM config_versions ORDER BY version")


def test_migrate_from_files_then_export_and_import(mock_session) -> None:
    database = create_database()
    root = Path(tempfile.mkdtemp(prefix="routerly-migrate-"))
    running: list[Routerly] = []
    try:
        (root / "files").mkdir()
        files = start_routerly(mock_session, root / "files", FILE_MODE)
        running.append(files)
        make_calls(files)
        made = httpx.post(f"{files.url}/api/api-keys", json={"name": "ci"}, headers=admin_headers(files), timeout=10)
        assert made.status_code == 201, made.text
        api_key = made.json()["key"]
        assert files.stop() == 0, files.log_tail()
        records = files.usage_records()
        assert len(records) == CALLS

        migrate_env = dict(files.env, ROUTERLY_DATABASE_URL=postgres_url(database))
        done = storage_command(migrate_env, "migrate", "--from-files")
        assert done.returncode == 0, done.stderr
        assert "configuration copied (version 1)" in done.stdout, done.stdout
        assert f"usage records: {CALLS} read, {CALLS} added" in done.stdout, done.stdout
        assert "admin API keys: 1 added" in done.stdout, done.stdout
        assert psql(database, "SELECT id FROM usage_records ORDER BY seq") == [record["id"] for record in records]
        document = psql(database, "SELECT document::text FROM config_versions")[0]
        assert mock_session.api_key not in document and "enc:v1:" in document, "secrets stay sealed"
        # The connection string is never printed, even in an error.
        secret_url = "host=127.0.0.1 port=1 user=postgres password=hunter2-secret dbname=x"
        failed = storage_command(dict(files.env, ROUTERLY_DATABASE_URL=secret_url), "migrate", "--from-files")
        assert failed.returncode != 0 and "hunter2-secret" not in failed.stdout + failed.stderr, failed.stderr

        # Again: nothing changes.
        again = storage_command(migrate_env, "migrate", "--from-files")
        assert again.returncode == 0, again.stderr
        assert "configuration already there (version 1)" in again.stdout, again.stdout
        assert f"usage records: {CALLS} read, 0 added" in again.stdout, again.stdout
        assert "admin API keys: 0 added" in again.stdout, again.stdout
        assert versions(database) == ["1"]
        assert int(psql(database, "SELECT count(*) FROM usage_records")[0]) == CALLS

        # A replica with the installation's master key serves its token, users and history.
        secret_key = (files.home / "config" / "secret").read_text().strip()
        (root / "pg").mkdir()
        replica = pg_replica(mock_session, root / "pg", database, secret_key)
        running.append(replica)
        replica.token = files.token
        answer = httpx.post(
            f"{replica.url}/v1/chat/completions",
            json={"model": OPENAI_MODEL.alias, "messages": [{"role": "user", "content": "after the move"}]},
            headers={"authorization": f"Bearer {files.token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        # The admin API key made on the file installation works on the replica.
        me = httpx.get(f"{replica.url}/api/me", headers={"authorization": f"Bearer {api_key}"}, timeout=10)
        assert me.status_code == 200, me.text
        headers = admin_headers(replica)
        deadline = time.monotonic() + 10
        while True:
            summary = httpx.get(f"{replica.url}/api/usage/summary", headers=headers, timeout=10).json()
            if summary["calls"] == CALLS + 1:
                break
            assert time.monotonic() < deadline, summary
            time.sleep(0.05)

        # Another installation into the same database: refused without --force.
        (root / "other").mkdir()
        other = start_routerly(mock_session, root / "other", FILE_MODE)
        running.append(other)
        assert other.stop() == 0
        other_env = dict(other.env, ROUTERLY_DATABASE_URL=postgres_url(database))
        refused = storage_command(other_env, "migrate", "--from-files")
        assert refused.returncode != 0 and "--force" in refused.stderr, refused.stderr
        assert versions(database) == ["1"], "nothing written"

        # Export, edit, import: the running replica serves the edit within a second.
        pg_env = dict(replica.env)
        exported = root / "exported"
        done = storage_command(pg_env, "config", "export", "--dir", str(exported))
        assert done.returncode == 0, done.stderr
        names = sorted(path.name for path in exported.iterdir())
        assert names == ["limits.json", "models.json", "projects.json", "roles.json", "settings.json", "users.json"]
        assert mock_session.api_key not in (exported / "models.json").read_text()
        edited = root / "edited"
        shutil.copytree(exported, edited)
        projects = edited / "projects.json"
        projects.write_text(projects.read_text().replace('"name": "My App"', '"name": "Imported Name"'))
        done = storage_command(pg_env, "config", "import", "--dir", str(edited))
        assert done.returncode == 0, done.stderr
        assert "imported as version 2" in done.stdout, done.stdout
        imported_at = time.monotonic()
        while not any(
            project["name"] == "Imported Name"
            for project in httpx.get(f"{replica.url}/api/projects", headers=headers, timeout=10).json()["projects"]
        ):
            assert time.monotonic() - imported_at < 1.0, "the imported change was not served within a second"
            time.sleep(0.02)
        # The same files again change nothing; exporting gives them back byte for byte.
        done = storage_command(pg_env, "config", "import", "--dir", str(edited))
        assert "unchanged" in done.stdout and versions(database) == ["1", "2"], done.stdout
        round_trip = root / "round-trip"
        assert storage_command(pg_env, "config", "export", "--dir", str(round_trip)).returncode == 0
        for path in edited.iterdir():
            assert (round_trip / path.name).read_bytes() == path.read_bytes(), path.name

        # A broken file is refused naming where, and nothing is written.
        projects.write_text('{"projects": [\n  {"id": 1}\n]}\n')
        done = storage_command(pg_env, "config", "import", "--dir", str(edited))
        assert done.returncode != 0 and "projects.json:2:" in done.stderr, done.stderr
        # Files sealed under another master key are refused too.
        other_key = dict(pg_env, ROUTERLY_SECRET_KEY="ab" * 32)
        done = storage_command(other_key, "config", "import", "--dir", str(exported))
        assert done.returncode != 0 and "api_key" in done.stderr, done.stderr
        assert versions(database) == ["1", "2"]
        # Users came along: the admin still logs in through the replica.
        login = httpx.post(f"{replica.url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=10)
        assert login.status_code == 200, login.text
    finally:
        for routerly in running:
            if routerly.process.poll() is None:
                routerly.stop()
        drop_database(database)
        shutil.rmtree(root, ignore_errors=True)


def test_migrate_from_files_copies_the_alert_ledger(mock_session) -> None:
    """The alerts a file installation sent (its `data/alerts.json`) are copied once; a replica
    starting on the database shows them and does not send them again."""
    database = create_database()
    root = Path(tempfile.mkdtemp(prefix="routerly-migrate-alerts-"))
    running: list[Routerly] = []
    try:
        (root / "files").mkdir()
        files = start_routerly(mock_session, root / "files", FILE_MODE)
        running.append(files)
        files.cli("limit", "add", "--scope", f"token:{files.token_id}", "--metric", "calls", "--period", "daily", "--value", "2")

        def chat() -> httpx.Response:
            return httpx.post(
                f"{files.url}/v1/chat/completions",
                json={"model": OPENAI_MODEL.alias, "messages": [{"role": "user", "content": "spend"}]},
                headers={"authorization": f"Bearer {files.token}"},
                timeout=30,
            )

        assert [chat().status_code for _ in range(2)] == [200, 200]
        headers = admin_headers(files)
        deadline = time.monotonic() + 10
        while True:
            sent = httpx.get(f"{files.url}/api/alerts", headers=headers, timeout=10).json()["alerts"]
            if any(alert["event"] == "budget.exhausted" for alert in sent):
                break
            assert time.monotonic() < deadline, sent
            time.sleep(0.05)
        assert files.stop() == 0, files.log_tail()
        ledger = json.loads((files.home / "data" / "alerts.json").read_text())["alerts"]
        assert ledger, "the file installation's ledger"

        migrate_env = dict(files.env, ROUTERLY_DATABASE_URL=postgres_url(database))
        done = storage_command(migrate_env, "migrate", "--from-files")
        assert done.returncode == 0, done.stderr
        assert f"alerts: {len(ledger)} added" in done.stdout, done.stdout
        assert int(psql(database, "SELECT count(*) FROM alert_ledger")[0]) == len(ledger)
        again = storage_command(migrate_env, "migrate", "--from-files")
        assert "alerts: 0 added" in again.stdout, again.stdout

        secret_key = (files.home / "config" / "secret").read_text().strip()
        (root / "pg").mkdir()
        replica = pg_replica(mock_session, root / "pg", database, secret_key)
        running.append(replica)
        shown = httpx.get(f"{replica.url}/api/alerts", headers=admin_headers(replica), timeout=10).json()["alerts"]
        assert shown == sent, "the replica shows the alerts the file installation sent"
        assert json.loads((replica.home / "data" / "alerts.json").read_text())["alerts"] == ledger
    finally:
        for routerly in running:
            if routerly.process.poll() is None:
                routerly.stop()
        drop_database(database)
        shutil.rmtree(root, ignore_errors=True)
