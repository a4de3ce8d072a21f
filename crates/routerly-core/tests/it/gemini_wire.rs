//! Fixture tests for the Gemini wire format (`wire::gemini`).
//!
//! Fixtures under `tests/fixtures/gemini/` are shaped like the Gemini API reference
//! (`generateContent`, `streamGenerateContent?alt=sse`); the expected forms beside them are
//! hand-written. Comparisons are between `serde_json::Value`s; ids that Routerly invents
//! (Gemini sends none) and creation times are replaced by placeholders first.

use pretty_assertions::assert_eq;
use routerly_core::canonical::{ChatRequest, ErrorKind, StreamEvent};
use routerly_core::wire::gemini;
use serde_json::{Value, json};

fn fixture_text(file_name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/gemini/{file_name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

fn fixture(file_name: &str) -> Value {
    serde_json::from_str(&fixture_text(file_name))
        .unwrap_or_else(|error| panic!("{file_name} is not JSON: {error}"))
}

fn canonical_request(file_name: &str) -> ChatRequest {
    serde_json::from_value(fixture(file_name))
        .unwrap_or_else(|error| panic!("{file_name} is not a canonical request: {error}"))
}

/// `value` with invented tool-call ids and creation times replaced by placeholders.
fn normalized(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let is_call = matches!(
                    map.get("type").and_then(Value::as_str),
                    Some("tool_call") | Some("tool_call_start")
                );
                if is_call
                    && let Some(Value::String(id)) = map.get_mut("id")
                    && id.starts_with("call_")
                {
                    *id = "<generated>".to_owned();
                }
                if map.contains_key("created") {
                    map.insert("created".into(), json!(0));
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

fn sse_payloads(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter_map(|line| line.trim_end_matches('\r').strip_prefix("data:"))
        .map(|data| data.trim_start().to_owned())
        .collect()
}

#[test]
fn requests_encode_as_generate_content_bodies() {
    for name in ["request_tools_roundtrip", "request_image_json"] {
        let request = canonical_request(&format!("{name}.canonical.json"));
        let encoded = gemini::encode_request(&request, "gemini-2.5-flash")
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(encoded, fixture(&format!("{name}.upstream.json")), "{name}");
    }
}

#[test]
fn a_decoded_client_body_encodes_back_to_itself() {
    for name in ["request_tools_roundtrip", "request_image_json"] {
        let upstream = fixture(&format!("{name}.upstream.json"));
        let decoded =
            gemini::decode_request(&upstream).unwrap_or_else(|error| panic!("{name}: {error}"));
        let encoded = gemini::encode_request(&decoded, "gemini-2.5-flash").expect("encodes");
        assert_eq!(encoded, upstream, "{name}");
    }
}

#[test]
fn function_responses_are_matched_to_calls_by_name_and_order() {
    let decoded =
        gemini::decode_request(&fixture("request_tools_roundtrip.upstream.json")).expect("decodes");
    let value = serde_json::to_value(&decoded).expect("serializes");
    let call_ids: Vec<&str> = value["messages"][1]["content"]
        .as_array()
        .expect("parts")
        .iter()
        .filter_map(|part| part.get("id").and_then(Value::as_str))
        .collect();
    let result_ids: Vec<&str> = value["messages"][2]["content"]
        .as_array()
        .expect("parts")
        .iter()
        .filter_map(|part| part.get("tool_call_id").and_then(Value::as_str))
        .collect();
    assert_eq!(call_ids.len(), 2);
    assert_eq!(
        call_ids, result_ids,
        "each result answers the call in its position"
    );
    assert_eq!(value["messages"][2]["content"][1]["is_error"], json!(true));
}

#[test]
fn a_tool_result_for_an_unknown_call_is_a_clear_400() {
    let mut request = canonical_request("request_tools_roundtrip.canonical.json");
    request.messages.remove(1);
    let error =
        gemini::encode_request(&request, "gemini-2.5-flash").expect_err("no call to answer");
    assert!(error.message.contains("gemini-2.5-flash"), "{error}");
    assert_eq!(error.param.as_deref(), Some("messages[1].content[0]"));
}

#[test]
fn responses_decode_with_thinking_calls_and_usage() {
    for name in ["response_tool_calls", "response_blocked"] {
        let response = gemini::decode_response(&fixture(&format!("{name}.json")))
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let value = normalized(serde_json::to_value(&response).expect("serializes"));
        assert_eq!(value, fixture(&format!("{name}.canonical.json")), "{name}");
    }
}

#[test]
fn a_decoded_response_encodes_back_in_gemini_shape() {
    let response = gemini::decode_response(&fixture("response_tool_calls.json")).expect("decodes");
    let encoded = gemini::encode_response(&response);
    let parts = &encoded["candidates"][0]["content"]["parts"];
    assert_eq!(
        parts[0],
        json!({"text": "I should check the weather.", "thought": true, "thoughtSignature": "c2lnbmF0dXJl"})
    );
    assert_eq!(parts[1], json!({"text": "Let me check."}));
    assert_eq!(parts[2]["functionCall"]["args"], json!({"city": "Paris"}));
    assert_eq!(encoded["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        encoded["usageMetadata"],
        json!({"promptTokenCount": 120, "candidatesTokenCount": 20, "totalTokenCount": 170, "cachedContentTokenCount": 100, "thoughtsTokenCount": 30})
    );
}

#[test]
fn a_stream_transcript_decodes_into_canonical_events() {
    let mut decoder = gemini::StreamDecoder::new();
    let events: Vec<StreamEvent> = sse_payloads(&fixture_text("stream_text_tool.sse"))
        .iter()
        .flat_map(|payload| {
            decoder
                .decode(payload)
                .unwrap_or_else(|error| panic!("{payload}: {error}"))
        })
        .collect();
    let value = normalized(serde_json::to_value(&events).expect("serializes"));
    assert_eq!(value, fixture("stream_text_tool.events.json"));
}

#[test]
fn canonical_events_encode_into_chunks_a_gemini_client_reassembles() {
    let events: Vec<StreamEvent> =
        serde_json::from_value(fixture("stream_text_tool.events.json")).expect("events");
    let mut encoder = gemini::StreamEncoder::new();
    let chunks: Vec<Value> = events
        .iter()
        .flat_map(|event| encoder.encode(event))
        .map(|frame| serde_json::from_str(&frame.data).expect("each frame is JSON"))
        .collect();
    let text: String = chunks
        .iter()
        .flat_map(|chunk| {
            chunk["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|part| part.get("thought").is_none())
        .filter_map(|part| part["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Hello there");
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|chunk| chunk.pointer("/candidates/0/content/parts/0/functionCall"))
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["args"], json!({"city": "Paris"}));
    let last = chunks.last().expect("a last chunk");
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["thoughtsTokenCount"], 5);
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 12);
}

#[test]
fn errors_decode_with_their_status_name_and_encode_back() {
    let body = fixture_text("error_429.json");
    let error = gemini::decode_error(429, body.as_bytes());
    assert_eq!(
        serde_json::to_value(&error).expect("serializes"),
        fixture("error_429.canonical.json")
    );
    assert_eq!(
        gemini::encode_error(&error),
        json!({"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED"}})
    );
    let garbage = gemini::decode_error(502, b"<html>bad gateway</html>");
    assert_eq!(garbage.kind, ErrorKind::BadGateway);
    assert_eq!(garbage.message, "provider returned HTTP 502");
}

/// Found by the `wire_request` fuzz target: a function response in a model turn decoded
/// into an assistant message holding a tool result, which Anthropic then refused.
#[test]
fn calls_belong_in_model_turns_and_responses_in_user_turns() {
    let response_in_model_turn = json!({"contents": [
        {"role": "user", "parts": [{"text": "Weather?"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionResponse": {"name": "get_weather", "response": {"result": "Sunny"}}}
        ]}
    ]});
    let error = gemini::decode_request(&response_in_model_turn).expect_err("a misplaced response");
    assert_eq!(
        error.param.as_deref(),
        Some("contents[1].parts[1].functionResponse")
    );
    let call_in_user_turn = json!({"contents": [
        {"role": "user", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]}
    ]});
    let error = gemini::decode_request(&call_in_user_turn).expect_err("a misplaced call");
    assert_eq!(
        error.param.as_deref(),
        Some("contents[0].parts[0].functionCall")
    );
    assert!(error.message.contains("'model' turn"), "{error:?}");
}

/// Fuzz finding (smoke run): a hosted web search encoded for Gemini is a `googleSearch`
/// tool, which Gemini's own decoder refused ("Only 'functionDeclarations' tools…").
#[test]
fn gemini_reads_back_the_google_search_tool_it_writes() {
    use routerly_core::wire::{self, WireFormat};
    let request = wire::decode_request(
        WireFormat::OpenAiResponses,
        &json!({"model": "m", "input": "news?", "tools": [{"type": "web_search"}]}),
    )
    .expect("decodes");
    let encoded = wire::encode_request(WireFormat::GeminiGenerateContent, &request, "gemini")
        .expect("encodes");
    assert_eq!(encoded["tools"], json!([{"googleSearch": {}}]));
    let decoded = gemini::decode_request(&encoded).expect("Gemini reads its own search tool");
    assert_eq!(decoded.hosted_tools.len(), 1);
    assert!(decoded.hosted_tools[0].web_search.is_some());
    let again = wire::encode_request(WireFormat::GeminiGenerateContent, &decoded, "gemini")
        .expect("encodes again");
    assert_eq!(again["tools"], encoded["tools"]);
}

/// Fuzz finding (`wire_request`): two tool results for one call (an OpenAI chat request with
/// two `tool` messages for `call_tokyo`) went to Gemini as two `functionResponse`s of one
/// name; Gemini's decoder linked the second to no call (its id became the function name), so
/// encoding it again was refused. A second response to a call answers that call again.
#[test]
fn a_second_response_to_one_call_answers_that_call_again() {
    use routerly_core::wire::{self, WireFormat};
    let request = wire::decode_request(
        WireFormat::OpenAiChat,
        &json!({"model": "m", "messages": [
            {"role": "user", "content": "Weather in Tokyo?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_paris", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": "call_tokyo", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_tokyo", "content": "19°C"},
            {"role": "tool", "tool_call_id": "call_tokyo", "content": "24°C"}
        ]}),
    )
    .expect("decodes");
    let encoded = wire::encode_request(WireFormat::GeminiGenerateContent, &request, "gemini")
        .expect("encodes");
    let decoded = gemini::decode_request(&encoded).expect("Gemini reads its own request");
    let again = wire::encode_request(WireFormat::GeminiGenerateContent, &decoded, "gemini")
        .expect("a second response still names its call");
    assert_eq!(again["contents"], encoded["contents"]);
}

/// A grounded answer as Gemini gives it: a thought part first, two text parts, the cited
/// span after multi-byte text, offsets in UTF-8 bytes of the part they name.
fn grounded_answer() -> (Value, &'static str, &'static str) {
    let intro = "Café — 東京 first. ";
    let cited = "Rome is in Italy.";
    let answer = json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "Thinking about it.", "thought": true},
                {"text": intro},
                {"text": cited}
            ]},
            "finishReason": "STOP",
            "groundingMetadata": {
                "webSearchQueries": ["where is rome", "rome country"],
                "searchEntryPoint": {"renderedContent": "<div></div>"},
                "groundingChunks": [
                    {"web": {"uri": "https://vertexaisearch.example/a", "title": "wikipedia.org"}},
                    {"web": {"uri": "https://vertexaisearch.example/b", "title": "britannica.com"}}
                ],
                "groundingSupports": [
                    {"segment": {"partIndex": 2, "endIndex": cited.len(), "text": cited},
                     "groundingChunkIndices": [0, 1], "confidenceScores": [0.9, 0.8]},
                    {"segment": {"partIndex": 1, "startIndex": "Café".len(), "endIndex": "Café — 東京".len()},
                     "groundingChunkIndices": [1]},
                    {"segment": {"startIndex": 3, "endIndex": 3}, "groundingChunkIndices": [0]},
                    {"segment": {"endIndex": 5}, "groundingChunkIndices": [7]}
                ]
            }
        }],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "grounded-1"
    });
    (answer, intro, cited)
}

