//! Complete (non-streamed) answers: a provider's `chat.completion` to [`ChatResponse`],
//! and a [`ChatResponse`] to the `chat.completion` a client reads.

use serde_json::{Map, Value, json};

use super::json::{as_array, as_object, field_path, get, optional_str, token_count, wrong_type};
use crate::canonical::{ChatResponse, Citation, ContentPart, DecodeError, StopReason, Usage};

/// Decodes a provider's `chat.completion` body into a [`ChatResponse`].
///
/// Lenient where OpenAI-compatible providers differ harmlessly (missing ids, arguments
/// sent as an object, `reasoning` instead of `reasoning_content`); strict where the
/// answer would be unusable (no choices, no message).
pub fn decode_response(body: &Value) -> Result<ChatResponse, DecodeError> {
    let body_map = as_object(body, "")
        .map_err(|_| DecodeError::new("The provider's answer is not a JSON object."))?;
    let choices_value = get(body_map, "choices")
        .ok_or_else(|| DecodeError::at("choices", "The provider's answer has no 'choices'."))?;
    let first_choice = as_array(choices_value, "choices")?
        .first()
        .ok_or_else(|| DecodeError::at("choices", "The provider's answer has no choices."))?;
    let choice_map = as_object(first_choice, "choices[0]")?;
    let message_map = get(choice_map, "message")
        .ok_or_else(|| {
            DecodeError::at(
                "choices[0].message",
                "The provider's answer has no message.",
            )
        })
        .and_then(|message_value| as_object(message_value, "choices[0].message"))?;

    let content = decode_message_content(message_map, "choices[0].message")?;
    let stop_reason =
        optional_str(choice_map, "finish_reason", "choices[0]")?.map(stop_reason_from_name);

    Ok(ChatResponse {
        id: optional_str(body_map, "id", "")?.map_or_else(
            || format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            str::to_owned,
        ),
        model: optional_str(body_map, "model", "")?
            .unwrap_or_default()
            .to_owned(),
        content,
        stop_reason,
        stop_sequence: None,
        usage: get(body_map, "usage")
            .and_then(Value::as_object)
            .map(decode_usage)
            .unwrap_or_default(),
        created: get(body_map, "created")
            .and_then(Value::as_i64)
            .unwrap_or_else(|| chrono::Utc::now().timestamp()),
        web_sources: Default::default(),
    })
}

/// Thinking first, then text, then tool calls: the order in which models produce them.
fn decode_message_content(
    message_map: &Map<String, Value>,
    path: &str,
) -> Result<Vec<ContentPart>, DecodeError> {
    let mut content = Vec::new();
    for reasoning_key in ["reasoning_content", "reasoning"] {
        if let Some(text) = get(message_map, reasoning_key).and_then(Value::as_str)
            && !text.is_empty()
        {
            content.push(ContentPart::Thinking {
                text: text.to_owned(),
                signature: None,
            });
            break;
        }
    }

    match get(message_map, "content") {
        None => {}
        Some(Value::String(text)) if text.is_empty() => {}
        Some(Value::String(text)) => content.push(ContentPart::text(text.as_str())),
        Some(Value::Array(part_values)) => {
            for part_value in part_values {
                if let Some(text) = part_value.get("text").and_then(Value::as_str) {
                    content.push(ContentPart::text(text));
                }
            }
        }
        Some(other) => return Err(wrong_type(&field_path(path, "content"), "a string", other)),
    }

    // A refusal is the only text the client gets; show it rather than an empty answer.
    let has_text = content
        .iter()
        .any(|part| matches!(part, ContentPart::Text { .. }));
    if let Some(refusal) = get(message_map, "refusal").and_then(Value::as_str)
        && !refusal.is_empty()
        && !has_text
    {
        content.push(ContentPart::text(refusal));
    }

    if let Some(tool_calls_value) = get(message_map, "tool_calls") {
        let tool_calls_path = field_path(path, "tool_calls");
        for (call_index, call_value) in as_array(tool_calls_value, &tool_calls_path)?
            .iter()
            .enumerate()
        {
            let call_path = format!("{tool_calls_path}[{call_index}]");
            let call_map = as_object(call_value, &call_path)?;
            let function_map = get(call_map, "function")
                .ok_or_else(|| {
                    DecodeError::at(
                        field_path(&call_path, "function"),
                        "A tool call has no function.",
                    )
                })
                .and_then(|function_value| {
                    as_object(function_value, &field_path(&call_path, "function"))
                })?;
            let arguments = match get(function_map, "arguments") {
                None => "{}".to_owned(),
                Some(Value::String(arguments)) => arguments.clone(),
                // Some OpenAI-compatible servers send the arguments object itself.
                Some(arguments) => arguments.to_string(),
            };
            content.push(ContentPart::ToolCall {
                id: optional_str(call_map, "id", &call_path)?
                    .map_or_else(generated_call_id, str::to_owned),
                name: optional_str(function_map, "name", &field_path(&call_path, "function"))?
                    .unwrap_or_default()
                    .to_owned(),
                arguments,
            });
        }
    }
    Ok(content)
}

