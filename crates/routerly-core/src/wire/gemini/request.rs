//! `generateContent` request bodies: a client's body to [`ChatRequest`], and a
//! [`ChatRequest`] to the body Gemini takes.

use crate::wire::json::nonzero_limit;

use serde_json::{Map, Value, json};

use super::super::call_names::CallNames;
use super::json::{
    Object, as_array, as_object, as_str, field_path, get, index_path, optional_bool, optional_f64,
    optional_str, optional_u32, require, require_media_type, require_str,
};
use super::{PLACEHOLDER_THOUGHT_SIGNATURE, args_object, generated_call_id};
use crate::canonical::{
    ChatRequest, ContentPart, DecodeError, DocumentSource, HostedTool, ImageSource, Message,
    PDF_MEDIA_TYPE, Reasoning, ResponseFormat, Role, Tool, ToolChoice, WebSearch,
};

/// Decodes a client's `generateContent` body. The model and whether to stream are in
/// Gemini's URL, not its body, so `model` is empty and `stream` false: the caller sets them.
pub fn decode_request(body: &Value) -> Result<ChatRequest, DecodeError> {
    let body_map = as_object(body, "")
        .map_err(|_| DecodeError::new("The request body must be a JSON object."))?;
    let contents_value = require(body_map, "contents", "")?;
    let mut messages = Vec::new();
    // Function responses name the function, not the call: match them to the calls in order.
    let mut open_calls: Vec<OpenCall> = Vec::new();
    for (content_index, content_value) in as_array(contents_value, "contents")?.iter().enumerate() {
        let path = index_path("contents", content_index);
        let content_map = as_object(content_value, &path)?;
        let role = match optional_str(content_map, "role", &path)?.unwrap_or("user") {
            "user" | "function" => Role::User,
            "model" => Role::Assistant,
            other => {
                return Err(DecodeError::at(
                    field_path(&path, "role"),
                    format!("Invalid role '{other}': expected 'user' or 'model'."),
                ));
            }
        };
        let parts = decode_parts(content_map, &path, Some(role), &mut open_calls)?;
        messages.push(Message {
            role,
            content: parts,
        });
    }
    let system =
        match get(body_map, "systemInstruction").or_else(|| get(body_map, "system_instruction")) {
            Some(system_value) => {
                let system_map = as_object(system_value, "systemInstruction")?;
                decode_parts(system_map, "systemInstruction", None, &mut Vec::new())?
            }
            None => Vec::new(),
        };

    let config = match get(body_map, "generationConfig") {
        Some(config_value) => as_object(config_value, "generationConfig")?.clone(),
        None => Map::new(),
    };
    let config_path = "generationConfig";
    let stop = match get(&config, "stopSequences") {
        Some(stop_value) => as_array(stop_value, "generationConfig.stopSequences")?
            .iter()
            .enumerate()
            .map(|(stop_index, value)| {
                as_str(
                    value,
                    &index_path("generationConfig.stopSequences", stop_index),
                )
                .map(str::to_owned)
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let (tools, hosted_tools) = decode_tools(body_map)?;
    let response_format = match optional_str(&config, "responseMimeType", config_path)? {
        Some("application/json") => {
            match get(&config, "responseJsonSchema").or_else(|| get(&config, "responseSchema")) {
                Some(schema) => Some(ResponseFormat::JsonSchema {
                    name: "response".to_owned(),
                    schema: schema.clone(),
                    strict: None,
                }),
                None => Some(ResponseFormat::JsonObject),
            }
        }
        _ => None,
    };
    let reasoning = match get(&config, "thinkingConfig") {
        Some(thinking_value) => {
            let thinking_map = as_object(thinking_value, "generationConfig.thinkingConfig")?;
            let budget = optional_u32(
                thinking_map,
                "thinkingBudget",
                "generationConfig.thinkingConfig",
            )?;
            let level = optional_str(
                thinking_map,
                "thinkingLevel",
                "generationConfig.thinkingConfig",
            )?;
            (budget.is_some() || level.is_some()).then(|| Reasoning {
                budget_tokens: budget,
                effort: level.map(str::to_lowercase),
            })
        }
        None => None,
    };

    Ok(ChatRequest {
        model: String::new(),
        system,
        messages,
        max_tokens: nonzero_limit(
            optional_u32(&config, "maxOutputTokens", config_path)?,
            "generationConfig.maxOutputTokens",
            "Unable to submit request because it has a maxOutputTokens value of 0 but the supported range is from 1 (inclusive) to 65537 (exclusive).",
        )?,
        temperature: optional_f64(&config, "temperature", config_path)?,
        top_p: optional_f64(&config, "topP", config_path)?,
        top_k: optional_u32(&config, "topK", config_path)?,
        stop,
        stream: false,
        stream_include_usage: false,
        tools,
        tool_choice: decode_tool_choice(body_map)?,
        parallel_tool_calls: None,
        response_format,
        reasoning,
        presence_penalty: optional_f64(&config, "presencePenalty", config_path)?,
        frequency_penalty: optional_f64(&config, "frequencyPenalty", config_path)?,
        seed: get(&config, "seed").and_then(Value::as_i64),
        user: None,
        hosted_tools,
    })
}

/// A function call seen so far in the conversation, for linking responses without ids.
struct OpenCall {
    id: String,
    name: String,
    answered: bool,
}

/// The parts of a content of `role` (`None` for the system instruction). Calls belong in
/// model turns and responses in user turns, as Gemini requires and the canonical model
/// assumes (a translation to Anthropic would otherwise send what Anthropic refuses).
fn decode_parts(
    content_map: &Object,
    path: &str,
    role: Option<Role>,
    open_calls: &mut Vec<OpenCall>,
) -> Result<Vec<ContentPart>, DecodeError> {
    let parts_path = field_path(path, "parts");
    let parts_value = require(content_map, "parts", path)?;
    let mut parts = Vec::new();
    for (part_index, part_value) in as_array(parts_value, &parts_path)?.iter().enumerate() {
        let part_path = index_path(&parts_path, part_index);
        let part_map = as_object(part_value, &part_path)?;
        if let Some(text) = optional_str(part_map, "text", &part_path)? {
            if optional_bool(part_map, "thought", &part_path)? == Some(true) {
                parts.push(ContentPart::Thinking {
                    text: text.to_owned(),
                    signature: optional_str(part_map, "thoughtSignature", &part_path)?
                        .map(str::to_owned),
                });
            } else {
                parts.push(ContentPart::text(text));
            }
        } else if let Some(inline_value) = get(part_map, "inlineData") {
            let inline_path = field_path(&part_path, "inlineData");
            let inline_map = as_object(inline_value, &inline_path)?;
            let media_type = require_media_type(inline_map, "mimeType", &inline_path)?.to_owned();
            let data = require_str(inline_map, "data", &inline_path)?.to_owned();
            parts.push(if is_document_type(&media_type) {
                ContentPart::Document {
                    source: DocumentSource::Base64 { media_type, data },
                    name: None,
                    context: None,
                    citations: false,
                    path: part_path.clone(),
                }
            } else if crate::wire::media::is_image(&media_type) {
                ContentPart::Image {
                    source: ImageSource::Base64 { media_type, data },
                    detail: None,
                }
            } else {
                // Audio, video and other media only Gemini reads.
                ContentPart::opaque("inlineData", &part_path, part_value)
            });
        } else if let Some(file_value) = get(part_map, "fileData") {
            let file_path = field_path(&part_path, "fileData");
            let file_map = as_object(file_value, &file_path)?;
            parts.push(ContentPart::Image {
                source: ImageSource::Url {
                    url: require_str(file_map, "fileUri", &file_path)?.to_owned(),
                },
                detail: None,
            });
        } else if let Some(call_value) = get(part_map, "functionCall") {
            let call_path = field_path(&part_path, "functionCall");
            if role == Some(Role::User) {
                return Err(DecodeError::at(
                    call_path,
                    "A 'functionCall' part belongs in a 'model' turn.",
                ));
            }
            let call_map = as_object(call_value, &call_path)?;
            let name = require_str(call_map, "name", &call_path)?.to_owned();
            let id = optional_str(call_map, "id", &call_path)?
                .map_or_else(generated_call_id, str::to_owned);
            let arguments = get(call_map, "args").map_or_else(|| "{}".to_owned(), Value::to_string);
            open_calls.push(OpenCall {
                id: id.clone(),
                name: name.clone(),
                answered: false,
            });
            parts.push(ContentPart::ToolCall {
                id,
                name,
                arguments,
            });
        } else if let Some(response_value) = get(part_map, "functionResponse") {
            let response_path = field_path(&part_path, "functionResponse");
            if role == Some(Role::Assistant) {
                return Err(DecodeError::at(
                    response_path,
                    "A 'functionResponse' part belongs in a 'user' turn.",
                ));
            }
            let response_map = as_object(response_value, &response_path)?;
            let name = require_str(response_map, "name", &response_path)?;
            let tool_call_id = match optional_str(response_map, "id", &response_path)? {
                Some(id) => id.to_owned(),
                // The first unanswered call of that name; a second response to a call
                // answers it again (the last call of that name), so the result keeps a
                // call to name it by when it is written back.
                None => match open_calls
                    .iter_mut()
                    .find(|call| !call.answered && call.name == name)
                {
                    Some(call) => {
                        call.answered = true;
                        call.id.clone()
                    }
                    None => open_calls
                        .iter()
                        .rev()
                        .find(|call| call.name == name)
                        .map_or_else(|| name.to_owned(), |call| call.id.clone()),
                },
            };
            let response = get(response_map, "response").cloned().unwrap_or(json!({}));
            let (text, is_error) = tool_result_text(&response);
            parts.push(ContentPart::ToolResult {
                tool_call_id,
                content: vec![ContentPart::text(text)],
                is_error,
            });
        } else if get(part_map, "thoughtSignature").is_none() {
            return Err(DecodeError::at(
                part_path,
                "A part must hold one of 'text', 'inlineData', 'fileData', 'functionCall' or 'functionResponse'.",
            ));
        }
    }
    Ok(parts)
}

/// Whether inline data of `media_type` is a document (a PDF or text) rather than media.
fn is_document_type(media_type: &str) -> bool {
    let media_type = media_type.to_ascii_lowercase();
    media_type == PDF_MEDIA_TYPE || media_type.starts_with("text/")
}

/// The text of a function response: `result` or `output` when it is a string, `error`
/// for a failure, else the compact JSON of the whole response.
fn tool_result_text(response: &Value) -> (String, bool) {
    if let Some(object) = response.as_object() {
        for key in ["result", "output", "content"] {
            if let Some(Value::String(text)) = object.get(key)
                && object.len() == 1
            {
                return (text.clone(), false);
            }
        }
        if let Some(Value::String(text)) = object.get("error")
            && object.len() == 1
        {
            return (text.clone(), true);
        }
    }
    (response.to_string(), false)
}

/// Function declarations, and Google Search grounding as the canonical hosted web search
/// (what the encoder writes for one).
fn decode_tools(body_map: &Object) -> Result<(Vec<Tool>, Vec<HostedTool>), DecodeError> {
    let Some(tools_value) = get(body_map, "tools") else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut tools = Vec::new();
    let mut hosted_tools = Vec::new();
    for (tool_index, tool_value) in as_array(tools_value, "tools")?.iter().enumerate() {
        let tool_path = index_path("tools", tool_index);
        let tool_map = as_object(tool_value, &tool_path)?;
        if get(tool_map, "googleSearch").is_some() {
            hosted_tools.push(HostedTool {
                kind: "google_search".to_owned(),
                path: field_path(&tool_path, "googleSearch"),
                web_search: Some(WebSearch::default()),
            });
        }
        let Some(declarations_value) = get(tool_map, "functionDeclarations") else {
            if get(tool_map, "googleSearch").is_some() {
                continue;
            }
            return Err(DecodeError::at(
                tool_path,
                "Only 'functionDeclarations' and 'googleSearch' tools are supported by Routerly.",
            ));
        };
        let declarations_path = field_path(&tool_path, "functionDeclarations");
        for (declaration_index, declaration_value) in
            as_array(declarations_value, &declarations_path)?
                .iter()
                .enumerate()
        {
            let declaration_path = index_path(&declarations_path, declaration_index);
            let declaration_map = as_object(declaration_value, &declaration_path)?;
            let parameters = get(declaration_map, "parametersJsonSchema")
                .or_else(|| get(declaration_map, "parameters"))
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            tools.push(Tool {
                name: require_str(declaration_map, "name", &declaration_path)?.to_owned(),
                description: optional_str(declaration_map, "description", &declaration_path)?
                    .map(str::to_owned),
                parameters,
                strict: None,
            });
        }
    }
    Ok((tools, hosted_tools))
}

fn decode_tool_choice(body_map: &Object) -> Result<Option<ToolChoice>, DecodeError> {
    let Some(config_value) = get(body_map, "toolConfig") else {
        return Ok(None);
    };
    let config_map = as_object(config_value, "toolConfig")?;
    let Some(calling_value) = get(config_map, "functionCallingConfig") else {
        return Ok(None);
    };
    let calling_path = "toolConfig.functionCallingConfig";
    let calling_map = as_object(calling_value, calling_path)?;
    let allowed: Vec<&str> = match get(calling_map, "allowedFunctionNames") {
        Some(names) => as_array(
            names,
            "toolConfig.functionCallingConfig.allowedFunctionNames",
        )?
        .iter()
        .filter_map(Value::as_str)
        .collect(),
        None => Vec::new(),
    };
    Ok(match optional_str(calling_map, "mode", calling_path)? {
        None | Some("AUTO") | Some("MODE_UNSPECIFIED") | Some("VALIDATED") => {
            Some(ToolChoice::Auto)
        }
        Some("NONE") => Some(ToolChoice::None),
        Some("ANY") if allowed.len() == 1 => Some(ToolChoice::Tool {
            name: allowed[0].to_owned(),
        }),
        Some("ANY") => Some(ToolChoice::Required),
        Some(other) => {
            return Err(DecodeError::at(
                "toolConfig.functionCallingConfig.mode",
                format!("Invalid mode '{other}': expected 'AUTO', 'ANY' or 'NONE'."),
            ));
        }
    })
}

/// Encodes a [`ChatRequest`] as a `generateContent` body. The model goes in the URL, not
/// the body; `upstream_model` only names it in errors.
///
/// What Gemini cannot take is refused with a 400 naming the feature and the model, never
/// dropped silently; what only differs in shape is adapted (see the module doc).
pub fn encode_request(request: &ChatRequest, upstream_model: &str) -> Result<Value, DecodeError> {
    let mut call_names = CallNames::default();

    let mut contents = Vec::with_capacity(request.messages.len());
    for (message_index, message) in request.messages.iter().enumerate() {
        let path = index_path("messages", message_index);
        call_names.learn(message);
        let parts = encode_parts(message, &call_names, &path, upstream_model)?;
        if parts.is_empty() {
            continue;
        }
        let role = match message.role {
            // Gemini has no instruction inside the conversation: the nearest is a user turn
            // in its place.
            Role::User | Role::System => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({"role": role, "parts": parts}));
    }
    if contents.is_empty() {
        return Err(DecodeError::at(
            "messages",
            format!("Gemini model '{upstream_model}' needs at least one message with content."),
        ));
    }

    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    let system_parts: Vec<Value> = request
        .system
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } if !text.is_empty() => Some(json!({"text": text})),
            _ => None,
        })
        .collect();
    if !system_parts.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system_parts}));
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request.tools.iter().map(encode_tool).collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if web_search(request).is_some() {
        body.insert("tools".into(), json!([{"googleSearch": {}}]));
    }
    if let Some(tool_choice) = &request.tool_choice
        && !request.tools.is_empty()
    {
        let calling = match tool_choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool { name } => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": calling}),
        );
    }
    let config = encode_generation_config(request);
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(body))
}

