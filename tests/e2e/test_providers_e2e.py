"""The official OpenAI and Anthropic SDKs through Routerly to every new provider family:
Gemini, Mistral, Ollama, Azure OpenAI and a catalogue preset (Groq, on the OpenAI mock).

Each family is registered with `routerly model add` and, where the catalogue knows the model,
without prices: the catalogue fills them, and the recorded cost proves it. Every combination of
client surface, family and streaming is checked for the parsed answer, the usage record and its
cost, with a tool round trip in each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import anthropic
import openai
import pytest

from conftest import MockProviders, Routerly, running_routerly, stop_process
from provider_mocks import AllMocks, start_all_mocks, tokens


@dataclass(frozen=True)
class Family:
    """A provider family as registered for these tests."""

    model_id: str
    provider: str  # Routerly's provider name
    mock: str  # which mock serves it
    upstream: str  # the provider's model name (Azure: the deployment)
    answers_as: str  # the provider name in the mock's answers
    input_price: float  # what the record must be priced at (catalogue or given)
    output_price: float
    given_prices: bool = False  # prices passed to `model add` (the catalogue has none)

    def hello(self, text: str) -> str:
        return f"Hello from mock {self.answers_as} {self.upstream}! You said: {text}"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_price + output_tokens * self.output_price) / 1e6


FAMILIES = [
    # Catalogue prices: gemini-2.5-flash 0.30/2.50, mistral-small-latest 0.10/0.30, gpt-4o
    # (Azure prices like OpenAI) 2.50/10, llama-3.3-70b-versatile on Groq 0.59/0.79.
    Family("gemini-flash", "gemini", "gemini", "gemini-2.5-flash", "gemini", 0.30, 2.50),
    Family("mistral-small", "mistral", "mistral", "mistral-small-latest", "mistral", 0.10, 0.30),
    Family("local-qwen", "ollama", "ollama", "qwen3", "ollama", 1.0, 2.0, given_prices=True),
    Family("azure-4o", "azure", "azure", "gpt-4o", "azure", 2.50, 10.0),
    Family("groq-llama", "groq", "openai", "llama-3.3-70b-versatile", "openai", 0.59, 0.79),
]
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}
WEATHER_ARGS = {"city": "Paris", "days": 1}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]


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
            for family in FAMILIES:
                args = [
                    "model", "add", "--id", family.model_id, "--provider", family.provider,
                    "--endpoint", mocks.url(family.mock), "--api-key", mocks.api_key,
                    "--upstream-model", family.upstream,
                ]  # fmt: skip
                if family.given_prices:
                    args += ["--input-price", str(family.input_price), "--output-price", str(family.output_price)]
                routerly.cli(*args)
                routerly.cli("project", "model", "add", routerly.project_slug, family.model_id)
            yield Setup(routerly, mocks)
    finally:
        stop_process(process)


def openai_client(setup: Setup) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{setup.routerly.url}/v1", api_key=setup.routerly.token, max_retries=0)


def anthropic_client(setup: Setup) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=setup.routerly.url, api_key=setup.routerly.token, max_retries=0)


def check_record(setup: Setup, trace_id: str | None, family: Family, surface: str, stream: bool,
                 input_tokens: int, output_tokens: int) -> None:  # fmt: skip
    """The call's usage record names the family's model and holds the catalogue-priced cost."""
    assert trace_id, "the answer carries no x-routerly-trace-id header"
    record = setup.routerly.record_for(trace_id)
    expected = {
        "model_id": family.model_id,
        "provider": family.provider,
        "surface": surface,
        "stream": stream,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "outcome": "success",
        "status": 200,
    }
    assert {key: record[key] for key in expected} == expected, record
    assert record["cost_usd"] == pytest.approx(family.cost(input_tokens, output_tokens), rel=1e-9), record


def test_catalogue_filled_prices_context_and_capabilities(setup):
    models = {model["id"]: model for model in setup.routerly.cli_json("model", "list", "--json")}
    gemini = models["gemini-flash"]
    assert gemini["pricing"]["input"] == 0.30 and gemini["pricing"]["cached_input"] == 0.03, gemini
    assert gemini["context_window"] == 1048576 and gemini["capabilities"]["thinking"] is True, gemini
    assert models["local-qwen"]["pricing"]["input"] == 1.0, "given prices override the catalogue"
    assert models["azure-4o"].get("api_version") is None, "absent means the default api-version"


# ---- the OpenAI SDK ----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("family", FAMILIES, ids=[family.provider for family in FAMILIES])
def test_openai_sdk_chat(setup, family, stream):
    client = openai_client(setup)
    question = "Hello there"
    raw = client.chat.completions.with_raw_response.create(
        model=family.model_id,
        messages=[{"role": "user", "content": question}],
        stream=stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )
    trace_id = raw.headers.get("x-routerly-trace-id")
    assert raw.headers.get("x-routerly-model") == family.model_id
    if stream:
        chunks = list(raw.parse())
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        usage = chunks[-1].usage
    else:
        completion = raw.parse()
        text = completion.choices[0].message.content
        usage = completion.usage
    assert text == family.hello(question)
    assert usage.prompt_tokens == tokens(len(question))
    assert usage.completion_tokens == len(text.split())
    check_record(setup, trace_id, family, "chat_completions", stream, usage.prompt_tokens, usage.completion_tokens)


def openai_turn(client: openai.OpenAI, family: Family, messages: list, stream: bool):
    """One turn: the trace id, the assistant message as a dict, the finish reason and usage."""
    raw = client.chat.completions.with_raw_response.create(
        model=family.model_id,
        messages=messages,
        tools=OPENAI_TOOLS,
        stream=stream,
        **({"stream_options": {"include_usage": True}} if stream else {}),
    )
    trace_id = raw.headers.get("x-routerly-trace-id")
    if not stream:
        completion = raw.parse()
        message = completion.choices[0].message.model_dump(exclude_none=True)
        return trace_id, message, completion.choices[0].finish_reason, completion.usage
    content, calls, finish, usage = "", {}, None, None
    for chunk in raw.parse():
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
            entry["id"] = call.id or entry["id"]
            if call.function:
                entry["function"]["name"] += call.function.name or ""
                entry["function"]["arguments"] += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    message = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    return trace_id, message, finish, usage


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("family", FAMILIES, ids=[family.provider for family in FAMILIES])
def test_openai_sdk_tool_round_trip(setup, family, stream):
    client = openai_client(setup)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    trace_id, message, finish, usage = openai_turn(client, family, messages, stream)
    assert finish == "tool_calls"
    call = message["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGS
    assert call["id"], "every tool call reaches the client with an id"
    assert usage.completion_tokens == 10
    check_record(setup, trace_id, family, "chat_completions", stream, usage.prompt_tokens, 10)

    messages.append(message)
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21C"})
    trace_id, message, finish, usage = openai_turn(client, family, messages, stream)
    assert message["content"] == "Tool result: Sunny, 21C"
    assert finish == "stop"
    check_record(setup, trace_id, family, "chat_completions", stream, usage.prompt_tokens, 4)


# ---- the Anthropic SDK -------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("family", FAMILIES, ids=[family.provider for family in FAMILIES])
def test_anthropic_sdk_messages(setup, family, stream):
    client = anthropic_client(setup)
    question = "Hello there"
    kwargs = dict(model=family.model_id, max_tokens=256, messages=[{"role": "user", "content": question}])
    if stream:
        with client.messages.stream(**kwargs) as message_stream:
            text = "".join(message_stream.text_stream)
            message = message_stream.get_final_message()
            trace_id = message_stream.response.headers.get("x-routerly-trace-id")
    else:
        raw = client.messages.with_raw_response.create(**kwargs)
        trace_id = raw.headers.get("x-routerly-trace-id")
        message = raw.parse()
        text = message.content[0].text
    assert text == family.hello(question)
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == tokens(len(question))
    assert message.usage.output_tokens == len(text.split())
    check_record(setup, trace_id, family, "messages", stream, message.usage.input_tokens, message.usage.output_tokens)


def anthropic_turn(client: anthropic.Anthropic, family: Family, messages: list, stream: bool):
    kwargs = dict(model=family.model_id, max_tokens=256, messages=messages, tools=ANTHROPIC_TOOLS)
    if stream:
        with client.messages.stream(**kwargs) as message_stream:
            message = message_stream.get_final_message()
            return message_stream.response.headers.get("x-routerly-trace-id"), message
    raw = client.messages.with_raw_response.create(**kwargs)
    return raw.headers.get("x-routerly-trace-id"), raw.parse()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("family", FAMILIES, ids=[family.provider for family in FAMILIES])
def test_anthropic_sdk_tool_round_trip(setup, family, stream):
    client = anthropic_client(setup)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    trace_id, first = anthropic_turn(client, family, messages, stream)
    assert first.stop_reason == "tool_use"
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert tool_use.name == "get_weather" and tool_use.input == WEATHER_ARGS
    assert first.usage.output_tokens == 10
    check_record(setup, trace_id, family, "messages", stream, first.usage.input_tokens, 10)

    messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny, 21C"}]})
    trace_id, second = anthropic_turn(client, family, messages, stream)
    assert second.content[0].text == "Tool result: Sunny, 21C"
    assert second.stop_reason == "end_turn"
    check_record(setup, trace_id, family, "messages", stream, second.usage.input_tokens, 4)


# ---- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES, ids=[family.provider for family in FAMILIES])
def test_a_provider_429_is_a_429(setup, family):
    """Every family's rate limit reaches the client as a 429; `retry-after` comes along when
    the provider gave one (a header, or Gemini's `RetryInfo` in the body). The token may use
    this one model only, so no fallback hides the provider's answer."""
    routerly = setup.routerly
    created = routerly.cli_json(
        "project", "token", "create", routerly.project_slug, "--models", family.model_id, "--json"
    )
    client = openai.OpenAI(base_url=f"{routerly.url}/v1", api_key=created["token"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(
            model=family.model_id, messages=[{"role": "user", "content": "hi [mock:status=429]"}]
        )
    retry_after = limited.value.response.headers.get("retry-after")
    if family.provider in ("gemini", "azure", "groq"):
        assert retry_after == "1", limited.value.response.headers
    else:
        assert retry_after is None


def test_ollama_refuses_image_urls_with_a_clear_400(setup):
    client = openai_client(setup)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="local-qwen",
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ]}],
        )  # fmt: skip
    message = str(refused.value)
    assert "base64" in message and "qwen3" in message, message
