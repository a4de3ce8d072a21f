//! Fixture tests for the OpenAI Chat Completions wire format (`wire::openai`).
//!
//! Fixtures under `tests/fixtures/openai/` are shaped like OpenAI's API reference;
//! the expected forms beside them are hand-written, and every comparison is between
//! `serde_json::Value`s, never strings.

use pretty_assertions::assert_eq;
use routerly_core::canonical::{
    ChatRequest, ChatResponse, ContentPart, ErrorBody, ErrorKind, Reasoning, StopReason,
    StreamEvent, Usage,
};
use routerly_core::wire::SseFrame;
use routerly_core::wire::openai;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

const REQUEST_FIXTURES: [&str; 4] = [
    "request_basic",
    "request_tools_roundtrip",
    "request_image",
    "request_json_schema",
];
const RESPONSE_FIXTURES: [&str; 3] = ["response_text", "response_tool_calls", "response_reasoning"];
const STREAM_FIXTURES: [&str; 3] = ["stream_text", "stream_tool_calls", "stream_reasoning"];

fn fixture_text(file_name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/openai/{file_name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

fn fixture(file_name: &str) -> Value {
    serde_json::from_str(&fixture_text(file_name))
        .unwrap_or_else(|error| panic!("{file_name} is not JSON: {error}"))
}

fn fixture_as<T: DeserializeOwned>(file_name: &str) -> T {
    serde_json::from_value(fixture(file_name))
        .unwrap_or_else(|error| panic!("{file_name} does not match its canonical type: {error}"))
}

fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("canonical types serialize to JSON")
}

/// The `data:` payloads of an SSE transcript, skipping comments and blank lines.
fn sse_payloads(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| data.trim_start().to_owned())
        .collect()
}

fn decode_stream(payloads: &[String]) -> Vec<StreamEvent> {
    let mut decoder = openai::StreamDecoder::new();
    payloads
        .iter()
        .flat_map(|payload| {
            decoder
                .decode(payload)
                .unwrap_or_else(|error| panic!("decoding {payload}: {error}"))
        })
        .collect()
}

fn encode_stream(events: &[StreamEvent], include_usage: bool) -> Vec<SseFrame> {
    let mut encoder = openai::StreamEncoder::new(include_usage);
    events
        .iter()
        .flat_map(|event| encoder.encode(event))
        .collect()
}

