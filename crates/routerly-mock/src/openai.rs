//! The OpenAI mock: validation, the conversation view, the completion, the chunk stream, and
//! embeddings.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value, json};

use crate::common::{
    Answer, Conversation, Directives, ToolChoice, ToolSpec, byte_fragments, decide,
    is_valid_tool_name, json_bytes, json_type_phrase, output_tokens, tokens_for_bytes,
    truncate_words, unix_seconds, word_fragments,
};
use crate::{ApiError, MockKind, MockState, event_body, json_response, sse_response};

const KIND: MockKind = MockKind::OpenAi;

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(state: &MockState, body: Option<&Value>) -> Response {
    chat_completions_as(state, body, KIND, None).await
}

/// Azure OpenAI's data plane: `POST /openai/deployments/{deployment}/chat/completions` with
/// an `api-version` query; the deployment must exist (the mock's models) and answers as the
/// model. Anything else on an Azure mock is a 404 in Azure's shape.
pub(crate) async fn azure(
    state: &MockState,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Option<&Value>,
) -> Response {
    const AZURE: MockKind = MockKind::Azure;
    let deployment = path
        .strip_prefix("/openai/deployments/")
        .and_then(|rest| {
            rest.strip_suffix("/chat/completions")
                .map(|deployment| (deployment, false))
                .or_else(|| {
                    rest.strip_suffix("/embeddings")
                        .map(|deployment| (deployment, true))
                })
        })
        .filter(|_| method == Method::POST);
    let Some((deployment, wants_embeddings)) = deployment else {
        return ApiError::new(404, "Resource not found").into_response(AZURE);
    };
    let has_version = query.unwrap_or("").split('&').any(|pair| {
        pair.strip_prefix("api-version=")
            .is_some_and(|v| !v.is_empty())
    });
    if !has_version {
        return ApiError::new(404, "Resource not found").into_response(AZURE);
    }
    // Embedding deployments: any whose name says so (the default deployments are chat ones).
    let known = state.models.iter().any(|model| model == deployment)
        || (wants_embeddings && deployment.contains("embed"));
    if !known {
        return ApiError::new(
            404,
            "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        )
        .with_code("DeploymentNotFound")
        .into_response(AZURE);
    }
    if wants_embeddings {
        if let Some(status) = state.take_failure() {
            return ApiError::for_status(KIND, status).into_response(AZURE);
        }
        // The deployment names the model; a `model` in the body is ignored.
        let mut body = body.cloned();
        if let Some(Value::Object(object)) = body.as_mut() {
            object.insert("model".into(), Value::from(deployment));
        }
        return embeddings(body.as_ref());
    }
    chat_completions_as(state, body, AZURE, Some(deployment)).await
}

/// Chat completions answered as `kind` (OpenAI or Azure); `model` replaces the body's model.
async fn chat_completions_as(
    state: &MockState,
    body: Option<&Value>,
    kind: MockKind,
    model: Option<&str>,
) -> Response {
    if let Some(status) = state.take_failure() {
        return ApiError::for_status(KIND, status).into_response(kind);
    }
    let Some(body) = body.filter(|body| body.is_object()) else {
        return invalid_json().into_response(kind);
    };
    if let Err(error) = validate(body) {
        return error.into_response(kind);
    }
    let conversation = conversation(body, kind, model);
    let directives = &conversation.directives;
    if directives.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(directives.delay_ms)).await;
    }
    if let Some(status) = directives.status {
        return ApiError::for_status(KIND, status).into_response(kind);
    }
    let stream = body.get("stream") == Some(&Value::Bool(true));
    if directives.garbage {
        return garbage(stream);
    }
    let answer = decide(&conversation);
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find_map(|name| body.get(name).and_then(Value::as_u64))
        .unwrap_or(u64::MAX);
    let mut completion = Completion {
        id: format!("chatcmpl-mock{}", state.next_response_number()),
        created: unix_seconds(),
        model: conversation.model,
        prompt_tokens: input_tokens(body),
        completion_tokens: output_tokens(&answer),
        cached_tokens: directives.cached,
        finish_reason: "stop",
        text: None,
        tool_calls: Vec::new(),
    };
    match answer {
        Answer::Text(text) => match truncate_words(&text, max_tokens) {
            Some(truncated) => {
                completion.finish_reason = "length";
                completion.completion_tokens = max_tokens;
                completion.text = Some(truncated);
            }
            None => completion.text = Some(text),
        },
        Answer::ToolCalls(calls) => {
            completion.finish_reason = "tool_calls";
            completion.tool_calls = calls
                .into_iter()
                .map(|call| RenderedCall {
                    id: format!("call_{}", state.next_call_number()),
                    name: call.name,
                    arguments: call.arguments.to_string(),
                })
                .collect();
        }
    }
    if stream {
        let include_usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let events = completion.stream_events(include_usage);
        sse_response(event_body(
            events,
            directives.chunk_delay_ms,
            directives.die_after,
        ))
    } else {
        json_response(StatusCode::OK, &completion.to_json())
    }
}

