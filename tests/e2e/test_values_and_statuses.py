"""Values that cannot hurt, and the right statuses (issue 13), against the real binary.

A limit and a price at each boundary and just beyond, through the API and as hand edits:
refused with the field named, or accepted and working; the service restarts afterwards on
the same home. Then 405 with `Allow`, 413, 503 naming a broken file, the field of a type
error, length caps on what a client sends, the webhook guard and file modes.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import (
    SHARED_MODE,
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    OPENAI_MODEL,
    Routerly,
    find_binary,
    running_routerly,
    spawn_routerly,
)

#: The documented ranges (README, "Roles, secrets and values").
MAX_ROLLING_DAYS = 1830
MAX_LIMIT_VALUE = 1e12
MAX_PRICE = 10_000.0


def admin_client(routerly: Routerly) -> httpx.Client:
    login = httpx.post(
        f"{routerly.url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    return httpx.Client(base_url=routerly.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def restart(routerly: Routerly) -> None:
    code = routerly.stop()
    assert code == 0, f"routerly exited {code}\n{routerly.log_tail()}"
    routerly.process, routerly.url = spawn_routerly(routerly.home, routerly.env, routerly.log_path)


def chat(routerly: Routerly, model: str = OPENAI_MODEL.id, **headers: str):
    client = openai.OpenAI(base_url=f"{routerly.url}/v1", api_key=routerly.token, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "values"}], extra_headers=headers or None
    )


def error_of(response: httpx.Response) -> dict:
    return response.json()["error"]


def test_limits_at_their_bounds_through_the_api(routerly: Routerly):
    api = admin_client(routerly)
    cases = [
        # (body changes, accepted, field named when refused)
        ({"rolling": f"{MAX_ROLLING_DAYS}d", "value": 5}, True, None),
        ({"rolling": f"{MAX_ROLLING_DAYS + 1}d", "value": 5}, False, "rolling"),
        ({"rolling": "100000000d", "value": 5}, False, "rolling"),
        ({"window": f"rolling:{MAX_ROLLING_DAYS * 86400 + 1}s", "value": 5}, False, "window"),
        ({"period": "yearly", "value": MAX_LIMIT_VALUE}, True, None),
        ({"period": "yearly", "value": MAX_LIMIT_VALUE * 1.000001}, False, "value"),
        ({"period": "daily", "value": -1}, False, "value"),
        ({"period": "daily", "value": "ten"}, False, "value"),
    ]
    created = []
    for index, (changes, accepted, field) in enumerate(cases):
        body = {"id": f"bound-{index}", "scope": "global", "metric": "cost", **changes}
        answer = api.post("/api/limits", json=body)
        if accepted:
            assert answer.status_code == 201, (changes, answer.text)
            created.append(body["id"])
        else:
            assert answer.status_code == 400, (changes, answer.text)
            assert error_of(answer)["field"] == field, (changes, answer.text)
    # PATCH is held to the same ranges.
    answer = api.patch(f"/api/limits/{created[0]}", json={"rolling": "100000000d"})
    assert answer.status_code == 400 and error_of(answer)["field"] == "rolling", answer.text

    # Accepted limits work: listed with their use, and calls go through.
    listed = api.get("/api/limits")
    assert listed.status_code == 200, listed.text
    assert {limit["id"] for limit in listed.json()["limits"]} >= set(created)
    assert chat(routerly).http_response.status_code == 200
    restart(routerly)
    api = admin_client(routerly)
    assert api.get("/api/limits").status_code == 200
    assert chat(routerly).http_response.status_code == 200
    for limit_id in created:
        assert api.delete(f"/api/limits/{limit_id}").status_code == 204


def test_prices_at_their_bounds_and_a_call_at_the_ceiling_is_recorded(routerly: Routerly):
    api = admin_client(routerly)
    base = {"provider": "openai", "endpoint": routerly.mock.openai_url, "api_key": routerly.mock.api_key,
            "upstream_model": "gpt-4o-mini"}  # fmt: skip
    for index, (pricing, accepted, field) in enumerate(
        [
            ({"input": MAX_PRICE, "output": MAX_PRICE}, True, None),
            ({"input": MAX_PRICE * 1.0001, "output": 1}, False, "pricing.input"),
            ({"input": 1, "output": 1.7e308}, False, "pricing.output"),
            ({"input": 1, "output": 1, "cached_input": -0.5}, False, "pricing.cached_input"),
            ({"input": "cheap", "output": 1}, False, "pricing.input"),
        ]
    ):
        answer = api.post("/api/models", json={**base, "id": f"priced-{index}", "pricing": pricing})
        if accepted:
            assert answer.status_code == 201, answer.text
        else:
            assert answer.status_code == 400, (pricing, answer.text)
            assert error_of(answer)["field"] == field, (pricing, answer.text)
    answer = api.patch("/api/models/priced-0", json={"pricing": {"input": 1, "output": 1e308}})
    assert answer.status_code == 400 and error_of(answer)["field"] == "pricing.output", answer.text
    answer = api.patch("/api/models/priced-0", json={"context_window": 10**12})
    assert answer.status_code == 400 and error_of(answer)["field"] == "context_window", answer.text

    # A call priced at the ceiling is recorded with a finite cost that budgets count.
    assert api.post(f"/api/projects/{routerly.project_slug}/models", json={"model_id": "priced-0"}).status_code in (
        200,
        201,
    )
    raw = chat(routerly, model="priced-0")
    assert raw.http_response.status_code == 200
    record = routerly.record_for(raw.headers["x-routerly-trace-id"])
    assert isinstance(record["cost_usd"], (int, float)) and record["cost_usd"] > 0, record
    restart(routerly)
    assert chat(routerly, model="priced-0").http_response.status_code == 200
    api = admin_client(routerly)
    assert api.delete(f"/api/projects/{routerly.project_slug}/models/priced-0").status_code == 204
    assert api.delete("/api/models/priced-0").status_code == 204


def start_fails(routerly: Routerly) -> str:
    """Starts the binary on the home, which must refuse to start: its stderr."""
    binary = find_binary("ROUTERLY_BIN", "target/debug/routerly")
    done = subprocess.run(
        [str(binary), "serve", "--host", "127.0.0.1", "--port", "0"],
        env=routerly.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode not in (0, 101), f"exit {done.returncode} (101 is a panic)\n{done.stderr}"
    return done.stderr


@pytest.mark.skipif(SHARED_MODE, reason="hand edits of the config files: the PostgreSQL mode does not read them (`routerly config import` checks such files there)")
def test_hand_edits_beyond_a_bound_are_refused_naming_the_file_and_the_service_restarts(routerly: Routerly):
    limits_path = routerly.home / "config" / "limits.json"
    models_path = routerly.home / "config" / "models.json"
    good_limits = limits_path.read_text()
    good_models = models_path.read_text()
    api = admin_client(routerly)

    # While running: the edit is refused, the last good configuration stays, and API writes
    # answer 503 naming the file until it is fixed.
    bad = {"limits": [{"id": "hand", "scope": "global", "metric": "cost", "window": "rolling:100000000d", "value": 1}]}
    limits_path.write_text(json.dumps(bad))
    answer = api.post("/api/projects", json={"name": "While Broken"})
    assert answer.status_code == 503, answer.text
    assert "config/limits.json" in error_of(answer)["message"], answer.text
    assert api.get("/api/limits").status_code == 200
    assert chat(routerly).http_response.status_code == 200

    # A config file that cannot be read at all (a folder in its place; permissions do not
    # stop root): 503 naming it too.
    limits_path.unlink()
    limits_path.mkdir()
    deadline = time.monotonic() + 5
    while True:
        answer = api.post("/api/projects", json={"name": "While Unreadable"})
        if answer.status_code == 503 and "config/limits.json (it cannot be read)" in error_of(answer)["message"]:
            break
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
    assert chat(routerly).http_response.status_code == 200, "the last good configuration serves"
    limits_path.rmdir()
    limits_path.write_text(json.dumps(bad))
    limits_path.chmod(0o600)  # as Routerly made it (a later test checks the modes)

    # A price beyond the ceiling typed by hand.
    models = json.loads(good_models)
    models["models"][0]["pricing"] = {"input": 1.7e308, "output": 1}
    models_path.write_text(json.dumps(models))
    limits_path.write_text(good_limits)
    deadline = time.monotonic() + 5
    while True:
        answer = api.post("/api/projects", json={"name": "While Broken"})
        if answer.status_code == 503 and "config/models.json" in answer.text:
            break
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)

    # At start: refused with the file and the field, no panic; fixed, it starts again.
    assert routerly.stop() == 0
    stderr = start_fails(routerly)
    assert "models.json" in stderr and "pricing.input" in stderr, stderr
    models_path.write_text(good_models)
    limits_path.write_text(json.dumps(bad))
    stderr = start_fails(routerly)
    assert "limits.json" in stderr and f"at most {MAX_ROLLING_DAYS}d" in stderr, stderr

    # The bounds themselves, typed by hand, are accepted and load.
    at_bounds = {"limits": [{"id": "hand", "scope": "global", "metric": "cost",
                             "window": f"rolling:{MAX_ROLLING_DAYS}d", "value": MAX_LIMIT_VALUE}]}  # fmt: skip
    limits_path.write_text(json.dumps(at_bounds))
    routerly.process, routerly.url = spawn_routerly(routerly.home, routerly.env, routerly.log_path)
    api = admin_client(routerly)
    assert [limit for limit in api.get("/api/limits").json()["limits"]], "the hand-edited limit is listed"
    assert chat(routerly).http_response.status_code == 200
    limits_path.write_text(good_limits)
    restart(routerly)


def test_unsupported_methods_oversized_bodies_and_type_errors(routerly: Routerly):
    api = admin_client(routerly)
    answer = api.request("DELETE", "/api/models")
    assert answer.status_code == 405, answer.text
    assert set(answer.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST", "HEAD"}
    answer = api.put("/api/limits/some-id", json={})
    assert answer.status_code == 405, answer.text
    assert set(answer.headers["allow"].replace(" ", "").split(",")) == {"GET", "PATCH", "DELETE", "HEAD"}

    # Every other surface answers 405 with `Allow` too, never 404 or 500, in its own error shape.
    def openai_shape(body):
        return body["error"]["type"] == "invalid_request_error" and body["error"]["code"] == "method_not_allowed"

    def anthropic_shape(body):
        return body["type"] == "error" and body["error"]["type"] == "invalid_request_error"

    def api_shape(body):
        return body["error"]["code"] == "method_not_allowed"

    for method, path, shape in [
        ("GET", "/v1/chat/completions", openai_shape),
        ("DELETE", "/v1/embeddings", openai_shape),
        ("DELETE", "/v1/messages", anthropic_shape),
        ("GET", "/v1/messages/count_tokens", anthropic_shape),
        ("PUT", "/v1/responses", openai_shape),
        ("POST", "/v1/responses/resp_1", openai_shape),
        ("POST", "/health", api_shape),
        ("DELETE", "/ready", api_shape),
        ("POST", "/metrics", api_shape),
        ("POST", "/dashboard/", api_shape),
    ]:
        answer = httpx.request(method, f"{routerly.url}{path}", headers={"Authorization": f"Bearer {routerly.token}"})
        assert answer.status_code == 405, (method, path, answer.status_code, answer.text[:200])
        assert answer.headers.get("allow"), (method, path, dict(answer.headers))
        assert method not in answer.headers["allow"].replace(" ", "").split(","), (method, path)
        assert shape(answer.json()), (method, path, answer.text)
        assert path in answer.text and method in answer.text, answer.text

    # 413 on the management API and on the proxy.
    huge = {"name": "x" * (3 * 1024 * 1024)}
    answer = api.post("/api/projects", json=huge)
    assert answer.status_code == 413, answer.text[:200]
    answer = httpx.post(
        f"{routerly.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {routerly.token}"},
        content=b'{"model":"auto","messages":[{"role":"user","content":"' + b"x" * (21 * 1024 * 1024) + b'"}]}',
        timeout=60,
    )
    assert answer.status_code == 413, answer.text[:200]

    # A bad query string answers in the API's JSON shape, naming the parameter.
    answer = api.get("/api/limits", params={"bogus": "1"})
    assert answer.status_code == 400 and error_of(answer)["field"] == "bogus", answer.text

    # A nested type error names the nested field.
    answer = api.patch(f"/api/models/{OPENAI_MODEL.id}", json={"timeouts": {"connect_ms": "soon"}})
    assert answer.status_code == 400 and error_of(answer)["field"] == "timeouts.connect_ms", answer.text
    answer = api.post("/api/projects", json={"name": "Typed", "timeouts": {"idle_ms": 0}})
    assert answer.status_code == 400 and error_of(answer)["field"] == "timeouts.idle_ms", answer.text


def test_what_a_client_sends_is_capped_before_a_response_or_a_record(routerly: Routerly):
    long_name = "m" * 200_000
    answer = httpx.post(
        f"{routerly.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {routerly.token}"},
        json={"model": long_name, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert answer.status_code == 404, answer.text[:200]
    assert len(answer.content) < 2048, len(answer.content)
    record = routerly.record_for(answer.headers["x-routerly-trace-id"])
    assert len(json.dumps(record)) < 4096, len(json.dumps(record))

    tags = ",".join([f"t{index}" for index in range(5000)] + ["long-" + "t" * 5000])
    raw = chat(routerly, **{"x-routerly-tags": tags})
    record = routerly.record_for(raw.headers["x-routerly-trace-id"])
    assert record["tags"][:2] == ["t0", "t1"] and len(record["tags"]) == 32, record["tags"]
    raw = chat(routerly, **{"x-routerly-tags": "short," + "l" * 5000})
    record = routerly.record_for(raw.headers["x-routerly-trace-id"])
    assert record["tags"][0] == "short" and len(record["tags"][1]) == 64, record["tags"]
    assert len(json.dumps(record)) < 8192


@pytest.mark.parametrize(
    "host",
    ["[::127.0.0.1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[fec0::1]", "[2001::1]",
     "127.0.0.1", "[::1]", "169.254.169.254", "10.0.0.1"],
)  # fmt: skip
def test_the_webhook_guard_refuses_every_form_of_a_private_address(routerly: Routerly, host: str):
    api = admin_client(routerly)
    answer = api.post("/api/channels", json={"type": "webhook", "url": f"http://{host}/hook"})
    assert answer.status_code == 400, (host, answer.text)
    assert error_of(answer)["field"] == "url", answer.text


def test_data_files_are_private(mock_session):
    # A Routerly of its own: the module's instance holds config files that other tests
    # wrote by hand (an operator's own file keeps the mode it was given).
    with running_routerly(mock_session) as routerly:
        chat(routerly)  # usage, a trace, checkpoints
        api = admin_client(routerly)
        api.get("/api/limits")
        time.sleep(0.5)
        wrong = []
        for path in [routerly.home, *routerly.home.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            expected = 0o700 if path.is_dir() else 0o600
            if mode != expected:
                wrong.append(f"{path.relative_to(routerly.home)}: {mode:04o}")
        assert not wrong, wrong


def test_a_usage_filter_with_a_nul_character_is_refused_in_either_mode(routerly: Routerly):
    """PostgreSQL text cannot hold NUL (schemathesis found a 500 there): both modes answer 400."""
    with admin_client(routerly) as client:
        for path in ("/api/usage/by-model", "/api/usage/summary", "/api/usage"):
            answer = client.get(path, params={"tag": "a\x00b"})
            assert answer.status_code == 400, (path, answer.text)
            assert answer.json()["error"]["field"] == "tag", answer.text


def test_a_body_with_a_nul_character_is_refused_in_either_mode(routerly: Routerly):
    """PostgreSQL's jsonb cannot hold NUL, so a string holding one would pass every check and
    fail as a 500 when the change is stored: every route answers 400 naming where it is, and
    nothing is written."""
    with admin_client(routerly) as client:
        bodies = [
            ("post", "/api/projects", {"name": "nul\x00project"}, "name"),
            ("post", "/api/roles", {"id": "nul-role", "name": "Nul", "permissions": ["project:read", "a\x00"]},
             "permissions[1]"),
            ("post", "/api/users", {"email": "nul@example.com", "password": "long enough pw \x00", "role": "viewer"},
             "password"),
        ]
        for method, path, body, field in bodies:
            answer = client.request(method, path, json=body)
            assert answer.status_code == 400, (path, answer.text)
            error = answer.json()["error"]
            assert error["field"] == field, (path, answer.text)
            assert "NUL" in error["message"], (path, answer.text)
        projects = client.get("/api/projects").json()["projects"]
        assert not any(project["name"].startswith("nul") for project in projects), projects
        assert all(role["id"] != "nul-role" for role in client.get("/api/roles").json()["roles"])
        assert all(user["email"] != "nul@example.com" for user in client.get("/api/users").json()["users"])
        # The same bodies without the NUL are stored, in PostgreSQL too.
        created = client.post("/api/projects", json={"name": "nul-free project"})
        assert created.status_code == 201, created.text
        assert client.delete(f"/api/projects/{created.json()['id']}").status_code == 204