/// Reassembles chunk payloads the way an OpenAI SDK does, into the final message;
/// usage is reduced to the figures Routerly models.
fn assemble(payloads: &[String]) -> Value {
    let (last, chunks) = payloads.split_last().expect("a stream has frames");
    assert_eq!(last, "[DONE]", "a stream ends with [DONE]");
    let mut assembled = json!({
        "id": null, "model": null, "role": null, "content": null,
        "reasoning_content": null, "tool_calls": [], "finish_reason": null, "usage": null,
    });
    let mut tool_calls: Vec<Value> = Vec::new();
    for payload in chunks {
        let chunk: Value = serde_json::from_str(payload).expect("every chunk is JSON");
        assert_eq!(chunk["object"], "chat.completion.chunk", "chunk {payload}");
        assembled["id"] = chunk["id"].clone();
        assembled["model"] = chunk["model"].clone();
        if let Some(usage) = chunk.get("usage").filter(|usage| !usage.is_null()) {
            assembled["usage"] = json!({
                "prompt_tokens": usage["prompt_tokens"],
                "completion_tokens": usage["completion_tokens"],
                "total_tokens": usage["total_tokens"],
                "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
                "reasoning_tokens": usage["completion_tokens_details"]["reasoning_tokens"],
            });
        }
        let choices = chunk["choices"].as_array().expect("choices is an array");
        let Some(choice) = choices.first() else {
            continue;
        };
        let delta = &choice["delta"];
        if let Some(role) = delta.get("role") {
            assembled["role"] = role.clone();
        }
        for key in ["content", "reasoning_content"] {
            if let Some(text) = delta.get(key).and_then(Value::as_str) {
                let so_far = assembled[key].as_str().unwrap_or_default();
                assembled[key] = Value::from(format!("{so_far}{text}"));
            }
        }
        for fragment in delta["tool_calls"].as_array().into_iter().flatten() {
            let tool_index = fragment["index"].as_u64().expect("tool call index") as usize;
            if tool_index == tool_calls.len() {
                tool_calls.push(json!({
                    "index": tool_index, "id": null, "type": null,
                    "function": {"name": null, "arguments": ""},
                }));
            }
            let tool_call = &mut tool_calls[tool_index];
            for key in ["id", "type"] {
                if let Some(value) = fragment.get(key) {
                    tool_call[key] = value.clone();
                }
            }
            if let Some(name) = fragment["function"].get("name") {
                tool_call["function"]["name"] = name.clone();
            }
            if let Some(arguments) = fragment["function"]["arguments"].as_str() {
                let so_far = tool_call["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default();
                tool_call["function"]["arguments"] = Value::from(format!("{so_far}{arguments}"));
            }
        }
        if let Some(finish_reason) = choice
            .get("finish_reason")
            .filter(|reason| !reason.is_null())
        {
            assert!(
                assembled["finish_reason"].is_null(),
                "finish_reason sent twice"
            );
            assembled["finish_reason"] = finish_reason.clone();
        }
    }
    assembled["tool_calls"] = Value::Array(tool_calls);
    assembled
}

fn frame_payloads(frames: &[SseFrame]) -> Vec<String> {
    frames
        .iter()
        .map(|frame| {
            assert_eq!(frame.event, None, "OpenAI frames have no event name");
            frame.data.clone()
        })
        .collect()
}

// ---- requests ----

#[test]
fn decode_request_matches_expected_canonical_form() {
    for name in REQUEST_FIXTURES {
        let decoded = openai::decode_request(&fixture(&format!("{name}.json")))
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        assert_eq!(
            to_value(&decoded),
            fixture(&format!("{name}.canonical.json")),
            "{name}"
        );
    }
}

#[test]
fn encode_request_produces_expected_upstream_body() {
    for name in REQUEST_FIXTURES {
        let expected = fixture(&format!("{name}.upstream.json"));
        let upstream_model = expected["model"]
            .as_str()
            .expect("upstream fixture names a model");
        let decoded = openai::decode_request(&fixture(&format!("{name}.json")))
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        let encoded = openai::encode_request(&decoded, upstream_model)
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        assert_eq!(encoded, expected, "{name}");
    }
}

/// decode(encode(decode(x))) keeps everything we model, except what encoding changes on
/// purpose: the model, usage always requested in streams, thinking dropped from history.
#[test]
fn encoded_request_decodes_back_to_the_same_canonical_form() {
    for name in REQUEST_FIXTURES {
        let decoded = openai::decode_request(&fixture(&format!("{name}.json")))
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        let encoded = openai::encode_request(&decoded, "upstream").expect("encodes");
        let round_tripped = openai::decode_request(&encoded).expect("our own body decodes");

        let mut expected = decoded.clone();
        expected.model = "upstream".to_owned();
        expected.stream_include_usage = expected.stream;
        for message in &mut expected.messages {
            message
                .content
                .retain(|part| !matches!(part, ContentPart::Thinking { .. }));
        }
        assert_eq!(to_value(&round_tripped), to_value(&expected), "{name}");
    }
}

#[test]
fn encode_request_adapts_anthropic_shaped_conversations() {
    let request: ChatRequest = fixture_as("encode_anthropic_shaped.canonical.json");
    let encoded = openai::encode_request(&request, "deepseek-chat").expect("encodes");
    assert_eq!(encoded, fixture("encode_anthropic_shaped.upstream.json"));
}

#[test]
fn thinking_budget_maps_to_reasoning_effort() {
    let cases = [
        (Some(1024), None, "low"),
        (Some(2048), None, "low"),
        (Some(2049), None, "medium"),
        (Some(8192), None, "medium"),
        (Some(8193), None, "high"),
        (Some(32000), Some("minimal"), "minimal"),
        (None, Some("high"), "high"),
    ];
    for (budget_tokens, effort, expected_effort) in cases {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![routerly_core::canonical::Message {
                role: routerly_core::canonical::Role::User,
                content: vec![ContentPart::text("hi")],
            }],
            reasoning: Some(Reasoning {
                budget_tokens,
                effort: effort.map(str::to_owned),
            }),
            ..ChatRequest::default()
        };
        let encoded = openai::encode_request(&request, "o4-mini").expect("encodes");
        assert_eq!(
            encoded["reasoning_effort"], expected_effort,
            "budget {budget_tokens:?}, effort {effort:?}"
        );
    }
}

#[test]
fn encode_request_refuses_parts_in_the_wrong_role() {
    let request: ChatRequest = serde_json::from_value(json!({
        "model": "m", "system": [], "max_tokens": null, "temperature": null, "top_p": null,
        "top_k": null, "stop": [], "stream": false, "stream_include_usage": false, "tools": [],
        "tool_choice": null, "parallel_tool_calls": null, "response_format": null,
        "reasoning": null, "presence_penalty": null, "frequency_penalty": null, "seed": null,
        "user": null,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "user", "content": [{"type": "tool_call", "id": "c", "name": "f", "arguments": "{}"}]}
        ]
    }))
    .expect("a valid canonical request");
    let error =
        openai::encode_request(&request, "m").expect_err("a tool call from the user is refused");
    assert_eq!(error.param.as_deref(), Some("messages[1].content[0]"));
}

/// One bad-input case: the body (merged over a valid minimal request), the `param` the
/// error must name, and a fragment its message must contain.
fn check_rejected(overrides: Value, expected_param: Option<&str>, expected_fragment: &str) {
    let mut body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let body_map = body.as_object_mut().expect("the base body is an object");
    for (key, value) in overrides.as_object().expect("overrides are an object") {
        if value == &json!("<remove>") {
            body_map.remove(key);
        } else {
            body_map.insert(key.clone(), value.clone());
        }
    }
    let error =
        openai::decode_request(&body).expect_err(&format!("expected a decode error for {body}"));
    assert_eq!(
        error.param.as_deref(),
        expected_param,
        "param for {body}: {error:?}"
    );
    assert!(
        error.message.contains(expected_fragment),
        "message for {body} should contain {expected_fragment:?}, got {:?}",
        error.message
    );
}

