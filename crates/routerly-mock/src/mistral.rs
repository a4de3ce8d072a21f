//! The Mistral mock: routing, validation, the conversation view, the completion, the stream.
//!
//! Mistral's API is OpenAI-shaped but strict: a field it does not know is a 422 in pydantic's
//! `extra_forbidden` shape, tool-call ids must be 9 letters and digits (400, code 3280), every
//! tool call needs its answer (400, code 3230), the conversation must end with a user or tool
//! message, and `tool_choice` takes `any` where OpenAI says `required`. Usage always comes on
//! the last chunk of a stream (there is no `stream_options`).

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::common::{
    Answer, decide, json_bytes, output_tokens, tokens_for_bytes, truncate_words, unix_seconds,
    word_fragments,
};
use crate::openai::{content_text, conversation};
use crate::{ApiError, MockKind, MockState, event_body, json_response, sse_response};

const KIND: MockKind = MockKind::Mistral;

/// The fields of Mistral's `ChatCompletionRequest`, as its official SDK lists them.
const REQUEST_FIELDS: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "metadata",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "min_tokens",
    "repetition_penalty",
    "top_k",
    "logprobs",
    "top_logprobs",
    "prompt_logprobs",
    "top_prompt_logprobs",
    "n",
    "prediction",
    "parallel_tool_calls",
    "reasoning_effort",
    "prompt_mode",
    "guardrails",
    "prompt_cache_key",
    "service_tier",
    "safe_prompt",
];

/// Routes a Mistral API request.
pub(crate) async fn handle(
    state: &MockState,
    method: &Method,
    path: &str,
    body: Option<&Value>,
) -> Response {
    match (method, path) {
        (&Method::POST, "/v1/chat/completions") => chat(state, body).await,
        (&Method::POST, "/v1/embeddings") => embeddings(state, body),
        (&Method::GET, "/v1/models") => {
            let data: Vec<Value> = state
                .models
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mistralai"}))
                .collect();
            json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
        }
        _ => ApiError::new(404, "Not Found").into_response(KIND),
    }
}

/// The fields of Mistral's `EmbeddingRequest`.
const EMBEDDING_FIELDS: &[&str] = &[
    "model",
    "input",
    "inputs",
    "output_dimension",
    "output_dtype",
    "encoding_format",
    "metadata",
];

/// `POST /v1/embeddings`: the OpenAI mock's word-hash vectors, `output_dimension` long (64 by
/// default); only embedding models (names with `embed`); `input` must be text.
fn embeddings(state: &MockState, body: Option<&Value>) -> Response {
    if let Some(status) = state.take_failure() {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    let Some(object) = body.and_then(Value::as_object) else {
        return unprocessable(&[("json_invalid", vec![], "JSON decode error", Value::Null)]);
    };
    if let Some((key, value)) = object
        .iter()
        .find(|(key, _)| !EMBEDDING_FIELDS.contains(&key.as_str()))
    {
        return unprocessable(&[(
            "extra_forbidden",
            vec![Value::from(key.as_str())],
            "Extra inputs are not permitted",
            value.clone(),
        )]);
    }
    let Some(model) = object.get("model").and_then(Value::as_str) else {
        return unprocessable(&[(
            "missing",
            vec![Value::from("model")],
            "Field required",
            Value::Null,
        )]);
    };
    if !model.contains("embed") {
        return ApiError::new(400, format!("Invalid model: {model}"))
            .with_code("1500")
            .into_response(KIND);
    }
    let input = object.get("input").or_else(|| object.get("inputs"));
    let texts: Vec<&str> = match input {
        None => {
            return unprocessable(&[(
                "missing",
                vec![Value::from("input")],
                "Field required",
                Value::Null,
            )]);
        }
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect()
        }
        Some(other) => {
            return unprocessable(&[(
                "string_type",
                vec![Value::from("input")],
                "Input should be a valid string",
                other.clone(),
            )]);
        }
    };
    if texts.is_empty() || texts.iter().any(|text| text.is_empty()) {
        return ApiError::new(400, "Input must not be empty")
            .with_code("3210")
            .into_response(KIND);
    }
    let dimensions = match object.get("output_dimension") {
        None | Some(Value::Null) => 64,
        Some(value) => match value.as_u64().filter(|d| (1..=3072).contains(d)) {
            Some(dimensions) => dimensions as usize,
            None => {
                return unprocessable(&[(
                    "greater_than",
                    vec![Value::from("output_dimension")],
                    "Input should be greater than 0",
                    value.clone(),
                )]);
            }
        },
    };
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({"object": "embedding", "index": index, "embedding": crate::openai::embed(text, dimensions)})
        })
        .collect();
    let prompt_tokens = tokens_for_bytes(texts.iter().map(|text| text.len()).sum());
    json_response(
        StatusCode::OK,
        &json!({
            "id": format!("embd-{:08x}", state.next_call_number()),
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "completion_tokens": 0},
        }),
    )
}

