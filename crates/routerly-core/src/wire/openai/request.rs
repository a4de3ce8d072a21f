//! Chat Completions request bodies: a client's body to [`ChatRequest`], and a
//! [`ChatRequest`] to the body an OpenAI(-compatible) provider takes.

use std::borrow::Cow;

use crate::wire::json::{Present, TextMessage, nonzero_limit, place_in};
use crate::wire::{SimpleRequest, TextPlaces};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::json::{
    as_array, as_object, as_str, describe, field_path, get, index_path, missing, optional_bool,
    optional_f64, optional_i64, optional_str, optional_u32, required_object, required_str,
    wrong_type,
};
use crate::canonical::{
    ChatRequest, ContentPart, DecodeError, DocumentSource, HostedTool, ImageSource, Message,
    Reasoning, ResponseFormat, Role, Tool, ToolChoice, UserLocation, WebSearch,
};

/// Decodes a client's Chat Completions body into a [`ChatRequest`], validating it.
///
/// Errors name the field at fault in `param` (`messages[2].tool_call_id`). Unknown
/// top-level fields are ignored: same-format traffic is passed through raw anyway.
pub fn decode_request(body: &Value) -> Result<ChatRequest, DecodeError> {
    let body_map = body.as_object().ok_or_else(|| {
        DecodeError::new(format!(
            "The request body must be a JSON object, but got {} instead.",
            describe(body)
        ))
    })?;

    if let Some(n_value) = get(body_map, "n")
        && n_value.as_u64() != Some(1)
    {
        return Err(DecodeError::at(
            "n",
            "n must be 1: Routerly returns exactly one choice per request.",
        ));
    }

    let model = required_str(body_map, "model", "")?.to_owned();
    let (system, messages) = decode_messages(body_map)?;

    let max_tokens = match optional_u32(body_map, "max_completion_tokens", "")? {
        Some(max_completion_tokens) => nonzero_limit(
            Some(max_completion_tokens),
            "max_completion_tokens",
            "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        )?,
        None => nonzero_limit(
            optional_u32(body_map, "max_tokens", "")?,
            "max_tokens",
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        )?,
    };

    let stream = optional_bool(body_map, "stream", "")?.unwrap_or(false);
    let stream_include_usage = match get(body_map, "stream_options") {
        Some(stream_options_value) => {
            let stream_options = as_object(stream_options_value, "stream_options")?;
            optional_bool(stream_options, "include_usage", "stream_options")?.unwrap_or(false)
        }
        None => false,
    };

    let (tools, mut hosted_tools) = decode_tools(body_map)?;
    if let Some(options) = get(body_map, "web_search_options") {
        let options = as_object(options, "web_search_options")?;
        // Chat's location wraps its fields in `approximate`.
        let location =
            get(options, "user_location").and_then(|location| location.get("approximate"));
        hosted_tools.push(HostedTool {
            kind: "web_search_options".to_owned(),
            path: "web_search_options".to_owned(),
            web_search: Some(WebSearch {
                allowed_domains: Vec::new(),
                user_location: location.map(user_location),
            }),
        });
    }

    let reasoning = optional_str(body_map, "reasoning_effort", "")?.map(|effort| Reasoning {
        budget_tokens: None,
        effort: Some(effort.to_owned()),
    });

    Ok(ChatRequest {
        model,
        system,
        messages,
        max_tokens,
        temperature: optional_f64(body_map, "temperature", "")?,
        top_p: optional_f64(body_map, "top_p", "")?,
        top_k: None,
        stop: decode_stop(body_map)?,
        stream,
        stream_include_usage,
        tools,
        tool_choice: decode_tool_choice(body_map)?,
        parallel_tool_calls: optional_bool(body_map, "parallel_tool_calls", "")?,
        response_format: decode_response_format(body_map)?,
        reasoning,
        presence_penalty: optional_f64(body_map, "presence_penalty", "")?,
        frequency_penalty: optional_f64(body_map, "frequency_penalty", "")?,
        seed: optional_i64(body_map, "seed", "")?,
        user: optional_str(body_map, "user", "")?.map(str::to_owned),
        hosted_tools,
    })
}

/// A Chat Completions body of the common shape, read straight from its text into a
/// [`ChatRequest`]; `None` for any other body, which [`decode_request`] then reads from its
/// JSON tree (and refuses with an error naming the field, where it is at fault).
///
/// The common shape: only the members below, each of the type it must have; messages of
/// the roles `system`, `developer`, `user` and `assistant` with string content and nothing
/// else. Building the tree of such a body and looking each member up in it was a fifth of a
/// plain call's instructions. Where this reader accepts a body it gives exactly what
/// [`decode_request`] gives (the `wire_request` fuzz target and the tests below compare the
/// two); any member it does not know, a duplicate, a `null` where text is needed or a limit
/// of 0 sends the body to the full decoder.
pub fn decode_simple_request(text: &str) -> Option<SimpleRequest> {
    let body: SimpleBody<'_> = serde_json::from_str(text).ok()?;
    if body.messages.is_empty() {
        return None;
    }
    let max_tokens = body.max_completion_tokens.or(body.max_tokens);
    if max_tokens == Some(0) {
        return None;
    }
    let mut system = Vec::new();
    let mut messages = Vec::with_capacity(body.messages.len());
    for message in body.messages {
        let role = match message.role {
            "system" | "developer" if messages.is_empty() => {
                system.push(ContentPart::text(message.content));
                continue;
            }
            "system" | "developer" => Role::System,
            "user" => Role::User,
            // An empty string is "no text" in an assistant message (see
            // `decode_assistant_message`).
            "assistant" if message.content.is_empty() => {
                messages.push(Message {
                    role: Role::Assistant,
                    content: Vec::new(),
                });
                continue;
            }
            "assistant" => Role::Assistant,
            _ => return None,
        };
        messages.push(Message {
            role,
            content: vec![ContentPart::text(message.content)],
        });
    }
    let model = place_in(text, &body.model);
    let request = ChatRequest {
        model: body.model.into_owned(),
        system,
        messages,
        max_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: None,
        stop: Vec::new(),
        stream: body.stream.unwrap_or(false),
        stream_include_usage: body
            .stream_options
            .value
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false),
        tools: Vec::new(),
        tool_choice: None,
        parallel_tool_calls: body.parallel_tool_calls,
        response_format: None,
        reasoning: None,
        presence_penalty: body.presence_penalty,
        frequency_penalty: body.frequency_penalty,
        seed: body.seed,
        user: body.user.map(str::to_owned),
        hosted_tools: Vec::new(),
    };
    Some(SimpleRequest {
        request,
        places: TextPlaces {
            model,
            stream_options: body.stream_options.present,
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
    #[serde(borrow)]
    messages: Vec<TextMessage<'a>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Present<SimpleStreamOptions>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    seed: Option<i64>,
    // Borrowed only: a name with escapes goes to the full decoder.
    user: Option<&'a str>,
    parallel_tool_calls: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimpleStreamOptions {
    include_usage: Option<bool>,
}

/// Splits `messages` into system parts and canonical messages.
fn decode_messages(
    body_map: &Map<String, Value>,
) -> Result<(Vec<ContentPart>, Vec<Message>), DecodeError> {
    let messages_value = get(body_map, "messages").ok_or_else(|| missing("messages"))?;
    let message_values = as_array(messages_value, "messages")?;
    if message_values.is_empty() {
        return Err(DecodeError::at(
            "messages",
            "'messages' must contain at least one message.",
        ));
    }

    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    // Consecutive `tool` messages become one user message of tool results; a system message
    // among them follows the run (the results must stay together after their calls).
    let mut previous_was_tool = false;
    let mut deferred_system: Vec<ContentPart> = Vec::new();
    for (message_index, message_value) in message_values.iter().enumerate() {
        let path = index_path("messages", message_index);
        let message_map = as_object(message_value, &path)?;
        let role = required_str(message_map, "role", &path)?;
        if role != "tool" && !deferred_system.is_empty() && !matches!(role, "system" | "developer")
        {
            messages.push(Message {
                role: Role::System,
                content: std::mem::take(&mut deferred_system),
            });
            previous_was_tool = false;
        }
        match role {
            // Before the conversation, the system prompt; inside it, an instruction in its
            // place.
            "system" | "developer" if messages.is_empty() => {
                system.extend(decode_text_only_content(message_map, &path, role)?);
            }
            "system" | "developer" if previous_was_tool => {
                deferred_system.extend(decode_text_only_content(message_map, &path, role)?);
            }
            "system" | "developer" => {
                messages.push(Message {
                    role: Role::System,
                    content: decode_text_only_content(message_map, &path, role)?,
                });
            }
            "user" => {
                messages.push(Message {
                    role: Role::User,
                    content: decode_user_content(message_map, &path)?,
                });
                previous_was_tool = false;
            }
            "assistant" => {
                messages.push(decode_assistant_message(message_map, &path)?);
                previous_was_tool = false;
            }
            "tool" => {
                let tool_result = decode_tool_message(message_map, &path)?;
                match messages.last_mut() {
                    Some(last) if previous_was_tool => last.content.push(tool_result),
                    _ => messages.push(Message {
                        role: Role::User,
                        content: vec![tool_result],
                    }),
                }
                previous_was_tool = true;
            }
            "function" => {
                return Err(DecodeError::at(
                    field_path(&path, "role"),
                    "The 'function' role is deprecated and not supported; send tool results as 'tool' messages.",
                ));
            }
            other => {
                return Err(DecodeError::at(
                    field_path(&path, "role"),
                    format!(
                        "Invalid value '{other}' for '{path}.role': expected one of 'system', 'developer', 'user', 'assistant', 'tool'."
                    ),
                ));
            }
        }
    }
    if !deferred_system.is_empty() {
        messages.push(Message {
            role: Role::System,
            content: deferred_system,
        });
    }
    Ok((system, messages))
}

/// Content of `system`, `developer` and `tool` messages: a string or text parts.
fn decode_text_only_content(
    message_map: &Map<String, Value>,
    path: &str,
    role: &str,
) -> Result<Vec<ContentPart>, DecodeError> {
    let content_path = field_path(path, "content");
    let content_value = get(message_map, "content").ok_or_else(|| missing(&content_path))?;
    match content_value {
        Value::String(text) => Ok(vec![ContentPart::text(text.as_str())]),
        Value::Array(part_values) => part_values
            .iter()
            .enumerate()
            .map(|(part_index, part_value)| {
                let part_path = index_path(&content_path, part_index);
                let part_map = as_object(part_value, &part_path)?;
                let part_type = required_str(part_map, "type", &part_path)?;
                if part_type != "text" {
                    return Err(DecodeError::at(
                        field_path(&part_path, "type"),
                        format!(
                            "Content parts of '{role}' messages must be of type 'text', but got '{part_type}'."
                        ),
                    ));
                }
                Ok(ContentPart::text(required_str(part_map, "text", &part_path)?))
            })
            .collect(),
        other => Err(wrong_type(
            &content_path,
            "a string or an array of text parts",
            other,
        )),
    }
}

fn decode_user_content(
    message_map: &Map<String, Value>,
    path: &str,
) -> Result<Vec<ContentPart>, DecodeError> {
    let content_path = field_path(path, "content");
    let content_value = get(message_map, "content").ok_or_else(|| missing(&content_path))?;
    match content_value {
        Value::String(text) => Ok(vec![ContentPart::text(text.as_str())]),
        Value::Array(part_values) => part_values
            .iter()
            .enumerate()
            .map(|(part_index, part_value)| {
                decode_user_part(part_value, &index_path(&content_path, part_index))
            })
            .collect(),
        other => Err(wrong_type(
            &content_path,
            "a string or an array of content parts",
            other,
        )),
    }
}

fn decode_user_part(part_value: &Value, part_path: &str) -> Result<ContentPart, DecodeError> {
    let part_map = as_object(part_value, part_path)?;
    let part_type = required_str(part_map, "type", part_path)?;
    match part_type {
        "text" => Ok(ContentPart::text(required_str(
            part_map, "text", part_path,
        )?)),
        "image_url" => decode_image_part(part_map, part_path),
        "file" => decode_file_part(part_map, part_path, part_value),
        // Audio, files and any newer part type: carried as they are (see
        // `ContentPart::Opaque`).
        other => Ok(ContentPart::opaque(other, part_path, part_value)),
    }
}

fn decode_image_part(
    part_map: &Map<String, Value>,
    part_path: &str,
) -> Result<ContentPart, DecodeError> {
    let image_path = field_path(part_path, "image_url");
    let image_value = get(part_map, "image_url").ok_or_else(|| missing(&image_path))?;
    // Some clients send the URL directly instead of `{url, detail}`.
    let (url, detail) = match image_value {
        Value::String(url) => (url.as_str(), None),
        Value::Object(image_map) => (
            required_str(image_map, "url", &image_path)?,
            optional_str(image_map, "detail", &image_path)?,
        ),
        other => return Err(wrong_type(&image_path, "an object", other)),
    };
    let source = image_from_url(url)
        .map_err(|message| DecodeError::at(field_path(&image_path, "url"), message))?;
    Ok(ContentPart::Image {
        source,
        detail: detail.map(str::to_owned),
    })
}

/// A `file` part with inline `file_data` (a `data:` URL); one naming a `file_id` of
/// OpenAI's Files API is carried as it is (only OpenAI can read it).
fn decode_file_part(
    part_map: &Map<String, Value>,
    part_path: &str,
    part_value: &Value,
) -> Result<ContentPart, DecodeError> {
    let file_path = field_path(part_path, "file");
    let file_value = get(part_map, "file").ok_or_else(|| missing(&file_path))?;
    let file_map = as_object(file_value, &file_path)?;
    let Some(file_data) = optional_str(file_map, "file_data", &file_path)? else {
        if get(file_map, "file_id").is_some() {
            return Ok(ContentPart::opaque("file", part_path, part_value));
        }
        return Err(missing(&field_path(&file_path, "file_data")));
    };
    let data_path = field_path(&file_path, "file_data");
    let (media_type, data) = document_from_data_url(file_data)
        .map_err(|message| DecodeError::at(&data_path, message))?;
    Ok(ContentPart::Document {
        source: DocumentSource::Base64 { media_type, data },
        name: optional_str(file_map, "filename", &file_path)?.map(str::to_owned),
        context: None,
        citations: false,
        path: part_path.to_owned(),
    })
}

/// The media type and base64 data of a document's `data:<mime>;base64,<data>` URL.
pub(crate) fn document_from_data_url(url: &str) -> Result<(String, String), String> {
    match image_source_from_url(url)? {
        ImageSource::Base64 { media_type, data } => Ok((media_type, data)),
        ImageSource::Url { .. } => {
            Err("Invalid file data: expected a 'data:<mime type>;base64,<data>' URL.".to_owned())
        }
    }
}

/// `data:<mime>;base64,<data>` becomes inline data; anything else stays a URL.
/// An image's URL: as [`image_source_from_url`], and a data URL must carry an `image/`
/// media type (what every format reads back as an image).
pub(crate) fn image_from_url(url: &str) -> Result<ImageSource, String> {
    let source = image_source_from_url(url)?;
    if let ImageSource::Base64 { media_type, .. } = &source
        && !crate::wire::media::is_image(media_type)
    {
        return Err(
            "An image data URL needs an image media type (image/png, image/jpeg, …).".to_owned(),
        );
    }
    Ok(source)
}

pub(crate) fn image_source_from_url(url: &str) -> Result<ImageSource, String> {
    let Some(data_url) = url.strip_prefix("data:") else {
        return Ok(ImageSource::Url {
            url: url.to_owned(),
        });
    };
    let Some((header, data)) = data_url.split_once(',') else {
        return Err("Invalid data URL: expected 'data:<mime type>;base64,<data>'.".to_owned());
    };
    let Some(media_type) = header.strip_suffix(";base64") else {
        return Err("Only base64-encoded data URLs are supported for images.".to_owned());
    };
    crate::wire::media::check_media_type(media_type)?;
    Ok(ImageSource::Base64 {
        media_type: media_type.to_owned(),
        data: data.to_owned(),
    })
}

fn decode_assistant_message(
    message_map: &Map<String, Value>,
    path: &str,
) -> Result<Message, DecodeError> {
    let mut content = Vec::new();

    // OpenAI-compatible reasoning providers (DeepSeek, vLLM) return `reasoning_content`
    // and some clients send it back; OpenRouter calls it `reasoning`.
    for reasoning_key in ["reasoning_content", "reasoning"] {
        if let Some(Value::String(text)) = get(message_map, reasoning_key)
            && !text.is_empty()
        {
            content.push(ContentPart::Thinking {
                text: text.clone(),
                signature: None,
            });
            break;
        }
    }

    let content_path = field_path(path, "content");
    match get(message_map, "content") {
        None => {}
        // An empty string is how many clients spell "no text" next to tool calls.
        Some(Value::String(text)) if text.is_empty() => {}
        Some(Value::String(text)) => content.push(ContentPart::text(text.as_str())),
        Some(Value::Array(part_values)) => {
            for (part_index, part_value) in part_values.iter().enumerate() {
                let part_path = index_path(&content_path, part_index);
                let part_map = as_object(part_value, &part_path)?;
                let text = match required_str(part_map, "type", &part_path)? {
                    "text" => required_str(part_map, "text", &part_path)?,
                    "refusal" => required_str(part_map, "refusal", &part_path)?,
                    other => {
                        return Err(DecodeError::at(
                            field_path(&part_path, "type"),
                            format!(
                                "Invalid content part type '{other}' in an assistant message: expected 'text' or 'refusal'."
                            ),
                        ));
                    }
                };
                content.push(ContentPart::text(text));
            }
        }
        Some(other) => {
            return Err(wrong_type(
                &content_path,
                "a string, an array of text parts or null",
                other,
            ));
        }
    }

    if let Some(tool_calls_value) = get(message_map, "tool_calls") {
        let tool_calls_path = field_path(path, "tool_calls");
        for (call_index, call_value) in as_array(tool_calls_value, &tool_calls_path)?
            .iter()
            .enumerate()
        {
            content.push(decode_tool_call(
                call_value,
                &index_path(&tool_calls_path, call_index),
            )?);
        }
    }

    Ok(Message {
        role: Role::Assistant,
        content,
    })
}

fn decode_tool_call(call_value: &Value, call_path: &str) -> Result<ContentPart, DecodeError> {
    let call_map = as_object(call_value, call_path)?;
    let id = required_str(call_map, "id", call_path)?;
    if let Some(call_type) = optional_str(call_map, "type", call_path)?
        && call_type != "function"
    {
        // A call of a custom (free-text) tool or a newer kind.
        return Ok(ContentPart::opaque(call_type, call_path, call_value));
    }
    let function_path = field_path(call_path, "function");
    let function_map = required_object(call_map, "function", call_path)?;
    let name = required_str(function_map, "name", &function_path)?;
    let arguments_path = field_path(&function_path, "arguments");
    let arguments = match function_map.get("arguments") {
        Some(Value::String(arguments)) => arguments.clone(),
        None | Some(Value::Null) => return Err(missing(&arguments_path)),
        Some(other) => {
            return Err(DecodeError::at(
                arguments_path.as_str(),
                format!(
                    "Invalid type for '{arguments_path}': expected a string containing JSON, but got {} instead.",
                    describe(other)
                ),
            ));
        }
    };
    Ok(ContentPart::ToolCall {
        id: id.to_owned(),
        name: name.to_owned(),
        arguments,
    })
}

fn decode_tool_message(
    message_map: &Map<String, Value>,
    path: &str,
) -> Result<ContentPart, DecodeError> {
    let tool_call_id = required_str(message_map, "tool_call_id", path)?;
    let content = decode_text_only_content(message_map, path, "tool")?;
    Ok(ContentPart::ToolResult {
        tool_call_id: tool_call_id.to_owned(),
        content,
        is_error: false,
    })
}

fn decode_stop(body_map: &Map<String, Value>) -> Result<Vec<String>, DecodeError> {
    match get(body_map, "stop") {
        None => Ok(Vec::new()),
        Some(Value::String(stop)) => Ok(vec![stop.clone()]),
        Some(Value::Array(stop_values)) => stop_values
            .iter()
            .enumerate()
            .map(|(stop_index, stop_value)| {
                as_str(stop_value, &index_path("stop", stop_index)).map(str::to_owned)
            })
            .collect(),
        Some(other) => Err(wrong_type("stop", "a string or an array of strings", other)),
    }
}

/// An approximate location's fields (`city`, `region`, `country`, `timezone`); what is not
/// a string is left out.
pub(crate) fn user_location(location: &Value) -> UserLocation {
    let field = |key: &str| location.get(key).and_then(Value::as_str).map(str::to_owned);
    UserLocation {
        city: field("city"),
        region: field("region"),
        country: field("country"),
        timezone: field("timezone"),
    }
}

/// Function tools, and the other tools (custom tools and newer kinds) by type and place.
fn decode_tools(
    body_map: &Map<String, Value>,
) -> Result<(Vec<Tool>, Vec<HostedTool>), DecodeError> {
    let Some(tools_value) = get(body_map, "tools") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut tools = Vec::new();
    let mut hosted_tools = Vec::new();
    for (tool_index, tool_value) in as_array(tools_value, "tools")?.iter().enumerate() {
        let tool_path = index_path("tools", tool_index);
        let tool_map = as_object(tool_value, &tool_path)?;
        let tool_type = required_str(tool_map, "type", &tool_path)?;
        if tool_type != "function" {
            hosted_tools.push(HostedTool::named(tool_type, tool_path));
            continue;
        }
        tools.push({
            let function_path = field_path(&tool_path, "function");
            let function_map = required_object(tool_map, "function", &tool_path)?;
            let parameters = match get(function_map, "parameters") {
                None => json!({"type": "object", "properties": {}}),
                Some(parameters @ Value::Object(_)) => parameters.clone(),
                Some(other) => {
                    return Err(wrong_type(
                        &field_path(&function_path, "parameters"),
                        "a JSON Schema object",
                        other,
                    ));
                }
            };
            Tool {
                name: required_str(function_map, "name", &function_path)?.to_owned(),
                description: optional_str(function_map, "description", &function_path)?
                    .map(str::to_owned),
                parameters,
                strict: optional_bool(function_map, "strict", &function_path)?,
            }
        });
    }
    Ok((tools, hosted_tools))
}

fn decode_tool_choice(body_map: &Map<String, Value>) -> Result<Option<ToolChoice>, DecodeError> {
    let Some(tool_choice_value) = get(body_map, "tool_choice") else {
        return Ok(None);
    };
    match tool_choice_value {
        Value::String(choice) => match choice.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => Err(DecodeError::at(
                "tool_choice",
                format!(
                    "Invalid value '{other}' for 'tool_choice': expected 'auto', 'none', 'required' or a function object."
                ),
            )),
        },
        Value::Object(choice_map) => {
            let choice_type = required_str(choice_map, "type", "tool_choice")?;
            if choice_type != "function" {
                return Err(DecodeError::at(
                    "tool_choice.type",
                    format!(
                        "Tool choice of type '{choice_type}' is not supported: expected 'function'."
                    ),
                ));
            }
            let function_map = required_object(choice_map, "function", "tool_choice")?;
            let name = required_str(function_map, "name", "tool_choice.function")?;
            Ok(Some(ToolChoice::Tool {
                name: name.to_owned(),
            }))
        }
        other => Err(wrong_type("tool_choice", "a string or an object", other)),
    }
}

fn decode_response_format(
    body_map: &Map<String, Value>,
) -> Result<Option<ResponseFormat>, DecodeError> {
    let Some(format_value) = get(body_map, "response_format") else {
        return Ok(None);
    };
    let format_map = as_object(format_value, "response_format")?;
    match required_str(format_map, "type", "response_format")? {
        "text" => Ok(Some(ResponseFormat::Text)),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            let schema_path = "response_format.json_schema";
            let schema_map = required_object(format_map, "json_schema", "response_format")?;
            let schema = match get(schema_map, "schema") {
                None => json!({}),
                Some(schema @ Value::Object(_)) => schema.clone(),
                Some(other) => {
                    return Err(wrong_type(
                        &field_path(schema_path, "schema"),
                        "a JSON Schema object",
                        other,
                    ));
                }
            };
            Ok(Some(ResponseFormat::JsonSchema {
                name: required_str(schema_map, "name", schema_path)?.to_owned(),
                schema,
                strict: optional_bool(schema_map, "strict", schema_path)?,
            }))
        }
        other => Err(DecodeError::at(
            "response_format.type",
            format!(
                "Invalid value '{other}' for 'response_format.type': expected 'text', 'json_object' or 'json_schema'."
            ),
        )),
    }
}

/// Encodes a [`ChatRequest`] as the body for an OpenAI or OpenAI-compatible provider,
/// with `model` set to `upstream_model`.
///
/// What does not fit is adapted, not refused: tool results become `tool` messages
/// (text only, so their images and documents follow in a user message), thinking in the history is dropped,
/// `top_k` is dropped, and a thinking budget becomes a `reasoning_effort`. Streams
/// always ask for usage, which the server strips when the client did not.
pub fn encode_request(request: &ChatRequest, upstream_model: &str) -> Result<Value, DecodeError> {
    let mut body = Map::new();
    body.insert("model".into(), Value::from(upstream_model));
    body.insert("messages".into(), Value::Array(encode_messages(request)?));

    if let Some(max_tokens) = request.max_tokens {
        body.insert("max_completion_tokens".into(), Value::from(max_tokens));
    }
    let numbers = [
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("presence_penalty", request.presence_penalty),
        ("frequency_penalty", request.frequency_penalty),
    ];
    for (key, number) in numbers {
        if let Some(number) = number {
            body.insert(key.into(), Value::from(number));
        }
    }
    if let Some(seed) = request.seed {
        body.insert("seed".into(), Value::from(seed));
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), Value::from(request.stop.clone()));
    }
    if request.stream {
        body.insert("stream".into(), Value::Bool(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if !request.tools.is_empty() {
        body.insert(
            "tools".into(),
            request.tools.iter().map(encode_tool).collect(),
        );
    }
    if let Some(tool_choice) = &request.tool_choice {
        body.insert("tool_choice".into(), encode_tool_choice(tool_choice));
    }
    if let Some(parallel_tool_calls) = request.parallel_tool_calls {
        body.insert(
            "parallel_tool_calls".into(),
            Value::Bool(parallel_tool_calls),
        );
    }
    if let Some(response_format) = &request.response_format {
        body.insert(
            "response_format".into(),
            encode_response_format(response_format),
        );
    }
    if let Some(effort) = request.reasoning.as_ref().and_then(reasoning_effort) {
        body.insert("reasoning_effort".into(), Value::from(effort));
    }
    if let Some(user) = &request.user {
        body.insert("user".into(), Value::from(fitted_user(user)));
    }
    Ok(Value::Object(body))
}

/// The longest `user` OpenAI accepts.
const MAX_USER_CHARS: usize = 64;

/// `user` as OpenAI takes it: unchanged up to 64 characters, else the hex SHA-256 of it
/// (64 characters, the same for the same end user). Anthropic's `metadata.user_id`, which
/// Claude Code fills with a long id, has no such limit.
pub(crate) fn fitted_user(user: &str) -> String {
    if user.chars().count() <= MAX_USER_CHARS {
        return user.to_owned();
    }
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(user.as_bytes()))
}

fn encode_messages(request: &ChatRequest) -> Result<Vec<Value>, DecodeError> {
    let mut message_values = Vec::with_capacity(request.messages.len() + 1);
    // One system message per part keeps the parts apart, and round-trips exactly.
    for part in &request.system {
        if let ContentPart::Text { text } = part {
            message_values.push(json!({"role": "system", "content": text}));
        }
    }
    for (message_index, message) in request.messages.iter().enumerate() {
        let path = index_path("messages", message_index);
        match message.role {
            Role::User => encode_user_message(message, &path, &mut message_values)?,
            Role::Assistant => message_values.push(encode_assistant_message(message, &path)?),
            Role::System => {
                message_values.push(json!({"role": "system", "content": message.joined_text()}))
            }
        }
    }
    Ok(message_values)
}

/// A user message: its tool results first, as `tool` messages, then a user message with
/// the images and documents of those results (tool messages carry text only) and the
/// remaining parts (OpenAI wants tool messages right after the assistant's calls).
fn encode_user_message(
    message: &Message,
    path: &str,
    message_values: &mut Vec<Value>,
) -> Result<(), DecodeError> {
    let mut result_media = Vec::new();
    let mut user_parts = Vec::new();
    let mut has_tool_results = false;
    for (part_index, part) in message.content.iter().enumerate() {
        match part {
            // OpenAI has no error flag on tool messages; the result's text says what failed.
            ContentPart::ToolResult {
                tool_call_id,
                content,
                is_error: _,
            } => {
                has_tool_results = true;
                let (text_parts, media): (Vec<Value>, Vec<Value>) = content
                    .iter()
                    .filter_map(encode_content_part)
                    .partition(|part| part["type"] == "text");
                let text = if text_parts.is_empty() {
                    Value::from("")
                } else {
                    compact_parts(text_parts)
                };
                message_values.push(json!({
                    "role": "tool",
                    "tool_call_id": tool_call_id,
                    "content": text,
                }));
                result_media.extend(media);
            }
            ContentPart::ToolCall { .. } => {
                return Err(DecodeError::at(
                    index_path(&field_path(path, "content"), part_index),
                    "A tool call can only appear in an assistant message.",
                ));
            }
            _ => user_parts.extend(encode_content_part(part)),
        }
    }
    result_media.append(&mut user_parts);
    let content = match (result_media.is_empty(), has_tool_results) {
        (true, true) => return Ok(()),
        (true, false) => Value::from(""),
        (false, _) => compact_parts(result_media),
    };
    message_values.push(json!({"role": "user", "content": content}));
    Ok(())
}

/// A text, image or document part as a user-message content part; `None` for the parts a
/// user message does not hold (thinking, and opaque parts, refused before encoding: see
/// `wire::encode_request`).
fn encode_content_part(part: &ContentPart) -> Option<Value> {
    match part {
        ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
        ContentPart::Image { source, detail } => Some(encode_image_part(source, detail.as_deref())),
        ContentPart::Document { source, name, .. } => encode_document_part(source, name.as_deref()),
        _ => None,
    }
}

/// A single text part becomes a plain string, which every OpenAI-compatible server accepts.
fn compact_parts(mut parts: Vec<Value>) -> Value {
    if parts.len() == 1 && parts[0]["type"] == "text" {
        return parts.swap_remove(0)["text"].take();
    }
    Value::Array(parts)
}

/// A document: plain text as a text part, inline data as a `file` part (a URL is refused
/// before encoding, see `wire::encode_request`).
fn encode_document_part(source: &DocumentSource, name: Option<&str>) -> Option<Value> {
    Some(match source {
        DocumentSource::Text { text } => json!({"type": "text", "text": text}),
        DocumentSource::Base64 { media_type, data } => json!({
            "type": "file",
            "file": {
                "filename": document_filename(name, media_type),
                "file_data": format!("data:{media_type};base64,{data}"),
            },
        }),
        DocumentSource::Url { .. } => return None,
    })
}

/// The file name OpenAI requires with inline file data: the client's name, else one
/// made from the media type (`document.pdf`).
pub(crate) fn document_filename(name: Option<&str>, media_type: &str) -> String {
    match name {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => {
            let extension = media_type.rsplit('/').next().unwrap_or("bin");
            format!("document.{extension}")
        }
    }
}

fn encode_image_part(source: &ImageSource, detail: Option<&str>) -> Value {
    let url = match source {
        ImageSource::Url { url } => url.clone(),
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
    };
    let mut image_url = Map::new();
    image_url.insert("url".into(), Value::from(url));
    if let Some(detail) = detail {
        image_url.insert("detail".into(), Value::from(detail));
    }
    json!({"type": "image_url", "image_url": image_url})
}

fn encode_assistant_message(message: &Message, path: &str) -> Result<Value, DecodeError> {
    let mut text_parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (part_index, part) in message.content.iter().enumerate() {
        match part {
            ContentPart::Text { text } => text_parts.push(json!({"type": "text", "text": text})),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            })),
            // OpenAI does not accept reasoning back in the history.
            ContentPart::Thinking { .. } | ContentPart::Opaque { .. } => {}
            ContentPart::Image { .. }
            | ContentPart::Document { .. }
            | ContentPart::ToolResult { .. } => {
                return Err(DecodeError::at(
                    index_path(&field_path(path, "content"), part_index),
                    "An assistant message can only hold text, thinking and tool calls.",
                ));
            }
        }
    }
    let content = match (text_parts.is_empty(), tool_calls.is_empty()) {
        (true, false) => Value::Null,
        (true, true) => Value::from(""),
        (false, _) => compact_parts(text_parts),
    };
    let mut message_map = Map::new();
    message_map.insert("role".into(), Value::from("assistant"));
    message_map.insert("content".into(), content);
    if !tool_calls.is_empty() {
        message_map.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    Ok(Value::Object(message_map))
}

