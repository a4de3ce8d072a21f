//! Fallback across candidates: what counts as a failure worth the next model, what the
//! client gets when every candidate fails, and what the usage record says.

use crate::common;

use common::*;
use routerly_core::usage::{Outcome, Surface};
use routerly_mock::MockKind;

/// The first model's provider answers `status`; the second serves.
async fn check_status_fallback(first_kind: MockKind, status: u16) {
    let first = mock(first_kind).await;
    let second = mock(MockKind::OpenAi).await;
    let first_model = model_on("first", &first);
    let gateway = Gateway::start(vec![first_model, openai_model("second", &second)]).await;
    first.fail_next(1, status);

    let response = gateway.openai(&openai_body("auto", "hi")).await;
    let trace_id = response
        .headers()
        .get("x-routerly-trace-id")
        .map(|value| value.to_str().expect("an ASCII header").to_owned());
    let (http_status, model_header, body) = answer(response).await;

    assert_eq!(
        http_status, 200,
        "expected the second model to serve after {status}: {body}"
    );
    assert_eq!(
        model_header.as_deref(),
        Some("second"),
        "x-routerly-model names the model that served"
    );
    assert_eq!(
        body["model"], "second",
        "the answer's model names the model that served"
    );
    let text = mock_answer(MockKind::OpenAi, "gpt-4o-mini", "hi");
    assert_eq!(body["choices"][0]["message"]["content"], text.as_str());
    assert_eq!(
        first.requests().len(),
        1,
        "the failing provider is called once"
    );
    assert_eq!(
        second.requests().len(),
        1,
        "the fallback provider is called once"
    );

    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "one usage record per call: {records:#?}");
    let record = &records[0];
    assert_eq!(record.outcome, Outcome::Success);
    assert_eq!(record.status, 200);
    assert_eq!(record.model_id.as_deref(), Some("second"));
    assert_eq!(record.provider.as_deref(), Some("openai"));
    assert_eq!(record.surface, Surface::ChatCompletions);
    assert_eq!(record.project_id, PROJECT_ID);
    assert_eq!(record.token_id, TOKEN_ID);
    assert_eq!(
        trace_id.as_deref(),
        Some(record.trace_id.as_str()),
        "the trace header names the record's trace"
    );
    assert_eq!(
        record.attempts.len(),
        1,
        "the failed attempt is listed: {record:#?}"
    );
    assert_eq!(record.attempts[0].model_id, "first");
    assert_eq!(record.attempts[0].status, Some(status));
    assert_tokens_and_cost(record, prompt_tokens("hi"), words(&text));
}

#[tokio::test]
async fn falls_back_on_429() {
    check_status_fallback(MockKind::OpenAi, 429).await;
}

#[tokio::test]
async fn falls_back_on_500() {
    check_status_fallback(MockKind::OpenAi, 500).await;
}

#[tokio::test]
async fn falls_back_on_503() {
    check_status_fallback(MockKind::OpenAi, 503).await;
}

#[tokio::test]
async fn falls_back_on_anthropic_529() {
    check_status_fallback(MockKind::Anthropic, 529).await;
}

#[tokio::test]
async fn falls_back_on_a_first_token_timeout() {
    let slow = mock(MockKind::OpenAi).await;
    let patient = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        with_first_token_timeout(openai_model("slow", &slow), 150),
        with_first_token_timeout(anthropic_model("patient", &patient), 10_000),
    ])
    .await;

    let prompt = "hi [mock:delay_ms=600]";
    let (status, model_header, body) =
        answer(gateway.anthropic(&anthropic_body("slow", prompt)).await).await;

    assert_eq!(status, 200, "expected the patient model to serve: {body}");
    assert_eq!(model_header.as_deref(), Some("patient"));
    assert_eq!(body["model"], "patient");
    let text = mock_answer(MockKind::Anthropic, "claude-haiku-4-5", "hi");
    assert_eq!(body["content"][0]["text"], text.as_str());
    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "one usage record: {records:#?}");
    let record = &records[0];
    assert_eq!(record.outcome, Outcome::Success);
    assert_eq!(record.surface, Surface::Messages);
    assert_eq!(record.model_id.as_deref(), Some("patient"));
    assert_eq!(
        record.attempts.len(),
        1,
        "the timed-out attempt is listed: {record:#?}"
    );
    assert_eq!(record.attempts[0].model_id, "slow");
    assert!(
        record.attempts[0].error.contains("timed out"),
        "expected a timeout in the attempt: {record:#?}"
    );
    assert_tokens_and_cost(record, prompt_tokens(prompt), words(&text));
}

