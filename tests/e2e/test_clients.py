"""The LLM clients people run, pinned (tests/clients/package.json and its lock for the npm ones,
requirements.txt for the OpenAI Agents SDK), through Routerly to an OpenAI-format, an
Anthropic-format and a Gemini-format model (the routerly-mock providers).

Every client runs as a subprocess with a temporary HOME, its telemetry, update checks and error
reporting off through its documented settings, and a network closed except loopback (an
`HTTPS_PROXY` that refuses everything, `NO_PROXY` for loopback). Each run makes the model call a
tool of the client's own (the mock's `[mock:tool=…]`/`[mock:arg.…]` directives) that reads a
file holding a nonce, and each test checks: the text the client printed (the mock's final
answer quotes the tool result), that the tool result reached the provider, and exactly one
usage record per upstream call, each priced at the model's prices.

Between client and Routerly sits a recording proxy: with `ROUTERLY_RECORD_CLIENTS=DIR` the
request bodies each client sent are written under DIR/<client>/ (scrubbed of the temporary
paths and the nonce), which is how the corpus in crates/routerly-server/tests/fixtures/clients
was captured.

Needs `npm ci` in tests/clients (scripts/check runs it); without it the npm clients are skipped
with that reason, never silently passed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from client_network import Recorder, RefusingProxy
from conftest import MockProviders, Routerly, running_routerly, stop_process
from provider_mocks import AllMocks, start_all_mocks

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "clients"
MODULES = CLIENTS / "node_modules"
# The platform binaries the npm packages ship as optional dependencies, run directly: their
# install scripts (which only copy these into place) never run (`npm ci --ignore-scripts`).
CLAUDE = MODULES / "@anthropic-ai/claude-code-linux-x64/claude"
CODEX = MODULES / "@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
OPENCODE = MODULES / "opencode-linux-x64/bin/opencode"
CLIENT_TIMEOUT = 120


@dataclass(frozen=True)
class Family:
    """A provider family behind Routerly: the alias clients ask for and how it is priced."""

    name: str  # the mock that serves it
    alias: str  # what the client sends as the model
    model_id: str  # Routerly's model id, in the usage record
    input_price: float
    output_price: float

    def cost(self, record: dict) -> float:
        return (record["input_tokens"] * self.input_price + record["output_tokens"] * self.output_price) / 1e6


FAMILIES = [
    Family("openai", "gpt-4o", "gpt-4o-mini", 0.15, 0.60),
    Family("anthropic", "claude", "claude-sonnet", 3.0, 15.0),
    # Catalogue prices of gemini-2.5-flash.
    Family("gemini", "gemini-flash", "gemini-flash", 0.30, 2.50),
]


@dataclass
class Setup:
    routerly: Routerly
    mocks: AllMocks
    proxy: RefusingProxy


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    process, mocks = start_all_mocks()
    proxy = RefusingProxy()
    try:
        classic = MockProviders(mocks.url("openai"), mocks.url("anthropic"), mocks.api_key)
        with running_routerly(classic) as routerly:
            routerly.cli(
                "model", "add", "--id", "gemini-flash", "--provider", "gemini",
                "--endpoint", mocks.url("gemini"), "--api-key", mocks.api_key,
                "--upstream-model", "gemini-2.5-flash",
            )  # fmt: skip
            routerly.cli("project", "model", "add", routerly.project_slug, "gemini-flash")
            yield Setup(routerly, mocks, proxy)
    finally:
        proxy.close()
        stop_process(process)


@dataclass
class Workspace:
    """A client's temporary world: HOME, a project directory with the file its tool reads."""

    root: Path
    home: Path
    project: Path
    nonce: str
    recorder: Recorder

    @property
    def notes(self) -> Path:
        return self.project / "notes.txt"


@pytest.fixture
def workspace(setup: Setup, request) -> Iterator[Workspace]:
    root = Path(tempfile.mkdtemp(prefix="routerly-client-"))
    home, project = root / "home", root / "project"
    home.mkdir()
    project.mkdir()
    nonce = f"nonce-{secrets.token_hex(6)}"
    (project / "notes.txt").write_text(f"The launch code is {nonce}.\n")
    recorder = Recorder(setup.routerly.url)
    try:
        yield Workspace(root, home, project, nonce, recorder)
    finally:
        recorder.close()
        save_corpus(request.node, root, nonce, recorder.exchanges)
        shutil.rmtree(root, ignore_errors=True)


