"""Two agent frameworks, unmodified, through Routerly's OpenAI-compatible surface.

LangChain (`langchain-openai`'s `ChatOpenAI`) with a tool round trip, and LlamaIndex's
OpenAI-compatible chat LLM, each against an OpenAI-provider and an Anthropic-provider model
by their project aliases, whole and streamed. As in test_sdk_e2e.py, each call is checked
three ways: the answer the framework parsed, the one usage record it left (tokens by the
mock's deterministic rule) and its cost.

LlamaIndex: `llama_index.llms.openai.OpenAI` refuses model names outside OpenAI's list (an
alias such as `claude`), so the tests use its subclass `OpenAILike` from
`llama-index-llms-openai-like`, the documented class for OpenAI-compatible servers.

There is no network: nothing here may make tiktoken load an encoding (which it downloads on
first use). Neither framework needs one for a chat call, since neither counts tokens unless
asked to (LangChain's `get_num_tokens`, LlamaIndex's completion endpoint with no
`max_tokens`), and `OpenAILike` has no tokenizer unless given one. The `no_tiktoken` fixture
makes any encoding load fail the test at once instead of hanging on the network.
"""

from __future__ import annotations

import json

import httpx
import pytest
import tiktoken.core
import tiktoken.load
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai_like import OpenAILike

from conftest import MODELS, ModelSpec, Routerly, hello, tokens, utf8_len, words
from test_sdk_e2e import (
    SYSTEM,
    TOOL_CALL_OUTPUT_TOKENS,
    WEATHER_ARGUMENTS,
    check_record,
    forwarded_input_tokens,
    last_forwarded,
)

model_ids = pytest.mark.parametrize("model", MODELS, ids=[model.provider for model in MODELS])
streaming = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


