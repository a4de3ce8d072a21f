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



# ---- every provider family with embeddings --------------------------------------------------

import base64  # noqa: E402
import struct  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from provider_mocks import AllMocks, start_all_mocks  # noqa: E402


@dataclass(frozen=True)
class Family:
    """An embedding model of one provider family, as registered for these tests."""

    model_id: str
    provider: str  # Routerly's provider name
    mock: str  # which mock serves it
    upstream: str  # the provider's model (Azure: the deployment)
    path: str  # where the provider receives the call
    price: float  # USD per million input tokens
    estimated: bool = False  # the provider reports no tokens: Routerly's estimate

    def tokens(self, texts: list[str]) -> int:
        if self.estimated:  # Routerly's documented estimate: about four bytes a token, per text
            return sum(tokens(utf8_len(text)) for text in texts)
        return tokens(utf8_len(*texts))  # the mocks' rule over the whole input


FAMILIES = [
    Family("azure-embed", "azure", "azure", "text-embedding-3-small",
           "/openai/deployments/text-embedding-3-small/embeddings", 0.02),
    Family("compat-embed", "custom", "openai", "text-embedding-3-small", "/v1/embeddings", 0.03),
    Family("gemini-embed", "gemini", "gemini", "gemini-embedding-001",
           "/v1beta/models/gemini-embedding-001:batchEmbedContents", 0.15, estimated=True),
    Family("mistral-embed", "mistral", "mistral", "mistral-embed", "/v1/embeddings", 0.10),
    Family("local-embed", "ollama", "ollama", "nomic-embed-text", "/api/embed", 0.01),
]  # fmt: skip
families = pytest.mark.parametrize("family", FAMILIES, ids=[family.provider for family in FAMILIES])


@dataclass
class FamilySetup:
    routerly: Routerly
    mocks: AllMocks


@pytest.fixture(scope="module")
def all_families() -> Iterator[FamilySetup]:
    process, mocks = start_all_mocks()
    try:
        classic = MockProviders(mocks.url("openai"), mocks.url("anthropic"), mocks.api_key)
        with running_routerly(classic) as instance:
            for family in FAMILIES:
                instance.cli(
                    "model", "add", "--id", family.model_id, "--provider", family.provider,
                    "--endpoint", mocks.url(family.mock), "--api-key", mocks.api_key,
                    "--upstream-model", family.upstream, "--input-price", str(family.price),
                    "--output-price", "0", "--capabilities", "embedding",
                )  # fmt: skip
                instance.cli("project", "model", "add", instance.project_slug, family.model_id)
            yield FamilySetup(instance, mocks)
    finally:
        stop_process(process)


def decode_base64(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def check_embedding_record(setup: FamilySetup, trace_id: str, family: Family, expected_tokens: int) -> None:
    record = setup.routerly.record_for(trace_id)
    expected = {
        "surface": "embeddings",
        "call_type": "embedding",
        "model_id": family.model_id,
        "provider": family.provider,
        "input_tokens": expected_tokens,
        "output_tokens": 0,
        "outcome": "success",
        "status": 200,
    }
    assert {key: record[key] for key in expected} == expected, record
    assert record["cost_usd"] == pytest.approx(expected_tokens * family.price / 1e6, rel=1e-9)


@families
@pytest.mark.parametrize("encoding", ["float", "base64", "sdk-default"])
def test_every_family_embeds_through_the_openai_sdk(all_families, family, encoding):
    texts = ["The cat sat on the mat", "A dog sat on the rug", "Quantum flux capacitors"]
    options = {} if encoding == "sdk-default" else {"encoding_format": encoding}
    raw = client(all_families.routerly).embeddings.with_raw_response.create(
        model=family.model_id, input=texts, **options
    )
    result = raw.parse()
    assert raw.headers["x-routerly-model"] == family.model_id
    assert result.model == family.model_id
    assert [item.index for item in result.data] == [0, 1, 2]
    if encoding == "base64":  # asked for explicitly, the SDK leaves the strings to the caller
        assert all(isinstance(item.embedding, str) for item in result.data)
        vectors = [decode_base64(item.embedding) for item in result.data]
    else:
        vectors = [item.embedding for item in result.data]
    assert all(len(vector) == 64 for vector in vectors)
    assert all(sum(value * value for value in vector) == pytest.approx(1.0, rel=1e-4) for vector in vectors)
    # Deterministic word-hash vectors: texts sharing words are closer than unrelated ones.
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2])
    expected_tokens = family.tokens(texts)
    assert result.usage.prompt_tokens == expected_tokens
    check_embedding_record(all_families, raw.headers["x-routerly-trace-id"], family, expected_tokens)
    sent = all_families.mocks.requests(family.mock)[-1]
    assert sent["path"] == family.path, sent


@families
def test_float_and_base64_vectors_agree(all_families, family):
    api = client(all_families.routerly).embeddings
    floats = api.create(model=family.model_id, input="hello world", encoding_format="float")
    encoded = api.create(model=family.model_id, input="hello world", encoding_format="base64")
    assert decode_base64(encoded.data[0].embedding) == pytest.approx(floats.data[0].embedding, rel=1e-6)


@families
def test_dimensions_reach_every_provider(all_families, family):
    result = client(all_families.routerly).embeddings.create(
        model=family.model_id, input="hello world", dimensions=8
    )
    assert len(result.data[0].embedding) == 8
    body = all_families.mocks.requests(family.mock)[-1]["body"]
    if family.provider == "gemini":
        assert body["requests"][0]["outputDimensionality"] == 8
        assert body["requests"][0]["model"] == f"models/{family.upstream}"
    elif family.provider == "mistral":
        assert body["output_dimension"] == 8 and "encoding_format" not in body
    else:
        assert body["dimensions"] == 8


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.provider in ("gemini", "mistral", "ollama")],
                         ids=["gemini", "mistral", "ollama"])  # fmt: skip
def test_token_id_inputs_to_text_only_providers_are_a_clear_400(all_families, family):
    with pytest.raises(openai.BadRequestError) as caught:
        client(all_families.routerly).embeddings.create(model=family.model_id, input=[[1, 2, 3]])
    message = str(caught.value)
    assert family.model_id in message and "token-id" in message
    assert caught.value.param == "input"


def test_a_provider_error_is_translated_to_openai_shape(all_families):
    family = next(f for f in FAMILIES if f.provider == "gemini")
    all_families.mocks.fail_next("gemini", 1, 400)
    with pytest.raises(openai.BadRequestError) as caught:
        client(all_families.routerly).embeddings.create(model=family.model_id, input="hi")
    assert isinstance(caught.value.body, dict) and caught.value.body.get("message"), caught.value.body
