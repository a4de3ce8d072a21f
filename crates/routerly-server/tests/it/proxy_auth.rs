//! Project tokens on both surfaces: where they may be sent, which are refused and how,
//! Anthropic's headers, and hand edits of `config/projects.json` taking effect live.

use crate::common;

use std::time::Duration;

use common::*;
use routerly_core::usage::Outcome;
use routerly_mock::MockKind;
use serde_json::{Value, json};

const EXPIRED_TOKEN: &str = "sk-lr-expired-0123456789abcdef0123456789a";
const REVOKED_TOKEN: &str = "sk-lr-revoked-0123456789abcdef0123456789a";

async fn gateway_with_dead_tokens(openai_mock: &routerly_mock::MockServer) -> Gateway {
    Gateway::start_with(vec![openai_model("gpt", openai_mock)], |draft| {
        let tokens = &mut draft.projects.projects[0].tokens;
        let mut expired = project_token("tok-expired", EXPIRED_TOKEN);
        expired.expires_at = Some(chrono::Utc::now() - chrono::Duration::hours(1));
        tokens.push(expired);
        let mut revoked = project_token("tok-revoked", REVOKED_TOKEN);
        revoked.revoked_at = Some(chrono::Utc::now() - chrono::Duration::minutes(1));
        tokens.push(revoked);
    })
    .await
}

#[tokio::test]
async fn bad_tokens_are_401_in_each_surfaces_shape() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let gateway = gateway_with_dead_tokens(&openai_mock).await;

    let cases: [(Option<&str>, &str); 4] = [
        (None, "Missing API key"),
        (Some("sk-lr-nobody-knows-this-one"), "not known"),
        (Some(EXPIRED_TOKEN), "expired"),
        (Some(REVOKED_TOKEN), "revoked"),
    ];
    for (token, says) in cases {
        let mut openai = gateway
            .post("/v1/chat/completions")
            .json(&openai_body("auto", "hi"));
        let mut anthropic_bearer = gateway
            .post("/v1/messages")
            .header("anthropic-version", "2023-06-01")
            .json(&anthropic_body("auto", "hi"));
        let mut anthropic_key = gateway
            .post("/v1/messages")
            .header("anthropic-version", "2023-06-01")
            .json(&anthropic_body("auto", "hi"));
        if let Some(token) = token {
            openai = openai.bearer_auth(token);
            anthropic_bearer = anthropic_bearer.bearer_auth(token);
            anthropic_key = anthropic_key.header("x-api-key", token);
        }

        let (status, model_header, body) =
            answer(openai.send().await.expect("the service answers")).await;
        assert_eq!(status, 401, "{token:?} on /v1/chat/completions: {body}");
        assert_eq!(model_header, None);
        let message = assert_openai_error(&body, "authentication_error");
        assert!(
            message.contains(says),
            "expected the message to say {says:?}: {message}"
        );

        for request in [anthropic_bearer, anthropic_key] {
            let (status, _, body) =
                answer(request.send().await.expect("the service answers")).await;
            assert_eq!(status, 401, "{token:?} on /v1/messages: {body}");
            let message = assert_anthropic_error(&body, "authentication_error");
            assert!(message.contains(says), "expected {says:?}: {message}");
        }
    }

    assert!(
        openai_mock.requests().is_empty(),
        "no refused call reaches a provider"
    );
    let records = gateway.stop().await;
    assert!(
        records.is_empty(),
        "unauthenticated calls leave no record: {records:#?}"
    );
}

