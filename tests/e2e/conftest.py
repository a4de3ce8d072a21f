"""Shared fixtures for Routerly's end-to-end tests.

Nothing here builds anything: binaries are found through environment variables that default
to the debug build (`cargo build` first). Every process a fixture starts is stopped when the
fixture ends. No test reaches the internet; upstream providers are `routerly-mock` on loopback.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import os
import pty
import re
import select
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: The credential the mock providers require (what Routerly stores as the provider API key).
MOCK_API_KEY = "sk-mock-upstream-key"


def find_binary(env_var: str, default: str) -> Path:
    """The binary named by `env_var`, else `default`; relative paths are from the repo root."""
    path = Path(os.environ.get(env_var, default))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        pytest.fail(f"{path} does not exist: run `cargo build` first or set {env_var}")
    return path


def read_json_line(process: subprocess.Popen, timeout: float = 10.0) -> dict:
    """The first stdout line of `process`, parsed as JSON, waiting at most `timeout` seconds."""
    assert process.stdout is not None, "the process needs stdout=PIPE"
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise TimeoutError(f"no JSON line from {process.args[0]} within {timeout}s")
    finally:
        selector.close()
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args[0]} exited with {process.wait()} before printing its line")
    return json.loads(line)


def stop_process(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the process does not exit within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    if process.stdout is not None:
        process.stdout.close()


@dataclass
class MockProviders:
    """A running `routerly-mock`: both providers' base URLs and their control endpoints."""

    openai_url: str  # "http://127.0.0.1:P/v1", as the OpenAI SDK takes it
    anthropic_url: str  # "http://127.0.0.1:Q", as the Anthropic SDK takes it
    api_key: str

    def _control_url(self, provider: str, action: str) -> str:
        base = self.openai_url.removesuffix("/v1") if provider == "openai" else self.anthropic_url
        return f"{base}/_mock/{action}"

    def requests(self, provider: str) -> list[dict]:
        """Recorded requests of `provider` ("openai" or "anthropic"), oldest first."""
        response = httpx.get(self._control_url(provider, "requests"), timeout=5)
        response.raise_for_status()
        return response.json()

    def fail_next(self, provider: str, count: int, status: int) -> None:
        """The next `count` chat requests to `provider` answer `status`."""
        response = httpx.post(
            self._control_url(provider, "fail"), json={"count": count, "status": status}, timeout=5
        )
        response.raise_for_status()

    def reset(self) -> None:
        """Forget recorded requests and pending failures on both providers."""
        for provider in ("openai", "anthropic"):
            httpx.post(self._control_url(provider, "reset"), timeout=5).raise_for_status()


def start_mock(api_key: str = MOCK_API_KEY, *extra_args: str) -> tuple[subprocess.Popen, MockProviders]:
    """Starts `routerly-mock` on free loopback ports; the caller stops it with `stop_process`."""
    binary = find_binary("ROUTERLY_MOCK_BIN", "target/debug/routerly-mock")
    process = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--api-key", api_key, *extra_args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        urls = read_json_line(process)
    except BaseException:
        stop_process(process)
        raise
    return process, MockProviders(urls["openai"], urls["anthropic"], api_key)


@pytest.fixture
def mock() -> Iterator[MockProviders]:
    """A fresh `routerly-mock` for one test."""
    process, providers = start_mock()
    try:
        yield providers
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def mock_session() -> Iterator[MockProviders]:
    """One `routerly-mock` shared by the session (reset it where a test counts requests)."""
    process, providers = start_mock()
    try:
        yield providers
    finally:
        stop_process(process)


# ---- Routerly ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A model as the README's quick start registers it, pointed at the mock."""

    id: str
    provider: str  # "openai" or "anthropic"
    upstream: str  # the provider's own model name, echoed by the mock
    alias: str  # the project alias that reaches it
    input_price: float  # USD per million tokens
    output_price: float
    cached_price: float

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """The cost Routerly must record: `input_tokens` includes the cached ones."""
        return (
            (input_tokens - cached_tokens) * self.input_price
            + cached_tokens * self.cached_price
            + output_tokens * self.output_price
        ) / 1_000_000