fn garbage(stream: bool) -> Response {
    if stream {
        let events = vec![
            Bytes::from_static(b"data: {\"id\":\"chatcmpl-garbage\",\"choices\":[{\"delta\n\n"),
            Bytes::from_static(b"data: <<not json>>\n\n"),
            Bytes::from_static(b"data: [DONE]\n\n"),
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

fn invalid_json() -> ApiError {
    ApiError::invalid(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
    )
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid(format!("Missing required parameter: '{param}'."))
        .with_param(param)
        .with_code("missing_required_parameter")
}

fn invalid_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(format!(
        "Invalid type for '{param}': expected {expected}, but got {} instead.",
        json_type_phrase(got)
    ))
    .with_param(param)
    .with_code("invalid_type")
}

fn invalid_value(param: &str, value: &str, supported: &str) -> ApiError {
    ApiError::invalid(format!(
        "Invalid value: '{value}'. Supported values are: {supported}."
    ))
    .with_param(param)
    .with_code("invalid_value")
}

fn is_absent(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

/// Rejects what the real Chat Completions API rejects, with its messages.
fn validate(body: &Value) -> Result<(), ApiError> {
    let Some(object) = body.as_object() else {
        return Err(invalid_json());
    };
    match object.get("model") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("you must provide a model parameter"));
        }
        Some(Value::String(_)) => {}
        Some(other) => return Err(invalid_type("model", "a string", other)),
    }
    let messages = match object.get("messages") {
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(messages)) => messages,
        Some(other) => return Err(invalid_type("messages", "an array", other)),
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        )
        .with_param("messages")
        .with_code("empty_array"));
    }
    validate_messages(messages)?;
    check_range(object, "temperature", 0.0, 2.0)?;
    check_range(object, "top_p", 0.0, 1.0)?;
    check_range(object, "presence_penalty", -2.0, 2.0)?;
    check_range(object, "frequency_penalty", -2.0, 2.0)?;
    if !is_absent(object.get("max_tokens")) && !is_absent(object.get("max_completion_tokens")) {
        return Err(ApiError::invalid(
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
        )
        .with_param("max_tokens")
        .with_code("invalid_parameter_combination"));
    }
    if !is_absent(object.get("stream_options")) && object.get("stream") != Some(&Value::Bool(true))
    {
        return Err(ApiError::invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        )
        .with_param("stream_options"));
    }
    let has_tools = validate_tools(object.get("tools"))?;
    if !has_tools {
        let tool_choice = object.get("tool_choice");
        if !is_absent(tool_choice) && tool_choice != Some(&Value::from("none")) {
            return Err(ApiError::invalid(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            )
            .with_param("tool_choice"));
        }
        if !is_absent(object.get("parallel_tool_calls")) {
            return Err(ApiError::invalid(
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.",
            )
            .with_param("parallel_tool_calls"));
        }
    }
    if let Some(format) = object
        .get("response_format")
        .filter(|format| !format.is_null())
    {
        match format.get("type").and_then(Value::as_str) {
            Some("text") | Some("json_object") => {}
            Some("json_schema") => {
                if is_absent(format.get("json_schema")) {
                    return Err(missing("response_format.json_schema"));
                }
                if is_absent(format.pointer("/json_schema/name")) {
                    return Err(missing("response_format.json_schema.name"));
                }
            }
            Some(other) => {
                return Err(invalid_value(
                    "response_format.type",
                    other,
                    "'json_schema', 'json_object', and 'text'",
                ));
            }
            None => return Err(missing("response_format.type")),
        }
    }
    Ok(())
}

