//! `POST /v1/embeddings`: OpenAI's shape, passed through (model replaced) to models whose
//! provider serves OpenAI-shaped embeddings and converted (by
//! [`routerly_core::wire::embeddings`]) for Gemini, Mistral and Ollama; recorded with call
//! type `embedding` and priced by input tokens (Gemini counts none: the estimate, logged).
//! A client asking for base64 gets little-endian `f32` base64 whatever the provider sent.
//!
//! Which models may serve: a model named by the client (or by an alias) unless it is flagged
//! `embedding: false` or its provider has no embeddings (Anthropic); its fallbacks, and the
//! models `auto` picks from, must be flagged `embedding: true`.

use axum::response::{IntoResponse, Response};
use routerly_core::canonical::{
    ChatRequest, ContentPart, ErrorBody, ErrorKind, Message, Role, Usage,
};
use routerly_core::config::ModelConfig;
use routerly_core::wire::WireFormat;
use routerly_core::wire::embeddings::{self as wire_embeddings, EmbeddingsFormat};
use routerly_providers::{Operation, UpstreamError};
use serde_json::Value;

use super::candidates::AUTO;
use super::error::ProxyError;
use super::surface::SurfaceCall;
use super::{Call, Caller};
use crate::state::AppState;

const FORMAT: WireFormat = WireFormat::OpenAiChat;

fn invalid(message: impl Into<String>, param: &str) -> ProxyError {
    ProxyError::from_body(
        FORMAT,
        ErrorBody::new(ErrorKind::InvalidRequest, message).with_param(param),
    )
}

/// The embeddings surface: the client's body converted per provider, no canonical answer.
pub(super) struct Embeddings;

impl SurfaceCall for Embeddings {
    async fn decode(
        _app: &AppState,
        _caller: &Caller<'_>,
        _format: WireFormat,
        raw: &mut Value,
    ) -> Result<(ChatRequest, Self), ProxyError> {
        Ok((decode(raw)?, Embeddings))
    }

    fn candidates<'s>(
        &self,
        candidates: Vec<&'s ModelConfig>,
        requested: &str,
    ) -> Result<Vec<&'s ModelConfig>, ProxyError> {
        embedding_candidates(candidates, requested)
    }

    fn operation(&self, _provider_format: WireFormat) -> Operation {
        Operation::Embeddings
    }

    /// Never: the bodies are converted by [`wire_embeddings`], which drops nothing, and the
    /// client's query string goes on.
    fn translates(&self, _call: &Call<'_>, _provider_format: WireFormat) -> bool {
        false
    }

    fn upstream_body(
        &self,
        call: &mut Call<'_>,
        model: &ModelConfig,
        _provider_format: WireFormat,
    ) -> Result<Vec<u8>, ProxyError> {
        upstream_body(model, call.parsed())
    }

    async fn answer(
        &self,
        call: &Call<'_>,
        model: &ModelConfig,
        _provider_format: WireFormat,
        body: &[u8],
    ) -> Result<(Response, Usage), UpstreamError> {
        answer(model, call.parsed(), body)
    }
}

/// The request as far as routing, budgets and records need it: the model, and the input's
/// text as one user message (for the estimate); nothing is generated.
fn decode(raw: &Value) -> Result<ChatRequest, ProxyError> {
    let model = match raw.get("model") {
        Some(Value::String(model)) => model.clone(),
        None | Some(Value::Null) => {
            return Err(invalid("you must provide a model parameter", "model"));
        }
        Some(_) => {
            return Err(invalid(
                "Invalid type for 'model': expected a string.",
                "model",
            ));
        }
    };
    let bad_input = || {
        invalid(
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            "input",
        )
    };
    let text = match raw.get("input") {
        None | Some(Value::Null) => {
            return Err(invalid("Missing required parameter: 'input'.", "input"));
        }
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(text) if !text.is_empty() => texts.push(text.clone()),
                    // Token ids: count each as about four bytes.
                    Value::Number(_) => texts.push("tokn".to_owned()),
                    Value::Array(tokens)
                        if !tokens.is_empty() && tokens.iter().all(Value::is_number) =>
                    {
                        texts.push("tokn".repeat(tokens.len()));
                    }
                    _ => return Err(bad_input()),
                }
            }
            texts.join("\n")
        }
        Some(_) => return Err(bad_input()),
    };
    match raw.get("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(format)) if format == "float" || format == "base64" => {}
        Some(_) => {
            return Err(invalid(
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                "encoding_format",
            ));
        }
    }
    Ok(ChatRequest {
        model,
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentPart::text(text)],
        }],
        max_tokens: Some(0),
        user: raw.get("user").and_then(Value::as_str).map(str::to_owned),
        ..ChatRequest::default()
    })
}

