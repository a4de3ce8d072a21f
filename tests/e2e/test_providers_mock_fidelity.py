"""The official Gemini, Ollama and Mistral SDKs (and OpenAI's Azure client) pointed straight at
`routerly-mock` (no Routerly).

If an SDK cannot parse what a mock answers, or does not raise its usual exception for what the
mock rejects, the mock is not faithful enough to judge Routerly's adapters.
"""

from __future__ import annotations

import json
from typing import Iterator

import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from mistralai.client import Mistral
from mistralai.client import errors as mistral_errors

from conftest import stop_process
from provider_mocks import AllMocks, start_all_mocks, tokens

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER_ARGS = {"city": "Paris", "days": 1}


@pytest.fixture(scope="module")
def mocks() -> Iterator[AllMocks]:
    process, all_mocks = start_all_mocks()
    try:
        yield all_mocks
    finally:
        stop_process(process)


@pytest.fixture(autouse=True)
def _fresh(mocks: AllMocks) -> None:
    mocks.reset()


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---- Gemini ------------------------------------------------------------------------------


@pytest.fixture
def gemini(mocks: AllMocks) -> genai.Client:
    return genai.Client(
        api_key=mocks.api_key,
        http_options=genai_types.HttpOptions(base_url=mocks.url("gemini"), retry_options=None),
    )


def test_gemini_generate_content_answers_with_rule_usage(gemini, mocks):
    question = "What is the capital of France? [mock:cached=2]"
    response = gemini.models.generate_content(
        model="gemini-2.5-flash",
        contents=question,
        config=genai_types.GenerateContentConfig(system_instruction="Be brief."),
    )
    text = "Hello from mock gemini gemini-2.5-flash! You said: What is the capital of France?"
    assert response.text == text
    assert response.candidates[0].finish_reason == genai_types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage.prompt_token_count == tokens(len(question) + len("Be brief."))
    assert usage.candidates_token_count == len(text.split())
    assert usage.cached_content_token_count == 2
    recorded = mocks.requests("gemini")[-1]
    assert recorded["headers"]["x-goog-api-key"] == mocks.api_key
    assert recorded["path"].endswith("/models/gemini-2.5-flash:generateContent")


def test_gemini_stream_sends_words_and_finishes_with_usage(gemini):
    chunks = list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="Stream please"))
    text = "".join(chunk.text or "" for chunk in chunks)
    assert text == "Hello from mock gemini gemini-2.5-flash! You said: Stream please"
    assert chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == len(text.split())
    assert all(chunk.candidates[0].finish_reason is None for chunk in chunks[:-1])


def test_gemini_function_call_round_trip(gemini):
    tools = [
        genai_types.Tool(
            function_declarations=[
                genai_types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER_SCHEMA)
            ]
        )
    ]
    config = genai_types.GenerateContentConfig(
        tools=tools,
        automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
    )
    question = genai_types.Content(role="user", parts=[genai_types.Part(text="Weather in Paris?")])
    first = gemini.models.generate_content(model="gemini-2.5-flash", contents=[question], config=config)
    call = first.function_calls[0]
    assert call.name == "get_weather"
    assert call.args == WEATHER_ARGS
    assert call.id is None, "the public Gemini API sends no call ids"
    assert first.usage_metadata.candidates_token_count == 10

    answer = genai_types.Part.from_function_response(name="get_weather", response={"result": "Sunny, 21C"})
    second = gemini.models.generate_content(
        model="gemini-2.5-flash",
        contents=[question, first.candidates[0].content, genai_types.Content(role="user", parts=[answer])],
        config=config,
    )
    assert second.text == "Tool result: Sunny, 21C"


def test_gemini_json_output_and_thoughts(gemini):
    response = gemini.models.generate_content(
        model="gemini-2.5-pro",
        contents="Give me JSON",
        config=genai_types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema={"type": "object", "additionalProperties": False},
            thinking_config=genai_types.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
        ),
    )
    parts = response.candidates[0].content.parts
    assert parts[0].thought is True and parts[0].text == "Mock thinking."
    assert parts[1].text == '{"answer":"mock"}'
    assert response.usage_metadata.thoughts_token_count == 2