/// The hosted web search Gemini runs as Google Search grounding: the request's first, when
/// it restricts no domains (grounding has no such filter) and the request has no function
/// tools (`generateContent` does not combine grounding with function calling).
pub fn web_search(request: &ChatRequest) -> Option<&HostedTool> {
    let (tool, search) = request.web_search()?;
    (search.allowed_domains.is_empty() && request.tools.is_empty()).then_some(tool)
}

fn encode_parts(
    message: &Message,
    call_names: &CallNames,
    path: &str,
    upstream_model: &str,
) -> Result<Vec<Value>, DecodeError> {
    let mut parts = Vec::with_capacity(message.content.len());
    let mut signature_pending: Option<&str> = None;
    let mut first_call = true;
    for (part_index, part) in message.content.iter().enumerate() {
        let part_path = index_path(&field_path(path, "content"), part_index);
        match part {
            ContentPart::Text { text } if text.is_empty() => {}
            ContentPart::Text { text } => {
                let mut text_part = json!({"text": text});
                if let Some(signature) = signature_pending.take() {
                    text_part["thoughtSignature"] = Value::from(signature);
                }
                parts.push(text_part);
            }
            ContentPart::Image { source, .. } => {
                parts.push(encode_image(source));
            }
            ContentPart::Document { source, .. } => parts.extend(encode_document(source)),
            ContentPart::ToolCall {
                name, arguments, ..
            } => {
                let mut call_part =
                    json!({"functionCall": {"name": name, "args": args_object(arguments)}});
                let signature = signature_pending
                    .take()
                    .or(first_call.then_some(PLACEHOLDER_THOUGHT_SIGNATURE));
                if let Some(signature) = signature {
                    call_part["thoughtSignature"] = Value::from(signature);
                }
                first_call = false;
                parts.push(call_part);
            }
            ContentPart::ToolResult {
                tool_call_id,
                content,
                is_error,
            } => {
                let name = call_names
                    .get(tool_call_id.as_str())
                    .ok_or_else(|| {
                        DecodeError::at(
                            &part_path,
                            format!(
                                "Gemini model '{upstream_model}' needs the function name of tool result '{tool_call_id}', but no earlier tool call has that id."
                            ),
                        )
                    })?;
                let text: String = content
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let key = if *is_error { "error" } else { "result" };
                parts.push(json!({"functionResponse": {"name": name, "response": {key: text}}}));
                // Images and documents follow the response as parts of their own.
                for inner in content {
                    match inner {
                        ContentPart::Image { source, .. } => parts.push(encode_image(source)),
                        ContentPart::Document { source, .. } => {
                            parts.extend(encode_document(source))
                        }
                        _ => {}
                    }
                }
            }
            // Thought text is never sent back; its signature rides on the next part.
            ContentPart::Thinking { signature, .. } => {
                if let Some(signature) = signature {
                    signature_pending = Some(signature.as_str());
                }
            }
            // Refused before encoding (see `wire::encode_request`).
            ContentPart::Opaque { .. } => {}
        }
    }
    Ok(parts)
}

