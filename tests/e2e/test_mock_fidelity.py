"""The official OpenAI and Anthropic SDKs pointed straight at `routerly-mock` (no Routerly).

If an SDK cannot parse what the mock answers, or does not raise its usual exception for what
the mock rejects, the mock is not faithful enough to judge Routerly.
"""

from __future__ import annotations

import base64
import json

import anthropic
import httpx
import openai
import pytest

# A 1x1 transparent PNG.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"}},
    "required": ["city"],
}
OPENAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]


def tokens(byte_count: int) -> int:
    """The mock's token rule: a quarter of the counted bytes, rounded up."""
    return -(-byte_count // 4)


def utf8_len(*texts: str) -> int:
    return sum(len(text.encode()) for text in texts)


def compact(value: object) -> str:
    """JSON as the mock counts it (compact, key order kept, UTF-8)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture
def oai(mock) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.openai_url, api_key=mock.api_key, max_retries=0)


@pytest.fixture
def claude(mock) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock.anthropic_url, api_key=mock.api_key, max_retries=0)


# ---- OpenAI ------------------------------------------------------------------------------


def test_openai_chat_answers_deterministically_with_rule_usage(oai, mock):
    question = "What is the capital of France? [mock:cached=3]"
    completion = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
    )
    text = "Hello from mock openai gpt-4o! You said: What is the capital of France?"
    assert completion.choices[0].message.content == text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o"
    assert completion.usage.prompt_tokens == tokens(utf8_len("Be brief.", question))
    assert completion.usage.completion_tokens == len(text.split())
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.prompt_tokens_details.cached_tokens == 3
    recorded = mock.requests("openai")
    assert recorded[-1]["headers"]["authorization"] == f"Bearer {mock.api_key}"


def test_openai_stream_sends_words_then_usage(oai):
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Hello from mock openai gpt-4o-mini! You said: Stream please"
    finish = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == len(text.split())
    assert chunks[-1].usage.prompt_tokens == tokens(utf8_len("Stream please"))
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_openai_tool_call_round_trip(oai):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=OPENAI_TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.id == "call_1"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 1, "metric": True}
    assert first.usage.completion_tokens == 10
    assert first.usage.prompt_tokens == tokens(utf8_len("Weather in Paris?", compact(OPENAI_TOOLS)))

    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21C"})
    second = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=OPENAI_TOOLS)
    assert second.choices[0].message.content == "Tool result: Sunny, 21C"
    assert second.choices[0].finish_reason == "stop"


def test_openai_stream_tool_call_fragments_reassemble(oai):
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=OPENAI_TOOLS,
        stream=True,
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or []:
            name += call.function.name or ""
            arguments += call.function.arguments or ""
        finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris", "days": 1, "metric": True}
    assert finish == "tool_calls"


def test_openai_image_is_counted(oai):
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_BASE64}"}}
    completion = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}],
    )
    assert completion.choices[0].message.content == "I see 1 image(s)."
    assert completion.usage.prompt_tokens == tokens(utf8_len("What is this?"))


def test_openai_json_mode(oai):
    completion = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Answer in JSON"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(completion.choices[0].message.content) == {"answer": "mock"}


def test_openai_models_and_embeddings(oai):
    assert "gpt-4o" in [model.id for model in oai.models.list()]
    # The SDK asks for base64 by default and decodes it.
    embedding = oai.embeddings.create(model="text-embedding-3-small", input="book a flight")
    assert len(embedding.data[0].embedding) == 64
    assert embedding.usage.prompt_tokens == tokens(utf8_len("book a flight"))


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant_calling(*ids: str) -> dict:
    calls = [{"id": id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}} for id in ids]
    return {"role": "assistant", "content": None, "tool_calls": calls}


OPENAI_INVALID = {
    "missing_model": {"messages": [user("hi")]},
    "missing_messages": {"model": "gpt-4o"},
    "empty_messages": {"model": "gpt-4o", "messages": []},
    "unknown_role": {"model": "gpt-4o", "messages": [{"role": "human", "content": "hi"}]},
    "tool_without_tool_call_id": {
        "model": "gpt-4o",
        "messages": [user("hi"), assistant_calling("call_a"), {"role": "tool", "content": "r"}],
    },
    "tool_without_preceding_call": {
        "model": "gpt-4o",
        "messages": [user("hi"), {"role": "tool", "tool_call_id": "call_a", "content": "r"}],
    },
    "tool_id_not_matching": {
        "model": "gpt-4o",
        "messages": [user("hi"), assistant_calling("call_a"), {"role": "tool", "tool_call_id": "call_b", "content": "r"}],
    },
    "arguments_not_a_string": {
        "model": "gpt-4o",
        "messages": [
            user("hi"),
            {
                "role": "assistant",
                "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "r"},
        ],
    },
    "tool_calls_not_all_answered": {
        "model": "gpt-4o",
        "messages": [
            user("hi"),
            assistant_calling("call_a", "call_b"),
            {"role": "tool", "tool_call_id": "call_a", "content": "r"},
            user("next"),
        ],
    },
    "stream_options_without_stream": {
        "model": "gpt-4o",
        "messages": [user("hi")],
        "stream_options": {"include_usage": True},
    },
    "max_tokens_with_max_completion_tokens": {
        "model": "gpt-4o",
        "messages": [user("hi")],
        "max_tokens": 10,
        "max_completion_tokens": 10,
    },
    "temperature_above_2": {"model": "gpt-4o", "messages": [user("hi")], "temperature": 2.5},
    "temperature_below_0": {"model": "gpt-4o", "messages": [user("hi")], "temperature": -0.1},
    "tool_name_not_a_string": {
        "model": "gpt-4o",
        "messages": [user("hi")],
        "tools": [{"type": "function", "function": {"name": 42, "parameters": {"type": "object"}}}],
    },
    "tool_choice_without_tools": {"model": "gpt-4o", "messages": [user("hi")], "tool_choice": "required"},
    "anthropic_image_block": {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": PNG_BASE64}}]}
        ],
    },
}


@pytest.mark.parametrize("body", OPENAI_INVALID.values(), ids=OPENAI_INVALID.keys())
def test_openai_rejects_invalid_requests(oai, body):
    with pytest.raises(openai.BadRequestError) as raised:
        oai.post("/chat/completions", body=body, cast_to=object)
    error = raised.value.body
    assert error["type"] == "invalid_request_error", error
    assert error["message"], error


def test_openai_rejects_a_body_that_is_not_json(mock):
    response = httpx.post(
        f"{mock.openai_url}/chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {mock.api_key}", "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "could not parse the JSON body" in response.json()["error"]["message"]


def test_openai_wrong_key_is_an_authentication_error(mock):
    client = openai.OpenAI(base_url=mock.openai_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[user("hi")])
    assert raised.value.code == "invalid_api_key"


def test_openai_status_directives_raise_the_sdk_classes(oai):
    with pytest.raises(openai.RateLimitError) as raised:
        oai.chat.completions.create(model="gpt-4o", messages=[user("[mock:status=429]")])
    assert raised.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o", messages=[user("[mock:status=500]")])


def test_openai_fail_next_then_recovers(oai, mock):
    mock.fail_next("openai", 1, 503)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o", messages=[user("hi")])
    assert oai.chat.completions.create(model="gpt-4o", messages=[user("hi")]).choices[0].message.content


def test_openai_stream_that_dies_raises(oai):
    stream = oai.chat.completions.create(
        model="gpt-4o", messages=[user("one two three [mock:die_after=2]")], stream=True
    )
    with pytest.raises(Exception):
        list(stream)


# ---- Anthropic ---------------------------------------------------------------------------


def test_anthropic_message_and_count_tokens_agree(claude):
    question = "What is the capital of France?"
    message = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, system="Be brief.", messages=[user(question)]
    )
    text = "Hello from mock anthropic claude-sonnet-4-6! You said: What is the capital of France?"
    assert message.content[0].type == "text"
    assert message.content[0].text == text
    assert message.stop_reason == "end_turn"
    assert message.model == "claude-sonnet-4-6"
    assert message.usage.input_tokens == tokens(utf8_len("Be brief.", question))
    assert message.usage.output_tokens == len(text.split())
    count = claude.messages.count_tokens(model="claude-sonnet-4-6", system="Be brief.", messages=[user(question)])
    assert count.input_tokens == message.usage.input_tokens


def test_anthropic_cache_directives_split_input_tokens(claude):
    question = "Long context [mock:cached=5][mock:cache_write=2]"
    message = claude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=[user(question)])
    estimate = tokens(utf8_len(question))
    assert message.usage.cache_read_input_tokens == 5
    assert message.usage.cache_creation_input_tokens == 2
    assert message.usage.input_tokens == estimate - 7


def test_anthropic_stream(claude, mock):
    with claude.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[user("Stream please")],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from mock anthropic claude-sonnet-4-6! You said: Stream please"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == tokens(utf8_len("Stream please"))
    assert final.usage.output_tokens == len(text.split())
    assert mock.requests("anthropic")[-1]["headers"]["anthropic-beta"] == "prompt-caching-2024-07-31"


def test_anthropic_tool_use_round_trip(claude):
    messages = [user("Weather in Paris?")]
    first = claude.messages.create(model="claude-sonnet-4-6", max_tokens=100, tools=ANTHROPIC_TOOLS, messages=messages)
    assert first.stop_reason == "tool_use"
    tool_use = first.content[0]
    assert tool_use.type == "tool_use"
    assert tool_use.id == "toolu_1"
    assert tool_use.input == {"city": "Paris", "days": 1, "metric": True}
    assert first.usage.output_tokens == 10
    assert first.usage.input_tokens == tokens(utf8_len("Weather in Paris?", compact(ANTHROPIC_TOOLS)))

    messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny, 21C"}]}
    )
    second = claude.messages.create(model="claude-sonnet-4-6", max_tokens=100, tools=ANTHROPIC_TOOLS, messages=messages)
    assert second.content[0].text == "Tool result: Sunny, 21C"


def test_anthropic_streamed_tool_use(claude):
    with claude.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, tools=ANTHROPIC_TOOLS, messages=[user("Weather?")]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Paris", "days": 1, "metric": True}


def test_anthropic_image(claude):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}}
    message = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]}],
    )
    assert message.content[0].text == "I see 1 image(s)."


def test_anthropic_thinking(claude):
    message = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[user("Think")],
    )
    assert [block.type for block in message.content] == ["thinking", "text"]


def test_anthropic_models(claude):
    assert "claude-sonnet-4-6" in [model.id for model in claude.models.list()]


def tool_use_message(input_value: object, id: str = "toolu_a") -> dict:
    return {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "get_weather", "input": input_value}]}


def tool_result_message(id: str) -> dict:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "r"}]}


ANTHROPIC_INVALID = {
    "missing_max_tokens": {"model": "claude-sonnet-4-6", "messages": [user("hi")]},
    "missing_messages": {"model": "claude-sonnet-4-6", "max_tokens": 10},
    "empty_messages": {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": []},
    "system_role_in_messages": {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [{"role": "system", "content": "s"}, user("hi")],
    },
    "tool_result_not_matching": {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [user("hi"), tool_use_message({}), tool_result_message("toolu_other")],
    },
    "tool_use_without_result": {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [user("hi"), tool_use_message({}), user("never mind")],
    },
    "tool_use_input_is_a_string": {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [user("hi"), tool_use_message('{"city": "Paris"}'), tool_result_message("toolu_a")],
    },
    "empty_user_content": {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [user("")]},
    "thinking_budget_not_below_max_tokens": {
        "model": "claude-sonnet-4-6",
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [user("hi")],
    },
    "thinking_with_temperature": {
        "model": "claude-sonnet-4-6",
        "max_tokens": 4000,
        "temperature": 0.5,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [user("hi")],
    },
    "temperature_above_1": {"model": "claude-sonnet-4-6", "max_tokens": 10, "temperature": 1.5, "messages": [user("hi")]},
    "openai_image_part": {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
    },
}


@pytest.mark.parametrize("body", ANTHROPIC_INVALID.values(), ids=ANTHROPIC_INVALID.keys())
def test_anthropic_rejects_invalid_requests(claude, body):
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.post("/v1/messages", body=body, cast_to=object)
    error = raised.value.body
    assert error["type"] == "error", error
    assert error["error"]["type"] == "invalid_request_error", error


def test_anthropic_missing_version_header_is_rejected(mock):
    response = httpx.post(
        f"{mock.anthropic_url}/v1/messages",
        json={"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [user("hi")]},
        headers={"x-api-key": mock.api_key},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "anthropic-version: header is required"


def test_anthropic_wrong_key_is_an_authentication_error(mock):
    client = anthropic.Anthropic(base_url=mock.anthropic_url, api_key="sk-ant-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=[user("hi")])
    assert raised.value.body["error"]["type"] == "authentication_error"


def test_anthropic_status_directives_raise_the_sdk_classes(claude):
    with pytest.raises(anthropic.RateLimitError) as raised:
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=[user("[mock:status=429]")])
    assert raised.value.response.headers["retry-after"] == "1"
    with pytest.raises(anthropic.InternalServerError) as raised:
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=[user("[mock:status=529]")])
    assert raised.value.status_code == 529
    assert raised.value.body["error"]["type"] == "overloaded_error"


def test_anthropic_stream_that_dies_raises(claude):
    with pytest.raises(Exception):
        with claude.messages.stream(
            model="claude-sonnet-4-6", max_tokens=100, messages=[user("one two three [mock:die_after=3]")]
        ) as stream:
            stream.get_final_message()


def test_garbage_directive_is_not_json(mock):
    response = httpx.post(
        f"{mock.anthropic_url}/v1/messages",
        json={"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [user("[mock:garbage]")]},
        headers={"x-api-key": mock.api_key, "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_png_fixture_is_valid_base64():
    assert base64.b64decode(PNG_BASE64).startswith(b"\x89PNG")
