//! Fixture tests for the OpenAI Responses wire format (`wire::responses`).
//!
//! Fixtures under `tests/fixtures/responses/` are shaped like OpenAI's API reference; the
//! expected forms are written by hand below and compared as values.

use pretty_assertions::assert_eq;
use routerly_core::accumulate::Accumulator;
use routerly_core::canonical::{
    ChatResponse, ContentPart, ImageSource, Message, ResponseFormat, Role, StopReason, StreamEvent,
    ToolChoice, Usage,
};
use routerly_core::wire::{self, WireFormat, responses};
use serde_json::{Value, json};

fn fixture_text(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/responses/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).expect("fixture is JSON")
}

/// The `(event, data)` pairs of an SSE transcript.
fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_owned());
                } else if let Some(payload) = line.strip_prefix("data: ") {
                    data.push_str(payload);
                }
            }
            (event, data)
        })
        .collect()
}

#[test]
fn a_full_request_decodes_to_the_canonical_model() {
    let request =
        responses::decode_request(&fixture("request_tools_roundtrip.json")).expect("decodes");
    assert_eq!(request.model, "claude");
    // `instructions` and the developer message before the conversation: one system prompt,
    // joined as `instructions` holds it.
    assert_eq!(
        request.system,
        vec![ContentPart::text(
            "You are a weather bot.\n\nAnswer in metric units."
        )]
    );
    assert_eq!(
        request.messages,
        vec![
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::text("Weather in Paris?"),
                    ContentPart::Image {
                        source: ImageSource::Base64 {
                            media_type: "image/png".into(),
                            data: "iVBORw0KGgo=".into()
                        },
                        detail: Some("low".into()),
                    },
                ],
            },
            Message {
                role: Role::Assistant,
                content: vec![ContentPart::ToolCall {
                    id: "call_abc".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                }],
            },
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::ToolResult {
                        tool_call_id: "call_abc".into(),
                        content: vec![ContentPart::text("Sunny, 21 C")],
                        is_error: false,
                    },
                    ContentPart::text("Thanks! And tomorrow?"),
                ],
            },
        ]
    );
    assert_eq!(request.tools.len(), 1);
    assert_eq!(request.tools[0].name, "get_weather");
    assert_eq!(request.tools[0].strict, Some(true));
    assert_eq!(
        request.tool_choice,
        Some(ToolChoice::Tool {
            name: "get_weather".into()
        })
    );
    assert_eq!(
        request.response_format,
        Some(ResponseFormat::JsonSchema {
            name: "forecast".into(),
            schema: json!({"type": "object", "properties": {"sky": {"type": "string"}}}),
            strict: Some(true),
        })
    );
    assert_eq!(request.max_tokens, Some(256));
    assert_eq!(request.temperature, Some(0.2));
    assert_eq!(request.top_p, Some(0.9));
    assert_eq!(request.parallel_tool_calls, Some(false));
    assert_eq!(
        request.reasoning.as_ref().and_then(|r| r.effort.as_deref()),
        Some("low")
    );
    assert!(request.stream && request.stream_include_usage);
    assert_eq!(request.user.as_deref(), Some("user-42"));
    // Hosted web search: Anthropic runs its own, a target without one names it dropped.
    assert!(wire::dropped(WireFormat::AnthropicMessages, &request).is_empty());
    assert_eq!(
        wire::dropped(WireFormat::MistralChat, &request),
        vec!["tools[1] (web_search_preview)"]
    );
}

#[test]
fn a_string_input_is_one_user_message() {
    let request =
        responses::decode_request(&json!({"model": "auto", "input": "Hi"})).expect("decodes");
    assert_eq!(
        request.messages,
        vec![Message {
            role: Role::User,
            content: vec![ContentPart::text("Hi")]
        }]
    );
    assert_eq!(
        responses::openai_only_feature(&json!({"model": "auto", "input": "Hi"})),
        None
    );
}

#[test]
fn decode_errors_name_the_field() {
    let cases = [
        (json!({"input": "x"}), "model"),
        (json!({"model": "m", "input": 3}), "input"),
        (
            json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}),
            "text.format.name",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": "sometimes"}),
            "tool_choice",
        ),
    ];
    for (body, param) in cases {
        let error = responses::decode_request(&body).expect_err("rejected");
        assert_eq!(error.param.as_deref(), Some(param), "{body} → {error:?}");
    }
}