def save_corpus(node, root: Path, nonce: str, exchanges: list[dict]) -> None:
    """With ROUTERLY_RECORD_CLIENTS=DIR, the bodies the client sent, scrubbed, as DIR/<test id>/<n>.json."""
    target = os.environ.get("ROUTERLY_RECORD_CLIENTS")
    if not target or not exchanges:
        return
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", node.name.removeprefix("test_")).strip("-")
    directory = Path(target) / name
    directory.mkdir(parents=True, exist_ok=True)
    for index, exchange in enumerate(exchanges, 1):
        if not isinstance(exchange["body"], dict):
            continue
        text = json.dumps(exchange["body"], indent=1, ensure_ascii=False)
        text = text.replace(str(root), "/tmp/routerly-client").replace(nonce, "nonce-0")
        text = text.replace(os.uname().nodename, "host").replace(os.uname().release, "6.0.0")
        (directory / f"{index}.json").write_text(
            json.dumps({"method": exchange["method"], "path": exchange["path"]}) + "\n" + text + "\n"
        )


def client_env(setup: Setup, workspace: Workspace, **extra: str) -> dict:
    """The environment every client runs with: no inherited secrets or settings, a temporary
    HOME, the refusing proxy for everything but loopback."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workspace.home),
        "XDG_CONFIG_HOME": str(workspace.home / ".config"),
        "XDG_DATA_HOME": str(workspace.home / ".local/share"),
        "XDG_CACHE_HOME": str(workspace.home / ".cache"),
        "XDG_STATE_HOME": str(workspace.home / ".local/state"),
        "TMPDIR": str(workspace.root),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "CI": "1",
        "HTTP_PROXY": setup.proxy.url,
        "HTTPS_PROXY": setup.proxy.url,
        "ALL_PROXY": setup.proxy.url,
        "http_proxy": setup.proxy.url,
        "https_proxy": setup.proxy.url,
        "all_proxy": setup.proxy.url,
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
        "ROUTERLY_URL": workspace.recorder.url,
        "ROUTERLY_TOKEN": setup.routerly.token,
    }
    env.update(extra)
    return env


def run_client(args: list, env: dict, cwd: Path, setup: Setup) -> str:
    """Runs a client to completion (bounded), failing with its output when it exits non-zero or
    when it tried to reach anything but loopback (telemetry, update checks, catalogues)."""
    refused_before = len(setup.proxy.refused)
    try:
        done = subprocess.run(
            [str(arg) for arg in args], env=env, cwd=cwd, capture_output=True, text=True,
            timeout=CLIENT_TIMEOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"{args[0]} did not finish within {CLIENT_TIMEOUT}s\nstdout: {error.stdout}\nstderr: {error.stderr}\n"
            f"refused by the proxy: {setup.proxy.refused}\n{setup.routerly.log_tail()}"
        ) from None
    if done.returncode != 0:
        raise AssertionError(
            f"{Path(str(args[0])).name} exited {done.returncode}\nstdout: {done.stdout[-4000:]}\n"
            f"stderr: {done.stderr[-4000:]}\nrefused by the proxy: {setup.proxy.refused}\n"
            f"{setup.routerly.log_tail()}"
        )
    refused = setup.proxy.refused[refused_before:]
    assert not refused, (
        f"{Path(str(args[0])).name} tried to leave loopback: {refused}\nstderr: {done.stderr[-6000:]}"
    )
    return done.stdout


class Calls:
    """What one client run caused: the upstream requests to a family's mock and the usage records."""

    def __init__(self, setup: Setup, family: Family) -> None:
        self.setup, self.family = setup, family
        self.requests_before = len(setup.mocks.requests(family.name))
        self.records_before = len(setup.routerly.usage_records())

    def check(self, nonce: str, min_calls: int = 2) -> list[dict]:
        """Checks the upstream calls and their records; returns the upstream request bodies."""
        chat_paths = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
        bodies = [
            request["body"]
            for request in self.setup.mocks.requests(self.family.name)[self.requests_before :]
            if request["path"] in chat_paths or ":generateContent" in request["path"]
            or ":streamGenerateContent" in request["path"]
        ]  # fmt: skip
        assert len(bodies) >= min_calls, f"{len(bodies)} calls reached the {self.family.name} mock"
        # The tool result (the file's nonce) reached the provider, in the provider's own format.
        assert any(nonce in json.dumps(body) for body in bodies), "the tool result never reached the provider"
        # One record per upstream call, each a success on the family's model, priced by its prices.
        deadline = time.monotonic() + 5
        while True:
            records = self.setup.routerly.usage_records()[self.records_before :]
            if len(records) >= len(bodies) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(records) == len(bodies), (len(records), len(bodies), records)
        for record in records:
            assert record["model_id"] == self.family.model_id, record
            assert record["outcome"] == "success" and record["status"] == 200, record
            assert record["input_tokens"] > 0 and record["output_tokens"] > 0, record
            assert record["cost_usd"] == pytest.approx(self.family.cost(record), rel=1e-9), record
            assert record["cost_usd"] > 0, record
        return bodies