#[test]
fn decode_request_rejects_bad_bodies_naming_the_field() {
    let user_hi = json!({"role": "user", "content": "hi"});
    let calls = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]});
    check_rejected(
        json!({"model": "<remove>"}),
        Some("model"),
        "Missing required parameter",
    );
    check_rejected(
        json!({"messages": "<remove>"}),
        Some("messages"),
        "Missing required parameter",
    );
    check_rejected(
        json!({"messages": "hi"}),
        Some("messages"),
        "expected an array",
    );
    check_rejected(
        json!({"messages": []}),
        Some("messages"),
        "at least one message",
    );
    check_rejected(
        json!({"messages": ["hi"]}),
        Some("messages[0]"),
        "expected an object",
    );
    check_rejected(
        json!({"messages": [{"content": "hi"}]}),
        Some("messages[0].role"),
        "Missing",
    );
    check_rejected(
        json!({"messages": [{"role": "robot", "content": "hi"}]}),
        Some("messages[0].role"),
        "'robot'",
    );
    check_rejected(
        json!({"messages": [{"role": "function", "name": "f", "content": "1"}]}),
        Some("messages[0].role"),
        "deprecated",
    );
    check_rejected(
        json!({"messages": [{"role": "user", "content": null}]}),
        Some("messages[0].content"),
        "Missing",
    );
    check_rejected(
        json!({"messages": [{"role": "user", "content": 5}]}),
        Some("messages[0].content"),
        "got a number",
    );
    check_rejected(
        json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, user_hi]}),
        Some("messages[0].content[0].type"),
        "'system' messages must be of type 'text'",
    );
    check_rejected(
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]}),
        Some("messages[0].content[0].image_url.url"),
        "base64",
    );
    // Fuzz finding: a data URL of another media type (`imag…e/png`, `text/plain`) was taken
    // as an image, which Gemini then read back as opaque media.
    check_rejected(
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}]}]}),
        Some("messages[0].content[0].image_url.url"),
        "image media type",
    );
    check_rejected(
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}]}),
        Some("messages[0].content[0].image_url.url"),
        "Missing",
    );
    check_rejected(
        json!({"messages": [user_hi, calls, {"role": "tool", "content": "42"}]}),
        Some("messages[2].tool_call_id"),
        "Missing",
    );
    check_rejected(
        json!({"messages": [user_hi, {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
        ]}]}),
        Some("messages[1].tool_calls[0].function.arguments"),
        "expected a string containing JSON, but got an object",
    );
    check_rejected(
        json!({"messages": [user_hi, {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]}]}),
        Some("messages[1].tool_calls[0].id"),
        "Missing",
    );
    check_rejected(
        json!({"temperature": "hot"}),
        Some("temperature"),
        "expected a number, but got a string",
    );
    check_rejected(
        json!({"max_tokens": -1}),
        Some("max_tokens"),
        "non-negative integer",
    );
    check_rejected(
        json!({"max_completion_tokens": 1.5}),
        Some("max_completion_tokens"),
        "non-negative integer",
    );
    check_rejected(json!({"seed": "1"}), Some("seed"), "integer");
    check_rejected(json!({"n": 2}), Some("n"), "n must be 1");
    check_rejected(json!({"stream": "yes"}), Some("stream"), "boolean");
    check_rejected(
        json!({"stream_options": {"include_usage": "yes"}}),
        Some("stream_options.include_usage"),
        "boolean",
    );
    check_rejected(
        json!({"stop": 5}),
        Some("stop"),
        "a string or an array of strings",
    );
    check_rejected(json!({"stop": ["a", 1]}), Some("stop[1]"), "a string");
    check_rejected(json!({"tools": {}}), Some("tools"), "array");
    check_rejected(
        json!({"tools": [{"type": "function", "function": {"description": "no name"}}]}),
        Some("tools[0].function.name"),
        "Missing",
    );
    check_rejected(
        json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": "object"}}]}),
        Some("tools[0].function.parameters"),
        "JSON Schema",
    );
    check_rejected(
        json!({"tool_choice": "sometimes"}),
        Some("tool_choice"),
        "'sometimes'",
    );
    check_rejected(
        json!({"tool_choice": {"type": "function", "function": {}}}),
        Some("tool_choice.function.name"),
        "Missing",
    );
    check_rejected(
        json!({"response_format": {"type": "yaml"}}),
        Some("response_format.type"),
        "'yaml'",
    );
    check_rejected(
        json!({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}),
        Some("response_format.json_schema.name"),
        "Missing",
    );
    check_rejected(
        json!({"reasoning_effort": 3}),
        Some("reasoning_effort"),
        "string",
    );
}

#[test]
fn decode_request_rejects_a_body_that_is_not_an_object() {
    let error = openai::decode_request(&json!([1, 2])).expect_err("an array is not a request");
    assert_eq!(error.param, None);
    assert!(error.message.contains("JSON object"), "{error:?}");
}