#[test]
fn a_canonical_request_encodes_as_a_responses_body() {
    let request =
        responses::decode_request(&fixture("request_tools_roundtrip.json")).expect("decodes");
    let body =
        wire::encode_request(WireFormat::OpenAiResponses, &request, "gpt-4o").expect("encodes");
    assert_eq!(
        body,
        json!({
            "model": "gpt-4o",
            "instructions": "You are a weather bot.\n\nAnswer in metric units.",
            "input": [
                {"role": "user", "content": [
                    {"type": "input_text", "text": "Weather in Paris?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}
                ]},
                {"type": "function_call", "call_id": "call_abc", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": "call_abc", "output": "Sunny, 21 C"},
                {"role": "user", "content": [{"type": "input_text", "text": "Thanks! And tomorrow?"}]}
            ],
            "max_output_tokens": 256,
            "temperature": 0.2,
            "top_p": 0.9,
            "tools": [{
                "type": "function",
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "strict": true
            }],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": false,
            "text": {"format": {"type": "json_schema", "name": "forecast", "schema": {"type": "object", "properties": {"sky": {"type": "string"}}}, "strict": true}},
            "reasoning": {"effort": "low"},
            "user": "user-42",
            "stream": true
        })
    );
}

#[test]
fn a_response_object_decodes_with_usage_and_stop_reason() {
    let response = wire::decode_response(
        WireFormat::OpenAiResponses,
        &fixture("response_tool_call.json"),
    )
    .expect("decodes");
    assert_eq!(
        response,
        ChatResponse {
            id: "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41".into(),
            model: "gpt-4o-2024-08-06".into(),
            content: vec![
                ContentPart::Thinking {
                    text: "Need the weather.".into(),
                    signature: None
                },
                ContentPart::text("Let me check."),
                ContentPart::ToolCall {
                    id: "call_12345xyz".into(),
                    name: "get_weather".into(),
                    arguments: "{\"location\":\"Paris, France\"}".into(),
                },
            ],
            stop_reason: Some(StopReason::ToolUse),
            stop_sequence: None,
            usage: Usage {
                input_tokens: 291,
                output_tokens: 23,
                cached_input_tokens: 128,
                cache_write_tokens: 0,
                reasoning_tokens: 7,
            },
            created: 1741476777,
            web_sources: Default::default(),
        }
    );
    let incomplete =
        responses::decode_response(&fixture("response_incomplete.json")).expect("decodes");
    assert_eq!(incomplete.stop_reason, Some(StopReason::MaxTokens));
}

#[test]
fn a_canonical_answer_encodes_as_a_response_object() {
    let answer = ChatResponse {
        id: "resp_abc".into(),
        model: "claude-sonnet".into(),
        content: vec![
            ContentPart::Thinking {
                text: "Hmm.".into(),
                signature: Some("sig".into()),
            },
            ContentPart::text("Checking "),
            ContentPart::text("now."),
            ContentPart::ToolCall {
                id: "toolu_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into(),
            },
        ],
        stop_reason: Some(StopReason::ToolUse),
        stop_sequence: None,
        usage: Usage {
            input_tokens: 20,
            output_tokens: 5,
            cached_input_tokens: 4,
            ..Usage::default()
        },
        created: 1_700_000_000,
        web_sources: Default::default(),
    };
    let body = wire::encode_response(WireFormat::OpenAiResponses, &answer);
    assert_eq!(body["id"], "resp_abc");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["created_at"], 1_700_000_000);
    assert_eq!(
        body["output"],
        json!([
            {"id": "rs_abc00", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Hmm."}]},
            {"id": "msg_abc01", "type": "message", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Checking now.", "annotations": [], "logprobs": []}]},
            {"id": "fc_abc02", "type": "function_call", "status": "completed", "call_id": "toolu_1",
             "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
        ])
    );
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 20, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 5,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 25})
    );
    let truncated = ChatResponse {
        stop_reason: Some(StopReason::MaxTokens),
        content: vec![ContentPart::text("Once")],
        ..answer
    };
    let body = responses::encode_response(&truncated);
    assert_eq!(body["status"], "incomplete");
    assert_eq!(
        body["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
}

fn decode_transcript(name: &str) -> Vec<StreamEvent> {
    let mut decoder = wire::StreamDecoder::new(WireFormat::OpenAiResponses);
    let mut events = Vec::new();
    for (event, data) in sse_events(&fixture_text(name)) {
        events.extend(decoder.decode(event.as_deref(), &data).expect("decodes"));
    }
    events
}

#[test]
fn an_openai_stream_decodes_to_canonical_events() {
    let events = decode_transcript("stream_text_and_call.sse");
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: "resp_1".into(),
                model: "gpt-4o-mini".into(),
                usage: Usage::default()
            },
            StreamEvent::TextStart { index: 0 },
            StreamEvent::TextDelta {
                index: 0,
                text: "Checking".into()
            },
            StreamEvent::TextDelta {
                index: 0,
                text: " now.".into()
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "call_1".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{\"city\":".into()
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "\"Paris\"}".into()
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::Usage {
                usage: Usage {
                    input_tokens: 36,
                    output_tokens: 87,
                    ..Usage::default()
                }
            },
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                stop_sequence: None
            },
            StreamEvent::End,
        ]
    );
}

#[test]
fn canonical_events_encode_as_the_full_event_sequence() {
    let mut encoder = wire::StreamEncoder::new(WireFormat::OpenAiResponses, true);
    let mut canonical = decode_transcript("stream_text_and_call.sse");
    if let StreamEvent::Start { id, .. } = &mut canonical[0] {
        *id = "resp_xyz".into();
    }
    let frames: Vec<_> = canonical
        .iter()
        .flat_map(|event| encoder.encode(event))
        .collect();
    let names: Vec<&str> = frames.iter().map(|frame| frame.event.unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let payloads: Vec<Value> = frames
        .iter()
        .map(|frame| serde_json::from_str(&frame.data).expect("JSON"))
        .collect();
    for (number, payload) in payloads.iter().enumerate() {
        assert_eq!(payload["sequence_number"], number as u64);
        assert_eq!(payload["type"], names[number]);
    }
    assert_eq!(payloads[0]["response"]["id"], "resp_xyz");
    assert_eq!(payloads[0]["response"]["status"], "in_progress");
    assert_eq!(payloads[6]["text"], "Checking now.");
    assert_eq!(payloads[9]["item"]["call_id"], "call_1");
    assert_eq!(payloads[12]["arguments"], "{\"city\":\"Paris\"}");
    let completed = &payloads[14]["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["usage"]["total_tokens"], 123);
    assert_eq!(
        completed["output"][0]["content"][0]["text"],
        "Checking now."
    );
    assert_eq!(completed["output"][1]["arguments"], "{\"city\":\"Paris\"}");
    // Decoding what was encoded gives the same answer back.
    let mut decoder = wire::StreamDecoder::new(WireFormat::OpenAiResponses);
    let mut accumulator = Accumulator::new();
    for frame in &frames {
        for event in decoder.decode(frame.event, &frame.data).expect("decodes") {
            accumulator.push(&event);
        }
    }
    let answer = accumulator.response();
    assert_eq!(answer.id, "resp_xyz");
    assert_eq!(
        answer.content,
        vec![
            ContentPart::text("Checking now."),
            ContentPart::ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into()
            }
        ]
    );
    assert_eq!(answer.stop_reason, Some(StopReason::ToolUse));
}

#[test]
fn a_failed_stream_is_a_decode_error() {
    let mut decoder = responses::StreamDecoder::new();
    let error = decoder
        .decode(
            Some("response.failed"),
            r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"boom"}}}"#,
        )
        .expect_err("fails");
    assert!(error.message.contains("boom"));
}

