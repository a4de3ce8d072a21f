//! Requests: a Responses API body to [`ChatRequest`] and back.

use crate::wire::json::nonzero_limit;
use serde_json::{Map, Value, json};

use super::flat_name;
use super::json::{
    as_array, as_object, as_str, field_path, get, index_path, missing, optional_bool, optional_f64,
    optional_str, optional_u32, required_str, wrong_type,
};
use crate::canonical::{
    ChatRequest, ContentPart, DecodeError, DocumentSource, HostedTool, ImageSource, Message,
    Reasoning, ResponseFormat, Role, Tool, ToolChoice, WebSearch,
};
use crate::wire::openai::{
    document_filename, document_from_data_url, image_from_url, user_location,
};

/// Decodes a client's `POST /v1/responses` body.
///
/// `input` may be a string (one user message) or a list of items: messages (roles `user`,
/// `assistant`, `system`, `developer`), `function_call` and `function_call_output` items;
/// `reasoning` items are dropped (only OpenAI can read them back). `instructions`, and
/// `system`/`developer` messages, become the system prompt. `input_file` parts are
/// documents; a `namespace` tool's members become function tools named
/// [`flat_name`]`(namespace, name)`; built-in tools are carried by type and place
/// (`ChatRequest::hosted_tools`), web search with its domains and location.
pub fn decode_request(body: &Value) -> Result<ChatRequest, DecodeError> {
    let body_map = as_object(body, "")
        .map_err(|_| DecodeError::new("The request body must be a JSON object."))?;
    let model = required_str(body_map, "model", "")?.to_owned();
    let mut request = ChatRequest {
        model,
        ..ChatRequest::default()
    };
    if let Some(instructions) = optional_str(body_map, "instructions", "")?
        && !instructions.is_empty()
    {
        request.system.push(ContentPart::text(instructions));
    }
    match get(body_map, "input") {
        None => {}
        Some(Value::String(text)) => request.messages.push(Message {
            role: Role::User,
            content: vec![ContentPart::text(text.as_str())],
        }),
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                decode_item(item, &index_path("input", index), &mut request)?;
            }
        }
        Some(other) => {
            return Err(wrong_type(
                "input",
                "a string or an array of input items",
                other,
            ));
        }
    }
    request.max_tokens = nonzero_limit(
        optional_u32(body_map, "max_output_tokens", "")?,
        "max_output_tokens",
        "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 0 instead.",
    )?;
    request.temperature = optional_f64(body_map, "temperature", "")?;
    request.top_p = optional_f64(body_map, "top_p", "")?;
    request.stream = optional_bool(body_map, "stream", "")?.unwrap_or(false);
    // Responses streams always end with usage in `response.completed`.
    request.stream_include_usage = request.stream;
    request.parallel_tool_calls = optional_bool(body_map, "parallel_tool_calls", "")?;
    request.user = optional_str(body_map, "user", "")?
        .or(optional_str(body_map, "safety_identifier", "")
            .ok()
            .flatten())
        .map(str::to_owned);
    let (tools, hosted_tools) = decode_tools(body_map)?;
    request.tools = tools;
    // The hosted tools offered, then the past calls of them the input holds.
    request.hosted_tools.splice(0..0, hosted_tools);
    request.tool_choice = decode_tool_choice(body_map)?;
    request.response_format = decode_text_format(body_map)?;
    if let Some(reasoning_value) = get(body_map, "reasoning") {
        let reasoning_map = as_object(reasoning_value, "reasoning")?;
        if let Some(effort) = optional_str(reasoning_map, "effort", "reasoning")? {
            request.reasoning = Some(Reasoning {
                budget_tokens: None,
                effort: Some(effort.to_owned()),
            });
        }
    }
    // `instructions` is one string, and the encoder joins a system prompt of several parts
    // into it; so the decoder reads the system prompt (instructions and the system or
    // developer messages before the conversation) as one part joined the same way, and a
    // second trip through this format gives the same request.
    if request.system.len() > 1 {
        let joined = crate::canonical::joined_text(&request.system);
        request.system = vec![ContentPart::text(joined)];
    }
    Ok(request)
}

/// Appends `part` to the last message if it has `role`, else starts a message.
fn push_part(request: &mut ChatRequest, role: Role, part: ContentPart) {
    match request.messages.last_mut() {
        Some(last) if last.role == role => last.content.push(part),
        _ => request.messages.push(Message {
            role,
            content: vec![part],
        }),
    }
}