fn check_range(
    object: &Map<String, Value>,
    name: &str,
    min: f64,
    max: f64,
) -> Result<(), ApiError> {
    let Some(value) = object.get(name).filter(|value| !value.is_null()) else {
        return Ok(());
    };
    let Some(number) = value.as_f64() else {
        return Err(invalid_type(name, "a decimal", value));
    };
    if number > max {
        return Err(ApiError::invalid(format!(
            "Invalid '{name}': decimal above maximum value. Expected a value <= {max}, but got {value} instead."
        ))
        .with_param(name)
        .with_code("decimal_above_max_value"));
    }
    if number < min {
        return Err(ApiError::invalid(format!(
            "Invalid '{name}': decimal below minimum value. Expected a value >= {min}, but got {value} instead."
        ))
        .with_param(name)
        .with_code("decimal_below_min_value"));
    }
    Ok(())
}

/// The tool calls of an assistant message that still wait for their `tool` answers.
struct OpenToolCalls<'a> {
    assistant_index: usize,
    ids: Vec<&'a str>,
    unanswered: Vec<&'a str>,
}

fn unanswered_error(open: &OpenToolCalls<'_>) -> ApiError {
    ApiError::invalid(format!(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
        open.unanswered.join(", ")
    ))
    .with_param(format!("messages.[{}].role", open.assistant_index))
}

fn validate_messages(messages: &[Value]) -> Result<(), ApiError> {
    let mut open_calls: Option<OpenToolCalls<'_>> = None;
    for (index, message) in messages.iter().enumerate() {
        let Some(object) = message.as_object() else {
            return Err(invalid_type(
                &format!("messages[{index}]"),
                "an object",
                message,
            ));
        };
        let role = match object.get("role") {
            None | Some(Value::Null) => return Err(missing(&format!("messages[{index}].role"))),
            Some(Value::String(role)) => role.as_str(),
            Some(other) => {
                return Err(invalid_type(
                    &format!("messages[{index}].role"),
                    "a string",
                    other,
                ));
            }
        };
        if !matches!(
            role,
            "system" | "developer" | "user" | "assistant" | "tool" | "function"
        ) {
            return Err(invalid_value(
                &format!("messages[{index}].role"),
                role,
                "'system', 'assistant', 'user', 'function', 'tool', and 'developer'",
            ));
        }
        // A block of tool answers ends at the first message that is not one.
        if role != "tool"
            && let Some(open) = open_calls.take()
            && !open.unanswered.is_empty()
        {
            return Err(unanswered_error(&open));
        }
        let content = object.get("content");
        match role {
            "system" | "developer" | "user" => {
                if is_absent(content) {
                    return Err(missing(&format!("messages[{index}].content")));
                }
                validate_content(index, role, content)?;
            }
            "assistant" => {
                let tool_calls = object.get("tool_calls").filter(|calls| !calls.is_null());
                if is_absent(content)
                    && tool_calls.is_none()
                    && is_absent(object.get("function_call"))
                {
                    return Err(missing(&format!("messages[{index}].content")));
                }
                validate_content(index, role, content)?;
                if let Some(tool_calls) = tool_calls {
                    let ids = validate_tool_calls(index, tool_calls)?;
                    if !ids.is_empty() {
                        open_calls = Some(OpenToolCalls {
                            assistant_index: index,
                            unanswered: ids.clone(),
                            ids,
                        });
                    }
                }
            }
            "tool" => {
                let tool_call_id = match object.get("tool_call_id") {
                    None | Some(Value::Null) => {
                        return Err(ApiError::invalid(
                            "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
                        )
                        .with_param(format!("messages.[{index}].tool_call_id")));
                    }
                    Some(Value::String(id)) => id.as_str(),
                    Some(other) => {
                        return Err(invalid_type(
                            &format!("messages[{index}].tool_call_id"),
                            "a string",
                            other,
                        ));
                    }
                };
                if is_absent(content) {
                    return Err(missing(&format!("messages[{index}].content")));
                }
                validate_content(index, role, content)?;
                let Some(open) = open_calls.as_mut() else {
                    return Err(ApiError::invalid(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                    )
                    .with_param(format!("messages.[{index}].role")));
                };
                if !open.ids.contains(&tool_call_id) {
                    return Err(ApiError::invalid(format!(
                        "Invalid parameter: 'tool_call_id' of '{tool_call_id}' not found in 'tool_calls' of previous message."
                    ))
                    .with_param(format!("messages.[{index}].tool_call_id")));
                }
                open.unanswered.retain(|id| *id != tool_call_id);
            }
            _ => {}
        }
    }
    match open_calls {
        Some(open) if !open.unanswered.is_empty() => Err(unanswered_error(&open)),
        _ => Ok(()),
    }
}

