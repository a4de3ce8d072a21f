//! Fixture tests of the Anthropic Messages wire format.
//!
//! Inputs under `tests/fixtures/anthropic/` are shaped like Anthropic's API reference;
//! each has an expected canonical form beside it (`<name>.expected.json`, and for streams
//! `<name>.message.json`, the message a client assembles from the re-encoded stream).
//! Everything is compared as JSON values. After a deliberate change, rerun with
//! `UPDATE_FIXTURES=1` to rewrite the expected files, then review their diff.

use std::path::PathBuf;

use pretty_assertions::assert_eq;
use routerly_core::canonical::{
    ChatRequest, ChatResponse, ContentPart, DecodeError, ErrorBody, ErrorKind, ImageSource,
    Message, Reasoning, ResponseFormat, Role, StopReason, StreamEvent, Tool, ToolChoice, Usage,
};
use routerly_core::wire::SseFrame;
use routerly_core::wire::anthropic::{
    self, DEFAULT_MAX_TOKENS, StreamDecoder, StreamEncoder, count_tokens_request, decode_error,
    decode_request, decode_response, encode_error, encode_request, encode_response,
    stop_reason_name,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/anthropic")
        .join(name)
}

fn read_text(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name))
        .unwrap_or_else(|error| panic!("fixture {name} should be readable: {error}"))
}

fn read_json(name: &str) -> Value {
    serde_json::from_str(&read_text(name))
        .unwrap_or_else(|error| panic!("fixture {name} should be JSON: {error}"))
}

/// Compares `actual` with the expected file `name`, or rewrites the file when
/// `UPDATE_FIXTURES` is set.
fn check(name: &str, actual: &Value) {
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let pretty = serde_json::to_string_pretty(actual).expect("a JSON value serializes");
        std::fs::write(fixture_path(name), pretty + "\n").expect("expected file is writable");
        return;
    }
    let expected = read_json(name);
    assert_eq!(&expected, actual, "{name} differs from the actual value");
}

fn to_value(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("canonical types serialize")
}

/// A decoded response with `created` (the decoding time) zeroed, for comparison.
fn decode_response_fixture(name: &str) -> ChatResponse {
    let mut response = decode_response(&read_json(name)).expect("response fixture decodes");
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - 5..=now).contains(&response.created),
        "created should be the decoding time"
    );
    response.created = 0;
    response
}

/// The `(event, data)` pairs of an SSE transcript.
fn parse_sse(transcript: &str) -> Vec<(Option<String>, String)> {
    transcript
        .split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut event = None;
            let mut data = Vec::new();
            for line in frame.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = Some(name.trim().to_owned());
                } else if let Some(payload) = line.strip_prefix("data:") {
                    data.push(payload.trim_start());
                }
            }
            (event, data.join("\n"))
        })
        .collect()
}

fn decode_stream(name: &str) -> Vec<StreamEvent> {
    let mut decoder = StreamDecoder::new();
    parse_sse(&read_text(name))
        .iter()
        .flat_map(|(event, data)| {
            decoder
                .decode(event.as_deref(), data)
                .unwrap_or_else(|error| panic!("{name}: event {event:?} should decode: {error}"))
        })
        .collect()
}

fn encode_stream(events: &[StreamEvent]) -> Vec<SseFrame> {
    let mut encoder = StreamEncoder::new();
    events
        .iter()
        .flat_map(|event| encoder.encode(event))
        .collect()
}

/// Plays frames the way an Anthropic SDK accumulates them into a message, asserting the
/// protocol on the way: one open block at a time, dense indexes, deltas only to the open
/// block, nothing after `message_stop`.
fn reassemble(frames: &[SseFrame]) -> Value {
    let mut message: Option<Value> = None;
    let mut open_block: Option<usize> = None;
    let mut partial_json = String::new();
    let mut stopped = false;
    for frame in frames {
        assert!(!stopped, "no frame may follow message_stop: {frame:?}");
        let data: Value = serde_json::from_str(&frame.data).expect("frame data is JSON");
        let event_type = data["type"].as_str().expect("frame data has a type");
        assert_eq!(
            frame.event,
            Some(event_type),
            "event name matches data type"
        );
        if event_type == "message_start" {
            assert!(message.is_none(), "message_start comes once");
            message = Some(data["message"].clone());
            continue;
        }
        let message = message.as_mut().expect("message_start comes first");
        let content = message["content"]
            .as_array_mut()
            .expect("message content is an array");
        let index = data["index"].as_u64().map(|index| index as usize);
        match event_type {
            "ping" => {}
            "content_block_start" => {
                assert_eq!(open_block, None, "a block starts while another is open");
                assert_eq!(index, Some(content.len()), "block indexes are dense");
                content.push(data["content_block"].clone());
                open_block = index;
                partial_json.clear();
            }
            "content_block_delta" => {
                assert_eq!(index, open_block, "deltas go to the open block");
                let block = &mut content[index.expect("delta has an index")];
                let delta = &data["delta"];
                let append = |field: &mut Value, text: &Value| {
                    let joined = format!(
                        "{}{}",
                        field.as_str().unwrap_or_default(),
                        text.as_str().expect("delta text is a string")
                    );
                    *field = json!(joined);
                };
                match delta["type"].as_str().expect("delta has a type") {
                    "text_delta" => append(&mut block["text"], &delta["text"]),
                    "thinking_delta" => append(&mut block["thinking"], &delta["thinking"]),
                    "signature_delta" => append(&mut block["signature"], &delta["signature"]),
                    "input_json_delta" => {
                        partial_json.push_str(delta["partial_json"].as_str().expect("partial_json"))
                    }
                    other => panic!("unexpected delta type {other}"),
                }
            }
            "content_block_stop" => {
                assert_eq!(index, open_block, "the open block stops");
                let block = &mut content[index.expect("stop has an index")];
                if block["type"] == "tool_use" && !partial_json.is_empty() {
                    block["input"] =
                        serde_json::from_str(&partial_json).expect("tool input JSON is complete");
                }
                open_block = None;
            }
            "message_delta" => {
                assert_eq!(open_block, None, "blocks are closed before message_delta");
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                for (key, value) in data["usage"].as_object().expect("message_delta usage") {
                    message["usage"][key] = value.clone();
                }
            }
            "message_stop" => stopped = true,
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(stopped, "the stream ends with message_stop");
    message.expect("the stream has a message_start")
}

fn decode_error_param(body: Value) -> DecodeError {
    decode_request(&body).expect_err("the body should be rejected")
}

fn user(content: Vec<ContentPart>) -> Message {
    Message {
        role: Role::User,
        content,
    }
}

fn assistant(content: Vec<ContentPart>) -> Message {
    Message {
        role: Role::Assistant,
        content,
    }
}

fn tool_call(id: &str, name: &str, arguments: &str) -> ContentPart {
    ContentPart::ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    }
}

fn tool_result(id: &str, text: &str) -> ContentPart {
    ContentPart::ToolResult {
        tool_call_id: id.into(),
        content: vec![ContentPart::text(text)],
        is_error: false,
    }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

const REQUEST_FIXTURES: [&str; 4] = [
    "request_basic",
    "request_tools_roundtrip",
    "request_image",
    "request_thinking",
];

#[test]
fn request_fixtures_decode_to_their_canonical_form() {
    for name in REQUEST_FIXTURES {
        let request = decode_request(&read_json(&format!("{name}.json")))
            .unwrap_or_else(|error| panic!("{name} should decode: {error:?}"));
        check(&format!("{name}.expected.json"), &to_value(&request));
    }
}

#[test]
fn request_fixtures_survive_encode_then_decode() {
    for name in REQUEST_FIXTURES {
        let request = decode_request(&read_json(&format!("{name}.json")))
            .unwrap_or_else(|error| panic!("{name} should decode: {error:?}"));
        let encoded = encode_request(&request, "claude-upstream").expect("request encodes");
        assert_eq!(
            encoded["model"], "claude-upstream",
            "{name}: model replaced"
        );
        let mut round_trip = decode_request(&encoded).expect("encoded request decodes");
        round_trip.model = request.model.clone();
        assert_eq!(request, round_trip, "{name}: modelled fields survive");
    }
}

#[test]
fn thinking_history_keeps_signed_thinking_and_drops_redacted() {
    let request = decode_request(&read_json("request_thinking.json")).expect("fixture decodes");
    let encoded = encode_request(&request, "claude-sonnet-4-5").expect("request encodes");
    assert_eq!(
        encoded["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "Let me recall the classic argument by contradiction.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
            {"type": "text", "text": "Yes, there are infinitely many such primes."}
        ])
    );
    assert_eq!(
        encoded["thinking"],
        json!({"type": "enabled", "budget_tokens": 10000})
    );
    assert_eq!(encoded["max_tokens"], 16000);
    assert_eq!(encoded["stream"], true);
}

#[test]
fn tool_results_lead_their_user_message_when_encoded() {
    let request =
        decode_request(&read_json("request_tools_roundtrip.json")).expect("fixture decodes");
    let encoded = encode_request(&request, "claude-sonnet-4-5").expect("request encodes");
    let types: Vec<&str> = encoded["messages"][2]["content"]
        .as_array()
        .expect("content is an array")
        .iter()
        .map(|block| block["type"].as_str().expect("block type"))
        .collect();
    assert_eq!(types, ["tool_result", "tool_result", "text"]);
    assert_eq!(
        encoded["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": false})
    );
    assert_eq!(
        encoded["messages"][2]["content"][1],
        json!({"type": "tool_result", "tool_use_id": "toolu_01B19q90qw90lq917835lq8", "content": "timezone service unavailable", "is_error": true})
    );
}

