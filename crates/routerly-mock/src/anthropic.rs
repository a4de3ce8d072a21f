//! The Anthropic mock: validation, the conversation view, the message, the event stream, and
//! token counting.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::common::{
    Answer, Conversation, Directives, ToolChoice, ToolSpec, byte_fragments, cited_text, decide,
    is_valid_tool_name, json_bytes, output_tokens, search_page, tokens_for_bytes, truncate_words,
    word_fragments,
};
use crate::{ApiError, MockKind, MockState, RequestHead, event_body, json_response, sse_response};

const KIND: MockKind = MockKind::Anthropic;
const THINKING_TEXT: &str = "Mock thinking.";
const THINKING_SIGNATURE: &str = "mock-signature";

/// `POST /v1/messages`.
pub(crate) async fn messages(
    state: &MockState,
    head: &RequestHead,
    body: Option<&Value>,
) -> Response {
    if let Some(status) = state.take_failure() {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    let Some(body) = body.filter(|body| body.is_object()) else {
        return invalid_json().into_response(KIND);
    };
    if let Err(error) = validate(body, Endpoint::Messages, &head.beta) {
        return error.into_response(KIND);
    }
    let conversation = conversation(body);
    let directives = &conversation.directives;
    if directives.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(directives.delay_ms)).await;
    }
    if let Some(status) = directives.status {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    let stream = body.get("stream") == Some(&Value::Bool(true));
    if directives.garbage {
        return garbage(stream);
    }
    let offers_web_search = (body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten())
    .any(|tool| block_type(tool).starts_with("web_search_"));
    // A search the request allows and the caller asks for comes before any tool call, and
    // its answer is what the page found says.
    let searched = directives
        .web_search
        .as_deref()
        .filter(|_| offers_web_search && conversation.last_is_plain_user);
    let answer = match searched {
        Some(query) => Answer::Text(cited_text(query)),
        None => decide(&conversation),
    };
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let thinking_words = if thinking_enabled(body) {
        THINKING_TEXT.split_whitespace().count() as u64
    } else {
        0
    };
    let mut output = thinking_words + output_tokens(&answer);
    let mut stop_reason = "end_turn";
    let mut blocks = Vec::new();
    if thinking_words > 0 {
        blocks.push(Block::Thinking);
    }
    if let Some(query) = searched {
        blocks.push(Block::WebSearch {
            id: format!("srvtoolu_{}", state.next_call_number()),
            query: query.to_owned(),
        });
    }
    match answer {
        Answer::Text(text) => match truncate_words(&text, max_tokens) {
            Some(truncated) => {
                stop_reason = "max_tokens";
                output = thinking_words + max_tokens;
                blocks.push(Block::Text(truncated));
            }
            None => blocks.push(Block::Text(text)),
        },
        Answer::ToolCalls(calls) => {
            stop_reason = "tool_use";
            for call in calls {
                blocks.push(Block::ToolUse {
                    id: format!("toolu_{}", state.next_call_number()),
                    name: call.name,
                    input: call.arguments,
                });
            }
        }
    }
    let estimate = input_tokens(body);
    let message = Message {
        id: format!("msg_mock{}", state.next_response_number()),
        model: conversation.model,
        blocks,
        stop_reason,
        input_tokens: estimate.saturating_sub(directives.cached + directives.cache_write),
        cache_read_input_tokens: directives.cached,
        cache_creation_input_tokens: directives.cache_write,
        output_tokens: output,
    };
    if stream {
        sse_response(event_body(
            message.stream_events(),
            directives.chunk_delay_ms,
            directives.die_after,
        ))
    } else {
        json_response(StatusCode::OK, &message.to_json())
    }
}

/// `POST /v1/messages/count_tokens`: the same token rule as usage.
pub(crate) fn count_tokens(head: &RequestHead, body: Option<&Value>) -> Response {
    let Some(body) = body.filter(|body| body.is_object()) else {
        return invalid_json().into_response(KIND);
    };
    if let Err(error) = validate(body, Endpoint::CountTokens, &head.beta) {
        return error.into_response(KIND);
    }
    json_response(StatusCode::OK, &json!({"input_tokens": input_tokens(body)}))
}