fn validate_content(index: usize, role: &str, content: Option<&Value>) -> Result<(), ApiError> {
    let parts = match content {
        None | Some(Value::Null) | Some(Value::String(_)) => return Ok(()),
        Some(Value::Array(parts)) => parts,
        Some(other) => {
            return Err(invalid_type(
                &format!("messages[{index}].content"),
                "one of a string or array of objects",
                other,
            ));
        }
    };
    let supported: &[&str] = match role {
        "user" => &["text", "image_url", "input_audio", "file"],
        "assistant" => &["text", "refusal"],
        _ => &["text"],
    };
    for (part_index, part) in parts.iter().enumerate() {
        let param = format!("messages[{index}].content[{part_index}]");
        let Some(part_type) = part.get("type").and_then(Value::as_str) else {
            return Err(missing(&format!("{param}.type")));
        };
        if !supported.contains(&part_type) {
            return Err(invalid_value(
                &format!("{param}.type"),
                part_type,
                &supported_list(supported),
            ));
        }
        match part_type {
            "text" => match part.get("text") {
                Some(Value::String(_)) => {}
                None | Some(Value::Null) => return Err(missing(&format!("{param}.text"))),
                Some(other) => {
                    return Err(invalid_type(&format!("{param}.text"), "a string", other));
                }
            },
            "image_url" if !part.pointer("/image_url/url").is_some_and(Value::is_string) => {
                return Err(missing(&format!("{param}.image_url.url")));
            }
            "file" => validate_file_part(part, &param)?,
            _ => {}
        }
    }
    Ok(())
}

/// A `file` part: a Files API `file_id`, or `file_data` holding a base64 PDF as a `data:`
/// URL (what Chat Completions reads inline).
fn validate_file_part(part: &Value, param: &str) -> Result<(), ApiError> {
    let file_param = format!("{param}.file");
    let Some(file) = part.get("file").filter(|file| !file.is_null()) else {
        return Err(missing(&file_param));
    };
    if !file.is_object() {
        return Err(invalid_type(&file_param, "an object", file));
    }
    match (file.get("file_data"), file.get("file_id")) {
        (Some(Value::String(data)), _) => {
            let is_pdf = data
                .strip_prefix("data:application/pdf;base64,")
                .is_some_and(|payload| !payload.is_empty());
            if !is_pdf {
                let data_param = format!("{file_param}.file_data");
                return Err(ApiError::invalid(format!(
                    "Invalid file data: '{data_param}'. Expected a base64-encoded data URL with an application/pdf MIME type (e.g. 'data:application/pdf;base64,SGVsbG8sIFdvcmxkIQ==')."
                ))
                .with_param(&data_param)
                .with_code("invalid_value"));
            }
            Ok(())
        }
        (_, Some(Value::String(_))) => Ok(()),
        _ => Err(missing(&format!("{file_param}.file_data"))),
    }
}