/// A request as an OpenAI client would produce it, sent to Anthropic.
#[test]
fn cross_format_request_is_adapted_to_anthropic_rules() {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let request = ChatRequest {
        model: "auto".into(),
        system: vec![ContentPart::text("Be brief.")],
        messages: vec![
            user(vec![ContentPart::text("Weather in Rome?")]),
            user(vec![ContentPart::Image {
                source: ImageSource::Url {
                    url: "https://example.com/rome.png".into(),
                },
                detail: Some("high".into()),
            }]),
            assistant(vec![
                ContentPart::Thinking {
                    text: "unsigned reasoning from another provider".into(),
                    signature: None,
                },
                ContentPart::text(""),
                tool_call("call_1", "get_weather", r#"{"city":"Rome"}"#),
            ]),
            user(vec![ContentPart::text("also this")]),
            user(vec![tool_result("call_1", "sunny")]),
        ],
        max_tokens: Some(2000),
        temperature: Some(1.6),
        top_p: Some(0.9),
        top_k: Some(20),
        stop: vec!["END".into()],
        stream: true,
        stream_include_usage: true,
        tools: vec![Tool {
            name: "get_weather".into(),
            description: None,
            parameters: Value::Null,
            strict: Some(true),
        }],
        tool_choice: None,
        parallel_tool_calls: Some(false),
        response_format: Some(ResponseFormat::JsonSchema {
            name: "weather".into(),
            schema: schema.clone(),
            strict: Some(true),
        }),
        reasoning: Some(Reasoning {
            budget_tokens: None,
            effort: Some("high".into()),
        }),
        presence_penalty: Some(0.5),
        frequency_penalty: Some(0.5),
        seed: Some(7),
        user: Some("end-user-9".into()),
        hosted_tools: Vec::new(),
    };
    let encoded = encode_request(&request, "claude-sonnet-4-5").expect("request encodes");
    assert_eq!(
        encoded,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 16384 + 1024,
            "system": [
                {"type": "text", "text": "Be brief."},
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Rome?"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/rome.png"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Rome"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                    {"type": "text", "text": "also this"},
                ]},
            ],
            "stop_sequences": ["END"],
            "stream": true,
            "tools": [
                {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}},
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "thinking": {"type": "enabled", "budget_tokens": 16384},
            "metadata": {"user_id": "end-user-9"},
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        })
    );
}

