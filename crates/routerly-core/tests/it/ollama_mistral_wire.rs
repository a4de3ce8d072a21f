//! Fixture tests for the Ollama (`wire::ollama`) and Mistral (`wire::mistral`) wire formats.
//!
//! Fixtures under `tests/fixtures/{ollama,mistral}/` are shaped like each API reference
//! (Ollama's `/api/chat` and its NDJSON stream, Mistral's chat completions); comparisons are
//! between `serde_json::Value`s, with invented ids replaced by placeholders.

use pretty_assertions::assert_eq;
use routerly_core::canonical::{ChatRequest, ErrorKind, StreamEvent};
use routerly_core::wire::{mistral, ollama};
use serde_json::{Value, json};

fn fixture_text(path: &str) -> String {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

fn fixture(path: &str) -> Value {
    serde_json::from_str(&fixture_text(path))
        .unwrap_or_else(|error| panic!("{path} is not JSON: {error}"))
}

fn canonical_request(path: &str) -> ChatRequest {
    serde_json::from_value(fixture(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// `value` with ids Routerly invents (`call_…`, `ollama-…`) replaced by placeholders.
fn normalized(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(id)) = map.get_mut("id")
                    && (id.starts_with("call_") || id.starts_with("ollama-"))
                {
                    *id = "<generated>".to_owned();
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

// ---- Ollama ------------------------------------------------------------------------------

#[test]
fn ollama_requests_send_stream_explicitly_with_argument_objects_and_base64_images() {
    let request = canonical_request("ollama/request_tools_roundtrip.canonical.json");
    let encoded = ollama::encode_request(&request, "qwen3").expect("encodes");
    assert_eq!(
        encoded,
        fixture("ollama/request_tools_roundtrip.upstream.json")
    );

    let mut streamed = request.clone();
    streamed.stream = true;
    let encoded = ollama::encode_request(&streamed, "qwen3").expect("encodes");
    assert_eq!(encoded["stream"], json!(true));
}

#[test]
fn an_ollama_client_body_decodes_and_encodes_back() {
    let upstream = fixture("ollama/request_tools_roundtrip.upstream.json");
    let decoded = ollama::decode_request(&upstream).expect("decodes");
    assert!(!decoded.stream, "stream: false is kept");
    let encoded = ollama::encode_request(&decoded, "qwen3").expect("encodes");
    assert_eq!(encoded, upstream);
    let default_stream =
        ollama::decode_request(&json!({"model": "m", "messages": []})).expect("decodes");
    assert!(default_stream.stream, "Ollama streams unless told not to");
}

#[test]
fn ollama_refuses_image_urls_naming_the_model() {
    let mut request = canonical_request("ollama/request_tools_roundtrip.canonical.json");
    request.messages[0].content[1] = serde_json::from_value(
        json!({"type": "image", "source": {"kind": "url", "url": "https://example.com/cat.png"}, "detail": null}),
    )
    .expect("a part");
    let error = ollama::encode_request(&request, "qwen3").expect_err("URLs are refused");
    assert!(
        error.message.contains("qwen3") && error.message.contains("base64"),
        "{error}"
    );
    assert_eq!(error.param.as_deref(), Some("messages[0].content[1]"));
}

#[test]
fn ollama_tool_choice_none_and_named_narrow_the_tools() {
    let mut request = canonical_request("ollama/request_tools_roundtrip.canonical.json");
    request.tool_choice = Some(serde_json::from_value(json!({"type": "none"})).expect("choice"));
    assert!(
        ollama::encode_request(&request, "qwen3")
            .expect("encodes")
            .get("tools")
            .is_none()
    );
    request.tool_choice =
        Some(serde_json::from_value(json!({"type": "tool", "name": "other"})).expect("choice"));
    assert!(
        ollama::encode_request(&request, "qwen3")
            .expect("encodes")
            .get("tools")
            .is_none()
    );
}

#[test]
fn ollama_responses_decode_with_invented_ids_and_eval_counts() {
    let response =
        ollama::decode_response(&fixture("ollama/response_tool_calls.json")).expect("decodes");
    let value = normalized(serde_json::to_value(&response).expect("serializes"));
    assert_eq!(value, fixture("ollama/response_tool_calls.canonical.json"));
    let encoded = ollama::encode_response(&response);
    assert_eq!(
        encoded["message"]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "Paris"})
    );
    assert_eq!(
        (
            encoded["prompt_eval_count"].clone(),
            encoded["eval_count"].clone()
        ),
        (json!(42), json!(17))
    );
}

#[test]
fn an_ollama_ndjson_transcript_decodes_line_by_line() {
    let mut decoder = ollama::StreamDecoder::new();
    let events: Vec<StreamEvent> = fixture_text("ollama/stream_text.ndjson")
        .lines()
        .flat_map(|line| {
            decoder
                .decode(line)
                .unwrap_or_else(|error| panic!("{line}: {error}"))
        })
        .collect();
    let value = normalized(serde_json::to_value(&events).expect("serializes"));
    assert_eq!(value, fixture("ollama/stream_text.events.json"));

    let mut encoder = ollama::StreamEncoder::new();
    let lines: Vec<Value> = events
        .iter()
        .flat_map(|event| encoder.encode(event))
        .map(|frame| serde_json::from_str(&frame.data).expect("each line is JSON"))
        .collect();
    let text: String = lines
        .iter()
        .filter_map(|line| line["message"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello there");
    let last = lines.last().expect("a last line");
    assert_eq!(
        (last["done"].clone(), last["done_reason"].clone()),
        (json!(true), json!("length"))
    );
    assert_eq!(
        (
            last["prompt_eval_count"].clone(),
            last["eval_count"].clone()
        ),
        (json!(26), json!(2))
    );
}

#[test]
fn ollama_errors_are_plain_strings() {
    let error = ollama::decode_error(404, br#"{"error":"model 'x' not found"}"#);
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::NotFound, "model 'x' not found")
    );
    assert_eq!(
        ollama::encode_error(&error),
        json!({"error": "model 'x' not found"})
    );
    let line_error = ollama::StreamDecoder::new().decode(r#"{"error":"out of memory"}"#);
    assert!(
        line_error
            .expect_err("an error line fails")
            .message
            .contains("out of memory")
    );
}

// ---- Mistral -----------------------------------------------------------------------------

#[test]
fn mistral_requests_apply_mistrals_differences() {
    let request = canonical_request("mistral/request_tools_roundtrip.canonical.json");
    let encoded = mistral::encode_request(&request, "mistral-small-latest").expect("encodes");
    let mapped = mistral::mistral_call_id("call_abc123def456");
    assert_eq!(mapped.len(), 9);
    assert!(
        mapped.bytes().all(|byte| byte.is_ascii_alphanumeric()),
        "{mapped}"
    );
    assert_eq!(
        mistral::mistral_call_id("D681PevKs"),
        "D681PevKs",
        "valid ids are kept"
    );
    assert_eq!(
        encoded,
        json!({
            "model": "mistral-small-latest",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": mapped, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "D681PevKs", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": mapped, "content": "Sunny", "name": "get_weather"},
                {"role": "tool", "tool_call_id": "D681PevKs", "content": "noon", "name": "get_time"}
            ],
            "max_tokens": 100,
            "stream": true,
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
            ],
            "tool_choice": "any",
            "parallel_tool_calls": true,
            "reasoning_effort": "low",
            "random_seed": 11,
            "top_k": 20
        })
    );
}

#[test]
fn mistral_answers_with_thinking_chunks_and_model_length_decode() {
    let body = json!({
        "id": "cmpl-1", "object": "chat.completion", "created": 1700000000, "model": "magistral-medium-latest",
        "choices": [{"index": 0, "finish_reason": "model_length", "message": {"role": "assistant", "tool_calls": null, "content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": "Let me think."}]},
            {"type": "text", "text": "The answer."}
        ]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    });
    let response = mistral::decode_response(&body).expect("decodes");
    assert_eq!(
        serde_json::to_value(&response).expect("serializes"),
        json!({"id": "cmpl-1", "model": "magistral-medium-latest", "content": [
            {"type": "thinking", "text": "Let me think.", "signature": null},
            {"type": "text", "text": "The answer."}
        ], "stop_reason": "max_tokens", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cached_input_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0},
        "created": 1700000000})
    );
}