fn encode_tool(tool: &Tool) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), Value::from(tool.name.as_str()));
    if let Some(description) = &tool.description {
        function.insert("description".into(), Value::from(description.as_str()));
    }
    function.insert("parameters".into(), tool.parameters.clone());
    if let Some(strict) = tool.strict {
        function.insert("strict".into(), Value::Bool(strict));
    }
    json!({"type": "function", "function": function})
}

fn encode_tool_choice(tool_choice: &ToolChoice) -> Value {
    match tool_choice {
        ToolChoice::Auto => Value::from("auto"),
        ToolChoice::None => Value::from("none"),
        ToolChoice::Required => Value::from("required"),
        ToolChoice::Tool { name } => json!({"type": "function", "function": {"name": name}}),
    }
}

fn encode_response_format(response_format: &ResponseFormat) -> Value {
    match response_format {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            let mut json_schema = Map::new();
            json_schema.insert("name".into(), Value::from(name.as_str()));
            json_schema.insert("schema".into(), schema.clone());
            if let Some(strict) = strict {
                json_schema.insert("strict".into(), Value::Bool(*strict));
            }
            json!({"type": "json_schema", "json_schema": json_schema})
        }
    }
}

/// The effort to send: the one asked for, or one derived from a thinking budget.
fn reasoning_effort(reasoning: &Reasoning) -> Option<String> {
    if let Some(effort) = &reasoning.effort {
        return Some(effort.clone());
    }
    let effort = match reasoning.budget_tokens? {
        0..=2048 => "low",
        2049..=8192 => "medium",
        _ => "high",
    };
    Some(effort.to_owned())
}
