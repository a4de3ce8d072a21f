//! The OpenAI mock's Responses API (`POST /v1/responses`): validation as the real API
//! rejects, the conversation view, the `response` object and its full event stream.
//!
//! It keeps no state: a `previous_response_id` is always unknown here (Routerly resolves
//! the ones it stored before calling), answered as OpenAI answers an unknown id. Tokens:
//! the crate's token rule over `instructions`, message texts, `function_call` arguments,
//! `function_call_output` outputs and the compact JSON of `tools`.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::common::{
    Answer, Conversation, Directives, ToolChoice, ToolSpec, byte_fragments, decide, json_bytes,
    output_tokens, tokens_for_bytes, truncate_words, unix_seconds, word_fragments,
};
use crate::{ApiError, MockKind, MockState, event_body, json_response, sse_response};

const KIND: MockKind = MockKind::OpenAi;

fn invalid(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::invalid(message).with_param(param)
}

fn missing(param: &str) -> ApiError {
    invalid(format!("Missing required parameter: '{param}'."), param)
}

/// An `input_file` part: one of `file_id`, `file_url` or `file_data` (a base64 `data:`
/// URL).
fn validate_input_file(part: &Value, path: &str) -> Result<(), ApiError> {
    if let Some(data) = part.get("file_data").filter(|data| !data.is_null()) {
        let valid = data.as_str().is_some_and(|data| {
            data.strip_prefix("data:")
                .and_then(|rest| rest.split_once(";base64,"))
                .is_some_and(|(media_type, payload)| {
                    media_type.contains('/') && !payload.is_empty()
                })
        });
        if !valid {
            let param = format!("{path}.file_data");
            return Err(invalid(
                format!(
                    "Invalid file data: '{param}'. Expected a base64-encoded data URL (e.g. 'data:application/pdf;base64,SGVsbG8sIFdvcmxkIQ==')."
                ),
                &param,
            ));
        }
        return Ok(());
    }
    if ["file_id", "file_url"]
        .iter()
        .any(|key| part.get(key).is_some_and(Value::is_string))
    {
        return Ok(());
    }
    Err(missing(&format!("{path}.file_id")))
}

/// `POST /v1/responses`.
pub(crate) async fn create(state: &MockState, body: Option<&Value>) -> Response {
    if let Some(status) = state.take_failure() {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    let Some(body) = body.filter(|body| body.is_object()) else {
        return ApiError::invalid("We could not parse the JSON body of your request.")
            .into_response(KIND);
    };
    if let Err(error) = validate(body) {
        return error.into_response(KIND);
    }
    let view = conversation(body);
    let directives = &view.directives;
    if directives.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(directives.delay_ms)).await;
    }
    if let Some(status) = directives.status {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    let answer = decide(&view);
    let number = state.next_response_number();
    let id = format!("resp_mock{number:040}");
    let mut output = Vec::new();
    let mut status = "completed";
    let mut out_tokens = output_tokens(&answer);
    let max_tokens = body
        .get("max_output_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    match answer {
        Answer::Text(text) => {
            let text = match truncate_words(&text, max_tokens) {
                Some(truncated) => {
                    status = "incomplete";
                    out_tokens = max_tokens;
                    truncated
                }
                None => text,
            };
            output.push(OutputItem::Message {
                id: format!("msg_mock{number:040}"),
                text,
            });
        }
        Answer::ToolCalls(calls) => {
            for (index, call) in calls.into_iter().enumerate() {
                output.push(OutputItem::Call {
                    id: format!("fc_mock{number:038}{index:02}"),
                    call_id: format!("call_{}", state.next_call_number()),
                    name: call.name,
                    namespace: call.namespace,
                    arguments: call.arguments.to_string(),
                });
            }
        }
    }
    let rendered = Rendered {
        id,
        created_at: unix_seconds(),
        model: view.model.to_owned(),
        body: body.clone(),
        status,
        output,
        input_tokens: input_tokens(body),
        output_tokens: out_tokens,
        cached_tokens: view.directives.cached,
    };
    if body.get("stream") == Some(&Value::Bool(true)) {
        sse_response(event_body(
            rendered.events(),
            view.directives.chunk_delay_ms,
            view.directives.die_after,
        ))
    } else {
        json_response(StatusCode::OK, &rendered.object(true))
    }
}

