"""The official OpenAI and Anthropic SDKs, unmodified, talking to the real `routerly` binary.

Routerly runs on port 0 with a fresh home, configured through the CLI as the README's quick
start does, in front of `routerly-mock` (both providers). Each test checks three things: the
answer the SDK parsed, the one usage record the call left (tokens as the mock's deterministic
token rule predicts), and its cost from the prices the fixture registered.
"""

from __future__ import annotations

import json
import time

import anthropic
import openai
import pytest

from conftest import (
    ANTHROPIC_MODEL,
    MODELS,
    OPENAI_MODEL,
    ModelSpec,
    Routerly,
    compact,
    hello,
    tokens,
    utf8_len,
    words,
)

# A 1x1 transparent PNG.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
IMAGE_URL = "https://example.com/cat.png"  # never fetched: providers receive the URL itself
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"}},
    "required": ["city"],
}
WEATHER_ARGUMENTS = {"city": "Paris", "days": 1, "metric": True}  # the mock's rule for this schema
OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
SYSTEM = "Be brief."
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
TOOL_CALL_OUTPUT_TOKENS = 10  # the mock's rule for an answer that calls a tool

model_ids = pytest.mark.parametrize("model", MODELS, ids=[model.provider for model in MODELS])
streaming = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


# ---- the mock's rules, restated ----------------------------------------------------------


def _text_bytes(content) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return utf8_len(content)
    return sum(utf8_len(part.get("text", "")) for part in content if part.get("type") == "text")


def forwarded_input_tokens(provider: str, body: dict) -> int:
    """The mock's input-token count of a request body as Routerly forwarded it."""
    counted = 0
    if provider == "openai":
        for message in body["messages"]:
            counted += _text_bytes(message.get("content"))
            for call in message.get("tool_calls") or []:
                counted += utf8_len(call["function"]["arguments"])
    else:
        system = body.get("system")
        counted += _text_bytes(system) if system is not None else 0
        for message in body["messages"]:
            content = message["content"]
            if isinstance(content, str):
                counted += utf8_len(content)
                continue
            for block in content:
                if block["type"] == "text":
                    counted += utf8_len(block["text"])
                elif block["type"] == "tool_use":
                    counted += utf8_len(compact(block["input"]))
                elif block["type"] == "tool_result":
                    counted += _text_bytes(block.get("content"))
    if body.get("tools"):
        counted += utf8_len(compact(body["tools"]))
    return tokens(counted)


def last_forwarded(routerly: Routerly, model: ModelSpec) -> dict:
    """The last chat request body the mock of `model`'s provider received from Routerly."""
    path = "/v1/chat/completions" if model.provider == "openai" else "/v1/messages"
    bodies = [request["body"] for request in routerly.mock.requests(model.provider) if request["path"] == path]
    assert bodies, f"the {model.provider} mock received no request"
    return bodies[-1]


# ---- checking a call ---------------------------------------------------------------------


def check_record(
    routerly: Routerly,
    trace_id: str | None,
    model: ModelSpec,
    surface: str,
    stream: bool,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    outcome: str = "success",
    status: int = 200,
) -> dict:
    """The call's one usage record holds these values and the cost the prices give."""
    assert trace_id, "the answer carries no x-routerly-trace-id header"
    record = routerly.record_for(trace_id)
    expected = {
        "project_id": routerly.project_id,
        "token_id": routerly.token_id,
        "model_id": model.id,
        "provider": model.provider,
        "surface": surface,
        "call_type": "completion",
        "stream": stream,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_input_tokens": cached_tokens,
        "cache_write_tokens": 0,
        "outcome": outcome,
        "status": status,
    }
    assert {key: record[key] for key in expected} == expected, record
    cost = model.cost(input_tokens, output_tokens, cached_tokens)
    assert record["cost_usd"] == pytest.approx(cost, rel=1e-9, abs=1e-15), record
    assert record["input_cost_usd"] + record["output_cost_usd"] == pytest.approx(record["cost_usd"], rel=1e-9)
    assert record["output_cost_usd"] == pytest.approx(output_tokens * model.output_price / 1e6, rel=1e-9)
    assert record["latency_ms"] > 0 and record["overhead_ms"] >= 0, record
    if stream and outcome == "success":
        assert record["ttft_ms"] is not None and record["ttft_ms"] <= record["latency_ms"], record
    return record