/// An id for a tool call that arrived without one, so its result can refer to it.
pub(super) fn generated_call_id() -> String {
    format!("call_{}", uuid::Uuid::new_v4().simple())
}

/// OpenAI's `finish_reason` in canonical terms; unknown reasons (some compatible servers
/// invent their own) count as a normal end of turn.
pub(super) fn stop_reason_from_name(name: &str) -> StopReason {
    match name {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

/// The `finish_reason` OpenAI clients expect for `reason`.
pub fn stop_reason_name(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence | StopReason::PauseTurn => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter => "content_filter",
    }
}

/// OpenAI's usage object; `prompt_tokens` already includes cached tokens, as canonical
/// `input_tokens` does.
pub(super) fn decode_usage(usage_map: &Map<String, Value>) -> Usage {
    let prompt_details = usage_map
        .get("prompt_tokens_details")
        .and_then(Value::as_object);
    let completion_details = usage_map
        .get("completion_tokens_details")
        .and_then(Value::as_object);
    Usage {
        input_tokens: token_count(Some(usage_map), "prompt_tokens"),
        output_tokens: token_count(Some(usage_map), "completion_tokens"),
        cached_input_tokens: token_count(prompt_details, "cached_tokens"),
        cache_write_tokens: 0,
        reasoning_tokens: token_count(completion_details, "reasoning_tokens"),
    }
}

/// [`decode_usage`] straight from the usage object's text, reading only its counters with
/// the one-pass member scan (a relay that passes the answer through needs nothing else;
/// building the whole map was a twelfth of such a request, deserializing the counters with
/// serde a thirtieth). `None` when the text does not have that shape; the caller then
/// decodes the whole answer.
pub fn decode_usage_text(text: &str) -> Option<Usage> {
    let mut usage = Usage::default();
    let mut details_read = true;
    crate::members::each_member(text, |key, value| match key {
        "prompt_tokens" => usage.input_tokens = count(value),
        "completion_tokens" => usage.output_tokens = count(value),
        "prompt_tokens_details" => {
            details_read &=
                detail(value, "cached_tokens", &mut usage.cached_input_tokens).is_some();
        }
        "completion_tokens_details" => {
            details_read &=
                detail(value, "reasoning_tokens", &mut usage.reasoning_tokens).is_some();
        }
        _ => {}
    })?;
    details_read.then_some(usage)
}

/// A counter's JSON text as the map reader takes it: a whole number, or 0 (`null`, a
/// string, a fraction, a negative or too large number).
fn count(text: &str) -> u64 {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return 0;
    }
    if text.len() > 1 && text.starts_with('0') {
        // Not JSON; the map reader would have refused the answer.
        return 0;
    }
    text.parse().unwrap_or(0)
}

