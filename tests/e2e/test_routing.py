"""Routing through the real binary: `routerly project routing …` shapes a project's policies
(`--json` output parsed, unknown types and bad parameters refused naming them), and a call
that falls back once leaves a trace readable at `GET /api/traces/{id}`, linked from its usage
record and named by `x-routerly-trace-id`."""

from __future__ import annotations

import subprocess

import httpx

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, ANTHROPIC_MODEL, OPENAI_MODEL, Routerly, find_binary


def fails(routerly: Routerly, *args: str) -> str:
    binary = find_binary("ROUTERLY_BIN", "target/debug/routerly")
    done = subprocess.run([str(binary), *args], env=routerly.env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0, f"`routerly {' '.join(args)}` should fail\n{done.stdout}"
    return done.stderr


def policy_types(routerly: Routerly) -> list[tuple[str, bool]]:
    policies = routerly.cli_json("project", "routing", "policy", "list", "my-app", "--json")
    return [(policy["type"], policy["enabled"]) for policy in policies]


def test_policies_are_shaped_through_the_cli(routerly: Routerly) -> None:
    assert routerly.cli_json("project", "routing", "policy", "list", "my-app", "--json") == []
    shown = routerly.cli_json("project", "routing", "show", "my-app", "--json")
    assert shown == {"policies": [], "retries": 1}, "retries default to 1"

    routerly.cli("project", "routing", "policy", "enable", "my-app", "cheapest")
    routerly.cli(
        "project", "routing", "policy", "enable", "my-app", "health", "--config", '{"circuitBreaker": 0.5}'
    )  # fmt: skip
    policies = routerly.cli_json("project", "routing", "policy", "list", "my-app", "--json")
    assert [policy["type"] for policy in policies] == ["cheapest", "health"]
    assert policies[1]["config"] == {
        "windowMinutes": 20.0,
        "halfLifeMinutes": 5.0,
        "pseudoCounts": 2.0,
        "circuitBreaker": 0.5,
        "cooldownSeconds": 30.0,
    }, "defaults are filled in around the given key"

    routerly.cli("project", "routing", "policy", "reorder", "my-app", "health,cheapest")
    assert policy_types(routerly) == [("health", True), ("cheapest", True)]
    routerly.cli("project", "routing", "policy", "disable", "my-app", "health")
    assert policy_types(routerly) == [("health", False), ("cheapest", True)]

    assert "unknown policy type `cheapst`" in fails(routerly, "project", "routing", "policy", "enable", "my-app", "cheapst")
    error = fails(
        routerly, "project", "routing", "policy", "enable", "my-app", "fairness", "--config", '{"windowMinute": 5}'
    )  # fmt: skip
    assert "windowMinute" in error, error
    error = fails(routerly, "project", "routing", "policy", "enable", "my-app", "rate-limit")
    assert "maxCallsPerWindow" in error, error
    assert "unknown policy type `nope`" in fails(routerly, "project", "routing", "policy", "reorder", "my-app", "nope")
    assert policy_types(routerly) == [("health", False), ("cheapest", True)], "refused changes change nothing"


def test_a_call_that_fell_back_once_has_its_trace_in_the_api(routerly: Routerly) -> None:
    routerly.cli("project", "routing", "set-retries", "my-app", "0")
    routerly.cli("project", "routing", "policy", "enable", "my-app", "cheapest")
    # gpt-4o-mini is far cheaper than claude-sonnet, so it ranks first; make it fail once.
    routerly.mock.fail_next("openai", 1, 500)
    response = httpx.post(
        f"{routerly.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {routerly.token}"},
        json={"model": "auto", "messages": [{"role": "user", "content": "route me"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-routerly-model"] == ANTHROPIC_MODEL.id
    trace_id = response.headers["x-routerly-trace-id"]
    assert trace_id not in response.text, "the trace never enters the model's output"

    login = httpx.post(
        f"{routerly.url}/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=10
    )
    login.raise_for_status()
    token = login.json()["access_token"]
    answer = httpx.get(f"{routerly.url}/api/traces/{trace_id}", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    trace = answer.json()
    assert trace["id"] == trace_id
    assert [entry["model"] for entry in trace["ranking"]] == [OPENAI_MODEL.id, ANTHROPIC_MODEL.id]
    assert [(attempt["model"], attempt["outcome"]) for attempt in trace["attempts"]] == [
        (OPENAI_MODEL.id, "failed"),
        (ANTHROPIC_MODEL.id, "success"),
    ]
    assert trace["attempts"][0]["status"] == 500
    assert trace["policies"][0]["type"] == "cheapest" and trace["policies"][0]["status"] == "weighted"
    record = routerly.record_for(trace_id)
    assert record["model_id"] == ANTHROPIC_MODEL.id
    assert [attempt["model_id"] for attempt in record["attempts"]] == [OPENAI_MODEL.id]
    missing = httpx.get(
        f"{routerly.url}/api/traces/00000000-0000-7000-8000-000000000000",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert missing.status_code == 404