# What Routerly still refuses of these clients' requests, by test and family: issue 12's server
# side (branch clients-server) removes these. Strict, so a fixed gap fails here until its line
# is removed, and the README's compatibility table is updated with it.
SERVER_GAPS: dict[tuple[str, str], str] = {}


def family_params(client: str = ""):
    params = []
    for family in FAMILIES:
        gap = SERVER_GAPS.get((client, family.name))
        marks = [pytest.mark.xfail(strict=True, reason=f"issue 12: {gap}")] if gap else []
        params.append(pytest.param(family, id=family.name, marks=marks))
    return params


def needs(path: Path) -> None:
    if not path.exists():
        pytest.skip(
            f"{path.relative_to(ROOT)} is missing: `npm ci --ignore-scripts` in tests/clients installs it "
            "(scripts/check does; the client binaries are the Linux x64 ones)"
        )


# ---- OpenAI Agents SDK (PyPI openai-agents) ----------------------------------------------------


@pytest.mark.parametrize("scenario", ["run", "streamed"])
@pytest.mark.parametrize("family", family_params())
def test_openai_agents_sdk(setup, workspace, family, scenario):
    calls = Calls(setup, family)
    env = client_env(setup, workspace, OPENAI_AGENTS_DISABLE_TRACING="1")
    out = run_client([sys.executable, CLIENTS / "agents_sdk.py", scenario, family.alias, workspace.notes], env,
                     workspace.project, setup)  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    assert result["toolResults"] == [f"notes.txt: The launch code is {workspace.nonce}."], result
    assert result["texts"] == [f"Tool result: notes.txt: The launch code is {workspace.nonce}."], result
    calls.check(workspace.nonce)


# ---- Vercel AI SDK (npm ai 6, @ai-sdk/openai, @ai-sdk/anthropic) --------------------------------


@pytest.mark.parametrize("scenario", ["generate-responses", "stream-chat", "stream-anthropic"])
@pytest.mark.parametrize("family", family_params())
def test_vercel_ai_sdk_tool_round_trip(setup, workspace, family, scenario):
    needs(MODULES / "ai")
    calls = Calls(setup, family)
    out = run_client(["node", CLIENTS / "ai_sdk.mjs", scenario, family.alias, workspace.notes],
                     client_env(setup, workspace), workspace.project, setup)  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    quoted = f"notes.txt: The launch code is {workspace.nonce}."
    assert result["toolResults"] == [quoted], result
    assert result["texts"] == [f"Tool result: {quoted}"], result
    calls.check(workspace.nonce)


@pytest.mark.parametrize("family", family_params("vercel_two_turn"))
def test_vercel_ai_sdk_two_turn_chat_on_responses(setup, workspace, family):
    needs(MODULES / "ai")
    calls = Calls(setup, family)
    out = run_client(["node", CLIENTS / "ai_sdk.mjs", "two-turn", family.alias, workspace.notes],
                     client_env(setup, workspace), workspace.project, setup)  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    upstream = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
    hello = f"Hello from mock {family.name} {upstream[family.name]}! You said:"
    assert result["texts"] == [f"{hello} My name is Ada.", f"{hello} What is my name?"], result
    # The second request carried the first answer back as an `item_reference`: OpenAI gets it
    # as sent (its own store resolves it); a translated model gets the answer's text, resolved
    # from Routerly's conversation store, in the provider's format.
    bodies = calls.check("", min_calls=2)
    if family.name == "openai":
        assert '"item_reference"' in json.dumps(bodies[-1]), bodies[-1]
    else:
        assert result["texts"][0] in json.dumps(bodies[-1]), bodies[-1]


