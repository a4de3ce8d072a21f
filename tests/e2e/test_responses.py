"""The official OpenAI SDK's Responses API through Routerly, to OpenAI (passed through),
Anthropic, Gemini, Mistral and Ollama (through the canonical model), streaming and not.

Each test checks the answer the SDK parsed, the call's usage record (the tokens the SDK saw)
and its cost from the registered prices. `previous_response_id` chains are served from
Routerly's own conversation store (`data/responses/`), whichever provider answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import openai
import pytest

from conftest import SHARED_MODE, MockProviders, Routerly, psql, running_routerly, stop_process
from provider_mocks import AllMocks, start_all_mocks


@dataclass(frozen=True)
class Target:
    name: str  # the model id or alias the client asks for
    model_id: str  # Routerly's model id
    provider: str
    upstream: str
    answers_as: str
    input_price: float
    output_price: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1e6


OPENAI = Target("gpt-4o", "gpt-4o-mini", "openai", "gpt-4o-mini", "openai", 0.15, 0.60)
ANTHROPIC = Target("claude", "claude-sonnet", "anthropic", "claude-sonnet-4-5", "anthropic", 3.0, 15.0)
GEMINI = Target("gemini-flash", "gemini-flash", "gemini", "gemini-2.5-flash", "gemini", 0.30, 2.50)
MISTRAL = Target("mistral-small", "mistral-small", "mistral", "mistral-small-latest", "mistral", 0.10, 0.30)
OLLAMA = Target("local-qwen", "local-qwen", "ollama", "qwen3", "ollama", 1.0, 2.0)
TARGETS = [OPENAI, ANTHROPIC, GEMINI, MISTRAL, OLLAMA]
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}

targets = pytest.mark.parametrize("target", TARGETS, ids=[t.provider for t in TARGETS])
streaming = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


@dataclass
class Setup:
    routerly: Routerly
    mocks: AllMocks


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    process, mocks = start_all_mocks()
    try:
        classic = MockProviders(mocks.url("openai"), mocks.url("anthropic"), mocks.api_key)
        with running_routerly(classic) as routerly:
            for target in (GEMINI, MISTRAL, OLLAMA):
                routerly.cli(
                    "model", "add", "--id", target.model_id, "--provider", target.provider,
                    "--endpoint", mocks.url(target.provider), "--api-key", mocks.api_key,
                    "--upstream-model", target.upstream,
                    "--input-price", str(target.input_price), "--output-price", str(target.output_price),
                )  # fmt: skip
                routerly.cli("project", "model", "add", routerly.project_slug, target.model_id)
            yield Setup(routerly, mocks)
    finally:
        stop_process(process)


def client(setup: Setup) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{setup.routerly.url}/v1", api_key=setup.routerly.token, max_retries=0)


def hello(target: Target, text: str) -> str:
    return f"Hello from mock {target.answers_as} {target.upstream}! You said: {text}"


def check_record(setup: Setup, trace_id: str | None, target: Target, stream: bool, usage) -> dict:
    assert trace_id, "no x-routerly-trace-id header"
    record = setup.routerly.record_for(trace_id)
    expected = {
        "model_id": target.model_id,
        "provider": target.provider,
        "surface": "responses",
        "call_type": "completion",
        "stream": stream,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "outcome": "success",
        "status": 200,
    }
    assert {key: record[key] for key in expected} == expected, record
    assert usage.input_tokens > 0 and usage.output_tokens > 0, usage
    assert record["cost_usd"] == pytest.approx(target.cost(usage.input_tokens, usage.output_tokens), rel=1e-9)
    return record


def create(setup: Setup, stream: bool, **kwargs):
    """`responses.create`, streamed or not: the final response, the trace id, the event types."""
    api = client(setup).responses.with_raw_response
    raw = api.create(stream=stream, **kwargs)
    trace_id = raw.headers.get("x-routerly-trace-id")
    if not stream:
        return raw.parse(), trace_id, []
    events = list(raw.parse())
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events))), numbers
    final = events[-1]
    assert final.type == "response.completed", [event.type for event in events]
    return final.response, trace_id, [event.type for event in events]


@targets
@streaming
def test_text_answer(setup, target, stream):
    response, trace_id, types = create(
        setup, stream, model=target.name, input="Hi there", instructions="Be brief."
    )
    assert response.output_text == hello(target, "Hi there")
    assert response.status == "completed"
    assert response.model == target.model_id
    assert response.id.startswith("resp_")
    if stream:
        expected_order = [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
        ]
        assert types[:5] == expected_order, types
        assert types[-4:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ], types
    check_record(setup, trace_id, target, stream, response.usage)


@targets
def test_stream_helper_final_response(setup, target):
    with client(setup).responses.stream(model=target.name, input="Stream me") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == hello(target, "Stream me")
    assert final.output_text == hello(target, "Stream me")
    assert final.usage.output_tokens == len(hello(target, "Stream me").split())


@targets
@streaming
def test_function_tool_round_trip(setup, target, stream):
    first, trace_id, _ = create(
        setup, stream, model=target.name, input="Weather in Paris?", tools=[WEATHER_TOOL], store=False
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris", "days": 1}
    check_record(setup, trace_id, target, stream, first.usage)
    second, trace_id, _ = create(
        setup,
        stream,
        model=target.name,
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"},
        ],
    )
    assert second.output_text == "Tool result: Sunny, 21 C"
    check_record(setup, trace_id, target, stream, second.usage)


@targets
@streaming
def test_json_schema_output(setup, target, stream):
    response, trace_id, _ = create(
        setup,
        stream,
        model=target.name,
        input="Answer in JSON",
        text={"format": {"type": "json_schema", "name": "answer", "schema": ANSWER_SCHEMA, "strict": True}},
    )
    assert json.loads(response.output_text) == {"answer": "mock"}
    check_record(setup, trace_id, target, stream, response.usage)


@pytest.mark.parametrize(
    "target", [ANTHROPIC, GEMINI, OPENAI, MISTRAL, OLLAMA], ids=["anthropic", "gemini", "openai", "mistral", "ollama"]
)
@streaming
def test_previous_response_id_chain(setup, target, stream):
    first, _, _ = create(setup, stream, model=target.name, input="My name is Ada")
    second, trace_id, _ = create(
        setup, stream, model=target.name, input="What is my name?", previous_response_id=first.id
    )
    assert second.output_text == hello(target, "What is my name?")
    # The provider received the whole conversation: the first turn, its answer, the new turn.
    provider = target.provider  # each provider is served by the mock of the same name
    body = setup.mocks.requests(provider)[-1]["body"]
    sent = json.dumps(body)
    assert "My name is Ada" in sent and hello(target, "My name is Ada") in sent, body
    assert "previous_response_id" not in body
    record = check_record(setup, trace_id, target, stream, second.usage)
    assert record["input_tokens"] > first.usage.input_tokens
    # A third turn continues the second.
    third, _, _ = create(setup, False, model=target.name, input="And again?", previous_response_id=second.id)
    sent = json.dumps(setup.mocks.requests(provider)[-1]["body"])
    assert "My name is Ada" in sent and "What is my name?" in sent
    assert third.output_text == hello(target, "And again?")


def test_chain_crosses_providers(setup):
    first, _, _ = create(setup, False, model=ANTHROPIC.name, input="Remember blue")
    second, _, _ = create(setup, True, model=GEMINI.name, input="Which colour?", previous_response_id=first.id)
    assert second.output_text == hello(GEMINI, "Which colour?")
    sent = json.dumps(setup.mocks.requests("gemini")[-1]["body"])
    assert "Remember blue" in sent


def test_unknown_or_unstored_previous_response_is_a_400(setup):
    with pytest.raises(openai.BadRequestError) as caught:
        client(setup).responses.create(model=ANTHROPIC.name, input="x", previous_response_id="resp_nope")
    assert "resp_nope" in str(caught.value)
    unstored, _, _ = create(setup, False, model=ANTHROPIC.name, input="secret", store=False)
    with pytest.raises(openai.BadRequestError):
        client(setup).responses.create(model=ANTHROPIC.name, input="x", previous_response_id=unstored.id)


def test_conversations_are_stored_under_data_responses(setup):
    response, _, _ = create(setup, False, model=ANTHROPIC.name, input="Store me")
    if SHARED_MODE:  # in PostgreSQL, for every replica
        stored = psql(setup.routerly.database, f"SELECT body::text FROM stored_responses WHERE id = '{response.id}'")
        assert len(stored) == 1 and "Store me" in stored[0], stored
        return
    stored = setup.routerly.home / "data" / "responses" / f"{response.id}.json"
    assert stored.exists()
    assert "Store me" in stored.read_text()


def test_hosted_tools_a_non_openai_model_cannot_run_are_left_out_and_named(setup):
    raw = client(setup).responses.with_raw_response.create(
        model=ANTHROPIC.name, input="Run it", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}]
    )
    assert raw.headers.get("x-routerly-dropped") == "tools[0] (code_interpreter)"
    response = raw.parse()
    assert response.output_text
    body = setup.mocks.requests("anthropic")[-1]["body"]
    assert "tools" not in body, body


def test_hosted_web_search_runs_as_anthropics_own_search_tool(setup):
    raw = client(setup).responses.with_raw_response.create(
        model=ANTHROPIC.name, input="Search", tools=[{"type": "web_search_preview"}]
    )
    assert raw.headers.get("x-routerly-dropped") is None
    assert raw.parse().output_text
    body = setup.mocks.requests("anthropic")[-1]["body"]
    assert body["tools"] == [{"type": "web_search_20250305", "name": "web_search"}], body


@pytest.mark.parametrize("target", [OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
def test_stored_responses_are_retrieved_listed_and_deleted(setup, target):
    sdk = client(setup)
    created, _, _ = create(setup, False, model=target.name, input="Keep me", instructions="Be brief.")
    retrieved = sdk.responses.retrieve(created.id)
    assert retrieved.id == created.id
    assert retrieved.output_text == created.output_text
    assert retrieved.instructions == "Be brief."
    items = sdk.responses.input_items.list(created.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "Keep me"
    sdk.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete(created.id)


def test_openai_models_get_the_body_passed_through(setup):
    response, _, _ = create(
        setup, False, model=OPENAI.name, input="Pass me", metadata={"k": "v"}, truncation="disabled"
    )
    body = setup.mocks.requests("openai")[-1]["body"]
    assert setup.mocks.requests("openai")[-1]["path"] == "/v1/responses"
    assert body["model"] == OPENAI.upstream and body["metadata"] == {"k": "v"}
    assert response.metadata == {"k": "v"}


def test_invalid_input_is_rejected_in_openai_shape(setup):
    with pytest.raises(openai.BadRequestError) as caught:
        client(setup).responses.create(model=ANTHROPIC.name, input=[{"role": "robot", "content": "x"}])
    assert caught.value.param == "input[0].role"


@pytest.mark.parametrize(
    ("target", "method"), [(OPENAI, "tokenizer"), (ANTHROPIC, "provider"), (GEMINI, "estimate")],
    ids=["openai", "anthropic", "gemini"],
)  # fmt: skip
def test_count_tokens_says_how_it_counted(setup, target, method):
    import httpx

    response = httpx.post(
        f"{setup.routerly.url}/v1/messages/count_tokens",
        headers={"x-api-key": setup.routerly.token, "anthropic-version": "2023-06-01"},
        json={"model": target.name, "messages": [{"role": "user", "content": "hello world"}]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-routerly-token-count"] == method
    counted = response.json()["input_tokens"]
    if method == "tokenizer":
        assert counted == 8  # 2 tokens of text (o200k_base), 3 for the message, 3 for the reply
    assert counted > 0
