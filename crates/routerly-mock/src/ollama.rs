//! The Ollama mock: routing, validation, the conversation view, the answer, the NDJSON stream.
//!
//! Ollama streams unless `stream` is `false`, one JSON object per line. Its Go server decodes
//! the body into typed structs, so a type mismatch is a 400 with Go's message (tool `arguments`
//! must be an object, `images` must be base64), unknown fields are ignored, a model that is not
//! pulled is a 404, and `think` or `tools` on a model without that capability is a 400.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use crate::common::{
    Answer, Conversation, Directives, ToolChoice, ToolSpec, decide, json_bytes, output_tokens,
    tokens_for_bytes, truncate_words, word_fragments,
};
use crate::{ApiError, MockKind, MockState, event_body, json_response, ndjson_response};

const KIND: MockKind = MockKind::Ollama;

/// Models of the mock that can think (`think: true`).
const THINKING_MODELS: &[&str] = &["qwen3", "gpt-oss", "deepseek-r1", "magistral"];
/// Models of the mock that cannot call tools.
const NO_TOOL_MODELS: &[&str] = &["gemma3"];

/// Routes an Ollama API request.
pub(crate) async fn handle(
    state: &MockState,
    method: &Method,
    path: &str,
    body: Option<&Value>,
) -> Response {
    match (method, path) {
        (&Method::POST, "/api/chat") => chat(state, body).await,
        (&Method::POST, "/api/embed") => embed(state, body),
        (&Method::GET, "/api/tags") => {
            let models: Vec<Value> = state
                .models
                .iter()
                .map(|name| {
                    let tagged = tagged(name);
                    json!({"name": tagged, "model": tagged, "modified_at": "2025-01-01T00:00:00Z", "size": 0, "digest": "mock"})
                })
                .collect();
            json_response(StatusCode::OK, &json!({"models": models}))
        }
        (&Method::GET, "/api/version") => {
            json_response(StatusCode::OK, &json!({"version": "0.12.0"}))
        }
        _ => ApiError::new(404, "404 page not found").into_response(KIND),
    }
}

/// `name` with the `:latest` tag Ollama adds when none is given.
fn tagged(name: &str) -> String {
    if name.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

fn base_name(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// `POST /api/embed`: the OpenAI mock's word-hash vectors, `dimensions` long (64 by default),
/// for a pulled model or any model named `…embed…`; tokens in `prompt_eval_count`.
fn embed(state: &MockState, body: Option<&Value>) -> Response {
    if let Some(status) = state.take_failure() {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    let Some(body) = body.filter(|body| body.is_object()) else {
        return ApiError::invalid("missing request body").into_response(KIND);
    };
    let model = match body.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.as_str(),
        _ => return ApiError::invalid("model is required").into_response(KIND),
    };
    let pulled = state
        .models
        .iter()
        .any(|known| tagged(known) == tagged(model));
    if !pulled && !model.contains("embed") {
        return ApiError::new(
            404,
            format!("model \"{model}\" not found, try pulling it first"),
        )
        .into_response(KIND);
    }
    let texts: Vec<&str> = match body.get("input") {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect()
        }
        _ => return ApiError::invalid("invalid input type").into_response(KIND),
    };
    if texts.is_empty() || texts.iter().any(|text| text.is_empty()) {
        return ApiError::invalid("input cannot be empty").into_response(KIND);
    }
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => 64,
        Some(value) => match value.as_u64().filter(|d| (1..=4096).contains(d)) {
            Some(dimensions) => dimensions as usize,
            None => {
                return ApiError::invalid(format!("invalid dimensions: {value}"))
                    .into_response(KIND);
            }
        },
    };
    let embeddings: Vec<Vec<f32>> = texts
        .iter()
        .map(|text| crate::openai::embed(text, dimensions))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "model": tagged(model),
            "embeddings": embeddings,
            "total_duration": 14_143_917,
            "load_duration": 1_019_500,
            "prompt_eval_count": tokens_for_bytes(texts.iter().map(|text| text.len()).sum()),
        }),
    )
}