@pytest.fixture(scope="module")
def oai(routerly) -> openai.OpenAI:
    return openai.OpenAI(base_url=routerly.url + "/v1", api_key=routerly.token, max_retries=0)


@pytest.fixture(scope="module")
def claude(routerly) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=routerly.url, api_key=routerly.token, max_retries=0)


@pytest.fixture(scope="module")
def claude_bearer(routerly, monkeypatch_module) -> anthropic.Anthropic:
    """The Anthropic SDK sending the token as `Authorization: Bearer` (`auth_token=`)."""
    monkeypatch_module.delenv("ANTHROPIC_API_KEY", raising=False)
    return anthropic.Anthropic(base_url=routerly.url, auth_token=routerly.token, max_retries=0)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def openai_chat(oai: openai.OpenAI, stream: bool, **params):
    """(text, finish_reason, usage, tool_calls, trace id, model field) of one chat completion."""
    raw = oai.chat.completions.with_raw_response.create(stream=stream, **params)
    trace_id = raw.headers.get("x-routerly-trace-id")
    assert raw.headers.get("x-routerly-model"), dict(raw.headers)
    if not stream:
        completion = raw.parse()
        choice = completion.choices[0]
        return (
            choice.message.content,
            choice.finish_reason,
            completion.usage,
            choice.message.tool_calls,
            trace_id,
            completion.model,
        )
    text, finish, usage, model_field = "", None, None, None
    calls: dict[int, dict] = {}
    for chunk in raw.parse():
        model_field = chunk.model
        if chunk.usage is not None:
            assert usage is None, "two usage chunks"
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += (call.function.name or "") if call.function else ""
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
    return text, finish, usage, [calls[index] for index in sorted(calls)], trace_id, model_field


def anthropic_message(client: anthropic.Anthropic, stream: bool, **params):
    """(message, trace id) of one Messages call; streams are assembled by the SDK."""
    if not stream:
        raw = client.messages.with_raw_response.create(**params)
        return raw.parse(), raw.headers.get("x-routerly-trace-id")
    with client.messages.stream(**params) as message_stream:
        streamed_text = "".join(message_stream.text_stream)
        message = message_stream.get_final_message()
        trace_id = message_stream.response.headers.get("x-routerly-trace-id")
    assert streamed_text == "".join(block.text for block in message.content if block.type == "text")
    return message, trace_id


# ---- plain answers: both SDKs, both providers, whole and streamed -------------------------


@model_ids
@streaming
def test_openai_sdk_answers_from_each_provider(routerly, oai, model, stream):
    cached = 3
    question = f"What is the capital of France? [mock:cached={cached}]"
    extra = {"stream_options": {"include_usage": True}} if stream else {}
    text, finish, usage, _, trace_id, model_field = openai_chat(
        oai,
        stream,
        model=model.id,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
        **extra,
    )
    assert text == hello(model, question)
    assert finish == "stop"
    assert model_field == model.id
    input_tokens, output_tokens = tokens(utf8_len(SYSTEM, question)), words(text)
    assert (usage.prompt_tokens, usage.completion_tokens) == (input_tokens, output_tokens)
    assert usage.total_tokens == input_tokens + output_tokens
    assert usage.prompt_tokens_details.cached_tokens == cached
    check_record(routerly, trace_id, model, "chat_completions", stream, input_tokens, output_tokens, cached)


