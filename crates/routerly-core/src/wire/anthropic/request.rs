//! Requests: an Anthropic client's body to canonical, and canonical to the body sent to
//! Anthropic (for `/v1/messages` and `/v1/messages/count_tokens`).

use std::borrow::Cow;

use crate::wire::json::{TextMessage, nonzero_limit, place_in};
use crate::wire::{SimpleRequest, TextPlaces};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::DEFAULT_MAX_TOKENS;
use super::json::{
    Object, as_array, as_object, as_str, field_path, get, optional_bool, optional_f64,
    optional_str, optional_u32, require, require_media_type, require_str,
};
use crate::canonical::{
    ChatRequest, ContentPart, DecodeError, DocumentSource, HostedTool, ImageSource, Message,
    Reasoning, ResponseFormat, Role, Tool, ToolChoice, WebSearch,
};

/// Anthropic's smallest accepted thinking budget.
const MIN_THINKING_BUDGET: u32 = 1024;

/// Room left for the visible answer when `max_tokens` must be raised above the thinking
/// budget.
const ANSWER_TOKENS_AFTER_THINKING: u32 = 1024;

/// Anthropic rejects `top_p` below this value when thinking is on.
const MIN_TOP_P_WITH_THINKING: f64 = 0.95;

// ---------------------------------------------------------------------------------------
// Decoding a client's request
// ---------------------------------------------------------------------------------------