fn garbage(stream: bool) -> Response {
    if stream {
        let events = vec![
            Bytes::from_static(
                b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\n\n",
            ),
            Bytes::from_static(b"event: content_block_delta\ndata: <<not json>>\n\n"),
        ];
        sse_response(event_body(events, 0, None))
    } else {
        let mut response = json_response(StatusCode::OK, &Value::Null);
        *response.body_mut() =
            axum::body::Body::from("<html><body>502 upstream garbage</body></html>");
        response
    }
}

// ---- validation -------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Messages,
    CountTokens,
}

fn invalid_json() -> ApiError {
    ApiError::invalid(
        "There was an issue with the formatting or content of your request: the body is not valid JSON.",
    )
}

fn field_required(path: &str) -> ApiError {
    ApiError::invalid(format!("{path}: Field required"))
}

fn thinking_enabled(body: &Value) -> bool {
    body.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled")
}

/// Rejects what the real Messages API rejects, with its messages.
fn validate(body: &Value, endpoint: Endpoint, beta: &str) -> Result<(), ApiError> {
    let Some(object) = body.as_object() else {
        return Err(invalid_json());
    };
    match object.get("model") {
        None | Some(Value::Null) => return Err(field_required("model")),
        Some(Value::String(_)) => {}
        Some(_) => return Err(ApiError::invalid("model: Input should be a valid string")),
    }
    if endpoint == Endpoint::Messages {
        match object.get("max_tokens") {
            None | Some(Value::Null) => return Err(field_required("max_tokens")),
            Some(value) => match value.as_i64() {
                None => {
                    return Err(ApiError::invalid(
                        "max_tokens: Input should be a valid integer",
                    ));
                }
                Some(max_tokens) if max_tokens < 1 => {
                    return Err(ApiError::invalid(
                        "max_tokens: Input should be greater than or equal to 1",
                    ));
                }
                Some(_) => {}
            },
        }
    }
    let messages = match object.get("messages") {
        None | Some(Value::Null) => return Err(field_required("messages")),
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(ApiError::invalid("messages: Input should be a valid list")),
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages: at least one message is required",
        ));
    }
    validate_messages(messages)?;
    if let Some(temperature) = object.get("temperature").filter(|value| !value.is_null()) {
        match temperature.as_f64() {
            None => {
                return Err(ApiError::invalid(
                    "temperature: Input should be a valid number",
                ));
            }
            Some(value) if value > 1.0 => {
                return Err(ApiError::invalid(
                    "temperature: Input should be less than or equal to 1",
                ));
            }
            Some(value) if value < 0.0 => {
                return Err(ApiError::invalid(
                    "temperature: Input should be greater than or equal to 0",
                ));
            }
            Some(_) => {}
        }
    }
    validate_tools(object.get("tools"))?;
    if thinking_enabled(body) {
        let budget = match body.pointer("/thinking/budget_tokens") {
            None | Some(Value::Null) => {
                return Err(field_required("thinking.enabled.budget_tokens"));
            }
            Some(value) => value.as_i64().ok_or_else(|| {
                ApiError::invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
            })?,
        };
        if budget < 1024 {
            return Err(ApiError::invalid(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
            ));
        }
        let max_tokens = object
            .get("max_tokens")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MAX);
        // Interleaved thinking lets the budget span several turns, so it may exceed max_tokens.
        if endpoint == Endpoint::Messages
            && budget >= max_tokens
            && !beta.contains("interleaved-thinking")
        {
            return Err(ApiError::invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
            ));
        }
        if object
            .get("temperature")
            .and_then(Value::as_f64)
            .is_some_and(|temperature| temperature != 1.0)
        {
            return Err(ApiError::invalid(
                "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking",
            ));
        }
        if matches!(
            body.pointer("/tool_choice/type").and_then(Value::as_str),
            Some("any") | Some("tool")
        ) {
            return Err(ApiError::invalid(
                "Thinking may not be enabled when tool_choice forces tool use.",
            ));
        }
    }
    Ok(())
}

