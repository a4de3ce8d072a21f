//! Property tests of every wire format: a canonical request, answer or error encoded in a
//! format and decoded back is the same canonical value (for what the format can carry), and
//! a second trip changes nothing. The fuzz targets in `fuzz/` check the same from the other
//! side, starting from arbitrary wire bodies.

use proptest::prelude::*;
use routerly_core::canonical::{
    ChatRequest, ChatResponse, ContentPart, ErrorBody, ErrorKind, Message, Role, StopReason,
    StreamEvent, Usage,
};
use routerly_core::wire::{self, StreamDecoder, StreamEncoder, WireFormat};

const FORMATS: [WireFormat; 6] = [
    WireFormat::OpenAiChat,
    WireFormat::AnthropicMessages,
    WireFormat::GeminiGenerateContent,
    WireFormat::MistralChat,
    WireFormat::OllamaChat,
    WireFormat::OpenAiResponses,
];

/// Text as clients send it: ASCII, accents, emoji, quotes, newlines.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .,!?'\"\\\\é💡\n]{1,24}"
}

/// A conversation every format can carry: a system prompt, then turns that alternate
/// between user and assistant, starting and ending with the user, each with text parts.
fn request() -> impl Strategy<Value = ChatRequest> {
    (
        proptest::option::of(text()),
        proptest::collection::vec(proptest::collection::vec(text(), 1..3), 0..3),
        text(),
        proptest::option::of(1u32..100_000),
        proptest::option::of(proptest::sample::select(vec![0.0, 0.25, 0.5, 1.0, 1.5])),
        proptest::option::of(proptest::sample::select(vec![0.1, 0.5, 0.9, 1.0])),
        proptest::collection::vec("[a-z#]{1,6}", 0..4),
        any::<bool>(),
    )
        .prop_map(
            |(system, turns, last, max_tokens, temperature, top_p, stop, stream)| {
                let mut messages = Vec::new();
                for (number, parts) in turns.into_iter().enumerate() {
                    let content = parts.into_iter().map(ContentPart::text).collect();
                    messages.push(Message {
                        role: Role::User,
                        content,
                    });
                    messages.push(Message {
                        role: Role::Assistant,
                        content: vec![ContentPart::text(format!("answer {number}"))],
                    });
                }
                messages.push(Message {
                    role: Role::User,
                    content: vec![ContentPart::text(last)],
                });
                ChatRequest {
                    model: "fuzz-model".to_owned(),
                    system: system.into_iter().map(ContentPart::text).collect(),
                    messages,
                    max_tokens,
                    temperature,
                    top_p,
                    stop,
                    stream,
                    ..ChatRequest::default()
                }
            },
        )
}

/// The text of each message, by role, with a message's parts joined by newlines: what
/// every format keeps, also where it merges a message's parts into one string (Ollama).
fn transcript(request: &ChatRequest) -> Vec<(Role, String)> {
    request
        .messages
        .iter()
        .map(|message| {
            let text: Vec<&str> = message
                .content
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            (message.role, text.join("\n"))
        })
        .collect()
}

/// `max_tokens`, `temperature` and `top_p` as `format` carries them: as given, except
/// that Anthropic requires `max_tokens` (its encoder supplies 4096), clamps `temperature`
/// to 0..=1 and drops `top_p` beside a `temperature` (current Claude models refuse both).
fn expected_sampling(
    format: WireFormat,
    request: &ChatRequest,
) -> (Option<u32>, Option<f64>, Option<f64>) {
    match format {
        WireFormat::AnthropicMessages => (
            Some(request.max_tokens.unwrap_or(4096)),
            request
                .temperature
                .map(|temperature| temperature.clamp(0.0, 1.0)),
            request.top_p.filter(|_| request.temperature.is_none()),
        ),
        _ => (request.max_tokens, request.temperature, request.top_p),
    }
}