OPENAI_MODEL = ModelSpec("gpt-4o-mini", "openai", "gpt-4o-mini", "gpt-4o", 0.15, 0.60, 0.075)
ANTHROPIC_MODEL = ModelSpec("claude-sonnet", "anthropic", "claude-sonnet-4-5", "claude", 3.0, 15.0, 0.30)
MODELS = (OPENAI_MODEL, ANTHROPIC_MODEL)
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "a long password"


# The mock's deterministic rules (see crates/routerly-mock/src/lib.rs), restated.


def tokens(byte_count: int) -> int:
    """The mock's token rule: a quarter of the counted bytes, rounded up."""
    return -(-byte_count // 4)


def utf8_len(*texts: str) -> int:
    return sum(len(text.encode()) for text in texts)


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def words(text: str) -> int:
    return len(text.split())


def hello(model: ModelSpec, text: str) -> str:
    """The mock's plain answer to `text` (directives removed, cut to 60 characters)."""
    said = " ".join(re.sub(r"\[mock:[^\]]*\]", " ", text).split())[:60]
    return f"Hello from mock {model.provider} {model.upstream}! You said: {said}"


def read_usage_file(path: Path, live: bool = False) -> tuple[list[dict], list[str]]:
    """The records of a usage log and its lines that do not parse (in file order). `live`: the
    service is still writing, so a last line without its newline is the writer's append in
    progress (a read can land in the middle of a write); it is left for the next read instead
    of counted as unparseable. After the service stopped, every line must be whole."""
    if not path.exists():
        return [], []
    records, bad_lines = [], []
    text = path.read_text(encoding="utf-8", errors="replace")
    written = text.rpartition("\n")[0] if live else text
    for line in written.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            bad_lines.append(line)
    return records, bad_lines


@dataclass
class Routerly:
    """A running `routerly serve` with a fresh home, configured through the CLI."""

    process: subprocess.Popen
    url: str  # "http://127.0.0.1:P"
    home: Path  # ROUTERLY_HOME
    env: dict  # the environment the service and the CLI run with
    log_path: Path  # the service's stderr
    mock: MockProviders
    token: str = ""
    token_id: str = ""
    project_id: str = ""
    project_slug: str = ""
    database: str = ""  # the PostgreSQL database in shared mode ("" in file mode)

    @property
    def usage_path(self) -> Path:
        return self.home / "data" / "usage.jsonl"

    def cli(self, *args: str, check: bool = True) -> str:
        """Runs `routerly ARGS` against this service and returns its stdout."""
        binary = find_binary("ROUTERLY_BIN", "target/debug/routerly")
        done = subprocess.run(
            [str(binary), *args], env=self.env, capture_output=True, text=True, timeout=30
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"`routerly {' '.join(args)}` exited {done.returncode}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done.stdout

    def cli_json(self, *args: str):
        return json.loads(self.cli(*args))

    def usage_records(self) -> list[dict]:
        """Every record in `data/usage.jsonl` now; a line that does not parse fails the test (a
        last line still being written is left for the next read)."""
        records, bad_lines = read_usage_file(self.usage_path, live=True)
        assert not bad_lines, f"unparseable usage lines: {bad_lines}"
        return records

    def record_for(self, trace_id: str, timeout: float = 5.0) -> dict:
        """The one usage record with `trace_id`, waiting for the writer (it fsyncs within 100 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [record for record in self.usage_records() if record["trace_id"] == trace_id]
            if matching:
                # Duplicates are also looked for in the whole log after the final flush.
                assert len(matching) == 1, f"{len(matching)} records for trace {trace_id}: {matching}"
                return matching[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no usage record for trace {trace_id} within {timeout}s")
            time.sleep(0.02)

    def record_after(self, count: int, timeout: float = 5.0) -> dict:
        """The one record written after the log's first `count`, waiting for the writer (it
        fsyncs within 100 ms): a call's record can land just after its answer."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.usage_records()
            if len(records) > count or time.monotonic() > deadline:
                assert len(records) == count + 1, f"{len(records) - count} new records: {records[count:]}"
                return records[count]
            time.sleep(0.02)

    def reported_calls(self, traces: set, *options: str, timeout: float = 5.0) -> list:
        """`report calls --json` (with `options`) once it lists every trace of `traces`, or
        as it stands after `timeout`: in shared mode reports read PostgreSQL, which the usage
        shipper reaches within 100 ms of a record's write, so a call shows up there shortly,
        not at once."""
        deadline = time.monotonic() + timeout
        while True:
            reported = self.cli_json("report", "calls", "--limit", "1000", *options, "--json")
            if traces <= {call["trace_id"] for call in reported} or time.monotonic() > deadline:
                return reported
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit code, failing (and killing the process) if it does not exit in time."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"routerly did not exit within {timeout}s\n{self.log_tail()}")

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait: the exit code (0 on a clean shutdown)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def run_on_terminal(args: list[str], env: dict, timeout: float = 30) -> tuple[int, str]:
    """Runs the CLI with a pseudo-terminal as its stdin, stdout and stderr, as a person would:
    its exit code and what it drew on the terminal."""
    binary = str(find_binary("ROUTERLY_BIN", "target/debug/routerly"))
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec the CLI on the terminal
        os.execve(binary, [binary, *args], {**env, "TERM": "xterm-256color"})
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def spawn_routerly(home: Path, env: dict, log_path: Path) -> tuple[subprocess.Popen, str]:
    """Starts `routerly serve` on a free loopback port; its URL from the first stdout line."""
    binary = find_binary("ROUTERLY_BIN", "target/debug/routerly")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(binary), "serve", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        ready = selector.select(20)
    finally:
        selector.close()
    line = process.stdout.readline() if ready else ""
    prefix = "routerly listening on "
    if not line.startswith(prefix):
        process.kill()
        process.wait(5)
        raise AssertionError(f"routerly did not start: {line!r}\n{log_path.read_text(errors='replace')}")
    return process, line.removeprefix(prefix).strip()


POSTGRES_ADMIN = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "test", "-q", "-v", "ON_ERROR_STOP=1"]