/// Sets `counter` to the counter `name` of a details object's text (0 when absent or
/// `null`, the last when repeated); `None` when the details are neither an object nor
/// `null`.
fn detail(text: &str, name: &str, counter: &mut u64) -> Option<()> {
    *counter = 0;
    if text == "null" {
        return Some(());
    }
    crate::members::each_member(text, |key, value| {
        if key == name {
            *counter = count(value);
        }
    })
}

/// The usage object clients read. `input_tokens` already holds cache-write tokens
/// (from Anthropic), so `prompt_tokens` is simply `input_tokens`.
pub(super) fn encode_usage(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens(),
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    })
}

/// Encodes a [`ChatResponse`] as the `chat.completion` object a client reads.
///
/// Text parts are joined into `content` (null when the answer is only tool calls);
/// thinking is sent as `reasoning_content`, which OpenAI-compatible clients read.
pub fn encode_response(response: &ChatResponse) -> Value {
    let mut text = None::<String>;
    let mut reasoning = None::<String>;
    let mut tool_calls = Vec::new();
    for part in &response.content {
        match part {
            ContentPart::Text { text: part_text } => {
                text.get_or_insert_default().push_str(part_text)
            }
            ContentPart::Thinking {
                text: thinking_text,
                ..
            } => {
                reasoning.get_or_insert_default().push_str(thinking_text);
            }
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            })),
            ContentPart::Image { .. }
            | ContentPart::ToolResult { .. }
            | ContentPart::Document { .. }
            | ContentPart::Opaque { .. } => {}
        }
    }

    let content = match text {
        Some(text) => Value::from(text),
        None if !tool_calls.is_empty() => Value::Null,
        None => Value::from(""),
    };
    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    message.insert("content".into(), content);
    if let Some(reasoning) = reasoning {
        message.insert("reasoning_content".into(), Value::from(reasoning));
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    message.insert("refusal".into(), Value::Null);
    // The sources a provider's web search gave the text, as OpenAI's search models give them.
    let citations = &response.web_sources.citations;
    if !citations.is_empty() {
        let annotations = citations.iter().map(url_citation);
        message.insert("annotations".into(), annotations.collect());
    }

    let finish_reason = stop_reason_name(
        response
            .stop_reason
            .as_ref()
            .unwrap_or(&StopReason::EndTurn),
    );
    json!({
        "id": response.id,
        "object": "chat.completion",
        "created": response.created,
        "model": response.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": encode_usage(&response.usage),
    })
}

/// A Chat Completions `url_citation` annotation of `citation`.
pub(super) fn url_citation(citation: &Citation) -> Value {
    json!({"type": "url_citation", "url_citation": {
        "start_index": citation.start,
        "end_index": citation.end,
        "url": citation.page.url,
        "title": citation.page.title.as_deref().unwrap_or_default(),
    }})
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn the_usage_read_from_text_is_the_usage_read_from_the_map() {
        for text in [
            r#"{"prompt_tokens":14,"completion_tokens":3,"total_tokens":17}"#,
            r#"{"prompt_tokens":14,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"accepted_prediction_tokens":0}}"#,
            r#"{"prompt_tokens":1.5,"completion_tokens":"3","prompt_tokens_details":null}"#,
            r#"{}"#,
            r#"{ "prompt_tokens" : -1 , "completion_tokens":99999999999999999999, "prompt_tokens_details": { "cached_tokens": 1e2 } }"#,
            r#"{"prompt_tokens":1,"prompt_tokens":2,"completion_tokens_details":{"reasoning_tokens":3,"reasoning_tokens":0},"x":{"prompt_tokens":9}}"#,
            r#"{"prompt_tokens":18446744073709551615,"completion_tokens":0,"completion_tokens_details":null}"#,
        ] {
            let map: Map<String, Value> = serde_json::from_str(text).unwrap();
            assert_eq!(decode_usage_text(text), Some(decode_usage(&map)), "{text}");
        }
        // A shape the counters cannot take: the caller decodes the whole answer instead.
        assert_eq!(decode_usage_text(r#"{"prompt_tokens_details":7}"#), None);
        assert_eq!(decode_usage_text("null"), None);
        assert_eq!(decode_usage_text("[1, 2]"), None);
    }
}