fn decode_item(item: &Value, path: &str, request: &mut ChatRequest) -> Result<(), DecodeError> {
    let item_map = as_object(item, path)?;
    let item_type = optional_str(item_map, "type", path)?.unwrap_or("message");
    match item_type {
        "message" => decode_message(item_map, path, request),
        "function_call" => {
            let call_id = required_str(item_map, "call_id", path)?;
            let name = required_str(item_map, "name", path)?;
            let arguments = required_str(item_map, "arguments", path)?;
            // A call of a namespaced tool, by the flat name the tool was sent under.
            let name = match optional_str(item_map, "namespace", path)? {
                Some(namespace) => flat_name(namespace, name),
                None => name.to_owned(),
            };
            push_part(
                request,
                Role::Assistant,
                ContentPart::ToolCall {
                    id: call_id.to_owned(),
                    name,
                    arguments: arguments.to_owned(),
                },
            );
            Ok(())
        }
        "function_call_output" => {
            let call_id = required_str(item_map, "call_id", path)?;
            let output_path = field_path(path, "output");
            let content = match get(item_map, "output") {
                None => return Err(missing(&output_path)),
                Some(Value::String(text)) => vec![ContentPart::text(text.as_str())],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .enumerate()
                    .map(|(index, part)| decode_input_part(part, &index_path(&output_path, index)))
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(wrong_type(&output_path, "a string or an array", other));
                }
            };
            push_part(
                request,
                Role::User,
                ContentPart::ToolResult {
                    tool_call_id: call_id.to_owned(),
                    content,
                    is_error: false,
                },
            );
            Ok(())
        }
        // Reasoning items carry OpenAI's encrypted state; other providers cannot use them.
        "reasoning" => Ok(()),
        // A web search run earlier in the conversation (by OpenAI, or by another provider
        // through Routerly): what it found is in the answer that followed, and no other
        // provider can replay it, so it is carried by name only, as a hosted tool (left
        // out of a translation and named in `x-routerly-dropped`).
        "web_search_call" => {
            request
                .hosted_tools
                .push(HostedTool::named("web_search_call", path));
            Ok(())
        }
        // `item_reference`, custom tool calls, hosted tools' calls (web search, file search,
        // computer, MCP…) and any newer item: carried as they are (see
        // `ContentPart::Opaque`); an `item_reference` Routerly can resolve is replaced
        // before this decoding (see `resolve_item_references`).
        other => {
            let role = if other.ends_with("_output") {
                Role::User
            } else {
                Role::Assistant
            };
            push_part(request, role, ContentPart::opaque(other, path, item));
            Ok(())
        }
    }
}

fn decode_message(
    item_map: &Map<String, Value>,
    path: &str,
    request: &mut ChatRequest,
) -> Result<(), DecodeError> {
    let role = required_str(item_map, "role", path)?;
    let content_path = field_path(path, "content");
    let content_value = get(item_map, "content").ok_or_else(|| missing(&content_path))?;
    let parts: Vec<ContentPart> = match content_value {
        Value::String(text) => vec![ContentPart::text(text.as_str())],
        Value::Array(part_values) => part_values
            .iter()
            .enumerate()
            .map(|(index, part)| decode_input_part(part, &index_path(&content_path, index)))
            .collect::<Result<_, _>>()?,
        other => {
            return Err(wrong_type(
                &content_path,
                "a string or an array of content parts",
                other,
            ));
        }
    };
    match role {
        "user" => parts
            .into_iter()
            .for_each(|part| push_part(request, Role::User, part)),
        "assistant" => {
            for part in parts {
                if matches!(part, ContentPart::Image { .. }) {
                    return Err(DecodeError::at(
                        content_path,
                        "Assistant messages cannot contain images.",
                    ));
                }
                push_part(request, Role::Assistant, part);
            }
        }
        "system" | "developer" => {
            if parts
                .iter()
                .any(|part| !matches!(part, ContentPart::Text { .. }))
            {
                return Err(DecodeError::at(
                    content_path,
                    "System and developer messages may only contain text.",
                ));
            }
            // Before the conversation, the system prompt; inside it, an instruction in its
            // place.
            if request.messages.is_empty() {
                request.system.extend(parts);
            } else {
                request.messages.push(Message {
                    role: Role::System,
                    content: parts,
                });
            }
        }
        other => {
            return Err(DecodeError::at(
                field_path(path, "role"),
                format!(
                    "Invalid value: '{other}'. Supported values are: 'user', 'assistant', 'system', and 'developer'."
                ),
            ));
        }
    }
    Ok(())
}