# ---- Claude Code (npm @anthropic-ai/claude-code) ------------------------------------------------


def claude_code_env(setup: Setup, workspace: Workspace, family: Family) -> dict:
    return client_env(
        setup, workspace,
        ANTHROPIC_BASE_URL=workspace.recorder.url,
        ANTHROPIC_API_KEY=setup.routerly.token,
        ANTHROPIC_MODEL=family.alias,
        ANTHROPIC_SMALL_FAST_MODEL=family.alias,
        ANTHROPIC_DEFAULT_HAIKU_MODEL=family.alias,
        ANTHROPIC_DEFAULT_SONNET_MODEL=family.alias,
        ANTHROPIC_DEFAULT_OPUS_MODEL=family.alias,
        CLAUDE_CONFIG_DIR=str(workspace.home / ".claude"),
        # Documented in Claude Code's settings: no telemetry, error reports, feedback surveys,
        # auto-updates or other non-essential traffic.
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_BUG_COMMAND="1",
        CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY="1",
        DISABLE_COST_WARNINGS="1",
    )  # fmt: skip


def run_claude_code(setup: Setup, workspace: Workspace, family: Family, prompt: str) -> str:
    return run_client([CLAUDE, "-p", prompt, "--model", family.alias, "--allowedTools", "Read",
                       "--output-format", "text"], claude_code_env(setup, workspace, family),
                      workspace.project, setup)  # fmt: skip


@pytest.mark.parametrize("family", family_params("claude_code"))
def test_claude_code_read_tool_round_trip(setup, workspace, family):
    needs(CLAUDE)
    calls = Calls(setup, family)
    prompt = f"Quote the file {workspace.notes}. [mock:tool=Read] [mock:arg.file_path={workspace.notes}]"
    out = run_claude_code(setup, workspace, family, prompt)
    assert out.strip().startswith("Tool result:"), out
    assert f"The launch code is {workspace.nonce}." in out, out
    calls.check(workspace.nonce)


# Where a PDF or an image the Read tool returned stands in each family's request: after the
# `tool` message in a user message's `file` / `image_url` part (Chat Completions), inside the
# `tool_result` (Anthropic), after the `functionResponse` (Gemini); each as its base64 data.
READ_MEDIA_SHAPES = {
    "openai": lambda body: [
        json.dumps(part)
        for index, message in enumerate(body["messages"])
        if message["role"] == "user" and index > 0 and body["messages"][index - 1]["role"] == "tool"
        for part in message["content"] if isinstance(part, dict) and part.get("type") in ("file", "image_url")
    ],
    "anthropic": lambda body: [
        json.dumps(block)
        for message in body["messages"] if isinstance(message["content"], list)
        for result in message["content"] if result.get("type") == "tool_result"
        for block in result.get("content", []) if isinstance(block, dict) and block.get("type") in ("document", "image")
    ],
    "gemini": lambda body: [
        json.dumps(part)
        for content in body["contents"]
        for index, part in enumerate(content["parts"])
        if "inlineData" in part and index > 0 and "functionResponse" in content["parts"][index - 1]
    ],
}


@pytest.mark.parametrize("media", ["pdf", "png"])
@pytest.mark.parametrize("family", family_params("claude_code"))
def test_claude_code_reads_a_pdf_or_an_image(setup, workspace, family, media):
    """Claude Code's Read tool returns a PDF as a `document` and a picture as an `image` inside
    the tool result; each family gets it where its API takes a tool's file, and the call is
    recorded and priced."""
    needs(CLAUDE)
    import base64

    data = {"pdf": MEDIA_PDF, "png": MEDIA_PNG}[media]
    calls = Calls(setup, family)
    path = workspace.project / f"report.{media}"
    path.write_bytes(base64.b64decode(data))
    prompt = f"Look at {path}. [mock:tool=Read] [mock:arg.file_path={path}]"
    out = run_claude_code(setup, workspace, family, prompt)
    assert out.strip(), out
    bodies = calls.check("", min_calls=2)
    carried = [part for body in bodies for part in READ_MEDIA_SHAPES[family.name](body)]
    media_type = {"pdf": "application/pdf", "png": "image/png"}[media]
    assert any(data in part and media_type in part for part in carried), json.dumps(bodies[-1])[:3000]


