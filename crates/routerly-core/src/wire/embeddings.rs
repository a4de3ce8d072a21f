//! Embeddings: OpenAI's `/v1/embeddings` request and answer, converted to and from each
//! provider's own embeddings API.
//!
//! - OpenAI and the OpenAI-compatible providers (Azure included): the client's body, model
//!   replaced, and the provider's answer as it is.
//! - Mistral `/v1/embeddings`: OpenAI's shape, but `dimensions` is `output_dimension`, there
//!   is no `encoding_format` or `user`, and inputs must be text.
//! - Gemini `models/{m}:batchEmbedContents`: `requests[{model, content: {parts: [{text}]}}]`
//!   answered with `embeddings[{values}]`. Gemini reports no usage: the tokens are the
//!   documented estimate of [`crate::estimate`] (about four bytes a token), marked estimated.
//! - Ollama `/api/embed`: `{model, input}` answered with `{embeddings, prompt_eval_count}`.
//!
//! When the client asks for `encoding_format: "base64"` and the provider answered floats,
//! [`encode_base64`] turns each vector into OpenAI's little-endian `f32` base64.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::canonical::DecodeError;
use crate::config::ProviderKind;

/// How a provider's embeddings API is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingsFormat {
    /// OpenAI's `/embeddings` (OpenAI, Azure and the OpenAI-compatible providers).
    OpenAi,
    /// Mistral's `/v1/embeddings`.
    Mistral,
    /// Gemini's `batchEmbedContents`.
    Gemini,
    /// Ollama's `/api/embed`.
    Ollama,
}

impl EmbeddingsFormat {
    /// The embeddings API of `provider`, or `None` when it has none (Anthropic).
    pub fn of(provider: ProviderKind) -> Option<Self> {
        match provider {
            ProviderKind::Anthropic => None,
            ProviderKind::Gemini => Some(EmbeddingsFormat::Gemini),
            ProviderKind::Mistral => Some(EmbeddingsFormat::Mistral),
            ProviderKind::Ollama => Some(EmbeddingsFormat::Ollama),
            _ => Some(EmbeddingsFormat::OpenAi),
        }
    }
}

/// A provider's answer in OpenAI's shape, and its input tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsAnswer {
    /// `{object: "list", data: [{object: "embedding", index, embedding}], model, usage}`.
    pub body: Value,
    /// Input tokens: the provider's count, or the estimate when `estimated`.
    pub prompt_tokens: u64,
    /// Whether `prompt_tokens` is Routerly's estimate (the provider reported none).
    pub estimated: bool,
}