#[test]
fn decode_request_accepts_lenient_spellings() {
    let decoded = openai::decode_request(&json!({
        "model": "m",
        "n": null,
        "temperature": null,
        "stop": null,
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": "https://example.com/cat.png"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
            {"role": "tool", "tool_call_id": "call_x", "content": "orphan result"},
            {"role": "developer", "content": "late instruction"},
            {"role": "tool", "tool_call_id": "call_y", "content": "second result"}
        ]
    }))
    .expect("a lenient but valid body");
    assert_eq!(
        to_value(&decoded.messages),
        json!([
            {"role": "user", "content": [{"type": "image", "source": {"kind": "url", "url": "https://example.com/cat.png"}, "detail": null}]},
            {"role": "assistant", "content": [{"type": "text", "text": "I can't."}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_call_id": "call_x", "content": [{"type": "text", "text": "orphan result"}], "is_error": false},
                {"type": "tool_result", "tool_call_id": "call_y", "content": [{"type": "text", "text": "second result"}], "is_error": false}
            ]},
            // An instruction among tool results follows the run.
            {"role": "system", "content": [{"type": "text", "text": "late instruction"}]}
        ])
    );
    assert!(decoded.system.is_empty());
    assert_eq!(decoded.temperature, None);
}

// ---- responses ----

#[test]
fn decode_response_matches_expected_canonical_form() {
    for name in RESPONSE_FIXTURES {
        let decoded = openai::decode_response(&fixture(&format!("{name}.json")))
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        assert_eq!(
            to_value(&decoded),
            fixture(&format!("{name}.canonical.json")),
            "{name}"
        );
    }
}

#[test]
fn encode_response_produces_expected_client_body_and_round_trips() {
    for name in RESPONSE_FIXTURES {
        let canonical: ChatResponse = fixture_as(&format!("{name}.canonical.json"));
        let encoded = openai::encode_response(&canonical);
        assert_eq!(encoded, fixture(&format!("{name}.encoded.json")), "{name}");
        let decoded_again = openai::decode_response(&encoded).expect("our own body decodes");
        assert_eq!(to_value(&decoded_again), to_value(&canonical), "{name}");
    }
}

#[test]
fn encode_response_handles_anthropic_shaped_answers() {
    let response = ChatResponse {
        id: "msg_01".into(),
        model: "claude-sonnet".into(),
        content: vec![
            ContentPart::Thinking {
                text: "Plan.".into(),
                signature: Some("sig".into()),
            },
            ContentPart::ToolCall {
                id: "toolu_1".into(),
                name: "lookup".into(),
                arguments: "{\"q\":\"x\"}".into(),
            },
        ],
        stop_reason: Some(StopReason::ToolUse),
        stop_sequence: None,
        usage: Usage {
            input_tokens: 1500,
            output_tokens: 40,
            cached_input_tokens: 1000,
            cache_write_tokens: 300,
            reasoning_tokens: 0,
        },
        created: 1_750_000_000,
        web_sources: Default::default(),
    };
    let encoded = openai::encode_response(&response);
    assert_eq!(
        encoded["choices"][0]["message"],
        json!({
            "role": "assistant",
            "content": null,
            "reasoning_content": "Plan.",
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}],
            "refusal": null
        })
    );
    assert_eq!(encoded["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        encoded["usage"],
        json!({
            "prompt_tokens": 1500, "completion_tokens": 40, "total_tokens": 1540,
            "prompt_tokens_details": {"cached_tokens": 1000},
            "completion_tokens_details": {"reasoning_tokens": 0}
        }),
        "prompt_tokens is input_tokens, which already includes cache writes"
    );
}

#[test]
fn decode_response_rejects_unusable_answers() {
    let cases = [
        (json!({"id": "x"}), Some("choices")),
        (json!({"choices": []}), Some("choices")),
        (
            json!({"choices": [{"index": 0}]}),
            Some("choices[0].message"),
        ),
        (
            json!({"choices": [{"message": {"content": 5}}]}),
            Some("choices[0].message.content"),
        ),
        (json!("text"), None),
    ];
    for (body, expected_param) in cases {
        let error = openai::decode_response(&body).expect_err(&format!("{body} is unusable"));
        assert_eq!(error.param.as_deref(), expected_param, "{body}");
    }
}

#[test]
fn decode_response_tolerates_compatible_server_quirks() {
    let decoded = openai::decode_response(&json!({
        "id": "gen-1",
        "model": "some/model",
        "created": 5,
        "choices": [{
            "message": {
                "role": "assistant",
                "content": null,
                "refusal": "I can't help with that.",
                "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]
            },
            "finish_reason": "eos"
        }]
    }))
    .expect("quirky but usable");
    assert_eq!(
        decoded.content[0],
        ContentPart::text("I can't help with that.")
    );
    let ContentPart::ToolCall { id, arguments, .. } = &decoded.content[1] else {
        panic!("expected a tool call, got {:?}", decoded.content[1]);
    };
    assert!(id.starts_with("call_"), "a missing id is generated: {id}");
    assert_eq!(arguments, "{\"a\":1}");
    assert_eq!(decoded.stop_reason, Some(StopReason::EndTurn));
    assert_eq!(decoded.usage, Usage::default());
}