const BLOCK_TAGS: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
];

fn validate_messages(messages: &[Value]) -> Result<(), ApiError> {
    let last_index = messages.len() - 1;
    let mut previous_tool_use_ids: Vec<&str> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        if !message.is_object() {
            return Err(ApiError::invalid(format!(
                "messages.{index}: Input should be a valid dictionary"
            )));
        }
        let role = match message.get("role") {
            None | Some(Value::Null) => {
                return Err(field_required(&format!("messages.{index}.role")));
            }
            Some(role) => role.as_str().unwrap_or(""),
        };
        let previous_role = index
            .checked_sub(1)
            .and_then(|previous| messages[previous].get("role"))
            .and_then(Value::as_str);
        match role {
            "user" | "assistant" => {}
            // Mid-conversation system messages: only right after a user turn, text only.
            "system" if matches!(previous_role, Some("user")) => {
                let text_only = match message.get("content") {
                    Some(Value::String(text)) => !text.is_empty(),
                    Some(Value::Array(blocks)) => {
                        !blocks.is_empty()
                            && blocks.iter().all(|block| {
                                block.get("type").and_then(Value::as_str) == Some("text")
                            })
                    }
                    _ => false,
                };
                if !text_only {
                    return Err(ApiError::invalid(format!(
                        "messages.{index}.content: system messages must contain text content only"
                    )));
                }
            }
            "system" => {
                return Err(ApiError::invalid(format!(
                    "messages.{index}: a system message must immediately follow a user message"
                )));
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "messages.{index}.role: Input should be 'user', 'assistant' or 'system'"
                )));
            }
        }
        let empty_content = || {
            ApiError::invalid(format!(
                "messages.{index}: all messages must have non-empty content except for the optional final assistant message"
            ))
        };
        let may_be_empty = index == last_index && role == "assistant";
        let blocks: &[Value] = match message.get("content") {
            None | Some(Value::Null) => {
                return Err(field_required(&format!("messages.{index}.content")));
            }
            Some(Value::String(text)) => {
                if text.is_empty() && !may_be_empty {
                    return Err(empty_content());
                }
                &[]
            }
            Some(Value::Array(blocks)) => {
                if blocks.is_empty() && !may_be_empty {
                    return Err(empty_content());
                }
                blocks
            }
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "messages.{index}.content: Input should be a valid list"
                )));
            }
        };
        let mut tool_use_ids = Vec::new();
        let mut answered_ids = Vec::new();
        for (block_index, block) in blocks.iter().enumerate() {
            let path = format!("messages.{index}.content.{block_index}");
            let Some(block_type) = block.get("type").and_then(Value::as_str) else {
                return Err(ApiError::invalid(format!(
                    "{path}: Unable to extract tag using discriminator 'type'"
                )));
            };
            if !BLOCK_TAGS.contains(&block_type) {
                let expected: Vec<String> =
                    BLOCK_TAGS.iter().map(|tag| format!("'{tag}'")).collect();
                return Err(ApiError::invalid(format!(
                    "{path}: Input tag '{block_type}' found using 'type' does not match any of the expected tags: {}",
                    expected.join(", ")
                )));
            }
            match block_type {
                "text" => match block.get("text") {
                    Some(Value::String(text)) if text.is_empty() => {
                        return Err(ApiError::invalid(
                            "messages: text content blocks must be non-empty",
                        ));
                    }
                    Some(Value::String(_)) => {}
                    None | Some(Value::Null) => {
                        return Err(field_required(&format!("{path}.text.text")));
                    }
                    Some(_) => {
                        return Err(ApiError::invalid(format!(
                            "{path}.text.text: Input should be a valid string"
                        )));
                    }
                },
                "image" => validate_image(&path, block)?,
                "document" => validate_document(&path, block)?,
                "tool_use" => {
                    let Some(id) = block.get("id").and_then(Value::as_str) else {
                        return Err(field_required(&format!("{path}.tool_use.id")));
                    };
                    if !block.get("name").is_some_and(Value::is_string) {
                        return Err(field_required(&format!("{path}.tool_use.name")));
                    }
                    match block.get("input") {
                        Some(Value::Object(_)) => {}
                        None => return Err(field_required(&format!("{path}.tool_use.input"))),
                        Some(_) => {
                            return Err(ApiError::invalid(format!(
                                "{path}.tool_use.input: Input should be a valid dictionary"
                            )));
                        }
                    }
                    tool_use_ids.push(id);
                }
                "tool_result" => {
                    let Some(id) = block.get("tool_use_id").and_then(Value::as_str) else {
                        return Err(field_required(&format!("{path}.tool_result.tool_use_id")));
                    };
                    if !previous_tool_use_ids.contains(&id) {
                        return Err(ApiError::invalid(format!(
                            "{path}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                        )));
                    }
                    answered_ids.push(id);
                }
                _ => {}
            }
        }
        let unanswered: Vec<&str> = previous_tool_use_ids
            .iter()
            .filter(|id| !answered_ids.contains(id))
            .copied()
            .collect();
        if !unanswered.is_empty() {
            return Err(ApiError::invalid(format!(
                "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                index - 1,
                unanswered.join(", ")
            )));
        }
        previous_tool_use_ids = if role == "assistant" {
            tool_use_ids
        } else {
            Vec::new()
        };
    }
    Ok(())
}

fn validate_image(path: &str, block: &Value) -> Result<(), ApiError> {
    let Some(source) = block.get("source").filter(|source| source.is_object()) else {
        return Err(field_required(&format!("{path}.image.source")));
    };
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media_type = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !matches!(
                media_type,
                "image/jpeg" | "image/png" | "image/gif" | "image/webp"
            ) {
                return Err(ApiError::invalid(format!(
                    "{path}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
                )));
            }
            if !source.get("data").is_some_and(Value::is_string) {
                return Err(field_required(&format!("{path}.image.source.base64.data")));
            }
        }
        Some("url") => {
            if !source.get("url").is_some_and(Value::is_string) {
                return Err(field_required(&format!("{path}.image.source.url.url")));
            }
        }
        Some("file") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{path}.image.source: Input tag '{other}' found using 'type' does not match any of the expected tags: 'base64', 'file', 'url'"
            )));
        }
        None => {
            return Err(ApiError::invalid(format!(
                "{path}.image.source: Unable to extract tag using discriminator 'type'"
            )));
        }
    }
    Ok(())
}

