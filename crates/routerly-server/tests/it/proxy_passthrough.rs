//! Lossless pass-through and honest translation (issue 12): a call in the provider's own
//! format reaches it as the client wrote it (model replaced), beta headers and query
//! included; a translated call carries what has an equivalent, names what it leaves out in
//! `x-routerly-dropped` (or is refused when the project says so), and refuses content whose
//! loss would change the request.

use crate::common;

use common::*;
use routerly_core::usage::Outcome;
use routerly_mock::{MockKind, MockServer, RecordedRequest};
use serde_json::{Value, json};

const DROPPED: &str = "x-routerly-dropped";

/// The one request `mock` received.
fn only_request(mock: &MockServer) -> RecordedRequest {
    let requests = mock.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    requests.into_iter().next().expect("one request")
}

/// `body` with its `model` replaced.
fn with_model(body: &Value, model: &str) -> Value {
    let mut body = body.clone();
    body["model"] = json!(model);
    body
}

/// What Claude Code sends: a mid-conversation system message, a document, server-tool
/// blocks and a server tool, `cache_control` on blocks and tools, and fields Routerly
/// does not know.
fn claude_code_body() -> Value {
    json!({
        "model": "claude",
        "max_tokens": 512,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Summarise the attached file."},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Routerly is a gateway."},
                 "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "system", "content": "The user prefers short answers."},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "routerly"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": []},
                {"type": "text", "text": "It routes LLM calls."}
            ]},
            {"role": "user", "content": "And in one word?"}
        ],
        "tools": [
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
            {"name": "Read", "description": "Reads a file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
             "cache_control": {"type": "ephemeral"}}
        ],
        "metadata": {"user_id": format!("user_{}_account_{}_session_{}", "a".repeat(64), "b".repeat(36), "c".repeat(36))},
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "a_field_from_the_future": {"x": 1}
    })
}

#[tokio::test]
async fn an_anthropic_call_to_an_anthropic_model_reaches_it_as_sent() {
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![anthropic_model("claude", &anthropic_mock)]).await;
    let body = claude_code_body();
    let response = gateway
        .post("/v1/messages?beta=true")
        .header("x-api-key", TOKEN)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "context-management-2025-06-27")
        .json(&body)
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.headers().get(DROPPED), None, "nothing is dropped");
    let (status, model, reply) = answer(response).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(model.as_deref(), Some("claude"));

    let received = only_request(&anthropic_mock);
    assert_eq!(received.body, with_model(&body, "claude-haiku-4-5"));
    assert_eq!(received.query.as_deref(), Some("beta=true"));
    assert_eq!(
        received.header("anthropic-beta"),
        Some("context-management-2025-06-27")
    );
    // The record counts the call like any other.
    let records = gateway.wait_for_records(1).await;
    assert_eq!(records[0].outcome, Outcome::Success);
    assert!(records[0].input_tokens > 0);
}

#[tokio::test]
async fn a_block_type_the_provider_rejects_is_its_answer_not_routerlys() {
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![anthropic_model("claude", &anthropic_mock)]).await;
    let body = json!({"model": "claude", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "hologram", "data": "x"}]}
    ]});
    let (status, _, reply) = answer(gateway.anthropic(&body).await).await;
    // Routerly forwarded it; the provider's own 400 comes back unchanged.
    assert_eq!(status, 400, "{reply}");
    let message = assert_anthropic_error(&reply, "invalid_request_error");
    assert!(message.contains("'hologram'"), "{message}");
    assert_eq!(
        only_request(&anthropic_mock).body,
        with_model(&body, "claude-haiku-4-5")
    );
}

#[tokio::test]
async fn an_openai_call_to_an_openai_model_reaches_it_as_sent() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![openai_model("gpt", &openai_mock)]).await;
    let body = json!({
        "model": "gpt",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
            ]}
        ],
        "tools": [
            {"type": "custom", "custom": {"name": "apply_patch", "description": "Applies a patch"}},
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "web_search_options": {"search_context_size": "low"},
        "prediction": {"type": "content", "content": "x"},
        "service_tier": "flex"
    });
    let response = gateway
        .post("/v1/chat/completions?api-extra=1")
        .bearer_auth(TOKEN)
        .header("OpenAI-Beta", "assistants=v2")
        .json(&body)
        .send()
        .await
        .expect("the service answers");
    let (status, _, reply) = answer(response).await;
    assert_eq!(status, 200, "{reply}");
    let received = only_request(&openai_mock);
    assert_eq!(received.body, with_model(&body, "gpt-4o-mini"));
    assert_eq!(received.header("openai-beta"), Some("assistants=v2"));
    assert_eq!(received.query.as_deref(), Some("api-extra=1"));
}

