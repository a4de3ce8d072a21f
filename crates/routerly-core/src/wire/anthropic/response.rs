//! Complete answers: Anthropic's message to canonical, and canonical to the message an
//! Anthropic client expects.

use serde_json::{Map, Value, json};

use super::json::{as_array, as_object, field_path, get, optional_str, require, require_str};
use super::{
    stop_reason_from_name, stop_reason_name, tool_input_or_empty, usage_from_anthropic,
    usage_to_anthropic,
};
use crate::canonical::{
    ChatResponse, Citation, ContentPart, DecodeError, WebPage, WebSearchCall, WebSources,
};

/// Decodes Anthropic's answer (`type: "message"`) into a canonical response.
///
/// Text, thinking and tool-use blocks are kept; what a web search found and the text's
/// citations of it become [`WebSources`]; `redacted_thinking` and other server-tool
/// blocks are dropped. Anthropic gives no creation time, so `created` is now.
pub fn decode_response(body: &Value) -> Result<ChatResponse, DecodeError> {
    let message = body
        .as_object()
        .ok_or_else(|| DecodeError::new("the provider's answer is not a JSON object"))?;
    if message.get("type").and_then(Value::as_str) == Some("error") {
        let error = super::decode_error(200, body.to_string().as_bytes());
        return Err(DecodeError::new(format!(
            "the provider answered with an error: {}",
            error.message
        )));
    }
    let blocks = as_array(require(message, "content", "")?, "content")?;
    let content = blocks
        .iter()
        .enumerate()
        .map(|(block_index, block_value)| {
            decode_response_block(block_value, &format!("content[{block_index}]"))
        })
        .filter_map(Result::transpose)
        .collect::<Result<Vec<_>, _>>()?;
    let web_sources = web_sources(blocks);
    let usage = match get(message, "usage") {
        Some(usage_value) => usage_from_anthropic(as_object(usage_value, "usage")?),
        None => Default::default(),
    };
    Ok(ChatResponse {
        id: require_str(message, "id", "")?.to_owned(),
        model: optional_str(message, "model", "")?
            .unwrap_or_default()
            .to_owned(),
        content,
        stop_reason: optional_str(message, "stop_reason", "")?.map(stop_reason_from_name),
        stop_sequence: optional_str(message, "stop_sequence", "")?.map(str::to_owned),
        usage,
        created: chrono::Utc::now().timestamp(),
        web_sources,
    })
}

/// What Anthropic's server web search found: each `server_tool_use` of `web_search` with
/// its `web_search_tool_result`, and the `web_search_result_location` citations of the
/// text blocks, each over its block's text (in characters of the answer's texts joined).
fn web_sources(blocks: &[Value]) -> WebSources {
    let mut sources = WebSources::default();
    let mut queries: Vec<(&str, &str)> = Vec::new();
    let mut offset = 0;
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("server_tool_use") if block["name"] == "web_search" => {
                if let Some(id) = block["id"].as_str() {
                    queries.push((id, block["input"]["query"].as_str().unwrap_or_default()));
                }
            }
            Some("web_search_tool_result") => {
                let id = block["tool_use_id"].as_str().unwrap_or_default();
                sources
                    .searches
                    .push(search_call(id, &queries, &block["content"]));
            }
            Some("text") => {
                let length = block["text"]
                    .as_str()
                    .map_or(0, |text| text.chars().count());
                for citation in block["citations"].as_array().into_iter().flatten() {
                    if let Some(page) = cited_page(citation) {
                        sources.citations.push(Citation {
                            page,
                            start: offset,
                            end: offset + length,
                        });
                    }
                }
                offset += length;
            }
            _ => {}
        }
    }
    sources
}

/// The search `id` (its query among `queries`) with the pages of its result `content`
/// (none when the search failed, where `content` is an error object).
pub(super) fn search_call(id: &str, queries: &[(&str, &str)], content: &Value) -> WebSearchCall {
    let query = queries
        .iter()
        .find(|(query_id, _)| *query_id == id)
        .map_or("", |(_, query)| query);
    WebSearchCall {
        id: id.to_owned(),
        query: query.to_owned(),
        results: content
            .as_array()
            .into_iter()
            .flatten()
            .filter(|result| result["type"] == "web_search_result")
            .filter_map(page)
            .collect(),
    }
}

/// A web search citation's page; `None` for other citations (of documents).
pub(super) fn cited_page(citation: &Value) -> Option<WebPage> {
    (citation["type"] == "web_search_result_location")
        .then(|| page(citation))
        .flatten()
}

fn page(value: &Value) -> Option<WebPage> {
    Some(WebPage {
        url: value["url"].as_str()?.to_owned(),
        title: value["title"].as_str().map(str::to_owned),
    })
}

fn decode_response_block(
    block_value: &Value,
    path: &str,
) -> Result<Option<ContentPart>, DecodeError> {
    let block = as_object(block_value, path)?;
    let part = match require_str(block, "type", path)? {
        "text" => ContentPart::text(require_str(block, "text", path)?),
        "thinking" => ContentPart::Thinking {
            text: require_str(block, "thinking", path)?.to_owned(),
            signature: optional_str(block, "signature", path)?.map(str::to_owned),
        },
        "tool_use" => {
            let arguments = match get(block, "input") {
                Some(input) => {
                    as_object(input, &field_path(path, "input"))?;
                    input.to_string()
                }
                None => "{}".to_owned(),
            };
            ContentPart::ToolCall {
                id: require_str(block, "id", path)?.to_owned(),
                name: require_str(block, "name", path)?.to_owned(),
                arguments,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(part))
}

/// Encodes a canonical response as the `type: "message"` answer an Anthropic client
/// expects.
///
/// The id gets Anthropic's `msg_` prefix unless it has it; tool calls whose arguments are
/// not a JSON object get `input: {}`; thinking without a signature (from providers that do
/// not sign it) gets `signature: ""`, which the SDKs accept.
pub fn encode_response(response: &ChatResponse) -> Value {
    let content: Vec<Value> = response
        .content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
            ContentPart::Thinking { text, signature } => Some(json!({
                "type": "thinking",
                "thinking": text,
                "signature": signature.as_deref().unwrap_or_default(),
            })),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({
                "type": "tool_use",
                "id": id,
                "name": name,
                "input": tool_input_or_empty(arguments),
            })),
            ContentPart::Image { .. }
            | ContentPart::ToolResult { .. }
            | ContentPart::Document { .. }
            | ContentPart::Opaque { .. } => None,
        })
        .collect();
    let mut message = Map::new();
    message.insert("id".into(), json!(message_id(&response.id)));
    message.insert("type".into(), json!("message"));
    message.insert("role".into(), json!("assistant"));
    message.insert("model".into(), json!(response.model));
    message.insert("content".into(), Value::Array(content));
    message.insert(
        "stop_reason".into(),
        json!(response.stop_reason.as_ref().map(stop_reason_name)),
    );
    message.insert("stop_sequence".into(), json!(response.stop_sequence));
    message.insert("usage".into(), usage_to_anthropic(&response.usage));
    Value::Object(message)
}

/// An Anthropic-looking message id: kept when it already is one, else prefixed, or made
/// up when the provider gave none.
pub(super) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else if id.is_empty() {
        format!("msg_{}", uuid::Uuid::new_v4().simple())
    } else {
        format!("msg_{id}")
    }
}
