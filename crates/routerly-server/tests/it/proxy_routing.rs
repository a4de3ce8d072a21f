//! Which model serves: `auto`, ids, aliases, unknown names, token allow-lists; the
//! model listings, `count_tokens`, unknown routes and the health endpoints.

use crate::common;

use common::*;
use routerly_core::usage::Outcome;
use routerly_mock::MockKind;
use serde_json::{Value, json};

const LIMITED_TOKEN: &str = "sk-lr-limited-0123456789abcdef0123456789ab";

/// Two models (`gpt` on an OpenAI mock, `claude` on an Anthropic mock), `claude` with the
/// alias `gpt-4o`, and a second token that may use only `claude`.
async fn two_model_gateway(
    openai_mock: &routerly_mock::MockServer,
    anthropic_mock: &routerly_mock::MockServer,
) -> Gateway {
    Gateway::start_with(
        vec![
            openai_model("gpt", openai_mock),
            anthropic_model("claude", anthropic_mock),
        ],
        |draft| {
            let project = &mut draft.projects.projects[0];
            project.models[1].aliases = vec!["gpt-4o".to_owned(), "smart".to_owned()];
            let mut limited = project_token("tok-limited", LIMITED_TOKEN);
            limited.models = vec!["claude".to_owned()];
            project.tokens.push(limited);
        },
    )
    .await
}

#[tokio::test]
async fn auto_ids_and_aliases_pick_the_model_that_serves() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = two_model_gateway(&openai_mock, &anthropic_mock).await;

    let cases = [
        ("auto", "gpt", MockKind::OpenAi),
        ("gpt", "gpt", MockKind::OpenAi),
        ("claude", "claude", MockKind::Anthropic),
        ("gpt-4o", "claude", MockKind::Anthropic),
        ("smart", "claude", MockKind::Anthropic),
    ];
    for (requested, served, provider) in cases {
        let (status, model_header, body) =
            answer(gateway.openai(&openai_body(requested, "hi")).await).await;
        assert_eq!(status, 200, "`{requested}`: {body}");
        assert_eq!(
            model_header.as_deref(),
            Some(served),
            "`{requested}` is served by {served}"
        );
        assert_eq!(body["model"], served, "`{requested}`: {body}");
        let upstream = upstream_of(provider);
        assert_eq!(
            body["choices"][0]["message"]["content"],
            mock_answer(provider, upstream, "hi").as_str()
        );
    }
    // The provider sees its own model name, never the alias.
    for request in anthropic_mock.requests() {
        assert_eq!(request.body["model"], "claude-haiku-4-5");
    }

    let (status, model_header, body) =
        answer(gateway.anthropic(&anthropic_body("gpt-4o", "hi")).await).await;
    assert_eq!(
        (status, model_header.as_deref()),
        (200, Some("claude")),
        "{body}"
    );
    assert_eq!(body["model"], "claude");

    let records = gateway.stop().await;
    let served: Vec<Option<&str>> = records
        .iter()
        .map(|record| record.model_id.as_deref())
        .collect();
    assert_eq!(
        served,
        [
            Some("gpt"),
            Some("gpt"),
            Some("claude"),
            Some("claude"),
            Some("claude"),
            Some("claude")
        ]
    );
    assert!(
        records
            .iter()
            .all(|record| record.outcome == Outcome::Success)
    );
}

#[tokio::test]
async fn an_unknown_model_is_a_404_in_each_surfaces_shape() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = two_model_gateway(&openai_mock, &anthropic_mock).await;

    let (status, model_header, body) =
        answer(gateway.openai(&openai_body("gpt-5-turbo", "hi")).await).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(model_header, None);
    let message = assert_openai_error(&body, "not_found_error");
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    assert_eq!(body["error"]["param"], "model", "{body}");
    assert!(
        message.contains("gpt-5-turbo"),
        "the message names the model: {message}"
    );

    let (status, _, body) = answer(
        gateway
            .anthropic(&anthropic_body("claude-opus-9", "hi"))
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let message = assert_anthropic_error(&body, "not_found_error");
    assert!(message.contains("claude-opus-9"), "{message}");

    assert!(openai_mock.requests().is_empty() && anthropic_mock.requests().is_empty());
    let records = gateway.stop().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    for record in &records {
        assert_eq!(
            (record.outcome, record.status),
            (Outcome::Error, 404),
            "{record:#?}"
        );
        assert_eq!(record.model_id, None, "no model was tried: {record:#?}");
    }
}