/// `'a', 'b', and 'c'`, as OpenAI lists supported values.
fn supported_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|value| format!("'{value}'")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        2 => format!("{} and {}", quoted[0], quoted[1]),
        n => format!("{}, and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

fn validate_tool_calls(index: usize, tool_calls: &Value) -> Result<Vec<&str>, ApiError> {
    let Some(calls) = tool_calls.as_array() else {
        return Err(invalid_type(
            &format!("messages[{index}].tool_calls"),
            "an array",
            tool_calls,
        ));
    };
    let mut ids = Vec::with_capacity(calls.len());
    for (call_index, call) in calls.iter().enumerate() {
        let param = format!("messages[{index}].tool_calls[{call_index}]");
        let id = match call.get("id") {
            None | Some(Value::Null) => return Err(missing(&format!("{param}.id"))),
            Some(Value::String(id)) => id.as_str(),
            Some(other) => return Err(invalid_type(&format!("{param}.id"), "a string", other)),
        };
        match call.get("type").and_then(Value::as_str) {
            None => return Err(missing(&format!("{param}.type"))),
            Some("function") | Some("custom") => {}
            Some(other) => {
                return Err(invalid_value(
                    &format!("{param}.type"),
                    other,
                    "'function' and 'custom'",
                ));
            }
        }
        if call.get("type").and_then(Value::as_str) == Some("function") {
            let Some(function) = call.get("function").filter(|function| !function.is_null()) else {
                return Err(missing(&format!("{param}.function")));
            };
            match function.get("name") {
                None | Some(Value::Null) => return Err(missing(&format!("{param}.function.name"))),
                Some(Value::String(_)) => {}
                Some(other) => {
                    return Err(invalid_type(
                        &format!("{param}.function.name"),
                        "a string",
                        other,
                    ));
                }
            }
            match function.get("arguments") {
                None | Some(Value::Null) => {
                    return Err(missing(&format!("{param}.function.arguments")));
                }
                Some(Value::String(_)) => {}
                Some(other) => {
                    return Err(invalid_type(
                        &format!("{param}.function.arguments"),
                        "a string",
                        other,
                    ));
                }
            }
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Validates `tools`; answers whether any tool is offered.
fn validate_tools(tools: Option<&Value>) -> Result<bool, ApiError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::Array(tools)) => tools,
        Some(other) => return Err(invalid_type("tools", "an array", other)),
    };
    for (index, tool) in tools.iter().enumerate() {
        let param = format!("tools[{index}]");
        if !tool.is_object() {
            return Err(invalid_type(&param, "an object", tool));
        }
        match tool.get("type").and_then(Value::as_str) {
            None => return Err(missing(&format!("{param}.type"))),
            Some("function") => {}
            Some("custom") => continue,
            Some(other) => {
                return Err(invalid_value(
                    &format!("{param}.type"),
                    other,
                    "'function' and 'custom'",
                ));
            }
        }
        let Some(function) = tool.get("function").filter(|function| !function.is_null()) else {
            return Err(missing(&format!("{param}.function")));
        };
        let name_param = format!("{param}.function.name");
        let name = match function.get("name") {
            None | Some(Value::Null) => return Err(missing(&name_param)),
            Some(Value::String(name)) => name,
            Some(other) => return Err(invalid_type(&name_param, "a string", other)),
        };
        if name.len() > 64 {
            return Err(ApiError::invalid(format!(
                "Invalid '{name_param}': string too long. Expected a string with maximum length 64, but got a string with length {} instead.",
                name.len()
            ))
            .with_param(name_param)
            .with_code("string_above_max_length"));
        }
        if !is_valid_tool_name(name, 64) {
            return Err(ApiError::invalid(format!(
                "Invalid '{name_param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
            ))
            .with_param(name_param)
            .with_code("invalid_value"));
        }
        if let Some(parameters) = function
            .get("parameters")
            .filter(|parameters| !parameters.is_null())
            && !parameters.is_object()
        {
            return Err(invalid_type(
                &format!("{param}.function.parameters"),
                "an object",
                parameters,
            ));
        }
    }
    Ok(!tools.is_empty())
}

// ---- the conversation view and the token rule ----------------------------------------------

/// The text of a message's `content`: the string, or its text parts joined by a space.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn content_bytes(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(text)) => text.len(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(str::len)
            .sum(),
        _ => 0,
    }
}

/// Prompt tokens by the crate's token rule.
fn input_tokens(body: &Value) -> u64 {
    let mut bytes = 0;
    for message in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        bytes += content_bytes(message.get("content"));
        for call in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            bytes += call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .map_or(0, str::len);
        }
    }
    if let Some(tools) = body.get("tools").filter(|tools| !tools.is_null()) {
        bytes += json_bytes(tools);
    }
    tokens_for_bytes(bytes)
}