fn decode_input_part(part: &Value, path: &str) -> Result<ContentPart, DecodeError> {
    let part_map = as_object(part, path)?;
    let part_type = required_str(part_map, "type", path)?;
    match part_type {
        "input_text" | "output_text" | "text" => {
            Ok(ContentPart::text(required_str(part_map, "text", path)?))
        }
        "refusal" => Ok(ContentPart::text(required_str(part_map, "refusal", path)?)),
        "input_image" => {
            let detail = optional_str(part_map, "detail", path)?
                .filter(|detail| *detail != "auto")
                .map(str::to_owned);
            let Some(url) = optional_str(part_map, "image_url", path)? else {
                if get(part_map, "file_id").is_some() {
                    // An image from OpenAI's Files API: only OpenAI can read it.
                    return Ok(ContentPart::opaque(part_type, path, part));
                }
                return Err(missing(&field_path(path, "image_url")));
            };
            let source = image_from_url(url)
                .map_err(|message| DecodeError::at(field_path(path, "image_url"), message))?;
            Ok(ContentPart::Image { source, detail })
        }
        "input_file" => decode_input_file(part_map, path, part),
        // Files by id, audio and any newer part type: carried as they are.
        other => Ok(ContentPart::opaque(other, path, part)),
    }
}

/// An `input_file` part: inline `file_data` (a `data:` URL) or a `file_url`; a `file_id`
/// of OpenAI's Files API is carried as it is (only OpenAI can read it).
fn decode_input_file(
    part_map: &Map<String, Value>,
    path: &str,
    part: &Value,
) -> Result<ContentPart, DecodeError> {
    let name = optional_str(part_map, "filename", path)?.map(str::to_owned);
    let source = if let Some(file_data) = optional_str(part_map, "file_data", path)? {
        let (media_type, data) = document_from_data_url(file_data)
            .map_err(|message| DecodeError::at(field_path(path, "file_data"), message))?;
        DocumentSource::Base64 { media_type, data }
    } else if let Some(url) = optional_str(part_map, "file_url", path)? {
        DocumentSource::Url {
            url: url.to_owned(),
        }
    } else if get(part_map, "file_id").is_some() {
        return Ok(ContentPart::opaque("input_file", path, part));
    } else {
        return Err(missing(&field_path(path, "file_data")));
    };
    Ok(ContentPart::Document {
        source,
        name,
        context: None,
        citations: false,
        path: path.to_owned(),
    })
}

/// Function tools, and the others (hosted, custom, newer kinds) by type and place.
fn decode_tools(
    body_map: &Map<String, Value>,
) -> Result<(Vec<Tool>, Vec<HostedTool>), DecodeError> {
    let Some(tools_value) = get(body_map, "tools") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut tools = Vec::new();
    let mut hosted_tools = Vec::new();
    for (index, tool_value) in as_array(tools_value, "tools")?.iter().enumerate() {
        let path = index_path("tools", index);
        let tool_map = as_object(tool_value, &path)?;
        match required_str(tool_map, "type", &path)? {
            "function" => tools.push(decode_function_tool(tool_map, &path, None)?),
            // A group of function tools (Codex): each member flattened under its namespace.
            "namespace" => {
                let namespace = required_str(tool_map, "name", &path)?;
                let members_path = field_path(&path, "tools");
                let members = get(tool_map, "tools").ok_or_else(|| missing(&members_path))?;
                for (member_index, member) in as_array(members, &members_path)?.iter().enumerate() {
                    let member_path = index_path(&members_path, member_index);
                    let member_map = as_object(member, &member_path)?;
                    match required_str(member_map, "type", &member_path)? {
                        "function" => tools.push(decode_function_tool(
                            member_map,
                            &member_path,
                            Some(namespace),
                        )?),
                        other => hosted_tools.push(HostedTool::named(other, member_path)),
                    }
                }
            }
            // OpenAI's hosted web search, under each of its names.
            kind @ ("web_search" | "web_search_preview" | "web_search_2025_08_26") => {
                let domains_path = field_path(&path, "filters.allowed_domains");
                let allowed_domains = match tool_map
                    .get("filters")
                    .and_then(|filters| filters.get("allowed_domains"))
                {
                    None | Some(Value::Null) => Vec::new(),
                    Some(domains) => as_array(domains, &domains_path)?
                        .iter()
                        .enumerate()
                        .map(|(index, domain)| {
                            as_str(domain, &index_path(&domains_path, index)).map(str::to_owned)
                        })
                        .collect::<Result<_, _>>()?,
                };
                hosted_tools.push(HostedTool {
                    kind: kind.to_owned(),
                    path,
                    web_search: Some(WebSearch {
                        allowed_domains,
                        user_location: get(tool_map, "user_location").map(user_location),
                    }),
                });
            }
            other => hosted_tools.push(HostedTool::named(other, path)),
        }
    }
    Ok((tools, hosted_tools))
}

