//! The Gemini mock: routing, validation, the conversation view, the answer, the SSE stream.
//! It serves `/v1beta/…` (what Routerly calls) and `/v1/…` (the SDK's default) alike.
//!
//! Gemini's REST API is protobuf behind JSON: unknown field names are refused (`Unknown name
//! "x": Cannot find field.`), both camelCase and snake_case names are accepted, and the
//! OpenAPI-subset `parameters` / `responseSchema` refuse JSON Schema keywords they do not know
//! (`additionalProperties`, `$schema`), which `parametersJsonSchema` / `responseJsonSchema`
//! accept. Function calls carry no ids; function responses are matched by name and count.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::{Map, Value, json};

use crate::common::{
    Answer, Conversation, Directives, ToolChoice, ToolSpec, cited_text, decide, json_bytes,
    output_tokens, search_page, tokens_for_bytes, truncate_words, word_fragments,
};
use crate::{ApiError, MockKind, MockState, event_body, json_response, sse_response};

const KIND: MockKind = MockKind::Gemini;

/// Routes a Gemini API request (credentials already checked).
pub(crate) async fn handle(
    state: &MockState,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Option<&Value>,
) -> Response {
    // The API serves the same methods under its beta and its GA version.
    let Some(versioned) = path
        .strip_prefix("/v1beta/")
        .or_else(|| path.strip_prefix("/v1/"))
    else {
        return not_found(path);
    };
    if method == Method::GET && versioned == "models" {
        let models: Vec<Value> = state.models.iter().map(|id| model_object(id)).collect();
        return json_response(StatusCode::OK, &json!({"models": models}));
    }
    let Some(rest) = versioned.strip_prefix("models/") else {
        return not_found(path);
    };
    if method == Method::GET {
        return if state.models.iter().any(|id| id == rest) {
            json_response(StatusCode::OK, &model_object(rest))
        } else {
            model_not_found(rest, "get")
        };
    }
    let Some((model, action)) = rest.split_once(':') else {
        return not_found(path);
    };
    let sse = query.unwrap_or("").split('&').any(|pair| pair == "alt=sse");
    match action {
        "generateContent" => generate(state, model, body, None).await,
        "streamGenerateContent" => generate(state, model, body, Some(sse)).await,
        "countTokens" => count_tokens(body),
        "batchEmbedContents" => batch_embed_contents(state, model, body),
        _ => not_found(path),
    }
}

/// `models/{model}:batchEmbedContents`: one deterministic word-hash vector per request (the
/// OpenAI mock's), `outputDimensionality` long (64 by default). Only embedding models
/// (names with `embed`) serve it; each request must name the URL's model; no usage is given.
fn batch_embed_contents(state: &MockState, model: &str, body: Option<&Value>) -> Response {
    if let Some(status) = state.take_failure() {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    if !model.contains("embed") {
        return model_not_found(model, "batchEmbedContents");
    }
    match embed_requests(model, body) {
        Ok(embeddings) => json_response(StatusCode::OK, &json!({ "embeddings": embeddings })),
        Err(error) => error.into_response(KIND),
    }
}

fn embed_requests(model: &str, body: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let Some(body) = body.and_then(Value::as_object) else {
        return Err(invalid("Invalid JSON payload received."));
    };
    check_known(body, &["requests"], "")?;
    let requests = match body.get("requests").and_then(Value::as_array) {
        Some(requests) if !requests.is_empty() => requests,
        _ => {
            return Err(invalid(
                "* BatchEmbedContentsRequest.requests: at least one request is required\n",
            ));
        }
    };
    let mut embeddings = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        let at = format!("requests[{index}]");
        let Some(request) = request.as_object() else {
            return Err(invalid(format!(
                "Invalid JSON payload received. Invalid value at '{at}'"
            )));
        };
        check_known(
            request,
            &[
                "model",
                "content",
                "taskType",
                "title",
                "outputDimensionality",
            ],
            &at,
        )?;
        let named = request.get("model").and_then(Value::as_str).unwrap_or("");
        if named.strip_prefix("models/") != Some(model) {
            return Err(invalid(format!(
                "* BatchEmbedContentsRequest.{at}.model: model `{named}` must be `models/{model}`, the model of the URL\n"
            )));
        }
        let parts = request
            .get("content")
            .and_then(|content| content.get("parts"))
            .and_then(Value::as_array)
            .filter(|parts| !parts.is_empty());
        let Some(parts) = parts else {
            return Err(invalid(format!(
                "* BatchEmbedContentsRequest.{at}.content.parts: contents must not be empty\n"
            )));
        };
        let mut text = String::new();
        for part in parts {
            match part.get("text").and_then(Value::as_str) {
                Some(piece) => text.push_str(piece),
                None => {
                    return Err(invalid(format!(
                        "* BatchEmbedContentsRequest.{at}.content.parts: only text parts can be embedded\n"
                    )));
                }
            }
        }
        if text.is_empty() {
            return Err(invalid(format!(
                "* BatchEmbedContentsRequest.{at}.content: text must not be empty\n"
            )));
        }
        let dimensions = match request.get("outputDimensionality") {
            None => 64,
            Some(value) => match value.as_u64().filter(|d| (1..=3072).contains(d)) {
                Some(dimensions) => dimensions as usize,
                None => {
                    return Err(invalid(format!(
                        "* BatchEmbedContentsRequest.{at}.output_dimensionality: must be between 1 and 3072\n"
                    )));
                }
            },
        };
        embeddings.push(json!({ "values": crate::openai::embed(&text, dimensions) }));
    }
    Ok(embeddings)
}