#[test]
fn stop_reasons_have_openai_names() {
    let cases = [
        (StopReason::EndTurn, "stop"),
        (StopReason::MaxTokens, "length"),
        (StopReason::StopSequence, "stop"),
        (StopReason::ToolUse, "tool_calls"),
        (StopReason::ContentFilter, "content_filter"),
        (StopReason::PauseTurn, "stop"),
    ];
    for (reason, expected_name) in cases {
        assert_eq!(
            openai::stop_reason_name(&reason),
            expected_name,
            "{reason:?}"
        );
    }
}

// ---- streams ----

#[test]
fn stream_transcripts_decode_to_expected_events() {
    for name in STREAM_FIXTURES {
        let events = decode_stream(&sse_payloads(&fixture_text(&format!("{name}.sse"))));
        assert_eq!(
            to_value(&events),
            fixture(&format!("{name}.events.json")),
            "{name}"
        );
    }
}

#[test]
fn reassembled_transcripts_match_expected_messages() {
    // Checks the helper and the expected files against the provider's own transcript.
    for name in STREAM_FIXTURES {
        let assembled = assemble(&sse_payloads(&fixture_text(&format!("{name}.sse"))));
        assert_eq!(
            assembled,
            fixture(&format!("{name}.assembled.json")),
            "{name}"
        );
    }
}

#[test]
fn encoded_streams_reassemble_to_expected_messages() {
    for name in STREAM_FIXTURES {
        let events: Vec<StreamEvent> = fixture_as(&format!("{name}.events.json"));
        let frames = encode_stream(&events, true);
        let assembled = assemble(&frame_payloads(&frames));
        assert_eq!(
            assembled,
            fixture(&format!("{name}.assembled.json")),
            "{name}"
        );
    }
}

#[test]
fn encoded_chunks_are_shaped_like_openai_chunks() {
    let events: Vec<StreamEvent> = fixture_as("stream_tool_calls.events.json");

    let with_usage = frame_payloads(&encode_stream(&events, true));
    let chunks: Vec<Value> = with_usage[..with_usage.len() - 1]
        .iter()
        .map(|payload| serde_json::from_str(payload).expect("chunk JSON"))
        .collect();
    let (usage_chunk, delta_chunks) = chunks.split_last().expect("there are chunks");
    assert_eq!(
        delta_chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    for chunk in &chunks {
        assert_eq!(chunk["id"], "chatcmpl-C3tools");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "gpt-4.1-2025-04-14");
        assert_eq!(
            chunk["created"], chunks[0]["created"],
            "one created time per stream"
        );
        assert!(chunk["created"].as_i64().expect("created is a number") > 0);
    }
    for chunk in delta_chunks {
        assert_eq!(
            chunk.get("usage"),
            Some(&Value::Null),
            "usage: null before the end: {chunk}"
        );
        assert_eq!(chunk["choices"][0]["index"], 0);
    }
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["total_tokens"], 134);
    assert_eq!(
        delta_chunks
            .iter()
            .filter(|chunk| !chunk["choices"][0]["finish_reason"].is_null())
            .count(),
        1,
        "exactly one finish chunk"
    );

    let without_usage = frame_payloads(&encode_stream(&events, false));
    assert_eq!(without_usage.len(), with_usage.len() - 1, "no usage chunk");
    assert_eq!(without_usage.last().map(String::as_str), Some("[DONE]"));
    for payload in &without_usage[..without_usage.len() - 1] {
        let chunk: Value = serde_json::from_str(payload).expect("chunk JSON");
        assert_eq!(
            chunk.get("usage"),
            None,
            "no usage field without include_usage"
        );
        assert_eq!(chunk["choices"].as_array().map(Vec::len), Some(1));
    }
}