#[test]
fn sampling_and_defaults_without_thinking() {
    let request = ChatRequest {
        model: "auto".into(),
        messages: vec![user(vec![ContentPart::text("hi")])],
        temperature: Some(1.6),
        top_p: Some(0.9),
        top_k: Some(20),
        response_format: Some(ResponseFormat::JsonObject),
        ..ChatRequest::default()
    };
    let encoded = encode_request(&request, "claude-haiku-4-5").expect("request encodes");
    assert_eq!(encoded["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(encoded["temperature"], 1.0, "clamped to Anthropic's range");
    assert_eq!(
        encoded.get("top_p"),
        None,
        "dropped when temperature is set"
    );
    assert_eq!(encoded["top_k"], 20);
    assert_eq!(
        encoded["system"],
        json!([{"type": "text", "text": "Respond with only a valid JSON object: no other text, no Markdown code fences."}])
    );
    assert_eq!(encoded.get("stream"), None);
    assert_eq!(encoded.get("thinking"), None);
}

#[test]
fn thinking_budgets_from_effort_and_forced_tools() {
    let base = ChatRequest {
        model: "auto".into(),
        messages: vec![user(vec![ContentPart::text("hi")])],
        max_tokens: Some(8000),
        ..ChatRequest::default()
    };
    let cases: [(Option<u32>, Option<&str>, Option<u32>); 6] = [
        (Some(500), None, Some(1024)),
        (Some(3000), Some("high"), Some(3000)),
        (None, Some("low"), Some(1024)),
        (None, Some("medium"), Some(4096)),
        (None, Some("high"), Some(16384)),
        (None, Some("minimal"), None),
    ];
    for (budget_tokens, effort, expected_budget) in cases {
        let request = ChatRequest {
            reasoning: Some(Reasoning {
                budget_tokens,
                effort: effort.map(str::to_owned),
            }),
            ..base.clone()
        };
        let encoded = encode_request(&request, "claude").expect("request encodes");
        assert_eq!(
            encoded["thinking"]["budget_tokens"].as_u64(),
            expected_budget.map(u64::from),
            "budget for {budget_tokens:?}/{effort:?}"
        );
        let max_tokens = encoded["max_tokens"].as_u64().expect("max_tokens");
        assert!(
            expected_budget.is_none_or(|budget| max_tokens > u64::from(budget)),
            "max_tokens {max_tokens} exceeds the budget"
        );
    }
    let forced = ChatRequest {
        reasoning: Some(Reasoning {
            budget_tokens: Some(2048),
            effort: None,
        }),
        temperature: Some(0.2),
        tools: vec![Tool {
            name: "f".into(),
            description: Some("does f".into()),
            parameters: json!({"type": "object"}),
            strict: None,
        }],
        tool_choice: Some(ToolChoice::Tool { name: "f".into() }),
        ..base
    };
    let encoded = encode_request(&forced, "claude").expect("request encodes");
    assert_eq!(
        encoded.get("thinking"),
        None,
        "forced tool use turns thinking off"
    );
    assert_eq!(
        encoded["temperature"], 0.2,
        "temperature kept without thinking"
    );
    assert_eq!(encoded["tool_choice"], json!({"type": "tool", "name": "f"}));
}

#[test]
fn tool_call_arguments_that_are_not_an_object_are_rejected() {
    let request = ChatRequest {
        model: "auto".into(),
        messages: vec![
            user(vec![ContentPart::text("hi")]),
            assistant(vec![
                ContentPart::text("calling"),
                tool_call("call_1", "f", "{not json"),
            ]),
        ],
        ..ChatRequest::default()
    };
    let error = encode_request(&request, "claude").expect_err("bad arguments are rejected");
    assert_eq!(
        error.param.as_deref(),
        Some("messages[1].content[1].arguments")
    );

    let empty_arguments = ChatRequest {
        messages: vec![assistant(vec![tool_call("call_1", "f", "")])],
        ..request
    };
    let encoded = encode_request(&empty_arguments, "claude").expect("empty arguments are {}");
    assert_eq!(encoded["messages"][0]["content"][0]["input"], json!({}));
}

#[test]
fn count_tokens_body_has_only_prompt_fields() {
    let request =
        decode_request(&read_json("request_tools_roundtrip.json")).expect("fixture decodes");
    let body = count_tokens_request(&request, "claude-sonnet-4-5").expect("body encodes");
    let keys: Vec<&str> = body
        .as_object()
        .expect("body is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["model", "system", "messages", "tools", "tool_choice"]
    );
    let thinking = decode_request(&read_json("request_thinking.json")).expect("fixture decodes");
    let body = count_tokens_request(&thinking, "claude-sonnet-4-5").expect("body encodes");
    assert_eq!(body["thinking"]["budget_tokens"], 10000);
    assert_eq!(body.get("max_tokens"), None);
    assert_eq!(body.get("stream"), None);
}

#[test]
fn bad_requests_name_the_field_at_fault() {
    let valid = read_json("request_tools_roundtrip.json");
    let with = |path: &[&str], value: Value| {
        let mut body = valid.clone();
        let mut target = &mut body;
        for key in &path[..path.len() - 1] {
            target = match key.parse::<usize>() {
                Ok(index) => &mut target[index],
                Err(_) => &mut target[*key],
            };
        }
        let last = path[path.len() - 1];
        match last.parse::<usize>() {
            Ok(index) => target[index] = value,
            Err(_) => target[last] = value,
        }
        body
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().expect("object").remove(key);
        body
    };
    let cases = [
        (without("max_tokens"), "max_tokens"),
        (without("model"), "model"),
        (without("messages"), "messages"),
        (with(&["max_tokens"], json!("1024")), "max_tokens"),
        (with(&["max_tokens"], json!(0)), "max_tokens"),
        (with(&["temperature"], json!("hot")), "temperature"),
        (
            with(&["stop_sequences"], json!(["ok", 3])),
            "stop_sequences[1]",
        ),
        (
            with(&["messages", "1", "role"], json!("tool")),
            "messages[1].role",
        ),
        (
            with(&["messages", "0", "role"], json!("system")),
            "messages[0].role",
        ),
        (
            with(&["messages", "0", "content"], json!(42)),
            "messages[0].content",
        ),
        (
            with(
                &["messages", "1", "content", "1", "input"],
                json!("{\"location\":\"Paris\"}"),
            ),
            "messages[1].content[1].input",
        ),
        (
            with(
                &["messages", "2", "content", "0"],
                json!({"type": "tool_result", "content": "x"}),
            ),
            "messages[2].content[0].tool_use_id",
        ),
        (
            with(
                &["messages", "0", "content"],
                json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
            ),
            "messages[0].content[0].type",
        ),
        (
            with(&["tools", "1", "input_schema"], json!("object")),
            "tools[1].input_schema",
        ),
        (
            with(&["tool_choice"], json!({"type": "some"})),
            "tool_choice.type",
        ),
        (
            with(&["tool_choice"], json!({"type": "tool"})),
            "tool_choice.name",
        ),
        (
            with(&["thinking"], json!({"type": "enabled"})),
            "thinking.budget_tokens",
        ),
        (
            with(&["system"], json!([{"type": "image"}])),
            "system[0].type",
        ),
        (
            with(&["metadata"], json!({"user_id": 5})),
            "metadata.user_id",
        ),
    ];
    for (body, param) in cases {
        let error = decode_error_param(body);
        assert_eq!(
            error.param.as_deref(),
            Some(param),
            "error: {}",
            error.message
        );
        assert!(
            !error.message.is_empty(),
            "the error for {param} says what is wrong"
        );
    }
    let not_an_object = decode_request(&json!([1, 2])).expect_err("arrays are rejected");
    assert_eq!(not_an_object.param, None);
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

const RESPONSE_FIXTURES: [&str; 3] = ["response_text", "response_tool_use", "response_cache_usage"];

#[test]
fn response_fixtures_decode_to_their_canonical_form() {
    for name in RESPONSE_FIXTURES {
        let response = decode_response_fixture(&format!("{name}.json"));
        check(&format!("{name}.expected.json"), &to_value(&response));
    }
}

#[test]
fn response_fixtures_survive_decode_then_encode() {
    for name in RESPONSE_FIXTURES {
        let mut original = read_json(&format!("{name}.json"));
        let usage = original["usage"].as_object_mut().expect("usage object");
        // Not modelled: the tier and the per-duration split of cache writes.
        usage.remove("service_tier");
        usage.remove("cache_creation");
        let encoded = encode_response(&decode_response_fixture(&format!("{name}.json")));
        assert_eq!(
            original, encoded,
            "{name}: the client sees the same message"
        );
    }
}

#[test]
fn cache_usage_is_added_to_input_and_subtracted_again() {
    let response = decode_response_fixture("response_cache_usage.json");
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 21 + 30072 + 1188,
            output_tokens: 393,
            cached_input_tokens: 30072,
            cache_write_tokens: 1188,
            reasoning_tokens: 0,
        }
    );
    assert_eq!(response.usage.uncached_input_tokens(), 21);
    let encoded = encode_response(&response);
    assert_eq!(
        encoded["usage"],
        json!({"input_tokens": 21, "cache_creation_input_tokens": 1188, "cache_read_input_tokens": 30072, "output_tokens": 393})
    );
}

#[test]
fn foreign_responses_are_encoded_as_anthropic_messages() {
    let response = ChatResponse {
        id: "chatcmpl-abc123".into(),
        model: "gpt-4o".into(),
        content: vec![
            ContentPart::Thinking {
                text: "unsigned".into(),
                signature: None,
            },
            ContentPart::text("Calling."),
            tool_call("call_1", "f", "{\"a\": 1"),
            tool_call("call_2", "g", "{\"b\":2}"),
        ],
        stop_reason: Some(StopReason::ToolUse),
        stop_sequence: None,
        usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
            cached_input_tokens: 60,
            cache_write_tokens: 0,
            reasoning_tokens: 5,
        },
        created: 1_700_000_000,
        web_sources: Default::default(),
    };
    assert_eq!(
        encode_response(&response),
        json!({
            "id": "msg_chatcmpl-abc123",
            "type": "message",
            "role": "assistant",
            "model": "gpt-4o",
            "content": [
                {"type": "thinking", "thinking": "unsigned", "signature": ""},
                {"type": "text", "text": "Calling."},
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {}},
                {"type": "tool_use", "id": "call_2", "name": "g", "input": {"b": 2}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 20},
        })
    );
}