fn model_object(id: &str) -> Value {
    json!({
        "name": format!("models/{id}"),
        "displayName": id,
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    })
}

fn not_found(path: &str) -> Response {
    ApiError::new(404, format!("Method not found: {path}")).into_response(KIND)
}

fn model_not_found(model: &str, method: &str) -> Response {
    ApiError::new(
        404,
        format!("models/{model} is not found for API version v1beta, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."),
    )
    .into_response(KIND)
}

/// `generateContent` (`stream` is `None`) and `streamGenerateContent` (`Some(sse)`).
async fn generate(
    state: &MockState,
    model: &str,
    body: Option<&Value>,
    stream: Option<bool>,
) -> Response {
    if let Some(status) = state.take_failure() {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    if !state.models.iter().any(|id| id == model) {
        return model_not_found(model, "generateContent");
    }
    let Some(body) = body.filter(|body| body.is_object()) else {
        return ApiError::invalid("Invalid JSON payload received. Unexpected token.")
            .into_response(KIND);
    };
    if let Err(error) = validate(body) {
        return error.into_response(KIND);
    }
    let conversation = conversation(body, model);
    let directives = conversation.directives.clone();
    if directives.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(directives.delay_ms)).await;
    }
    if let Some(status) = directives.status {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    if directives.garbage {
        return garbage(stream.is_some());
    }
    let config = field(body, "generationConfig")
        .cloned()
        .unwrap_or(json!({}));
    let max_tokens = field(&config, "maxOutputTokens")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let thinking = field(&config, "thinkingConfig")
        .and_then(|thinking| field(thinking, "includeThoughts"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let offers_search = (field(body, "tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten())
    .any(|tool| field(tool, "googleSearch").is_some());
    // A search the request allows and the caller asks for: a grounded answer.
    let searched = directives
        .web_search
        .clone()
        .filter(|_| offers_search && conversation.last_is_plain_user);
    let answer = match &searched {
        Some(query) => Answer::Text(grounded_text(query)),
        None => decide(&conversation),
    };
    let mut reply = Reply {
        id: format!("mock-gemini-{}", state.next_response_number()),
        model: model.to_owned(),
        prompt_tokens: input_tokens(body),
        output_tokens: output_tokens(&answer),
        cached_tokens: directives.cached,
        thought: thinking.then(|| "Mock thinking.".to_owned()),
        finish_reason: "STOP",
        text: None,
        calls: Vec::new(),
        searched,
    };
    match answer {
        Answer::Text(text) => match truncate_words(&text, max_tokens) {
            Some(truncated) => {
                reply.finish_reason = "MAX_TOKENS";
                reply.output_tokens = max_tokens;
                reply.text = Some(truncated);
            }
            None => reply.text = Some(text),
        },
        Answer::ToolCalls(calls) => {
            reply.calls = calls
                .into_iter()
                .map(|call| json!({"functionCall": {"name": call.name, "args": call.arguments}}))
                .collect();
        }
    }
    match stream {
        None => json_response(StatusCode::OK, &reply.to_json()),
        Some(true) => sse_response(event_body(
            reply.sse_events(),
            directives.chunk_delay_ms,
            directives.die_after,
        )),
        // Without `alt=sse` Gemini streams one JSON array of the same chunks.
        Some(false) => json_response(StatusCode::OK, &Value::Array(reply.chunks())),
    }
}

fn garbage(stream: bool) -> Response {
    if stream {
        let events = vec![
            Bytes::from_static(b"data: {\"candidates\": [{\"content\n\n"),
            Bytes::from_static(b"data: <<not json>>\n\n"),
        ];
        sse_response(event_body(events, 0, None))
    } else {
        let mut response = json_response(StatusCode::OK, &Value::Null);
        *response.body_mut() =
            axum::body::Body::from("<html><body>502 upstream garbage</body></html>");
        response
    }
}

/// `countTokens`: the token rule over `contents` (or a wrapped `generateContentRequest`).
fn count_tokens(body: Option<&Value>) -> Response {
    let Some(body) = body.filter(|body| body.is_object()) else {
        return ApiError::invalid("Invalid JSON payload received. Unexpected token.")
            .into_response(KIND);
    };
    let request = field(body, "generateContentRequest").unwrap_or(body);
    json_response(
        StatusCode::OK,
        &json!({"totalTokens": input_tokens(request)}),
    )
}

// ---- validation -------------------------------------------------------------------------

/// A field by its camelCase name, also accepted in snake_case as protobuf JSON does.
fn field<'a>(value: &'a Value, camel: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    object
        .get(camel)
        .or_else(|| object.get(&snake_case(camel)))
        .filter(|value| !value.is_null())
}

fn snake_case(camel: &str) -> String {
    let mut snake = String::with_capacity(camel.len() + 4);
    for character in camel.chars() {
        if character.is_ascii_uppercase() {
            snake.push('_');
            snake.push(character.to_ascii_lowercase());
        } else {
            snake.push(character);
        }
    }
    snake
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid(message)
}

/// Refuses field names the message type does not have, in either spelling.
fn check_known(object: &Map<String, Value>, known: &[&str], path: &str) -> Result<(), ApiError> {
    for key in object.keys() {
        if !known
            .iter()
            .any(|name| *name == key || snake_case(name) == *key)
        {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" at '{path}'")
            };
            return Err(invalid(format!(
                "Invalid JSON payload received. Unknown name \"{key}\"{at}: Cannot find field."
            )));
        }
    }
    Ok(())
}

/// The fields of Gemini's `Tool`: function declarations and the built-in tools.
const TOOL_FIELDS: &[&str] = &[
    "functionDeclarations",
    "googleSearchRetrieval",
    "codeExecution",
    "googleSearch",
    "computerUse",
    "urlContext",
    "fileSearch",
    "googleMaps",
];

const REQUEST_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
    "model",
];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "thought",
    "thoughtSignature",
    "executableCode",
    "codeExecutionResult",
    "videoMetadata",
];
const GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "responseModalities",
    "mediaResolution",
];
/// The keywords of Gemini's OpenAPI-subset `Schema` (for `parameters` and `responseSchema`).
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// Rejects what the real `generateContent` rejects, with its messages.
fn validate(body: &Value) -> Result<(), ApiError> {
    let object = body.as_object().expect("checked by the caller");
    check_known(object, REQUEST_FIELDS, "")?;
    let contents = match field(body, "contents") {
        None => {
            return Err(invalid(
                "* GenerateContentRequest.contents: contents is not specified\n",
            ));
        }
        Some(Value::Array(contents)) if contents.is_empty() => {
            return Err(invalid(
                "* GenerateContentRequest.contents: contents is not specified\n",
            ));
        }
        Some(Value::Array(contents)) => contents,
        Some(_) => {
            return Err(invalid(
                "Invalid JSON payload received. Unknown name \"contents\": Proto field is not repeating, cannot start list.",
            ));
        }
    };
    let mut pending_calls = 0usize;
    for (index, content) in contents.iter().enumerate() {
        let path = format!("contents[{index}]");
        let Some(content_object) = content.as_object() else {
            return Err(invalid(format!(
                "Invalid value at '{path}' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)"
            )));
        };
        check_known(content_object, CONTENT_FIELDS, &path)?;
        let role = field(content, "role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        if role != "user" && role != "model" && role != "function" {
            return Err(invalid("Please use a valid role: user, model."));
        }
        let parts = field(content, "parts").and_then(Value::as_array);
        let Some(parts) = parts.filter(|parts| !parts.is_empty()) else {
            return Err(invalid(format!(
                "* GenerateContentRequest.{path}.parts: contents.parts must not be empty.\n"
            )));
        };
        let mut calls = 0;
        let mut responses = 0;
        for (part_index, part) in parts.iter().enumerate() {
            let part_path = format!("{path}.parts[{part_index}]");
            validate_part(part, &part_path)?;
            calls += usize::from(field(part, "functionCall").is_some());
            responses += usize::from(field(part, "functionResponse").is_some());
        }
        if pending_calls > 0 && responses != pending_calls {
            return Err(invalid(
                "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
            ));
        }
        if responses > 0 && pending_calls == 0 {
            return Err(invalid(
                "Please ensure that function response turn comes immediately after a function call turn.",
            ));
        }
        pending_calls = if role == "model" { calls } else { 0 };
    }
    if let Some(system) = field(body, "systemInstruction") {
        let Some(system_object) = system.as_object() else {
            return Err(invalid("Invalid value at 'system_instruction'"));
        };
        check_known(system_object, CONTENT_FIELDS, "system_instruction")?;
        for (part_index, part) in field(system, "parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            validate_part(part, &format!("system_instruction.parts[{part_index}]"))?;
        }
    }
    let mut function_names = Vec::new();
    if let Some(tools) = field(body, "tools") {
        let Some(tools) = tools.as_array() else {
            return Err(invalid(
                "Invalid JSON payload received. Unknown name \"tools\": Proto field is not repeating, cannot start list.",
            ));
        };
        for (tool_index, tool) in tools.iter().enumerate() {
            let Some(tool_map) = tool.as_object() else {
                return Err(invalid(format!(
                    "Invalid value at 'tools[{tool_index}]' (type.googleapis.com/google.ai.generativelanguage.v1beta.Tool)"
                )));
            };
            check_known(tool_map, TOOL_FIELDS, &format!("tools[{tool_index}]"))?;
            for (declaration_index, declaration) in field(tool, "functionDeclarations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let path =
                    format!("tools[{tool_index}].function_declarations[{declaration_index}]");
                let name = field(declaration, "name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !valid_function_name(name) {
                    return Err(invalid(format!(
                        "* GenerateContentRequest.{path}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.\n"
                    )));
                }
                if field(declaration, "parameters").is_some()
                    && field(declaration, "parametersJsonSchema").is_some()
                {
                    return Err(invalid(format!(
                        "* GenerateContentRequest.{path}: parameters and parameters_json_schema cannot be set at the same time.\n"
                    )));
                }
                if let Some(parameters) = field(declaration, "parameters") {
                    validate_schema(parameters, &format!("{path}.parameters"))?;
                }
                function_names.push(name);
            }
        }
    }
    if let Some(tool_config) = field(body, "toolConfig")
        && let Some(calling) = field(tool_config, "functionCallingConfig")
    {
        let mode = field(calling, "mode")
            .and_then(Value::as_str)
            .unwrap_or("AUTO");
        if !["AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"].contains(&mode) {
            return Err(invalid(format!(
                "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"{mode}\""
            )));
        }
        if let Some(allowed) = field(calling, "allowedFunctionNames").and_then(Value::as_array) {
            if mode != "ANY" && !allowed.is_empty() {
                return Err(invalid(
                    "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names should only be set when the Mode is ANY.\n",
                ));
            }
            for name in allowed.iter().filter_map(Value::as_str) {
                if !function_names.contains(&name) {
                    return Err(invalid(format!(
                        "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names contains function name '{name}' that is not declared in the tools.\n"
                    )));
                }
            }
        }
    }
    if let Some(config) = field(body, "generationConfig") {
        let Some(config_object) = config.as_object() else {
            return Err(invalid("Invalid value at 'generation_config'"));
        };
        check_known(config_object, GENERATION_FIELDS, "generation_config")?;
        for (name, max) in [("temperature", 2.0), ("topP", 1.0)] {
            if let Some(value) = field(config, name).and_then(Value::as_f64)
                && !(0.0..=max).contains(&value)
            {
                return Err(invalid(format!(
                    "* GenerateContentRequest.generation_config.{}: {name} must be in the range [0.0, {max:.1}].\n",
                    snake_case(name)
                )));
            }
        }
        let mime = field(config, "responseMimeType").and_then(Value::as_str);
        if let Some(mime) = mime
            && !["text/plain", "application/json", "text/x.enum"].contains(&mime)
        {
            return Err(invalid(format!(
                "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, and `text/x.enum`, but got {mime}.\n"
            )));
        }
        let has_schema = field(config, "responseSchema").is_some()
            || field(config, "responseJsonSchema").is_some();
        if has_schema && mime != Some("application/json") && mime != Some("text/x.enum") {
            return Err(invalid(
                "* GenerateContentRequest.generation_config.response_mime_type: When response_schema is set, response_mime_type must be set to application/json or text/x.enum.\n",
            ));
        }
        if let Some(schema) = field(config, "responseSchema") {
            validate_schema(schema, "generation_config.response_schema")?;
        }
    }
    Ok(())
}