/// A document as inline data, or as text when it is plain text; `None` for a URL, which is
/// refused before encoding (see `wire::encode_request`).
fn encode_document(source: &DocumentSource) -> Option<Value> {
    match source {
        DocumentSource::Base64 { media_type, data } => {
            Some(json!({"inlineData": {"mimeType": media_type, "data": data}}))
        }
        DocumentSource::Text { text } => Some(json!({"text": text})),
        DocumentSource::Url { .. } => None,
    }
}

/// Inline data for base64 images; a URL becomes `fileData`, which Gemini fetches itself
/// (Files API URIs, and public URLs where Gemini supports them).
fn encode_image(source: &ImageSource) -> Value {
    match source {
        ImageSource::Base64 { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        ImageSource::Url { url } => {
            json!({"fileData": {"mimeType": mime_type_of_url(url), "fileUri": url}})
        }
    }
}

/// The image MIME type a URL's extension suggests; JPEG when it says nothing.
fn mime_type_of_url(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        _ => "image/jpeg",
    }
}

fn encode_tool(tool: &Tool) -> Value {
    let mut declaration = Map::new();
    declaration.insert("name".into(), Value::from(tool.name.as_str()));
    if let Some(description) = &tool.description {
        declaration.insert("description".into(), Value::from(description.as_str()));
    }
    declaration.insert("parametersJsonSchema".into(), tool.parameters.clone());
    Value::Object(declaration)
}

