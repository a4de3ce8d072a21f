//! `POST /v1/embeddings`: OpenAI's shape, passed through (model replaced) to models whose
//! provider serves OpenAI-shaped embeddings, recorded with call type `embedding` and priced
//! by input tokens.
//!
//! Which models may serve: a model named by the client (or by an alias) unless it is flagged
//! `embedding: false` or its provider has no embeddings (Anthropic); its fallbacks, and the
//! models `auto` picks from, must be flagged `embedding: true`.

use axum::response::{IntoResponse, Response};
use routerly_core::canonical::{
    ChatRequest, ContentPart, ErrorBody, ErrorKind, Message, Role, Usage,
};
use routerly_core::config::{ModelConfig, ProviderKind};
use routerly_core::wire::WireFormat;
use routerly_providers::UpstreamError;
use serde_json::Value;

use super::candidates::AUTO;
use super::error::ProxyError;

const FORMAT: WireFormat = WireFormat::OpenAiChat;

fn invalid(message: impl Into<String>, param: &str) -> ProxyError {
    ProxyError::from_body(
        FORMAT,
        ErrorBody::new(ErrorKind::InvalidRequest, message).with_param(param),
    )
}

/// The request as far as routing, budgets and records need it: the model, and the input's
/// text as one user message (for the estimate); nothing is generated.
pub(super) fn decode(raw: &Value) -> Result<ChatRequest, ProxyError> {
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
    model.provider != ProviderKind::Anthropic
}

/// The candidates that may embed, in order.
pub(super) fn candidates<'s>(
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

/// The provider's embeddings answer for the client (model replaced) and its usage.
pub(super) fn answer(model: &ModelConfig, body: &[u8]) -> Result<(Response, Usage), UpstreamError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|error| UpstreamError::Protocol(format!("the answer is not JSON: {error}")))?;
    if !value.get("data").is_some_and(Value::is_array) {
        return Err(UpstreamError::Protocol(
            "the embeddings answer has no `data` array".to_owned(),
        ));
    }
    let prompt_tokens = value
        .pointer("/usage/prompt_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    value["model"] = Value::String(model.id.clone());
    let usage = Usage {
        input_tokens: prompt_tokens,
        ..Usage::default()
    };
    Ok((axum::Json(value).into_response(), usage))
}
