//! Complete answers: Ollama's final chat object to [`ChatResponse`], and a
//! [`ChatResponse`] to the object an Ollama client reads.

use serde_json::{Map, Value, json};

use super::json::{Object, get};
use super::{
    args_object, generated_call_id, stop_reason_from_name, stop_reason_name, usage_from_ollama,
};
use crate::canonical::{ChatResponse, ContentPart, DecodeError, StopReason};

/// Decodes Ollama's non-streamed answer.
pub fn decode_response(body: &Value) -> Result<ChatResponse, DecodeError> {
    let body_map = body
        .as_object()
        .ok_or_else(|| DecodeError::new("The provider's answer is not a JSON object."))?;
    let message_map = get(body_map, "message")
        .and_then(Value::as_object)
        .ok_or_else(|| DecodeError::at("message", "The provider's answer has no message."))?;
    let content = decode_message_parts(message_map);
    let called_tools = content
        .iter()
        .any(|part| matches!(part, ContentPart::ToolCall { .. }));
    Ok(ChatResponse {
        id: format!("ollama-{}", uuid::Uuid::new_v4().simple()),
        model: get(body_map, "model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        content,
        stop_reason: Some(stop_reason_from_name(
            get(body_map, "done_reason").and_then(Value::as_str),
            called_tools,
        )),
        stop_sequence: None,
        usage: usage_from_ollama(body_map),
        created: created_seconds(body_map),
        web_sources: Default::default(),
    })
}

/// Unix seconds of `created_at`, or now when it is absent or unreadable.
pub(super) fn created_seconds(body_map: &Object) -> i64 {
    get(body_map, "created_at")
        .and_then(Value::as_str)
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map_or_else(|| chrono::Utc::now().timestamp(), |at| at.timestamp())
}

/// Thinking, text and tool calls of a message (or of one streamed piece of it).
pub(super) fn decode_message_parts(message_map: &Object) -> Vec<ContentPart> {
    let mut content = Vec::new();
    if let Some(thinking) = get(message_map, "thinking").and_then(Value::as_str)
        && !thinking.is_empty()
    {
        content.push(ContentPart::Thinking {
            text: thinking.to_owned(),
            signature: None,
        });
    }
    if let Some(text) = get(message_map, "content").and_then(Value::as_str)
        && !text.is_empty()
    {
        content.push(ContentPart::text(text));
    }
    for call in get(message_map, "tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(function) = call.get("function").and_then(Value::as_object) else {
            continue;
        };
        let arguments = match get(function, "arguments") {
            None => "{}".to_owned(),
            Some(Value::String(text)) => text.clone(),
            Some(arguments) => arguments.to_string(),
        };
        content.push(ContentPart::ToolCall {
            id: call
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map_or_else(generated_call_id, str::to_owned),
            name: get(function, "name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments,
        });
    }
    content
}

/// Encodes a [`ChatResponse`] as the final `/api/chat` object an Ollama client reads.
pub fn encode_response(response: &ChatResponse) -> Value {
    let mut text = String::new();
    let mut thinking = String::new();
    let mut tool_calls = Vec::new();
    for part in &response.content {
        match part {
            ContentPart::Text { text: part_text } => text.push_str(part_text),
            ContentPart::Thinking {
                text: thinking_text,
                ..
            } => thinking.push_str(thinking_text),
            ContentPart::ToolCall {
                name, arguments, ..
            } => tool_calls
                .push(json!({"function": {"name": name, "arguments": args_object(arguments)}})),
            ContentPart::Image { .. }
            | ContentPart::ToolResult { .. }
            | ContentPart::Document { .. }
            | ContentPart::Opaque { .. } => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    message.insert("content".into(), Value::from(text));
    if !thinking.is_empty() {
        message.insert("thinking".into(), Value::from(thinking));
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    let stop_reason = response
        .stop_reason
        .as_ref()
        .unwrap_or(&StopReason::EndTurn);
    json!({
        "model": response.model,
        "created_at": created_at(response.created),
        "message": message,
        "done": true,
        "done_reason": stop_reason_name(stop_reason),
        "prompt_eval_count": response.usage.input_tokens,
        "eval_count": response.usage.output_tokens,
    })
}

/// RFC 3339 time of Unix seconds, as Ollama writes `created_at`.
pub(super) fn created_at(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