/// A document block: a base64 PDF, plain text, a URL, custom content or a Files API file.
fn validate_document(path: &str, block: &Value) -> Result<(), ApiError> {
    let Some(source) = block.get("source").filter(|source| source.is_object()) else {
        return Err(field_required(&format!("{path}.document.source")));
    };
    let string = |key: &str| source.get(key).is_some_and(Value::is_string);
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            if source.get("media_type").and_then(Value::as_str) != Some("application/pdf") {
                return Err(ApiError::invalid(format!(
                    "{path}.document.source.base64.media_type: Input should be 'application/pdf'"
                )));
            }
            if !string("data") {
                return Err(field_required(&format!(
                    "{path}.document.source.base64.data"
                )));
            }
        }
        Some("text") => {
            if source.get("media_type").and_then(Value::as_str) != Some("text/plain") {
                return Err(ApiError::invalid(format!(
                    "{path}.document.source.text.media_type: Input should be 'text/plain'"
                )));
            }
            if !string("data") {
                return Err(field_required(&format!("{path}.document.source.text.data")));
            }
        }
        Some("url") if !string("url") => {
            return Err(field_required(&format!("{path}.document.source.url.url")));
        }
        Some("content") if source.get("content").is_none() => {
            return Err(field_required(&format!(
                "{path}.document.source.content.content"
            )));
        }
        Some("file") if !string("file_id") => {
            return Err(field_required(&format!(
                "{path}.document.source.file.file_id"
            )));
        }
        Some("url" | "content" | "file") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{path}.document.source: Input tag '{other}' found using 'type' does not match any of the expected tags: 'base64', 'content', 'file', 'text', 'url'"
            )));
        }
        None => {
            return Err(ApiError::invalid(format!(
                "{path}.document.source: Unable to extract tag using discriminator 'type'"
            )));
        }
    }
    if block
        .get("title")
        .is_some_and(|title| !title.is_string() && !title.is_null())
    {
        return Err(ApiError::invalid(format!(
            "{path}.document.title: Input should be a valid string"
        )));
    }
    Ok(())
}