#[test]
fn bad_responses_are_decode_errors() {
    let error = decode_response(&json!({"type": "message", "content": []}))
        .expect_err("an answer without id is rejected");
    assert_eq!(error.param.as_deref(), Some("id"));
    let error = decode_response(&read_json("error_overloaded.json"))
        .expect_err("an error body is not an answer");
    assert!(error.message.contains("Overloaded"), "{}", error.message);
}

#[test]
fn stop_reasons_have_anthropic_names() {
    let cases = [
        (StopReason::EndTurn, "end_turn"),
        (StopReason::MaxTokens, "max_tokens"),
        (StopReason::StopSequence, "stop_sequence"),
        (StopReason::ToolUse, "tool_use"),
        (StopReason::ContentFilter, "refusal"),
        (StopReason::PauseTurn, "pause_turn"),
    ];
    for (reason, name) in cases {
        assert_eq!(stop_reason_name(&reason), name);
        let response = decode_response(&json!({"id": "msg_1", "content": [], "stop_reason": name}))
            .expect("response decodes");
        assert_eq!(response.stop_reason, Some(reason), "{name} decodes back");
    }
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

const STREAM_FIXTURES: [&str; 3] = ["stream_text", "stream_tool_use", "stream_thinking"];

#[test]
fn stream_transcripts_decode_to_their_events() {
    for name in STREAM_FIXTURES {
        let events = decode_stream(&format!("{name}.sse"));
        check(&format!("{name}.expected.json"), &to_value(&events));
    }
}

#[test]
fn stream_events_reencode_to_the_message_a_client_assembles() {
    for name in STREAM_FIXTURES {
        let events = decode_stream(&format!("{name}.sse"));
        let message = reassemble(&encode_stream(&events));
        check(&format!("{name}.message.json"), &message);
    }
}

#[test]
fn streamed_message_matches_the_non_streamed_encoding() {
    // The same answer, streamed or not, reaches an Anthropic client as the same message.
    let events = decode_stream("stream_tool_use.sse");
    let mut response = ChatResponse {
        id: String::new(),
        model: String::new(),
        content: Vec::new(),
        stop_reason: None,
        stop_sequence: None,
        usage: Usage::default(),
        created: 0,
        web_sources: Default::default(),
    };
    for event in &events {
        match event {
            StreamEvent::Start { id, model, usage } => {
                response.id = id.clone();
                response.model = model.clone();
                response.usage.merge(usage);
            }
            StreamEvent::TextDelta { text, .. } => response.content.push(ContentPart::text(text)),
            StreamEvent::ToolCallStart { id, name, .. } => {
                response.content.push(tool_call(id, name, ""));
            }
            StreamEvent::ToolCallDelta { arguments, .. } => {
                if let Some(ContentPart::ToolCall { arguments: all, .. }) =
                    response.content.last_mut()
                {
                    all.push_str(arguments);
                }
            }
            StreamEvent::Usage { usage } => response.usage.merge(usage),
            StreamEvent::Finish {
                stop_reason,
                stop_sequence,
            } => {
                response.stop_reason = Some(stop_reason.clone());
                response.stop_sequence = stop_sequence.clone();
            }
            _ => {}
        }
    }
    assert_eq!(
        reassemble(&encode_stream(&events)),
        encode_response(&response)
    );
}

#[test]
fn encoder_repairs_loose_event_sequences() {
    // As an OpenAI-side decoder might produce them: no block starts, no stops, usage in
    // pieces, and a stray event after the end.
    let events = vec![
        StreamEvent::Start {
            id: "chatcmpl-9".into(),
            model: "gpt-4o".into(),
            usage: Usage::default(),
        },
        StreamEvent::ThinkingDelta {
            index: 0,
            text: "hmm".into(),
        },
        StreamEvent::TextDelta {
            index: 1,
            text: "Let me ".into(),
        },
        StreamEvent::TextDelta {
            index: 1,
            text: "check.".into(),
        },
        StreamEvent::ToolCallStart {
            index: 7,
            id: "call_a".into(),
            name: "f".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 7,
            arguments: "{\"x\":".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 7,
            arguments: "1}".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 9,
            arguments: "{}".into(),
        },
        StreamEvent::BlockStop { index: 3 },
        StreamEvent::Usage {
            usage: Usage {
                input_tokens: 50,
                cached_input_tokens: 10,
                ..Usage::default()
            },
        },
        StreamEvent::Usage {
            usage: Usage {
                output_tokens: 12,
                ..Usage::default()
            },
        },
        StreamEvent::End,
        StreamEvent::TextDelta {
            index: 1,
            text: "ignored".into(),
        },
    ];
    let frames = encode_stream(&events);
    let mut message = reassemble(&frames);
    let made_up_id = message["content"][3]["id"]
        .as_str()
        .expect("made-up tool id");
    assert!(made_up_id.starts_with("toolu_"), "{made_up_id}");
    message["content"][3]["id"] = json!("toolu_made_up");
    assert_eq!(
        message,
        json!({
            "id": "msg_chatcmpl-9",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": ""},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
                {"type": "tool_use", "id": "toolu_made_up", "name": "", "input": {}},
            ],
            "model": "gpt-4o",
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10, "output_tokens": 12},
        })
    );
    let names: Vec<&str> = frames.iter().filter_map(|frame| frame.event).collect();
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
}