fn encode_generation_config(request: &ChatRequest) -> Map<String, Value> {
    let mut config = Map::new();
    if let Some(max_tokens) = request.max_tokens {
        config.insert("maxOutputTokens".into(), Value::from(max_tokens));
    }
    let numbers = [
        ("temperature", request.temperature),
        ("topP", request.top_p),
        ("presencePenalty", request.presence_penalty),
        ("frequencyPenalty", request.frequency_penalty),
    ];
    for (key, number) in numbers {
        if let Some(number) = number {
            config.insert(key.into(), Value::from(number));
        }
    }
    if let Some(top_k) = request.top_k {
        config.insert("topK".into(), Value::from(top_k));
    }
    if let Some(seed) = request.seed {
        config.insert("seed".into(), Value::from(seed));
    }
    if !request.stop.is_empty() {
        config.insert("stopSequences".into(), Value::from(request.stop.clone()));
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".into(), Value::from("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            config.insert("responseMimeType".into(), Value::from("application/json"));
            config.insert("responseJsonSchema".into(), schema.clone());
        }
    }
    if let Some(reasoning) = &request.reasoning {
        config.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": thinking_budget(reasoning), "includeThoughts": true}),
        );
    }
    config
}

/// A thinking budget from the request's budget or effort.
fn thinking_budget(reasoning: &Reasoning) -> u32 {
    if let Some(budget) = reasoning.budget_tokens {
        return budget;
    }
    match reasoning.effort.as_deref() {
        Some("minimal") | Some("low") => 1024,
        Some("high") => 24_576,
        _ => 8192,
    }
}