// ---- validation ----------------------------------------------------------------------------

fn validate(body: &Value) -> Result<(), ApiError> {
    match body.get("model") {
        Some(Value::String(_)) => {}
        None | Some(Value::Null) => return Err(missing("model")),
        Some(_) => {
            return Err(invalid(
                "Invalid type for 'model': expected a string.",
                "model",
            ));
        }
    }
    if let Some(previous) = body.get("previous_response_id").and_then(Value::as_str) {
        return Err(ApiError::new(
            404,
            format!("Previous response with id '{previous}' not found."),
        )
        .with_param("previous_response_id")
        .with_code("previous_response_not_found"));
    }
    if let Some(max) = body.get("max_output_tokens").filter(|max| !max.is_null()) {
        match max.as_u64() {
            Some(value) if value >= 16 => {}
            Some(value) => {
                return Err(invalid(
                    format!(
                        "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {value} instead."
                    ),
                    "max_output_tokens",
                ));
            }
            None => {
                return Err(invalid(
                    "Invalid type for 'max_output_tokens': expected an integer.",
                    "max_output_tokens",
                ));
            }
        }
    }
    let mut call_ids: Vec<&str> = Vec::new();
    match body.get("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(_)) => {}
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                validate_item(item, index, &mut call_ids)?;
            }
        }
        Some(_) => {
            return Err(invalid(
                "Invalid type for 'input': expected one of a string or array of input items.",
                "input",
            ));
        }
    }
    if let Some(tools) = body.get("tools").filter(|tools| !tools.is_null()) {
        let Some(tools) = tools.as_array() else {
            return Err(invalid(
                "Invalid type for 'tools': expected an array.",
                "tools",
            ));
        };
        for (index, tool) in tools.iter().enumerate() {
            let tool_type = tool.get("type").and_then(Value::as_str);
            match tool_type {
                Some("function") => {
                    if tool.get("name").and_then(Value::as_str).is_none() {
                        return Err(missing(&format!("tools[{index}].name")));
                    }
                }
                // A named group of function and custom tools.
                Some("namespace") => {
                    if tool.get("name").and_then(Value::as_str).is_none() {
                        return Err(missing(&format!("tools[{index}].name")));
                    }
                    let Some(members) = tool.get("tools").and_then(Value::as_array) else {
                        return Err(missing(&format!("tools[{index}].tools")));
                    };
                    for (member_index, member) in members.iter().enumerate() {
                        let path = format!("tools[{index}].tools[{member_index}]");
                        match member.get("type").and_then(Value::as_str) {
                            Some("function" | "custom") => {
                                if member.get("name").and_then(Value::as_str).is_none() {
                                    return Err(missing(&format!("{path}.name")));
                                }
                            }
                            Some(other) => {
                                return Err(invalid(
                                    format!(
                                        "Invalid value: '{other}'. Supported values are: 'function' and 'custom'."
                                    ),
                                    &format!("{path}.type"),
                                ));
                            }
                            None => return Err(missing(&format!("{path}.type"))),
                        }
                    }
                }
                Some(_) => {}
                None => return Err(missing(&format!("tools[{index}].type"))),
            }
        }
    }
    if let Some(format) = body.pointer("/text/format").filter(|f| !f.is_null()) {
        match format.get("type").and_then(Value::as_str) {
            Some("text") | Some("json_object") => {}
            Some("json_schema") => {
                if format.get("name").and_then(Value::as_str).is_none() {
                    return Err(missing("text.format.name"));
                }
                if !format.get("schema").is_some_and(Value::is_object) {
                    return Err(missing("text.format.schema"));
                }
            }
            Some(other) => {
                return Err(invalid(
                    format!(
                        "Invalid value: '{other}'. Supported values are: 'text', 'json_object', and 'json_schema'."
                    ),
                    "text.format.type",
                ));
            }
            None => return Err(missing("text.format.type")),
        }
    }
    Ok(())
}