async fn chat(state: &MockState, body: Option<&Value>) -> Response {
    if let Some(status) = state.take_failure() {
        return ApiError::for_status(KIND, status).into_response(KIND);
    }
    let Some(body) = body.filter(|body| body.is_object()) else {
        return unprocessable(&[("json_invalid", vec![], "JSON decode error", Value::Null)]);
    };
    if let Err(response) = validate(body) {
        return *response;
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    if !state.models.iter().any(|known| known == model) {
        return ApiError::new(400, format!("Invalid model: {model}"))
            .with_code("1500")
            .into_response(KIND);
    }
    let conversation = conversation(body, KIND, Some(model));
    let directives = conversation.directives.clone();
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
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let answer = decide(&conversation);
    let mut reply = Reply {
        id: format!("{:032x}", state.next_response_number()),
        created: unix_seconds(),
        model: model.to_owned(),
        prompt_tokens: input_tokens(body),
        completion_tokens: output_tokens(&answer),
        finish_reason: "stop",
        text: String::new(),
        calls: Vec::new(),
    };
    match answer {
        Answer::Text(text) => match truncate_words(&text, max_tokens) {
            Some(truncated) => {
                reply.finish_reason = "length";
                reply.completion_tokens = max_tokens;
                reply.text = truncated;
            }
            None => reply.text = text,
        },
        Answer::ToolCalls(calls) => {
            reply.finish_reason = "tool_calls";
            reply.calls = calls
                .into_iter()
                .enumerate()
                .map(|(index, call)| {
                    json!({
                        "id": format!("mock{:05}", state.next_call_number()),
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments.to_string()},
                        "index": index,
                    })
                })
                .collect();
        }
    }
    if stream {
        sse_response(event_body(
            reply.stream_events(),
            directives.chunk_delay_ms,
            directives.die_after,
        ))
    } else {
        json_response(StatusCode::OK, &reply.to_json())
    }
}

fn garbage(stream: bool) -> Response {
    if stream {
        let events = vec![
            Bytes::from_static(b"data: {\"id\":\"x\",\"choices\":[{\"delta\n\n"),
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

/// A 422 in the shape Mistral's API gives pydantic's validation errors.
fn unprocessable(errors: &[(&str, Vec<Value>, &str, Value)]) -> Response {
    let detail: Vec<Value> = errors
        .iter()
        .map(|(error_type, location, message, input)| {
            let mut loc = vec![Value::from("body")];
            loc.extend(location.iter().cloned());
            json!({"type": error_type, "loc": loc, "msg": message, "input": input})
        })
        .collect();
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "object": "error",
            "message": {"detail": detail},
            "type": "invalid_request_message_error",
            "param": null,
            "code": null,
        }),
    )
}

/// A 400 in Mistral's flat error shape, boxed as `validate` returns it.
fn bad_request_boxed(message: impl Into<String>, code: &'static str) -> Box<Response> {
    Box::new(
        ApiError::new(400, message)
            .with_code(code)
            .into_response(KIND),
    )
}

/// [`unprocessable`], boxed as `validate` returns it.
fn unprocessable_boxed(errors: &[(&str, Vec<Value>, &str, Value)]) -> Box<Response> {
    Box::new(unprocessable(errors))
}