#[tokio::test]
async fn falls_back_when_the_provider_refuses_connections() {
    let working = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![
        unreachable_model("closed").await,
        openai_model("working", &working),
    ])
    .await;

    let (status, model_header, body) =
        answer(gateway.openai(&openai_body("closed", "hi")).await).await;

    assert_eq!(status, 200, "expected the working model to serve: {body}");
    assert_eq!(model_header.as_deref(), Some("working"));
    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "one usage record: {records:#?}");
    let record = &records[0];
    assert_eq!(record.outcome, Outcome::Success);
    assert_eq!(record.model_id.as_deref(), Some("working"));
    assert_eq!(record.attempts.len(), 1, "{record:#?}");
    assert_eq!(record.attempts[0].model_id, "closed");
    assert_eq!(
        record.attempts[0].status, None,
        "no provider answered: {record:#?}"
    );
    let text = mock_answer(MockKind::OpenAi, "gpt-4o-mini", "hi");
    assert_tokens_and_cost(record, prompt_tokens("hi"), words(&text));
}

#[tokio::test]
async fn every_candidate_rate_limited_is_a_429_with_retry_after() {
    let first = mock(MockKind::OpenAi).await;
    let second = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        openai_model("first", &first),
        anthropic_model("second", &second),
    ])
    .await;

    let openai = gateway
        .openai(&openai_body("auto", "hi [mock:status=429]"))
        .await;
    let retry_after = openai.headers().get("retry-after").cloned();
    let (status, model_header, body) = answer(openai).await;
    assert_eq!(
        status, 429,
        "expected 429 when every candidate is rate limited: {body}"
    );
    assert!(
        retry_after.is_some(),
        "expected a retry-after header on the 429"
    );
    assert_eq!(model_header, None, "no model served");
    assert_openai_error(&body, "rate_limit_error");

    let anthropic = gateway
        .anthropic(&anthropic_body("auto", "hi [mock:status=429]"))
        .await;
    let retry_after = anthropic.headers().get("retry-after").cloned();
    let (status, _, body) = answer(anthropic).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        retry_after.is_some(),
        "expected a retry-after header on the 429"
    );
    assert_anthropic_error(&body, "rate_limit_error");

    assert_eq!(
        first.requests().len(),
        2,
        "each call tried the first model once"
    );
    assert_eq!(
        second.requests().len(),
        2,
        "each call tried the second model once"
    );
    let records = gateway.stop().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    for record in &records {
        assert_eq!(record.outcome, Outcome::Error);
        assert_eq!(record.status, 429);
        assert_eq!(
            record.attempts.len(),
            2,
            "both failed attempts listed: {record:#?}"
        );
        assert_eq!(record.attempts[0].model_id, "first");
        assert_eq!(record.attempts[1].model_id, "second");
        assert_tokens_and_cost(record, 0, 0);
    }
}

