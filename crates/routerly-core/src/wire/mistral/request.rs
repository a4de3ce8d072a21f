//! Mistral chat request bodies: OpenAI's encoding with Mistral's differences applied.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::canonical::{ChatRequest, DecodeError};
use crate::wire::openai;

/// Decodes a Mistral-shaped client body (OpenAI's shape; `random_seed` is its seed, and
/// `tool_choice: "any"` is OpenAI's `"required"`, as [`encode_request`] writes it).
pub fn decode_request(body: &Value) -> Result<ChatRequest, DecodeError> {
    let openai_body;
    let body = if body.get("tool_choice") == Some(&json!("any")) {
        let mut copy = body.clone();
        copy["tool_choice"] = json!("required");
        openai_body = copy;
        &openai_body
    } else {
        body
    };
    let mut request = openai::decode_request(body)?;
    if request.seed.is_none() {
        request.seed = body.get("random_seed").and_then(Value::as_i64);
    }
    Ok(request)
}

/// Encodes a [`ChatRequest`] as a Mistral chat body for `upstream_model`.
pub fn encode_request(request: &ChatRequest, upstream_model: &str) -> Result<Value, DecodeError> {
    let mut body = openai::encode_request(request, upstream_model)?;
    let body_map = body
        .as_object_mut()
        .expect("the OpenAI encoder always writes an object");
    if let Some(max_tokens) = body_map.remove("max_completion_tokens") {
        body_map.insert("max_tokens".into(), max_tokens);
    }
    if let Some(seed) = body_map.remove("seed") {
        body_map.insert("random_seed".into(), seed);
    }
    for forbidden in ["stream_options", "user"] {
        body_map.remove(forbidden);
    }
    if let Some(top_k) = request.top_k {
        body_map.insert("top_k".into(), Value::from(top_k));
    }
    if body_map.get("tool_choice") == Some(&json!("required")) {
        body_map.insert("tool_choice".into(), json!("any"));
    }

    // A tool message is named by the latest call with its id before it (clients reuse ids
    // across turns), learnt as the messages are walked.
    let mut call_names: HashMap<String, Value> = HashMap::new();
    if let Some(Value::Array(messages)) = body_map.get_mut("messages") {
        for message in messages {
            if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
                for call in calls {
                    let name = call.pointer("/function/name").cloned();
                    if let Some(Value::String(id)) = call.get_mut("id") {
                        if let Some(name) = name {
                            call_names.insert(id.clone(), name);
                        }
                        *id = mistral_call_id(id);
                    }
                }
            }
            if message.get("role") == Some(&json!("tool"))
                && let Some(Value::String(id)) = message.get("tool_call_id").cloned().as_ref()
            {
                if let Some(name) = call_names.get(id.as_str()) {
                    message["name"] = name.clone();
                }
                message["tool_call_id"] = Value::from(mistral_call_id(id));
            }
        }
    }
    Ok(body)
}

/// A tool-call id Mistral accepts (`^[a-zA-Z0-9]{9}$`): `id` itself when it already is
/// one, else 9 base-62 digits of its 64-bit FNV-1a hash (the same id maps the same way
/// in a call and in its result).
pub fn mistral_call_id(id: &str) -> String {
    if id.len() == 9 && id.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
        return id.to_owned();
    }
    const DIGITS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..9)
        .map(|_| {
            let digit = DIGITS[(hash % 62) as usize] as char;
            hash /= 62;
            digit
        })
        .collect()
}