async fn chat(state: &MockState, body: Option<&Value>) -> Response {
    if let Some(status) = state.take_failure() {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    let Some(body) = body.filter(|body| body.is_object()) else {
        return ApiError::invalid("missing request body").into_response(KIND);
    };
    let model = match body.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.as_str(),
        _ => return ApiError::invalid("model is required").into_response(KIND),
    };
    if !state
        .models
        .iter()
        .any(|known| tagged(known) == tagged(model))
    {
        return ApiError::new(404, format!("model '{model}' not found")).into_response(KIND);
    }
    if let Err(error) = validate(body, model) {
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
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(true);
    if directives.garbage {
        return garbage(stream);
    }
    let max_tokens = body
        .pointer("/options/num_predict")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let thinking = body
        .get("think")
        .is_some_and(|think| think != &Value::Bool(false));
    let answer = decide(&conversation);
    let mut reply = Reply {
        model: model.to_owned(),
        prompt_tokens: input_tokens(body),
        output_tokens: output_tokens(&answer),
        thinking: thinking.then(|| "Mock thinking.".to_owned()),
        done_reason: "stop",
        text: String::new(),
        calls: Vec::new(),
    };
    match answer {
        Answer::Text(text) => match truncate_words(&text, max_tokens) {
            Some(truncated) => {
                reply.done_reason = "length";
                reply.output_tokens = max_tokens;
                reply.text = truncated;
            }
            None => reply.text = text,
        },
        Answer::ToolCalls(calls) => {
            reply.calls = calls
                .into_iter()
                .enumerate()
                .map(|(index, call)| json!({"function": {"index": index, "name": call.name, "arguments": call.arguments}}))
                .collect();
        }
    }
    if stream {
        ndjson_response(event_body(
            reply.lines(),
            directives.chunk_delay_ms,
            directives.die_after,
        ))
    } else {
        json_response(StatusCode::OK, &reply.final_object(true))
    }
}

fn garbage(stream: bool) -> Response {
    if stream {
        let lines = vec![
            Bytes::from_static(b"{\"model\":\"x\",\"message\":{\"content\n"),
            Bytes::from_static(b"<<not json>>\n"),
        ];
        ndjson_response(event_body(lines, 0, None))
    } else {
        let mut response = json_response(StatusCode::OK, &Value::Null);
        *response.body_mut() =
            axum::body::Body::from("<html><body>502 upstream garbage</body></html>");
        response
    }
}

// ---- validation -------------------------------------------------------------------------

fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn unmarshal_error(value: &Value, field: &str, go_type_name: &str) -> ApiError {
    ApiError::invalid(format!(
        "json: cannot unmarshal {} into Go struct field {field} of type {go_type_name}",
        go_type(value)
    ))
}

/// Rejects what Ollama's server rejects, with its messages.
fn validate(body: &Value, model: &str) -> Result<(), ApiError> {
    let messages = match body.get("messages") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(messages)) => messages.as_slice(),
        Some(other) => {
            return Err(unmarshal_error(
                other,
                "ChatRequest.messages",
                "[]api.Message",
            ));
        }
    };
    for message in messages {
        if !message.is_object() {
            return Err(unmarshal_error(
                message,
                "ChatRequest.messages",
                "api.Message",
            ));
        }
        for (key, go_type_name) in [
            ("role", "string"),
            ("content", "string"),
            ("thinking", "string"),
            ("tool_name", "string"),
        ] {
            if let Some(value) = message.get(key)
                && !value.is_string()
                && !value.is_null()
            {
                return Err(unmarshal_error(
                    value,
                    &format!("Message.messages.{key}"),
                    go_type_name,
                ));
            }
        }
        if let Some(images) = message.get("images").filter(|images| !images.is_null()) {
            let Some(images) = images.as_array() else {
                return Err(unmarshal_error(
                    images,
                    "Message.messages.images",
                    "[]api.ImageData",
                ));
            };
            for image in images {
                let Some(data) = image.as_str() else {
                    return Err(unmarshal_error(
                        image,
                        "Message.messages.images",
                        "api.ImageData",
                    ));
                };
                if let Err(error) = base64::engine::general_purpose::STANDARD.decode(data) {
                    let at = match error {
                        base64::DecodeError::InvalidByte(offset, _) => offset,
                        _ => data.len(),
                    };
                    return Err(ApiError::invalid(format!(
                        "illegal base64 data at input byte {at}"
                    )));
                }
            }
        }
        for call in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(arguments) = call.pointer("/function/arguments")
                && !arguments.is_object()
                && !arguments.is_null()
            {
                return Err(unmarshal_error(
                    arguments,
                    "ToolCall.messages.tool_calls.function.arguments",
                    "api.ToolCallFunctionArguments",
                ));
            }
        }
    }
    if let Some(stream) = body.get("stream")
        && !stream.is_boolean()
        && !stream.is_null()
    {
        return Err(unmarshal_error(stream, "ChatRequest.stream", "bool"));
    }
    if let Some(options) = body.get("options")
        && !options.is_object()
        && !options.is_null()
    {
        return Err(unmarshal_error(
            options,
            "ChatRequest.options",
            "map[string]interface {}",
        ));
    }
    match body.get("format") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(Value::String(format)) if format == "json" || format.is_empty() => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid format: expected \"json\" or a valid JSON schema",
            ));
        }
    }
    let thinks = match body.get("think") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(Value::String(level)) if ["high", "medium", "low"].contains(&level.as_str()) => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "invalid think value: {other} (must be \"high\", \"medium\", \"low\", true, or false)"
            )));
        }
    };
    if thinks && !THINKING_MODELS.contains(&base_name(model)) {
        return Err(ApiError::invalid(format!(
            "\"{model}\" does not support thinking"
        )));
    }
    let has_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| !tools.is_empty());
    if has_tools && NO_TOOL_MODELS.contains(&base_name(model)) {
        return Err(ApiError::invalid(format!(
            "registry.ollama.ai/library/{} does not support tools",
            tagged(model)
        )));
    }
    Ok(())
}

