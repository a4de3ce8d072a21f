//! Errors: Anthropic's error body to canonical, and canonical to Anthropic's shape.

use serde_json::{Value, json};

use crate::canonical::{ErrorBody, ErrorKind};

/// The most of a provider's message or unparseable body copied into an error; a provider
/// may answer with a whole HTML page.
const MAX_MESSAGE_BYTES: usize = 200;

/// Decodes a provider's error answer (`{"type":"error","error":{"type","message"}}`).
///
/// The kind comes from Anthropic's error type when it is one we know, else from the
/// HTTP status. A body that is not Anthropic's error shape becomes
/// "provider returned HTTP <status>" followed by at most 200 bytes of it.
pub fn decode_error(status: u16, body: &[u8]) -> ErrorBody {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let message = error
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str);
    let Some(message) = message else {
        let snippet = String::from_utf8_lossy(&body[..body.len().min(MAX_MESSAGE_BYTES)]);
        let snippet = snippet.split_whitespace().collect::<Vec<_>>().join(" ");
        let message = if snippet.is_empty() {
            format!("provider returned HTTP {status}")
        } else {
            format!("provider returned HTTP {status}: {snippet}")
        };
        return ErrorBody::new(ErrorKind::from_status(status), message);
    };
    let kind = error
        .and_then(|error| error.get("type"))
        .and_then(Value::as_str)
        .and_then(kind_from_type_name)
        .unwrap_or_else(|| ErrorKind::from_status(status));
    ErrorBody::new(kind, truncate(message, MAX_MESSAGE_BYTES * 5))
}

/// Encodes an error in Anthropic's shape, `{"type":"error","error":{"type","message"}}`.
///
/// Kinds map to Anthropic's type names as follows: invalid request →
/// `invalid_request_error`, authentication → `authentication_error`, permission →
/// `permission_error`, not found → `not_found_error`, request too large →
/// `request_too_large`, rate limit → `rate_limit_error`, overloaded → `overloaded_error`,
/// timeout → `timeout_error`; internal, bad gateway and unavailable (503, such as an
/// exhausted budget) → `api_error`, Anthropic's generic server-side type, since
/// `overloaded_error` would tell the client that the provider is busy. SDKs pick their
/// exception from the HTTP status, which [`ErrorKind::status`] gives.
pub fn encode_error(error: &ErrorBody) -> Value {
    json!({
        "type": "error",
        "error": {
            "type": type_name(error.kind),
            "message": error.message,
        },
    })
}

fn type_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Internal | ErrorKind::BadGateway | ErrorKind::Unavailable => "api_error",
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::Overloaded => "overloaded_error",
    }
}

/// The kind for an Anthropic error type; `None` for `api_error` and unknown types, whose
/// meaning the HTTP status tells better.
fn kind_from_type_name(type_name: &str) -> Option<ErrorKind> {
    match type_name {
        "invalid_request_error" => Some(ErrorKind::InvalidRequest),
        "authentication_error" => Some(ErrorKind::Authentication),
        "permission_error" => Some(ErrorKind::Permission),
        "not_found_error" => Some(ErrorKind::NotFound),
        "request_too_large" => Some(ErrorKind::RequestTooLarge),
        "rate_limit_error" => Some(ErrorKind::RateLimit),
        "timeout_error" => Some(ErrorKind::Timeout),
        "overloaded_error" => Some(ErrorKind::Overloaded),
        _ => None,
    }
}

/// At most `max_bytes` of `text`, cut at a character boundary.
fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