fn is_mistral_call_id(id: &str) -> bool {
    id.len() == 9 && id.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

/// Rejects what Mistral's chat API rejects, with its shapes.
fn validate(body: &Value) -> Result<(), Box<Response>> {
    let object: &Map<String, Value> = body.as_object().expect("checked by the caller");
    if let Some((key, value)) = object
        .iter()
        .find(|(key, _)| !REQUEST_FIELDS.contains(&key.as_str()))
    {
        return Err(unprocessable_boxed(&[(
            "extra_forbidden",
            vec![Value::from(key.as_str())],
            "Extra inputs are not permitted",
            value.clone(),
        )]));
    }
    if !object.get("model").is_some_and(Value::is_string) {
        return Err(unprocessable_boxed(&[(
            "missing",
            vec![Value::from("model")],
            "Field required",
            Value::Null,
        )]));
    }
    let Some(messages) = object.get("messages").and_then(Value::as_array) else {
        return Err(unprocessable_boxed(&[(
            "missing",
            vec![Value::from("messages")],
            "Field required",
            Value::Null,
        )]));
    };
    if let Some(safe_prompt) = object.get("safe_prompt")
        && !safe_prompt.is_boolean()
    {
        return Err(unprocessable_boxed(&[(
            "bool_parsing",
            vec![Value::from("safe_prompt")],
            "Input should be a valid boolean",
            safe_prompt.clone(),
        )]));
    }
    match object.get("tool_choice") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(Value::String(choice))
            if ["auto", "none", "any", "required"].contains(&choice.as_str()) => {}
        Some(other) => {
            return Err(unprocessable_boxed(&[(
                "enum",
                vec![Value::from("tool_choice")],
                "Input should be 'auto', 'none', 'any' or 'required'",
                other.clone(),
            )]));
        }
    }
    let mut open_calls: Vec<&str> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if !["system", "user", "assistant", "tool"].contains(&role) {
            return Err(unprocessable_boxed(&[(
                "union_tag_invalid",
                vec![Value::from("messages"), Value::from(index)],
                "Input tag does not match any of the expected tags: 'assistant', 'system', 'tool', 'user'",
                message.clone(),
            )]));
        }
        if let Some(content) = message.get("content")
            && !(content.is_string() || content.is_array() || content.is_null())
        {
            return Err(unprocessable_boxed(&[(
                "string_type",
                vec![
                    Value::from("messages"),
                    Value::from(index),
                    Value::from(role),
                    Value::from("content"),
                ],
                "Input should be a valid string",
                content.clone(),
            )]));
        }
        if role == "tool" {
            let id = message
                .get("tool_call_id")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !is_mistral_call_id(id) {
                return Err(bad_request_boxed(
                    format!("Tool call id was {id} but must be a-z, A-Z, 0-9, with a length of 9."),
                    "3280",
                ));
            }
            match open_calls.iter().position(|open| *open == id) {
                Some(position) => {
                    open_calls.remove(position);
                }
                None => {
                    return Err(bad_request_boxed(
                        "Unexpected tool call id in a tool message: it answers no call of the preceding assistant message.",
                        "3230",
                    ));
                }
            }
            continue;
        }
        if !open_calls.is_empty() {
            return Err(bad_request_boxed(
                "Not the same number of function calls and responses",
                "3230",
            ));
        }
        if role == "assistant" {
            for call in message
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = call.get("id").and_then(Value::as_str).unwrap_or("");
                if !is_mistral_call_id(id) {
                    return Err(bad_request_boxed(
                        format!(
                            "Tool call id was {id} but must be a-z, A-Z, 0-9, with a length of 9."
                        ),
                        "3280",
                    ));
                }
                if !call
                    .pointer("/function/arguments")
                    .is_some_and(|arguments| arguments.is_string() || arguments.is_object())
                {
                    return Err(unprocessable_boxed(&[(
                        "missing",
                        vec![
                            Value::from("messages"),
                            Value::from(index),
                            Value::from("assistant"),
                            Value::from("tool_calls"),
                        ],
                        "Field required",
                        call.clone(),
                    )]));
                }
                open_calls.push(id);
            }
        }
    }
    if !open_calls.is_empty() {
        return Err(bad_request_boxed(
            "Not the same number of function calls and responses",
            "3230",
        ));
    }
    let last_role = messages
        .last()
        .and_then(|message| message.get("role"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let prefix = messages
        .last()
        .and_then(|message| message.get("prefix"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !(last_role == "user" || last_role == "tool" || (last_role == "assistant" && prefix)) {
        return Err(bad_request_boxed(
            format!(
                "Expected last role User or Tool (or Assistant with prefix True) for serving but got {last_role}"
            ),
            "3230",
        ));
    }
    Ok(())
}

// ---- the conversation view and the token rule ----------------------------------------------

/// Prompt tokens by the crate's token rule (as the OpenAI mock counts).
fn input_tokens(body: &Value) -> u64 {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut bytes: usize = messages
        .iter()
        .map(|message| {
            let calls: usize = message
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|call| call.pointer("/function/arguments"))
                .map(|arguments| match arguments {
                    Value::String(text) => text.len(),
                    other => json_bytes(other),
                })
                .sum();
            content_text(message.get("content")).len() + calls
        })
        .sum();
    if let Some(tools) = body.get("tools").filter(|tools| !tools.is_null()) {
        bytes += json_bytes(tools);
    }
    tokens_for_bytes(bytes)
}

// ---- the completion and its stream ---------------------------------------------------------

struct Reply {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
    completion_tokens: u64,
    finish_reason: &'static str,
    text: String,
    calls: Vec<Value>,
}

impl Reply {
    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }

    fn to_json(&self) -> Value {
        let tool_calls = if self.calls.is_empty() {
            Value::Null
        } else {
            Value::Array(self.calls.clone())
        };
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.text, "tool_calls": tool_calls, "prefix": false},
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage(),
        })
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>, usage: bool) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        });
        if usage {
            chunk["usage"] = self.usage();
        }
        let mut event = b"data: ".to_vec();
        serde_json::to_writer(&mut event, &chunk).expect("a JSON value always serializes");
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    /// The role chunk, a chunk per word, the calls whole, the finish with usage, `[DONE]`.
    fn stream_events(&self) -> Vec<Bytes> {
        let mut events = vec![self.chunk(json!({"role": "assistant", "content": ""}), None, false)];
        for fragment in word_fragments(&self.text) {
            events.push(self.chunk(json!({"content": fragment}), None, false));
        }
        if !self.calls.is_empty() {
            events.push(self.chunk(
                json!({"content": "", "tool_calls": self.calls}),
                None,
                false,
            ));
        }
        events.push(self.chunk(json!({"content": ""}), Some(self.finish_reason), true));
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(body: Value) -> u16 {
        match validate(&body) {
            Ok(()) => 200,
            Err(response) => response.status().as_u16(),
        }
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn validation_rejects_what_mistral_rejects() {
        let model = "mistral-small-latest";
        assert_eq!(
            status_of(
                json!({"model": model, "messages": [user("hi")], "stream_options": {"include_usage": true}})
            ),
            422
        );
        assert_eq!(
            status_of(
                json!({"model": model, "messages": [user("hi")], "max_completion_tokens": 5})
            ),
            422
        );
        assert_eq!(
            status_of(json!({"model": model, "messages": [user("hi")], "seed": 1})),
            422
        );
        assert_eq!(
            status_of(json!({"model": model, "messages": [user("hi"),
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "r"}]})),
            400
        );
        assert_eq!(
            status_of(json!({"model": model, "messages": [user("hi"),
                {"role": "assistant", "content": null, "tool_calls": [{"id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]})),
            400
        );
        assert_eq!(
            status_of(
                json!({"model": model, "messages": [user("hi"), {"role": "assistant", "content": "x"}]})
            ),
            400
        );
        assert_eq!(
            status_of(json!({"model": model, "messages": [user("hi")], "safe_prompt": "yes"})),
            422
        );
    }

    #[test]
    fn validation_accepts_a_mistral_tool_round_trip() {
        let body = json!({"model": "mistral-small-latest", "safe_prompt": false, "random_seed": 3, "tool_choice": "any",
            "messages": [user("hi"),
                {"role": "assistant", "content": "", "tool_calls": [{"id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "abcDEF123", "name": "f", "content": "r"}]});
        assert_eq!(status_of(body), 200);
    }
}
