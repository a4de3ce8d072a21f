"""`client.embeddings.create` (the official OpenAI SDK) through Routerly: passed through to an
embedding model, recorded with call type `embedding`, priced by input tokens."""

from __future__ import annotations

from typing import Iterator

import openai
import pytest

from conftest import MockProviders, Routerly, running_routerly, start_mock, stop_process, tokens, utf8_len

EMBEDDING_MODEL = "text-embedding-3-small"
PRICE = 0.02  # USD per million input tokens


@pytest.fixture(scope="module")
def routerly() -> Iterator[Routerly]:
    process, mock = start_mock()
    try:
        with running_routerly(mock) as instance:
            instance.cli(
                "model", "add", "--id", "embed-small", "--provider", "openai",
                "--endpoint", mock.openai_url, "--api-key", mock.api_key,
                "--upstream-model", EMBEDDING_MODEL, "--input-price", str(PRICE), "--output-price", "0",
                "--capabilities", "embedding",
            )  # fmt: skip
            instance.cli("project", "model", "add", "my-app", "embed-small", "--alias", "text-embedding-3-small")
            yield instance
    finally:
        stop_process(process)


def client(routerly: Routerly) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{routerly.url}/v1", api_key=routerly.token, max_retries=0)


@pytest.mark.parametrize("model", ["text-embedding-3-small", "embed-small", "auto"])
def test_embeddings_are_passed_through_recorded_and_priced(routerly, model):
    texts = ["The cat sat on the mat", "A dog sat on the rug"]
    raw = client(routerly).embeddings.with_raw_response.create(model=model, input=texts)
    result = raw.parse()
    assert raw.headers["x-routerly-model"] == "embed-small"
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 64 for item in result.data)
    expected_tokens = tokens(utf8_len(*texts))
    assert result.usage.prompt_tokens == expected_tokens
    assert result.model == "embed-small"
    record = routerly.record_for(raw.headers["x-routerly-trace-id"])
    assert record["surface"] == "embeddings"
    assert record["call_type"] == "embedding"
    assert record["model_id"] == "embed-small"
    assert record["input_tokens"] == expected_tokens and record["output_tokens"] == 0
    assert record["cost_usd"] == pytest.approx(expected_tokens * PRICE / 1e6, rel=1e-9)
    body = routerly.mock.requests("openai")[-1]
    assert body["path"] == "/v1/embeddings" and body["body"]["model"] == EMBEDDING_MODEL


def test_base64_and_dimensions_pass_through(routerly):
    # The SDK asks for base64 by default and decodes it; dimensions reach the provider.
    result = client(routerly).embeddings.create(model="embed-small", input="hello world", dimensions=8)
    assert len(result.data[0].embedding) == 8
    sent = routerly.mock.requests("openai")[-1]["body"]
    assert sent["dimensions"] == 8 and sent["encoding_format"] == "base64"


def test_a_chat_only_model_is_refused_by_name(routerly):
    with pytest.raises(openai.BadRequestError) as caught:
        client(routerly).embeddings.create(model="claude", input="hi")
    assert "claude-sonnet" in str(caught.value) and "embeddings" in str(caught.value)


def test_invalid_input_is_a_400_in_openai_shape(routerly):
    with pytest.raises(openai.BadRequestError) as caught:
        client(routerly).embeddings.create(model="embed-small", input=[])
    assert caught.value.param == "input"

