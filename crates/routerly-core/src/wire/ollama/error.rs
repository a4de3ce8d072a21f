//! Error bodies: Ollama's `{"error": "…"}` to [`ErrorBody`], and back.

use serde_json::{Value, json};

use crate::canonical::{ErrorBody, ErrorKind};

/// Decodes Ollama's error answer; the kind follows the HTTP status. A body that is not
/// Ollama-shaped gives a generic message, never the raw body.
pub fn decode_error(status: u16, body: &[u8]) -> ErrorBody {
    let kind = ErrorKind::from_status(status);
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| match value.get("error") {
            Some(Value::String(message)) => Some(message.clone()),
            Some(Value::Object(error)) => error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        })
        .filter(|message| !message.trim().is_empty())
        .unwrap_or_else(|| format!("provider returned HTTP {status}"));
    ErrorBody::new(kind, message)
}

/// Encodes an error as Ollama's `{"error": "…"}`.
pub fn encode_error(error: &ErrorBody) -> Value {
    json!({"error": error.message})
}
