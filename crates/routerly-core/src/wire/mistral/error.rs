//! Error bodies: Mistral's error shapes to [`ErrorBody`], and back.

use serde_json::{Value, json};

use crate::canonical::{ErrorBody, ErrorKind};
use crate::wire::openai;

/// Decodes Mistral's error answer: the flat `{"object":"error","message":…}`, its 422
/// validation detail (`message.detail[]`, joined and naming the field), or the gateway's
/// bare `{"message"}`. Anything else is decoded as OpenAI's shape.
pub fn decode_error(status: u16, body: &[u8]) -> ErrorBody {
    let Ok(body_value) = serde_json::from_slice::<Value>(body) else {
        return openai::decode_error(status, body);
    };
    let kind = ErrorKind::from_status(status);
    match body_value.get("message") {
        Some(Value::String(message)) if !message.trim().is_empty() => {
            let mut error_body = ErrorBody::new(kind, message.as_str());
            if let Some(param) = body_value.get("param").and_then(Value::as_str) {
                error_body = error_body.with_param(param);
            }
            if let Some(code) = body_value.get("code").and_then(Value::as_str) {
                error_body = error_body.with_code(code);
            }
            error_body
        }
        Some(Value::Object(message)) => {
            let details: Vec<(String, String)> = message
                .get("detail")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|detail| {
                    let location: Vec<String> = detail
                        .get("loc")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .skip(1)
                        .map(|part| match part {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    let text = detail
                        .get("msg")
                        .and_then(Value::as_str)
                        .unwrap_or("invalid")
                        .to_owned();
                    (location.join("."), text)
                })
                .collect();
            let Some((first_param, _)) = details.first() else {
                return ErrorBody::new(kind, format!("provider returned HTTP {status}"));
            };
            let text: Vec<String> = details
                .iter()
                .map(|(param, message)| format!("{param}: {message}"))
                .collect();
            ErrorBody::new(kind, text.join("; ")).with_param(first_param.as_str())
        }
        _ => openai::decode_error(status, body),
    }
}

/// Encodes an error in Mistral's flat shape.
pub fn encode_error(error: &ErrorBody) -> Value {
    let openai_error = openai::encode_error(error);
    json!({
        "object": "error",
        "message": error.message,
        "type": openai_error["error"]["type"],
        "param": error.param,
        "code": error.code,
    })
}
