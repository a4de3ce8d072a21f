//! Error bodies: Gemini's `{"error":{"code","message","status","details"}}` to
//! [`ErrorBody`], and back.

use serde_json::{Value, json};

use crate::canonical::{ErrorBody, ErrorKind};

/// Decodes Gemini's error answer; the kind follows the HTTP status and `status` (such
/// as `RESOURCE_EXHAUSTED`) becomes the code. A body that is not Gemini-shaped gives a
/// generic message, never the raw body.
pub fn decode_error(status: u16, body: &[u8]) -> ErrorBody {
    let kind = ErrorKind::from_status(status);
    let generic_message = format!("provider returned HTTP {status}");
    let Ok(body_value) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody::new(kind, generic_message);
    };
    // `streamGenerateContent` without `alt=sse` wraps errors in an array.
    let error_value = match &body_value {
        Value::Array(items) => items.first().and_then(|item| item.get("error")),
        other => other.get("error"),
    };
    let Some(error_value) = error_value else {
        return ErrorBody::new(kind, generic_message);
    };
    let message = error_value
        .get("message")
        .and_then(Value::as_str)
        .filter(|message| !message.trim().is_empty())
        .map_or(generic_message, str::to_owned);
    let mut error_body = ErrorBody::new(kind, message);
    if let Some(code) = error_value.get("status").and_then(Value::as_str) {
        error_body = error_body.with_code(code);
    }
    error_body
}

/// Encodes an error as Gemini's `{"error":{"code","message","status"}}`.
pub fn encode_error(error: &ErrorBody) -> Value {
    json!({
        "error": {
            "code": error.kind.status(),
            "message": error.message,
            "status": status_name(error.kind),
        }
    })
}

/// The `google.rpc.Code` name Gemini uses for each kind.
fn status_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "INVALID_ARGUMENT",
        ErrorKind::Authentication => "UNAUTHENTICATED",
        ErrorKind::Permission => "PERMISSION_DENIED",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::RateLimit => "RESOURCE_EXHAUSTED",
        ErrorKind::Internal | ErrorKind::BadGateway => "INTERNAL",
        ErrorKind::Unavailable | ErrorKind::Overloaded => "UNAVAILABLE",
        ErrorKind::Timeout => "DEADLINE_EXCEEDED",
    }
}