fn system_text(request: &ChatRequest) -> String {
    request
        .system
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn answer() -> impl Strategy<Value = ChatResponse> {
    (
        proptest::collection::vec(text(), 1..3),
        proptest::sample::select(vec![StopReason::EndTurn, StopReason::MaxTokens]),
        (0u64..1_000_000, 0u64..1_000_000),
    )
        .prop_map(
            |(texts, stop_reason, (input_tokens, output_tokens))| ChatResponse {
                id: "answer-1".to_owned(),
                model: "fuzz-model".to_owned(),
                content: vec![ContentPart::text(texts.concat())],
                stop_reason: Some(stop_reason),
                stop_sequence: None,
                usage: Usage {
                    input_tokens,
                    output_tokens,
                    ..Usage::default()
                },
                created: 1_767_225_600,
                web_sources: Default::default(),
            },
        )
}

fn answer_text(response: &ChatResponse) -> String {
    response
        .content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Conversations a decoder may reshape: after a first user message, messages of any role
/// (runs of assistant messages, system messages between them, some with no part) with zero
/// to three text parts each. The Responses decoder merges consecutive items of one role
/// into one message, so such a run must come back as the same parts on every trip.
fn reshaped_conversation() -> impl Strategy<Value = ChatRequest> {
    proptest::collection::vec(
        (
            proptest::sample::select(vec![Role::User, Role::Assistant, Role::System]),
            proptest::collection::vec(text(), 0..3),
        ),
        1..6,
    )
    .prop_map(|turns| {
        let mut messages = vec![Message {
            role: Role::User,
            content: vec![ContentPart::text("hello")],
        }];
        messages.extend(turns.into_iter().map(|(role, texts)| Message {
            role,
            content: texts.into_iter().map(ContentPart::text).collect(),
        }));
        ChatRequest {
            model: "fuzz-model".to_owned(),
            messages,
            ..ChatRequest::default()
        }
    })
}

proptest! {
    // Integration tests have no lib.rs beside them to keep failures in; a failure prints
    // its minimal input instead.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn requests_survive_a_trip_through_every_format(request in request()) {
        for format in FORMATS {
            let encoded = wire::encode_request(format, &request, "fuzz-model")
                .unwrap_or_else(|error| panic!("{format:?} refuses {request:?}: {error:?}"));
            let decoded = wire::decode_request(format, &encoded)
                .unwrap_or_else(|error| panic!("{format:?} refuses its own {encoded}: {error:?}"));
            prop_assert_eq!(transcript(&decoded), transcript(&request), "{:?}: {}", format, encoded);
            prop_assert_eq!(system_text(&decoded), system_text(&request), "{:?}", format);
            let (max_tokens, temperature, top_p) = expected_sampling(format, &request);
            prop_assert_eq!(decoded.max_tokens, max_tokens, "{:?}: max_tokens", format);
            prop_assert_eq!(decoded.temperature, temperature, "{:?}: temperature", format);
            prop_assert_eq!(decoded.top_p, top_p, "{:?}: top_p", format);
            // The Responses API has no stop sequences.
            if format != WireFormat::OpenAiResponses {
                prop_assert_eq!(&decoded.stop, &request.stop, "{:?}", format);
            }

            let again = wire::decode_request(
                format,
                &wire::encode_request(format, &decoded, "fuzz-model").expect("encodes again"),
            )
            .expect("decodes again");
            prop_assert_eq!(&again, &decoded, "{:?}: a second trip changed the request", format);
        }
    }

    /// What `fuzz/fuzz_targets/wire_request.rs` checks, from canonical conversations: a
    /// request encoded by a format is read back by it, and a second trip changes nothing.
    #[test]
    fn a_second_trip_through_a_format_changes_nothing(request in reshaped_conversation()) {
        for format in FORMATS {
            let Ok(encoded) = wire::encode_request(format, &request, "fuzz-model") else {
                continue;
            };
            let decoded = wire::decode_request(format, &encoded)
                .unwrap_or_else(|error| panic!("{format:?} refuses its own {encoded}: {error:?}"));
            let encoded_again = wire::encode_request(format, &decoded, "fuzz-model")
                .unwrap_or_else(|error| panic!("{format:?} refuses what it decoded: {error:?}"));
            let again = wire::decode_request(format, &encoded_again)
                .unwrap_or_else(|error| panic!("{format:?} refuses its own {encoded_again}: {error:?}"));
            prop_assert_eq!(&again, &decoded, "{:?}: {} then {}", format, encoded, encoded_again);
        }
    }

    #[test]
    fn answers_survive_a_trip_through_every_format(response in answer()) {
        for format in FORMATS {
            let encoded = wire::encode_response(format, &response);
            let decoded = wire::decode_response(format, &encoded)
                .unwrap_or_else(|error| panic!("{format:?} refuses its own {encoded}: {error:?}"));
            prop_assert_eq!(answer_text(&decoded), answer_text(&response), "{:?}", format);
            prop_assert_eq!(&decoded.stop_reason, &response.stop_reason, "{:?}", format);
            prop_assert_eq!(decoded.usage.input_tokens, response.usage.input_tokens, "{:?}", format);
            prop_assert_eq!(decoded.usage.output_tokens, response.usage.output_tokens, "{:?}", format);
            let mut again = wire::decode_response(format, &wire::encode_response(format, &decoded))
                .expect("decodes again");
            if format == WireFormat::OllamaChat {
                // Ollama's answers carry no id; each decode makes a fresh one.
                prop_assert!(again.id.starts_with("ollama-") && again.id != decoded.id);
                again.id.clone_from(&decoded.id);
            }
            prop_assert_eq!(&again, &decoded, "{:?}: a second trip changed the answer", format);
        }
    }

    #[test]
    fn streams_survive_a_trip_through_every_format(response in answer()) {
        let text = answer_text(&response);
        let events = vec![
            StreamEvent::Start { id: response.id.clone(), model: response.model.clone(), usage: Usage::default() },
            StreamEvent::TextStart { index: 0 },
            StreamEvent::TextDelta { index: 0, text: text.clone() },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::Finish { stop_reason: StopReason::EndTurn, stop_sequence: None },
            StreamEvent::Usage { usage: response.usage },
            StreamEvent::End,
        ];
        for format in FORMATS {
            let mut encoder = StreamEncoder::new(format, true);
            let mut decoder = StreamDecoder::new(format);
            let mut decoded = Vec::new();
            for event in &events {
                for frame in encoder.encode(event) {
                    decoded.extend(decoder.decode(frame.event, &frame.data).unwrap_or_else(|error| {
                        panic!("{format:?} refuses its own frame {}: {error:?}", frame.data)
                    }));
                }
            }
            let mut accumulator = routerly_core::accumulate::Accumulator::new();
            let mut usage = Usage::default();
            for event in &decoded {
                accumulator.push(event);
                if let StreamEvent::Usage { usage: reported } | StreamEvent::Start { usage: reported, .. } = event {
                    usage.merge(reported);
                }
            }
            prop_assert_eq!(answer_text(&accumulator.response()), text.clone(), "{:?}", format);
            prop_assert_eq!(usage.input_tokens, response.usage.input_tokens, "{:?}", format);
            prop_assert_eq!(usage.output_tokens, response.usage.output_tokens, "{:?}", format);
            prop_assert!(decoded.contains(&StreamEvent::End), "{:?}: the stream ends", format);
        }
    }

    #[test]
    fn errors_survive_a_trip_through_every_format(
        kind in proptest::sample::select(vec![
            ErrorKind::InvalidRequest, ErrorKind::Authentication, ErrorKind::Permission,
            ErrorKind::NotFound, ErrorKind::RateLimit, ErrorKind::Internal,
        ]),
        message in text(),
    ) {
        let error = ErrorBody::new(kind, message.trim());
        prop_assume!(!error.message.is_empty());
        for format in FORMATS {
            let body = serde_json::to_vec(&wire::encode_error(format, &error)).expect("JSON");
            let decoded = wire::decode_error(format, kind.status(), &body);
            prop_assert_eq!(decoded.kind, kind, "{:?}", format);
            prop_assert_eq!(&decoded.message, &error.message, "{:?}", format);
        }
    }
}

/// Fuzz finding (`wire_request`): an image media type holding a comma was accepted and
/// became the data URL `data:image/png,;base64,…`, which OpenAI refuses. Every decoder that
/// takes a media type now refuses one that is not a bare `type/subtype`, naming the field.
#[test]
fn image_media_types_with_separators_are_refused_by_every_decoder() {
    use serde_json::json;
    for bad in ["image/png,", "image/png;x=1", "image/png ", "image", ""] {
        let cases = [
            (
                WireFormat::AnthropicMessages,
                json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": bad, "data": "aGk="}}]}]}),
                "messages[0].content[0].source.media_type",
            ),
            (
                WireFormat::GeminiGenerateContent,
                json!({"contents": [{"role": "user", "parts": [
                    {"inlineData": {"mimeType": bad, "data": "aGk="}}]}]}),
                "contents[0].parts[0].inlineData.mimeType",
            ),
            (
                WireFormat::OpenAiChat,
                json!({"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": format!("data:{bad};base64,aGk=")}}]}]}),
                "image_url",
            ),
            (
                WireFormat::MistralChat,
                json!({"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": format!("data:{bad};base64,aGk=")}}]}]}),
                "image_url",
            ),
            (
                WireFormat::OpenAiResponses,
                json!({"model": "m", "input": [{"role": "user", "content": [
                    {"type": "input_image", "image_url": format!("data:{bad};base64,aGk=")}]}]}),
                "image_url",
            ),
        ];
        for (format, body, field) in cases {
            let error = wire::decode_request(format, &body)
                .expect_err(&format!("{format:?} accepted media type {bad:?}"));
            let param = error.param.clone().unwrap_or_default();
            assert!(param.contains(field), "{format:?} {bad:?}: {error:?}");
        }
    }
    // The fixpoint holds for a good one: decoded by Anthropic, written as an OpenAI data
    // URL, read back with the same media type.
    let body = serde_json::json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/svg+xml", "data": "aGk="}}]}]});
    let request = wire::decode_request(WireFormat::AnthropicMessages, &body).unwrap();
    let openai = wire::encode_request(WireFormat::OpenAiChat, &request, "m").unwrap();
    let back = wire::decode_request(WireFormat::OpenAiChat, &openai).unwrap();
    assert_eq!(back.messages, request.messages);
}