fn validate_item<'a>(
    item: &'a Value,
    index: usize,
    call_ids: &mut Vec<&'a str>,
) -> Result<(), ApiError> {
    let path = format!("input[{index}]");
    let Some(item_map) = item.as_object() else {
        return Err(invalid(
            format!("Invalid type for '{path}': expected an input item object."),
            &path,
        ));
    };
    match item_map
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
    {
        "message" => {
            let role = item_map.get("role").and_then(Value::as_str);
            match role {
                Some("user" | "assistant" | "system" | "developer") => {}
                Some(other) => {
                    return Err(invalid(
                        format!(
                            "Invalid value: '{other}'. Supported values are: 'assistant', 'system', 'developer', and 'user'."
                        ),
                        &format!("{path}.role"),
                    ));
                }
                None => return Err(missing(&format!("{path}.role"))),
            }
            match item_map.get("content") {
                Some(Value::String(_)) => {}
                Some(Value::Array(parts)) => {
                    for (part_index, part) in parts.iter().enumerate() {
                        let part_path = format!("{path}.content[{part_index}]");
                        let part_type = part.get("type").and_then(Value::as_str);
                        let allowed: &[&str] = if role == Some("assistant") {
                            &["output_text", "refusal", "input_text"]
                        } else {
                            &["input_text", "input_image", "input_file", "input_audio"]
                        };
                        match part_type {
                            Some("input_file") if role != Some("assistant") => {
                                validate_input_file(part, &part_path)?
                            }
                            Some(kind) if allowed.contains(&kind) => {}
                            Some(kind) => {
                                return Err(invalid(
                                    format!(
                                        "Invalid value: '{kind}'. Supported values are: {}.",
                                        allowed
                                            .iter()
                                            .map(|kind| format!("'{kind}'"))
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    ),
                                    &format!("{part_path}.type"),
                                ));
                            }
                            None => return Err(missing(&format!("{part_path}.type"))),
                        }
                    }
                }
                None | Some(Value::Null) => return Err(missing(&format!("{path}.content"))),
                Some(_) => {
                    return Err(invalid(
                        format!("Invalid type for '{path}.content': expected a string or array."),
                        &format!("{path}.content"),
                    ));
                }
            }
        }
        // A function call and a custom tool call differ only in their payload's name; their
        // outputs must answer a call made earlier in the same input, as OpenAI checks.
        kind @ ("function_call" | "custom_tool_call") => {
            let payload = if kind == "function_call" {
                "arguments"
            } else {
                "input"
            };
            for key in ["call_id", "name", payload] {
                if item_map.get(key).and_then(Value::as_str).is_none() {
                    return Err(missing(&format!("{path}.{key}")));
                }
            }
            call_ids.push(item_map["call_id"].as_str().unwrap_or_default());
        }
        kind @ ("function_call_output" | "custom_tool_call_output") => {
            let Some(call_id) = item_map.get("call_id").and_then(Value::as_str) else {
                return Err(missing(&format!("{path}.call_id")));
            };
            match item_map.get("output") {
                None | Some(Value::Null) => return Err(missing(&format!("{path}.output"))),
                Some(Value::String(_)) => {}
                // A function call's output may also be a list of text, image and file parts.
                Some(Value::Array(parts)) => {
                    for (part_index, part) in parts.iter().enumerate() {
                        let part_path = format!("{path}.output[{part_index}]");
                        match part.get("type").and_then(Value::as_str) {
                            Some("input_text" | "input_image") => {}
                            Some("input_file") => validate_input_file(part, &part_path)?,
                            Some(other) => {
                                return Err(invalid(
                                    format!(
                                        "Invalid value: '{other}'. Supported values are: 'input_text', 'input_image', and 'input_file'."
                                    ),
                                    &format!("{part_path}.type"),
                                ));
                            }
                            None => return Err(missing(&format!("{part_path}.type"))),
                        }
                    }
                }
                Some(_) => {
                    return Err(invalid(
                        format!(
                            "Invalid type for '{path}.output': expected a string or an array of input content parts."
                        ),
                        &format!("{path}.output"),
                    ));
                }
            }
            if !call_ids.contains(&call_id) {
                let call = if kind == "function_call_output" {
                    "function call"
                } else {
                    "custom tool call"
                };
                return Err(invalid(
                    format!("No tool call found for {call} output with call_id {call_id}."),
                    "input",
                ));
            }
        }
        // The other items of OpenAI's input item list, accepted as they are.
        "reasoning"
        | "item_reference"
        | "file_search_call"
        | "computer_call"
        | "computer_call_output"
        | "web_search_call"
        | "image_generation_call"
        | "code_interpreter_call"
        | "local_shell_call"
        | "local_shell_call_output"
        | "mcp_list_tools"
        | "mcp_approval_request"
        | "mcp_approval_response"
        | "mcp_call" => {}
        other => {
            return Err(invalid(
                format!("Invalid value: '{other}'."),
                &format!("{path}.type"),
            ));
        }
    }
    Ok(())
}

