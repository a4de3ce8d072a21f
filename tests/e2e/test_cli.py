"""The `routerly` CLI end to end: every command group against the real binary, `--json`
output parsed, clear errors with non-zero exit codes, and, after the whole run, no secret
(provider key, project token, admin API key, SMTP password, webhook secret, metrics token)
in clear in any file under ROUTERLY_HOME, any CLI or API output but the one that creates it,
or the service's log."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import SHARED_MODE, ADMIN_EMAIL, OPENAI_MODEL, Routerly, find_binary, psql, run_on_terminal, running_routerly

SMTP_PASSWORD = "smtp-pass-7f3a9c1e5b"
WEBHOOK_SECRET = "whsec-4d8e2a6c0f1b"
METRICS_TOKEN = "metrics-token-9b7d5f3e1a"
USER_PASSWORD = "user password 123"


class Session:
    """The running service plus everything the CLI and the API said during the run."""

    def __init__(self, routerly: Routerly) -> None:
        self.routerly = routerly
        self.outputs: list[str] = []  # outputs that must not carry any secret
        self.secrets: dict[str, str] = {
            "provider key": routerly.mock.api_key,
            "project token": routerly.token,
        }

    def run(self, *args: str, env: dict | None = None, secret_output: bool = False) -> subprocess.CompletedProcess:
        binary = find_binary("ROUTERLY_BIN", "target/debug/routerly")
        done = subprocess.run(
            [str(binary), *args], env=env or self.routerly.env, capture_output=True, text=True, timeout=30
        )
        if not secret_output:
            # The command line itself carries secrets (`--password`), so only its name is kept.
            self.outputs.append(f"$ routerly {' '.join(args[:2])} …\n{done.stdout}\n{done.stderr}")
        return done

    def ok(self, *args: str, **kwargs) -> str:
        done = self.run(*args, **kwargs)
        assert done.returncode == 0, f"`routerly {' '.join(args)}` exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def json(self, *args: str, **kwargs):
        import json

        return json.loads(self.ok(*args, **kwargs))

    def fails(self, *args: str, message: str) -> str:
        done = self.run(*args)
        assert done.returncode != 0, f"`routerly {' '.join(args)}` should fail\n{done.stdout}"
        assert message in done.stderr, f"expected {message!r} in: {done.stderr}"
        return done.stderr

    def api(self, method: str, path: str, token: str, **kwargs) -> httpx.Response:
        response = httpx.request(
            method, f"{self.routerly.url}{path}", headers={"authorization": f"Bearer {token}"}, timeout=10, **kwargs
        )
        self.outputs.append(f"{method} {path}\n{response.text}")
        return response

    def has_command(self, *args: str) -> bool:
        return self.run(*args, "--help").returncode == 0


@pytest.fixture(scope="module")
def session(mock_session) -> Iterator[Session]:
    """One Routerly, logging at debug level so the log scan sees everything it writes."""
    previous = os.environ.get("ROUTERLY_TEST_LOG")
    os.environ["ROUTERLY_TEST_LOG"] = "debug"
    try:
        with running_routerly(mock_session) as routerly:
            yield Session(routerly)
    finally:
        if previous is None:
            os.environ.pop("ROUTERLY_TEST_LOG", None)
        else:
            os.environ["ROUTERLY_TEST_LOG"] = previous


def chat(session: Session, token: str) -> httpx.Response:
    return httpx.post(
        f"{session.routerly.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {token}"},
        json={"model": OPENAI_MODEL.id, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def test_status_and_auth(session: Session) -> None:
    status = session.json("status", "--json")
    assert status["health"]["status"] == "ok" and status["me"]["email"] == ADMIN_EMAIL, status
    me = session.json("auth", "whoami", "--json")
    assert me["role"] == "admin" and "settings:write" in me["permissions"], me
    sessions = session.json("auth", "ps", "--json")
    assert [entry["alias"] for entry in sessions if entry["current"]] == ["default"], sessions

    session.ok("auth", "login", "--url", session.routerly.url, "--email", ADMIN_EMAIL,
               "--password", "a long password", "--alias", "second")  # fmt: skip
    assert [s["alias"] for s in session.json("auth", "ps", "--json") if s["current"]] == ["second"]
    session.ok("auth", "switch", "default")
    assert [s["alias"] for s in session.json("auth", "ps", "--json") if s["current"]] == ["default"]
    session.ok("auth", "logout", "--server", "second")
    assert [s["alias"] for s in session.json("auth", "ps", "--json")] == ["default"]
    session.fails("auth", "switch", "nope", message="no saved session `nope`")
    session.fails("auth", "login", "--url", session.routerly.url, "--email", ADMIN_EMAIL,
                  "--password", "wrong password", message="wrong email or password")  # fmt: skip

    # A password change keeps the CLI logged in on the new session, and the old password stops.
    session.ok("user", "add", "--email", "passwd@example.com", "--password", "first password 1", "--role", "viewer")
    session.ok("auth", "login", "--url", session.routerly.url, "--email", "passwd@example.com",
               "--password", "first password 1", "--alias", "third")  # fmt: skip
    session.ok("auth", "passwd", "--server", "third", "--current", "first password 1", "--new", "second password 2")
    me = session.json("auth", "whoami", "--json", "--server", "third")
    assert (me["email"], me["role"], me["alias"], me["url"]) == (
        "passwd@example.com", "viewer", "third", session.routerly.url
    ), me
    session.fails("auth", "login", "--url", session.routerly.url, "--email", "passwd@example.com",
                  "--password", "first password 1", message="wrong email or password")  # fmt: skip
    session.ok("auth", "logout", "--server", "third")
    session.ok("auth", "switch", "default")


def test_models(session: Session) -> None:
    models = session.json("model", "list", "--json")
    assert {model["id"] for model in models} >= {OPENAI_MODEL.id}
    assert all(session.routerly.mock.api_key not in str(model) for model in models)
    edited = session.json("model", "edit", OPENAI_MODEL.id, "--input-price", "0.2", "--context-window", "64000", "--json")
    assert edited["pricing"]["input"] == 0.2 and edited["context_window"] == 64000, edited
    assert edited["pricing"]["output"] == OPENAI_MODEL.output_price, "other prices are kept"
    # `env:` may only name variables on the allow-list (`*_API_KEY` by default).
    session.fails("model", "add", "--id", "spare", "--provider", "openai", "--api-key", "env:HOME",
                  message="may not be referenced")  # fmt: skip
    session.ok("model", "add", "--id", "spare", "--provider", "openai", "--api-key", "sk-spare-key")
    session.fails("model", "add", "--id", "bad", "--provider", "nope", message="unknown provider")
    session.ok("model", "remove", "spare")
    session.fails("model", "edit", "ghost", "--input-price", "1", message="no model `ghost`")


def test_projects_models_tokens(session: Session) -> None:
    created = session.json("project", "create", "--name", "Side Project", "--json")
    assert created["slug"] == "side-project", created
    assert {p["slug"] for p in session.json("project", "list", "--json")} >= {"my-app", "side-project"}
    session.ok("project", "edit", "side-project", "--name", "Side")
    shown = session.json("project", "show", "side-project", "--json")
    assert shown["name"] == "Side" and shown["id"] == created["id"], shown

    session.ok("project", "model", "add", "side-project", OPENAI_MODEL.id, "--prompt", "cheap", "--alias", "small")
    session.ok("project", "model", "set-prompt", "side-project", OPENAI_MODEL.id, "fast and cheap")
    models = session.json("project", "model", "list", "side-project", "--json")
    assert models == [{"model_id": OPENAI_MODEL.id, "aliases": ["small"], "routing_prompt": "fast and cheap"}], models

    token = session.json("project", "token", "create", "side-project", "--labels", "ci", "--json", secret_output=True)
    session.secrets["second project token"] = token["token"]
    assert chat(session, token["token"]).status_code == 200
    session.ok("project", "token", "edit", "side-project", token["id"], "--labels", "ci,nightly")
    tokens = session.json("project", "token", "list", "side-project", "--json")
    assert tokens[0]["labels"] == ["ci", "nightly"] and "token" not in tokens[0], tokens
    session.ok("project", "token", "remove", "side-project", token["id"])
    assert chat(session, token["token"]).status_code == 401, "a revoked token is refused at once"

    session.ok("project", "model", "remove", "side-project", OPENAI_MODEL.id)
    assert session.json("project", "model", "list", "side-project", "--json") == []
    session.ok("project", "remove", "side-project")
    session.fails("project", "show", "side-project", message="no project `side-project`")


def test_users_roles_members(session: Session) -> None:
    roles = session.json("role", "list", "--json")
    assert {role["id"] for role in roles} >= {"admin", "operator", "viewer"}
    role = session.json("role", "add", "--id", "auditor", "--name", "Auditor", "--permissions", "report:read,model:read", "--json")
    assert role["permissions"] == ["model:read", "report:read"], role
    session.ok("role", "edit", "auditor", "--permissions", "report:read")
    session.fails("role", "add", "--id", "x", "--name", "X", "--permissions", "fly:high", message="unknown permission")

    user = session.json("user", "add", "--email", "dev@example.com", "--password", USER_PASSWORD,
                        "--projects", "my-app:editor", "--json")  # fmt: skip
    assert user["role"] == "none" and user["projects"][0]["role"] == "editor", user
    session.ok("user", "add", "--email", "audit@example.com", "--password", USER_PASSWORD, "--role", "auditor")
    emails = {u["email"]: u["role"] for u in session.json("user", "list", "--json")}
    assert emails["audit@example.com"] == "auditor" and emails[ADMIN_EMAIL] == "admin", emails
    session.fails("role", "remove", "auditor", message="held by audit@example.com")

    members = session.json("project", "member", "list", "my-app", "--json")
    assert [(m["email"], m["role"]) for m in members] == [("dev@example.com", "editor")], members
    session.ok("project", "member", "add", "my-app", "--email", "audit@example.com", "--role", "viewer")
    session.ok("project", "member", "set-role", "my-app", "audit@example.com", "--role", "admin")
    members = {m["email"]: m["role"] for m in session.json("project", "member", "list", "my-app", "--json")}
    assert members == {"dev@example.com": "editor", "audit@example.com": "admin"}, members
    session.ok("project", "member", "remove", "my-app", "audit@example.com")
    session.fails("project", "member", "add", "my-app", "--email", "dev@example.com", "--role", "owner",
                  message="unknown project role")  # fmt: skip

    # The project editor works inside their project only, from their own saved session.
    dev_env = {**session.routerly.env, "XDG_CONFIG_HOME": str(Path(session.routerly.home).parent / "xdg-dev")}
    session.ok("auth", "login", "--url", session.routerly.url, "--email", "dev@example.com",
               "--password", USER_PASSWORD, env=dev_env)  # fmt: skip
    assert [p["slug"] for p in session.json("project", "list", "--json", env=dev_env)] == ["my-app"]
    done = session.run("user", "list", env=dev_env)
    assert done.returncode != 0 and "HTTP 403" in done.stderr, done.stderr
    done = session.run("model", "add", "--id", "x", "--provider", "openai", env=dev_env)
    assert done.returncode != 0 and "model:write" in done.stderr, done.stderr

    session.ok("user", "edit", "audit@example.com", "--role", "viewer")
    session.ok("user", "remove", "audit@example.com")
    session.ok("role", "remove", "auditor")
    session.fails("user", "remove", ADMIN_EMAIL, message="last admin")


def test_api_keys_and_service(session: Session) -> None:
    key = session.json("auth", "api-key", "create", "--name", "ci", "--role", "operator", "--json", secret_output=True)
    session.secrets["admin api key"] = key["key"]
    listed = session.json("auth", "api-key", "list", "--json")
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0], listed

    key_env = {**session.routerly.env, "ROUTERLY_API_KEY": key["key"], "ROUTERLY_URL": session.routerly.url,
               "XDG_CONFIG_HOME": str(Path(session.routerly.home).parent / "xdg-none")}  # fmt: skip
    me = session.json("auth", "whoami", "--json", env=key_env)
    assert me["via"] == "api_key" and me["role"] == "operator", me
    assert any(m["id"] == OPENAI_MODEL.id for m in session.json("model", "list", "--json", env=key_env))
    done = session.run("user", "list", env=key_env)
    assert done.returncode != 0 and "user:read" in done.stderr, "an operator key cannot manage users"

    status = session.json("service", "status", "--json")
    assert status["version"] and status["usage_writer"] == "ok", status

    # Secrets the service keeps: the metrics token (through the API), channel credentials.
    admin_key = session.json("auth", "api-key", "create", "--name", "admin", "--json", secret_output=True)["key"]
    session.secrets["admin api key 2"] = admin_key
    response = session.api("PATCH", "/api/settings", admin_key, json={"metrics_token": METRICS_TOKEN})
    assert response.status_code == 200 and response.json()["metrics_token_set"] is True, response.text
    assert METRICS_TOKEN not in response.text
    if session.has_command("channel", "add", "webhook"):
        session.secrets["webhook secret"] = WEBHOOK_SECRET
        session.secrets["smtp password"] = SMTP_PASSWORD
        session.ok("channel", "add", "webhook", "--url", "https://hooks.example.com/routerly", "--secret", WEBHOOK_SECRET)
        session.ok("channel", "add", "smtp", "--host", "smtp.example.com", "--port", "587", "--tls", "starttls",
                   "--username", "alerts", "--password", SMTP_PASSWORD,
                   "--from", "routerly@example.com", "--to", "ops@example.com")  # fmt: skip
        session.json("channel", "list", "--json")

    assert chat(session, session.routerly.token).status_code == 200
    if SHARED_MODE:
        # Every replica holds the key: one replica cannot rotate it, and says so.
        refused = session.run("service", "rotate-key", "--json")
        assert refused.returncode != 0 and "ROUTERLY_SECRET_KEY" in refused.stderr, refused.stderr
    else:
        rotated = session.json("service", "rotate-key", "--json")
        assert rotated["rotated"] and rotated["secrets_reencrypted"] >= 2, rotated
        # The CLI's access token was signed with the old key: it refreshes and goes on.
        assert session.json("auth", "whoami", "--json")["email"] == ADMIN_EMAIL
        assert chat(session, session.routerly.token).status_code == 200, "provider keys decrypt under the new key"
        assert session.json("auth", "whoami", "--json", env=key_env)["via"] == "api_key", "API keys survive rotation"

    session.ok("auth", "api-key", "revoke", key["id"])
    done = session.run("auth", "whoami", env=key_env)
    assert done.returncode != 0 and "revoked" in done.stderr, done.stderr

    audit = session.api("GET", "/api/audit?limit=1000", admin_key).json()["entries"]
    actions = {entry["action"] for entry in audit}
    assert {"POST /api/models", "POST /api/users", "DELETE /api/projects/{project}"} <= actions, actions
    if SHARED_MODE:  # the audit log is PostgreSQL's, shared by the replicas
        assert int(psql(session.routerly.database, "SELECT count(*) FROM audit_log")[0]) == len(audit)
    else:
        assert "POST /api/system/rotate-key" in actions, actions
        assert (Path(session.routerly.home) / "data" / "audit.jsonl").exists()


class SlowHook(BaseHTTPRequestHandler):
    """A webhook receiver that takes 1.5 s to answer, as a slow endpoint would."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(1.5)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_slow_command_shows_a_spinner_on_a_terminal_and_nothing_in_a_pipe(session: Session) -> None:
    admin_key = session.json("auth", "api-key", "create", "--name", "spinner", "--json", secret_output=True)["key"]
    session.secrets["admin api key 3"] = admin_key
    allowed = session.api("PATCH", "/api/settings", admin_key, json={"allow_private_webhooks": True})
    assert allowed.status_code == 200, allowed.text
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        session.ok("channel", "add", "webhook", "--url", url, "--id", "slow-hook")
        code, screen = run_on_terminal(["channel", "test", "slow-hook"], session.routerly.env)
        assert code == 0, screen
        assert "Sending a test alert through slow-hook…" in screen, screen
        assert "Test alert delivered through slow-hook." in screen, screen
        piped = session.run("channel", "test", "slow-hook")
        assert piped.returncode == 0, piped.stderr
        assert "Sending a test alert" not in piped.stderr + piped.stdout, piped.stderr
        assert piped.stdout.strip() == "Test alert delivered through slow-hook.", piped.stdout
    finally:
        server.shutdown()
        session.ok("channel", "remove", "slow-hook")
        session.api("PATCH", "/api/settings", admin_key, json={"allow_private_webhooks": False})


def test_help_and_completions(session: Session) -> None:
    assert "Examples:" in session.ok("--help")
    for group in ("auth", "model", "project", "user", "role", "report", "service"):
        assert session.run(group, "--help").returncode == 0, group
    assert "complete" in session.ok("completions", "bash")
    done = session.run("project", "frobnicate")
    assert done.returncode != 0 and "unrecognized subcommand" in done.stderr


def test_no_secret_in_clear_anywhere_after_the_full_run(session: Session) -> None:
    home = Path(session.routerly.home)
    assert len(session.secrets) >= 4, session.secrets.keys()
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        content = path.read_bytes()
        for name, secret in session.secrets.items():
            assert secret.encode() not in content, f"{name} in clear in {path.relative_to(home)}"
    log = session.routerly.log_path.read_text(errors="replace")
    assert "DEBUG" in log or "debug" in log, "the log scan needs debug lines"
    for name, secret in session.secrets.items():
        assert secret not in log, f"{name} in the service log"
        for output in session.outputs:
            assert secret not in output, f"{name} in an output:\n{output[:500]}"
