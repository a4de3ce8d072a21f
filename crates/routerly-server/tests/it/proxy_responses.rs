//! `/v1/responses` and `/v1/embeddings` in process: fallback from OpenAI's Responses API to
//! another provider through the one attempt loop, a stored conversation continued after a
//! fallback, and embeddings recorded as such.

use crate::common;

use common::*;
use routerly_core::usage::{CallType, Outcome, Surface};
use routerly_mock::MockKind;
use serde_json::json;

#[tokio::test]
async fn a_responses_call_falls_back_and_its_conversation_continues_elsewhere() {
    let openai = mock(MockKind::OpenAi).await;
    let anthropic = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        openai_model("gpt", &openai),
        anthropic_model("claude", &anthropic),
    ])
    .await;
    openai.fail_next(1, 503);

    let response = gateway
        .post("/v1/responses")
        .bearer_auth(TOKEN)
        .json(&json!({"model": "gpt", "input": "My name is Ada"}))
        .send()
        .await
        .expect("sent");
    let (status, model_header, first) = answer(response).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(model_header.as_deref(), Some("claude"));
    assert_eq!(first["object"], "response");
    assert_eq!(first["model"], "claude");
    let first_id = first["id"].as_str().expect("an id").to_owned();
    assert!(first_id.starts_with("resp_"));
    assert_eq!(
        openai.requests()[0].path,
        "/v1/responses",
        "OpenAI gets the Responses API itself"
    );

    // The second turn goes to OpenAI, which never saw the first: Routerly sends the history.
    let response = gateway
        .post("/v1/responses")
        .bearer_auth(TOKEN)
        .json(&json!({"model": "gpt", "input": "Who am I?", "previous_response_id": first_id}))
        .send()
        .await
        .expect("sent");
    let (status, model_header, second) = answer(response).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(model_header.as_deref(), Some("gpt"));
    let sent = openai.requests().last().expect("a request").body.clone();
    assert!(sent.get("previous_response_id").is_none(), "{sent}");
    let input = sent["input"].as_array().expect("input items");
    assert_eq!(input.len(), 3, "{sent}");
    assert_eq!(input[0]["content"][0]["text"], "My name is Ada");
    assert_eq!(input[1]["role"], "assistant");
    assert_eq!(input[2]["content"], "Who am I?");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.surface, Surface::Responses);
        assert_eq!(record.call_type, CallType::Completion);
        assert_eq!(record.outcome, Outcome::Success);
        assert!(record.input_tokens > 0 && record.output_tokens > 0);
    }
    assert_eq!(records[0].attempts.len(), 1, "the failed OpenAI attempt");
}

#[tokio::test]
async fn embeddings_pass_through_and_are_recorded_as_embeddings() {
    let openai = mock(MockKind::OpenAi).await;
    let mut embedder = openai_model("embed", &openai);
    embedder.upstream_model = "text-embedding-3-small".into();
    embedder.capabilities.embedding = Some(true);
    let gateway = Gateway::start(vec![openai_model("chat", &openai), embedder]).await;

    let response = gateway
        .post("/v1/embeddings")
        .bearer_auth(TOKEN)
        .json(&json!({"model": "auto", "input": ["hello world", "bye"]}))
        .send()
        .await
        .expect("sent");
    let (status, model_header, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        model_header.as_deref(),
        Some("embed"),
        "auto picks the embedding model"
    );
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["model"], "embed");
    let sent = &openai.requests()[0];
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.body["model"], "text-embedding-3-small");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.surface, Surface::Embeddings);
    assert_eq!(record.call_type, CallType::Embedding);
    assert_eq!(record.input_tokens, 4, "ceil(14 bytes / 4)");
    assert_eq!(record.output_tokens, 0);
    assert_tokens_and_cost(record, 4, 0);
}