pub(crate) fn role_of(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// The messages up to the caller's turn: trailing `system`/`developer` messages are
/// instructions, not the caller's turn.
pub(crate) fn without_trailing_instructions(messages: &[Value]) -> &[Value] {
    let trailing = messages
        .iter()
        .rev()
        .take_while(|message| matches!(role_of(message), "system" | "developer"))
        .count();
    &messages[..messages.len() - trailing]
}

/// The conversation view of an OpenAI-shaped chat body (also Mistral's and Azure's).
pub(crate) fn conversation<'a>(
    body: &'a Value,
    kind: MockKind,
    model: Option<&'a str>,
) -> Conversation<'a> {
    let messages: &[Value] = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            let function = tool.get("function")?;
            Some(ToolSpec {
                name: function.get("name")?.as_str()?,
                schema: function.get("parameters"),
                namespace: None,
            })
        })
        .collect();
    let tool_choice = match body.get("tool_choice") {
        Some(Value::String(choice)) if choice == "none" => ToolChoice::None,
        Some(choice @ Value::Object(_)) => {
            match choice.pointer("/function/name").and_then(Value::as_str) {
                Some(name) => ToolChoice::Named(name),
                None => ToolChoice::Auto,
            }
        }
        _ => ToolChoice::Auto,
    };
    // The caller's turn is the last one before any trailing instructions (clients such as
    // Claude Code end the conversation with a system message).
    let messages = without_trailing_instructions(messages);
    let last_role = messages.last().map_or("", role_of);
    let tool_results = (last_role == "tool").then(|| {
        let trailing = messages
            .iter()
            .rev()
            .take_while(|message| role_of(message) == "tool")
            .count();
        messages[messages.len() - trailing..]
            .iter()
            .map(|message| content_text(message.get("content")))
            .collect::<Vec<_>>()
    });
    let last_user = messages
        .iter()
        .rev()
        .find(|message| role_of(message) == "user");
    let user_text = content_text(last_user.and_then(|message| message.get("content")));
    let images = last_user
        .and_then(|message| message.get("content"))
        .and_then(Value::as_array)
        .map_or(0, |parts| {
            parts
                .iter()
                .filter(|part| part.get("type").and_then(Value::as_str) == Some("image_url"))
                .count()
        });
    let directives = match &tool_results {
        Some(results) => Directives::parse(&results.join(" ")),
        None => Directives::parse(&user_text),
    };
    let json_output = matches!(
        body.pointer("/response_format/type")
            .and_then(Value::as_str),
        Some("json_object") | Some("json_schema")
    );
    Conversation {
        provider: kind.name(),
        model: model.unwrap_or_else(|| body.get("model").and_then(Value::as_str).unwrap_or("")),
        tools,
        tool_choice,
        last_is_plain_user: last_role == "user",
        tool_results,
        user_text,
        images,
        json_output,
        directives,
    }
}

// ---- the completion and its stream ---------------------------------------------------------

struct RenderedCall {
    id: String,
    name: String,
    arguments: String,
}

struct Completion<'a> {
    id: String,
    created: u64,
    model: &'a str,
    prompt_tokens: u64,
    completion_tokens: u64,
    cached_tokens: u64,
    finish_reason: &'static str,
    text: Option<String>,
    tool_calls: Vec<RenderedCall>,
}

impl Completion<'_> {
    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        })
    }

    fn to_json(&self) -> Value {
        let mut message = json!({
            "role": "assistant",
            "content": self.text,
            "refusal": null,
            "annotations": [],
        });
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = self
                .tool_calls
                .iter()
                .map(|call| {
                    json!({
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    })
                })
                .collect();
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
        })
    }

    fn chunk(&self, choices: Value, include_usage: bool, usage: Option<Value>) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": choices,
        });
        if include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        sse_data(&chunk)
    }

    fn delta_chunk(&self, delta: Value, finish_reason: Option<&str>, include_usage: bool) -> Bytes {
        let choices =
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]);
        self.chunk(choices, include_usage, None)
    }

    /// Every event of the stream, `data: [DONE]` last.
    fn stream_events(&self, include_usage: bool) -> Vec<Bytes> {
        let mut events = Vec::new();
        if let Some(text) = &self.text {
            events.push(self.delta_chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
                include_usage,
            ));
            for fragment in word_fragments(text) {
                events.push(self.delta_chunk(json!({"content": fragment}), None, include_usage));
            }
        }
        for (index, call) in self.tool_calls.iter().enumerate() {
            let mut delta = json!({"tool_calls": [{
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }]});
            if index == 0 && self.text.is_none() {
                delta["role"] = Value::from("assistant");
                delta["content"] = Value::Null;
                delta["refusal"] = Value::Null;
            }
            events.push(self.delta_chunk(delta, None, include_usage));
            for fragment in byte_fragments(&call.arguments, 8) {
                let delta =
                    json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]});
                events.push(self.delta_chunk(delta, None, include_usage));
            }
        }
        events.push(self.delta_chunk(json!({}), Some(self.finish_reason), include_usage));
        if include_usage {
            events.push(self.chunk(json!([]), true, Some(self.usage())));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }
}

