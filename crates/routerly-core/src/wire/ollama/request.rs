//! `/api/chat` request bodies: a client's body to [`ChatRequest`], and a [`ChatRequest`]
//! to the body Ollama takes.

use crate::wire::json::nonzero_limit;

use serde_json::{Map, Value, json};

use super::super::call_names::CallNames;
use super::json::{
    Object, as_array, as_object, as_str, field_path, get, index_path, optional_bool, optional_f64,
    optional_str, optional_u32, require, require_str,
};
use super::{args_object, generated_call_id};
use crate::canonical::{
    ChatRequest, ContentPart, DecodeError, DocumentSource, ImageSource, Message, Reasoning,
    ResponseFormat, Role, Tool, ToolChoice,
};

/// Decodes a client's `/api/chat` body. Ollama streams unless told not to, so `stream`
/// defaults to true.
pub fn decode_request(body: &Value) -> Result<ChatRequest, DecodeError> {
    let body_map = as_object(body, "")
        .map_err(|_| DecodeError::new("The request body must be a JSON object."))?;
    let model = require_str(body_map, "model", "")?.to_owned();
    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    let mut open_calls: Vec<(String, String)> = Vec::new();
    let messages_value = require(body_map, "messages", "")?;
    for (message_index, message_value) in as_array(messages_value, "messages")?.iter().enumerate() {
        let path = index_path("messages", message_index);
        let message_map = as_object(message_value, &path)?;
        let content = optional_str(message_map, "content", &path)?.unwrap_or_default();
        match require_str(message_map, "role", &path)? {
            "system" => system.push(ContentPart::text(content)),
            "user" => {
                let mut parts = Vec::new();
                if !content.is_empty() {
                    parts.push(ContentPart::text(content));
                }
                if let Some(images) = get(message_map, "images") {
                    let images_path = field_path(&path, "images");
                    for (image_index, image) in as_array(images, &images_path)?.iter().enumerate() {
                        let data = as_str(image, &index_path(&images_path, image_index))?;
                        parts.push(ContentPart::Image {
                            source: ImageSource::Base64 {
                                media_type: media_type_of_base64(data).to_owned(),
                                data: data.to_owned(),
                            },
                            detail: None,
                        });
                    }
                }
                messages.push(Message {
                    role: Role::User,
                    content: parts,
                });
            }
            "assistant" => {
                let mut parts = Vec::new();
                if let Some(thinking) = optional_str(message_map, "thinking", &path)?
                    && !thinking.is_empty()
                {
                    parts.push(ContentPart::Thinking {
                        text: thinking.to_owned(),
                        signature: None,
                    });
                }
                if !content.is_empty() {
                    parts.push(ContentPart::text(content));
                }
                if let Some(calls) = get(message_map, "tool_calls") {
                    let calls_path = field_path(&path, "tool_calls");
                    for (call_index, call) in as_array(calls, &calls_path)?.iter().enumerate() {
                        let call_path = index_path(&calls_path, call_index);
                        let call_map = as_object(call, &call_path)?;
                        let function_path = field_path(&call_path, "function");
                        let function_map =
                            as_object(require(call_map, "function", &call_path)?, &function_path)?;
                        let name = require_str(function_map, "name", &function_path)?.to_owned();
                        let id = optional_str(call_map, "id", &call_path)?
                            .map_or_else(generated_call_id, str::to_owned);
                        let arguments = match get(function_map, "arguments") {
                            Some(Value::String(text)) => text.clone(),
                            Some(arguments) => arguments.to_string(),
                            None => "{}".to_owned(),
                        };
                        open_calls.push((id.clone(), name.clone()));
                        parts.push(ContentPart::ToolCall {
                            id,
                            name,
                            arguments,
                        });
                    }
                }
                messages.push(Message {
                    role: Role::Assistant,
                    content: parts,
                });
            }
            "tool" => {
                let tool_name = optional_str(message_map, "tool_name", &path)?.or(optional_str(
                    message_map,
                    "name",
                    &path,
                )?);
                let tool_call_id = match optional_str(message_map, "tool_call_id", &path)? {
                    Some(id) => id.to_owned(),
                    None => {
                        let position = match tool_name {
                            Some(name) => open_calls.iter().position(|(_, call)| call == name),
                            None if open_calls.is_empty() => None,
                            None => Some(0),
                        };
                        match position {
                            Some(position) => open_calls.remove(position).0,
                            None => tool_name.unwrap_or("tool").to_owned(),
                        }
                    }
                };
                let result = ContentPart::ToolResult {
                    tool_call_id,
                    content: vec![ContentPart::text(content)],
                    is_error: false,
                };
                match messages.last_mut() {
                    Some(last)
                        if last.role == Role::User
                            && last
                                .content
                                .iter()
                                .all(|part| matches!(part, ContentPart::ToolResult { .. })) =>
                    {
                        last.content.push(result)
                    }
                    _ => messages.push(Message {
                        role: Role::User,
                        content: vec![result],
                    }),
                }
            }
            other => {
                return Err(DecodeError::at(
                    field_path(&path, "role"),
                    format!(
                        "Invalid role '{other}': expected 'system', 'user', 'assistant' or 'tool'."
                    ),
                ));
            }
        }
    }

    let options = match get(body_map, "options") {
        Some(options_value) => as_object(options_value, "options")?.clone(),
        None => Map::new(),
    };
    let stop = match get(&options, "stop") {
        Some(Value::String(stop)) => vec![stop.clone()],
        Some(stop_value) => as_array(stop_value, "options.stop")?
            .iter()
            .enumerate()
            .map(|(stop_index, value)| {
                as_str(value, &index_path("options.stop", stop_index)).map(str::to_owned)
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let response_format = match get(body_map, "format") {
        None => None,
        Some(Value::String(format)) if format == "json" => Some(ResponseFormat::JsonObject),
        Some(schema @ Value::Object(_)) => Some(ResponseFormat::JsonSchema {
            name: "response".to_owned(),
            schema: schema.clone(),
            strict: None,
        }),
        Some(_) => {
            return Err(DecodeError::at(
                "format",
                "'format' must be \"json\" or a JSON Schema object.",
            ));
        }
    };
    let reasoning = match get(body_map, "think") {
        Some(Value::Bool(true)) => Some(Reasoning {
            budget_tokens: None,
            effort: None,
        }),
        Some(Value::String(level)) => Some(Reasoning {
            budget_tokens: None,
            effort: Some(level.clone()),
        }),
        _ => None,
    };
    Ok(ChatRequest {
        model,
        system,
        messages,
        max_tokens: nonzero_limit(
            optional_u32(&options, "num_predict", "options")?,
            "options.num_predict",
            "`options.num_predict` must be at least 1",
        )?,
        temperature: optional_f64(&options, "temperature", "options")?,
        top_p: optional_f64(&options, "top_p", "options")?,
        top_k: optional_u32(&options, "top_k", "options")?,
        stop,
        stream: optional_bool(body_map, "stream", "")?.unwrap_or(true),
        stream_include_usage: false,
        tools: decode_tools(body_map)?,
        tool_choice: None,
        parallel_tool_calls: None,
        response_format,
        reasoning,
        presence_penalty: optional_f64(&options, "presence_penalty", "options")?,
        frequency_penalty: optional_f64(&options, "frequency_penalty", "options")?,
        seed: get(&options, "seed").and_then(Value::as_i64),
        user: None,
        hosted_tools: Vec::new(),
    })
}

/// The image type that base64 data starts with; PNG when it is none Ollama knows.
fn media_type_of_base64(data: &str) -> &'static str {
    if data.starts_with("/9j/") {
        "image/jpeg"
    } else if data.starts_with("R0lGOD") {
        "image/gif"
    } else if data.starts_with("UklGR") {
        "image/webp"
    } else {
        "image/png"
    }
}

fn decode_tools(body_map: &Object) -> Result<Vec<Tool>, DecodeError> {
    let Some(tools_value) = get(body_map, "tools") else {
        return Ok(Vec::new());
    };
    as_array(tools_value, "tools")?
        .iter()
        .enumerate()
        .map(|(tool_index, tool_value)| {
            let tool_path = index_path("tools", tool_index);
            let tool_map = as_object(tool_value, &tool_path)?;
            let function_path = field_path(&tool_path, "function");
            let function_map =
                as_object(require(tool_map, "function", &tool_path)?, &function_path)?;
            // The parameters are a JSON Schema object, as every other format requires.
            let parameters = match get(function_map, "parameters") {
                Some(parameters) => {
                    as_object(parameters, &field_path(&function_path, "parameters"))?;
                    parameters.clone()
                }
                None => json!({"type": "object", "properties": {}}),
            };
            Ok(Tool {
                name: require_str(function_map, "name", &function_path)?.to_owned(),
                description: optional_str(function_map, "description", &function_path)?
                    .map(str::to_owned),
                parameters,
                strict: None,
            })
        })
        .collect()
}

/// Encodes a [`ChatRequest`] as an `/api/chat` body for `upstream_model`.
///
/// What Ollama cannot take is refused with a 400 naming the feature and the model (image
/// URLs); what only differs in shape is adapted (see the module doc).
pub fn encode_request(request: &ChatRequest, upstream_model: &str) -> Result<Value, DecodeError> {
    let mut call_names = CallNames::default();
    let mut message_values = Vec::with_capacity(request.messages.len() + 1);
    for part in &request.system {
        if let ContentPart::Text { text } = part {
            message_values.push(json!({"role": "system", "content": text}));
        }
    }
    for (message_index, message) in request.messages.iter().enumerate() {
        let path = index_path("messages", message_index);
        call_names.learn(message);
        match message.role {
            Role::User => encode_user_message(
                message,
                &call_names,
                &path,
                upstream_model,
                &mut message_values,
            )?,
            Role::Assistant => message_values.push(encode_assistant_message(message)),
            Role::System => {
                message_values.push(json!({"role": "system", "content": message.joined_text()}))
            }
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), Value::from(upstream_model));
    body.insert("messages".into(), Value::Array(message_values));
    body.insert("stream".into(), Value::Bool(request.stream));
    let tools: Vec<&Tool> = match &request.tool_choice {
        Some(ToolChoice::None) => Vec::new(),
        Some(ToolChoice::Tool { name }) => request
            .tools
            .iter()
            .filter(|tool| &tool.name == name)
            .collect(),
        _ => request.tools.iter().collect(),
    };
    if !tools.is_empty() {
        body.insert("tools".into(), tools.into_iter().map(encode_tool).collect());
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            body.insert("format".into(), Value::from("json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert("format".into(), schema.clone());
        }
    }
    let options = encode_options(request);
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    if request.reasoning.is_some() {
        body.insert("think".into(), Value::Bool(true));
    }
    Ok(Value::Object(body))
}

/// A user message: its tool results first, as `tool` messages, then the rest as one
/// user message (text joined, images as base64).
fn encode_user_message(
    message: &Message,
    call_names: &CallNames,
    path: &str,
    upstream_model: &str,
    message_values: &mut Vec<Value>,
) -> Result<(), DecodeError> {
    let mut texts: Vec<&str> = Vec::new();
    let mut images: Vec<&str> = Vec::new();
    let mut has_tool_results = false;
    for (part_index, part) in message.content.iter().enumerate() {
        let part_path = index_path(&field_path(path, "content"), part_index);
        match part {
            ContentPart::Text { text } => texts.push(text),
            // Plain-text documents only: others are refused before encoding.
            ContentPart::Document {
                source: DocumentSource::Text { text },
                ..
            } => texts.push(text),
            ContentPart::Document { .. } => {}
            ContentPart::Image { source, .. } => {
                images.push(base64_image(source, &part_path, upstream_model)?)
            }
            ContentPart::ToolResult {
                tool_call_id,
                content,
                ..
            } => {
                has_tool_results = true;
                let text: Vec<&str> = content
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                let mut tool_message = json!({"role": "tool", "content": text.join("\n")});
                if let Some(name) = call_names.get(tool_call_id.as_str()) {
                    tool_message["tool_name"] = Value::from(name);
                }
                let result_images = content
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Image { source, .. } => Some(source),
                        _ => None,
                    })
                    .map(|source| base64_image(source, &part_path, upstream_model))
                    .collect::<Result<Vec<_>, _>>()?;
                if !result_images.is_empty() {
                    tool_message["images"] = Value::from(result_images);
                }
                message_values.push(tool_message);
            }
            ContentPart::Thinking { .. } | ContentPart::Opaque { .. } => {}
            ContentPart::ToolCall { .. } => {
                return Err(DecodeError::at(
                    part_path,
                    "A tool call can only appear in an assistant message.",
                ));
            }
        }
    }
    if has_tool_results && texts.is_empty() && images.is_empty() {
        return Ok(());
    }
    let mut user_message = json!({"role": "user", "content": texts.join("\n")});
    if !images.is_empty() {
        user_message["images"] = Value::from(images);
    }
    message_values.push(user_message);
    Ok(())
}

fn base64_image<'a>(
    source: &'a ImageSource,
    part_path: &str,
    upstream_model: &str,
) -> Result<&'a str, DecodeError> {
    match source {
        ImageSource::Base64 { data, .. } => Ok(data),
        ImageSource::Url { .. } => Err(DecodeError::at(
            part_path,
            format!(
                "Ollama model '{upstream_model}' takes images as base64 data only, not URLs: send the image inline (a data: URL)."
            ),
        )),
    }
}