#[test]
fn google_search_grounding_becomes_searches_and_citations_in_characters() {
    let (answer, intro, cited) = grounded_answer();
    let response = gemini::decode_response(&answer).expect("decodes");
    let sources = &response.web_sources;
    let queries: Vec<&str> = sources.searches.iter().map(|s| s.query.as_str()).collect();
    assert_eq!(queries, ["where is rome", "rome country"]);
    let urls: Vec<&str> = sources.searches[0]
        .results
        .iter()
        .map(|p| p.url.as_str())
        .collect();
    assert_eq!(
        urls,
        [
            "https://vertexaisearch.example/a",
            "https://vertexaisearch.example/b"
        ]
    );
    assert!(
        sources.searches[1].results.is_empty(),
        "the pages go with the first search"
    );
    assert_eq!(
        sources.searches[0].results[1].title.as_deref(),
        Some("britannica.com")
    );
    // Characters of the answer's texts joined (the thought is not text): the cited part
    // starts after the intro's characters, not its bytes.
    let intro_chars = intro.chars().count();
    assert_ne!(
        intro_chars,
        intro.len(),
        "the intro holds multi-byte characters"
    );
    let spans: Vec<(usize, usize, &str)> = sources
        .citations
        .iter()
        .map(|c| (c.start, c.end, c.page.title.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        spans,
        [
            (intro_chars, intro_chars + cited.len(), "wikipedia.org"),
            (intro_chars, intro_chars + cited.len(), "britannica.com"),
            // "Café — 東京" after "Café": " — 東京" is 5 characters and 9 bytes.
            (4, 9, "britannica.com"),
        ],
        "an empty segment and a chunk index out of range are left out"
    );
    let text: String = response
        .content
        .iter()
        .filter_map(|part| match part {
            routerly_core::canonical::ContentPart::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let chars: Vec<char> = text.chars().collect();
    let first = &sources.citations[0];
    assert_eq!(
        chars[first.start..first.end].iter().collect::<String>(),
        cited
    );
}

#[test]
fn streamed_grounding_cites_the_text_streamed_before_it_closes() {
    let intro = "Café — 東京 first. ";
    let cited = "Rome is in Italy.";
    let chunk = |parts: Value, grounded: bool, last: bool| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}});
        if last {
            candidate["finishReason"] = json!("STOP");
        }
        if grounded {
            candidate["groundingMetadata"] = json!({
                "webSearchQueries": ["where is rome"],
                "groundingChunks": [{"web": {"uri": "https://vertexaisearch.example/a", "title": "wikipedia.org"}}],
                // Offsets into the whole answer's text; the part index counts within a chunk.
                "groundingSupports": [{"segment": {"partIndex": 0, "startIndex": intro.len(), "endIndex": intro.len() + cited.len()},
                                       "groundingChunkIndices": [0]}]
            });
        }
        json!({"candidates": [candidate], "responseId": "grounded-2", "modelVersion": "gemini-2.5-flash"})
            .to_string()
    };
    let mut decoder = gemini::StreamDecoder::new();
    let mut events = Vec::new();
    // Gemini may repeat its metadata: sent once.
    for data in [
        chunk(json!([{"text": intro}]), false, false),
        chunk(json!([{"text": cited}]), true, false),
        chunk(json!([]), true, true),
    ] {
        events.extend(decoder.decode(&data).expect("decodes"));
    }
    let count = |wanted: fn(&StreamEvent) -> bool| events.iter().filter(|e| wanted(e)).count();
    assert_eq!(count(|e| matches!(e, StreamEvent::WebSearch { .. })), 1);
    assert_eq!(count(|e| matches!(e, StreamEvent::Citation { .. })), 1);
    let position = |wanted: fn(&StreamEvent) -> bool| events.iter().position(wanted).unwrap();
    let search = position(|e| matches!(e, StreamEvent::WebSearch { .. }));
    let citation = position(|e| matches!(e, StreamEvent::Citation { .. }));
    let stop = position(|e| matches!(e, StreamEvent::BlockStop { .. }));
    assert!(
        search < stop && citation < stop,
        "before the text closes: {events:#?}"
    );
    let StreamEvent::Citation { citation } = &events[citation] else {
        unreachable!()
    };
    let start = intro.chars().count();
    assert_eq!(
        (citation.start, citation.end),
        (start, start + cited.chars().count())
    );
}