/// Fuzz finding (`wire_request`): Gemini's decoder took `maxOutputTokens: 0`, and Anthropic's
/// encoder then wrote `max_tokens: 0`, which Anthropic (and its own decoder) refuses. A token
/// limit of 0 is refused by every decoder, naming the field, so no encoder is handed one.
#[test]
fn a_token_limit_of_zero_is_refused_by_every_decoder() {
    use serde_json::json;
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            WireFormat::OpenAiChat,
            json!({"model": "m", "messages": user, "max_tokens": 0}),
            "max_tokens",
        ),
        (
            WireFormat::OpenAiChat,
            json!({"model": "m", "messages": user, "max_completion_tokens": 0}),
            "max_completion_tokens",
        ),
        (
            WireFormat::MistralChat,
            json!({"model": "m", "messages": user, "max_tokens": 0}),
            "max_tokens",
        ),
        (
            WireFormat::AnthropicMessages,
            json!({"model": "m", "messages": user, "max_tokens": 0}),
            "max_tokens",
        ),
        (
            WireFormat::OpenAiResponses,
            json!({"model": "m", "input": "hi", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
        (
            WireFormat::GeminiGenerateContent,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                   "generationConfig": {"maxOutputTokens": 0}}),
            "generationConfig.maxOutputTokens",
        ),
        (
            WireFormat::OllamaChat,
            json!({"model": "m", "messages": user, "options": {"num_predict": 0}}),
            "options.num_predict",
        ),
    ];
    for (format, body, field) in cases {
        let error = wire::decode_request(format, &body)
            .expect_err(&format!("{format:?} accepted a limit of 0"));
        assert_eq!(error.param.as_deref(), Some(field), "{format:?}: {error:?}");
        let mut one = body.clone();
        let limit = match format {
            WireFormat::GeminiGenerateContent => &mut one["generationConfig"]["maxOutputTokens"],
            WireFormat::OllamaChat => &mut one["options"]["num_predict"],
            _ => &mut one[field],
        };
        *limit = json!(1);
        let request = wire::decode_request(format, &one).expect("a limit of 1 is accepted");
        assert_eq!(request.max_tokens, Some(1), "{format:?}");
    }
}