#[test]
fn encoder_translates_anthropic_shaped_events() {
    let events = vec![
        StreamEvent::Start {
            id: "msg_01".into(),
            model: "claude-sonnet".into(),
            usage: Usage {
                input_tokens: 500,
                cached_input_tokens: 100,
                cache_write_tokens: 50,
                ..Usage::default()
            },
        },
        StreamEvent::ThinkingStart { index: 0 },
        StreamEvent::ThinkingDelta {
            index: 0,
            text: "Hmm.".into(),
        },
        StreamEvent::ThinkingSignature {
            index: 0,
            signature: "sig".into(),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::TextStart { index: 1 },
        StreamEvent::TextDelta {
            index: 1,
            text: "".into(),
        },
        StreamEvent::TextDelta {
            index: 1,
            text: "On it.".into(),
        },
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::ToolCallStart {
            index: 2,
            id: "toolu_a".into(),
            name: "a".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 2,
            arguments: "".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 2,
            arguments: "{}".into(),
        },
        StreamEvent::BlockStop { index: 2 },
        StreamEvent::ToolCallStart {
            index: 3,
            id: "toolu_b".into(),
            name: "b".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 3,
            arguments: "{\"x\":".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 3,
            arguments: "1}".into(),
        },
        StreamEvent::BlockStop { index: 3 },
        // A delta whose start never came still gets its own tool index.
        StreamEvent::ToolCallDelta {
            index: 7,
            arguments: "{}".into(),
        },
        StreamEvent::Finish {
            stop_reason: StopReason::ToolUse,
            stop_sequence: None,
        },
        StreamEvent::Usage {
            usage: Usage {
                output_tokens: 60,
                ..Usage::default()
            },
        },
        StreamEvent::Finish {
            stop_reason: StopReason::EndTurn,
            stop_sequence: None,
        },
        StreamEvent::End,
        StreamEvent::End,
    ];
    let payloads = frame_payloads(&encode_stream(&events, true));
    assert_eq!(
        payloads
            .iter()
            .filter(|payload| *payload == "[DONE]")
            .count(),
        1
    );
    let tool_deltas: Vec<Value> = payloads
        .iter()
        .filter_map(|payload| serde_json::from_str::<Value>(payload).ok())
        .filter_map(|chunk| chunk["choices"][0]["delta"].get("tool_calls").cloned())
        .collect();
    assert_eq!(
        tool_deltas,
        vec![
            json!([{"index": 0, "id": "toolu_a", "type": "function", "function": {"name": "a", "arguments": ""}}]),
            json!([{"index": 0, "function": {"arguments": "{}"}}]),
            json!([{"index": 1, "id": "toolu_b", "type": "function", "function": {"name": "b", "arguments": ""}}]),
            json!([{"index": 1, "function": {"arguments": "{\"x\":"}}]),
            json!([{"index": 1, "function": {"arguments": "1}"}}]),
            json!([{"index": 2, "function": {"arguments": "{}"}}]),
        ]
    );
    let assembled = assemble(&payloads);
    assert_eq!(assembled["id"], "msg_01");
    assert_eq!(assembled["content"], "On it.");
    assert_eq!(assembled["reasoning_content"], "Hmm.");
    assert_eq!(
        assembled["finish_reason"], "tool_calls",
        "the first finish wins"
    );
    assert_eq!(
        assembled["usage"],
        json!({"prompt_tokens": 500, "completion_tokens": 60, "total_tokens": 560, "cached_tokens": 100, "reasoning_tokens": 0}),
        "usage from the start merged with usage from the end"
    );
}

#[test]
fn decoder_handles_odd_streams() {
    let mut decoder = openai::StreamDecoder::new();
    let first = decoder
        .decode(r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#)
        .expect("first chunk");
    assert_eq!(
        first.len(),
        1,
        "only Start for an empty first delta: {first:?}"
    );
    let empty = decoder
        .decode(r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}"#)
        .expect("empty chunk");
    assert_eq!(empty, Vec::new(), "an empty delta produces nothing");
    // A tool-call fragment without id or name still opens a block, with a generated id.
    let fragment = decoder
        .decode(r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#)
        .expect("fragment");
    assert!(
        matches!(&fragment[..], [StreamEvent::ToolCallStart { index: 0, id, .. }, StreamEvent::ToolCallDelta { index: 0, .. }] if id.starts_with("call_")),
        "{fragment:?}"
    );
    // [DONE] without a finish chunk still closes the open block.
    let done = decoder.decode("[DONE]").expect("done");
    assert_eq!(
        done,
        vec![StreamEvent::BlockStop { index: 0 }, StreamEvent::End]
    );

    let mut decoder = openai::StreamDecoder::new();
    let error = decoder
        .decode("{not json")
        .expect_err("garbage is an error");
    assert!(error.message.contains("not JSON"), "{error:?}");
    let error = decoder
        .decode(r#"{"error":{"message":"overloaded","type":"server_error"}}"#)
        .expect_err("an error chunk is an error");
    assert!(error.message.contains("overloaded"), "{error:?}");
}

// ---- errors ----

#[test]
fn decode_error_reads_openai_error_bodies() {
    let decoded = openai::decode_error(429, fixture_text("error_429.json").as_bytes());
    assert_eq!(to_value(&decoded), fixture("error_429.canonical.json"));
    assert_eq!(
        openai::encode_error(&decoded),
        fixture("error_429.encoded.json")
    );

    let with_param = openai::decode_error(
        400,
        br#"{"error":{"message":"bad","type":"invalid_request_error","param":"messages[0]","code":400}}"#,
    );
    assert_eq!(
        with_param,
        ErrorBody::new(ErrorKind::InvalidRequest, "bad")
            .with_param("messages[0]")
            .with_code("400")
    );
    let plain = openai::decode_error(503, br#"{"error":"model is loading"}"#);
    assert_eq!(
        plain,
        ErrorBody::new(ErrorKind::Unavailable, "model is loading")
    );
}

#[test]
fn decode_error_never_copies_garbage() {
    let html = openai::decode_error(
        502,
        b"<html><head><title>502 Bad Gateway</title></head></html>",
    );
    assert_eq!(
        html,
        ErrorBody::new(ErrorKind::BadGateway, "provider returned HTTP 502")
    );
    let empty = openai::decode_error(500, b"");
    assert_eq!(
        empty,
        ErrorBody::new(ErrorKind::Internal, "provider returned HTTP 500")
    );
    let long_text = "upstream exploded ".repeat(100);
    let long = openai::decode_error(504, long_text.as_bytes());
    assert_eq!(long.kind, ErrorKind::Timeout);
    assert!(
        long.message
            .starts_with("provider returned HTTP 504: upstream exploded"),
        "{long:?}"
    );
    assert!(
        long.message.len() < 260,
        "at most ~200 bytes of the body: {}",
        long.message.len()
    );
    let unicode = openai::decode_error(500, "é".repeat(300).as_bytes());
    assert!(unicode.message.len() < 260, "cut on a character boundary");
}

#[test]
fn encode_error_names_openai_types() {
    let cases = [
        (ErrorKind::InvalidRequest, "invalid_request_error"),
        (ErrorKind::Authentication, "authentication_error"),
        (ErrorKind::Permission, "permission_error"),
        (ErrorKind::NotFound, "not_found_error"),
        (ErrorKind::RequestTooLarge, "invalid_request_error"),
        (ErrorKind::RateLimit, "rate_limit_error"),
        (ErrorKind::Internal, "server_error"),
        (ErrorKind::BadGateway, "server_error"),
        (ErrorKind::Unavailable, "service_unavailable"),
        (ErrorKind::Timeout, "server_error"),
        (ErrorKind::Overloaded, "service_unavailable"),
    ];
    for (kind, expected_type) in cases {
        let encoded =
            openai::encode_error(&ErrorBody::new(kind, "boom").with_code("budget_exceeded"));
        let mut expected_error = Map::new();
        expected_error.insert("message".into(), json!("boom"));
        expected_error.insert("type".into(), json!(expected_type));
        expected_error.insert("param".into(), Value::Null);
        expected_error.insert("code".into(), json!("budget_exceeded"));
        assert_eq!(encoded, json!({"error": expected_error}), "{kind:?}");
    }
}

/// Audio, files, custom tools and part types newer than Routerly decode (a same-format call
/// forwards the client's own body); a translation refuses the content naming it and leaves
/// the custom tool out.
#[test]
fn unrepresented_parts_and_tools_are_carried() {
    let decoded = openai::decode_request(&json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-1"}},
                {"type": "part_from_the_future"}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "custom", "custom": {"name": "grammar", "input": "x"}}
            ]}
        ],
        "tools": [
            {"type": "custom", "custom": {"name": "grammar"}},
            {"type": "function", "function": {"name": "f"}}
        ],
        "web_search_options": {"search_context_size": "low"}
    }))
    .expect("decodes");
    assert_eq!(
        to_value(&decoded.messages),
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "opaque", "kind": "input_audio", "path": "messages[0].content[1]", "chars": 18},
                {"type": "opaque", "kind": "file", "path": "messages[0].content[2]", "chars": 10},
                {"type": "opaque", "kind": "part_from_the_future", "path": "messages[0].content[3]", "chars": 20}
            ]},
            {"role": "assistant", "content": [
                {"type": "opaque", "kind": "custom", "path": "messages[1].tool_calls[0]", "chars": 20}
            ]}
        ])
    );
    assert_eq!(decoded.tools.len(), 1);
    let error = routerly_core::wire::encode_request(
        routerly_core::wire::WireFormat::AnthropicMessages,
        &decoded,
        "claude",
    )
    .expect_err("audio cannot go to Anthropic");
    assert_eq!(error.param.as_deref(), Some("messages[0].content[1]"));
}

