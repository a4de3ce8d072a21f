//! Whole answers: a Responses `response` object to [`ChatResponse`] and back.

use serde_json::{Map, Value, json};

use super::Echo;
use crate::canonical::{
    ChatResponse, Citation, ContentPart, DecodeError, StopReason, Usage, WebSearchCall,
};

/// A fresh response id in OpenAI's shape (`resp_` and 48 hex digits).
pub fn new_response_id() -> String {
    format!(
        "resp_{}{}",
        uuid::Uuid::new_v4().simple(),
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

/// The part of a response id after `resp_`, used to derive item ids.
pub(super) fn id_suffix(response_id: &str) -> &str {
    response_id.strip_prefix("resp_").unwrap_or(response_id)
}

/// The id of output item `index` of `response_id`: `msg_…`, `fc_…` or `rs_…`, derived so an
/// answer encodes the same way twice.
pub(super) fn item_id(prefix: &str, response_id: &str, index: usize) -> String {
    format!("{prefix}_{}{index:02}", id_suffix(response_id))
}

/// Decodes OpenAI's `response` object (non-streamed answer, or the `response` of a
/// `response.completed` event).
pub fn decode_response(body: &Value) -> Result<ChatResponse, DecodeError> {
    let body_map = body
        .as_object()
        .ok_or_else(|| DecodeError::new("The response is not a JSON object."))?;
    if let Some(error) = body_map.get("error").filter(|error| !error.is_null()) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(DecodeError::new(format!(
            "The provider reported an error: {message}"
        )));
    }
    let output = body_map
        .get("output")
        .and_then(Value::as_array)
        .ok_or_else(|| DecodeError::at("output", "The response has no 'output' array."))?;
    let mut content = Vec::new();
    for item in output {
        decode_output_item(item, &mut content);
    }
    let stop_reason = stop_reason_of(body_map, &content);
    Ok(ChatResponse {
        id: string_field(body_map, "id"),
        model: string_field(body_map, "model"),
        content,
        stop_reason: Some(stop_reason),
        stop_sequence: None,
        usage: body_map
            .get("usage")
            .and_then(Value::as_object)
            .map(decode_usage)
            .unwrap_or_default(),
        created: body_map
            .get("created_at")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
        web_sources: Default::default(),
    })
}

/// The canonical parts of one output item, appended to `content`.
pub(super) fn decode_output_item(item: &Value, content: &mut Vec<ContentPart>) {
    match item.get("type").and_then(Value::as_str) {
        Some("message") => {
            for part in item
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let text = match part.get("type").and_then(Value::as_str) {
                    Some("output_text") => part.get("text"),
                    Some("refusal") => part.get("refusal"),
                    _ => None,
                };
                if let Some(text) = text.and_then(Value::as_str) {
                    content.push(ContentPart::text(text));
                }
            }
        }
        Some("function_call") => content.push(ContentPart::ToolCall {
            id: item
                .get("call_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            name: item
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: item
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}")
                .to_owned(),
        }),
        Some("reasoning") => {
            let text: Vec<&str> = item
                .get("summary")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect();
            if !text.is_empty() {
                content.push(ContentPart::Thinking {
                    text: text.join("\n\n"),
                    signature: None,
                });
            }
        }
        _ => {}
    }
}

/// Why generation stopped, from the response's status and what it produced.
pub(super) fn stop_reason_of(body_map: &Map<String, Value>, content: &[ContentPart]) -> StopReason {
    if body_map.get("status").and_then(Value::as_str) == Some("incomplete") {
        return match body_map
            .pointer_str("incomplete_details", "reason")
            .unwrap_or("")
        {
            "content_filter" => StopReason::ContentFilter,
            _ => StopReason::MaxTokens,
        };
    }
    if content
        .iter()
        .any(|part| matches!(part, ContentPart::ToolCall { .. }))
    {
        StopReason::ToolUse
    } else {
        StopReason::EndTurn
    }
}

trait PointerStr {
    fn pointer_str(&self, outer: &str, inner: &str) -> Option<&str>;
}

impl PointerStr for Map<String, Value> {
    fn pointer_str(&self, outer: &str, inner: &str) -> Option<&str> {
        self.get(outer)?.get(inner)?.as_str()
    }
}

fn string_field(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The Responses usage object in canonical terms (`input_tokens` already counts cached ones).
pub(super) fn decode_usage(usage_map: &Map<String, Value>) -> Usage {
    let count = |value: Option<&Value>| value.and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: count(usage_map.get("input_tokens")),
        output_tokens: count(usage_map.get("output_tokens")),
        cached_input_tokens: count(
            usage_map
                .get("input_tokens_details")
                .and_then(|details| details.get("cached_tokens")),
        ),
        cache_write_tokens: 0,
        reasoning_tokens: count(
            usage_map
                .get("output_tokens_details")
                .and_then(|details| details.get("reasoning_tokens")),
        ),
    }
}

/// The usage object Responses clients read.
pub(super) fn encode_usage(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens(),
    })
}