/// A body of the common shape is read without its JSON tree (`wire::decode_simple_request`).
/// With the model's key spelled with an escape (which the member splice refuses), an
/// unescaped model is still replaced where the reader found it (`TextPlaces::rewrite`);
/// with the model escaped too, neither the rewrite nor the splice can, and the tree is
/// parsed from the text then. Either way the provider gets the body with only the model
/// replaced. Both client formats.
#[tokio::test]
async fn a_simple_body_the_splice_cannot_rewrite_reaches_the_provider_through_its_tree() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        openai_model("gpt", &openai_mock),
        anthropic_model("claude", &anthropic_mock),
    ])
    .await;
    let calls = [
        (
            "/v1/chat/completions",
            r#"{"mod\u0065l":"gpt","max_tokens":16,"messages":[{"role":"user","content":"hi \"there\""}]}"#,
            &openai_mock,
            json!({"model": "gpt-4o-mini", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hi \"there\""}]}),
        ),
        (
            "/v1/chat/completions",
            r#"{"mod\u0065l":"gp\u0074","max_tokens":16,"messages":[{"role":"user","content":"hi \"there\""}]}"#,
            &openai_mock,
            json!({"model": "gpt-4o-mini", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hi \"there\""}]}),
        ),
        (
            "/v1/messages",
            r#"{"mod\u0065l":"claude","max_tokens":16,"system":"be brief","messages":[{"role":"user","content":"hi"}]}"#,
            &anthropic_mock,
            json!({"model": "claude-haiku-4-5", "max_tokens": 16, "system": "be brief",
                   "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/messages",
            r#"{"mod\u0065l":"cl\u0061ude","max_tokens":16,"system":"be brief","messages":[{"role":"user","content":"hi"}]}"#,
            &anthropic_mock,
            json!({"model": "claude-haiku-4-5", "max_tokens": 16, "system": "be brief",
                   "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ];
    for (path, text, provider, expected) in calls {
        let response = gateway
            .post(path)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(text)
            .send()
            .await
            .expect("the service answers");
        let (status, model, reply) = answer(response).await;
        assert_eq!(status, 200, "{path}: {reply}");
        assert!(model.is_some(), "{path}: the serving model is named");
        assert_eq!(only_request(provider).body, expected, "{path}: {text}");
        provider.reset();
    }
}

#[tokio::test]
async fn a_translated_call_carries_system_messages_in_place_and_names_what_it_drops() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![openai_model("gpt", &openai_mock)]).await;
    // Claude Code's own body, minus the document (OpenAI chat cannot take Anthropic's text
    // documents) and the server-tool blocks of the earlier turn.
    let mut body = claude_code_body();
    body["model"] = json!("gpt");
    body["messages"][0]["content"] = json!("Summarise routerly.");
    body["messages"][2]["content"] = json!("It routes LLM calls.");
    let response = gateway
        .post("/v1/messages?beta=true")
        .header("x-api-key", TOKEN)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "context-management-2025-06-27")
        .json(&body)
        .send()
        .await
        .expect("the service answers");
    let dropped = response
        .headers()
        .get(DROPPED)
        .map(|value| value.to_str().expect("ASCII").to_owned());
    let trace_id = response
        .headers()
        .get("x-routerly-trace-id")
        .map(|value| value.to_str().expect("ASCII").to_owned())
        .expect("a trace id");
    let (status, _, reply) = answer(response).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["type"], "message");
    assert_eq!(dropped.as_deref(), Some("tools[0] (web_search_20250305)"));

    let received = only_request(&openai_mock);
    // Neither the Anthropic beta header nor its query reaches another format's provider.
    assert_eq!(received.header("anthropic-beta"), None);
    assert_eq!(received.query, None);
    let messages = &received.body["messages"];
    assert_eq!(
        messages,
        &json!([
            {"role": "system", "content": "You are Claude Code."},
            {"role": "user", "content": "Summarise routerly."},
            {"role": "system", "content": "The user prefers short answers."},
            {"role": "assistant", "content": "It routes LLM calls."},
            {"role": "user", "content": "And in one word?"}
        ])
    );
    let user = received.body["user"].as_str().expect("a user");
    assert_eq!(
        user.len(),
        64,
        "Claude Code's long user id is hashed to fit"
    );
    assert_eq!(
        received.body["tools"].as_array().map(Vec::len),
        Some(1),
        "only the function tool is sent"
    );

    let admin = admin_token(&gateway).await;
    let trace = trace_via_api(&gateway, &admin, &trace_id).await;
    assert_eq!(
        trace["attempts"][0]["dropped"],
        json!(["tools[0] (web_search_20250305)"])
    );
}