#[test]
fn encoder_without_start_or_finish_still_writes_a_whole_message() {
    let frames = encode_stream(&[
        StreamEvent::TextDelta {
            index: 0,
            text: "hi".into(),
        },
        StreamEvent::Finish {
            stop_reason: StopReason::MaxTokens,
            stop_sequence: None,
        },
        StreamEvent::End,
    ]);
    let message = reassemble(&frames);
    assert!(
        message["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_")),
        "a message id is made up"
    );
    assert_eq!(message["content"], json!([{"type": "text", "text": "hi"}]));
    assert_eq!(message["stop_reason"], "max_tokens");
}

#[test]
fn decoder_handles_errors_pings_and_unknown_events() {
    let mut decoder = StreamDecoder::new();
    assert_eq!(
        decoder.decode(Some("ping"), "").expect("empty ping"),
        vec![]
    );
    assert_eq!(
        decoder
            .decode(Some("future_event"), r#"{"type":"future_event","x":1}"#)
            .expect("unknown events are ignored"),
        vec![]
    );
    let error = decoder
        .decode(
            Some("error"),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .expect_err("error events are errors");
    assert!(error.message.contains("Overloaded"), "{}", error.message);
    let error = decoder
        .decode(
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":4,"delta":{"type":"text_delta","text":"x"}}"#,
        )
        .expect_err("a delta for a block that never started is an error");
    assert_eq!(error.param.as_deref(), Some("index"));
    decoder
        .decode(Some("message_start"), "not json")
        .expect_err("payloads must be JSON");
}

#[test]
fn message_delta_without_stop_reason_only_reports_usage() {
    let mut decoder = StreamDecoder::new();
    let events = decoder
        .decode(
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{"stop_reason":null,"stop_sequence":null},"usage":{"output_tokens":7}}"#,
        )
        .expect("message_delta decodes");
    assert_eq!(
        events,
        vec![StreamEvent::Usage {
            usage: Usage {
                output_tokens: 7,
                ..Usage::default()
            }
        }]
    );
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[test]
fn error_fixture_decodes_and_reencodes() {
    let body = read_json("error_overloaded.json");
    let error = decode_error(529, body.to_string().as_bytes());
    check("error_overloaded.expected.json", &to_value(&error));
    assert_eq!(
        encode_error(&error),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
}

#[test]
fn unparseable_error_bodies_become_bounded_generic_errors() {
    let html = format!("<html><body>{}</body></html>", "Bad gateway ".repeat(100));
    let error = decode_error(502, html.as_bytes());
    assert_eq!(error.kind, ErrorKind::BadGateway);
    assert!(
        error.message.starts_with("provider returned HTTP 502"),
        "{}",
        error.message
    );
    assert!(error.message.len() < 260, "at most ~200 bytes are copied");
    let empty = decode_error(500, b"");
    assert_eq!(
        empty,
        ErrorBody::new(ErrorKind::Internal, "provider returned HTTP 500")
    );
    let api_error = decode_error(
        503,
        br#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
    );
    assert_eq!(
        api_error.kind,
        ErrorKind::Unavailable,
        "api_error defers to the status"
    );
}

#[test]
fn every_error_kind_has_an_anthropic_type() {
    let cases = [
        (ErrorKind::InvalidRequest, "invalid_request_error"),
        (ErrorKind::Authentication, "authentication_error"),
        (ErrorKind::Permission, "permission_error"),
        (ErrorKind::NotFound, "not_found_error"),
        (ErrorKind::RequestTooLarge, "request_too_large"),
        (ErrorKind::RateLimit, "rate_limit_error"),
        (ErrorKind::Internal, "api_error"),
        (ErrorKind::BadGateway, "api_error"),
        (ErrorKind::Unavailable, "api_error"),
        (ErrorKind::Timeout, "timeout_error"),
        (ErrorKind::Overloaded, "overloaded_error"),
    ];
    for (kind, type_name) in cases {
        let encoded = encode_error(&ErrorBody::new(kind, "boom"));
        assert_eq!(
            encoded,
            json!({"type": "error", "error": {"type": type_name, "message": "boom"}})
        );
        let decoded = decode_error(kind.status(), encoded.to_string().as_bytes());
        assert_eq!(
            decoded.kind,
            kind,
            "{type_name} at {} decodes back",
            kind.status()
        );
    }
}

#[test]
fn module_paths_are_stable() {
    // The server calls these through the module path.
    let _ = anthropic::DEFAULT_MAX_TOKENS;
    let _decode: fn(&Value) -> Result<ChatRequest, DecodeError> = anthropic::decode_request;
}

#[test]
fn structured_output_decodes_from_output_config_and_the_beta_field() {
    let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}});
    for body in [
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
               "output_config": {"format": {"type": "json_schema", "schema": schema}}}),
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
               "output_format": {"type": "json_schema", "schema": schema}}),
    ] {
        let request = decode_request(&body).expect("structured output decodes");
        assert_eq!(
            request.response_format,
            Some(ResponseFormat::JsonSchema {
                name: "output".into(),
                schema: schema.clone(),
                strict: Some(true),
            }),
            "the schema of {body} becomes the canonical response format"
        );
    }
    let bad = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                     "output_config": {"format": {"type": "xml"}}});
    let error = decode_request(&bad).expect_err("an unknown format type is refused");
    assert_eq!(error.param.as_deref(), Some("output_config.format.type"));
}

