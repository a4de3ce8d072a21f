//! Error bodies: a provider's error to [`ErrorBody`], and an [`ErrorBody`] to the
//! `{"error":{…}}` body OpenAI SDKs turn into their normal exceptions.

use serde_json::{Value, json};

use crate::canonical::{ErrorBody, ErrorKind};

/// The most of a non-JSON error body that is ever copied into a message.
const GARBAGE_SNIPPET_BYTES: usize = 200;

/// Decodes a provider's error answer. The kind comes from the HTTP status; the message
/// from `error.message` when the body is OpenAI-shaped, else a generic text with at most
/// a short, single-line snippet of a plain-text body (never HTML, never headers).
pub fn decode_error(status: u16, body: &[u8]) -> ErrorBody {
    let kind = ErrorKind::from_status(status);
    let generic_message = format!("provider returned HTTP {status}");
    let Ok(body_value) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody::new(kind, garbage_message(&generic_message, body));
    };
    let error_value = body_value.get("error").unwrap_or(&body_value);
    let message = match error_value {
        // `{"error": "text"}`, as some OpenAI-compatible servers send.
        Value::String(message) => Some(message.as_str()),
        Value::Object(error_map) => error_map
            .get("message")
            .or_else(|| error_map.get("detail"))
            .and_then(Value::as_str),
        _ => None,
    };
    let mut error_body = ErrorBody::new(
        kind,
        message
            .filter(|message| !message.trim().is_empty())
            .map_or(generic_message, str::to_owned),
    );
    if let Some(param) = error_value.get("param").and_then(Value::as_str) {
        error_body = error_body.with_param(param);
    }
    match error_value.get("code") {
        Some(Value::String(code)) => error_body = error_body.with_code(code.as_str()),
        Some(Value::Number(code)) => error_body = error_body.with_code(code.to_string()),
        _ => {}
    }
    error_body
}

fn garbage_message(generic_message: &str, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() || text.starts_with('<') {
        return generic_message.to_owned();
    }
    let mut end = text.len().min(GARBAGE_SNIPPET_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let snippet: String = text[..end].split_whitespace().collect::<Vec<_>>().join(" ");
    let ellipsis = if end < text.len() { "…" } else { "" };
    format!("{generic_message}: {snippet}{ellipsis}")
}

/// Encodes an error as OpenAI's `{"error":{"message","type","param","code"}}`.
///
/// `type` by kind: invalid request and request too large → `invalid_request_error`;
/// authentication → `authentication_error`; permission → `permission_error`;
/// not found → `not_found_error`; rate limit → `rate_limit_error`; internal, bad
/// gateway and timeout → `server_error`; unavailable (budgets, no provider) and
/// overloaded → `service_unavailable`. `code` carries the specifics (`model_not_found`,
/// `budget_exceeded`).
pub fn encode_error(error: &ErrorBody) -> Value {
    json!({
        "error": {
            "message": error.message,
            "type": error_type_name(error.kind),
            "param": error.param,
            "code": error.code,
        }
    })
}

fn error_type_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Internal | ErrorKind::BadGateway | ErrorKind::Timeout => "server_error",
        ErrorKind::Unavailable | ErrorKind::Overloaded => "service_unavailable",
    }
}
