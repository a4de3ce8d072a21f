//! Bad input on both surfaces: each is a 400 or 413 in the surface's shape that names the
//! problem, and none of it disturbs the service or the records already written.

use crate::common;

use common::*;
use routerly_core::usage::Outcome;
use routerly_mock::MockKind;
use serde_json::json;

const MAX_BODY_BYTES: usize = 2048;

#[tokio::test]
async fn bad_input_is_refused_in_each_surfaces_shape_and_the_service_keeps_serving() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(vec![openai_model("gpt", &openai_mock)], |draft| {
        draft.settings.max_body_bytes = MAX_BODY_BYTES;
    })
    .await;

    // A good call first, whose record must survive everything below.
    let (status, _, _) = answer(gateway.openai(&openai_body("auto", "first")).await).await;
    assert_eq!(status, 200);
    let before = gateway.wait_for_records(1).await;

    let oversized = json!({"model": "auto", "max_tokens": 10,
        "messages": [{"role": "user", "content": "x".repeat(MAX_BODY_BYTES * 4)}]})
    .to_string();
    // (raw body, status, what the message must mention, OpenAI param)
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        (
            "{\"model\": \"auto\", \"messages\": [".to_owned(),
            400,
            "not valid JSON",
            None,
        ),
        ("[1, 2, 3]".to_owned(), 400, "JSON object", None),
        (String::new(), 400, "JSON", None),
        (
            json!({"model": "auto", "max_tokens": 10, "temperature": "hot",
                "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
            400,
            "temperature",
            Some("temperature"),
        ),
        (
            json!({"model": "auto", "max_tokens": 10}).to_string(),
            400,
            "messages",
            Some("messages"),
        ),
        (
            json!({"model": "auto", "max_tokens": 10, "messages": "hi"}).to_string(),
            400,
            "messages",
            Some("messages"),
        ),
        (oversized, 413, "2048", None),
    ];

    for (raw, expected_status, mentions, param) in &cases {
        let response = gateway
            .post("/v1/chat/completions")
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(raw.clone())
            .send()
            .await
            .expect("the service answers");
        let (status, model_header, body) = answer(response).await;
        assert_eq!(
            status, *expected_status,
            "OpenAI surface, body {raw:.60}: {body}"
        );
        assert_eq!(model_header, None);
        let message = assert_openai_error(&body, "invalid_request_error");
        assert!(
            message.contains(mentions),
            "expected {mentions:?} in {message:?}"
        );
        if let Some(param) = param {
            assert_eq!(body["error"]["param"], *param, "{body}");
        }

        let response = gateway
            .post("/v1/messages")
            .header("x-api-key", TOKEN)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(raw.clone())
            .send()
            .await
            .expect("the service answers");
        let (status, _, body) = answer(response).await;
        assert_eq!(
            status, *expected_status,
            "Anthropic surface, body {raw:.60}: {body}"
        );
        let error_type = if status == 413 {
            "request_too_large"
        } else {
            "invalid_request_error"
        };
        let message = assert_anthropic_error(&body, error_type);
        assert!(
            message.contains(mentions),
            "expected {mentions:?} in {message:?}"
        );
    }

    // Anthropic requires max_tokens; OpenAI does not.
    let (status, _, body) = answer(
        gateway
            .anthropic(&json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(assert_anthropic_error(&body, "invalid_request_error").contains("max_tokens"));

    assert_eq!(
        openai_mock.requests().len(),
        1,
        "no bad request reached the provider"
    );
    // The service still serves.
    let (status, model_header, _) =
        answer(gateway.openai(&openai_body("auto", "last")).await).await;
    assert_eq!((status, model_header.as_deref()), (200, Some("gpt")));

    let records = gateway.stop().await;
    let bad_calls = cases.len() * 2 + 1;
    assert_eq!(records.len(), 1 + bad_calls + 1, "{records:#?}");
    assert_eq!(records[0], before[0], "the first record is intact");
    for record in &records[1..=bad_calls] {
        assert_eq!(record.outcome, Outcome::Error, "{record:#?}");
        assert!(record.status == 400 || record.status == 413, "{record:#?}");
        assert_eq!(record.model_id, None, "{record:#?}");
        assert_tokens_and_cost(record, 0, 0);
    }
    let last = records.last().expect("a last record");
    assert_eq!(last.outcome, Outcome::Success);
    assert_tokens_and_cost(
        last,
        prompt_tokens("last"),
        words(&mock_answer(MockKind::OpenAi, "gpt-4o-mini", "last")),
    );
}