#[test]
fn history_items_round_trip_through_the_decoder() {
    let request =
        responses::decode_request(&fixture("request_tools_roundtrip.json")).expect("decodes");
    let items = responses::history_items(&request.messages);
    let again = responses::decode_request(&json!({"model": "m", "input": items})).expect("decodes");
    assert_eq!(again.messages, request.messages);
}

/// The fuzz finding (`fuzz/seeds/wire_request/regression-responses-assistant-parts`): an
/// empty system message between two assistant messages is no item, so the decoder merges
/// the two into one message of two text parts; the encoder joined them into one string, and
/// the second trip gave one part. Each part is now an `output_text` part of its own.
#[test]
fn assistant_text_parts_stay_apart_through_a_second_trip() {
    let body = json!({"model": "m", "input": [
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
        {"role": "system", "content": []},
        {"role": "assistant", "content": "b"}
    ]});
    let request = responses::decode_request(&body).expect("decodes");
    let trip = |request| {
        let encoded =
            wire::encode_request(WireFormat::OpenAiResponses, request, "m").expect("encodes");
        (
            responses::decode_request(&encoded).expect("decodes again"),
            encoded,
        )
    };
    let (decoded, _) = trip(&request);
    assert_eq!(
        decoded.messages[1],
        Message {
            role: Role::Assistant,
            content: vec![ContentPart::text("a"), ContentPart::text("b")],
        }
    );
    let (again, encoded) = trip(&decoded);
    assert_eq!(
        encoded["input"][1],
        json!({"role": "assistant", "content": [
            {"type": "output_text", "text": "a", "annotations": []},
            {"type": "output_text", "text": "b", "annotations": []}
        ]})
    );
    assert_eq!(again, decoded);
}