def test_gemini_rejects_what_the_api_rejects(gemini, mocks):
    wrong_key = genai.Client(
        api_key="wrong", http_options=genai_types.HttpOptions(base_url=mocks.url("gemini"))
    )
    with pytest.raises(genai_errors.ClientError) as invalid_key:
        wrong_key.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert invalid_key.value.code == 400
    assert "API_KEY_INVALID" in json.dumps(invalid_key.value.details)

    with pytest.raises(genai_errors.ClientError) as unknown_model:
        gemini.models.generate_content(model="gemini-0.1-nope", contents="hi")
    assert unknown_model.value.code == 404

    with pytest.raises(genai_errors.ClientError) as limited:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi [mock:status=429]")
    assert limited.value.code == 429
    assert limited.value.status == "RESOURCE_EXHAUSTED"
    assert "RetryInfo" in json.dumps(limited.value.details)

    base = f"{mocks.url('gemini')}/v1beta/models/gemini-2.5-flash:generateContent"
    headers = {"x-goog-api-key": mocks.api_key}
    unknown_field = httpx.post(base, headers=headers, json={"contents": [], "messages": []})
    assert unknown_field.status_code == 400
    assert 'Unknown name "messages"' in unknown_field.json()["error"]["message"]
    openapi_schema = httpx.post(
        base,
        headers=headers,
        json={
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": WEATHER_SCHEMA}]}],
        },
    )
    assert openapi_schema.status_code == 400, "`parameters` is OpenAPI, not JSON Schema"
    string_args = httpx.post(
        base,
        headers=headers,
        json={
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": "{}"}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": "x"}}}]},
            ]
        },
    )
    assert string_args.status_code == 400
    assert "google.protobuf.Struct" in string_args.json()["error"]["message"]


# ---- Ollama ------------------------------------------------------------------------------


@pytest.fixture
def ollama_client(mocks: AllMocks) -> ollama.Client:
    return ollama.Client(host=mocks.url("ollama"), headers={"Authorization": f"Bearer {mocks.api_key}"})


def test_ollama_chat_answers_with_eval_counts(ollama_client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    response = ollama_client.chat(model="llama3.2", messages=messages, stream=False)
    text = "Hello from mock ollama llama3.2! You said: Hello there"
    assert response.message.content == text
    assert response.done and response.done_reason == "stop"
    assert response.prompt_eval_count == tokens(len("Be brief.") + len("Hello there"))
    assert response.eval_count == len(text.split())


def test_ollama_streams_ndjson_by_default(ollama_client, mocks):
    chunks = list(ollama_client.chat(model="llama3.2", messages=[{"role": "user", "content": "Stream"}], stream=True))
    text = "".join(chunk.message.content for chunk in chunks)
    assert text == "Hello from mock ollama llama3.2! You said: Stream"
    assert chunks[-1].done and chunks[-1].eval_count == len(text.split())
    assert not any(chunk.done for chunk in chunks[:-1])
    raw = httpx.post(
        f"{mocks.url('ollama')}/api/chat",
        headers={"Authorization": f"Bearer {mocks.api_key}"},
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]},
    )
    assert raw.headers["content-type"] == "application/x-ndjson", "streaming is Ollama's default"


def test_ollama_tool_round_trip_uses_argument_objects(ollama_client):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = ollama_client.chat(model="qwen3", messages=messages, tools=tools, stream=False)
    call = first.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert dict(call.function.arguments) == WEATHER_ARGS
    messages.append(first.message)
    messages.append({"role": "tool", "content": "Sunny, 21C", "tool_name": "get_weather"})
    second = ollama_client.chat(model="qwen3", messages=messages, tools=tools, stream=False)
    assert second.message.content == "Tool result: Sunny, 21C"


def test_ollama_rejects_what_ollama_rejects(ollama_client):
    with pytest.raises(ollama.ResponseError) as unknown:
        ollama_client.chat(model="no-such-model", messages=[{"role": "user", "content": "x"}], stream=False)
    assert unknown.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as no_thinking:
        ollama_client.chat(model="llama3.2", messages=[{"role": "user", "content": "x"}], think=True, stream=False)
    assert no_thinking.value.status_code == 400
    assert "does not support thinking" in no_thinking.value.error
    with pytest.raises(ollama.ResponseError) as no_tools:
        ollama_client.chat(
            model="gemma3",
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            stream=False,
        )
    assert "does not support tools" in no_tools.value.error


