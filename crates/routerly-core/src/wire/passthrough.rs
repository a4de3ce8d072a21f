//! The rules for relaying a provider's answer to a client of the same format without
//! translating it: which stream events pass untouched, how the model is rewritten in them,
//! which member every whole answer has, and how a stream that broke off ends. `wire/mod.rs`
//! dispatches to these per format; the proxy never branches on a format itself.

use serde_json::Value;

/// How a stream event passes through when client and provider share a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPassthrough {
    /// The frame is copied as it came: it carries no model, usage, end or error.
    Copy,
    /// A JSON object whose top-level members are rewritten in one pass (`model` replaced,
    /// `usage` read), OpenAI Chat's chunks.
    Members,
    /// The event must be decoded (it carries usage, the end, or an error).
    Decode,
}

/// What becomes of a passed-through event once its model is rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRewrite {
    /// Sent as it came.
    Unchanged,
    /// Sent with this `data:` payload instead.
    Replaced(String),
    /// Not the client's to see (the usage-only chunk Routerly asked for).
    Dropped,
}

/// Anthropic: usage rides on `message_start` and `message_delta`, the end on
/// `message_stop`; the content events and pings carry neither.
pub(super) fn anthropic_event(event: Option<&str>) -> StreamPassthrough {
    match event {
        Some("content_block_start" | "content_block_delta" | "content_block_stop" | "ping") => {
            StreamPassthrough::Copy
        }
        _ => StreamPassthrough::Decode,
    }
}

/// OpenAI Chat: every chunk but the `[DONE]` marker is an object of members.
pub(super) fn openai_chat_event(data: &str) -> StreamPassthrough {
    if data == "[DONE]" {
        StreamPassthrough::Decode
    } else {
        StreamPassthrough::Members
    }
}

/// OpenAI Chat: the model replaced, and the usage Routerly asked for removed unless the
/// client asked too (the usage-only chunk dropped).
pub(super) fn openai_chat_rewrite(
    data: &str,
    model_id: &str,
    client_wants_usage: bool,
) -> EventRewrite {
    if data == "[DONE]" {
        return EventRewrite::Unchanged;
    }
    let Ok(mut chunk) = serde_json::from_str::<Value>(data) else {
        return EventRewrite::Unchanged;
    };
    if !client_wants_usage {
        let usage_only = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if usage_only && chunk.get("usage").is_some_and(|usage| !usage.is_null()) {
            return EventRewrite::Dropped;
        }
        if let Some(object) = chunk.as_object_mut() {
            object.remove("usage");
        }
    }
    if chunk.get("model").is_some() {
        chunk["model"] = Value::String(model_id.to_owned());
    }
    EventRewrite::Replaced(chunk.to_string())
}

/// OpenAI Responses: the model inside the events that carry the whole `response`.
pub(super) fn responses_rewrite(data: &str, model_id: &str) -> EventRewrite {
    if !data.contains("\"response\"") {
        return EventRewrite::Unchanged;
    }
    let Ok(mut payload) = serde_json::from_str::<Value>(data) else {
        return EventRewrite::Unchanged;
    };
    if let Some(model) = payload.pointer_mut("/response/model") {
        *model = Value::String(model_id.to_owned());
    }
    EventRewrite::Replaced(payload.to_string())
}

/// Anthropic: the model inside `message_start`.
pub(super) fn anthropic_rewrite(event: Option<&str>, data: &str, model_id: &str) -> EventRewrite {
    if event != Some("message_start") {
        return EventRewrite::Unchanged;
    }
    let Ok(mut start) = serde_json::from_str::<Value>(data) else {
        return EventRewrite::Unchanged;
    };
    if start.pointer("/message/model").is_some() {
        start["message"]["model"] = Value::String(model_id.to_owned());
    }
    EventRewrite::Replaced(start.to_string())
}

/// Anthropic ends a broken stream with a named `error` event carrying the error body.
pub(super) fn anthropic_error_frame(error: &Value) -> String {
    format!("event: error\ndata: {error}\n\n")
}

/// The Responses API's `error` event: the error's members flattened beside it.
pub(super) fn responses_error_frame(error: &Value) -> String {
    let error_object = &error["error"];
    let event = serde_json::json!({
        "type": "error",
        "code": error_object["code"],
        "message": error_object["message"],
        "param": error_object["param"],
        "error": error_object,
    });
    format!("event: error\ndata: {event}\n\n")
}

/// The chat formats end a broken stream with the error body as a plain `data:` frame.
pub(super) fn data_error_frame(error: &Value) -> String {
    format!("data: {error}\n\n")
}