/// A `function` tool, named [`flat_name`] when it stands in `namespace`.
fn decode_function_tool(
    tool_map: &Map<String, Value>,
    path: &str,
    namespace: Option<&str>,
) -> Result<Tool, DecodeError> {
    let name = required_str(tool_map, "name", path)?;
    let parameters = get(tool_map, "parameters")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    Ok(Tool {
        name: namespace.map_or_else(|| name.to_owned(), |namespace| flat_name(namespace, name)),
        description: optional_str(tool_map, "description", path)?.map(str::to_owned),
        parameters,
        strict: optional_bool(tool_map, "strict", path)?,
    })
}

fn decode_tool_choice(body_map: &Map<String, Value>) -> Result<Option<ToolChoice>, DecodeError> {
    let Some(choice_value) = get(body_map, "tool_choice") else {
        return Ok(None);
    };
    match choice_value {
        Value::String(choice) => match choice.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => Err(DecodeError::at(
                "tool_choice",
                format!(
                    "Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."
                ),
            )),
        },
        Value::Object(choice_map) => {
            let choice_type = required_str(choice_map, "type", "tool_choice")?;
            if choice_type == "function" {
                let name = required_str(choice_map, "name", "tool_choice")?;
                Ok(Some(ToolChoice::Tool {
                    name: name.to_owned(),
                }))
            } else {
                // A hosted tool: the model may use tools.
                Ok(Some(ToolChoice::Auto))
            }
        }
        other => Err(wrong_type("tool_choice", "a string or an object", other)),
    }
}

fn decode_text_format(
    body_map: &Map<String, Value>,
) -> Result<Option<ResponseFormat>, DecodeError> {
    let Some(text_value) = get(body_map, "text") else {
        return Ok(None);
    };
    let text_map = as_object(text_value, "text")?;
    let Some(format_value) = get(text_map, "format") else {
        return Ok(None);
    };
    let format_map = as_object(format_value, "text.format")?;
    match required_str(format_map, "type", "text.format")? {
        "text" => Ok(Some(ResponseFormat::Text)),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            let name = required_str(format_map, "name", "text.format")?;
            let schema_value =
                get(format_map, "schema").ok_or_else(|| missing("text.format.schema"))?;
            as_object(schema_value, "text.format.schema")?;
            Ok(Some(ResponseFormat::JsonSchema {
                name: name.to_owned(),
                schema: schema_value.clone(),
                strict: optional_bool(format_map, "strict", "text.format")?,
            }))
        }
        other => Err(DecodeError::at(
            "text.format.type",
            format!(
                "Invalid value: '{other}'. Supported values are: 'text', 'json_object', and 'json_schema'."
            ),
        )),
    }
}

/// What in a Responses body only OpenAI itself can serve (a built-in tool, a stored
/// prompt, a conversation object), in words for a 400; `None` when any provider can.
pub fn openai_only_feature(body: &Value) -> Option<String> {
    for key in ["prompt", "conversation", "background"] {
        match body.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(_) => return Some(format!("the '{key}' parameter")),
        }
    }
    None
}

/// Encodes a canonical request as a Responses body for OpenAI.
pub fn encode_request(request: &ChatRequest, upstream_model: &str) -> Result<Value, DecodeError> {
    let mut body = Map::new();
    body.insert("model".into(), Value::from(upstream_model));
    let instructions = crate::canonical::joined_text(&request.system);
    if !instructions.is_empty() {
        body.insert("instructions".into(), Value::from(instructions));
    }
    body.insert(
        "input".into(),
        Value::Array(history_items(&request.messages)),
    );
    if let Some(max_tokens) = request.max_tokens {
        body.insert("max_output_tokens".into(), Value::from(max_tokens));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), Value::from(temperature));
    }
    if let Some(top_p) = request.top_p {
        body.insert("top_p".into(), Value::from(top_p));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut encoded = json!({
                    "type": "function",
                    "name": tool.name,
                    "parameters": tool.parameters,
                });
                if let Some(description) = &tool.description {
                    encoded["description"] = Value::from(description.as_str());
                }
                if let Some(strict) = tool.strict {
                    encoded["strict"] = Value::from(strict);
                }
                encoded
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(tool_choice) = &request.tool_choice {
        body.insert(
            "tool_choice".into(),
            match tool_choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool { name } => json!({"type": "function", "name": name}),
            },
        );
    }
    if let Some(parallel) = request.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), Value::from(parallel));
    }
    if let Some(format) = &request.response_format {
        let format = match format {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => {
                let mut encoded = json!({"type": "json_schema", "name": name, "schema": schema});
                if let Some(strict) = strict {
                    encoded["strict"] = Value::from(*strict);
                }
                encoded
            }
        };
        body.insert("text".into(), json!({ "format": format }));
    }
    if let Some(effort) = request.reasoning.as_ref().and_then(|r| r.effort.as_deref()) {
        body.insert("reasoning".into(), json!({ "effort": effort }));
    }
    if let Some(user) = &request.user {
        body.insert(
            "user".into(),
            Value::from(crate::wire::openai::fitted_user(user)),
        );
    }
    if request.stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(body))
}