/// Fuzz finding (`wire_request`): an OpenAI chat request whose system messages stood between
/// assistant messages with no content. The empty assistant messages are no Responses items,
/// so the second system message came out before the conversation, and the Responses decoder
/// read it as a second system part next to `instructions`, which the encoder joins into one:
/// a second trip changed the request. The Responses system prompt is now read as one part.
#[test]
fn a_system_prompt_of_several_parts_survives_a_second_trip_through_responses() {
    let body = serde_json::json!({"model": "m", "messages": [
        {"role": "system", "content": "a"},
        {"role": "system", "content": "b"},
        {"role": "assistant"},
        {"role": "system", "content": "c"},
        {"role": "assistant"},
        {"role": "user", "content": "u"}]});
    let request = wire::decode_request(WireFormat::OpenAiChat, &body).expect("decodes");
    let once = wire::encode_request(WireFormat::OpenAiResponses, &request, "m").expect("encodes");
    let decoded = wire::decode_request(WireFormat::OpenAiResponses, &once).expect("reads back");
    let twice = wire::encode_request(WireFormat::OpenAiResponses, &decoded, "m").expect("encodes");
    assert_eq!(
        decoded,
        wire::decode_request(WireFormat::OpenAiResponses, &twice).expect("reads back")
    );
}