/// Whether `model`'s provider serves embeddings at all.
fn provider_embeds(model: &ModelConfig) -> bool {
    EmbeddingsFormat::of(model.provider).is_some()
}

/// The embeddings API of `model`'s provider (only embedding providers are candidates).
fn format_of(model: &ModelConfig) -> EmbeddingsFormat {
    EmbeddingsFormat::of(model.provider).unwrap_or(EmbeddingsFormat::OpenAi)
}

/// The body for `model`'s provider: the client's own (model replaced) for OpenAI-shaped
/// providers, converted for the others; a 400 naming the model for inputs it cannot take.
pub(super) fn upstream_body(model: &ModelConfig, raw: &Value) -> Result<Vec<u8>, ProxyError> {
    let body = wire_embeddings::encode_request(format_of(model), raw, &model.upstream_model)
        .map_err(|error| {
            let mut body = error.to_error_body();
            body.message = format!(
                "The model `{}` ({}): {}",
                model.id,
                model.provider.as_str(),
                body.message
            );
            ProxyError::from_body(FORMAT, body)
        })?;
    Ok(serde_json::to_vec(&body).expect("a JSON value serializes"))
}

/// The candidates that may embed, in order.
fn embedding_candidates<'s>(
    candidates: Vec<&'s ModelConfig>,
    requested: &str,
) -> Result<Vec<&'s ModelConfig>, ProxyError> {
    let named = (!requested.is_empty() && requested != AUTO)
        .then(|| candidates.first().copied())
        .flatten();
    if let Some(named) = named
        && (!provider_embeds(named) || named.capabilities.embedding == Some(false))
    {
        return Err(ProxyError::from_body(
            FORMAT,
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!(
                    "The model `{}` ({}) does not create embeddings.",
                    named.id,
                    named.provider.as_str()
                ),
            )
            .with_param("model")
            .with_code("unsupported_feature"),
        ));
    }
    let usable: Vec<&'s ModelConfig> = candidates
        .into_iter()
        .enumerate()
        .filter(|(position, model)| {
            (named.is_some() && *position == 0)
                || (provider_embeds(model) && model.capabilities.embedding == Some(true))
        })
        .map(|(_, model)| model)
        .collect();
    if usable.is_empty() {
        return Err(ProxyError::from_body(
            FORMAT,
            ErrorBody::new(
                ErrorKind::NotFound,
                "This project has no embedding model this token may use; register one with `--capabilities embedding`.",
            )
            .with_param("model")
            .with_code("model_not_found"),
        ));
    }
    Ok(usable)
}

/// The provider's embeddings answer for the client, in OpenAI's shape (model replaced,
/// base64 when asked), and its usage. `raw` is the client's request.
fn answer(
    model: &ModelConfig,
    raw: &Value,
    body: &[u8],
) -> Result<(Response, Usage), UpstreamError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| UpstreamError::Protocol(format!("the answer is not JSON: {error}")))?;
    let mut decoded = wire_embeddings::decode_response(format_of(model), &value, raw, &model.id)
        .map_err(UpstreamError::Protocol)?;
    if decoded.estimated {
        tracing::debug!(
            model = %model.id,
            tokens = decoded.prompt_tokens,
            "the provider reports no embedding tokens; recording the estimate"
        );
    }
    if wire_embeddings::wants_base64(raw) {
        wire_embeddings::encode_base64(&mut decoded.body);
    }
    let usage = Usage {
        input_tokens: decoded.prompt_tokens,
        ..Usage::default()
    };
    Ok((axum::Json(decoded.body).into_response(), usage))
}