fn validate_tools(tools: Option<&Value>) -> Result<(), ApiError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(ApiError::invalid("tools: Input should be a valid list")),
    };
    let mut names = HashSet::new();
    for (index, tool) in tools.iter().enumerate() {
        // Server tools (web search, bash, …) carry a versioned type and no schema.
        if !matches!(
            tool.get("type").and_then(Value::as_str),
            None | Some("custom")
        ) {
            continue;
        }
        let name = match tool.get("name") {
            None | Some(Value::Null) => {
                return Err(field_required(&format!("tools.{index}.custom.name")));
            }
            Some(Value::String(name)) => name.as_str(),
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "tools.{index}.custom.name: Input should be a valid string"
                )));
            }
        };
        if !is_valid_tool_name(name, 128) {
            return Err(ApiError::invalid(format!(
                "tools.{index}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            )));
        }
        match tool.get("input_schema") {
            None | Some(Value::Null) => {
                return Err(field_required(&format!(
                    "tools.{index}.custom.input_schema"
                )));
            }
            Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "tools.{index}.custom.input_schema: Input should be a valid dictionary"
                )));
            }
        }
        if !names.insert(name) {
            return Err(ApiError::invalid("tools: Tool names must be unique."));
        }
    }
    Ok(())
}

// ---- the conversation view and the token rule ----------------------------------------------

/// The text of `content`: the string, or its text blocks joined by a space.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn text_bytes(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(text)) => text.len(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .map(str::len)
            .sum(),
        _ => 0,
    }
}

/// Input tokens by the crate's token rule (before cached tokens are taken out).
fn input_tokens(body: &Value) -> u64 {
    let mut bytes = text_bytes(body.get("system"));
    for message in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let content = message.get("content");
        bytes += text_bytes(content);
        for block in content.and_then(Value::as_array).into_iter().flatten() {
            match block.get("type").and_then(Value::as_str) {
                Some("tool_use") => bytes += block.get("input").map_or(0, json_bytes),
                Some("tool_result") => bytes += text_bytes(block.get("content")),
                _ => {}
            }
        }
    }
    if let Some(tools) = body.get("tools").filter(|tools| !tools.is_null()) {
        bytes += json_bytes(tools);
    }
    tokens_for_bytes(bytes)
}

fn block_type(block: &Value) -> &str {
    block.get("type").and_then(Value::as_str).unwrap_or("")
}