/// What the canonical model does not represent is carried by kind and place, never refused
/// on decoding: Files API documents, server-tool blocks, Files API images, unknown block types and
/// Anthropic-defined tools; a mid-conversation system message keeps its place. Encoding it
/// for another format is refused naming the field.
#[test]
fn unknown_and_unrepresented_content_is_carried_not_refused() {
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Summarise", "cache_control": {"type": "ephemeral"}},
                {"type": "document", "source": {"type": "file", "file_id": "file_0"}},
                {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
                {"type": "block_from_the_future", "payload": "xyz"}
            ]},
            {"role": "system", "content": "From now on, answer in French."},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}
            ]},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"name": "get_weather", "input_schema": {"type": "object"}},
            {"type": "bash_20250124", "name": "bash"}
        ],
        "unknown_top_level_field": {"anything": true}
    });
    let request = decode_request(&body).expect("decodes");
    let actual = serde_json::to_value(&request).expect("serializes");
    assert_eq!(
        actual["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "Summarise"},
                {"type": "opaque", "kind": "document", "path": "messages[0].content[1]", "chars": 18},
                {"type": "opaque", "kind": "image", "path": "messages[0].content[2]", "chars": 15},
                {"type": "opaque", "kind": "block_from_the_future", "path": "messages[0].content[3]", "chars": 24}
            ]},
            {"role": "system", "content": [{"type": "text", "text": "From now on, answer in French."}]},
            // A turn of nothing but a past web search is left out; the search is carried by
            // name (see the hosted tools below).
            {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}
        ])
    );
    assert_eq!(
        actual["hosted_tools"],
        json!([
            {"kind": "server_tool_use", "path": "messages[2].content[0]"},
            {"kind": "web_search_tool_result", "path": "messages[2].content[1]"},
            // Anthropic's own search is the canonical search (translatable to a target's).
            {"kind": "web_search_20250305", "path": "tools[0]", "web_search": {}},
            {"kind": "bash_20250124", "path": "tools[2]"}
        ])
    );
    assert_eq!(request.tools.len(), 1);
    let error = routerly_core::wire::encode_request(
        routerly_core::wire::WireFormat::OpenAiChat,
        &request,
        "gpt-4o",
    )
    .expect_err("a document cannot be translated");
    assert_eq!(error.param.as_deref(), Some("messages[0].content[1]"));
    assert!(error.message.contains("`document`"), "{}", error.message);
    assert_eq!(
        routerly_core::wire::dropped(routerly_core::wire::WireFormat::OpenAiChat, &request),
        vec![
            "messages[2].content[0] (server_tool_use)",
            "messages[2].content[1] (web_search_tool_result)",
            "tools[0] (web_search_20250305)",
            "tools[2] (bash_20250124)"
        ]
    );
}

/// A mid-conversation system message reaches each target in its nearest form, in order.
#[test]
fn mid_conversation_system_messages_keep_their_place() {
    let body = json!({
        "model": "m",
        "max_tokens": 10,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Bye"}
        ]
    });
    let request = decode_request(&body).expect("decodes");
    let openai = routerly_core::wire::encode_request(
        routerly_core::wire::WireFormat::OpenAiChat,
        &request,
        "gpt-4o",
    )
    .expect("encodes");
    assert_eq!(
        openai["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Use French."},
            {"role": "user", "content": "Bye"}
        ])
    );
    let anthropic = encode_request(&request, "claude").expect("encodes");
    assert_eq!(
        anthropic["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "system", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": [{"type": "text", "text": "Bye"}]}
        ])
    );
    let gemini = routerly_core::wire::encode_request(
        routerly_core::wire::WireFormat::GeminiGenerateContent,
        &request,
        "gemini-2.5-flash",
    )
    .expect("encodes");
    assert_eq!(
        gemini["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "user", "parts": [{"text": "Use French."}]},
            {"role": "user", "parts": [{"text": "Bye"}]}
        ])
    );
    let responses = routerly_core::wire::encode_request(
        routerly_core::wire::WireFormat::OpenAiResponses,
        &request,
        "gpt-4o",
    )
    .expect("encodes");
    assert_eq!(
        responses["input"],
        json!([
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "system", "content": [{"type": "input_text", "text": "Use French."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "Bye"}]}
        ])
    );
}

/// Claude Code's long `metadata.user_id` is hashed to OpenAI's 64 characters; the
/// parameters Anthropic has no slot for are named as dropped.
#[test]
fn translation_limits_and_drops() {
    let long_user = "user_".to_owned() + &"a".repeat(120);
    let body = json!({
        "model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hi"}],
        "metadata": {"user_id": long_user}
    });
    let request = decode_request(&body).expect("decodes");
    let openai = routerly_core::wire::encode_request(
        routerly_core::wire::WireFormat::OpenAiChat,
        &request,
        "gpt-4o",
    )
    .expect("encodes");
    let user = openai["user"].as_str().expect("a user");
    assert_eq!(user.len(), 64);
    assert!(user.bytes().all(|b| b.is_ascii_hexdigit()), "{user}");
    let again = routerly_core::wire::encode_request(
        routerly_core::wire::WireFormat::OpenAiChat,
        &request,
        "gpt-4o",
    )
    .expect("encodes");
    assert_eq!(
        again["user"], openai["user"],
        "the same user hashes the same"
    );

    let from_openai = routerly_core::wire::openai::decode_request(&json!({
        "model": "m",
        "messages": [{"role": "user", "content": "Hi"}],
        "seed": 7, "frequency_penalty": 0.2, "temperature": 0.5,
        "tools": [{"type": "custom", "name": "grammar_tool"}],
        "web_search_options": {}
    }))
    .expect("decodes");
    assert_eq!(
        routerly_core::wire::dropped(
            routerly_core::wire::WireFormat::AnthropicMessages,
            &from_openai
        ),
        vec!["seed", "frequency_penalty", "tools[0] (custom)"],
        "web search becomes Anthropic's own search tool"
    );
    assert_eq!(
        routerly_core::wire::dropped(routerly_core::wire::WireFormat::OllamaChat, &from_openai),
        vec![
            "tools[0] (custom)",
            "web_search_options (web_search_options)"
        ]
    );
    assert!(
        routerly_core::wire::dropped(
            routerly_core::wire::WireFormat::GeminiGenerateContent,
            &routerly_core::wire::openai::decode_request(&json!({
                "model": "m", "messages": [{"role": "user", "content": "Hi"}], "seed": 7
            }))
            .expect("decodes")
        )
        .is_empty(),
        "Gemini takes a seed"
    );
}

/// Fuzz finding (`wire_request`): an Anthropic image of media type `imeffortage/png` was
/// accepted, and written for OpenAI as a data URL that OpenAI's decoder (rightly) refuses as
/// not an image. An image needs an `image/` media type in every decoder.
#[test]
fn an_image_needs_an_image_media_type() {
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "imeffortage/png", "data": "aGk="}}]}]});
    let error = decode_request(&body).expect_err("not an image type");
    assert_eq!(
        error.param.as_deref(),
        Some("messages[0].content[0].source.media_type")
    );
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "IMAGE/png", "data": "aGk="}}]}]});
    decode_request(&body).expect("an image type, in any case");
}