#[tokio::test]
async fn sampling_parameters_without_a_slot_are_named_and_a_strict_project_refuses_them() {
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let body = json!({
        "model": "claude",
        "messages": [{"role": "user", "content": "hi"}],
        "seed": 7,
        "frequency_penalty": 0.5,
        "temperature": 0.3
    });

    let gateway = Gateway::start(vec![anthropic_model("claude", &anthropic_mock)]).await;
    let response = gateway.openai(&body).await;
    assert_eq!(
        response
            .headers()
            .get(DROPPED)
            .map(|value| value.to_str().expect("ASCII")),
        Some("seed, frequency_penalty")
    );
    let (status, _, reply) = answer(response).await;
    assert_eq!(status, 200, "{reply}");
    let sent = &only_request(&anthropic_mock).body;
    assert_eq!(sent.get("seed"), None);
    assert_eq!(sent["temperature"], json!(0.3));
    gateway.stop().await;

    anthropic_mock.reset();
    let strict = Gateway::start_with(vec![anthropic_model("claude", &anthropic_mock)], |draft| {
        draft.projects.projects[0].strict_translation = true;
    })
    .await;
    let (status, _, reply) = answer(strict.openai(&body).await).await;
    assert_eq!(status, 400, "{reply}");
    let message = assert_openai_error(&reply, "invalid_request_error");
    assert!(
        message.contains("seed, frequency_penalty") && message.contains("`claude`"),
        "{message}"
    );
    assert_eq!(reply["error"]["code"], "unsupported_feature");
    assert!(anthropic_mock.requests().is_empty(), "nothing was sent");
    let records = strict.wait_for_records(1).await;
    assert_eq!(records[0].outcome, Outcome::Error);
    assert_eq!(records[0].status, 400);
    // A call that drops nothing is served as usual.
    let (status, _, _) = answer(strict.openai(&openai_body("claude", "hi")).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_document_the_target_cannot_read_is_refused_naming_field_and_model() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![openai_model("gpt", &openai_mock)]).await;
    // Chat Completions reads inline files only: a PDF by URL cannot be carried.
    let body = json!({"model": "gpt", "max_tokens": 10, "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Read"},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
        ]}
    ]});
    let (status, _, reply) = answer(gateway.anthropic(&body).await).await;
    assert_eq!(status, 400, "{reply}");
    let message = assert_anthropic_error(&reply, "invalid_request_error");
    assert!(
        message.contains("messages[0].content[1]")
            && message.contains("by URL")
            && message.contains("`gpt`"),
        "{message}"
    );
    assert!(openai_mock.requests().is_empty());
    let records = gateway.wait_for_records(1).await;
    assert_eq!(records[0].status, 400);
}

const PDF: &str = "JVBERi0xLjQKJcfsj6IK";