/// A `message` output item holding `text`.
pub(super) fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(text) => {
            json!([{"type": "output_text", "text": text, "annotations": [], "logprobs": []}])
        }
        None => json!([]),
    };
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// A `web_search_call` output item for a search the provider ran, with the pages it found
/// as the action's `sources`.
pub(super) fn web_search_call_item(id: &str, search: &WebSearchCall) -> Value {
    let sources: Vec<Value> = (search.results.iter())
        .map(|page| json!({"type": "url", "url": page.url}))
        .collect();
    json!({
        "id": id,
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "search", "query": search.query, "sources": sources},
    })
}

/// A `url_citation` annotation of `citation`, its indexes counted from `start` (where its
/// message's text starts in the answer's texts joined).
pub(super) fn url_citation(citation: &Citation, start: usize) -> Value {
    json!({
        "type": "url_citation",
        "start_index": citation.start.saturating_sub(start),
        "end_index": citation.end.saturating_sub(start),
        "url": citation.page.url,
        "title": citation.page.title.as_deref().unwrap_or_default(),
    })
}

/// A `function_call` output item; a call of a namespaced tool's flat name is given back
/// under its namespace (see [`Echo`]).
pub(super) fn function_call_item(
    id: &str,
    status: &str,
    call_id: &str,
    called: &str,
    arguments: &str,
    echo: &Echo,
) -> Value {
    let (namespace, name) = echo.call_name(called);
    let mut item = json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    });
    if let Some(namespace) = namespace {
        item["namespace"] = Value::from(namespace);
    }
    item
}

/// A `reasoning` output item whose summary is `text`.
pub(super) fn reasoning_item(id: &str, text: Option<&str>) -> Value {
    let summary = match text {
        Some(text) => json!([{"type": "summary_text", "text": text}]),
        None => json!([]),
    };
    json!({"id": id, "type": "reasoning", "summary": summary})
}

/// The status of a finished response, and why it is incomplete when it is.
pub(super) fn final_status(stop_reason: Option<&StopReason>) -> (&'static str, Value) {
    match stop_reason {
        Some(StopReason::MaxTokens) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(StopReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The `response` object with every field OpenAI's SDKs read.
pub(super) fn response_object(
    id: &str,
    model: &str,
    created_at: i64,
    status: &str,
    incomplete_details: Value,
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": incomplete_details,
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage.map(encode_usage),
        "user": null,
        "metadata": {},
    })
}

/// Encodes a [`ChatResponse`] as a Responses `response` object. Its id is the canonical
/// id when that is already a response id (`resp_…`, as the server sets it), else a new one.
pub fn encode_response(response: &ChatResponse) -> Value {
    encode_response_echoing(response, &Echo::default())
}

/// [`encode_response`] for the request `echo` describes: its fields repeated, its
/// namespaced tools' calls under their namespace.
pub fn encode_response_echoing(response: &ChatResponse, echo: &Echo) -> Value {
    let id = if response.id.starts_with("resp_") {
        response.id.clone()
    } else {
        new_response_id()
    };
    // The provider's web searches come first, as OpenAI gives its own.
    let mut output: Vec<Value> = (response.web_sources.searches.iter())
        .enumerate()
        .map(|(index, search)| web_search_call_item(&item_id("ws", &id, index), search))
        .collect();
    // Where each message starts, in characters of the answer's texts joined.
    let mut messages: Vec<(usize, usize)> = Vec::new();
    let mut text_offset = 0;
    for part in &response.content {
        let index = output.len();
        match part {
            ContentPart::Text { text } => {
                let start = text_offset;
                text_offset += text.chars().count();
                // Consecutive text parts make one message.
                if let Some(last) = output.last_mut()
                    && last.get("type").and_then(Value::as_str) == Some("message")
                    && let Some(existing) = last.pointer_mut("/content/0/text")
                {
                    let joined = format!("{}{text}", existing.as_str().unwrap_or_default());
                    *existing = Value::from(joined);
                    continue;
                }
                messages.push((index, start));
                output.push(message_item(
                    &item_id("msg", &id, index),
                    "completed",
                    Some(text),
                ));
            }
            ContentPart::ToolCall {
                id: call_id,
                name,
                arguments,
            } => output.push(function_call_item(
                &item_id("fc", &id, index),
                "completed",
                call_id,
                name,
                arguments,
                echo,
            )),
            ContentPart::Thinking { text, .. } => {
                output.push(reasoning_item(&item_id("rs", &id, index), Some(text)));
            }
            ContentPart::Image { .. }
            | ContentPart::ToolResult { .. }
            | ContentPart::Document { .. }
            | ContentPart::Opaque { .. } => {}
        }
    }
    for citation in &response.web_sources.citations {
        let message = messages
            .iter()
            .rev()
            .find(|(_, start)| *start <= citation.start);
        if let Some((index, start)) = message
            && let Some(Value::Array(annotations)) =
                output[*index].pointer_mut("/content/0/annotations")
        {
            annotations.push(url_citation(citation, *start));
        }
    }
    let (status, incomplete_details) = final_status(response.stop_reason.as_ref());
    let created = if response.created > 0 {
        response.created
    } else {
        chrono::Utc::now().timestamp()
    };
    let mut encoded = response_object(
        &id,
        &response.model,
        created,
        status,
        incomplete_details,
        output,
        Some(&response.usage),
    );
    echo.apply(&mut encoded);
    encoded
}