fn encode_assistant_message(message: &Message) -> Value {
    let mut text = String::new();
    let mut thinking = String::new();
    let mut tool_calls = Vec::new();
    for part in &message.content {
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
    let mut message_value = json!({"role": "assistant", "content": text});
    if !thinking.is_empty() {
        message_value["thinking"] = Value::from(thinking);
    }
    if !tool_calls.is_empty() {
        message_value["tool_calls"] = Value::Array(tool_calls);
    }
    message_value
}

fn encode_tool(tool: &Tool) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), Value::from(tool.name.as_str()));
    if let Some(description) = &tool.description {
        function.insert("description".into(), Value::from(description.as_str()));
    }
    function.insert("parameters".into(), tool.parameters.clone());
    json!({"type": "function", "function": function})
}

fn encode_options(request: &ChatRequest) -> Map<String, Value> {
    let mut options = Map::new();
    let numbers = [
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("presence_penalty", request.presence_penalty),
        ("frequency_penalty", request.frequency_penalty),
    ];
    for (key, number) in numbers {
        if let Some(number) = number {
            options.insert(key.into(), Value::from(number));
        }
    }
    if let Some(top_k) = request.top_k {
        options.insert("top_k".into(), Value::from(top_k));
    }
    if let Some(max_tokens) = request.max_tokens {
        options.insert("num_predict".into(), Value::from(max_tokens));
    }
    if let Some(seed) = request.seed {
        options.insert("seed".into(), Value::from(seed));
    }
    if !request.stop.is_empty() {
        options.insert("stop".into(), Value::from(request.stop.clone()));
    }
    options
}