@model_ids
@streaming
def test_anthropic_sdk_answers_from_each_provider(routerly, claude, model, stream):
    cached = 2
    question = f"Name a famous bridge. [mock:cached={cached}]"
    message, trace_id = anthropic_message(
        claude,
        stream,
        model=model.id,
        max_tokens=256,
        system=SYSTEM,
        messages=[{"role": "user", "content": question}],
    )
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == hello(model, question)
    assert message.stop_reason == "end_turn"
    assert message.model == model.id
    input_tokens, output_tokens = tokens(utf8_len(SYSTEM, question)), words(message.content[0].text)
    # Anthropic's input_tokens leaves out the tokens read from cache.
    assert message.usage.input_tokens == input_tokens - cached
    assert message.usage.cache_read_input_tokens == cached
    assert message.usage.output_tokens == output_tokens
    check_record(routerly, trace_id, model, "messages", stream, input_tokens, output_tokens, cached)


@model_ids
@streaming
def test_anthropic_sdk_with_a_bearer_token(routerly, claude_bearer, model, stream):
    question = "Hello over Bearer"
    message, trace_id = anthropic_message(
        claude_bearer, stream, model=model.id, max_tokens=64, messages=[{"role": "user", "content": question}]
    )
    assert message.content[0].text == hello(model, question)
    answer = message.content[0].text
    check_record(routerly, trace_id, model, "messages", stream, tokens(utf8_len(question)), words(answer))


def test_openai_stream_without_include_usage_has_no_usage_chunk_but_a_full_record(routerly, oai):
    # Routerly asks the provider for usage in the stream and strips it again.
    question = "No usage chunk please"
    text, finish, usage, _, trace_id, _ = openai_chat(
        oai, True, model=OPENAI_MODEL.id, messages=[{"role": "user", "content": question}]
    )
    assert text == hello(OPENAI_MODEL, question) and finish == "stop"
    assert usage is None
    assert last_forwarded(routerly, OPENAI_MODEL)["stream_options"] == {"include_usage": True}
    check_record(routerly, trace_id, OPENAI_MODEL, "chat_completions", True, tokens(utf8_len(question)), words(text))


@pytest.mark.parametrize("name", ["alias", "auto"])
def test_aliases_and_auto_name_the_model_that_served(routerly, oai, claude, name):
    question = "Who answers?"
    if name == "alias":
        model, requested = ANTHROPIC_MODEL, ANTHROPIC_MODEL.alias
    else:
        model, requested = OPENAI_MODEL, "auto"  # the project's first model
    raw = oai.chat.completions.with_raw_response.create(
        model=requested, messages=[{"role": "user", "content": question}]
    )
    completion = raw.parse()
    assert raw.headers["x-routerly-model"] == model.id
    assert completion.model == model.id
    assert completion.choices[0].message.content == hello(model, question)
    check_record(
        routerly,
        raw.headers["x-routerly-trace-id"],
        model,
        "chat_completions",
        False,
        tokens(utf8_len(question)),
        completion.usage.completion_tokens,
    )
    message = claude.messages.create(
        model=OPENAI_MODEL.alias, max_tokens=64, messages=[{"role": "user", "content": question}]
    )
    assert message.model == OPENAI_MODEL.id
    assert message.content[0].text == hello(OPENAI_MODEL, question)


# ---- tool calls: call, send the result back, get the final text ----------------------------