// ---- the conversation view -------------------------------------------------------------------

fn part_text(part: &Value) -> &str {
    part.get("text")
        .or_else(|| part.get("refusal"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts.iter().map(part_text).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

fn item_type(item: &Value) -> &str {
    item.get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
}

fn conversation(body: &Value) -> Conversation<'_> {
    let partial = match body.get("input") {
        Some(Value::Array(items)) => conversation_of(items),
        Some(text @ Value::String(_)) => {
            conversation_of(&[json!({"role": "user", "content": text})])
        }
        _ => conversation_of(&[]),
    };
    partial.into_owned_view(body)
}

/// The view's parts that come from the input items.
struct Partial {
    last_is_plain_user: bool,
    tool_results: Option<Vec<String>>,
    user_text: String,
    images: usize,
}

impl Partial {
    fn into_owned_view(self, body: &Value) -> Conversation<'_> {
        // Function tools, and the function tools inside `namespace` tools (under their
        // namespace).
        let mut tools = Vec::new();
        for tool in body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if tool.get("type").and_then(Value::as_str) == Some("namespace") {
                let namespace = tool.get("name").and_then(Value::as_str);
                let members = tool.get("tools").and_then(Value::as_array);
                tools.extend(
                    members
                        .into_iter()
                        .flatten()
                        .filter_map(|member| function_tool(member, namespace)),
                );
            } else {
                tools.extend(function_tool(tool, None));
            }
        }
        let tool_choice = match body.get("tool_choice") {
            Some(Value::String(choice)) if choice == "none" => ToolChoice::None,
            Some(choice @ Value::Object(_)) => match choice.get("name").and_then(Value::as_str) {
                Some(name) => ToolChoice::Named(name),
                None => ToolChoice::Auto,
            },
            _ => ToolChoice::Auto,
        };
        let directives = match &self.tool_results {
            Some(results) => Directives::parse(&results.join(" ")),
            None => Directives::parse(&self.user_text),
        };
        let json_output = matches!(
            body.pointer("/text/format/type").and_then(Value::as_str),
            Some("json_object" | "json_schema")
        );
        Conversation {
            provider: KIND.name(),
            model: body.get("model").and_then(Value::as_str).unwrap_or(""),
            tools,
            tool_choice,
            last_is_plain_user: self.last_is_plain_user,
            tool_results: self.tool_results,
            user_text: self.user_text,
            images: self.images,
            json_output,
            directives,
        }
    }
}