// ---- the simple reader ----

/// What the full decoder makes of `text` (parsed into a tree first, as the server does).
fn full_decode(text: &str) -> Result<ChatRequest, routerly_core::canonical::DecodeError> {
    let tree: Value = serde_json::from_str(text).expect("test bodies are JSON");
    openai::decode_request(&tree)
}

#[test]
fn the_simple_reader_gives_what_the_full_decoder_gives() {
    let bodies = [
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
        // Every member it reads, nulls reading as absent, integers where numbers go.
        r#"{"model":"m","max_tokens":64,"max_completion_tokens":null,"stream":true,
            "stream_options":{"include_usage":true},"temperature":1,"top_p":0.5,
            "presence_penalty":-0.25,"frequency_penalty":null,"seed":-7,"user":"u-1",
            "parallel_tool_calls":false,
            "messages":[{"content":"be terse","role":"system"},{"role":"user","content":"q"}]}"#,
        // max_completion_tokens wins over max_tokens, whatever max_tokens says.
        r#"{"model":"m","max_tokens":0,"max_completion_tokens":5,"messages":[{"role":"user","content":"q"}]}"#,
        // Escapes in text and in the model; an empty assistant text is no part; a system
        // message after the first turn stays in its place; developer is system.
        r#"{"model":"gpt-4o\u002dmini","stream_options":{},"messages":[
            {"role":"developer","content":"line\none \"quoted\" \u00e9"},
            {"role":"system","content":""},
            {"role":"user","content":"💡"},
            {"role":"assistant","content":""},
            {"role":"assistant","content":"a"},
            {"role":"system","content":"late"},
            {"role":"user","content":""}]}"#,
    ];
    for text in bodies {
        let simple = openai::decode_simple_request(text)
            .map(|simple| simple.request)
            .unwrap_or_else(|| panic!("the simple reader should read {text}"));
        assert_eq!(
            Ok(simple),
            full_decode(text),
            "the readers disagree on {text}"
        );
    }
}