#[tokio::test]
async fn every_candidate_failing_is_a_502() {
    let first = mock(MockKind::OpenAi).await;
    let second = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        openai_model("first", &first),
        anthropic_model("second", &second),
    ])
    .await;

    let (status, model_header, body) = answer(
        gateway
            .openai(&openai_body("auto", "hi [mock:status=500]"))
            .await,
    )
    .await;
    assert_eq!(
        status, 502,
        "expected 502 when every candidate fails: {body}"
    );
    assert_eq!(model_header, None);
    let message = assert_openai_error(&body, "server_error");
    assert!(
        message.contains("trace id"),
        "a 5xx names its trace id: {message}"
    );

    let (status, _, body) = answer(
        gateway
            .anthropic(&anthropic_body("auto", "hi [mock:status=503]"))
            .await,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_anthropic_error(&body, "api_error");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    assert!(
        records.iter().all(|record| record.outcome == Outcome::Error
            && record.status == 502
            && record.attempts.len() == 2),
        "{records:#?}"
    );
}

#[tokio::test]
async fn every_candidate_overloaded_is_a_529_overloaded_error() {
    let only = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![anthropic_model("only", &only)]).await;

    let (status, _, body) = answer(
        gateway
            .anthropic(&anthropic_body("auto", "hi [mock:status=529]"))
            .await,
    )
    .await;
    assert_eq!(
        status, 529,
        "an overloaded provider stays overloaded: {body}"
    );
    assert_anthropic_error(&body, "overloaded_error");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].status, 529, "{records:#?}");
}

#[tokio::test]
async fn every_candidate_timing_out_is_a_504() {
    let first = mock(MockKind::OpenAi).await;
    let second = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        with_first_token_timeout(openai_model("first", &first), 100),
        with_first_token_timeout(anthropic_model("second", &second), 100),
    ])
    .await;

    let (status, model_header, body) = answer(
        gateway
            .openai(&openai_body("auto", "hi [mock:delay_ms=500]"))
            .await,
    )
    .await;
    assert_eq!(
        status, 504,
        "expected 504 when every candidate times out: {body}"
    );
    assert_eq!(model_header, None);
    assert_openai_error(&body, "server_error");

    let request = serde_json::json!({"model": "auto", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "hi [mock:delay_ms=500]"}]});
    let (status, _, body) = answer(gateway.anthropic(&request).await).await;
    assert_eq!(
        status, 504,
        "a stream that never started is a real 504 too: {body}"
    );
    assert_anthropic_error(&body, "timeout_error");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    for record in &records {
        assert_eq!(record.outcome, Outcome::Timeout, "{record:#?}");
        assert_eq!(record.status, 504);
        assert_eq!(record.attempts.len(), 2, "{record:#?}");
    }
}

#[tokio::test]
async fn a_request_the_provider_rejects_is_returned_not_retried() {
    let first = mock(MockKind::OpenAi).await;
    let second = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![
        openai_model("first", &first),
        openai_model("second", &second),
    ])
    .await;

    // Routerly does not range-check temperature; OpenAI (and its mock) does.
    let mut request = openai_body("auto", "hi");
    request["temperature"] = serde_json::json!(2.5);
    let (status, model_header, body) = answer(gateway.openai(&request).await).await;

    assert_eq!(status, 400, "the provider's 400 is passed on: {body}");
    assert_eq!(
        model_header.as_deref(),
        Some("first"),
        "the model that answered is named"
    );
    assert_openai_error(&body, "invalid_request_error");
    assert_eq!(
        body["error"]["param"], "temperature",
        "the provider's error is kept: {body}"
    );
    assert_eq!(
        first.requests().len(),
        1,
        "the provider saw the request once"
    );
    assert!(
        second.requests().is_empty(),
        "a client error is not retried elsewhere"
    );

    // A stream the provider refuses is a real 400 too, not a broken stream.
    request["stream"] = serde_json::json!(true);
    let (status, model_header, body) = answer(gateway.openai(&request).await).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(model_header.as_deref(), Some("first"));
    assert_eq!(body["error"]["param"], "temperature", "{body}");
    assert_eq!(first.requests().len(), 2);
    assert!(
        second.requests().is_empty(),
        "a client error is not retried elsewhere"
    );

    let records = gateway.stop().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    for record in &records {
        assert_eq!(record.outcome, Outcome::Error);
        assert_eq!(record.status, 400);
        assert_eq!(record.model_id.as_deref(), Some("first"));
        assert_eq!(record.attempts.len(), 1, "{record:#?}");
        assert_tokens_and_cost(record, 0, 0);
    }
}