def test_ollama_refuses_string_arguments_and_data_urls(mocks):
    url = f"{mocks.url('ollama')}/api/chat"
    headers = {"Authorization": f"Bearer {mocks.api_key}"}
    string_args = httpx.post(
        url,
        headers=headers,
        json={
            "model": "llama3.2",
            "stream": False,
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
            ],
        },
    )
    assert string_args.status_code == 400
    assert "cannot unmarshal string" in string_args.json()["error"]
    data_url = httpx.post(
        url,
        headers=headers,
        json={"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "x", "images": ["data:image/png;base64,AAAA"]}]},
    )
    assert data_url.status_code == 400
    assert "illegal base64" in data_url.json()["error"]


# ---- Mistral -----------------------------------------------------------------------------


@pytest.fixture
def mistral(mocks: AllMocks) -> Mistral:
    return Mistral(api_key=mocks.api_key, server_url=mocks.url("mistral"))


def test_mistral_chat_answers_with_usage(mistral, mocks):
    response = mistral.chat.complete(
        model="mistral-small-latest", messages=[{"role": "user", "content": "Hello there"}], safe_prompt=True
    )
    text = "Hello from mock mistral mistral-small-latest! You said: Hello there"
    assert response.choices[0].message.content == text
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == tokens(len("Hello there"))
    assert response.usage.completion_tokens == len(text.split())
    assert mocks.requests("mistral")[-1]["headers"]["authorization"] == f"Bearer {mocks.api_key}"


def test_mistral_stream_puts_usage_on_the_last_chunk(mistral):
    events = list(mistral.chat.stream(model="mistral-small-latest", messages=[{"role": "user", "content": "Stream"}]))
    text = "".join(event.data.choices[0].delta.content or "" for event in events)
    assert text == "Hello from mock mistral mistral-small-latest! You said: Stream"
    assert events[-1].data.choices[0].finish_reason == "stop"
    assert events[-1].data.usage.completion_tokens == len(text.split())


def test_mistral_tool_round_trip_has_nine_character_ids(mistral):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = mistral.chat.complete(model="mistral-small-latest", messages=messages, tools=tools, tool_choice="any")
    call = first.choices[0].message.tool_calls[0]
    assert len(call.id) == 9 and call.id.isalnum()
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert first.choices[0].finish_reason == "tool_calls"
    messages.append(first.choices[0].message)
    messages.append({"role": "tool", "tool_call_id": call.id, "name": "get_weather", "content": "Sunny, 21C"})
    second = mistral.chat.complete(model="mistral-small-latest", messages=messages, tools=tools)
    assert second.choices[0].message.content == "Tool result: Sunny, 21C"


def test_mistral_rejects_what_mistral_rejects(mistral, mocks):
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "r"},
    ]
    with pytest.raises(mistral_errors.SDKError) as openai_ids:
        mistral.chat.complete(model="mistral-small-latest", messages=messages)
    assert openai_ids.value.status_code == 400
    assert "length of 9" in openai_ids.value.body
    wrong_key = Mistral(api_key="wrong", server_url=mocks.url("mistral"))
    with pytest.raises(mistral_errors.SDKError) as unauthorized:
        wrong_key.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": "x"}])
    assert unauthorized.value.status_code == 401
    openai_fields = httpx.post(
        f"{mocks.url('mistral')}/v1/chat/completions",
        headers={"Authorization": f"Bearer {mocks.api_key}"},
        json={"model": "mistral-small-latest", "messages": [{"role": "user", "content": "x"}], "stream": True, "stream_options": {"include_usage": True}},
    )
    assert openai_fields.status_code == 422
    assert openai_fields.json()["message"]["detail"][0]["type"] == "extra_forbidden"


# ---- Azure OpenAI ------------------------------------------------------------------------


@pytest.fixture
def azure(mocks: AllMocks) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=mocks.url("azure"), api_key=mocks.api_key, api_version="2024-10-21", max_retries=0
    )


def test_azure_deployment_urls_and_api_key_header(azure, mocks):
    completion = azure.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Hello from mock azure gpt-4o! You said: hi"
    recorded = mocks.requests("azure")[-1]
    assert recorded["path"] == "/openai/deployments/gpt-4o/chat/completions"
    assert recorded["query"] == "api-version=2024-10-21"
    assert recorded["headers"]["api-key"] == mocks.api_key


def test_azure_stream_and_tools(azure):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    stream = azure.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather?"}], tools=tools, stream=True
    )
    arguments = "".join(
        chunk.choices[0].delta.tool_calls[0].function.arguments or ""
        for chunk in stream
        if chunk.choices and chunk.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == WEATHER_ARGS


def test_azure_rejects_unknown_deployments_and_missing_versions(azure, mocks):
    with pytest.raises(openai.NotFoundError) as missing:
        azure.chat.completions.create(model="not-deployed", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "DeploymentNotFound"
    with pytest.raises(openai.RateLimitError) as limited:
        azure.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi [mock:status=429]"}])
    assert limited.value.response.headers["retry-after"] == "1"
    no_version = httpx.post(
        f"{mocks.url('azure')}/openai/deployments/gpt-4o/chat/completions",
        headers={"api-key": mocks.api_key},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert no_version.status_code == 404