@pytest.fixture(autouse=True)
def no_tiktoken(monkeypatch):
    """Any tiktoken encoding load (a download, here) fails the test instead."""

    def refuse(*args, **kwargs):
        raise AssertionError("tiktoken tried to load an encoding: these tests must not count tokens")

    monkeypatch.setattr(tiktoken.core.Encoding, "__init__", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", refuse)


class TraceIds:
    """An httpx client for a framework that notes each answer's `x-routerly-trace-id`."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self.client = httpx.Client(event_hooks={"response": [self._note]}, timeout=30)

    def _note(self, response: httpx.Response) -> None:
        self.ids.append(response.headers.get("x-routerly-trace-id"))

    def only(self) -> str | None:
        """The trace id of the one call made since the last `only()`."""
        assert len(self.ids) == 1, f"expected one HTTP call, saw {len(self.ids)}"
        return self.ids.pop()


@pytest.fixture
def traces():
    trace_ids = TraceIds()
    yield trace_ids
    trace_ids.client.close()


# ---- LangChain: a tool call, its result sent back, the final text --------------------------


@tool
def get_weather(city: str, days: int = 1, metric: bool = True) -> str:
    """The weather forecast for a city."""
    assert (city, days, metric) == ("Paris", 1, True)  # the mock's arguments for this schema
    return f"Sunny, 21C in {city}"


def langchain_model(routerly: Routerly, model: ModelSpec, traces: TraceIds) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=routerly.url + "/v1",
        api_key=routerly.token,
        model=model.alias,
        max_retries=0,
        http_client=traces.client,
        stream_usage=True,  # off by default for a base URL that is not OpenAI's
    )


def langchain_call(chat, messages, stream: bool):
    """The AI message of one call; a stream's chunks are added up as LangChain does."""
    if not stream:
        return chat.invoke(messages)
    merged = None
    count = 0
    for chunk in chat.stream(messages):
        assert isinstance(chunk, AIMessageChunk)
        merged = chunk if merged is None else merged + chunk
        count += 1
    assert count > 1, "the answer was not streamed"
    return merged


@model_ids
@streaming
def test_langchain_tool_round_trip(routerly, traces, model, stream):
    chat = langchain_model(routerly, model, traces).bind_tools([get_weather])
    messages = [HumanMessage("What is the weather in Paris?")]

    reply = langchain_call(chat, messages, stream)
    assert not reply.content
    assert len(reply.tool_calls) == 1, reply
    call = reply.tool_calls[0]
    assert call["name"] == "get_weather"
    assert call["args"] == WEATHER_ARGUMENTS
    assert call["id"].startswith("call_" if model.provider == "openai" else "toolu_"), call
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    assert reply.response_metadata["model_name"] == model.id
    forwarded = last_forwarded(routerly, model)
    assert "get_weather" in json.dumps(forwarded["tools"]), forwarded
    input_tokens = forwarded_input_tokens(model.provider, forwarded)
    assert reply.usage_metadata["input_tokens"] == input_tokens
    assert reply.usage_metadata["output_tokens"] == TOOL_CALL_OUTPUT_TOKENS
    check_record(
        routerly, traces.only(), model, "chat_completions", stream, input_tokens, TOOL_CALL_OUTPUT_TOKENS
    )

    result = get_weather.invoke(call)  # runs the tool: a ToolMessage answering the call's id
    assert isinstance(result, ToolMessage) and result.tool_call_id == call["id"]
    messages += [reply, result]
    final = langchain_call(chat, messages, stream)
    assert final.content == "Tool result: Sunny, 21C in Paris"
    assert not final.tool_calls
    assert final.response_metadata["finish_reason"] == "stop"
    forwarded = last_forwarded(routerly, model)
    assert "Sunny, 21C in Paris" in json.dumps(forwarded["messages"]), forwarded
    input_tokens = forwarded_input_tokens(model.provider, forwarded)
    output_tokens = words(final.content)
    assert (final.usage_metadata["input_tokens"], final.usage_metadata["output_tokens"]) == (
        input_tokens,
        output_tokens,
    )
    check_record(routerly, traces.only(), model, "chat_completions", stream, input_tokens, output_tokens)


@model_ids
def test_langchain_plain_stream(routerly, traces, model):
    question = "Stream me a greeting"
    chat = langchain_model(routerly, model, traces)
    answer = langchain_call(chat, [SystemMessage(SYSTEM), HumanMessage(question)], stream=True)
    assert answer.content == hello(model, question)
    input_tokens, output_tokens = tokens(utf8_len(SYSTEM, question)), words(answer.content)
    assert (answer.usage_metadata["input_tokens"], answer.usage_metadata["output_tokens"]) == (
        input_tokens,
        output_tokens,
    )
    check_record(routerly, traces.only(), model, "chat_completions", True, input_tokens, output_tokens)


# ---- LlamaIndex: a chat call, whole and streamed -------------------------------------------


@model_ids
@streaming
def test_llamaindex_chat(routerly, traces, model, stream):
    llm = OpenAILike(
        model=model.alias,
        api_base=routerly.url + "/v1",
        api_key=routerly.token,
        is_chat_model=True,
        context_window=128_000,
        max_retries=0,
        http_client=traces.client,
        # LlamaIndex drops this when not streaming.
        additional_kwargs={"stream_options": {"include_usage": True}},
    )
    question = "What is the capital of Italy?"
    messages = [ChatMessage(role="system", content=SYSTEM), ChatMessage(role="user", content=question)]
    if stream:
        responses = list(llm.stream_chat(messages))
        assert len(responses) > 1, "the answer was not streamed"
        response = responses[-1]
        assert "".join(r.delta or "" for r in responses) == response.message.content
        usage = responses[-1].raw.usage  # the stream's last chunk carries the usage
    else:
        response = llm.chat(messages)
        usage = response.raw.usage
        assert response.raw.model == model.id
    assert response.message.role == "assistant"
    assert response.message.content == hello(model, question)
    input_tokens, output_tokens = tokens(utf8_len(SYSTEM, question)), words(response.message.content)
    assert (usage.prompt_tokens, usage.completion_tokens) == (input_tokens, output_tokens)
    check_record(routerly, traces.only(), model, "chat_completions", stream, input_tokens, output_tokens)