#[tokio::test]
async fn a_tokens_model_allow_list_is_enforced() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = two_model_gateway(&openai_mock, &anthropic_mock).await;

    // `auto` skips what the token may not use.
    let response = gateway
        .post("/v1/chat/completions")
        .bearer_auth(LIMITED_TOKEN)
        .json(&openai_body("auto", "hi"))
        .send()
        .await
        .expect("the service answers");
    let (status, model_header, body) = answer(response).await;
    assert_eq!(
        (status, model_header.as_deref()),
        (200, Some("claude")),
        "{body}"
    );
    assert!(
        openai_mock.requests().is_empty(),
        "the forbidden model is never called"
    );

    // Naming a forbidden model is refused.
    let response = gateway
        .post("/v1/chat/completions")
        .bearer_auth(LIMITED_TOKEN)
        .json(&openai_body("gpt", "hi"))
        .send()
        .await
        .expect("the service answers");
    let (status, _, body) = answer(response).await;
    assert_eq!(status, 403, "{body}");
    assert_openai_error(&body, "permission_error");
    assert_eq!(body["error"]["code"], "model_not_allowed");

    let response = gateway
        .post("/v1/messages")
        .header("x-api-key", LIMITED_TOKEN)
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic_body("gpt", "hi"))
        .send()
        .await
        .expect("the service answers");
    let (status, _, body) = answer(response).await;
    assert_eq!(status, 403, "{body}");
    assert_anthropic_error(&body, "permission_error");

    // The listing shows only what the token may use.
    let listed = gateway
        .get("/v1/models")
        .bearer_auth(LIMITED_TOKEN)
        .send()
        .await
        .expect("the service answers");
    let (status, _, body) = answer(listed).await;
    assert_eq!(status, 200);
    assert_eq!(listed_ids(&body), ["auto", "claude", "gpt-4o", "smart"]);
    assert!(openai_mock.requests().is_empty());

    let records = gateway.stop().await;
    assert_eq!(records.len(), 3, "{records:#?}");
    assert!(
        records
            .iter()
            .all(|record| record.token_id == "tok-limited")
    );
    assert_eq!(records[0].outcome, Outcome::Success);
    assert_eq!(records[1].status, 403);
    assert_eq!(records[2].status, 403);
}

fn listed_ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("expected a `data` array: {body}"))
        .iter()
        .map(|model| model["id"].as_str().expect("a model id").to_owned())
        .collect()
}

#[tokio::test]
async fn models_are_listed_with_aliases_and_auto() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = two_model_gateway(&openai_mock, &anthropic_mock).await;

    let (status, _, body) = answer(
        gateway
            .get("/v1/models")
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the service answers"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(
        listed_ids(&body),
        ["auto", "gpt", "claude", "gpt-4o", "smart"]
    );
    for model in body["data"].as_array().expect("data") {
        assert_eq!(model["object"], "model", "{model}");
        assert!(model["created"].is_i64(), "{model}");
    }
    assert_eq!(body["data"][1]["owned_by"], "openai");
    assert_eq!(body["data"][2]["owned_by"], "anthropic");

    // Anthropic clients get Anthropic's listing shape.
    let (status, _, body) = answer(
        gateway
            .get("/v1/models")
            .header("x-api-key", TOKEN)
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .expect("the service answers"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["has_more"], false);
    assert_eq!(body["first_id"], "auto");
    assert_eq!(body["last_id"], "smart");
    assert_eq!(body["data"][2]["type"], "model");

    let (status, _, body) = answer(
        gateway
            .get("/v1/models/gpt-4o")
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the service answers"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["id"], &body["owned_by"]),
        (&json!("gpt-4o"), &json!("anthropic"))
    );

    let (status, _, body) = answer(
        gateway
            .get("/v1/models/nope")
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the service answers"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_openai_error(&body, "not_found_error");
    assert_eq!(body["error"]["code"], "model_not_found");

    let (status, _, body) = answer(
        gateway
            .get("/v1/models")
            .send()
            .await
            .expect("the service answers"),
    )
    .await;
    assert_eq!(status, 401, "the listing needs a token: {body}");
    assert_openai_error(&body, "authentication_error");

    let records = gateway.stop().await;
    assert!(
        records.is_empty(),
        "listings leave no usage records: {records:#?}"
    );
}

#[tokio::test]
async fn count_tokens_is_exact_for_anthropic_and_estimated_otherwise() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = two_model_gateway(&openai_mock, &anthropic_mock).await;
    let count = |model: &str| {
        gateway
            .post("/v1/messages/count_tokens")
            .header("x-api-key", TOKEN)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "token-counting-2024-11-01")
            .json(&json!({"model": model, "system": "Be brief.",
                "messages": [{"role": "user", "content": "How many tokens is this?"}]}))
            .send()
    };

    let counted = count("claude").await.expect("the service answers");
    assert_eq!(
        counted.headers().get("x-routerly-trace-id"),
        None,
        "count_tokens has no trace, so no (empty) trace header"
    );
    let (status, model_header, body) = answer(counted).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(model_header.as_deref(), Some("claude"));
    assert_eq!(
        body,
        json!({"input_tokens": prompt_tokens("Be brief.How many tokens is this?")}),
        "the Anthropic mock's exact count"
    );
    let requests = anthropic_mock.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/messages/count_tokens");
    assert_eq!(requests[0].body["model"], "claude-haiku-4-5");
    assert_eq!(
        requests[0].header("anthropic-beta"),
        Some("token-counting-2024-11-01")
    );

    let counted = count("gpt").await.expect("the service answers");
    assert_eq!(
        counted
            .headers()
            .get("x-routerly-token-count")
            .and_then(|value| value.to_str().ok()),
        Some("tokenizer"),
        "gpt-4o-mini is counted with OpenAI's own tokenizer"
    );
    let (status, model_header, body) = answer(counted).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(model_header.as_deref(), Some("gpt"));
    // o200k_base tokens of each text plus OpenAI's framing: 3 per message (the system
    // prompt counts as one) and 3 to prime the reply.
    let o200k = tiktoken_rs::o200k_base_singleton();
    let tokens = |text: &str| o200k.encode_ordinary(text).len() as u64;
    let expected = 3 + (3 + tokens("Be brief.")) + (3 + tokens("How many tokens is this?"));
    assert_eq!(body, json!({"input_tokens": expected}));
    assert!(
        openai_mock.requests().is_empty(),
        "a tokenizer count calls no provider"
    );

    let (status, _, body) = answer(count("nope").await.expect("the service answers")).await;
    assert_eq!(status, 404, "{body}");
    assert_anthropic_error(&body, "not_found_error");

    let records = gateway.stop().await;
    assert!(
        records.is_empty(),
        "counting is not a completion: {records:#?}"
    );
}