def postgres_url(database: str) -> str:
    return f"host=127.0.0.1 port=5432 user=postgres dbname={database}"


def create_database() -> str:
    """A fresh database on the machine's PostgreSQL; drop it with `drop_database`."""
    name = f"routerly_e2e_{uuid.uuid4().hex}"
    subprocess.run([*POSTGRES_ADMIN, "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=30)
    CREATED_DATABASES.add(name)
    return name


# Every database created in this session, for tests that start a Routerly and kill it
# without dropping its database.
CREATED_DATABASES: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def drop_leftover_databases() -> Iterator[None]:
    yield
    for name in sorted(CREATED_DATABASES):
        drop_database(name)


def drop_database(name: str) -> None:
    CREATED_DATABASES.discard(name)
    subprocess.run(
        [*POSTGRES_ADMIN, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def psql(database: str, sql: str) -> list[str]:
    """The rows `sql` returns from `database`, one string per row (columns `|`-separated)."""
    done = subprocess.run(
        ["psql", postgres_url(database), "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout.splitlines()


# `ROUTERLY_E2E_SHARED=1` runs every test against PostgreSQL and Redis: each Routerly started
# here gets a database of its own (created and dropped around it) and a Redis key prefix of its
# own on the machine's Redis (its keys deleted at the end of the session).
SHARED_MODE = os.environ.get("ROUTERLY_E2E_SHARED") == "1"
SHARED_REDIS = "redis://127.0.0.1:6379/0"
REDIS_PREFIXES: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def delete_redis_keys() -> Iterator[None]:
    yield
    for prefix in sorted(REDIS_PREFIXES):
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "--scan", "--pattern", f"{prefix}:*"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        keys = done.stdout.split()
        for start in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "DEL", *keys[start : start + 500]],
                           capture_output=True, timeout=30, check=True)  # fmt: skip


def routerly_env(root: Path) -> dict:
    """The environment of a Routerly (and its CLI) living under `root`: nothing of ours inherited."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("ROUTERLY_", "XDG_"))
    }
    env.update(
        ROUTERLY_HOME=str(root / "home"),
        XDG_CONFIG_HOME=str(root / "xdg"),
        HOME=str(root),
        ROUTERLY_LOG=os.environ.get("ROUTERLY_TEST_LOG", "warn"),
    )
    return env


def join_routerly(mock: MockProviders, root: Path, first: Routerly, extra_env: dict | None = None) -> Routerly:
    """Another replica of `first` under `root`: the same configuration database and master key
    (from `first`'s environment), nothing configured through it; the CLI logs in to it."""
    env = routerly_env(root)
    for key in ("ROUTERLY_DATABASE_URL", "ROUTERLY_SECRET_KEY"):
        env[key] = first.env[key]
    env.update(extra_env or {})
    process, url = spawn_routerly(Path(env["ROUTERLY_HOME"]), env, root / "routerly.log")
    replica = Routerly(process, url, Path(env["ROUTERLY_HOME"]), env, root / "routerly.log", mock)
    replica.token, replica.token_id = first.token, first.token_id
    replica.project_id, replica.project_slug = first.project_id, first.project_slug
    try:
        replica.cli("auth", "login", "--url", url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
    except BaseException:
        replica.process.kill()
        replica.process.wait(5)
        raise
    return replica


def start_routerly(mock: MockProviders, root: Path, extra_env: dict | None = None) -> Routerly:
    """A fresh Routerly under `root`, configured through the CLI as the README's quick start."""
    env = routerly_env(root)
    home = Path(env["ROUTERLY_HOME"])
    database = ""
    if SHARED_MODE and not (extra_env and "ROUTERLY_DATABASE_URL" in extra_env):
        database = create_database()
        env["ROUTERLY_DATABASE_URL"] = postgres_url(database)
    if SHARED_MODE and not (extra_env and "ROUTERLY_REDIS_URL" in extra_env):
        prefix = f"routerly-e2e-{secrets.token_hex(6)}"
        REDIS_PREFIXES.add(prefix)
        env.update(ROUTERLY_REDIS_URL=SHARED_REDIS, ROUTERLY_REDIS_PREFIX=prefix)
    env.update(extra_env or {})
    log_path = root / "routerly.log"
    try:
        process, url = spawn_routerly(home, env, log_path)
    except BaseException:
        if database:
            drop_database(database)
        raise
    routerly = Routerly(process, url, home, env, log_path, mock, database=database)
    try:
        routerly.cli("setup", "--url", url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
        routerly.cli("auth", "login", "--url", url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
        for model in MODELS:
            endpoint = mock.openai_url if model.provider == "openai" else mock.anthropic_url
            routerly.cli(
                "model", "add", "--id", model.id, "--provider", model.provider,
                "--endpoint", endpoint, "--api-key", mock.api_key,
                "--upstream-model", model.upstream,
                "--input-price", str(model.input_price), "--output-price", str(model.output_price),
                "--cached-price", str(model.cached_price),
                "--context-window", "128000", "--capabilities", "vision,tools,json",
            )  # fmt: skip
        project = routerly.cli_json("project", "create", "--name", "My App", "--json")
        routerly.project_id, routerly.project_slug = project["id"], project["slug"]
        assert routerly.project_slug == "my-app", project
        for model in MODELS:
            routerly.cli("project", "model", "add", "my-app", model.id, "--alias", model.alias)
        created = routerly.cli_json("project", "token", "create", "my-app", "--json")
        routerly.token, routerly.token_id = created["token"], created["id"]
        assert routerly.token.startswith("sk-lr-"), created
    except BaseException:
        routerly.process.kill()
        routerly.process.wait(5)
        if database:
            drop_database(database)
        raise
    return routerly


@contextlib.contextmanager
def running_routerly(mock: MockProviders) -> Iterator[Routerly]:
    """A configured Routerly in a temporary directory, stopped with SIGTERM (exit code 0
    asserted) and its directory removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="routerly-e2e-"))
    try:
        routerly = start_routerly(mock, root)
        try:
            yield routerly
        finally:
            code = routerly.stop()
            assert code == 0, f"routerly exited {code} on SIGTERM\n{routerly.log_tail()}"
            records, bad_lines = read_usage_file(routerly.usage_path)
            assert not bad_lines, f"unparseable usage lines after a clean shutdown: {bad_lines}"
            for field in ("id", "trace_id"):
                repeated = [value for value, count in Counter(r[field] for r in records).items() if count > 1]
                assert not repeated, f"usage records share a {field}: {repeated}"
            if routerly.database:
                drop_database(routerly.database)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def routerly(mock_session) -> Iterator[Routerly]:
    """One configured Routerly per test module, on the session's mock providers."""
    with running_routerly(mock_session) as instance:
        yield instance