/// A `function` tool, in `namespace` when it is a member of a namespace tool.
fn function_tool<'a>(tool: &'a Value, namespace: Option<&'a str>) -> Option<ToolSpec<'a>> {
    (tool.get("type").and_then(Value::as_str) == Some("function")).then_some(())?;
    Some(ToolSpec {
        name: tool.get("name")?.as_str()?,
        schema: tool.get("parameters"),
        namespace,
    })
}

fn conversation_of(items: &[Value]) -> Partial {
    let is_user = |item: &Value| {
        item_type(item) == "message" && item.get("role").and_then(Value::as_str) == Some("user")
    };
    // The caller's turn is the last one before any trailing instructions (system or developer
    // messages).
    let trailing_instructions = items
        .iter()
        .rev()
        .take_while(|item| {
            item_type(item) == "message"
                && matches!(
                    item.get("role").and_then(Value::as_str),
                    Some("system" | "developer")
                )
        })
        .count();
    let items = &items[..items.len() - trailing_instructions];
    let last = items.last();
    let trailing_outputs = items
        .iter()
        .rev()
        .take_while(|item| item_type(item) == "function_call_output")
        .count();
    let tool_results = (trailing_outputs > 0).then(|| {
        items[items.len() - trailing_outputs..]
            .iter()
            .map(|item| match item.get("output") {
                Some(Value::String(text)) => text.clone(),
                other => content_text(other),
            })
            .collect::<Vec<_>>()
    });
    let last_user = items.iter().rev().find(|item| is_user(item));
    let images = last_user
        .and_then(|item| item.get("content"))
        .and_then(Value::as_array)
        .map_or(0, |parts| {
            parts
                .iter()
                .filter(|part| part.get("type").and_then(Value::as_str) == Some("input_image"))
                .count()
        });
    Partial {
        last_is_plain_user: last.is_some_and(is_user),
        tool_results,
        user_text: content_text(last_user.and_then(|item| item.get("content"))),
        images,
    }
}