# ---- Codex CLI (npm @openai/codex) --------------------------------------------------------------


CODEX_CONFIG = """\
model = "{model}"
model_provider = "routerly"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
hide_agent_reasoning = true

[model_providers.routerly]
name = "Routerly"
base_url = "{url}/v1"
env_key = "ROUTERLY_TOKEN"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"

# The curated-plugin sync and the apps connector reach github.com and chatgpt.com at start.
[features]
plugins = false
remote_plugin = false
apps = false
"""


def run_codex(setup: Setup, workspace: Workspace, family: Family, prompt: str, *flags: str) -> str:
    codex_home = workspace.home / ".codex"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(CODEX_CONFIG.format(model=family.alias, url=workspace.recorder.url))
    env = client_env(setup, workspace, CODEX_HOME=str(codex_home))
    return run_client([CODEX, "exec", "--skip-git-repo-check", "--ephemeral", "-C", workspace.project,
                       *flags, prompt], env, workspace.project, setup)  # fmt: skip


@pytest.mark.parametrize("family", family_params("codex"))
def test_codex_exec_command_tool_loop(setup, workspace, family):
    needs(CODEX)
    calls = Calls(setup, family)
    out = run_codex(setup, workspace, family, "Show notes.txt. [mock:tool=exec_command] [mock:arg.cmd=cat notes.txt]")
    assert f"The launch code is {workspace.nonce}." in out, out
    bodies = calls.check(workspace.nonce)
    # Codex's `namespace` tool reaches other families as flat function tools, and its
    # `web_search` as Anthropic's own search tool (Gemini does not ground with functions).
    sent = json.dumps(bodies[0])
    if family.name != "openai":
        assert '"multi_agent_v1__' in sent, sent[:3000]
        assert '"namespace"' not in sent, sent[:3000]
    if family.name == "anthropic":
        assert '"web_search_20250305"' in sent, sent[:3000]




def call_items(body: dict) -> list[dict]:
    """The tool calls and tool results of an upstream request, in the family's own shape, as
    {"kind": "call"|"result", "id", "name", "text"}: Responses items, Anthropic blocks, Gemini
    parts (whose calls and results pair by name, not id)."""
    found = []
    for item in body.get("input", []):
        if item.get("type") == "function_call":
            found.append({"kind": "call", "id": item["call_id"], "name": item["name"],
                          "namespace": item.get("namespace"), "text": item["arguments"]})
        elif item.get("type") == "function_call_output":
            found.append({"kind": "result", "id": item["call_id"], "name": None, "text": json.dumps(item["output"])})
    for message in body.get("messages", []):
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_use":
                found.append({"kind": "call", "id": block["id"], "name": block["name"], "text": json.dumps(block["input"])})
            elif block.get("type") == "tool_result":
                found.append({"kind": "result", "id": block["tool_use_id"], "name": None, "text": json.dumps(block.get("content"))})
    for content in body.get("contents", []):
        for part in content["parts"]:
            if "functionCall" in part:
                call = part["functionCall"]
                found.append({"kind": "call", "id": call["name"], "name": call["name"], "text": json.dumps(call.get("args"))})
            elif "functionResponse" in part:
                response = part["functionResponse"]
                found.append({"kind": "result", "id": response["name"], "name": None, "text": json.dumps(response["response"])})
    return found


