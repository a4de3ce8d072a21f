//! Complete answers: Mistral's `chat.completion`, normalized and decoded as OpenAI's.

use serde_json::Value;

use crate::canonical::{ChatResponse, DecodeError};
use crate::wire::openai;

/// Decodes Mistral's whole answer.
pub fn decode_response(body: &Value) -> Result<ChatResponse, DecodeError> {
    let mut body = body.clone();
    if let Some(Value::Array(choices)) = body.get_mut("choices") {
        for choice in choices {
            normalize_choice(choice, "message");
        }
    }
    openai::decode_response(&body)
}

/// Encodes a [`ChatResponse`] as the `chat.completion` a Mistral client reads (OpenAI's shape).
pub fn encode_response(response: &ChatResponse) -> Value {
    openai::encode_response(response)
}

/// Rewrites one choice in place to OpenAI's shape: chunked `content` becomes text plus
/// `reasoning_content`, and `model_length` becomes `length`.
pub(super) fn normalize_choice(choice: &mut Value, message_key: &str) {
    if choice.get("finish_reason").and_then(Value::as_str) == Some("model_length") {
        choice["finish_reason"] = Value::from("length");
    }
    let Some(message) = choice.get_mut(message_key) else {
        return;
    };
    let Some(Value::Array(chunks)) = message.get("content") else {
        return;
    };
    let mut text = String::new();
    let mut thinking = String::new();
    for chunk in chunks {
        match chunk.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(chunk.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                for inner in chunk
                    .get("thinking")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    thinking.push_str(inner.get("text").and_then(Value::as_str).unwrap_or(""));
                }
            }
            _ => {}
        }
    }
    message["content"] = Value::from(text);
    if !thinking.is_empty() {
        message["reasoning_content"] = Value::from(thinking);
    }
}