fn sse_data(value: &Value) -> Bytes {
    let mut event = Vec::with_capacity(256);
    event.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut event, value).expect("a JSON value always serializes");
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

// ---- embeddings ----------------------------------------------------------------------------

/// `POST /v1/embeddings`: bag-of-words hashing vectors, so texts sharing words are similar.
pub(crate) fn embeddings(body: Option<&Value>) -> Response {
    let Some(body) = body.filter(|body| body.is_object()) else {
        return invalid_json().into_response(KIND);
    };
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return ApiError::invalid("you must provide a model parameter").into_response(KIND);
    };
    let inputs: Vec<String> = match body.get("input") {
        None | Some(Value::Null) => return missing("input").into_response(KIND),
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_string) {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            } else if items.iter().all(Value::is_number) {
                vec![
                    items
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            } else {
                items
                    .iter()
                    .map(|item| match item {
                        Value::Array(tokens) => tokens
                            .iter()
                            .map(Value::to_string)
                            .collect::<Vec<_>>()
                            .join(" "),
                        other => other.to_string(),
                    })
                    .collect()
            }
        }
        Some(_) => return invalid_embedding_input().into_response(KIND),
    };
    if inputs.iter().any(String::is_empty) {
        return invalid_embedding_input().into_response(KIND);
    }
    let dimensions = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .filter(|dimensions| (1..=4096).contains(dimensions))
        .unwrap_or(64) as usize;
    let base64_format = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let vector = embed(text, dimensions);
            let embedding = if base64_format {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|value| value.to_le_bytes())
                    .collect();
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::from(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let prompt_tokens = tokens_for_bytes(inputs.iter().map(String::len).sum());
    json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }),
    )
}

fn invalid_embedding_input() -> ApiError {
    ApiError::invalid(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
    )
}