/// Decodes an Anthropic client's `/v1/messages` body into a canonical request, checking
/// types and required fields; every error names the field path in `param`.
pub fn decode_request(body: &Value) -> Result<ChatRequest, DecodeError> {
    let object = body
        .as_object()
        .ok_or_else(|| DecodeError::new("the request body must be a JSON object"))?;

    let model = require_str(object, "model", "")?.to_owned();
    let max_tokens = nonzero_limit(
        optional_u32(object, "max_tokens", "")?,
        "max_tokens",
        "`max_tokens` must be greater than or equal to 1",
    )?
    .ok_or_else(|| DecodeError::at("max_tokens", "`max_tokens`: field required"))?;
    let system = match get(object, "system") {
        Some(system_value) => decode_system(system_value)?,
        None => Vec::new(),
    };
    // Past hosted searches in the conversation are carried by name (see `past_search`).
    let mut past_searches = Vec::new();
    let mut messages = as_array(require(object, "messages", "")?, "messages")?
        .iter()
        .enumerate()
        .map(|(message_index, message_value)| {
            decode_message(
                message_value,
                &format!("messages[{message_index}]"),
                &mut past_searches,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Anthropic takes a mid-conversation system message only right after a user turn.
    for (index, message) in messages.iter().enumerate() {
        let after_user = index
            .checked_sub(1)
            .is_some_and(|previous| messages[previous].role == Role::User);
        if message.role == Role::System && !after_user {
            return Err(DecodeError::at(
                format!("messages[{index}].role"),
                format!(
                    "`messages[{index}]`: a system message must immediately follow a user message (the system prompt goes in the top-level `system` field)"
                ),
            ));
        }
    }
    // An assistant turn that held nothing but a past search (one paused mid-search) is
    // left out whole: no provider takes an empty turn.
    if !past_searches.is_empty() {
        messages.retain(|message| message.role != Role::Assistant || !message.content.is_empty());
    }
    let stop = match get(object, "stop_sequences") {
        Some(stop_value) => as_array(stop_value, "stop_sequences")?
            .iter()
            .enumerate()
            .map(|(stop_index, stop_sequence)| {
                as_str(stop_sequence, &format!("stop_sequences[{stop_index}]")).map(str::to_owned)
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let mut tools = Vec::new();
    let mut hosted_tools = past_searches;
    if let Some(tools_value) = get(object, "tools") {
        for (tool_index, tool_value) in as_array(tools_value, "tools")?.iter().enumerate() {
            let path = format!("tools[{tool_index}]");
            match decode_tool(tool_value, &path)? {
                Ok(tool) => tools.push(tool),
                Err(kind) if kind.starts_with("web_search_") => {
                    let web_search = decode_web_search(tool_value, &path)?;
                    hosted_tools.push(HostedTool {
                        kind,
                        path,
                        web_search: Some(web_search),
                    });
                }
                Err(kind) => hosted_tools.push(HostedTool::named(kind, path)),
            }
        }
    }
    let (tool_choice, parallel_tool_calls) = match get(object, "tool_choice") {
        Some(tool_choice_value) => decode_tool_choice(tool_choice_value)?,
        None => (None, None),
    };
    let reasoning = match get(object, "thinking") {
        Some(thinking_value) => decode_thinking(thinking_value)?,
        None => None,
    };
    let response_format = decode_output_format(object)?;
    let user = match get(object, "metadata") {
        Some(metadata_value) => optional_str(
            as_object(metadata_value, "metadata")?,
            "user_id",
            "metadata",
        )?
        .map(str::to_owned),
        None => None,
    };

    Ok(ChatRequest {
        model,
        system,
        messages,
        max_tokens: Some(max_tokens),
        temperature: optional_f64(object, "temperature", "")?,
        top_p: optional_f64(object, "top_p", "")?,
        top_k: optional_u32(object, "top_k", "")?,
        stop,
        stream: optional_bool(object, "stream", "")?.unwrap_or(false),
        // Anthropic streams always carry usage; the flag only matters to OpenAI clients.
        stream_include_usage: false,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        reasoning,
        presence_penalty: None,
        frequency_penalty: None,
        seed: None,
        user,
        hosted_tools,
    })
}

/// A Messages body of the common shape, read straight from its text into a
/// [`ChatRequest`]; `None` for any other body, which [`decode_request`] then reads from its
/// JSON tree (and refuses with an error naming the field, where it is at fault).
///
/// The common shape: only the members below, each of the type it must have; a system prompt
/// given as a string; user and assistant messages with string content. Where this reader
/// accepts a body it gives exactly what [`decode_request`] gives (the `wire_request` fuzz
/// target and the tests compare the two); any member it does not know, a duplicate, a block
/// array or a limit of 0 sends the body to the full decoder.
pub fn decode_simple_request(text: &str) -> Option<SimpleRequest> {
    let body: SimpleBody<'_> = serde_json::from_str(text).ok()?;
    if body.messages.is_empty() || body.max_tokens == 0 {
        return None;
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for message in body.messages {
        let role = match message.role {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => return None,
        };
        messages.push(Message {
            role,
            content: vec![ContentPart::text(message.content)],
        });
    }
    let system = match body.system {
        Some(text) if !text.is_empty() => vec![ContentPart::text(text)],
        _ => Vec::new(),
    };
    let model = place_in(text, &body.model);
    let request = ChatRequest {
        model: body.model.into_owned(),
        system,
        messages,
        max_tokens: Some(body.max_tokens),
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: body.top_k,
        stop: body.stop_sequences.unwrap_or_default(),
        stream: body.stream.unwrap_or(false),
        stream_include_usage: false,
        tools: Vec::new(),
        tool_choice: None,
        parallel_tool_calls: None,
        response_format: None,
        reasoning: None,
        presence_penalty: None,
        frequency_penalty: None,
        seed: None,
        user: body
            .metadata
            .and_then(|metadata| metadata.user_id)
            .map(str::to_owned),
        hosted_tools: Vec::new(),
    };
    Some(SimpleRequest {
        request,
        places: TextPlaces {
            model,
            // Messages has no such member.
            stream_options: false,
        },
    })
}

/// The members [`decode_simple_request`] reads; any other member fails the reading (and
/// sends the body to [`decode_request`]). `null` reads as absent, as [`get`] reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimpleBody<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    max_tokens: u32,
    #[serde(borrow)]
    messages: Vec<TextMessage<'a>>,
    // Borrowed only: text with escapes goes to the full decoder.
    system: Option<&'a str>,
    stream: Option<bool>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u32>,
    stop_sequences: Option<Vec<String>>,
    #[serde(borrow)]
    metadata: Option<SimpleMetadata<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimpleMetadata<'a> {
    user_id: Option<&'a str>,
}

/// Structured output: `output_config.format` (the current field) or the beta's
/// `output_format`, each `{"type": "json_schema", "schema": …}`.
fn decode_output_format(
    object: &serde_json::Map<String, Value>,
) -> Result<Option<ResponseFormat>, DecodeError> {
    let (format_value, path) = match (get(object, "output_config"), get(object, "output_format")) {
        (Some(config_value), _) => match get(as_object(config_value, "output_config")?, "format") {
            Some(format_value) => (format_value, "output_config.format"),
            None => return Ok(None),
        },
        (None, Some(format_value)) => (format_value, "output_format"),
        (None, None) => return Ok(None),
    };
    if format_value.is_null() {
        return Ok(None);
    }
    let format_object = as_object(format_value, path)?;
    match format_object.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = format_object.get("schema").cloned().ok_or_else(|| {
                DecodeError::at(
                    format!("{path}.schema"),
                    "a json_schema format needs a `schema`",
                )
            })?;
            Ok(Some(ResponseFormat::JsonSchema {
                name: "output".to_owned(),
                schema,
                strict: Some(true),
            }))
        }
        other => Err(DecodeError::at(
            format!("{path}.type"),
            format!(
                "unsupported output format type {}; use \"json_schema\"",
                other.map_or("(missing)".to_owned(), |kind| format!("\"{kind}\""))
            ),
        )),
    }
}

fn decode_system(system_value: &Value) -> Result<Vec<ContentPart>, DecodeError> {
    if let Some(text) = system_value.as_str() {
        return Ok(if text.is_empty() {
            Vec::new()
        } else {
            vec![ContentPart::text(text)]
        });
    }
    let blocks = as_array(system_value, "system").map_err(|_| {
        DecodeError::at(
            "system",
            "`system` must be a string or an array of text blocks",
        )
    })?;
    blocks
        .iter()
        .enumerate()
        .map(|(block_index, block_value)| {
            let path = format!("system[{block_index}]");
            let block = as_object(block_value, &path)?;
            let block_type = require_str(block, "type", &path)?;
            if block_type != "text" {
                let param = field_path(&path, "type");
                return Err(DecodeError::at(
                    &param,
                    format!("`{param}`: system blocks must be text blocks, not `{block_type}`"),
                ));
            }
            Ok(ContentPart::text(require_str(block, "text", &path)?))
        })
        .collect()
}

fn decode_message(
    message_value: &Value,
    path: &str,
    past_searches: &mut Vec<HostedTool>,
) -> Result<Message, DecodeError> {
    let message = as_object(message_value, path)?;
    let role = match require_str(message, "role", path)? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        // A mid-conversation system message, kept in its place.
        "system" => Role::System,
        other => {
            let param = field_path(path, "role");
            return Err(DecodeError::at(
                &param,
                format!("`{param}` must be `user`, `assistant` or `system`, not `{other}`"),
            ));
        }
    };
    let content_path = field_path(path, "content");
    let content_value = require(message, "content", path)?;
    let content = if let Some(text) = content_value.as_str() {
        vec![ContentPart::text(text)]
    } else {
        let blocks = as_array(content_value, &content_path).map_err(|_| {
            DecodeError::at(
                &content_path,
                format!("`{content_path}` must be a string or an array of content blocks"),
            )
        })?;
        let mut content = Vec::with_capacity(blocks.len());
        for (block_index, block_value) in blocks.iter().enumerate() {
            let block_path = format!("{content_path}[{block_index}]");
            if let Some(kind) = past_search(block_value, role) {
                past_searches.push(HostedTool::named(kind, block_path));
                continue;
            }
            if let Some(part) = decode_block(block_value, role, &block_path)? {
                content.push(part);
            }
        }
        content
    };
    Ok(Message { role, content })
}

/// The type of an assistant block that records a web search or fetch Anthropic ran
/// earlier in the conversation (Claude Code sends them back): its `server_tool_use` and
/// the `web_search_tool_result` or `web_fetch_tool_result`. What it found is in the answer
/// that followed, and no other provider can replay it, so a translation leaves it out and
/// names it in `x-routerly-dropped` (as a hosted tool carried by name, like a Responses
/// `web_search_call` item); a same-format call forwards the client's body untouched.
/// Other server tools' results (code execution, MCP) stay opaque: refused on translation.
fn past_search(block: &Value, role: Role) -> Option<&str> {
    if role != Role::Assistant {
        return None;
    }
    match block.get("type")?.as_str()? {
        "server_tool_use" => {
            let name = block.get("name")?.as_str()?;
            matches!(name, "web_search" | "web_fetch").then_some("server_tool_use")
        }
        kind @ ("web_search_tool_result" | "web_fetch_tool_result") => Some(kind),
        _ => None,
    }
}

/// One content block of a message; `None` for blocks that are deliberately dropped.
fn decode_block(
    block_value: &Value,
    role: Role,
    path: &str,
) -> Result<Option<ContentPart>, DecodeError> {
    let block = as_object(block_value, path)?;
    let block_type = require_str(block, "type", path)?;
    let type_param = field_path(path, "type");
    let part = match (block_type, role) {
        ("text", _) => ContentPart::text(require_str(block, "text", path)?),
        ("image", _) => decode_image(block, path)?
            .unwrap_or_else(|| ContentPart::opaque("image", path, block_value)),
        ("tool_use", Role::Assistant) => decode_tool_use(block, path)?,
        ("tool_result", Role::User) => decode_tool_result(block, path)?,
        ("tool_use" | "tool_result", _) => {
            let expected_role = if block_type == "tool_use" {
                "assistant"
            } else {
                "user"
            };
            return Err(DecodeError::at(
                &type_param,
                format!(
                    "`{type_param}`: `{block_type}` blocks may only appear in {expected_role} messages"
                ),
            ));
        }
        ("thinking", _) => ContentPart::Thinking {
            text: require_str(block, "thinking", path)?.to_owned(),
            signature: optional_str(block, "signature", path)?.map(str::to_owned),
        },
        ("redacted_thinking", _) => return Ok(None),
        ("document", _) => decode_document(block, path)?
            .unwrap_or_else(|| ContentPart::opaque("document", path, block_value)),
        // Documents from the Files API or of custom content, search results, server-tool and MCP blocks, container uploads and any
        // type newer than this gateway: carried as they are (see `ContentPart::Opaque`).
        (other, _) => ContentPart::opaque(other, path, block_value),
    };
    Ok(Some(part))
}

/// An image block; `None` for a source kind the canonical model does not represent (such
/// as a Files API `file` source).
fn decode_image(block: &Object, path: &str) -> Result<Option<ContentPart>, DecodeError> {
    let source_path = field_path(path, "source");
    let source = as_object(require(block, "source", path)?, &source_path)?;
    let source = match require_str(source, "type", &source_path)? {
        "base64" => {
            let media_type = require_media_type(source, "media_type", &source_path)?;
            // As every image decoder does: an image is an image/ type (what another
            // format's image slot takes), else it is refused here.
            if !crate::wire::media::is_image(media_type) {
                return Err(DecodeError::at(
                    field_path(&source_path, "media_type"),
                    "An image needs an image media type (image/png, image/jpeg, …).",
                ));
            }
            ImageSource::Base64 {
                media_type: media_type.to_owned(),
                data: require_str(source, "data", &source_path)?.to_owned(),
            }
        }
        "url" => ImageSource::Url {
            url: require_str(source, "url", &source_path)?.to_owned(),
        },
        _ => return Ok(None),
    };
    Ok(Some(ContentPart::Image {
        source,
        detail: None,
    }))
}

/// A document block; `None` for a source kind the canonical model does not represent (a
/// Files API `file`, custom `content`).
fn decode_document(block: &Object, path: &str) -> Result<Option<ContentPart>, DecodeError> {
    let source_path = field_path(path, "source");
    let source = as_object(require(block, "source", path)?, &source_path)?;
    let source = match require_str(source, "type", &source_path)? {
        "base64" => DocumentSource::Base64 {
            media_type: require_media_type(source, "media_type", &source_path)?.to_owned(),
            data: require_str(source, "data", &source_path)?.to_owned(),
        },
        "text" => DocumentSource::Text {
            text: require_str(source, "data", &source_path)?.to_owned(),
        },
        "url" => DocumentSource::Url {
            url: require_str(source, "url", &source_path)?.to_owned(),
        },
        _ => return Ok(None),
    };
    let citations = match get(block, "citations") {
        None | Some(Value::Null) => false,
        Some(citations_value) => {
            let citations_path = field_path(path, "citations");
            let citations = as_object(citations_value, &citations_path)?;
            optional_bool(citations, "enabled", &citations_path)?.unwrap_or(false)
        }
    };
    Ok(Some(ContentPart::Document {
        source,
        name: optional_str(block, "title", path)?.map(str::to_owned),
        context: optional_str(block, "context", path)?.map(str::to_owned),
        citations,
        path: path.to_owned(),
    }))
}

fn decode_tool_use(block: &Object, path: &str) -> Result<ContentPart, DecodeError> {
    let input_param = field_path(path, "input");
    let input = as_object(require(block, "input", path)?, &input_param)?;
    Ok(ContentPart::ToolCall {
        id: require_str(block, "id", path)?.to_owned(),
        name: require_str(block, "name", path)?.to_owned(),
        arguments: Value::Object(input.clone()).to_string(),
    })
}

fn decode_tool_result(block: &Object, path: &str) -> Result<ContentPart, DecodeError> {
    let tool_call_id = require_str(block, "tool_use_id", path)?.to_owned();
    let content_path = field_path(path, "content");
    let content = match get(block, "content") {
        None => Vec::new(),
        Some(Value::String(text)) => vec![ContentPart::text(text)],
        Some(content_value) => {
            let blocks = as_array(content_value, &content_path).map_err(|_| {
                DecodeError::at(
                    &content_path,
                    format!(
                        "`{content_path}` must be a string or an array of text and image blocks"
                    ),
                )
            })?;
            blocks
                .iter()
                .enumerate()
                .map(|(block_index, block_value)| {
                    let block_path = format!("{content_path}[{block_index}]");
                    let inner = as_object(block_value, &block_path)?;
                    match require_str(inner, "type", &block_path)? {
                        "text" => Ok(ContentPart::text(require_str(inner, "text", &block_path)?)),
                        "image" => Ok(decode_image(inner, &block_path)?.unwrap_or_else(|| {
                            ContentPart::opaque("image", &block_path, block_value)
                        })),
                        "document" => {
                            Ok(decode_document(inner, &block_path)?.unwrap_or_else(|| {
                                ContentPart::opaque("document", &block_path, block_value)
                            }))
                        }
                        other => Ok(ContentPart::opaque(other, &block_path, block_value)),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(ContentPart::ToolResult {
        tool_call_id,
        content,
        is_error: optional_bool(block, "is_error", path)?.unwrap_or(false),
    })
}

/// A custom tool, or `Err` with the type of a tool Anthropic defines (a server tool such as
/// `web_search_20250305`, or a client tool with Anthropic's schema such as `bash_20250124`).
fn decode_tool(tool_value: &Value, path: &str) -> Result<Result<Tool, String>, DecodeError> {
    let tool = as_object(tool_value, path)?;
    if let Some(tool_type) = optional_str(tool, "type", path)?
        && tool_type != "custom"
    {
        return Ok(Err(tool_type.to_owned()));
    }
    let schema_param = field_path(path, "input_schema");
    let input_schema = as_object(require(tool, "input_schema", path)?, &schema_param)?;
    Ok(Ok(Tool {
        name: require_str(tool, "name", path)?.to_owned(),
        description: optional_str(tool, "description", path)?.map(str::to_owned),
        parameters: Value::Object(input_schema.clone()),
        strict: None,
    }))
}

fn decode_tool_choice(
    tool_choice_value: &Value,
) -> Result<(Option<ToolChoice>, Option<bool>), DecodeError> {
    let path = "tool_choice";
    let tool_choice = as_object(tool_choice_value, path)?;
    let choice = match require_str(tool_choice, "type", path)? {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Tool {
            name: require_str(tool_choice, "name", path)?.to_owned(),
        },
        other => {
            return Err(DecodeError::at(
                "tool_choice.type",
                format!(
                    "`tool_choice.type` must be `auto`, `any`, `tool` or `none`, not `{other}`"
                ),
            ));
        }
    };
    let parallel_tool_calls = optional_bool(tool_choice, "disable_parallel_tool_use", path)?
        .map(|disable_parallel| !disable_parallel);
    Ok((Some(choice), parallel_tool_calls))
}

fn decode_thinking(thinking_value: &Value) -> Result<Option<Reasoning>, DecodeError> {
    let path = "thinking";
    let thinking = as_object(thinking_value, path)?;
    match require_str(thinking, "type", path)? {
        "enabled" => {
            let budget_tokens =
                optional_u32(thinking, "budget_tokens", path)?.ok_or_else(|| {
                    DecodeError::at(
                        "thinking.budget_tokens",
                        "`thinking.budget_tokens`: field required",
                    )
                })?;
            Ok(Some(Reasoning {
                budget_tokens: Some(budget_tokens),
                effort: None,
            }))
        }
        // Adaptive thinking (Claude Code's default): the model decides how long to think.
        // Its nearest equivalent elsewhere is reasoning at the provider's default effort.
        "adaptive" => Ok(Some(Reasoning {
            budget_tokens: None,
            effort: None,
        })),
        "disabled" => Ok(None),
        other => Err(DecodeError::at(
            "thinking.type",
            format!("`thinking.type` must be `enabled`, `adaptive` or `disabled`, not `{other}`"),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Encoding a request for Anthropic
// ---------------------------------------------------------------------------------------

/// Encodes a canonical request as the body to send to Anthropic's `/v1/messages`.
///
/// Adjustments Anthropic needs: `max_tokens` defaults to [`DEFAULT_MAX_TOKENS`];
/// consecutive messages of one role are merged and tool results lead a user message;
/// unsigned thinking is dropped; JSON response formats become a system instruction;
/// thinking drops `temperature` and `top_k` (and a `top_p` below 0.95), raises `max_tokens`
/// above the budget, and is itself dropped when the request forces a tool call (Anthropic
/// allows neither combination); `temperature` is clamped to Anthropic's 0..=1 and `top_p`
/// is dropped when `temperature` is set (current Claude models reject both together);
/// penalties and `seed` have no Anthropic equivalent and are dropped.
pub fn encode_request(request: &ChatRequest, upstream_model: &str) -> Result<Value, DecodeError> {
    let thinking_budget = thinking_budget(request);
    let mut max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if let Some(budget_tokens) = thinking_budget
        && max_tokens <= budget_tokens
    {
        max_tokens = budget_tokens.saturating_add(ANSWER_TOKENS_AFTER_THINKING);
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(upstream_model));
    body.insert("max_tokens".into(), json!(max_tokens));
    let system = encode_system(request);
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert(
        "messages".into(),
        Value::Array(encode_messages(&request.messages)?),
    );
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    match thinking_budget {
        None => {
            if let Some(temperature) = request.temperature {
                body.insert("temperature".into(), json!(temperature.clamp(0.0, 1.0)));
            } else if let Some(top_p) = request.top_p {
                body.insert("top_p".into(), json!(top_p));
            }
            if let Some(top_k) = request.top_k {
                body.insert("top_k".into(), json!(top_k));
            }
        }
        Some(_) => {
            if let Some(top_p) = request
                .top_p
                .filter(|top_p| *top_p >= MIN_TOP_P_WITH_THINKING)
            {
                body.insert("top_p".into(), json!(top_p));
            }
        }
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    let search = web_search(request).and_then(|tool| tool.web_search.as_ref());
    if !request.tools.is_empty() || search.is_some() {
        let mut tools: Vec<Value> = request.tools.iter().map(encode_tool).collect();
        tools.extend(search.map(encode_web_search));
        body.insert("tools".into(), Value::Array(tools));
        if let Some(tool_choice) = encode_tool_choice(request) {
            body.insert("tool_choice".into(), tool_choice);
        }
    }
    if let Some(budget_tokens) = thinking_budget {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget_tokens}),
        );
    }
    if let Some(user) = &request.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(ResponseFormat::JsonSchema { schema, .. }) = &request.response_format {
        body.insert(
            "output_config".into(),
            json!({"format": {"type": "json_schema", "schema": schema}}),
        );
    }
    Ok(Value::Object(body))
}

/// Encodes the body for Anthropic's `/v1/messages/count_tokens`: the fields that shape the
/// prompt (`model`, `system`, `messages`, `tools`, `tool_choice`, `thinking`) and nothing
/// about generation.
pub fn count_tokens_request(
    request: &ChatRequest,
    upstream_model: &str,
) -> Result<Value, DecodeError> {
    let mut body = encode_request(request, upstream_model)?;
    if let Value::Object(fields) = &mut body {
        fields.retain(|key, _| {
            matches!(
                key.as_str(),
                "model" | "system" | "messages" | "tools" | "tool_choice" | "thinking"
            )
        });
    }
    Ok(body)
}

/// The thinking budget to send, if any: an explicit budget (at least Anthropic's minimum)
/// wins over an effort level; forced tool use turns thinking off, since Anthropic rejects
/// the combination and the forced call is what the client relies on.
fn thinking_budget(request: &ChatRequest) -> Option<u32> {
    let reasoning = request.reasoning.as_ref()?;
    let forces_tool = !request.tools.is_empty()
        && matches!(
            request.tool_choice,
            Some(ToolChoice::Required | ToolChoice::Tool { .. })
        );
    if forces_tool {
        return None;
    }
    let budget_tokens = match (reasoning.budget_tokens, reasoning.effort.as_deref()) {
        (Some(0), _) => return None,
        (Some(budget_tokens), _) => budget_tokens,
        (None, Some("minimal" | "none")) => return None,
        (None, Some("low")) => 1024,
        (None, Some("high" | "xhigh")) => 16384,
        (None, _) => 4096,
    };
    Some(budget_tokens.max(MIN_THINKING_BUDGET))
}

/// System blocks: the canonical system text, then, for JSON mode (which Anthropic has no
/// field for; schemas go natively in `output_config.format`), an instruction to answer
/// with a JSON object only.
fn encode_system(request: &ChatRequest) -> Vec<Value> {
    let mut system: Vec<Value> = request
        .system
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } if !text.is_empty() => {
                Some(json!({"type": "text", "text": text}))
            }
            _ => None,
        })
        .collect();
    let instruction = match &request.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(
            "Respond with only a valid JSON object: no other text, no Markdown code fences."
                .to_owned(),
        ),
        Some(ResponseFormat::JsonSchema { .. }) => None,
    };
    if let Some(instruction) = instruction {
        system.push(json!({"type": "text", "text": instruction}));
    }
    system
}

/// Messages in Anthropic's shape: roles alternate (consecutive messages of one role are
/// merged, empty ones skipped) and a user message starts with its tool results. A
/// mid-conversation system message stands right after a user turn, where Anthropic takes
/// one; anywhere else its text joins the user side, the nearest place.
fn encode_messages(messages: &[Message]) -> Result<Vec<Value>, DecodeError> {
    let mut merged: Vec<(Role, Vec<Value>)> = Vec::with_capacity(messages.len());
    for (message_index, message) in messages.iter().enumerate() {
        let mut blocks = Vec::with_capacity(message.content.len());
        for (part_index, part) in message.content.iter().enumerate() {
            let path = format!("messages[{message_index}].content[{part_index}]");
            if let Some(block) = encode_part(part, message.role, &path)? {
                blocks.push(block);
            }
        }
        if blocks.is_empty() {
            continue;
        }
        let role = match (message.role, merged.last().map(|(role, _)| *role)) {
            (Role::System, Some(Role::User | Role::System)) | (Role::User, _) => message.role,
            (Role::System, _) => Role::User,
            (Role::Assistant, _) => Role::Assistant,
        };
        match merged.last_mut() {
            Some((previous_role, previous_blocks)) if *previous_role == role => {
                previous_blocks.extend(blocks)
            }
            _ => merged.push((role, blocks)),
        }
    }
    Ok(merged
        .into_iter()
        .map(|(role, blocks)| {
            let (role_name, blocks) = match role {
                Role::Assistant => ("assistant", blocks),
                // Anthropic's mid-conversation system message, in its place.
                Role::System => ("system", blocks),
                Role::User => {
                    let (mut tool_results, others): (Vec<Value>, Vec<Value>) = blocks
                        .into_iter()
                        .partition(|block| block["type"] == "tool_result");
                    tool_results.extend(others);
                    ("user", tool_results)
                }
            };
            json!({"role": role_name, "content": blocks})
        })
        .collect())
}

/// One content block; `None` for parts Anthropic would reject (empty text, unsigned
/// thinking).
fn encode_part(part: &ContentPart, role: Role, path: &str) -> Result<Option<Value>, DecodeError> {
    let block = match part {
        ContentPart::Text { text } if text.is_empty() => return Ok(None),
        ContentPart::Text { text } => json!({"type": "text", "text": text}),
        ContentPart::Image { source, .. } => encode_image(source),
        ContentPart::Document {
            source,
            name,
            context,
            citations,
            ..
        } => encode_document(source, name.as_deref(), context.as_deref(), *citations),
        ContentPart::ToolCall {
            id,
            name,
            arguments,
        } => json!({
            "type": "tool_use",
            "id": id,
            "name": name,
            "input": parse_tool_arguments(arguments, name, path)?,
        }),
        ContentPart::ToolResult {
            tool_call_id,
            content,
            is_error,
        } => {
            let mut block = Map::new();
            block.insert("type".into(), json!("tool_result"));
            block.insert("tool_use_id".into(), json!(tool_call_id));
            if let Some(content) = encode_tool_result_content(content) {
                block.insert("content".into(), content);
            }
            if *is_error {
                block.insert("is_error".into(), json!(true));
            }
            Value::Object(block)
        }
        ContentPart::Thinking { text, signature } => match (role, signature) {
            (Role::Assistant, Some(signature)) if !signature.is_empty() => {
                json!({"type": "thinking", "thinking": text, "signature": signature})
            }
            _ => return Ok(None),
        },
        // Refused before encoding (see `wire::encode_request`).
        ContentPart::Opaque { .. } => return Ok(None),
    };
    Ok(Some(block))
}

fn encode_image(source: &ImageSource) -> Value {
    match source {
        ImageSource::Url { url } => json!({"type": "image", "source": {"type": "url", "url": url}}),
        ImageSource::Base64 { media_type, data } => json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }),
    }
}

fn encode_document(
    source: &DocumentSource,
    name: Option<&str>,
    context: Option<&str>,
    citations: bool,
) -> Value {
    let source = match source {
        DocumentSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        DocumentSource::Text { text } => {
            json!({"type": "text", "media_type": "text/plain", "data": text})
        }
        DocumentSource::Url { url } => json!({"type": "url", "url": url}),
    };
    let mut block = json!({"type": "document", "source": source});
    if let Some(name) = name {
        block["title"] = json!(name);
    }
    if let Some(context) = context {
        block["context"] = json!(context);
    }
    if citations {
        block["citations"] = json!({"enabled": true});
    }
    block
}

/// Tool-call arguments as Anthropic's `input` object; empty text (some OpenAI-compatible
/// providers send it for tools without parameters) is `{}`.
fn parse_tool_arguments(arguments: &str, name: &str, path: &str) -> Result<Value, DecodeError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(input @ Value::Object(_)) => Ok(input),
        _ => {
            let param = field_path(path, "arguments");
            Err(DecodeError::at(
                &param,
                format!("`{param}`: the arguments of tool call `{name}` are not a JSON object"),
            ))
        }
    }
}

/// A tool result's content: a plain string for one text part (the common case), blocks
/// otherwise, nothing when empty.
fn encode_tool_result_content(content: &[ContentPart]) -> Option<Value> {
    let blocks: Vec<Value> = content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } if !text.is_empty() => {
                Some(json!({"type": "text", "text": text}))
            }
            ContentPart::Image { source, .. } => Some(encode_image(source)),
            ContentPart::Document {
                source,
                name,
                context,
                citations,
                ..
            } => Some(encode_document(
                source,
                name.as_deref(),
                context.as_deref(),
                *citations,
            )),
            _ => None,
        })
        .collect();
    match blocks.as_slice() {
        [] => None,
        [only] if only["type"] == "text" => Some(only["text"].clone()),
        _ => Some(Value::Array(blocks)),
    }
}