fn valid_function_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(first) if first.is_ascii_alphabetic() || first == b'_')
        && name.len() <= 64
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || b"_.:-".contains(&byte))
}

/// The OpenAPI-subset schema refuses keywords it does not have, at any depth.
fn validate_schema(schema: &Value, path: &str) -> Result<(), ApiError> {
    let Some(object) = schema.as_object() else {
        return Err(invalid(format!("Invalid value at '{path}'")));
    };
    check_known(object, SCHEMA_FIELDS, path)?;
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            validate_schema(property, &format!("{path}.properties[{name}].value"))?;
        }
    }
    if let Some(items) = object.get("items") {
        validate_schema(items, &format!("{path}.items"))?;
    }
    for (index, option) in object
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        validate_schema(option, &format!("{path}.any_of[{index}]"))?;
    }
    Ok(())
}

fn is_base64(text: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .is_ok()
        || base64::engine::general_purpose::URL_SAFE
            .decode(text)
            .is_ok()
        || base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .is_ok()
}

fn validate_part(part: &Value, path: &str) -> Result<(), ApiError> {
    let Some(object) = part.as_object() else {
        return Err(invalid(format!(
            "Invalid value at '{path}' (type.googleapis.com/google.ai.generativelanguage.v1beta.Part)"
        )));
    };
    check_known(object, PART_FIELDS, path)?;
    let data_fields = [
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
    ];
    let data_count = data_fields
        .iter()
        .filter(|name| field(part, name).is_some())
        .count();
    if data_count == 0 {
        return Err(invalid(format!(
            "* GenerateContentRequest.{path}.data: required oneof field 'data' must have one initialized field\n"
        )));
    }
    if data_count > 1 {
        return Err(invalid(format!(
            "Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{path}'"
        )));
    }
    if let Some(signature) = field(part, "thoughtSignature") {
        let valid = signature.as_str().is_some_and(is_base64);
        if !valid {
            return Err(invalid(format!(
                "Invalid value at '{path}.thought_signature' (TYPE_BYTES), Base64 decoding failed for \"{}\"",
                signature.as_str().unwrap_or("")
            )));
        }
    }
    if let Some(inline) = field(part, "inlineData") {
        let data = field(inline, "data").and_then(Value::as_str).unwrap_or("");
        if field(inline, "mimeType").is_none() {
            return Err(invalid(format!(
                "* GenerateContentRequest.{path}.inline_data.mime_type: inline_data.mime_type must be set\n"
            )));
        }
        let mime_type = field(inline, "mimeType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let supported = ["image/", "audio/", "video/", "text/"]
            .iter()
            .any(|prefix| mime_type.starts_with(prefix))
            || mime_type == "application/pdf";
        if !supported {
            return Err(invalid(format!("Unsupported MIME type: {mime_type}")));
        }
        if !is_base64(data) {
            return Err(invalid(format!(
                "Invalid value at '{path}.inline_data.data' (TYPE_BYTES), Base64 decoding failed for \"{}\"",
                data.chars().take(40).collect::<String>()
            )));
        }
    }
    if let Some(file) = field(part, "fileData")
        && field(file, "fileUri").and_then(Value::as_str).is_none()
    {
        return Err(invalid(format!(
            "* GenerateContentRequest.{path}.file_data.file_uri: file_uri must be set\n"
        )));
    }
    if let Some(call) = field(part, "functionCall") {
        if field(call, "name").and_then(Value::as_str).is_none() {
            return Err(invalid(format!(
                "* GenerateContentRequest.{path}.function_call.name: Name cannot be empty.\n"
            )));
        }
        if let Some(args) = field(call, "args")
            && !args.is_object()
        {
            return Err(invalid(format!(
                "Invalid value at '{path}.function_call.args' (type.googleapis.com/google.protobuf.Struct), {args}"
            )));
        }
    }
    if let Some(response) = field(part, "functionResponse") {
        if field(response, "name").and_then(Value::as_str).is_none() {
            return Err(invalid(format!(
                "* GenerateContentRequest.{path}.function_response.name: Name cannot be empty.\n"
            )));
        }
        if let Some(result) = field(response, "response")
            && !result.is_object()
        {
            return Err(invalid(format!(
                "Invalid value at '{path}.function_response.response' (type.googleapis.com/google.protobuf.Struct), {result}"
            )));
        }
    }
    Ok(())
}

// ---- the conversation view and the token rule ----------------------------------------------

fn contents(body: &Value) -> &[Value] {
    field(body, "contents")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn parts(content: &Value) -> &[Value] {
    field(content, "parts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The text a function response stands for: a lone `result`, `output`, `content` or `error`
/// string, else its compact JSON.
fn response_text(response: &Value) -> String {
    if let Some(object) = response.as_object()
        && object.len() == 1
        && let Some(Value::String(text)) = ["result", "output", "content", "error"]
            .iter()
            .find_map(|key| object.get(*key))
    {
        return text.clone();
    }
    response.to_string()
}

fn content_bytes(content: &Value) -> usize {
    parts(content)
        .iter()
        .map(|part| {
            if field(part, "thought").and_then(Value::as_bool) == Some(true) {
                return 0;
            }
            let text = field(part, "text")
                .and_then(Value::as_str)
                .map_or(0, str::len);
            let call = field(part, "functionCall")
                .and_then(|call| field(call, "args"))
                .map_or(0, json_bytes);
            let response = field(part, "functionResponse")
                .and_then(|response| field(response, "response"))
                .map_or(0, json_bytes);
            text + call + response
        })
        .sum()
}

/// Prompt tokens by the crate's token rule.
fn input_tokens(body: &Value) -> u64 {
    let mut bytes: usize = contents(body).iter().map(content_bytes).sum();
    if let Some(system) = field(body, "systemInstruction") {
        bytes += content_bytes(system);
    }
    if let Some(tools) = field(body, "tools") {
        bytes += json_bytes(tools);
    }
    tokens_for_bytes(bytes)
}

fn conversation<'a>(body: &'a Value, model: &'a str) -> Conversation<'a> {
    let contents = contents(body);
    let tools = field(body, "tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| field(tool, "functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|declaration| {
            Some(ToolSpec {
                name: field(declaration, "name")?.as_str()?,
                schema: field(declaration, "parametersJsonSchema")
                    .or_else(|| field(declaration, "parameters")),
                namespace: None,
            })
        })
        .collect();
    let calling =
        field(body, "toolConfig").and_then(|config| field(config, "functionCallingConfig"));
    let mode = calling
        .and_then(|calling| field(calling, "mode"))
        .and_then(Value::as_str)
        .unwrap_or("AUTO");
    let allowed: Vec<&str> = calling
        .and_then(|calling| field(calling, "allowedFunctionNames"))
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let tool_choice = match mode {
        "NONE" => ToolChoice::None,
        "ANY" if allowed.len() == 1 => ToolChoice::Named(allowed[0]),
        _ => ToolChoice::Auto,
    };
    // The caller's turn is the trailing run of user contents: Gemini reads consecutive user
    // contents as one turn (a client's trailing instruction arrives as one of them).
    let is_model =
        |content: &Value| field(content, "role").and_then(Value::as_str) == Some("model");
    let turn_start = contents
        .iter()
        .rposition(is_model)
        .map_or(0, |index| index + 1);
    let turn = &contents[turn_start..];
    let last_is_user = !turn.is_empty();
    let responses: Vec<String> = turn
        .iter()
        .flat_map(parts)
        .filter_map(|part| field(part, "functionResponse"))
        .map(|response| response_text(field(response, "response").unwrap_or(&Value::Null)))
        .collect();
    let tool_results = (!responses.is_empty()).then_some(responses);
    let has_text = |content: &&Value| {
        parts(content)
            .iter()
            .any(|part| field(part, "text").is_some())
    };
    let user_contents: Vec<&Value> = if turn.iter().any(|content| has_text(&content)) {
        turn.iter().collect()
    } else {
        contents
            .iter()
            .rev()
            .find(|content| !is_model(content) && has_text(content))
            .into_iter()
            .collect()
    };
    let user_parts: Vec<&Value> = user_contents.into_iter().flat_map(parts).collect();
    let user_text = user_parts
        .iter()
        .filter_map(|part| field(part, "text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let images = user_parts
        .iter()
        .filter(|part| field(part, "inlineData").is_some() || field(part, "fileData").is_some())
        .count();
    let directives = match &tool_results {
        Some(results) => Directives::parse(&results.join(" ")),
        None => Directives::parse(&user_text),
    };
    let json_output = field(body, "generationConfig")
        .and_then(|config| field(config, "responseMimeType"))
        .and_then(Value::as_str)
        == Some("application/json");
    Conversation {
        provider: KIND.name(),
        model,
        tools,
        tool_choice,
        last_is_plain_user: last_is_user && tool_results.is_none(),
        tool_results,
        user_text,
        images,
        json_output,
        directives,
    }
}

// ---- the answer and its stream -------------------------------------------------------------

struct Reply {
    id: String,
    model: String,
    prompt_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
    thought: Option<String>,
    finish_reason: &'static str,
    text: Option<String>,
    calls: Vec<Value>,
    /// The query of a Google Search grounding the answer; its metadata goes with the
    /// finishing chunk.
    searched: Option<String>,
}

/// The grounded answer to `query`: text with multi-byte characters before the span that
/// cites the page, so a reader that takes Gemini's byte offsets for characters is caught.
fn grounded_text(query: &str) -> String {
    format!("Searched: café — 東京. {}", cited_text(query))
}

/// Gemini's `groundingMetadata` for `query`: the search, its page, and the support of the
/// cited span in UTF-8 bytes of the answer's text (offsets into the whole text, the part
/// being the only text part).
fn grounding_metadata(query: &str, text: &str) -> Value {
    let (uri, title) = search_page(query);
    let cited = cited_text(query);
    let end = text.len();
    let start = end - cited.len();
    json!({
        "webSearchQueries": [query],
        "searchEntryPoint": {"renderedContent": "<div class=\"mock-search\"></div>"},
        "groundingChunks": [{"web": {"uri": uri, "title": title}}],
        "groundingSupports": [{
            "segment": {"startIndex": start, "endIndex": end, "text": cited},
            "groundingChunkIndices": [0],
            "confidenceScores": [0.97]
        }]
    })
}

impl Reply {
    fn thought_tokens(&self) -> u64 {
        self.thought
            .as_deref()
            .map_or(0, |thought| thought.split_whitespace().count() as u64)
    }

    fn usage(&self) -> Value {
        let mut usage = json!({
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": self.output_tokens,
            "totalTokenCount": self.prompt_tokens + self.output_tokens + self.thought_tokens(),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
        });
        if self.cached_tokens > 0 {
            usage["cachedContentTokenCount"] = Value::from(self.cached_tokens);
        }
        if self.thought.is_some() {
            usage["thoughtsTokenCount"] = Value::from(self.thought_tokens());
        }
        usage
    }

    fn chunk(&self, parts: Vec<Value>, finish: bool) -> Value {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        let usage = if finish {
            candidate["finishReason"] = Value::from(self.finish_reason);
            // A grounded answer cut by `maxOutputTokens` no longer holds the cited span.
            if let (Some(query), Some(text)) = (&self.searched, &self.text)
                && text.ends_with(&cited_text(query))
            {
                candidate["groundingMetadata"] = grounding_metadata(query, text);
            }
            self.usage()
        } else {
            json!({"promptTokenCount": self.prompt_tokens, "totalTokenCount": self.prompt_tokens})
        };
        json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.model,
            "responseId": self.id,
        })
    }

    fn all_parts(&self) -> Vec<Value> {
        let mut parts = Vec::new();
        if let Some(thought) = &self.thought {
            parts.push(json!({"text": thought, "thought": true}));
        }
        if let Some(text) = &self.text {
            parts.push(json!({"text": text}));
        }
        parts.extend(self.calls.iter().cloned());
        parts
    }

    fn to_json(&self) -> Value {
        self.chunk(self.all_parts(), true)
    }

    /// The stream's chunks: the thought, a chunk per word, the calls, and the finish on the last.
    fn chunks(&self) -> Vec<Value> {
        let mut pieces: Vec<Vec<Value>> = Vec::new();
        if let Some(thought) = &self.thought {
            pieces.push(vec![json!({"text": thought, "thought": true})]);
        }
        if let Some(text) = &self.text {
            pieces.extend(
                word_fragments(text)
                    .into_iter()
                    .map(|fragment| vec![json!({"text": fragment})]),
            );
        }
        if !self.calls.is_empty() {
            pieces.push(self.calls.clone());
        }
        if pieces.is_empty() {
            pieces.push(vec![json!({"text": ""})]);
        }
        let last = pieces.len() - 1;
        pieces
            .into_iter()
            .enumerate()
            .map(|(index, parts)| self.chunk(parts, index == last))
            .collect()
    }

    fn sse_events(&self) -> Vec<Bytes> {
        self.chunks()
            .iter()
            .map(|chunk| {
                let mut event = b"data: ".to_vec();
                serde_json::to_writer(&mut event, chunk).expect("a JSON value always serializes");
                event.extend_from_slice(b"\r\n\r\n");
                Bytes::from(event)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_rejects(body: Value, message_part: &str) {
        let error = validate(&body).expect_err("the request should be rejected");
        assert_eq!(error.status, 400, "{error:?}");
        assert!(
            error.message.contains(message_part),
            "{:?} should contain {message_part:?}",
            error.message
        );
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "parts": [{"text": text}]})
    }

    #[test]
    fn google_search_is_a_tool_and_unknown_tool_fields_are_refused() {
        let with = |tool: Value| json!({"contents": [user("hi")], "tools": [tool]});
        assert_eq!(validate(&with(json!({"googleSearch": {}}))), Ok(()));
        assert_eq!(validate(&with(json!({"google_search": {}}))), Ok(()));
        check_rejects(
            with(json!({"webSearch": {}})),
            "Unknown name \"webSearch\" at 'tools[0]'",
        );
    }

    #[test]
    fn inline_documents_of_supported_types_are_accepted() {
        let with = |mime_type: &str| json!({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": mime_type, "data": "JVBERi0="}}]}]});
        for mime_type in ["application/pdf", "text/plain", "image/png"] {
            assert_eq!(validate(&with(mime_type)), Ok(()), "{mime_type}");
        }
        check_rejects(
            with("application/zip"),
            "Unsupported MIME type: application/zip",
        );
    }

    #[test]
    fn validation_rejects_what_gemini_rejects() {
        check_rejects(json!({}), "contents is not specified");
        check_rejects(
            json!({"contents": [user("hi")], "messages": []}),
            "Unknown name \"messages\"",
        );
        check_rejects(
            json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
            "valid role",
        );
        check_rejects(
            json!({"contents": [{"role": "user", "parts": []}]}),
            "must not be empty",
        );
        check_rejects(
            json!({"contents": [{"role": "user", "parts": [{}]}]}),
            "required oneof field 'data'",
        );
        check_rejects(
            json!({"contents": [user("hi"), {"role": "model", "parts": [{"functionCall": {"name": "f", "args": "{}"}}]}, {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}),
            "google.protobuf.Struct",
        );
        check_rejects(
            json!({"contents": [user("hi"), {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}, {"functionCall": {"name": "g", "args": {}}}]}, {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}),
            "number of function response parts",
        );
        check_rejects(
            json!({"contents": [user("hi")], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "additionalProperties": false}}]}]}),
            "Unknown name \"additionalProperties\"",
        );
        check_rejects(
            json!({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "data:image/png;base64,AAAA"}}]}]}),
            "Base64 decoding failed",
        );
        check_rejects(
            json!({"contents": [user("hi")], "generationConfig": {"responseJsonSchema": {"type": "object"}}}),
            "response_mime_type must be set",
        );
        check_rejects(
            json!({"contents": [user("hi")], "generationConfig": {"temperature": 3}}),
            "temperature must be in the range",
        );
    }

    #[test]
    fn validation_accepts_a_json_schema_tool_round_trip_in_snake_case_too() {
        let body = json!({"contents": [user("hi"),
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "skip_thought_signature_validator"}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "Sunny"}}}]}],
            "system_instruction": {"parts": [{"text": "Be brief."}]},
            "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {"type": "object", "additionalProperties": false}}]}],
            "generationConfig": {"maxOutputTokens": 10, "responseMimeType": "application/json", "responseJsonSchema": {"$schema": "x"}}});
        assert_eq!(validate(&body), Ok(()));
        let conversation = conversation(&body, "gemini-2.5-flash");
        assert_eq!(conversation.tool_results, Some(vec!["Sunny".to_owned()]));
        assert!(!conversation.last_is_plain_user);
    }
}