@pytest.mark.parametrize("family", family_params("codex"))
def test_codex_namespaced_tool_call(setup, workspace, family):
    """Codex's `multi_agent_v1` namespace tool: the model calls one of its members, Codex runs it
    and sends the result back. OpenAI gets the namespace tool as sent and calls it by name and
    namespace (as OpenAI does); other families call the flattened `multi_agent_v1__close_agent`,
    which Codex receives under its namespace."""
    needs(CODEX)
    calls = Calls(setup, family)
    tool = "multi_agent_v1.close_agent" if family.name == "openai" else "multi_agent_v1__close_agent"
    agent = f"agent-{workspace.nonce}"
    out = run_codex(setup, workspace, family, f"Close the agent. [mock:tool={tool}] [mock:arg.target={agent}]")
    assert "Tool result:" in out, out
    bodies = calls.check(agent, min_calls=2)
    items = call_items(bodies[-1])
    [call] = [item for item in items if item["kind"] == "call" and agent in item["text"]]
    if family.name == "openai":
        assert '"type": "namespace"' in json.dumps(bodies[0]), json.dumps(bodies[0])[:3000]
        assert (call["name"], call["namespace"]) == ("close_agent", "multi_agent_v1"), call
    else:
        assert call["name"] == "multi_agent_v1__close_agent", call
    # Codex ran the call (it knew the namespaced tool) and answered it.
    [result] = [item for item in items if item["kind"] == "result" and item["id"] == call["id"]]
    assert result["text"] not in ('""', "null"), result
    assert "unsupported call" not in result["text"].lower(), result


@pytest.mark.parametrize("family", family_params("codex"))
def test_codex_view_image(setup, workspace, family):
    """Codex's `view_image` tool reads a PNG and sends it back as the tool's output (an
    `input_image`); each family gets the picture in its own shape, and the call is priced."""
    needs(CODEX)
    import base64

    calls = Calls(setup, family)
    picture = workspace.project / "picture.png"
    picture.write_bytes(base64.b64decode(MEDIA_PNG))
    out = run_codex(setup, workspace, family, f"Look at it. [mock:tool=view_image] [mock:arg.path={picture}]")
    assert out.strip(), out
    bodies = calls.check("", min_calls=2)
    sent = json.dumps(bodies[-1], separators=(", ", ": "))
    marker = {"openai": '"input_image"', "anthropic": '"type": "image"', "gemini": '"inlineData"'}[family.name]
    assert marker in sent and "image/png" in sent, sent[-3000:]


# ---- opencode (npm opencode-ai) -----------------------------------------------------------------


@pytest.mark.parametrize("family", family_params())
def test_opencode_run_read_tool(setup, workspace, family):
    needs(OPENCODE)
    calls = Calls(setup, family)
    config = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": f"routerly/{family.alias}",
        "small_model": f"routerly/{family.alias}",
        "provider": {
            "routerly": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Routerly",
                "options": {"baseURL": f"{workspace.recorder.url}/v1", "apiKey": "{env:ROUTERLY_TOKEN}"},
                "models": {family.alias: {"name": family.alias, "tool_call": True}},
            }
        },
    }
    (workspace.project / "opencode.json").write_text(json.dumps(config))
    # opencode installs its plugin SDK (@opencode-ai/plugin) from npm into every config directory
    # unless the directory's package.json and lock already list it and node_modules exists; no
    # setting turns that off. An empty install that names it is enough: no plugin is configured.
    config_dir = workspace.home / ".config" / "opencode"
    (config_dir / "node_modules").mkdir(parents=True)
    (config_dir / "package.json").write_text(json.dumps({"dependencies": {"@opencode-ai/plugin": "1.18.33"}}))
    (config_dir / "package-lock.json").write_text(
        json.dumps({"packages": {"": {"dependencies": {"@opencode-ai/plugin": "1.18.33"}}}})
    )
    env = client_env(
        setup, workspace,
        OPENCODE_DISABLE_AUTOUPDATE="1",
        OPENCODE_DISABLE_MODELS_FETCH="1",
        OPENCODE_DISABLE_LSP_DOWNLOAD="1",
        OPENCODE_DISABLE_DEFAULT_PLUGINS="1",
        OPENCODE_DISABLE_SHARE="1",
        OPENCODE_DISABLE_CLAUDE_CODE="1",
    )  # fmt: skip
    prompt = f"Quote notes.txt. [mock:tool=read] [mock:arg.filePath={workspace.notes}]"
    out = run_client([OPENCODE, "run", "--print-logs", "--model", f"routerly/{family.alias}", prompt], env,
                     workspace.project, setup)  # fmt: skip
    assert f"The launch code is {workspace.nonce}." in out, out
    calls.check(workspace.nonce)


# ---- the closed network itself ------------------------------------------------------------------