fn input_tokens(body: &Value) -> u64 {
    let mut bytes = body
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, str::len);
    match body.get("input") {
        Some(Value::String(text)) => bytes += text.len(),
        Some(Value::Array(items)) => {
            for item in items {
                match item_type(item) {
                    "message" => bytes += content_text(item.get("content")).len(),
                    "function_call" => {
                        bytes += item
                            .get("arguments")
                            .and_then(Value::as_str)
                            .map_or(0, str::len)
                    }
                    "function_call_output" => {
                        bytes += match item.get("output") {
                            Some(Value::String(text)) => text.len(),
                            other => content_text(other).len(),
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    if let Some(tools) = body.get("tools").filter(|tools| !tools.is_null()) {
        bytes += json_bytes(tools);
    }
    tokens_for_bytes(bytes)
}

// ---- the response and its stream -------------------------------------------------------------

enum OutputItem {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        /// The namespace of a namespaced tool, given in the call as OpenAI gives it.
        namespace: Option<String>,
        arguments: String,
    },
}

impl OutputItem {
    fn to_json(&self, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match self {
            OutputItem::Message { id, text } => {
                let content = if done {
                    json!([{"type": "output_text", "text": text, "annotations": [], "logprobs": []}])
                } else {
                    json!([])
                };
                json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
            }
            OutputItem::Call {
                id,
                call_id,
                name,
                namespace,
                arguments,
            } => {
                let mut call = json!({
                    "id": id,
                    "type": "function_call",
                    "status": status,
                    "arguments": if done { arguments.as_str() } else { "" },
                    "call_id": call_id,
                    "name": name,
                });
                if let Some(namespace) = namespace {
                    call["namespace"] = Value::from(namespace.as_str());
                }
                call
            }
        }
    }
}

struct Rendered {
    id: String,
    created_at: u64,
    model: String,
    body: Value,
    status: &'static str,
    output: Vec<OutputItem>,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
}

impl Rendered {
    fn object(&self, done: bool) -> Value {
        let echo = |key: &str, default: Value| {
            self.body
                .get(key)
                .filter(|value| !value.is_null())
                .cloned()
                .unwrap_or(default)
        };
        let status = if done { self.status } else { "in_progress" };
        let incomplete = if done && self.status == "incomplete" {
            json!({"reason": "max_output_tokens"})
        } else {
            Value::Null
        };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": false,
            "error": null,
            "incomplete_details": incomplete,
            "instructions": echo("instructions", Value::Null),
            "max_output_tokens": echo("max_output_tokens", Value::Null),
            "model": self.model,
            "output": if done {
                self.output.iter().map(|item| item.to_json(true)).collect::<Vec<_>>()
            } else {
                Vec::new()
            },
            "parallel_tool_calls": echo("parallel_tool_calls", Value::Bool(true)),
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null},
            "store": echo("store", Value::Bool(true)),
            "temperature": echo("temperature", json!(1.0)),
            "text": echo("text", json!({"format": {"type": "text"}})),
            "tool_choice": echo("tool_choice", json!("auto")),
            "tools": echo("tools", json!([])),
            "top_p": echo("top_p", json!(1.0)),
            "truncation": "disabled",
            "usage": if done {
                json!({
                    "input_tokens": self.input_tokens,
                    "input_tokens_details": {"cached_tokens": self.cached_tokens},
                    "output_tokens": self.output_tokens,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": self.input_tokens + self.output_tokens,
                })
            } else {
                Value::Null
            },
            "user": echo("user", Value::Null),
            "metadata": echo("metadata", json!({})),
        })
    }

    /// Every event of the stream, in OpenAI's order, numbered from 0.
    fn events(&self) -> Vec<Bytes> {
        let mut events = Vec::new();
        let mut sequence = 0u64;
        let mut push = |name: &str, payload: Value| {
            let mut map = Map::new();
            map.insert("type".into(), Value::from(name));
            map.insert("sequence_number".into(), Value::from(sequence));
            if let Value::Object(fields) = payload {
                map.extend(fields);
            }
            sequence += 1;
            let mut event = format!("event: {name}\ndata: ").into_bytes();
            serde_json::to_writer(&mut event, &Value::Object(map)).expect("JSON serializes");
            event.extend_from_slice(b"\n\n");
            events.push(Bytes::from(event));
        };
        push("response.created", json!({"response": self.object(false)}));
        push(
            "response.in_progress",
            json!({"response": self.object(false)}),
        );
        for (output_index, item) in self.output.iter().enumerate() {
            push(
                "response.output_item.added",
                json!({"output_index": output_index, "item": item.to_json(false)}),
            );
            match item {
                OutputItem::Message { id, text } => {
                    let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                    push(
                        "response.content_part.added",
                        json!({"item_id": id, "output_index": output_index, "content_index": 0, "part": part("")}),
                    );
                    for fragment in word_fragments(text) {
                        push(
                            "response.output_text.delta",
                            json!({"item_id": id, "output_index": output_index, "content_index": 0, "delta": fragment, "logprobs": []}),
                        );
                    }
                    push(
                        "response.output_text.done",
                        json!({"item_id": id, "output_index": output_index, "content_index": 0, "text": text, "logprobs": []}),
                    );
                    push(
                        "response.content_part.done",
                        json!({"item_id": id, "output_index": output_index, "content_index": 0, "part": part(text)}),
                    );
                }
                OutputItem::Call {
                    id,
                    arguments,
                    name,
                    ..
                } => {
                    for fragment in byte_fragments(arguments, 8) {
                        push(
                            "response.function_call_arguments.delta",
                            json!({"item_id": id, "output_index": output_index, "delta": fragment}),
                        );
                    }
                    push(
                        "response.function_call_arguments.done",
                        json!({"item_id": id, "output_index": output_index, "name": name, "arguments": arguments}),
                    );
                }
            }
            push(
                "response.output_item.done",
                json!({"output_index": output_index, "item": item.to_json(true)}),
            );
        }
        let last = if self.status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        push(last, json!({"response": self.object(true)}));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_part(part: Value) -> Value {
        json!({"model": "m", "input": [{"role": "user", "content": [part]}]})
    }

    #[test]
    fn input_files_need_data_a_url_or_an_id() {
        for part in [
            json!({"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}),
            json!({"type": "input_file", "file_url": "https://example.com/a.pdf"}),
            json!({"type": "input_file", "file_id": "file-1"}),
        ] {
            assert_eq!(validate(&with_part(part.clone())), Ok(()), "{part}");
        }
        for (part, param) in [
            (
                json!({"type": "input_file", "file_data": "JVBERi0="}),
                "input[0].content[0].file_data",
            ),
            (
                json!({"type": "input_file", "filename": "a.pdf"}),
                "input[0].content[0].file_id",
            ),
        ] {
            let error = validate(&with_part(part)).expect_err("refused");
            assert_eq!(error.status, 400);
            assert_eq!(error.param.as_deref(), Some(param), "{error:?}");
        }
    }

    #[test]
    fn a_function_call_output_takes_text_image_and_file_parts() {
        let with_output = |output: Value| {
            json!({"model": "m", "input": [
                {"type": "function_call", "call_id": "c1", "name": "read", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": output}
            ]})
        };
        let parts = json!([
            {"type": "input_text", "text": "the file"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBO"},
            {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}
        ]);
        assert_eq!(validate(&with_output(parts)), Ok(()));
        for (output, param) in [
            (
                json!([{"type": "output_text", "text": "x"}]),
                "input[1].output[0].type",
            ),
            (
                json!([{"type": "input_file", "file_data": "JVBERi0="}]),
                "input[1].output[0].file_data",
            ),
            (json!({"text": "x"}), "input[1].output"),
        ] {
            let error = validate(&with_output(output)).expect_err("refused");
            assert_eq!(error.param.as_deref(), Some(param), "{error:?}");
        }
    }

    #[test]
    fn a_namespace_tools_members_are_called_under_their_namespace() {
        let body = json!({"model": "m", "input": "go [mock:tool=crm.lookup]", "tools": [
            {"type": "function", "name": "lookup", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "crm", "description": "CRM", "tools": [
                {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
            ]}
        ]});
        assert_eq!(validate(&body), Ok(()));
        let Answer::ToolCalls(calls) = decide(&conversation(&body)) else {
            panic!("no tool call");
        };
        assert_eq!(calls[0].name, "lookup");
        assert_eq!(calls[0].namespace.as_deref(), Some("crm"));
        // The plain tool of the same name is still called by its own name.
        let plain = json!({"model": "m", "input": "go [mock:tool=lookup]", "tools": body["tools"]});
        let Answer::ToolCalls(calls) = decide(&conversation(&plain)) else {
            panic!("no tool call");
        };
        assert_eq!(calls[0].namespace, None);
        for (tool, param) in [
            (
                json!({"type": "namespace", "name": "crm"}),
                "tools[0].tools",
            ),
            (json!({"type": "namespace", "tools": []}), "tools[0].name"),
            (
                json!({"type": "namespace", "name": "crm", "tools": [{"type": "web_search"}]}),
                "tools[0].tools[0].type",
            ),
        ] {
            let error = validate(&json!({"model": "m", "input": "x", "tools": [tool]}))
                .expect_err("refused");
            assert_eq!(error.param.as_deref(), Some(param), "{error:?}");
        }
    }
}