#[tokio::test]
async fn a_provider_400_is_translated_into_the_clients_shape_and_not_retried() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let spare = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        openai_model("gpt", &openai_mock),
        anthropic_model("claude", &spare),
    ])
    .await;

    let (status, model_header, body) = answer(
        gateway
            .anthropic(&anthropic_body("gpt", "hi [mock:status=400]"))
            .await,
    )
    .await;

    assert_eq!(status, 400, "the provider's 400 is passed on: {body}");
    assert_eq!(model_header.as_deref(), Some("gpt"));
    let message = assert_anthropic_error(&body, "invalid_request_error");
    assert!(
        message.contains("Mock error with status 400"),
        "the provider's message is kept: {message}"
    );
    assert_eq!(openai_mock.requests().len(), 1);
    assert!(
        spare.requests().is_empty(),
        "a client error is not retried elsewhere"
    );
    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(
        (records[0].outcome, records[0].status),
        (Outcome::Error, 400)
    );
}

#[tokio::test]
async fn garbage_from_every_provider_is_a_502_after_trying_each() {
    let first = mock(MockKind::OpenAi).await;
    let second = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        openai_model("first", &first),
        anthropic_model("second", &second),
    ])
    .await;

    let (status, model_header, body) = answer(
        gateway
            .openai(&openai_body("auto", "hi [mock:garbage]"))
            .await,
    )
    .await;
    assert_eq!(status, 502, "expected 502 after garbage from both: {body}");
    assert_eq!(model_header, None);
    assert_openai_error(&body, "server_error");
    assert_eq!(first.requests().len(), 1, "the first provider was tried");
    assert_eq!(
        second.requests().len(),
        1,
        "garbage moves on to the next candidate"
    );

    let stream = serde_json::json!({"model": "auto", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "hi [mock:garbage]"}]});
    let (status, _, body) = answer(gateway.anthropic(&stream).await).await;
    assert_eq!(
        status, 502,
        "garbage SSE before the first event is a real 502: {body}"
    );
    assert_anthropic_error(&body, "api_error");

    // The service still serves, and earlier records are intact.
    let (status, model_header, _) = answer(gateway.openai(&openai_body("auto", "hi")).await).await;
    assert_eq!((status, model_header.as_deref()), (200, Some("first")));
    let records = gateway.stop().await;
    assert_eq!(records.len(), 3, "{records:#?}");
    assert_eq!(records[0].outcome, Outcome::Error);
    assert_eq!(records[0].attempts.len(), 2);
    assert_eq!(records[1].outcome, Outcome::Error);
    assert_eq!(records[1].attempts.len(), 2);
    assert_eq!(records[2].outcome, Outcome::Success);
}

#[tokio::test]
async fn a_provider_refusing_routerlys_key_moves_on_and_never_looks_like_the_clients_401() {
    let first = mock(MockKind::OpenAi).await;
    let second = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        openai_model("first", &first),
        anthropic_model("second", &second),
    ])
    .await;

    first.fail_next(1, 401);
    let (status, model_header, _) = answer(gateway.openai(&openai_body("auto", "hi")).await).await;
    assert_eq!(
        (status, model_header.as_deref()),
        (200, Some("second")),
        "a bad provider key moves on"
    );

    first.fail_next(1, 401);
    second.fail_next(1, 401);
    let (status, _, body) = answer(gateway.anthropic(&anthropic_body("auto", "hi")).await).await;
    assert_eq!(
        status, 502,
        "a provider's 401 is the gateway's problem, not the client's: {body}"
    );
    assert_anthropic_error(&body, "api_error");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0].attempts[0].status, Some(401));
    assert_eq!(
        (records[1].outcome, records[1].status),
        (Outcome::Error, 502)
    );
}