def test_the_refusing_proxy_refuses_and_writes_down_every_destination(setup):
    """The clients' proxy lets nothing through, plain or tunnelled, and names what was asked, so
    `run_client`'s check that nothing was refused means nothing tried to leave."""
    import httpx

    before = len(setup.proxy.refused)
    with httpx.Client(proxy=setup.proxy.url, timeout=5) as client:
        plain = client.get("http://example.com/update-check")
        assert plain.status_code == 403, plain
        with pytest.raises(httpx.ProxyError):
            client.get("https://telemetry.example.com/v1/events")
    assert setup.proxy.refused[before:] == ["GET example.com", "CONNECT telemetry.example.com:443"]


# ---- images and documents through the SDKs --------------------------------------------------------

# A 1×1 PNG and a one-page PDF, base64.
MEDIA_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
MEDIA_PDF = (
    "JVBERi0xLjQKMSAwIG9iajw8L1R5cGUvQ2F0YWxvZy9QYWdlcyAyIDAgUj4+ZW5kb2JqCjIgMCBvYmo8PC9UeXBlL1BhZ2VzL0tp"
    "ZHNbMyAwIFJdL0NvdW50IDE+PmVuZG9iagozIDAgb2JqPDwvVHlwZS9QYWdlL1BhcmVudCAyIDAgUi9NZWRpYUJveFswIDAgNjEy"
    "IDc5Ml0+PmVuZG9iagp0cmFpbGVyPDwvUm9vdCAxIDAgUj4+CiUlRU9G"
)

# Where the image and the document stand in each family's request, by the shape's markers.
MEDIA_MARKERS = {
    "openai": {"chat": ['"image_url"', '"file_data"'], "responses": ['"input_image"', '"input_file"']},
    "anthropic": ['"type": "image"', '"type": "document"', '"application/pdf"'],
    "gemini": ['"inlineData"', '"image/png"', '"application/pdf"'],
}


def check_media(setup: Setup, family: Family, before: int, records: int, api: str) -> None:
    """The last upstream call of `family` carried the PNG and the PDF in the family's own shape,
    and was recorded (after the log's first `records`) as a priced success."""
    requests = setup.mocks.requests(family.name)[before:]
    assert requests, f"nothing reached the {family.name} mock"
    sent = json.dumps(requests[-1]["body"], separators=(", ", ": "))
    assert MEDIA_PNG in sent and MEDIA_PDF in sent, sent[:2000]
    markers = MEDIA_MARKERS[family.name]
    for marker in markers[api] if isinstance(markers, dict) else markers:
        assert marker in sent, (marker, sent[:2000])
    record = setup.routerly.record_after(records)
    assert record["model_id"] == family.model_id and record["status"] == 200, record
    assert record["cost_usd"] == pytest.approx(family.cost(record), rel=1e-9), record


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("family", family_params())
def test_openai_sdk_image_and_pdf(setup, family, api):
    import openai

    client = openai.OpenAI(base_url=f"{setup.routerly.url}/v1", api_key=setup.routerly.token, max_retries=0)
    before, records = len(setup.mocks.requests(family.name)), len(setup.routerly.usage_records())
    question = "Describe the picture and summarise the document."
    if api == "chat":
        completion = client.chat.completions.create(model=family.alias, messages=[{"role": "user", "content": [
            {"type": "text", "text": question},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{MEDIA_PNG}"}},
            {"type": "file", "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{MEDIA_PDF}"}},
        ]}])  # fmt: skip
        assert completion.choices[0].message.content
    else:
        response = client.responses.create(model=family.alias, input=[{"role": "user", "content": [
            {"type": "input_text", "text": question},
            {"type": "input_image", "image_url": f"data:image/png;base64,{MEDIA_PNG}"},
            {"type": "input_file", "filename": "report.pdf", "file_data": f"data:application/pdf;base64,{MEDIA_PDF}"},
        ]}])  # fmt: skip
        assert response.output_text
    check_media(setup, family, before, records, api)


@pytest.mark.parametrize("family", family_params())
def test_anthropic_sdk_image_and_pdf(setup, family):
    import anthropic

    client = anthropic.Anthropic(base_url=setup.routerly.url, api_key=setup.routerly.token, max_retries=0)
    before, records = len(setup.mocks.requests(family.name)), len(setup.routerly.usage_records())
    message = client.messages.create(model=family.alias, max_tokens=64, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe the picture and summarise the document."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": MEDIA_PNG}},
        {"type": "document", "title": "report.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": MEDIA_PDF}},
    ]}])  # fmt: skip
    assert message.content[0].text
    check_media(setup, family, before, records, "chat")