fn conversation(body: &Value) -> Conversation<'_> {
    let messages: &[Value] = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|tool| tool.get("input_schema").is_some())
        .filter_map(|tool| {
            Some(ToolSpec {
                name: tool.get("name")?.as_str()?,
                schema: tool.get("input_schema"),
                namespace: None,
            })
        })
        .collect();
    let tool_choice = match body.pointer("/tool_choice/type").and_then(Value::as_str) {
        Some("none") => ToolChoice::None,
        Some("tool") => match body.pointer("/tool_choice/name").and_then(Value::as_str) {
            Some(name) => ToolChoice::Named(name),
            None => ToolChoice::Auto,
        },
        _ => ToolChoice::Auto,
    };
    // The caller's turn is the last one before any trailing system messages (Claude Code ends
    // the conversation with one).
    let trailing_system = messages
        .iter()
        .rev()
        .take_while(|message| message.get("role").and_then(Value::as_str) == Some("system"))
        .count();
    let messages = &messages[..messages.len() - trailing_system];
    let last_user = messages
        .iter()
        .rev()
        .find(|message| message.get("role").and_then(Value::as_str) == Some("user"));
    let last_user_blocks: &[Value] = last_user
        .and_then(|message| message.get("content"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let last_is_user = messages
        .last()
        .is_some_and(|message| message.get("role").and_then(Value::as_str) == Some("user"));
    let results: Vec<String> = last_user_blocks
        .iter()
        .filter(|block| block_type(block) == "tool_result")
        .map(|block| text_of(block.get("content")))
        .collect();
    let user_text = text_of(last_user.and_then(|message| message.get("content")));
    let directives = Directives::parse(&format!("{user_text} {}", results.join(" ")));
    let tool_results = (last_is_user && !results.is_empty()).then_some(results);
    let json_output = [
        body.pointer("/output_format/type"),
        body.pointer("/output_config/format/type"),
    ]
    .into_iter()
    .flatten()
    .any(|format| format.as_str() == Some("json_schema"));
    Conversation {
        provider: KIND.name(),
        model: body.get("model").and_then(Value::as_str).unwrap_or(""),
        tools,
        tool_choice,
        last_is_plain_user: last_is_user && tool_results.is_none(),
        tool_results,
        images: last_user_blocks
            .iter()
            .filter(|block| block_type(block) == "image")
            .count(),
        user_text,
        json_output,
        directives,
    }
}

// ---- the message and its stream ------------------------------------------------------------

enum Block {
    Thinking,
    /// A hosted web search (its `server_tool_use` and `web_search_tool_result` blocks); the
    /// text after it cites its one result.
    WebSearch {
        id: String,
        query: String,
    },
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

struct Message<'a> {
    id: String,
    model: &'a str,
    blocks: Vec<Block>,
    stop_reason: &'static str,
    input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation_input_tokens: u64,
    output_tokens: u64,
}

impl Message<'_> {
    fn usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        })
    }

    /// The query of the answer's web search, whose result its text cites.
    fn searched(&self) -> Option<&str> {
        self.blocks.iter().find_map(|block| match block {
            Block::WebSearch { query, .. } => Some(query.as_str()),
            _ => None,
        })
    }

    fn to_json(&self) -> Value {
        let mut content: Vec<Value> = Vec::new();
        for block in &self.blocks {
            match block {
                Block::Thinking => content.push(
                    json!({"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE}),
                ),
                Block::WebSearch { id, query } => content.extend(web_search_blocks(id, query)),
                Block::Text(text) => {
                    let mut block = json!({"type": "text", "text": text});
                    if let Some(query) = self.searched() {
                        block["citations"] = json!([web_citation(query)]);
                    }
                    content.push(block);
                }
                Block::ToolUse { id, name, input } => content.push(
                    json!({"type": "tool_use", "id": id, "name": name, "input": input}),
                ),
            }
        }
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage(self.output_tokens),
        })
    }

    /// Every event of the stream, `message_stop` last.
    fn stream_events(&self) -> Vec<Bytes> {
        let mut events = Vec::new();
        let start = json!({
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": self.usage(1),
            },
        });
        events.push(sse_event("message_start", &start));
        // Each block with its deltas; a web search is two blocks.
        let mut streamed: Vec<(Value, Vec<Value>)> = Vec::new();
        for block in &self.blocks {
            let next = match block {
                Block::Thinking => (
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    word_fragments(THINKING_TEXT)
                        .into_iter()
                        .map(|fragment| json!({"type": "thinking_delta", "thinking": fragment}))
                        .chain([
                            json!({"type": "signature_delta", "signature": THINKING_SIGNATURE}),
                        ])
                        .collect(),
                ),
                Block::WebSearch { id, query } => {
                    let [call, result] = web_search_blocks(id, query);
                    let mut start = call.clone();
                    start["input"] = json!({});
                    let input = json!({"type": "input_json_delta", "partial_json": call["input"].to_string()});
                    streamed.push((start, vec![input]));
                    (result, Vec::new())
                }
                Block::Text(text) => (
                    json!({"type": "text", "text": ""}),
                    (self.searched().into_iter())
                        .map(|query| json!({"type": "citations_delta", "citation": web_citation(query)}))
                        .chain(
                            word_fragments(text)
                                .into_iter()
                                .map(|fragment| json!({"type": "text_delta", "text": fragment})),
                        )
                        .collect(),
                ),
                Block::ToolUse { id, name, input } => {
                    let input_json = input.to_string();
                    (
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                        std::iter::once("")
                            .chain(byte_fragments(&input_json, 8))
                            .map(|fragment| json!({"type": "input_json_delta", "partial_json": fragment}))
                            .collect(),
                    )
                }
            };
            streamed.push(next);
        }
        for (index, (content_block, deltas)) in streamed.into_iter().enumerate() {
            events.push(sse_event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": index, "content_block": content_block}),
            ));
            if index == 0 {
                events.push(Bytes::from_static(
                    b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
                ));
            }
            for delta in deltas {
                events.push(sse_event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                ));
            }
            events.push(sse_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
        events.push(sse_event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": self.output_tokens},
            }),
        ));
        events.push(Bytes::from_static(
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ));
        events
    }
}