/// Canonical messages as Responses input items: user messages with `input_text` and
/// `input_image` parts, system and assistant text as messages of `input_text` and
/// `output_text` parts, tool calls as `function_call` items and tool results as
/// `function_call_output` items (with their images and documents), in order. Thinking is dropped (OpenAI takes back only its
/// own encrypted reasoning items).
pub fn history_items(messages: &[Message]) -> Vec<Value> {
    let mut items = Vec::new();
    for message in messages {
        let mut pending: Vec<Value> = Vec::new();
        let flush = |pending: &mut Vec<Value>, items: &mut Vec<Value>| {
            if pending.is_empty() {
                return;
            }
            let parts = std::mem::take(pending);
            // One content part per canonical part: joined into one string, the parts of a
            // message (or of two messages the decoder merges) would come back as one part,
            // and a second trip would change the request.
            let (role, content) = match message.role {
                Role::User => ("user", parts),
                Role::System => ("system", text_parts(&parts, json!({"type": "input_text"}))),
                // OpenAI takes assistant text back only as `output_text` parts.
                Role::Assistant => (
                    "assistant",
                    text_parts(&parts, json!({"type": "output_text", "annotations": []})),
                ),
            };
            if !content.is_empty() {
                items.push(json!({"role": role, "content": content}));
            }
        };
        for part in &message.content {
            match part {
                ContentPart::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    flush(&mut pending, &mut items);
                    items.push(json!({
                        "type": "function_call",
                        "call_id": id,
                        "name": name,
                        "arguments": arguments,
                    }));
                }
                ContentPart::ToolResult {
                    tool_call_id,
                    content,
                    ..
                } => {
                    flush(&mut pending, &mut items);
                    items.push(json!({
                        "type": "function_call_output",
                        "call_id": tool_call_id,
                        "output": function_output(content),
                    }));
                }
                ContentPart::Thinking { .. } | ContentPart::Opaque { .. } => {}
                _ => pending.extend(input_part(part)),
            }
        }
        flush(&mut pending, &mut items);
    }
    items
}

/// A tool result's `output`: its text as one string, or, when it holds images or documents,
/// its parts as `input_text`, `input_image` and `input_file` parts, which OpenAI takes in a
/// function call's output.
fn function_output(content: &[ContentPart]) -> Value {
    let parts: Vec<Value> = content.iter().filter_map(input_part).collect();
    if parts.iter().all(|part| part["type"] == "input_text") {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect();
        return Value::from(texts.join("\n"));
    }
    Value::Array(parts)
}

/// A text, image or document part as a Responses input part; `None` for the parts that
/// are items of their own or are not sent.
fn input_part(part: &ContentPart) -> Option<Value> {
    Some(match part {
        ContentPart::Text { text } => json!({"type": "input_text", "text": text}),
        ContentPart::Image { source, detail } => {
            let url = match source {
                ImageSource::Url { url } => url.clone(),
                ImageSource::Base64 { media_type, data } => {
                    format!("data:{media_type};base64,{data}")
                }
            };
            json!({
                "type": "input_image",
                "image_url": url,
                "detail": detail.as_deref().unwrap_or("auto"),
            })
        }
        ContentPart::Document { source, name, .. } => match source {
            DocumentSource::Text { text } => json!({"type": "input_text", "text": text}),
            DocumentSource::Base64 { media_type, data } => json!({
                "type": "input_file",
                "filename": document_filename(name.as_deref(), media_type),
                "file_data": format!("data:{media_type};base64,{data}"),
            }),
            DocumentSource::Url { url } => json!({"type": "input_file", "file_url": url}),
        },
        _ => return None,
    })
}

/// The text of `parts`, each as a copy of `template` with its `text` (images and files, which
/// system and assistant messages cannot hold, are left out).
fn text_parts(parts: &[Value], template: Value) -> Vec<Value> {
    parts
        .iter()
        .filter_map(|part| part.get("text"))
        .map(|text| {
            let mut part = template.clone();
            part["text"] = text.clone();
            part
        })
        .collect()
}