/// The texts of an OpenAI request's `input`, for providers that take text only.
fn texts(raw: &Value, provider: &str) -> Result<Vec<String>, DecodeError> {
    let token_ids = || {
        DecodeError::at(
            "input",
            format!("{provider} embeddings take text only; token-id inputs are not supported."),
        )
    };
    match raw.get("input") {
        Some(Value::String(text)) => Ok(vec![text.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(token_ids))
            .collect(),
        _ => Err(DecodeError::at(
            "input",
            "`input` must be a string or a list of strings",
        )),
    }
}

/// The estimated input tokens of an OpenAI request's `input` (token ids count as given).
pub fn estimated_tokens(raw: &Value) -> u64 {
    let text_tokens = |text: &str| (text.len() as u64).div_ceil(4);
    match raw.get("input") {
        Some(Value::String(text)) => text_tokens(text),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text_tokens(text),
                Value::Number(_) => 1,
                Value::Array(tokens) => tokens.len() as u64,
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// Whether the client asked for base64 vectors.
pub fn wants_base64(raw: &Value) -> bool {
    raw.get("encoding_format").and_then(Value::as_str) == Some("base64")
}

/// The provider's request body for the OpenAI embeddings request `raw`.
pub fn encode_request(
    format: EmbeddingsFormat,
    raw: &Value,
    upstream_model: &str,
) -> Result<Value, DecodeError> {
    let dimensions = raw.get("dimensions").and_then(Value::as_u64);
    match format {
        EmbeddingsFormat::OpenAi => {
            let mut body = raw.clone();
            body["model"] = Value::String(upstream_model.to_owned());
            Ok(body)
        }
        EmbeddingsFormat::Mistral => {
            let mut body = Map::new();
            body.insert("model".into(), upstream_model.into());
            body.insert("input".into(), texts(raw, "Mistral")?.into());
            if let Some(dimensions) = dimensions {
                body.insert("output_dimension".into(), dimensions.into());
            }
            Ok(Value::Object(body))
        }
        EmbeddingsFormat::Gemini => {
            let model = if upstream_model.starts_with("models/") {
                upstream_model.to_owned()
            } else {
                format!("models/{upstream_model}")
            };
            let requests: Vec<Value> = texts(raw, "Gemini")?
                .into_iter()
                .map(|text| {
                    let mut request =
                        json!({"model": model, "content": {"parts": [{"text": text}]}});
                    if let Some(dimensions) = dimensions {
                        request["outputDimensionality"] = dimensions.into();
                    }
                    request
                })
                .collect();
            Ok(json!({ "requests": requests }))
        }
        EmbeddingsFormat::Ollama => {
            let mut body = json!({"model": upstream_model, "input": texts(raw, "Ollama")?});
            if let Some(dimensions) = dimensions {
                body["dimensions"] = dimensions.into();
            }
            Ok(body)
        }
    }
}

/// The provider's answer `answer` in OpenAI's shape, named `model`. `raw` is the client's
/// request (for the estimate where the provider counts no tokens).
pub fn decode_response(
    format: EmbeddingsFormat,
    answer: &Value,
    raw: &Value,
    model: &str,
) -> Result<EmbeddingsAnswer, String> {
    let vectors: Vec<Value> = match format {
        EmbeddingsFormat::OpenAi | EmbeddingsFormat::Mistral => {
            let data = answer
                .get("data")
                .and_then(Value::as_array)
                .ok_or("the embeddings answer has no `data` array")?;
            if format == EmbeddingsFormat::OpenAi {
                let prompt_tokens = answer
                    .pointer("/usage/prompt_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let mut body = answer.clone();
                body["model"] = Value::String(model.to_owned());
                return Ok(EmbeddingsAnswer {
                    body,
                    prompt_tokens,
                    estimated: false,
                });
            }
            let mut indexed: Vec<(u64, Value)> = data
                .iter()
                .enumerate()
                .map(|(position, item)| {
                    let index = item
                        .get("index")
                        .and_then(Value::as_u64)
                        .unwrap_or(position as u64);
                    let vector = item
                        .get("embedding")
                        .filter(|vector| vector.is_array())
                        .cloned()
                        .ok_or("an item has no `embedding` array")?;
                    Ok((index, vector))
                })
                .collect::<Result<_, &str>>()?;
            indexed.sort_by_key(|(index, _)| *index);
            indexed.into_iter().map(|(_, vector)| vector).collect()
        }
        EmbeddingsFormat::Gemini => answer
            .get("embeddings")
            .and_then(Value::as_array)
            .ok_or("the Gemini answer has no `embeddings` array")?
            .iter()
            .map(|item| {
                item.get("values")
                    .filter(|values| values.is_array())
                    .cloned()
                    .ok_or("a Gemini embedding has no `values` array")
            })
            .collect::<Result<_, _>>()?,
        EmbeddingsFormat::Ollama => answer
            .get("embeddings")
            .and_then(Value::as_array)
            .ok_or("the Ollama answer has no `embeddings` array")?
            .clone(),
    };
    let (prompt_tokens, estimated) = match format {
        EmbeddingsFormat::Mistral => (answer.pointer("/usage/prompt_tokens"), false),
        EmbeddingsFormat::Ollama => (answer.get("prompt_eval_count"), false),
        _ => (None, true),
    };
    let (prompt_tokens, estimated) = match prompt_tokens.and_then(Value::as_u64) {
        Some(tokens) if !estimated => (tokens, false),
        _ => (estimated_tokens(raw), true),
    };
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| json!({"object": "embedding", "index": index, "embedding": embedding}))
        .collect();
    Ok(EmbeddingsAnswer {
        body: json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }),
        prompt_tokens,
        estimated,
    })
}

/// One vector as OpenAI's base64: the little-endian bytes of each `f32`.
pub fn base64_vector(values: &[f32]) -> String {
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Turns every float vector of an OpenAI-shaped answer into base64 (vectors the provider
/// already sent as base64 stay as they are).
pub fn encode_base64(body: &mut Value) {
    let Some(data) = body.get_mut("data").and_then(Value::as_array_mut) else {
        return;
    };
    for item in data {
        let Some(Value::Array(numbers)) = item.get("embedding") else {
            continue;
        };
        let floats: Vec<f32> = numbers
            .iter()
            .map(|number| number.as_f64().unwrap_or(0.0) as f32)
            .collect();
        item["embedding"] = Value::String(base64_vector(&floats));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Value {
        json!({"model": "embed", "input": ["hello world", "bye"], "dimensions": 8, "encoding_format": "base64", "user": "u1"})
    }

    #[test]
    fn providers_map_to_their_formats() {
        assert_eq!(EmbeddingsFormat::of(ProviderKind::Anthropic), None);
        assert_eq!(
            EmbeddingsFormat::of(ProviderKind::Azure),
            Some(EmbeddingsFormat::OpenAi)
        );
        assert_eq!(
            EmbeddingsFormat::of(ProviderKind::Gemini),
            Some(EmbeddingsFormat::Gemini)
        );
    }

    #[test]
    fn openai_requests_pass_through_with_the_model_replaced() {
        let body = encode_request(
            EmbeddingsFormat::OpenAi,
            &request(),
            "text-embedding-3-small",
        )
        .expect("encodes");
        assert_eq!(body["model"], "text-embedding-3-small");
        assert_eq!(body["encoding_format"], "base64");
        assert_eq!(body["user"], "u1");
    }

    #[test]
    fn gemini_batch_request_and_answer() {
        let body = encode_request(EmbeddingsFormat::Gemini, &request(), "gemini-embedding-001")
            .expect("encodes");
        assert_eq!(
            body,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello world"}]}, "outputDimensionality": 8},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "bye"}]}, "outputDimensionality": 8},
            ]})
        );
        let answer = json!({"embeddings": [{"values": [0.5, -0.5]}, {"values": [1.0, 0.0]}]});
        let decoded =
            decode_response(EmbeddingsFormat::Gemini, &answer, &request(), "gem").expect("decodes");
        assert!(decoded.estimated);
        // "hello world" is 11 bytes (3 tokens), "bye" 3 bytes (1 token).
        assert_eq!(decoded.prompt_tokens, 4);
        assert_eq!(decoded.body["data"][1]["embedding"], json!([1.0, 0.0]));
        assert_eq!(decoded.body["data"][1]["index"], 1);
        assert_eq!(decoded.body["model"], "gem");
        assert_eq!(decoded.body["usage"]["prompt_tokens"], 4);
    }

    #[test]
    fn ollama_embed_request_and_answer() {
        let body =
            encode_request(EmbeddingsFormat::Ollama, &request(), "nomic-embed-text").expect("ok");
        assert_eq!(
            body,
            json!({"model": "nomic-embed-text", "input": ["hello world", "bye"], "dimensions": 8})
        );
        let answer = json!({"model": "nomic-embed-text", "embeddings": [[0.1, 0.2], [0.3, 0.4]], "total_duration": 1, "prompt_eval_count": 5});
        let decoded =
            decode_response(EmbeddingsFormat::Ollama, &answer, &request(), "local").expect("ok");
        assert!(!decoded.estimated);
        assert_eq!(decoded.prompt_tokens, 5);
        assert_eq!(decoded.body["data"][0]["embedding"], json!([0.1, 0.2]));
        assert_eq!(decoded.body["object"], "list");
    }

    #[test]
    fn mistral_request_renames_dimensions_and_drops_openai_only_fields() {
        let body = encode_request(EmbeddingsFormat::Mistral, &request(), "mistral-embed")
            .expect("encodes");
        assert_eq!(
            body,
            json!({"model": "mistral-embed", "input": ["hello world", "bye"], "output_dimension": 8})
        );
        let answer = json!({"id": "e1", "object": "list", "model": "mistral-embed",
            "data": [{"object": "embedding", "index": 1, "embedding": [2.0]}, {"object": "embedding", "index": 0, "embedding": [1.0]}],
            "usage": {"prompt_tokens": 7, "total_tokens": 7, "completion_tokens": 0}});
        let decoded =
            decode_response(EmbeddingsFormat::Mistral, &answer, &request(), "m").expect("ok");
        assert_eq!(decoded.prompt_tokens, 7);
        assert_eq!(decoded.body["data"][0]["embedding"], json!([1.0]));
    }

    #[test]
    fn token_id_inputs_are_refused_for_text_only_providers() {
        let raw = json!({"model": "m", "input": [[1, 2, 3]]});
        let error = encode_request(EmbeddingsFormat::Gemini, &raw, "g").expect_err("refused");
        assert_eq!(error.param.as_deref(), Some("input"));
        assert!(error.message.contains("token-id"));
        assert_eq!(estimated_tokens(&raw), 3);
    }

    #[test]
    fn floats_become_little_endian_f32_base64() {
        let mut body = json!({"data": [{"embedding": [1.0, -2.0]}, {"embedding": "AAAA"}]});
        encode_base64(&mut body);
        // 1.0f32 = 00 00 80 3f, -2.0f32 = 00 00 00 c0.
        assert_eq!(body["data"][0]["embedding"], "AACAPwAAAMA=");
        assert_eq!(body["data"][1]["embedding"], "AAAA");
    }
}