/// An Anthropic answer that searched the web: the search, what it found and the text's
/// citations reach a Responses client as a `web_search_call` item and `url_citation`
/// annotations, and a Chat Completions client as the message's `annotations`.
#[test]
fn web_search_sources_reach_openai_clients() {
    use routerly_core::wire::{self, WireFormat};
    let answer = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [
            {"type": "text", "text": "Let me look. "},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "rust 2024"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                {"type": "web_search_result", "url": "https://blog.rust-lang.org/", "title": "Rust Blog",
                 "encrypted_content": "e1", "page_age": null}
            ]},
            {"type": "text", "text": "Rust 2024 shipped.", "citations": [
                {"type": "web_search_result_location", "url": "https://blog.rust-lang.org/",
                 "title": "Rust Blog", "cited_text": "Rust 2024 is out", "encrypted_index": "i1"}
            ]}
        ],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "server_tool_use": {"web_search_requests": 1}}
    });
    let response = wire::decode_response(WireFormat::AnthropicMessages, &answer).expect("decodes");
    let responses = wire::encode_response(WireFormat::OpenAiResponses, &response);
    let output = responses["output"].as_array().expect("output");
    assert_eq!(output[0]["type"], "web_search_call");
    assert_eq!(
        output[0]["action"],
        json!({"type": "search", "query": "rust 2024",
            "sources": [{"type": "url", "url": "https://blog.rust-lang.org/"}]})
    );
    assert_eq!(output[1]["type"], "message");
    assert_eq!(
        output[1]["content"][0]["text"],
        "Let me look. Rust 2024 shipped."
    );
    assert_eq!(
        output[1]["content"][0]["annotations"],
        json!([{"type": "url_citation", "start_index": 13, "end_index": 31,
            "url": "https://blog.rust-lang.org/", "title": "Rust Blog"}])
    );
    let chat = wire::encode_response(WireFormat::OpenAiChat, &response);
    assert_eq!(
        chat["choices"][0]["message"]["annotations"],
        json!([{"type": "url_citation", "url_citation": {"start_index": 13, "end_index": 31,
            "url": "https://blog.rust-lang.org/", "title": "Rust Blog"}}])
    );
}

/// The same sources in a streamed answer: the search as a `web_search_call` item when its
/// result arrives, the citation as an `output_text.annotation.added` event and in the
/// finished message, and (for Chat Completions) as a delta's `annotations`.
#[test]
fn streamed_web_search_sources_reach_openai_clients() {
    use routerly_core::wire::{openai, responses};
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me look. "}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"query\": \"rust"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " 2024\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
            {"type": "web_search_result", "url": "https://blog.rust-lang.org/", "title": "Rust Blog", "encrypted_content": "e1"}]}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "content_block_start", "index": 3, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 3, "delta": {"type": "citations_delta", "citation": {
            "type": "web_search_result_location", "url": "https://blog.rust-lang.org/", "title": "Rust Blog",
            "cited_text": "Rust 2024 is out", "encrypted_index": "i1"}}}),
        json!({"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "Rust 2024 shipped."}}),
        json!({"type": "content_block_stop", "index": 3}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    let mut decoder = StreamDecoder::new();
    let canonical: Vec<_> = events
        .iter()
        .flat_map(|event| decoder.decode(None, &event.to_string()).expect("decodes"))
        .collect();
    let mut encoder = responses::StreamEncoder::new();
    let frames: Vec<Value> = canonical
        .iter()
        .flat_map(|event| encoder.encode(event))
        .map(|frame| serde_json::from_str(&frame.data).expect("JSON"))
        .collect();
    let of_type = |name: &str| -> Vec<&Value> {
        frames
            .iter()
            .filter(|frame| frame["type"] == name)
            .collect()
    };
    let search = of_type("response.output_item.done")
        .into_iter()
        .find(|frame| frame["item"]["type"] == "web_search_call")
        .expect("a web_search_call item");
    assert_eq!(search["item"]["action"]["query"], "rust 2024");
    assert_eq!(
        search["item"]["action"]["sources"],
        json!([{"type": "url", "url": "https://blog.rust-lang.org/"}])
    );
    let annotation = json!({"type": "url_citation", "start_index": 0, "end_index": 18,
        "url": "https://blog.rust-lang.org/", "title": "Rust Blog"});
    assert_eq!(
        of_type("response.output_text.annotation.added")[0]["annotation"],
        annotation
    );
    let completed = &of_type("response.completed")[0]["response"]["output"];
    let cited = completed
        .as_array()
        .expect("output")
        .iter()
        .find(|item| item["content"][0]["text"] == "Rust 2024 shipped.")
        .expect("the cited message");
    assert_eq!(cited["content"][0]["annotations"], json!([annotation]));
    assert_eq!(completed[1]["type"], "web_search_call");

    let mut chat = openai::StreamEncoder::new(true);
    let chat_frames: String = canonical
        .iter()
        .flat_map(|event| chat.encode(event))
        .map(|frame| frame.data)
        .collect();
    assert!(
        chat_frames.contains(r#""annotations":[{"type":"url_citation","url_citation":{"start_index":13,"end_index":31,"url":"https://blog.rust-lang.org/","title":"Rust Blog"}}]"#),
        "{chat_frames}"
    );
}

/// Claude Code sends back the blocks of a web search Anthropic ran earlier: translated, the
/// search is left out (named in what was dropped) and the answer that used it stays, with
/// the question after it; other server tools' results are still refused.
#[test]
fn a_past_web_search_in_the_history_is_dropped_on_translation_not_refused() {
    use routerly_core::wire::{self, WireFormat};
    let body = json!({
        "model": "m", "max_tokens": 100,
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        "messages": [
            {"role": "user", "content": "What is new in Rust?"},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "rust 2024"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                    {"type": "web_search_result", "url": "https://blog.rust-lang.org/", "title": "Rust Blog",
                     "encrypted_content": "opaque", "page_age": null}
                ]},
                {"type": "text", "text": "Rust 2024 shipped.", "citations": [
                    {"type": "web_search_result_location", "url": "https://blog.rust-lang.org/",
                     "title": "Rust Blog", "cited_text": "Rust 2024", "encrypted_index": "x"}
                ]}
            ]},
            {"role": "user", "content": "And what came after?"}
        ]
    });
    let request = decode_request(&body).expect("decodes");
    assert_eq!(request.first_opaque(), None);
    for format in [
        WireFormat::OpenAiChat,
        WireFormat::OpenAiResponses,
        WireFormat::GeminiGenerateContent,
    ] {
        let sent = wire::encode_request(format, &request, "target").expect("translates");
        let text = sent.to_string();
        assert!(text.contains("Rust 2024 shipped."), "{format:?}: {text}");
        assert!(text.contains("And what came after?"), "{format:?}: {text}");
        assert!(
            !text.contains("srvtoolu_1") && !text.contains("encrypted_content"),
            "{format:?}: {text}"
        );
        let dropped = wire::dropped(format, &request);
        assert!(
            dropped.contains(&"messages[1].content[0] (server_tool_use)".to_owned())
                && dropped.contains(&"messages[1].content[1] (web_search_tool_result)".to_owned()),
            "{format:?}: {dropped:?}"
        );
    }
    // A turn paused mid-search (nothing but the search) is left out whole: no provider
    // takes an empty turn.
    let mut paused = body.clone();
    paused["messages"][1]["content"]
        .as_array_mut()
        .unwrap()
        .truncate(2);
    let request = decode_request(&paused).expect("decodes");
    assert_eq!(request.messages.len(), 2, "{:?}", request.messages);
    for format in [
        WireFormat::OpenAiChat,
        WireFormat::OpenAiResponses,
        WireFormat::GeminiGenerateContent,
    ] {
        let sent = wire::encode_request(format, &request, "target").expect("translates");
        assert!(!sent.to_string().contains("srvtoolu_1"), "{format:?}");
    }
    // A past code execution's result is what the model worked from: refused, not dropped.
    let mut code = body.clone();
    code["messages"][1]["content"][0]["name"] = json!("code_execution");
    code["messages"][1]["content"][1]["type"] = json!("code_execution_tool_result");
    let request = decode_request(&code).expect("decodes");
    let error = wire::encode_request(WireFormat::OpenAiChat, &request, "target")
        .expect_err("a past code execution cannot be left out");
    assert!(
        error.to_string().contains("messages[1].content[0]"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------
// The simple reader
// ---------------------------------------------------------------------------------------

/// What the full decoder makes of `text` (parsed into a tree first, as the server does).
fn full_decode(text: &str) -> Result<ChatRequest, DecodeError> {
    decode_request(&serde_json::from_str(text).expect("test bodies are JSON"))
}

#[test]
fn the_simple_reader_gives_what_the_full_decoder_gives() {
    let bodies = [
        r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}"#,
        // Every member it reads, nulls reading as absent, integers where numbers go.
        r#"{"messages":[{"content":"q","role":"user"},{"role":"assistant","content":""},
            {"role":"user","content":"line\none \"quoted\" \u00e9 💡"}],
            "model":"claude\u002dhaiku","max_tokens":5,"system":"be terse","stream":true,
            "temperature":1,"top_p":null,"top_k":40,"stop_sequences":["\n\nHuman:","END"],
            "metadata":{"user_id":"u-1"}}"#,
        // An empty system prompt is none; metadata without a user is no user.
        r#"{"model":"m","max_tokens":1,"system":"","metadata":{},"stop_sequences":null,
            "messages":[{"role":"user","content":""}]}"#,
    ];
    for text in bodies {
        let simple = anthropic::decode_simple_request(text)
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
        r#"{"model":"m","max_tokens":5,"tools":[],"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":5,"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":5,"metadata":{"user_id":"u","x":1},"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":5,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":5,"system":"\u0073","messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"q"}]}]}"#,
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"},{"role":"system","content":"s"}]}"#,
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q","cache_control":{"type":"ephemeral"}}]}"#,
        // What the full decoder refuses, naming the field.
        r#"{"model":"m","messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"robot","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":null}]}"#,
        r#"{"model":"m","max_tokens":5,"stop_sequences":[1],"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":5,"max_tokens":6,"messages":[{"role":"user","content":"q"}]}"#,
        r#"{"model":"m","max_tokens":5,"messages":[]}"#,
    ];
    for text in bodies {
        assert_eq!(
            anthropic::decode_simple_request(text).map(|simple| simple.request),
            None,
            "the simple reader should leave {text} to the full decoder"
        );
    }
    assert_eq!(
        full_decode(bodies[8])
            .expect_err("no limit")
            .param
            .as_deref(),
        Some("max_tokens")
    );
}