@pytest.mark.parametrize("scenario", ["media-responses", "media-chat", "media-anthropic"])
@pytest.mark.parametrize("family", family_params())
def test_vercel_ai_sdk_image_and_pdf(setup, workspace, family, scenario):
    needs(MODULES / "ai")
    before, records = len(setup.mocks.requests(family.name)), len(setup.routerly.usage_records())
    env = client_env(setup, workspace, MEDIA_PNG=MEDIA_PNG, MEDIA_PDF=MEDIA_PDF)
    out = run_client(["node", CLIENTS / "ai_sdk.mjs", scenario, family.alias, workspace.notes], env,
                     workspace.project, setup)  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    assert result["texts"][0], result
    check_media(setup, family, before, records, "responses" if scenario == "media-responses" else "chat")


# ---- web search sources -----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_web_search_sources_reach_a_responses_client(setup, provider, stream):
    """A Responses `web_search` runs as Anthropic's server web search or Gemini's Google Search
    grounding; what it found comes back as a `web_search_call` item and the text's citations
    as `url_citation` annotations over exactly the cited text (the mocks'
    `[mock:web_search=QUERY]` searches and cites one page; Gemini's answer puts multi-byte
    text before the cited sentence and gives its offsets in bytes, as Gemini does)."""
    import openai

    client = openai.OpenAI(base_url=f"{setup.routerly.url}/v1", api_key=setup.routerly.token, max_retries=0)
    family = next(family for family in FAMILIES if family.name == provider)
    before, records = len(setup.mocks.requests(family.name)), len(setup.routerly.usage_records())
    arguments = dict(model=family.alias, input="What is new in Rust? [mock:web_search=rust 2024]",
                     tools=[{"type": "web_search"}])  # fmt: skip
    if stream:
        with client.responses.stream(**arguments) as events:
            annotations_added = [event.annotation for event in events if event.type == "response.output_text.annotation.added"]
            response = events.get_final_response()
        assert [annotation["url"] for annotation in annotations_added] == ["https://search.example/rust-2024"]
    else:
        response = client.responses.create(**arguments)
    searches = [item for item in response.output if item.type == "web_search_call"]
    assert len(searches) == 1, response.output
    assert searches[0].action.query == "rust 2024", searches[0]
    [message] = [item for item in response.output if item.type == "message"]
    [annotation] = message.content[0].annotations
    assert annotation.type == "url_citation" and annotation.url == "https://search.example/rust-2024", annotation
    assert annotation.title == "Mock result for rust 2024", annotation
    cited = message.content[0].text[annotation.start_index : annotation.end_index]
    assert cited == "What the web says about rust 2024.", (annotation, message.content[0].text)
    record = setup.routerly.record_after(records)
    assert record["model_id"] == family.model_id and record["status"] == 200, record
    [sent] = setup.mocks.requests(family.name)[before:]
    search_tool = '"web_search_20250305"' if provider == "anthropic" else '"googleSearch"'
    assert search_tool in json.dumps(sent["body"]), json.dumps(sent)[:2000]


def test_codex_gets_the_sources_of_a_claude_web_search(setup, workspace):
    """Codex's `web_search` tool runs as Anthropic's server web search on a Claude model; Codex
    receives the search as a `web_search_call` item (its `--json` events show it) and the
    answer's text."""
    needs(CODEX)
    family = next(family for family in FAMILIES if family.name == "anthropic")
    calls = Calls(setup, family)
    out = run_codex(setup, workspace, family, "What is new in Rust? [mock:web_search=rust 2024]", "--json")
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    items = [event["item"] for event in events if event.get("type") == "item.completed"]
    assert any(item.get("type") == "web_search" and "rust 2024" in json.dumps(item) for item in items), items
    assert any("What the web says about rust 2024." in json.dumps(item) for item in items), items
    [body] = calls.check("", min_calls=1)
    assert '"web_search_20250305"' in json.dumps(body), json.dumps(body)[:2000]
