"""Several replicas on one PostgreSQL and Redis: budgets stay exact across three `routerly serve` processes,
the holds of a replica killed with SIGKILL come back within the reservation TTL, and a Redis
that goes away mid-load is handled as the failure mode says (closed: 503 `budget_unavailable`
in the caller's format; open: the replica's own counters, never unlimited), both recovering
when it returns.

Each replica has its own ROUTERLY_HOME, and all share ROUTERLY_SECRET_KEY and, in the
`shared` fixture, a PostgreSQL database made for the test (configuration, usage history),
dropped afterwards (the clusters that restart Redis keep a copy of the first replica's
config/ in each home instead). The machine's Redis (127.0.0.1:6379) is used with a prefix
unique to the test, deleted afterwards; the restart test starts its own `redis-server` on a free port
and never touches the machine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    OPENAI_MODEL,
    ANTHROPIC_MODEL,
    MockProviders,
    Routerly,
    create_database,
    drop_database,
    postgres_url,
    psql,
    read_usage_file,
    spawn_routerly,
    stop_process,
)

MACHINE_REDIS = "redis://127.0.0.1:6379/0"
# Input tokens free: the admission estimate (prompt estimate + max_tokens) then equals the real
# cost exactly when max_tokens is the answer's length, so "fits 50 calls" means 50 calls.
FLAT_MODEL = replace(OPENAI_MODEL, input_price=0.0, cached_price=0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def delete_prefix(port: int, prefix: str) -> None:
    """SCAN + DEL of every key under `prefix` (only this test's keys)."""
    keys = [key for key in redis_cli(port, "--scan", "--pattern", f"{prefix}*").split() if key]
    for start in range(0, len(keys), 500):
        redis_cli(port, "DEL", *keys[start : start + 500])


class Cluster:
    """Replicas sharing one configuration, one master key and one Redis prefix."""

    def __init__(self, mock: MockProviders, root: Path, redis_url: str, prefix: str, database: str = "") -> None:
        self.mock, self.root, self.redis_url, self.prefix = mock, root, redis_url, prefix
        self.database = database  # with one, the configuration and usage history are PostgreSQL's
        self.secret_key = secrets.token_hex(32)
        self.replicas: list[Routerly] = []

    def env(self, name: str, **extra: str) -> dict:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("ROUTERLY_", "XDG_"))}
        env.update(
            ROUTERLY_HOME=str(self.root / name / "home"),
            XDG_CONFIG_HOME=str(self.root / name / "xdg"),
            HOME=str(self.root / name),
            ROUTERLY_LOG=os.environ.get("ROUTERLY_TEST_LOG", "warn"),
            ROUTERLY_SECRET_KEY=self.secret_key,
            ROUTERLY_REDIS_URL=self.redis_url,
            ROUTERLY_REDIS_PREFIX=self.prefix,
        )
        if self.database:
            env["ROUTERLY_DATABASE_URL"] = postgres_url(self.database)
        env.update(extra)
        return env

    def start(self, name: str, log_in: bool = True, **extra: str) -> Routerly:
        env = self.env(name, **extra)
        home = Path(env["ROUTERLY_HOME"])
        if self.replicas and not self.database:  # the same configuration as the first replica
            home.mkdir(parents=True)
            shutil.copytree(self.replicas[0].home / "config", home / "config")
        log_path = self.root / f"{name}.log"
        process, url = spawn_routerly(home, env, log_path)
        replica = Routerly(process, url, home, env, log_path, self.mock)
        self.replicas.append(replica)
        if len(self.replicas) == 1:
            configure(replica)
        else:
            first = self.replicas[0]
            replica.token, replica.token_id = first.token, first.token_id
            replica.project_id, replica.project_slug = first.project_id, first.project_slug
            if log_in:
                replica.cli("auth", "login", "--url", url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
        return replica

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait(10)
            if replica.process.stdout is not None:
                replica.process.stdout.close()

    def usage_records(self) -> list[dict]:
        records = []
        for replica in self.replicas:
            found, bad_lines = read_usage_file(replica.usage_path, live=True)
            assert not bad_lines, f"unparseable usage lines in {replica.usage_path}: {bad_lines}"
            records += found
        return records


def configure(routerly: Routerly) -> None:
    """The README's quick start, through the CLI, against the first replica."""
    mock = routerly.mock
    routerly.cli("setup", "--url", routerly.url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
    routerly.cli("auth", "login", "--url", routerly.url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
    for model in (FLAT_MODEL, ANTHROPIC_MODEL):
        endpoint = mock.openai_url if model.provider == "openai" else mock.anthropic_url
        routerly.cli(
            "model", "add", "--id", model.id, "--provider", model.provider,
            "--endpoint", endpoint, "--api-key", mock.api_key, "--upstream-model", model.upstream,
            "--input-price", str(model.input_price), "--output-price", str(model.output_price),
            "--cached-price", str(model.cached_price), "--context-window", "128000",
        )  # fmt: skip
    project = routerly.cli_json("project", "create", "--name", "My App", "--json")
    routerly.project_id, routerly.project_slug = project["id"], project["slug"]
    for model in (FLAT_MODEL, ANTHROPIC_MODEL):
        routerly.cli("project", "model", "add", "my-app", model.id, "--alias", model.alias)
    # Only the OpenAI model: a token that could fall back to Claude reserves Claude's prices.
    created = routerly.cli_json("project", "token", "create", "my-app", "--models", FLAT_MODEL.id, "--json")
    routerly.token, routerly.token_id = created["token"], created["id"]


@pytest.fixture
def cluster_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="routerly-replicas-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def shared(mock, cluster_root) -> Iterator[Cluster]:
    """A cluster as deployed: a database of its own on the machine's PostgreSQL and the
    machine's Redis under a prefix of its own, both dropped at the end."""
    prefix = f"routerly-e2e-{secrets.token_hex(6)}"
    cluster = Cluster(mock, cluster_root, MACHINE_REDIS, prefix, create_database())
    try:
        yield cluster
    finally:
        cluster.stop()
        drop_database(cluster.database)
        delete_prefix(6379, prefix)
        assert not redis_cli(6379, "--scan", "--pattern", f"{prefix}*").split(), "the test's keys are gone"


def chat(replica: Routerly, text: str = "hello", max_tokens: int = 40, timeout: float = 60) -> httpx.Response:
    return httpx.post(
        f"{replica.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {replica.token}"},
        json={"model": OPENAI_MODEL.alias, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]},
        timeout=timeout,
    )


def messages(replica: Routerly, text: str = "hello") -> httpx.Response:
    return httpx.post(
        f"{replica.url}/v1/messages",
        headers={"x-api-key": replica.token, "anthropic-version": "2023-06-01"},
        json={"model": OPENAI_MODEL.alias, "max_tokens": 40, "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )


def wait_until(what: str, check, timeout: float, replicas: list[Routerly] = ()) -> float:
    """Seconds until `check()` held; fails after `timeout` with the replicas' log tails."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            logs = "\n".join(replica.log_tail() for replica in replicas)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")
        time.sleep(0.05)
    return time.monotonic() - started


# ---- three replicas, one limit ----------------------------------------------------------------


def test_300_concurrent_calls_on_three_replicas_keep_a_cost_limit_of_50_calls_exact(shared: Cluster, mock):
    # k = 1: the estimate equals the real cost, but 50 sums of a float price may round a hair
    # above the limit for the 50th hold (Redis allows 1e-9 relative slack); never above 50.
    # No leases: a limit with room for fewer than 64 more calls is reserved call by call.
    dispatched, reservations = limit_across_three_replicas(shared, mock, fits=50, calls=300, k=1)
    assert reservations >= dispatched, "every admitted call ran its own reservation script"


def test_1500_concurrent_calls_on_three_replicas_spend_leases_and_never_pass_a_limit_of_1000(shared: Cluster, mock):
    # With room for 1,000 calls, reservations lease each replica room for up to 1/64 of what is
    # left (15 calls at most), admitted from memory. k: what the other replicas' leases may hold
    # when one is refused (15 each, 3 replicas) and the rounding of the last hold.
    dispatched, reservations = limit_across_three_replicas(shared, mock, fits=1000, calls=1500, k=3 * 15 + 1)
    # Leased calls run no reservation script, so fewer scripts than calls admitted (0.4 to 0.7
    # per call here with debug builds, where leases are at most 15 calls, none within 64 calls
    # of the edge, and a burst's calls stop waiting for grants after 100 ms; a limit far from
    # full takes one script per 64 calls: see the unit tests in store/redis_counters.rs).
    assert reservations < dispatched, (reservations, dispatched)


def reservation_scripts() -> int:
    """Reservation scripts that admitted a call or leased room: each runs one `PEXPIRE` per
    counter it holds (here one, the token's); nothing else of a call runs `PEXPIRE`."""
    stats = redis_cli(6379, "INFO", "commandstats")
    line = next((line for line in stats.splitlines() if line.startswith("cmdstat_pexpire:")), "calls=0,")
    return int(line.split("calls=", 1)[1].split(",", 1)[0])


def limit_across_three_replicas(shared: Cluster, mock, fits: int, calls: int, k: int) -> tuple[int, int]:
    """A cost limit that fits exactly `fits` calls, `calls` concurrent calls spread across three
    replicas: between `fits` - k and `fits` dispatched, recorded spend never above the limit, and
    one usage history with exactly one record per answered call. Answers how many calls were
    dispatched and how many reservation scripts admitted one or leased room."""
    first = shared.start("a")
    # The cost of one call, measured with a second token so the limit's scope never saw it.
    other = first.cli_json("project", "token", "create", "my-app", "--models", FLAT_MODEL.id, "--json")
    calibration = Routerly(first.process, first.url, first.home, first.env, first.log_path, mock, token=other["token"])
    answer = chat(calibration)
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    call_cost = FLAT_MODEL.cost(usage["prompt_tokens"], usage["completion_tokens"])
    # max_tokens equals the answer's length, so the admission estimate is close to the real cost.
    max_tokens = usage["completion_tokens"]
    limit_value = call_cost * fits
    first.cli(
        "limit", "add", "--scope", f"token:{first.token_id}", "--metric", "cost", "--period", "daily",
        "--value", repr(limit_value),
    )  # fmt: skip
    replicas = [first, shared.start("b"), shared.start("c")]
    mock.reset()

    async def flood() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=calls + 100, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            async def one(index: int) -> httpx.Response:
                replica = replicas[index % 3]
                return await client.post(
                    f"{replica.url}/v1/chat/completions",
                    headers={"Authorization": f"Bearer {replica.token}"},
                    json={
                        "model": OPENAI_MODEL.alias,
                        "max_tokens": max_tokens,
                        "messages": [{"role": "user", "content": "hello"}],
                    },
                )

            return await asyncio.gather(*(one(index) for index in range(calls)))

    scripts_before = reservation_scripts()
    answers = asyncio.run(flood())
    scripts = reservation_scripts() - scripts_before
    statuses = Counter(answer.status_code for answer in answers)
    answered = [answer for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code != 200]
    assert all(answer.json()["error"]["code"] == "budget_exceeded" for answer in refused), statuses
    dispatched = len(mock.requests("openai"))
    print(f"{dispatched} of {calls} calls dispatched under a limit of {fits}, {scripts} reservation scripts")
    assert fits - k <= dispatched <= fits, (dispatched, statuses)
    assert len(answered) == dispatched, statuses

    # Exactly one usage record per answered call, across the three usage logs.
    trace_ids = {answer.headers["x-routerly-trace-id"] for answer in answered}

    def recorded() -> list[dict]:
        return [record for record in shared.usage_records() if record.get("token_id") == first.token_id and record["trace_id"] in trace_ids]

    wait_until("every answered call's record", lambda: len({r["trace_id"] for r in recorded()}) == len(trace_ids), 10, replicas)
    records = recorded()
    assert len(records) == len(trace_ids), Counter(record["trace_id"] for record in records).most_common(3)
    # fsum, and the server's own 1e-9 relative slack: float prices added in any order differ
    # from n × price in the last bits, which is not overspending.
    spend = math.fsum(record["cost_usd"] for record in records)
    assert spend <= limit_value * (1 + 1e-9), (spend, limit_value)
    assert abs(spend - call_cost * dispatched) < 1e-9, (spend, call_cost, dispatched)
    # And one shared usage history in PostgreSQL: exactly one record per answered call.
    query = f"SELECT trace_id FROM usage_records WHERE token_id = '{first.token_id}' AND outcome = 'success'"
    wait_until("every answered call's record in PostgreSQL", lambda: len(psql(shared.database, query)) >= len(trace_ids), 10, replicas)
    stored = Counter(psql(shared.database, query))
    assert set(stored) == trace_ids and max(stored.values()) == 1, stored.most_common(3)
    return dispatched, scripts


# ---- a replica killed while it holds reservations ---------------------------------------------

RESERVATION_TTL = 3  # seconds, ROUTERLY_REDIS_RESERVATION_TTL_SECONDS
# The holds expire TTL after they were taken (before the kill), and an expired hold is dropped
# by the next reserve that looks at the counter, so they are back within the TTL; 1.5 s more
# covers this test's polling and the loopback round trips on a loaded 2-core machine.
RELEASE_SLACK = 1.5


def test_the_holds_of_a_replica_killed_with_sigkill_come_back_within_the_reservation_ttl(shared: Cluster, mock):
    ttl = {"ROUTERLY_REDIS_RESERVATION_TTL_SECONDS": str(RESERVATION_TTL)}
    first = shared.start("a", **ttl)
    first.cli("limit", "add", "--scope", f"token:{first.token_id}", "--metric", "calls", "--period", "daily", "--value", "4")
    doomed = shared.start("b", **ttl)
    mock.reset()

    def slow_call() -> None:
        with contextlib.suppress(httpx.HTTPError):
            chat(doomed, "[mock:delay_ms=30000] hold the room", timeout=40)

    holders = [threading.Thread(target=slow_call, daemon=True) for _ in range(4)]
    for holder in holders:
        holder.start()
    wait_until("the four slow calls at the provider", lambda: len(mock.requests("openai")) == 4, 10, [doomed])
    refused = chat(first)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "budget_exceeded", refused.text

    doomed.process.kill()
    killed_at = time.monotonic()
    doomed.process.wait(10)
    still_held = chat(first)
    assert still_held.status_code == 503, "the dead replica's holds last until they expire, not less"

    def admitted() -> bool:
        return chat(first).status_code == 200

    wait_until("the dead replica's holds to expire", admitted, RESERVATION_TTL + RELEASE_SLACK, [first])
    released_after = time.monotonic() - killed_at
    assert released_after <= RESERVATION_TTL + RELEASE_SLACK, released_after
    # The room is whole again: the other replicas spend it, and not one call more.
    third = shared.start("c", **ttl)
    answers = [chat(replica).status_code for replica in (first, third, third)]
    assert answers == [200, 200, 200], answers
    assert chat(third).json()["error"]["code"] == "budget_exceeded"
    assert chat(first).json()["error"]["code"] == "budget_exceeded"


# ---- Redis going away mid-load ----------------------------------------------------------------


def start_redis(port: int, root: Path) -> subprocess.Popen:
    """A `redis-server` this test owns (never the machine's), on `port`, nothing on disk."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(root)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip

    def answers() -> bool:
        done = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True)
        return done.stdout.strip() == "PONG"

    wait_until(f"redis-server on port {port}", answers, 10)
    return process


READY_SHARED = {"status": "ready", "config_loaded": True, "usage_writer": "ok", "budget_counters": "redis"}
READY_OPEN = dict(READY_SHARED, budget_counters="redis_unreachable_fail_open")
NOT_READY_CLOSED = dict(READY_SHARED, status="not_ready", budget_counters="redis_unreachable_fail_closed")


def ready(replica: Routerly) -> tuple[int, dict]:
    answer = httpx.get(f"{replica.url}/ready", timeout=10)
    return answer.status_code, answer.json()


def test_redis_restarted_mid_load_fails_closed_or_open_as_set_and_both_recover(mock, cluster_root):
    mock.reset()
    port = free_port()
    redis = start_redis(port, cluster_root)
    cluster = Cluster(mock, cluster_root, f"redis://127.0.0.1:{port}/0", f"routerly-e2e-{secrets.token_hex(6)}")
    try:
        closed = cluster.start("closed", ROUTERLY_REDIS_FAILURE_MODE="closed")
        closed.cli("limit", "add", "--scope", f"token:{closed.token_id}", "--metric", "calls", "--period", "daily", "--value", "8")
        opened = cluster.start("open", ROUTERLY_REDIS_FAILURE_MODE="open")
        for replica in (closed, opened):
            assert chat(replica).status_code == 200
            assert ready(replica) == (200, READY_SHARED), ready(replica)
        time.sleep(1.2)  # the open replica's local view takes the shared totals every second

        in_flight: list[httpx.Response] = []
        slow = threading.Thread(target=lambda: in_flight.append(chat(closed, "[mock:delay_ms=1500] slow")))
        slow.start()
        wait_until("the slow call at the provider", lambda: len(mock.requests("openai")) == 3, 5, [closed])
        redis.terminate()  # mid-load: two calls counted, one in flight on the fail-closed replica
        redis.wait(10)
        # Fail-closed: 503 `budget_unavailable` in each caller's own error format.
        openai_style = chat(closed)
        assert openai_style.status_code == 503, openai_style.text
        assert openai_style.json()["error"]["code"] == "budget_unavailable", openai_style.text
        anthropic_style = messages(closed)
        assert anthropic_style.status_code == 503, anthropic_style.text
        body = anthropic_style.json()
        assert body["type"] == "error" and "unavailable" in body["error"]["message"], body
        wait_until("/ready to say fail-closed", lambda: ready(closed) == (503, NOT_READY_CLOSED), 5, [closed])
        # Fail-open: admitted against the local view (2 counted + the in-flight hold when its
        # last one-second refresh saw it + its own), so the limit of 8 still refuses after 5 or
        # 6 calls; never unlimited, and loud about it.
        answers = [chat(opened) for _ in range(7)]
        statuses = [answer.status_code for answer in answers]
        assert statuses in ([200] * 5 + [503] * 2, [200] * 6 + [503]), [a.text[:200] for a in answers]
        assert answers[-1].json()["error"]["code"] == "budget_exceeded", answers[-1].text
        assert ready(opened) == (200, READY_OPEN), ready(opened)
        slow.join(10)
        assert in_flight and in_flight[0].status_code == 200, "a call admitted before the outage is answered"
        assert "Redis budget counters unreachable" in opened.log_path.read_text(), opened.log_tail()
        metrics = httpx.get(f"{opened.url}/metrics", timeout=10).text
        assert re.search(r"^routerly_budget_fail_open_total [1-9]", metrics, re.M), metrics

        # The same redis-server comes back on the same port (empty: it keeps nothing on disk).
        redis = start_redis(port, cluster_root)
        for replica in (closed, opened):
            wait_until("/ready to recover", lambda r=replica: ready(r) == (200, READY_SHARED), 10, [replica])
        # Both recover, and the limit holds: what was used during the outage (the in-flight call
        # and the fail-open calls) is replayed into Redis, so at most 8 − 6 = 2 more calls fit
        # (the 2 counted before the restart were lost with the data of a Redis that persists
        # nothing; see the report).
        after = [chat(replica) for replica in (closed, opened) * 3]
        assert all(a.status_code == 200 or a.json()["error"]["code"] == "budget_exceeded" for a in after), [
            a.text[:200] for a in after
        ]
        assert 1 <= sum(a.status_code == 200 for a in after) <= 2, [a.status_code for a in after]
    finally:
        cluster.stop()
        stop_process(redis)


# ---- alerts and login limits shared through Redis ---------------------------------------------


@pytest.fixture
def webhook_inbox() -> Iterator[tuple[str, list[dict]]]:
    """A webhook receiver on loopback; the bodies it received."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def alert_on_four_calls(first: Routerly, url: str) -> None:
    """Alerts at 50, 80 and 100 % to the webhook at `url`, on a limit of 4 calls a day on the
    cluster's token."""
    first.cli("service", "configure", "--alert-thresholds", "50,80,100", "--allow-private-webhooks", "true")
    first.cli("channel", "add", "webhook", "--url", url, "--secret", "whsec-replicas")
    first.cli("limit", "add", "--scope", f"token:{first.token_id}", "--metric", "calls", "--period", "daily", "--value", "4")


def assert_each_alert_once(received: list[dict], replicas: list[Routerly]) -> None:
    """The webhook got each of the four alerts, and none twice (waiting long enough for a
    duplicate from another replica to arrive)."""
    expected = sorted(["budget.threshold:50", "budget.threshold:80", "budget.threshold:100", "budget.exhausted"])

    def names() -> list[str]:
        return sorted(
            f"{event['event']}:{event['threshold_percent']}" if event["event"] == "budget.threshold" else event["event"]
            for event in list(received)
        )

    wait_until("every alert on the webhook", lambda: names() == expected, 10, replicas)
    time.sleep(1.5)  # a duplicate from another replica would have arrived now
    assert names() == expected, "each alert once across the three replicas"


def test_a_budget_alert_is_sent_once_and_listed_once_by_every_replica(shared: Cluster, webhook_inbox):
    url, received = webhook_inbox
    first = shared.start("a")
    alert_on_four_calls(first, url)
    replicas = [first, shared.start("b"), shared.start("c")]
    # One call per replica in turn, each after the others' use reached every local view (one
    # second refresh): every replica then sees the thresholds crossed by the others' calls, so
    # without a shared ledger each would send them again.
    statuses = []
    for index in range(6):
        statuses.append(chat(replicas[index % 3]).status_code)
        time.sleep(1.3)
    assert statuses == [200, 200, 200, 200, 503, 503], statuses
    assert_each_alert_once(received, replicas)

    # One alert history for the cluster: every replica lists each alert once, with the
    # delivery that the replica which sent it made (whichever replica that was).
    def history(replica: Routerly) -> list[tuple]:
        token = login(replica, ADMIN_PASSWORD).json()["access_token"]
        answer = httpx.get(f"{replica.url}/api/alerts", headers={"authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        return sorted(
            (
                alert["event"],
                alert["threshold"],
                tuple((delivery["outcome"], delivery["attempts"]) for delivery in alert["deliveries"]),
            )
            for alert in answer.json()["alerts"]
        )

    everything_delivered = sorted(
        [("budget.threshold", percent, (("delivered", 1),)) for percent in (50, 80, 100)]
        + [("budget.exhausted", None, (("delivered", 1),))]
    )
    wait_until("the delivered alerts in the shared history", lambda: history(first) == everything_delivered, 10, replicas)
    for replica in replicas:
        assert history(replica) == everything_delivered, f"the alert history on {replica.url}"


@pytest.fixture
def postgres_only(mock, cluster_root) -> Iterator[Cluster]:
    """Replicas sharing a database of their own on the machine's PostgreSQL and no Redis."""
    cluster = Cluster(mock, cluster_root, "", "", create_database())
    try:
        yield cluster
    finally:
        cluster.stop()
        drop_database(cluster.database)


def test_without_redis_a_budget_alert_is_sent_once_through_postgresql(postgres_only: Cluster, webhook_inbox):
    url, received = webhook_inbox
    first = postgres_only.start("a")
    alert_on_four_calls(first, url)
    replicas = [first, postgres_only.start("b"), postgres_only.start("c")]
    # Without Redis each replica counts its own calls: four on each crosses every threshold
    # and exhausts the limit on each, so every replica fires the same four alerts (same limit,
    # window, event and threshold), and `alert_ledger`'s key lets one replica deliver each.
    for replica in replicas:
        statuses = [chat(replica).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 200, 503], (replica.url, statuses)
    assert_each_alert_once(received, replicas)


def login(replica: Routerly, password: str) -> httpx.Response:
    return httpx.post(
        f"{replica.url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": password}, timeout=30
    )


def test_login_limits_are_shared_so_three_replicas_do_not_give_three_times_the_guesses(shared: Cluster):
    replicas = [shared.start("a"), shared.start("b"), shared.start("c")]
    # Five failures per account and address (api::auth::LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS),
    # spread over the replicas; then every replica refuses, even the right password.
    answers = [login(replicas[index % 3], f"guess {index}") for index in range(9)]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * 5 + [429] * 4, statuses
    assert all(int(answer.headers["retry-after"]) > 60 for answer in answers[5:])
    for replica in replicas:
        assert login(replica, ADMIN_PASSWORD).status_code == 429
    # The keys name neither the account nor the address.
    keys = redis_cli(6379, "--scan", "--pattern", f"{shared.prefix}:login:*").split()
    assert len(keys) == 2, keys
    assert not any("admin" in key or "127.0.0.1" in key for key in keys), keys


def test_logins_when_redis_is_unreachable_follow_the_failure_mode_and_are_never_unlimited(mock, cluster_root):
    port = free_port()  # nothing listens there
    cluster = Cluster(mock, cluster_root, "redis://127.0.0.1:6379/0", f"routerly-e2e-{secrets.token_hex(6)}")
    try:
        first = cluster.start("a")  # configured while Redis is there
        first.process.kill()
        first.process.wait(10)
        cluster.redis_url = f"redis://127.0.0.1:{port}/0"
        closed = cluster.start("closed", log_in=False, ROUTERLY_REDIS_FAILURE_MODE="closed")
        refused = login(closed, ADMIN_PASSWORD)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "unavailable", refused.text
        opened = cluster.start("open", log_in=False, ROUTERLY_REDIS_FAILURE_MODE="open")
        statuses = [login(opened, f"guess {index}").status_code for index in range(7)]
        assert statuses == [401] * 5 + [429] * 2, statuses
        assert "shared login limits" in opened.log_tail()
    finally:
        cluster.stop()
        delete_prefix(6379, cluster.prefix)


def test_a_circuit_opened_on_one_replica_is_open_on_another_within_a_second(shared: Cluster, mock):
    first = shared.start("a")
    first.cli("project", "routing", "set-retries", "my-app", "0")
    first.cli("project", "routing", "policy", "enable", "my-app", "cheapest")
    first.cli("project", "routing", "policy", "enable", "my-app", "health", "--config", '{"circuitBreaker": 0.5, "cooldownSeconds": 120}')
    both = first.cli_json("project", "token", "create", "my-app", "--json")["token"]  # both models
    second = shared.start("b")
    mock.reset()

    def auto(replica: Routerly) -> httpx.Response:
        return httpx.post(
            f"{replica.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {both}"},
            json={"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "route me"}]},
            timeout=30,
        )

    # The OpenAI model is the cheapest: it serves while healthy, on either replica.
    assert auto(second).headers["x-routerly-model"] == FLAT_MODEL.id
    # It fails once on the first replica (the call falls back to Claude); the next call there
    # finds one failure in one call, at the breaker's 50 %: the circuit opens.
    mock.fail_next("openai", 1, 500)
    assert auto(first).headers["x-routerly-model"] == ANTHROPIC_MODEL.id
    assert auto(first).headers["x-routerly-model"] == ANTHROPIC_MODEL.id
    opened_at = time.monotonic()

    def avoided_on_second() -> bool:
        return auto(second).headers["x-routerly-model"] == ANTHROPIC_MODEL.id

    # The second replica saw no failure at all; it avoids the model once it learns.
    wait_until("the second replica to avoid the model", avoided_on_second, 1.5, [first, second])
    assert time.monotonic() - opened_at <= 1.5
    sent = len(mock.requests("openai"))
    for _ in range(3):
        assert avoided_on_second(), "still open there"
    assert len(mock.requests("openai")) == sent, "no call reached the open model from either replica"


def test_routing_statistics_are_shared_so_a_replica_routes_by_the_calls_the_others_answered(shared: Cluster, mock):
    first = shared.start("a")
    first.cli("project", "routing", "set-retries", "my-app", "0")
    first.cli("project", "routing", "policy", "enable", "my-app", "performance")
    both = first.cli_json("project", "token", "create", "my-app", "--json")["token"]  # both models
    second = shared.start("b")

    def call(replica: Routerly, model: str, text: str) -> httpx.Response:
        return httpx.post(
            f"{replica.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {both}"},
            json={"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": text}]},
            timeout=30,
        )

    # Only the second replica calls the models: the OpenAI one slow, Claude fast.
    for _ in range(3):
        assert call(second, FLAT_MODEL.alias, "slow [mock:delay_ms=400]").status_code == 200
        assert call(second, ANTHROPIC_MODEL.alias, "fast").status_code == 200
    headers = {"Authorization": f"Bearer {login(first, ADMIN_PASSWORD).json()['access_token']}"}

    def seen_on_first() -> dict:
        health = httpx.get(f"{first.url}/api/routing/health", headers=headers, timeout=10).json()
        return {model["model_id"]: model for model in health["models"]}

    # The first replica answered nothing, yet sees those calls within a second or so.
    wait_until(
        "the first replica to count the second's calls",
        lambda: [seen_on_first()[model.id]["calls"] for model in (FLAT_MODEL, ANTHROPIC_MODEL)] == [3, 3],
        3, [first, second],
    )  # fmt: skip
    seen = seen_on_first()
    assert seen[FLAT_MODEL.id]["mean_latency_ms"] >= 400, seen
    assert seen[ANTHROPIC_MODEL.id]["mean_latency_ms"] < 400, seen
    # And routes by them: `auto` goes to the model that was fast on the other replica.
    routed = call(first, "auto", "route me")
    assert routed.status_code == 200 and routed.headers["x-routerly-model"] == ANTHROPIC_MODEL.id, routed.headers
    # Its own calls are counted once, here and there (each replica skips its own in Redis),
    # and a replica started now learns the others' recent counts at once.
    time.sleep(1.5)
    third = shared.start("c")
    time.sleep(1.5)
    for replica in (first, second, third):
        replica_headers = {"Authorization": f"Bearer {login(replica, ADMIN_PASSWORD).json()['access_token']}"}
        health = httpx.get(f"{replica.url}/api/routing/health", headers=replica_headers, timeout=10).json()
        calls = {model["model_id"]: model["calls"] for model in health["models"]}
        assert calls == {FLAT_MODEL.id: 3, ANTHROPIC_MODEL.id: 4}, (replica.url, calls)