/// Codex's and the Vercel AI SDK's items decode without refusal: files, images by
/// `file_id`, `item_reference`, custom tool calls and newer items are carried by kind and
/// place, a past web search as a hosted tool; a developer message after the first turn
/// keeps its place.
#[test]
fn items_routerly_does_not_model_are_carried() {
    let request = responses::decode_request(&json!({
        "model": "m",
        "input": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "input_text", "text": "Read this"},
                {"type": "input_file", "file_id": "file-1"},
                {"type": "input_image", "file_id": "file-2"}
            ]},
            {"type": "item_reference", "id": "msg_1"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "x"},
            {"type": "custom_tool_call_output", "call_id": "c1", "output": "ok"},
            {"role": "developer", "content": "Now summarise."},
            {"type": "reasoning", "id": "rs_1", "encrypted_content": "gAAAA", "summary": []}
        ],
        "tools": [{"type": "web_search"}, {"type": "function", "name": "f"}, {"type": "namespace_from_the_future"}]
    }))
    .expect("decodes");
    let kinds: Vec<(&str, Role)> = request
        .messages
        .iter()
        .flat_map(|message| {
            message.content.iter().filter_map(move |part| match part {
                ContentPart::Opaque { kind, .. } => Some((kind.as_str(), message.role)),
                _ => None,
            })
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("input_file", Role::User),
            ("input_image", Role::User),
            ("item_reference", Role::Assistant),
            ("custom_tool_call", Role::Assistant),
            ("custom_tool_call_output", Role::User),
        ]
    );
    assert_eq!(request.system, vec![ContentPart::text("Be terse.")]);
    assert_eq!(
        request.messages.last(),
        Some(&Message {
            role: Role::System,
            content: vec![ContentPart::text("Now summarise.")]
        })
    );
    assert_eq!(
        wire::dropped(WireFormat::GeminiGenerateContent, &request),
        vec![
            "tools[0] (web_search)",
            "tools[2] (namespace_from_the_future)",
            "input[3] (web_search_call)"
        ]
    );
    assert_eq!(
        request.first_opaque(),
        Some(("input_file", "input[1].content[1]"))
    );
}

/// Fuzz finding (smoke run): an `input_image` data URL of another media type was taken as
/// an image.
#[test]
fn an_image_data_url_needs_an_image_media_type() {
    let error = responses::decode_request(
        &json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:text/plain;base64,aGk="}
        ]}]}),
    )
    .expect_err("refused");
    assert_eq!(
        error.param.as_deref(),
        Some("input[0].content[0].image_url")
    );
    assert!(
        error.message.contains("image media type"),
        "{}",
        error.message
    );
}