#[test]
fn the_simple_reader_leaves_every_other_body_to_the_full_decoder() {
    let bodies = [
        // Members it does not read, known to the full decoder or not.
        r#"{"model":"m","n":1,"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","stop":"x","messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","metadata":{},"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","stream_options":{"include_usage":true,"x":1},"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"q","name":"alice"}]}"#,
        // Shapes and roles it does not read.
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"q"}]}]}"#,
        r#"{"model":"m","messages":[{"role":"tool","tool_call_id":"c","content":"r"}]}"#,
        r#"{"model":"m","messages":[{"role":"function","content":"q"}]}"#,
        r#"{"model":"m","messages":[{"role":"us\u0065r","content":"q"}]}"#,
        r#"{"model":"m","user":"\u0075","messages":[{"role":"user","content":"q"}]}"#,
        // What the full decoder refuses, naming the field.
        r#"{"model":null,"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","messages":[]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":null}]}"#,
        r#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":4294967296,"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":1.5,"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","stream":"yes","messages":[{"role":"user","content":"q"}]}"#,
        // A member twice: the tree keeps the last, the simple reader none.
        r#"{"model":"a","model":"b","messages":[{"role":"user","content":"q"}]}"#,
        r#"[{"model":"m"}]"#,
    ];
    for text in bodies {
        assert_eq!(
            openai::decode_simple_request(text).map(|simple| simple.request),
            None,
            "the simple reader should leave {text} to the full decoder"
        );
    }
    assert_eq!(
        full_decode(bodies[13])
            .expect_err("a zero limit")
            .param
            .as_deref(),
        Some("max_tokens")
    );
}

mod simple_reader_properties {
    use super::*;
    use proptest::prelude::*;

    /// A message as clients send it: a role (one the simple reader does not read now and
    /// then) and text with escapes, or content the simple reader leaves alone.
    fn message() -> impl Strategy<Value = Value> {
        let role = proptest::sample::select(vec![
            "system",
            "developer",
            "user",
            "assistant",
            "user",
            "assistant",
            "tool",
        ]);
        let content = prop_oneof![
            6 => "[a-z \"\\\\é💡\n]{0,12}".prop_map(Value::String),
            1 => Just(Value::Null),
            1 => Just(json!([{"type": "text", "text": "part"}])),
        ];
        (role, content).prop_map(|(role, content)| json!({"role": role, "content": content}))
    }

    /// Optional members: those the simple reader reads, with good and bad values, and a few
    /// it does not.
    fn members() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
        let member = prop_oneof![
            Just(("max_tokens", json!(64))),
            Just(("max_tokens", json!(0))),
            Just(("max_tokens", Value::Null)),
            Just(("max_completion_tokens", json!(9))),
            Just(("stream", json!(true))),
            Just(("stream", json!("true"))),
            Just(("stream_options", json!({"include_usage": true}))),
            Just(("stream_options", Value::Null)),
            Just(("temperature", json!(0.7))),
            Just(("temperature", json!(2))),
            Just(("top_p", json!(1))),
            Just(("presence_penalty", json!(-1.5))),
            Just(("frequency_penalty", json!(0.25))),
            Just(("seed", json!(-3))),
            Just(("seed", json!(1.5))),
            Just(("user", json!("someone"))),
            Just(("parallel_tool_calls", json!(true))),
            Just(("n", json!(1))),
            Just(("stop", json!(["\n"]))),
            Just(("logprobs", json!(false))),
        ];
        proptest::collection::vec(member, 0..5)
    }

    proptest! {
        #[test]
        fn where_the_simple_reader_reads_a_body_it_agrees_with_the_full_decoder(
            messages in proptest::collection::vec(message(), 0..5),
            members in members(),
        ) {
            let mut body = Map::new();
            body.insert("model".to_owned(), json!("gpt-4o"));
            for (name, value) in members {
                body.insert(name.to_owned(), value);
            }
            body.insert("messages".to_owned(), Value::Array(messages));
            let text = serde_json::to_string(&body).expect("serializes");
            let full = full_decode(&text);
            if let Some(simple) = openai::decode_simple_request(&text) {
                prop_assert_eq!(Ok(simple.request), full, "{}", text);
            } else {
                // Only bodies outside the simple shape, or at fault, go to the full decoder:
                // the fast path does not quietly stop applying.
                let simple_shape = body.iter().all(|(name, value)| match name.as_str() {
                    "n" | "stop" | "logprobs" => false,
                    "max_tokens" => value != &json!(0),
                    "stream" => !value.is_string(),
                    "seed" => !value.is_f64(),
                    "messages" => value.as_array().is_some_and(|messages| {
                        !messages.is_empty()
                            && messages.iter().all(|message| {
                                message["role"] != "tool" && message["content"].is_string()
                            })
                    }),
                    _ => true,
                });
                prop_assert!(!simple_shape, "the simple reader refused {}", text);
            }
        }
    }
}