mod simple_reader_properties {
    use super::*;
    use proptest::prelude::*;

    fn message() -> impl Strategy<Value = Value> {
        let role = proptest::sample::select(vec!["user", "assistant", "user", "system"]);
        let content = prop_oneof![
            6 => "[a-z \"\\\\é💡\n]{0,12}".prop_map(Value::String),
            1 => Just(Value::Null),
            1 => Just(json!([{"type": "text", "text": "block"}])),
        ];
        (role, content).prop_map(|(role, content)| json!({"role": role, "content": content}))
    }

    fn members() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
        let member = prop_oneof![
            Just(("max_tokens", json!(0))),
            Just(("max_tokens", json!(2.5))),
            Just(("system", json!("be terse"))),
            Just(("system", json!(""))),
            Just(("system", json!([{"type": "text", "text": "s"}]))),
            Just(("stream", json!(true))),
            Just(("temperature", json!(0.7))),
            Just(("top_p", json!(1))),
            Just(("top_k", json!(5))),
            Just(("top_k", json!(-5))),
            Just(("stop_sequences", json!(["x", "y"]))),
            Just(("metadata", json!({"user_id": "someone"}))),
            Just(("metadata", json!({"user_id": null}))),
            Just(("tool_choice", json!({"type": "auto"}))),
            Just(("service_tier", json!("auto"))),
        ];
        proptest::collection::vec(member, 0..5)
    }

    proptest! {
        #[test]
        fn where_the_simple_reader_reads_a_body_it_agrees_with_the_full_decoder(
            messages in proptest::collection::vec(message(), 0..5),
            members in members(),
        ) {
            let mut body = serde_json::Map::new();
            body.insert("model".to_owned(), json!("claude"));
            body.insert("max_tokens".to_owned(), json!(64));
            for (name, value) in members {
                body.insert(name.to_owned(), value);
            }
            body.insert("messages".to_owned(), Value::Array(messages));
            let text = serde_json::to_string(&body).expect("serializes");
            let full = full_decode(&text);
            if let Some(simple) = anthropic::decode_simple_request(&text) {
                prop_assert_eq!(Ok(simple.request), full, "{}", text);
            } else {
                // Only bodies outside the simple shape, or at fault, go to the full decoder.
                let simple_shape = body.iter().all(|(name, value)| match name.as_str() {
                    "tool_choice" | "service_tier" => false,
                    "max_tokens" => value == &json!(64),
                    "system" => value.is_string(),
                    "top_k" => value.is_u64(),
                    "messages" => value.as_array().is_some_and(|messages| {
                        !messages.is_empty()
                            && messages.iter().all(|message| {
                                message["role"] != "system" && message["content"].is_string()
                            })
                    }),
                    _ => true,
                });
                prop_assert!(!simple_shape, "the simple reader refused {}", text);
            }
        }
    }
}