#[test]
fn a_mistral_stream_ends_with_usage_on_the_finish_chunk() {
    let payloads = [
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"tool_calls":[{"id":"abcDEF123","function":{"name":"f","arguments":"{}"},"index":0}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#,
        "[DONE]",
    ];
    let mut decoder = mistral::StreamDecoder::new();
    let events: Vec<StreamEvent> = payloads
        .iter()
        .flat_map(|payload| decoder.decode(payload).expect("decodes"))
        .collect();
    let value = serde_json::to_value(&events).expect("serializes");
    assert_eq!(
        value,
        json!([
            {"type": "start", "id": "c1", "model": "mistral-small-latest", "usage": {"input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0}},
            {"type": "text_start", "index": 0},
            {"type": "text_delta", "index": 0, "text": "Hi"},
            {"type": "block_stop", "index": 0},
            {"type": "tool_call_start", "index": 1, "id": "abcDEF123", "name": "f"},
            {"type": "tool_call_delta", "index": 1, "arguments": "{}"},
            {"type": "block_stop", "index": 1},
            {"type": "finish", "stop_reason": "tool_use", "stop_sequence": null},
            {"type": "usage", "usage": {"input_tokens": 7, "output_tokens": 3, "cached_input_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0}},
            {"type": "end"}
        ])
    );
}

#[test]
fn mistral_errors_decode_from_each_of_its_shapes() {
    let validation = mistral::decode_error(
        422,
        br#"{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","stream_options"],"msg":"Extra inputs are not permitted","input":{}}]},"type":"invalid_request_message_error","param":null,"code":null}"#,
    );
    assert_eq!(validation.kind, ErrorKind::InvalidRequest);
    assert_eq!(
        validation.message,
        "stream_options: Extra inputs are not permitted"
    );
    assert_eq!(validation.param.as_deref(), Some("stream_options"));
    let flat = mistral::decode_error(
        400,
        br#"{"object":"error","message":"Tool call id was call_1 but must be a-z, A-Z, 0-9, with a length of 9.","type":"invalid_request_message_error","param":null,"code":"3280"}"#,
    );
    assert_eq!(flat.code.as_deref(), Some("3280"));
    assert!(flat.message.starts_with("Tool call id was call_1"));
    let gateway = mistral::decode_error(429, br#"{"message":"Requests rate limit exceeded"}"#);
    assert_eq!(
        (gateway.kind, gateway.message.as_str()),
        (ErrorKind::RateLimit, "Requests rate limit exceeded")
    );
    assert_eq!(mistral::encode_error(&flat)["object"], "error");
}

/// Found by the `wire_request` fuzz target: a Gemini request that forces a tool call,
/// encoded for Mistral (`tool_choice: "any"`), was refused by Mistral's own decoder.
#[test]
fn mistral_reads_back_the_any_tool_choice_it_writes() {
    let mut request = canonical_request("mistral/request_tools_roundtrip.canonical.json");
    request.tool_choice = Some(routerly_core::canonical::ToolChoice::Required);
    let body = mistral::encode_request(&request, "mistral-large-latest").expect("encodes");
    assert_eq!(body["tool_choice"], json!("any"));
    let decoded = mistral::decode_request(&body).expect("Mistral reads its own body");
    assert_eq!(
        decoded.tool_choice,
        Some(routerly_core::canonical::ToolChoice::Required)
    );
    let forced = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tool_choice": "any"});
    assert_eq!(
        mistral::decode_request(&forced)
            .expect("a client's `any`")
            .tool_choice,
        Some(routerly_core::canonical::ToolChoice::Required)
    );
}

/// Found by the `wire_request` fuzz target: an Ollama tool whose `parameters` was an array
/// decoded, and the OpenAI encoder then sent a body OpenAI refuses.
#[test]
fn ollama_tool_parameters_must_be_a_schema_object() {
    let body = json!({
        "model": "qwen3",
        "messages": [{"role": "user", "content": "Thanks!"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": [{"type": "object"}]}}]
    });
    let error = ollama::decode_request(&body).expect_err("an array is no schema");
    assert_eq!(error.param.as_deref(), Some("tools[0].function.parameters"));
    let mut body = body;
    body["tools"][0]["function"]["parameters"] = json!({"type": "object", "properties": {}});
    assert!(ollama::decode_request(&body).is_ok(), "an object is");
}