#[tokio::test]
async fn unknown_v1_routes_and_health_endpoints() {
    let gateway = Gateway::start(Vec::new()).await;

    let (status, _, body) = answer(
        gateway
            .post("/v1/whatever")
            .json(&json!({}))
            .send()
            .await
            .expect("the service answers"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let message = assert_openai_error(&body, "not_found_error");
    assert!(message.contains("/v1/whatever"), "{message}");
    let (status, _, body) = answer(
        gateway
            .get("/v1/files/abc")
            .send()
            .await
            .expect("the service answers"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_openai_error(&body, "not_found_error");

    let (status, _, body) = answer(gateway.get("/health").send().await.expect("health")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime"].is_u64(), "{body}");

    let (status, _, body) = answer(gateway.get("/ready").send().await.expect("ready")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");

    // A project without models answers every `auto` with a 404 naming the problem.
    let (status, _, body) = answer(gateway.openai(&openai_body("auto", "hi")).await).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");
    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "{records:#?}");
}

#[tokio::test]
async fn records_carry_cached_tokens_user_and_tags() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let mut gpt = openai_model("gpt", &openai_mock);
    gpt.pricing.cached_input = Some(0.5);
    let mut claude = anthropic_model("claude", &anthropic_mock);
    claude.pricing.cached_input = Some(0.25);
    claude.pricing.cache_write = Some(4.0);
    let gateway = Gateway::start(vec![gpt, claude]).await;

    let prompt =
        "a prompt long enough to have forty tokens or so, of which some are cached [mock:cached=8]";
    let mut body = openai_body("gpt", prompt);
    body["user"] = json!("user-42");
    let response = gateway
        .post("/v1/chat/completions")
        .bearer_auth(TOKEN)
        .header("x-routerly-tags", "team-a, feature-x,")
        .json(&body)
        .send()
        .await
        .expect("the service answers");
    let (status, _, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cached_tokens"], 8,
        "{body}"
    );

    let anthropic_prompt = format!("{prompt} [mock:cache_write=4]");
    let (status, _, body) = answer(
        gateway
            .anthropic(&anthropic_body("claude", &anthropic_prompt))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    let openai_record = &records[0];
    assert_eq!(openai_record.user.as_deref(), Some("user-42"));
    assert_eq!(openai_record.tags, ["team-a", "feature-x"]);
    assert_eq!(openai_record.input_tokens, prompt_tokens(prompt));
    assert_eq!(openai_record.cached_input_tokens, 8);
    // The mock echoes the first 60 characters of the prompt without its directives.
    let echoed = &"a prompt long enough to have forty tokens or so, of which some are cached"[..60];
    let output = words(&mock_answer(
        MockKind::OpenAi,
        "gpt-4o-mini",
        echoed.trim_end(),
    ));
    assert_eq!(openai_record.output_tokens, output);
    let cost = ((prompt_tokens(prompt) - 8) as f64 * INPUT_PRICE
        + 8.0 * 0.5
        + output as f64 * OUTPUT_PRICE)
        / 1_000_000.0;
    assert!(
        (openai_record.cost_usd - cost).abs() < 1e-12,
        "cached tokens at their own price: expected {cost}, got {openai_record:#?}"
    );

    let anthropic_record = &records[1];
    let total_input = prompt_tokens(&anthropic_prompt);
    assert_eq!(
        (
            anthropic_record.input_tokens,
            anthropic_record.cached_input_tokens,
            anthropic_record.cache_write_tokens
        ),
        (total_input, 8, 4),
        "input tokens include cached and cache-write ones: {anthropic_record:#?}"
    );
    let expected_input_cost =
        ((total_input - 12) as f64 * INPUT_PRICE + 8.0 * 0.25 + 4.0 * 4.0) / 1_000_000.0;
    assert!(
        (anthropic_record.input_cost_usd - expected_input_cost).abs() < 1e-12,
        "expected input cost {expected_input_cost}: {anthropic_record:#?}"
    );
}