/// The hosted web search Anthropic runs as its `web_search_20250305` server tool: the
/// request's first, unless a function tool already has the server tool's name.
pub fn web_search(request: &ChatRequest) -> Option<&HostedTool> {
    let (tool, _) = request.web_search()?;
    (!request
        .tools
        .iter()
        .any(|tool| tool.name == WEB_SEARCH_NAME))
    .then_some(tool)
}

/// Anthropic's own web search tool as the canonical search: its allowed domains and the
/// user's location, what every target with a search tool can carry.
fn decode_web_search(tool_value: &Value, path: &str) -> Result<WebSearch, DecodeError> {
    let domains_path = field_path(path, "allowed_domains");
    let allowed_domains = match tool_value.get("allowed_domains") {
        None | Some(Value::Null) => Vec::new(),
        Some(domains) => as_array(domains, &domains_path)?
            .iter()
            .enumerate()
            .map(|(index, domain)| {
                as_str(domain, &format!("{domains_path}[{index}]")).map(str::to_owned)
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(WebSearch {
        allowed_domains,
        user_location: tool_value
            .get("user_location")
            .map(crate::wire::openai::user_location),
    })
}

/// The name Anthropic's web search tool is called by.
const WEB_SEARCH_NAME: &str = "web_search";

fn encode_web_search(search: &WebSearch) -> Value {
    let mut tool = json!({"type": "web_search_20250305", "name": WEB_SEARCH_NAME});
    if !search.allowed_domains.is_empty() {
        tool["allowed_domains"] = json!(search.allowed_domains);
    }
    if let Some(location) = &search.user_location {
        let mut encoded = Map::new();
        encoded.insert("type".into(), json!("approximate"));
        for (key, value) in [
            ("city", &location.city),
            ("region", &location.region),
            ("country", &location.country),
            ("timezone", &location.timezone),
        ] {
            if let Some(value) = value {
                encoded.insert(key.into(), json!(value));
            }
        }
        tool["user_location"] = Value::Object(encoded);
    }
    tool
}

fn encode_tool(tool: &Tool) -> Value {
    // Anthropic requires an object schema with `type: object`; OpenAI tools may omit
    // their parameters entirely.
    let mut input_schema = tool.parameters.as_object().cloned().unwrap_or_default();
    if !input_schema.contains_key("type") {
        input_schema.insert("type".into(), json!("object"));
        input_schema
            .entry("properties")
            .or_insert_with(|| json!({}));
    }
    let mut encoded = Map::new();
    encoded.insert("name".into(), json!(tool.name));
    if let Some(description) = &tool.description {
        encoded.insert("description".into(), json!(description));
    }
    encoded.insert("input_schema".into(), Value::Object(input_schema));
    Value::Object(encoded)
}

/// `tool_choice`, also carrying `parallel_tool_calls` (as `disable_parallel_tool_use`,
/// which needs a tool choice to live in; `none` has no such field).
fn encode_tool_choice(request: &ChatRequest) -> Option<Value> {
    let mut tool_choice = match (&request.tool_choice, request.parallel_tool_calls) {
        (Some(ToolChoice::None), _) => return Some(json!({"type": "none"})),
        (Some(ToolChoice::Auto), _) | (None, Some(false)) => json!({"type": "auto"}),
        (Some(ToolChoice::Required), _) => json!({"type": "any"}),
        (Some(ToolChoice::Tool { name }), _) => json!({"type": "tool", "name": name}),
        (None, _) => return None,
    };
    if let Some(parallel_tool_calls) = request.parallel_tool_calls {
        tool_choice["disable_parallel_tool_use"] = json!(!parallel_tool_calls);
    }
    Some(tool_choice)
}