@model_ids
@streaming
def test_openai_sdk_tool_call_round_trip(routerly, oai, model, stream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    text, finish, usage, calls, trace_id, _ = openai_chat(
        oai, stream, model=model.id, messages=messages, tools=OPENAI_TOOLS
    )
    assert finish == "tool_calls"
    assert not text
    assert len(calls) == 1
    if stream:
        call = calls[0]
    else:
        call = {"id": calls[0].id, "name": calls[0].function.name, "arguments": calls[0].function.arguments}
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == WEATHER_ARGUMENTS
    assert call["id"].startswith("call_" if model.provider == "openai" else "toolu_"), call
    input_tokens = forwarded_input_tokens(model.provider, last_forwarded(routerly, model))
    assert input_tokens > tokens(utf8_len(messages[0]["content"])), "the tools are counted"
    if not stream:
        assert (usage.prompt_tokens, usage.completion_tokens) == (input_tokens, TOOL_CALL_OUTPUT_TOKENS)
    check_record(routerly, trace_id, model, "chat_completions", stream, input_tokens, TOOL_CALL_OUTPUT_TOKENS)

    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21C"})
    text, finish, usage, calls, trace_id, _ = openai_chat(
        oai, stream, model=model.id, messages=messages, tools=OPENAI_TOOLS
    )
    assert text == "Tool result: Sunny, 21C"
    assert finish == "stop"
    assert not calls
    forwarded = last_forwarded(routerly, model)
    input_tokens = forwarded_input_tokens(model.provider, forwarded)
    assert "Sunny, 21C" in json.dumps(forwarded["messages"]), forwarded
    check_record(routerly, trace_id, model, "chat_completions", stream, input_tokens, words(text))


@model_ids
@streaming
def test_anthropic_sdk_tool_use_round_trip(routerly, claude, model, stream):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    message, trace_id = anthropic_message(
        claude, stream, model=model.id, max_tokens=256, messages=messages, tools=ANTHROPIC_TOOLS
    )
    assert message.stop_reason == "tool_use"
    tool_uses = [block for block in message.content if block.type == "tool_use"]
    assert len(tool_uses) == 1, message
    tool_use = tool_uses[0]
    assert tool_use.name == "get_weather"
    assert tool_use.input == WEATHER_ARGUMENTS
    input_tokens = forwarded_input_tokens(model.provider, last_forwarded(routerly, model))
    assert message.usage.input_tokens == input_tokens
    assert message.usage.output_tokens == TOOL_CALL_OUTPUT_TOKENS
    check_record(routerly, trace_id, model, "messages", stream, input_tokens, TOOL_CALL_OUTPUT_TOKENS)

    assistant_blocks = [block.model_dump(exclude_none=True) for block in message.content]
    messages.append({"role": "assistant", "content": assistant_blocks})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Rainy, 12C"}]}
    )
    message, trace_id = anthropic_message(
        claude, stream, model=model.id, max_tokens=256, messages=messages, tools=ANTHROPIC_TOOLS
    )
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Tool result: Rainy, 12C"
    input_tokens = forwarded_input_tokens(model.provider, last_forwarded(routerly, model))
    assert message.usage.input_tokens == input_tokens
    check_record(routerly, trace_id, model, "messages", stream, input_tokens, words(message.content[0].text))


# ---- images ------------------------------------------------------------------------------

image_kinds = pytest.mark.parametrize("kind", ["base64", "url"])


@model_ids
@image_kinds
def test_openai_sdk_image(routerly, oai, model, kind):
    url = f"data:image/png;base64,{PNG_BASE64}" if kind == "base64" else IMAGE_URL
    question = "What is in this picture?"
    text, finish, usage, _, trace_id, _ = openai_chat(
        oai,
        False,
        model=model.id,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": url}}],
            }
        ],
    )
    assert text == "I see 1 image(s)."
    assert usage.prompt_tokens == tokens(utf8_len(question))  # the mock counts images as 0
    forwarded = json.dumps(last_forwarded(routerly, model))
    assert (PNG_BASE64 if kind == "base64" else IMAGE_URL) in forwarded
    check_record(routerly, trace_id, model, "chat_completions", False, tokens(utf8_len(question)), words(text))


@model_ids
@image_kinds
def test_anthropic_sdk_image(routerly, claude, model, kind):
    if kind == "base64":
        source = {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}
    else:
        source = {"type": "url", "url": IMAGE_URL}
    question = "Describe the image."
    message, trace_id = anthropic_message(
        claude,
        True,
        model=model.id,
        max_tokens=64,
        messages=[
            {"role": "user", "content": [{"type": "image", "source": source}, {"type": "text", "text": question}]}
        ],
    )
    assert message.content[0].text == "I see 1 image(s)."
    forwarded = json.dumps(last_forwarded(routerly, model))
    assert (PNG_BASE64 if kind == "base64" else IMAGE_URL) in forwarded
    answer = message.content[0].text
    check_record(routerly, trace_id, model, "messages", True, tokens(utf8_len(question)), words(answer))


# ---- JSON mode ---------------------------------------------------------------------------