/// A web search's `server_tool_use` and `web_search_tool_result` blocks.
fn web_search_blocks(id: &str, query: &str) -> [Value; 2] {
    let (url, title) = search_page(query);
    [
        json!({"type": "server_tool_use", "id": id, "name": "web_search", "input": {"query": query}}),
        json!({"type": "web_search_tool_result", "tool_use_id": id, "content": [
            {"type": "web_search_result", "url": url, "title": title,
             "encrypted_content": "mock-encrypted", "page_age": null}
        ]}),
    ]
}

/// The citation of the search result for `query`.
fn web_citation(query: &str) -> Value {
    let (url, title) = search_page(query);
    json!({"type": "web_search_result_location", "url": url, "title": title,
        "cited_text": cited_text(query), "encrypted_index": "mock-index"})
}

fn sse_event(name: &str, data: &Value) -> Bytes {
    let mut event = Vec::with_capacity(256);
    event.extend_from_slice(b"event: ");
    event.extend_from_slice(name.as_bytes());
    event.extend_from_slice(b"\ndata: ");
    serde_json::to_writer(&mut event, data).expect("a JSON value always serializes");
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_rejects(body: Value, message_part: &str) {
        let error =
            validate(&body, Endpoint::Messages, "").expect_err("the request should be rejected");
        assert_eq!(error.status, 400, "{error:?}");
        assert!(
            error.message.contains(message_part),
            "{:?} should contain {message_part:?}",
            error.message
        );
    }

    fn request(messages: Value) -> Value {
        json!({"model": "m", "max_tokens": 100, "messages": messages})
    }

    #[test]
    fn validation_rejects_what_anthropic_rejects() {
        check_rejects(
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}),
            "model: Field required",
        );
        check_rejects(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            "max_tokens: Field required",
        );
        check_rejects(
            json!({"model": "m", "max_tokens": 1}),
            "messages: Field required",
        );
        check_rejects(request(json!([])), "at least one message is required");
        check_rejects(
            request(
                json!([{"role": "assistant", "content": "hi"}, {"role": "system", "content": "x"}]),
            ),
            "messages.1: a system message must immediately follow a user message",
        );
        check_rejects(
            request(
                json!([{"role": "user", "content": "hi"}, {"role": "system", "content": [{"type": "image", "source": {}}]}]),
            ),
            "messages.1.content: system messages must contain text content only",
        );
        check_rejects(
            request(json!([{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}])),
            "messages.1.role: Input should be 'user', 'assistant' or 'system'",
        );
        check_rejects(
            request(json!([{"role": "user", "content": ""}])),
            "messages.0: all messages must have non-empty content",
        );
        check_rejects(
            request(json!([{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "r"}]}])),
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: t2",
        );
        check_rejects(
            request(json!([{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": "no result"}])),
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: t1",
        );
        check_rejects(
            request(json!([{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": "{}"}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}])),
            "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
        );
        let mut thinking = request(json!([{"role": "user", "content": "hi"}]));
        thinking["thinking"] = json!({"type": "enabled", "budget_tokens": 2000});
        thinking["max_tokens"] = json!(2000);
        check_rejects(
            thinking.clone(),
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        );
        thinking["max_tokens"] = json!(4000);
        thinking["temperature"] = json!(0.5);
        check_rejects(
            thinking,
            "`temperature` may only be set to 1 when thinking is enabled",
        );
        let mut tools = request(json!([{"role": "user", "content": "hi"}]));
        tools["tools"] = json!([{"name": "get weather", "input_schema": {"type": "object"}}]);
        check_rejects(tools, "tools.0.custom.name: String should match pattern");
        check_rejects(
            request(
                json!([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}]}]),
            ),
            "media_type: Input should be 'image/jpeg'",
        );
    }

    #[test]
    fn validation_accepts_assistant_first_and_prefill() {
        let body = request(
            json!([{"role": "assistant", "content": "Hi, how can I help?"},
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]),
        );
        assert_eq!(validate(&body, Endpoint::Messages, ""), Ok(()));
    }

    /// What Claude Code sends: a system message right after a user turn, documents,
    /// server-tool blocks and server tools.
    #[test]
    fn validation_accepts_mid_conversation_system_messages_and_server_content() {
        let mut body = request(json!([
            {"role": "user", "content": [
                {"type": "text", "text": "Read", "cache_control": {"type": "ephemeral"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
            ]},
            {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                {"type": "text", "text": "Voilà."}
            ]},
            {"role": "user", "content": "merci"}
        ]));
        body["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
        assert_eq!(validate(&body, Endpoint::Messages, ""), Ok(()));
    }

    #[test]
    fn documents_are_checked_as_anthropic_checks_them() {
        let with = |document: Value| {
            request(
                json!([{"role": "user", "content": [{"type": "text", "text": "Read"}, document]}]),
            )
        };
        for document in [
            json!({"type": "document", "title": "a.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}),
            json!({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}),
            json!({"type": "document", "source": {"type": "file", "file_id": "file_1"}}),
            json!({"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "x"}]}}),
        ] {
            assert_eq!(
                validate(&with(document.clone()), Endpoint::Messages, ""),
                Ok(()),
                "{document}"
            );
        }
        check_rejects(
            with(
                json!({"type": "document", "source": {"type": "base64", "media_type": "text/csv", "data": "YQ=="}}),
            ),
            "messages.0.content.1.document.source.base64.media_type: Input should be 'application/pdf'",
        );
        check_rejects(
            with(
                json!({"type": "document", "source": {"type": "text", "media_type": "text/plain"}}),
            ),
            "messages.0.content.1.document.source.text.data: Field required",
        );
        check_rejects(
            with(json!({"type": "document", "source": {"type": "url"}})),
            "messages.0.content.1.document.source.url.url: Field required",
        );
        check_rejects(
            with(json!({"type": "document"})),
            "messages.0.content.1.document.source: Field required",
        );
        check_rejects(
            with(json!({"type": "document", "source": {"type": "pdf"}})),
            "Input tag 'pdf' found",
        );
    }

    #[test]
    fn count_tokens_needs_no_max_tokens() {
        let body = json!({"model": "m", "system": "abcd", "messages": [{"role": "user", "content": "efgh"}]});
        assert_eq!(validate(&body, Endpoint::CountTokens, ""), Ok(()));
        assert_eq!(input_tokens(&body), 2);
    }
}