// ---- the conversation view and the token rule ----------------------------------------------

fn messages(body: &Value) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn role_of(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

fn text_of(message: &Value) -> &str {
    message.get("content").and_then(Value::as_str).unwrap_or("")
}

/// Prompt tokens by the crate's token rule.
fn input_tokens(body: &Value) -> u64 {
    let mut bytes: usize = messages(body)
        .iter()
        .map(|message| {
            let calls: usize = message
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|call| call.pointer("/function/arguments"))
                .map(json_bytes)
                .sum();
            text_of(message).len() + calls
        })
        .sum();
    // The SDK sends `"tools": []` when there are none; an empty list counts nothing.
    if let Some(tools) = body
        .get("tools")
        .filter(|tools| tools.as_array().is_some_and(|tools| !tools.is_empty()))
    {
        bytes += json_bytes(tools);
    }
    tokens_for_bytes(bytes)
}

fn conversation<'a>(body: &'a Value, model: &'a str) -> Conversation<'a> {
    let messages = messages(body);
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
    let messages = crate::openai::without_trailing_instructions(messages);
    let last_role = messages.last().map_or("", role_of);
    let tool_results = (last_role == "tool").then(|| {
        let trailing = messages
            .iter()
            .rev()
            .take_while(|message| role_of(message) == "tool")
            .count();
        messages[messages.len() - trailing..]
            .iter()
            .map(|message| text_of(message).to_owned())
            .collect::<Vec<_>>()
    });
    let last_user = messages
        .iter()
        .rev()
        .find(|message| role_of(message) == "user");
    let user_text = last_user.map(text_of).unwrap_or("").to_owned();
    let images = last_user
        .and_then(|message| message.get("images"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let directives = match &tool_results {
        Some(results) => Directives::parse(&results.join(" ")),
        None => Directives::parse(&user_text),
    };
    let json_output = matches!(body.get("format"), Some(Value::Object(_)))
        || body.get("format").and_then(Value::as_str) == Some("json");
    Conversation {
        provider: KIND.name(),
        model,
        tools,
        tool_choice: ToolChoice::Auto,
        last_is_plain_user: last_role == "user",
        tool_results,
        user_text,
        images,
        json_output,
        directives,
    }
}

// ---- the answer and its stream -------------------------------------------------------------

struct Reply {
    model: String,
    prompt_tokens: u64,
    output_tokens: u64,
    thinking: Option<String>,
    done_reason: &'static str,
    text: String,
    calls: Vec<Value>,
}

const CREATED_AT: &str = "2025-01-01T00:00:00.000000Z";

impl Reply {
    fn thinking_tokens(&self) -> u64 {
        self.thinking
            .as_deref()
            .map_or(0, |thinking| thinking.split_whitespace().count() as u64)
    }

    /// The last object: the whole message when not streaming (`whole`), else an empty one.
    fn final_object(&self, whole: bool) -> Value {
        let mut message =
            json!({"role": "assistant", "content": if whole { self.text.as_str() } else { "" }});
        if whole {
            if let Some(thinking) = &self.thinking {
                message["thinking"] = Value::from(thinking.as_str());
            }
            if !self.calls.is_empty() {
                message["tool_calls"] = Value::Array(self.calls.clone());
            }
        }
        json!({
            "model": self.model,
            "created_at": CREATED_AT,
            "message": message,
            "done_reason": self.done_reason,
            "done": true,
            "total_duration": 1_000_000,
            "load_duration": 1000,
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": 1000,
            "eval_count": self.output_tokens + self.thinking_tokens(),
            "eval_duration": 1000,
        })
    }

    fn line(&self, message: Value) -> Bytes {
        let chunk = json!({"model": self.model, "created_at": CREATED_AT, "message": message, "done": false});
        let mut line = serde_json::to_vec(&chunk).expect("a JSON value always serializes");
        line.push(b'\n');
        Bytes::from(line)
    }

    /// Every line of the stream: thinking, a line per word, the calls, then the final object.
    fn lines(&self) -> Vec<Bytes> {
        let mut lines = Vec::new();
        if let Some(thinking) = &self.thinking {
            lines
                .push(self.line(json!({"role": "assistant", "content": "", "thinking": thinking})));
        }
        for fragment in word_fragments(&self.text) {
            lines.push(self.line(json!({"role": "assistant", "content": fragment})));
        }
        if !self.calls.is_empty() {
            lines.push(
                self.line(json!({"role": "assistant", "content": "", "tool_calls": self.calls})),
            );
        }
        let mut last =
            serde_json::to_vec(&self.final_object(false)).expect("a JSON value always serializes");
        last.push(b'\n');
        lines.push(Bytes::from(last));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_rejects(body: Value, model: &str, message_part: &str) {
        let error = validate(&body, model).expect_err("the request should be rejected");
        assert_eq!(error.status, 400, "{error:?}");
        assert!(
            error.message.contains(message_part),
            "{:?} should contain {message_part:?}",
            error.message
        );
    }

    #[test]
    fn validation_rejects_what_ollama_rejects() {
        check_rejects(
            json!({"messages": [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]}),
            "llama3.2",
            "cannot unmarshal string into Go struct field ToolCall.messages.tool_calls.function.arguments",
        );
        check_rejects(
            json!({"messages": [{"role": "user", "content": "x", "images": ["data:image/png;base64,AAAA"]}]}),
            "llama3.2",
            "illegal base64 data",
        );
        check_rejects(
            json!({"messages": [], "think": true}),
            "llama3.2",
            "does not support thinking",
        );
        check_rejects(
            json!({"messages": [], "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "gemma3",
            "does not support tools",
        );
        check_rejects(
            json!({"messages": [{"role": "user", "content": ["x"]}]}),
            "llama3.2",
            "cannot unmarshal array",
        );
    }

    #[test]
    fn validation_accepts_a_tool_round_trip_and_ignores_unknown_fields() {
        let body = json!({"model": "qwen3", "think": true, "keep_alive": "5m", "messages": [
            {"role": "user", "content": "hi", "images": ["iVBORw0KGgo="]},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "Sunny", "tool_name": "f"}]});
        assert_eq!(validate(&body, "qwen3"), Ok(()));
        assert_eq!(
            conversation(&body, "qwen3").tool_results,
            Some(vec!["Sunny".to_owned()])
        );
    }
}
