"""The one log line per request: JSON when asked, with the request id the client saw, the
call's figures, and no secret. Lines are batched by a log thread, so they are read after
the service stops (which writes what is left)."""

from __future__ import annotations

import json

import openai

from conftest import OPENAI_MODEL, Routerly, hello, spawn_routerly


def restart_with(routerly: Routerly, **env: str) -> None:
    routerly.stop()
    routerly.env.update(env)
    routerly.process, routerly.url = spawn_routerly(routerly.home, routerly.env, routerly.log_path)


def request_lines(routerly: Routerly, start: int) -> list[dict]:
    text = routerly.log_path.read_bytes()[start:].decode()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("target") == "routerly::request"]


def test_each_request_leaves_one_json_line_with_its_request_id_and_no_secret(routerly: Routerly):
    start = routerly.log_path.stat().st_size
    restart_with(routerly, ROUTERLY_LOG="info", ROUTERLY_LOG_FORMAT="json")
    client = openai.OpenAI(base_url=f"{routerly.url}/v1", api_key=routerly.token, max_retries=0)
    trace_ids = []
    for index in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model=OPENAI_MODEL.id, messages=[{"role": "user", "content": hello(OPENAI_MODEL, f"log {index}")}]
        )
        trace_ids.append(raw.headers["x-routerly-trace-id"])
    with client.chat.completions.with_streaming_response.create(
        model=OPENAI_MODEL.id, messages=[{"role": "user", "content": "stream it"}], stream=True
    ) as streamed:
        trace_ids.append(streamed.headers["x-routerly-trace-id"])
        for _ in streamed.iter_lines():
            pass
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("an unknown model is refused")
    except openai.APIStatusError as error:
        refused_status = error.status_code
        trace_ids.append(error.response.headers["x-routerly-trace-id"])
    assert routerly.stop() == 0

    lines = request_lines(routerly, start)
    assert [line["request_id"] for line in lines] == trace_ids, lines
    for line in lines[:4]:
        assert line["level"] == "INFO" and line["message"] == "request"
        assert line["outcome"] == "success" and line["status"] == 200
        assert line["model"] == OPENAI_MODEL.id and line["provider"] == "openai"
        assert line["project"] == routerly.project_id and line["token"] == routerly.token_id
        assert line["input_tokens"] > 0 and line["output_tokens"] > 0 and line["cost_usd"] > 0
        assert line["latency_ms"] >= line["overhead_ms"] >= 0
        assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    assert [line["stream"] for line in lines[:4]] == [False, False, False, True]
    assert "ttft_ms" in lines[3]
    assert lines[4]["outcome"] == "error" and lines[4]["status"] == refused_status
    text = routerly.log_path.read_text()
    assert routerly.token not in text and "sk-lr-" not in text


def test_the_text_layout_is_one_line_per_request_too(routerly: Routerly):
    restart_with(routerly, ROUTERLY_LOG="info", ROUTERLY_LOG_FORMAT="text")
    start = routerly.log_path.stat().st_size
    client = openai.OpenAI(base_url=f"{routerly.url}/v1", api_key=routerly.token, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=OPENAI_MODEL.id, messages=[{"role": "user", "content": "plain text log"}]
    )
    assert routerly.stop() == 0
    lines = [
        line
        for line in routerly.log_path.read_bytes()[start:].decode().splitlines()
        if " INFO routerly::request: request " in line
    ]
    assert len(lines) == 1, lines
    assert f"request_id={raw.headers['x-routerly-trace-id']} " in lines[0]
    assert f'model="{OPENAI_MODEL.id}"' in lines[0] and "status=200" in lines[0]