@model_ids
def test_openai_sdk_json_mode(routerly, oai, model):
    question = "Give me a JSON object."
    text, finish, usage, _, trace_id, _ = openai_chat(
        oai,
        False,
        model=model.id,
        messages=[{"role": "user", "content": question}],
        response_format={"type": "json_object"},
    )
    forwarded = last_forwarded(routerly, model)
    if model.provider == "openai":
        assert forwarded["response_format"] == {"type": "json_object"}
        assert json.loads(text) == {"answer": "mock"}
    else:
        # Anthropic has no JSON-object mode: Routerly asks for it in the system prompt, which
        # the mock (unlike Claude) does not obey, so the mapping is checked on the wire.
        assert "JSON" in json.dumps(forwarded.get("system")), forwarded
        assert text == hello(model, question)
    input_tokens = forwarded_input_tokens(model.provider, forwarded)
    assert usage.prompt_tokens == input_tokens
    check_record(routerly, trace_id, model, "chat_completions", False, input_tokens, words(text))


@model_ids
def test_openai_sdk_json_schema(routerly, oai, model):
    schema = ANSWER_SCHEMA
    question = "Answer in the schema."
    text, _, usage, _, trace_id, _ = openai_chat(
        oai,
        False,
        model=model.id,
        messages=[{"role": "user", "content": question}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
    )
    assert json.loads(text) == {"answer": "mock"}, f"not JSON: {text!r}; forwarded {last_forwarded(routerly, model)}"
    input_tokens = forwarded_input_tokens(model.provider, last_forwarded(routerly, model))
    check_record(routerly, trace_id, model, "chat_completions", False, input_tokens, words(text))


@model_ids
def test_anthropic_sdk_structured_output(routerly, claude, model):
    schema = ANSWER_SCHEMA
    question = "Answer in the schema."
    message, trace_id = anthropic_message(
        claude,
        False,
        model=model.id,
        max_tokens=128,
        messages=[{"role": "user", "content": question}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    text = message.content[0].text
    assert json.loads(text) == {"answer": "mock"}, f"not JSON: {text!r}; forwarded {last_forwarded(routerly, model)}"
    input_tokens = forwarded_input_tokens(model.provider, last_forwarded(routerly, model))
    check_record(routerly, trace_id, model, "messages", False, input_tokens, words(text))


# ---- count_tokens and models -------------------------------------------------------------


@model_ids
def test_anthropic_sdk_count_tokens(routerly, claude, model):
    question = "How many tokens is this sentence?"
    before = len(routerly.usage_records())
    raw = claude.messages.with_raw_response.count_tokens(
        model=model.alias, system=SYSTEM, messages=[{"role": "user", "content": question}]
    )
    counted = raw.parse()
    method = raw.headers.get("x-routerly-token-count")
    if model.provider == "anthropic":
        # Exact: the provider's own count (the mock's token rule).
        assert method == "provider"
        assert counted.input_tokens == tokens(utf8_len(SYSTEM, question))
        assert routerly.mock.requests("anthropic")[-1]["path"] == "/v1/messages/count_tokens"
    else:
        # OpenAI's own tokenizer inside Routerly (its exact figure is checked in the Rust
        # tests): three framing tokens per message and for the reply, plus at least one
        # token per word and at most one per byte of text.
        assert method == "tokenizer"
        words = len(SYSTEM.split()) + len(question.split())
        assert 9 + words <= counted.input_tokens <= 9 + utf8_len(SYSTEM, question)
    # Counting is free: it leaves no completion record.
    time.sleep(0.2)  # the writer appends within 100 ms
    assert len(routerly.usage_records()) == before


def test_models_list_in_both_sdks(routerly, oai, claude):
    expected = {"auto", OPENAI_MODEL.id, OPENAI_MODEL.alias, ANTHROPIC_MODEL.id, ANTHROPIC_MODEL.alias}
    assert {model.id for model in oai.models.list()} == expected
    assert oai.models.retrieve(ANTHROPIC_MODEL.alias).id == ANTHROPIC_MODEL.alias
    assert {model.id for model in claude.models.list()} == expected
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")


# ---- errors raise the SDKs' normal exceptions ----------------------------------------------


def error_record(routerly: Routerly, response, status: int, surface: str) -> dict:
    trace_id = response.headers.get("x-routerly-trace-id")
    assert trace_id, f"a {status} on an authenticated call carries a trace id: {dict(response.headers)}"
    record = routerly.record_for(trace_id)
    assert (record["outcome"], record["status"], record["surface"]) == ("error", status, surface), record
    assert record["cost_usd"] == 0 and record["input_tokens"] == 0 and record["output_tokens"] == 0, record
    assert record["token_id"] == routerly.token_id, record
    return record


def test_unknown_model_is_not_found_in_both_sdks(routerly, oai, claude):
    with pytest.raises(openai.NotFoundError) as raised:
        oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.code == "model_not_found"
    error_record(routerly, raised.value.response, 404, "chat_completions")
    with pytest.raises(anthropic.NotFoundError) as raised:
        claude.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["error"]["type"] == "not_found_error"
    error_record(routerly, raised.value.response, 404, "messages")


def test_bad_token_is_an_authentication_error_in_both_sdks(routerly):
    before = len(routerly.usage_records())
    bad_token = "sk-lr-" + "x" * 43
    oai = openai.OpenAI(base_url=routerly.url + "/v1", api_key=bad_token, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        oai.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    for client in (
        anthropic.Anthropic(base_url=routerly.url, api_key=bad_token, max_retries=0),
        anthropic.Anthropic(base_url=routerly.url, auth_token=bad_token, max_retries=0),
    ):
        with pytest.raises(anthropic.AuthenticationError) as raised:
            client.messages.create(model="auto", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        assert raised.value.body["error"]["type"] == "authentication_error"
    time.sleep(0.2)  # the writer appends within 100 ms
    assert len(routerly.usage_records()) == before, "an unauthenticated call is charged to no one"


@model_ids
def test_bad_input_is_a_bad_request_in_both_sdks(routerly, oai, claude, model):
    # A tool message without its call: the OpenAI API rejects it, and so must the path to Claude.
    with pytest.raises(openai.BadRequestError) as raised:
        oai.chat.completions.create(
            model=model.id,
            messages=[{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "r"}],
        )
    error_record(routerly, raised.value.response, 400, "chat_completions")
    # A system role inside `messages`: the Anthropic API rejects it, whichever provider serves.
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(
            model=model.id,
            max_tokens=10,
            messages=[{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}],
        )
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    error_record(routerly, raised.value.response, 400, "messages")


# ---- the CLI report ----------------------------------------------------------------------


def test_report_calls_shows_the_calls(routerly, oai, claude):
    question = "For the report"
    raw = oai.chat.completions.with_raw_response.create(
        model=ANTHROPIC_MODEL.id, messages=[{"role": "user", "content": question}]
    )
    raw.parse()
    openai_trace = raw.headers["x-routerly-trace-id"]
    raw = claude.messages.with_raw_response.create(
        model=OPENAI_MODEL.id, max_tokens=32, messages=[{"role": "user", "content": question}]
    )
    raw.parse()
    anthropic_trace = raw.headers["x-routerly-trace-id"]
    records = {trace: routerly.record_for(trace) for trace in (openai_trace, anthropic_trace)}
    everything = routerly.usage_records()
    reported = routerly.reported_calls({record["trace_id"] for record in everything}, "--project", "my-app")
    by_trace = {call["trace_id"]: call for call in reported}
    assert len(by_trace) == len(reported), "a call is reported twice"
    assert set(by_trace) == {record["trace_id"] for record in everything}, "report calls shows every call, once"
    for trace, record in records.items():
        call = by_trace[trace]
        for key in ("model_id", "surface", "outcome", "input_tokens", "output_tokens", "cost_usd"):
            assert call[key] == record[key], (key, call, record)
    table = routerly.cli("report", "calls", "--limit", "5")
    assert ANTHROPIC_MODEL.id in table and OPENAI_MODEL.id in table, table