#[tokio::test]
async fn tokens_work_in_either_header_with_any_anthropic_version() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![
        anthropic_model("claude", &anthropic_mock),
        openai_model("gpt", &openai_mock),
    ])
    .await;

    let requests = [
        // What current Anthropic SDKs send: Bearer, a version, `?beta=true`, beta headers.
        gateway
            .post("/v1/messages?beta=true")
            .bearer_auth(TOKEN)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "prompt-caching-2024-07-31")
            .header("anthropic-beta", "interleaved-thinking-2025-05-14"),
        // An unknown future version, and no version at all.
        gateway
            .post("/v1/messages")
            .header("x-api-key", TOKEN)
            .header("anthropic-version", "2099-12-31"),
        gateway.post("/v1/messages").header("x-api-key", TOKEN),
    ];
    for request in requests {
        let (status, model_header, body) = answer(
            request
                .json(&anthropic_body("auto", "hi"))
                .send()
                .await
                .expect("the service answers"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(model_header.as_deref(), Some("claude"));
        assert_eq!(body["type"], "message", "{body}");
    }
    // `x-api-key` on the OpenAI surface too.
    let (status, model_header, _) = answer(
        gateway
            .post("/v1/chat/completions")
            .header("x-api-key", TOKEN)
            .json(&openai_body("gpt", "hi"))
            .send()
            .await
            .expect("the service answers"),
    )
    .await;
    assert_eq!((status, model_header.as_deref()), (200, Some("gpt")));

    let seen = anthropic_mock.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].header("anthropic-beta"),
        Some("prompt-caching-2024-07-31, interleaved-thinking-2025-05-14"),
        "anthropic-beta reaches the provider"
    );
    for request in &seen {
        assert_eq!(
            request.header("anthropic-version"),
            Some("2023-06-01"),
            "the provider gets the version Routerly speaks"
        );
        assert_ne!(
            request.header("x-api-key"),
            Some(TOKEN),
            "the project token never reaches the provider"
        );
        assert_ne!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "the project token never reaches the provider"
        );
    }
    assert_eq!(
        seen[1].header("anthropic-beta"),
        None,
        "no beta header when the client sent none"
    );

    let records = gateway.stop().await;
    assert_eq!(records.len(), 4, "{records:#?}");
    assert!(
        records
            .iter()
            .all(|record| record.outcome == Outcome::Success)
    );
}

/// Polls until `check` passes or `within` is over.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn hand_edits_of_the_config_files_take_effect_without_a_restart() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![openai_model("gpt", &openai_mock)]).await;
    let (status, _, _) = answer(gateway.openai(&openai_body("auto", "hi")).await).await;
    assert_eq!(status, 200);

    // Register a model and add it to the project by hand.
    let config_dir = gateway.home().join("config");
    let models_path = config_dir.join("models.json");
    let mut models: Value =
        serde_json::from_slice(&std::fs::read(&models_path).expect("read models.json"))
            .expect("models.json is JSON");
    models["models"]
        .as_array_mut()
        .expect("a models array")
        .push(json!({
            "id": "claude",
            "provider": "anthropic",
            "endpoint": anthropic_mock.base_url(),
            "upstream_model": "claude-haiku-4-5",
        }));
    std::fs::write(
        &models_path,
        serde_json::to_vec_pretty(&models).expect("serialize"),
    )
    .expect("write models.json");
    let projects_path = config_dir.join("projects.json");
    let mut projects: Value =
        serde_json::from_slice(&std::fs::read(&projects_path).expect("read projects.json"))
            .expect("projects.json is JSON");
    projects["projects"][0]["models"]
        .as_array_mut()
        .expect("a project models array")
        .push(json!({"model_id": "claude"}));
    std::fs::write(
        &projects_path,
        serde_json::to_vec_pretty(&projects).expect("serialize"),
    )
    .expect("write projects.json");

    let picked_up = eventually(Duration::from_secs(2), || async {
        gateway.openai(&openai_body("claude", "hi")).await.status() == 200
    })
    .await;
    assert!(
        picked_up,
        "expected the hand-added model to serve within 2 s"
    );
    assert!(!anthropic_mock.requests().is_empty());

    // Revoke the token by hand.
    projects["projects"][0]["tokens"][0]["revoked_at"] = json!(chrono::Utc::now());
    std::fs::write(
        &projects_path,
        serde_json::to_vec_pretty(&projects).expect("serialize"),
    )
    .expect("write projects.json");
    let revoked = eventually(Duration::from_secs(2), || async {
        gateway.openai(&openai_body("auto", "hi")).await.status() == 401
    })
    .await;
    assert!(
        revoked,
        "expected the hand-revoked token to be refused within 2 s"
    );
    let (status, _, body) = answer(gateway.anthropic(&anthropic_body("auto", "hi")).await).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        assert_anthropic_error(&body, "authentication_error").contains("revoked"),
        "{body}"
    );

    let records = gateway.stop().await;
    assert!(
        records
            .iter()
            .any(|record| record.model_id.as_deref() == Some("claude")),
        "the hand-added model was recorded: {records:#?}"
    );
    assert!(
        records
            .iter()
            .all(|record| record.outcome == Outcome::Success
                || (record.status == 404 && record.model_id.is_none())),
        "only the polls before the new model was picked up fail: {records:#?}"
    );
}