/// Documents cross formats to every family with a document slot, and each provider's mock
/// (which rejects what the real API rejects) takes what arrives.
#[tokio::test]
async fn documents_reach_each_family_in_its_own_shape() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gemini_mock = mock(MockKind::Gemini).await;
    let gateway = Gateway::start(vec![
        openai_model("gpt", &openai_mock),
        anthropic_model("claude", &anthropic_mock),
        model(
            "gemini",
            routerly_core::config::ProviderKind::Gemini,
            &gemini_mock.base_url(),
            "gemini-2.5-flash",
        ),
    ])
    .await;
    let anthropic_pdf = |model: &str| {
        json!({"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Summarise"},
            {"type": "document", "title": "report.pdf",
             "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}
        ]}]})
    };

    let (status, _, reply) = answer(gateway.anthropic(&anthropic_pdf("gpt")).await).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        only_request(&openai_mock).body["messages"][0]["content"][1],
        json!({"type": "file", "file": {"filename": "report.pdf",
            "file_data": format!("data:application/pdf;base64,{PDF}")}})
    );

    let (status, _, reply) = answer(gateway.anthropic(&anthropic_pdf("gemini")).await).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        only_request(&gemini_mock).body["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "application/pdf", "data": PDF}})
    );

    let chat = json!({"model": "claude", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarise"},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": format!("data:application/pdf;base64,{PDF}")}}
    ]}]});
    let (status, _, reply) = answer(gateway.openai(&chat).await).await;
    assert_eq!(status, 200, "{reply}");
    let responses = json!({"model": "claude", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "Summarise"},
        {"type": "input_file", "file_url": "https://example.com/b.pdf"}
    ]}]});
    let response = gateway
        .post("/v1/responses")
        .bearer_auth(TOKEN)
        .json(&responses)
        .send()
        .await
        .expect("the service answers");
    let (status, _, reply) = answer(response).await;
    assert_eq!(status, 200, "{reply}");
    let sent: Vec<Value> = anthropic_mock
        .requests()
        .into_iter()
        .map(|request| request.body["messages"][0]["content"][1].clone())
        .collect();
    assert_eq!(
        sent,
        vec![
            json!({"type": "document", "title": "a.pdf",
                "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}),
            json!({"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}}),
        ]
    );

    // A Files API id only OpenAI can read: refused in the Responses error shape.
    let by_id = json!({"model": "claude", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "file-1"}]}]});
    let response = gateway
        .post("/v1/responses")
        .bearer_auth(TOKEN)
        .json(&by_id)
        .send()
        .await
        .expect("the service answers");
    let (status, _, reply) = answer(response).await;
    assert_eq!(status, 400, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("input[0].content[0]") && message.contains("`claude`"),
        "{reply}"
    );
    assert_eq!(reply["error"]["param"], "input[0].content[0]");
    assert_eq!(anthropic_mock.requests().len(), 2, "nothing more was sent");
}

#[tokio::test]
async fn the_dropped_header_is_printable_and_bounded() {
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![anthropic_model("claude", &anthropic_mock)]).await;
    // Hostile tool types: control characters and a list far longer than a header should be.
    let tools: Vec<Value> = (0..400)
        .map(|index| json!({"type": format!("evil\r\nx-injected: {index}\u{7f}é")}))
        .collect();
    let body =
        json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}], "tools": tools});
    let response = gateway.openai(&body).await;
    let dropped = response
        .headers()
        .get(DROPPED)
        .expect("the header is there")
        .to_str()
        .expect("printable ASCII")
        .to_owned();
    assert!(response.headers().get("x-injected").is_none());
    let (status, _, reply) = answer(response).await;
    assert_eq!(status, 200, "{reply}");
    assert!(dropped.len() <= 2048, "{}", dropped.len());
    assert!(dropped.ends_with("..."));
    assert!(
        dropped.starts_with("tools[0] (evil??x-injected: 0??)"),
        "{dropped}"
    );
}

/// Hosted web search reaches a target's own search tool (Anthropic's server tool, Gemini's
/// Google Search grounding) and is named dropped where there is none; a strict project
/// accepts the call that loses nothing and refuses the one that would.
#[tokio::test]
async fn hosted_web_search_goes_to_the_targets_own_search_or_is_named_dropped() {
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gemini_mock = mock(MockKind::Gemini).await;
    let gateway = Gateway::start_with(
        vec![
            anthropic_model("claude", &anthropic_mock),
            model(
                "gemini",
                routerly_core::config::ProviderKind::Gemini,
                &gemini_mock.base_url(),
                "gemini-2.5-flash",
            ),
        ],
        |draft| draft.projects.projects[0].strict_translation = true,
    )
    .await;
    let send = |body: Value| {
        gateway
            .post("/v1/responses")
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let search =
        json!({"type": "web_search", "user_location": {"type": "approximate", "country": "IT"}});
    let response = send(json!({"model": "claude", "input": "news?", "tools": [search]}))
        .await
        .expect("sent");
    assert_eq!(response.headers().get(DROPPED), None);
    let (status, _, reply) = answer(response).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        only_request(&anthropic_mock).body["tools"],
        json!([{"type": "web_search_20250305", "name": "web_search",
            "user_location": {"type": "approximate", "country": "IT"}}])
    );

    let (status, _, reply) = answer(
        send(json!({"model": "gemini", "input": "news?", "tools": [search]}))
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        only_request(&gemini_mock).body["tools"],
        json!([{"googleSearch": {}}])
    );

    // With function tools, Gemini cannot ground: strict refuses, naming the search.
    let function = json!({"type": "function", "name": "f", "parameters": {"type": "object"}});
    let (status, _, reply) = answer(
        send(json!({"model": "gemini", "input": "news?", "tools": [function, search]}))
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("tools[1] (web_search)") && message.contains("`gemini`"),
        "{message}"
    );
    assert_eq!(gemini_mock.requests().len(), 1, "nothing more was sent");
}