/// Each lowercase word adds 1 to a dimension chosen by its FNV-1a hash; the vector is unit length.
pub(crate) fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0f32; dimensions];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in word.to_lowercase().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        vector[(hash % dimensions as u64) as usize] += 1.0;
    }
    let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|value| *value /= norm);
    } else {
        vector[0] = 1.0;
    }
    vector
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_rejects(body: Value, param: Option<&str>, message_part: &str) {
        let error = validate(&body).expect_err("the request should be rejected");
        assert_eq!(error.status, 400, "{error:?}");
        assert_eq!(error.param.as_deref(), param, "{error:?}");
        assert!(
            error.message.contains(message_part),
            "{:?} should contain {message_part:?}",
            error.message
        );
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    fn assistant_calling(ids: &[&str]) -> Value {
        let calls: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}}))
            .collect();
        json!({"role": "assistant", "content": null, "tool_calls": calls})
    }

    #[test]
    fn file_parts_need_a_pdf_data_url_or_an_id() {
        let with = |file: Value| json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": file}]}]});
        for file in [
            json!({"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}),
            json!({"file_id": "file-1"}),
        ] {
            assert_eq!(validate(&with(file.clone())), Ok(()), "{file}");
        }
        check_rejects(
            with(json!({"file_data": "JVBERi0="})),
            Some("messages[0].content[0].file.file_data"),
            "Expected a base64-encoded data URL with an application/pdf MIME type",
        );
        check_rejects(
            with(json!({"file_data": "data:text/csv;base64,YQ=="})),
            Some("messages[0].content[0].file.file_data"),
            "application/pdf",
        );
        check_rejects(
            with(json!({"filename": "a.pdf"})),
            Some("messages[0].content[0].file.file_data"),
            "Missing required parameter",
        );
        check_rejects(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "file"}]}]}),
            Some("messages[0].content[0].file"),
            "Missing required parameter",
        );
    }

    #[test]
    fn validation_rejects_what_openai_rejects() {
        check_rejects(
            json!({"messages": [user("hi")]}),
            None,
            "you must provide a model",
        );
        check_rejects(
            json!({"model": "m"}),
            Some("messages"),
            "Missing required parameter: 'messages'",
        );
        check_rejects(
            json!({"model": "m", "messages": []}),
            Some("messages"),
            "empty array",
        );
        check_rejects(
            json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
            Some("messages[0].role"),
            "Invalid value: 'robot'",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi"), assistant_calling(&["a"]), {"role": "tool", "content": "r"}]}),
            Some("messages.[2].tool_call_id"),
            "must have a 'tool_call_id'",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi"), {"role": "tool", "tool_call_id": "a", "content": "r"}]}),
            Some("messages.[1].role"),
            "must be a response to a preceeding message with 'tool_calls'",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi"), assistant_calling(&["a"]), {"role": "tool", "tool_call_id": "b", "content": "r"}]}),
            Some("messages.[2].tool_call_id"),
            "'tool_call_id' of 'b' not found",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi"), assistant_calling(&["a", "b"]), {"role": "tool", "tool_call_id": "a", "content": "r"}, user("next")]}),
            Some("messages.[1].role"),
            "did not have response messages: b",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi"), assistant_calling(&["a"])]}),
            Some("messages.[1].role"),
            "did not have response messages: a",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi"), {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}, {"role": "tool", "tool_call_id": "a", "content": "r"}]}),
            Some("messages[1].tool_calls[0].function.arguments"),
            "expected a string, but got an object",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi")], "stream_options": {"include_usage": true}}),
            Some("stream_options"),
            "only allowed when 'stream' is enabled",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi")], "max_tokens": 5, "max_completion_tokens": 5}),
            Some("max_tokens"),
            "at the same time",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi")], "temperature": 2.5}),
            Some("temperature"),
            "Expected a value <= 2, but got 2.5",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi")], "temperature": -1}),
            Some("temperature"),
            "decimal below minimum value",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi")], "tools": [{"type": "function", "function": {"name": 7}}]}),
            Some("tools[0].function.name"),
            "expected a string, but got an integer",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi")], "tools": [{"type": "function", "function": {"name": "get weather"}}]}),
            Some("tools[0].function.name"),
            "does not match pattern",
        );
        check_rejects(
            json!({"model": "m", "messages": [user("hi")], "tool_choice": "auto"}),
            Some("tool_choice"),
            "only allowed when 'tools' are specified",
        );
        check_rejects(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}),
            Some("messages[0].content[0].type"),
            "Invalid value: 'image'",
        );
    }

    #[test]
    fn validation_accepts_a_full_tool_round_trip() {
        let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
            "temperature": 2, "max_tokens": 10,
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "messages": [{"role": "system", "content": "s"}, user("hi"), assistant_calling(&["a", "b"]),
                {"role": "tool", "tool_call_id": "b", "content": "rb"}, {"role": "tool", "tool_call_id": "a", "content": "ra"}]});
        assert_eq!(validate(&body), Ok(()));
    }

    #[test]
    fn token_rule_counts_text_arguments_and_tools() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let body = json!({"model": "m", "tools": tools, "messages": [
            {"role": "system", "content": "abcd"},
            {"role": "user", "content": [{"type": "text", "text": "efgh"}, {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "a", "content": "ok"}]});
        let expected_bytes = 4 + 4 + 2 + 2 + json_bytes(&tools);
        assert_eq!(input_tokens(&body), tokens_for_bytes(expected_bytes));
    }

    #[test]
    fn embeddings_of_shared_words_are_similar() {
        let a = embed("book a flight to Paris", 64);
        let b = embed("Book a FLIGHT to paris please", 64);
        let c = embed("write some rust code", 64);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!(dot(&a, &b) > 0.8, "similar texts should be close");
        assert!(
            dot(&a, &c) < dot(&a, &b),
            "different texts should be further apart"
        );
    }
}
