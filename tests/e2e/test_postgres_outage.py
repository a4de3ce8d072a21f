"""PostgreSQL going away under load, through the real binary: usage records are buffered in
memory, then on local disk, calls keep being answered, and only when both buffers are nearly
full are new calls refused (503 `usage_unavailable` in the caller's format, `/ready` 503
saying `full`); when PostgreSQL returns every record reaches it, once and in order.

The test runs a PostgreSQL cluster of its own (`initdb` and `pg_ctl` from
/usr/lib/postgresql/*/bin, on a free port, in a temporary directory), so the machine's stays up.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, OPENAI_MODEL, start_routerly


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnPostgres:
    """A throwaway cluster; as root, its commands run as the `postgres` user (initdb refuses root)."""

    def __init__(self, root: Path) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        assert binaries, "PostgreSQL's server binaries are not under /usr/lib/postgresql"
        self.bin = Path(binaries[-1])
        self.root, self.data, self.port = root, root / "data", free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(root, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_owner, str(self.bin / tool), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{tool} {args}: {done.stdout}\n{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def url(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def query(self, sql: str) -> list[str]:
        done = subprocess.run(
            ["psql", self.url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    root = Path(tempfile.mkdtemp(prefix="routerly-own-pg-"))
    cluster = OwnPostgres(root)
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        except AssertionError:
            pass  # stopped already
        shutil.rmtree(root, ignore_errors=True)


class Load:
    """Chat calls one after another on a thread, each answer's status and error code kept."""

    def __init__(self, routerly) -> None:
        self.routerly, self.answers, self.stopping = routerly, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            index = 0
            while not self.stopping.is_set():
                answer = client.post(
                    f"{self.routerly.url}/v1/chat/completions",
                    json={"model": OPENAI_MODEL.alias, "messages": [{"role": "user", "content": f"load {index}"}]},
                    headers={"authorization": f"Bearer {self.routerly.token}"},
                )
                code = answer.json().get("error", {}).get("code") if answer.status_code != 200 else None
                self.answers.append((answer.status_code, code, answer.headers.get("retry-after")))
                index += 1
                time.sleep(0.03)

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stopping.set()
        self.thread.join(60)


def ready(routerly) -> tuple[int, dict]:
    answer = httpx.get(f"{routerly.url}/ready", timeout=10)
    return answer.status_code, answer.json()


def wait_for(what: str, check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_postgres_outage_buffers_then_refuses_then_replays_in_order(mock_session, own_postgres) -> None:
    root = Path(tempfile.mkdtemp(prefix="routerly-outage-"))
    routerly = None
    try:
        env = {
            "ROUTERLY_DATABASE_URL": own_postgres.url,
            "ROUTERLY_SECRET_KEY": secrets.token_hex(32),
            # Small buffers, so that the test reaches the bound in seconds: 15 records in
            # memory, about 25 on disk.
            "ROUTERLY_PG_BUFFER_RECORDS": "15",
            "ROUTERLY_PG_SPOOL_BYTES": "20000",
        }
        routerly = start_routerly(mock_session, root, env)
        states: list[str] = []
        with Load(routerly) as load:
            wait_for("calls shipped", lambda: int(own_postgres.query("SELECT count(*) FROM usage_records")[0]) >= 5)
            own_postgres.stop()
            stopped_at = len(load.answers)

            def observe() -> bool:
                status, body = ready(routerly)
                state = body["postgres"]["usage"]
                if not states or states[-1] != state:
                    states.append(state)
                return state == "full" and status == 503

            wait_for("the buffers to fill", observe)
            wait_for("a refused call", lambda: any(status == 503 for status, _, _ in load.answers[stopped_at:]))
            during = load.answers[stopped_at:]
            first_refusal = next(index for index, (status, _, _) in enumerate(during) if status == 503)
            assert first_refusal >= 15, f"calls were answered while buffering: {during[:first_refusal]}"
            assert all(status == 200 for status, _, _ in during[:first_refusal]), during
            refusals = [answer for answer in during if answer[0] != 200]
            assert all(answer[:2] == (503, "usage_unavailable") and answer[2] for answer in refusals), refusals
            assert "buffering_on_disk" in states and states[-1] == "full", states
            # Sessions are in PostgreSQL too: a login is refused with a 503 to retry, which
            # says nothing of the database.
            login = httpx.post(
                f"{routerly.url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
            )
            assert login.status_code == 503, login.text
            assert "PostgreSQL" not in login.text and str(own_postgres.port) not in login.text, login.text

            own_postgres.start()
            wait_for("PostgreSQL taken back", lambda: ready(routerly)[1]["postgres"]["usage"] == "ok")
            resumed = len(load.answers)
            wait_for("calls answered again", lambda: any(status == 200 for status, _, _ in load.answers[resumed:]))
        assert states[0] in ("buffering_in_memory", "buffering_on_disk"), states

        # Every answered call's record reached PostgreSQL once, in the order of the log.
        logged = [record["id"] for record in routerly.usage_records()]
        answered = sum(1 for status, _, _ in load.answers if status == 200)
        wait_for(
            "every record shipped",
            lambda: int(own_postgres.query("SELECT count(*) FROM usage_records")[0]) >= len(routerly.usage_records()),
            timeout=30,
        )
        logged = [record["id"] for record in routerly.usage_records()]
        assert len(logged) >= answered
        assert own_postgres.query("SELECT id FROM usage_records ORDER BY seq") == logged
        status, body = ready(routerly)
        assert status == 200 and body["postgres"] == {"usage": "ok", "waiting_in_memory": 0, "waiting_on_disk": 0}, body
        assert routerly.stop() == 0, routerly.log_tail()
        assert "only in the local usage log" not in routerly.log_path.read_text(), "a record found no room"
    finally:
        if routerly is not None and routerly.process.poll() is None:
            routerly.stop()
        shutil.rmtree(root, ignore_errors=True)