/// Fuzz finding (`wire_request`): a conversation that reuses a call id across turns (`call_0`
/// in every turn, as some clients number their calls) named every result after the last call
/// of that id in the whole conversation, so a result of `get_weather` went to Gemini as a
/// response of `get_time`, and Gemini's decoder found no call of that name. Formats that
/// name results by function (Gemini, Ollama, Mistral) now name each by the latest call with
/// its id before it.
#[test]
fn a_reused_call_id_names_each_result_after_its_own_turns_call() {
    let body = serde_json::json!({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "noon"}]});
    let request = wire::decode_request(WireFormat::OpenAiChat, &body).expect("decodes");
    let gemini =
        wire::encode_request(WireFormat::GeminiGenerateContent, &request, "m").expect("encodes");
    let names: Vec<&str> = [
        "/contents/2/parts/0/functionResponse/name",
        "/contents/5/parts/0/functionResponse/name",
    ]
    .iter()
    .map(|pointer| {
        gemini
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    })
    .collect();
    assert_eq!(names, ["get_weather", "get_time"], "{gemini}");
    let again =
        wire::decode_request(WireFormat::GeminiGenerateContent, &gemini).expect("reads back");
    wire::encode_request(WireFormat::GeminiGenerateContent, &again, "m").expect("encodes again");

    let ollama = wire::encode_request(WireFormat::OllamaChat, &request, "m").expect("encodes");
    assert_eq!(
        ollama.pointer("/messages/2/tool_name"),
        Some(&serde_json::json!("get_weather")),
        "{ollama}"
    );
    assert_eq!(
        ollama.pointer("/messages/5/tool_name"),
        Some(&serde_json::json!("get_time")),
        "{ollama}"
    );

    let mistral = wire::encode_request(WireFormat::MistralChat, &request, "m").expect("encodes");
    assert_eq!(
        mistral.pointer("/messages/2/name"),
        Some(&serde_json::json!("get_weather")),
        "{mistral}"
    );
    assert_eq!(
        mistral.pointer("/messages/5/name"),
        Some(&serde_json::json!("get_time")),
        "{mistral}"
    );
}
