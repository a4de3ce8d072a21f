//! The routing engine through the service, against mock providers that are slow, failing,
//! rate-limited or down: ranking and fallback order, retries honouring `retry-after`, the
//! circuit breaker and its half-open probe, the `llm` policy with a routing model that
//! fails over, `semantic-intent` with the mock's embeddings, traces through `/api/traces`,
//! and no disk on the request path with every policy enabled.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use routerly_core::config::ModelConfig;
use routerly_core::usage::{CallType, Outcome};
use routerly_mock::MockKind;
use routerly_server::store::Draft;
use serde_json::{Value, json};

fn priced(mut model: ModelConfig, input: f64, output: f64) -> ModelConfig {
    model.pricing.input = input;
    model.pricing.output = output;
    model
}

fn set_prompt(draft: &mut Draft, model_id: &str, prompt: &str) {
    let project = &mut draft.projects.projects[0];
    let entry = project
        .models
        .iter_mut()
        .find(|model| model.model_id == model_id)
        .expect("a project model");
    entry.routing_prompt = Some(prompt.to_owned());
}

/// Sends an OpenAI request; returns status, served model, trace id and body.
async fn send(gateway: &Gateway, model: &str, text: &str) -> (u16, Option<String>, String, Value) {
    let response = gateway.openai(&openai_body(model, text)).await;
    let trace_id = response
        .headers()
        .get("x-routerly-trace-id")
        .and_then(|value| value.to_str().ok())
        .expect("every routed answer names its trace")
        .to_owned();
    let (status, served, body) = answer(response).await;
    (status, served, trace_id, body)
}

fn attempts(trace: &Value) -> Vec<(String, String)> {
    trace["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|attempt| {
            (
                attempt["model"].as_str().expect("a model").to_owned(),
                attempt["outcome"].as_str().expect("an outcome").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn cheapest_ranks_fallback_follows_the_ranking_and_the_trace_shows_it() {
    let failing = mock(MockKind::OpenAi).await;
    let healthy = mock(MockKind::OpenAi).await;
    let models = vec![
        priced(openai_model("pricey", &healthy), 10.0, 30.0),
        priced(openai_model("mid", &healthy), 2.0, 6.0),
        priced(openai_model("cheap", &failing), 1.0, 3.0),
    ];
    let gateway = Gateway::start_with(models, |draft| {
        set_policies(draft, json!([{ "type": "cheapest" }]), 0);
    })
    .await;
    failing.fail_next(1, 500);
    let (status, served, trace_id, body) = send(&gateway, "auto", "hello").await;
    assert_eq!(status, 200, "{body}");
    // Prices p = 2, 4, 20 → cheap 1, mid 0.5, pricey 0.1; cheap fails, mid serves.
    assert_eq!(
        served.as_deref(),
        Some("mid"),
        "the next in the ranking serves"
    );

    let token = admin_token(&gateway).await;
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["cheap", "mid", "pricey"]);
    assert_eq!(trace["policies"][0]["type"], "cheapest");
    assert_eq!(trace["policies"][0]["status"], "weighted");
    assert_eq!(trace["policies"][0]["weight"], 1);
    assert_eq!(
        attempts(&trace),
        vec![
            ("cheap".to_owned(), "failed".to_owned()),
            ("mid".to_owned(), "success".to_owned())
        ]
    );
    assert_eq!(trace["attempts"][0]["status"], 500);
    assert_eq!(trace["served_by"], "mid");
    let records = gateway.wait_for_records(1).await;
    assert_eq!(
        records[0].trace_id, trace_id,
        "the usage record links the trace"
    );
    assert!(
        !body.to_string().contains(&trace_id),
        "the trace never appears in the model's output"
    );
    // A project reader sees it under the project too, and in the project's list; all three
    // read through the typed contract and agree.
    let typed = |path: String| {
        let request = gateway.get(&path).bearer_auth(&token);
        async move {
            let answer = request.send().await.expect("answers");
            assert_eq!(answer.status(), 200, "{path}");
            answer.json::<Value>().await.expect("JSON")
        }
    };
    let scoped: routerly_api::traces::TraceView = serde_json::from_value(
        typed(format!("/api/projects/{PROJECT_ID}/traces/{trace_id}")).await,
    )
    .expect("a TraceView");
    assert_eq!(
        scoped,
        serde_json::from_value(trace.clone()).expect("a TraceView")
    );
    assert_eq!(scoped.served_by.as_deref(), Some("mid"));
    assert_eq!(scoped.attempts[0].status, Some(500));
    let list: routerly_api::traces::TraceList =
        serde_json::from_value(typed(format!("/api/projects/{PROJECT_ID}/traces?limit=1")).await)
            .expect("a TraceList");
    assert_eq!(list.traces, [scoped]);
    for limit in ["0", "501", "ten"] {
        let refused = gateway
            .get(&format!("/api/projects/{PROJECT_ID}/traces?limit={limit}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answers");
        assert_eq!(refused.status(), 400, "limit={limit}");
        let body: Value = refused.json().await.expect("an error");
        assert_eq!(body["error"]["field"], "limit", "limit={limit}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn retries_honour_retry_after_within_the_deadline() {
    let limited = mock(MockKind::OpenAi).await;
    let spare = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(
        vec![
            openai_model("limited", &limited),
            openai_model("spare", &spare),
        ],
        |draft| set_policies(draft, json!([]), 1),
    )
    .await;
    // 429 with `retry-after: 1`: the same model is tried again after at least a second.
    limited.fail_next(1, 429);
    let started = Instant::now();
    let (status, served, trace_id, body) = send(&gateway, "auto", "hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("limited"), "the retry succeeded");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for retry-after"
    );
    let trace = gateway
        .app
        .routing
        .traces
        .get(&trace_id)
        .await
        .expect("the trace is kept");
    assert_eq!(trace.attempts.len(), 2, "{trace:#?}");
    assert_eq!(trace.attempts[1].retry, 1);
    assert!(trace.attempts[1].waited_ms >= 1000.0, "{trace:#?}");
    assert!(trace.attempts[1].started_ms >= 1000.0);
    gateway.stop().await;

    // A deadline (the project's first-token timeout) shorter than retry-after: no retry,
    // the next candidate at once.
    let gateway = Gateway::start_with(
        vec![
            openai_model("limited", &limited),
            openai_model("spare", &spare),
        ],
        |draft| {
            set_policies(draft, json!([]), 1);
            draft.projects.projects[0].timeouts.first_token_ms = Some(500);
        },
    )
    .await;
    limited.fail_next(1, 429);
    let started = Instant::now();
    let (status, served, _, body) = send(&gateway, "auto", "hello").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("spare"));
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "no wait past the deadline"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn the_circuit_breaker_opens_and_a_half_open_probe_closes_it() {
    let flaky = mock(MockKind::OpenAi).await;
    let steady = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(
        vec![openai_model("flaky", &flaky), openai_model("steady", &steady)],
        |draft| {
            set_policies(
                draft,
                json!([{ "type": "health", "config": { "circuitBreaker": 0.5, "cooldownSeconds": 1 } }]),
                0,
            );
        },
    )
    .await;
    flaky.fail_next(1, 503);
    let (_, served, _, _) = send(&gateway, "flaky", "one").await;
    assert_eq!(served.as_deref(), Some("steady"), "fell back");
    gateway.wait_for_records(1).await;

    // 1 of 1 recent calls failed ≥ 0.5: the circuit opens and flaky is not even tried.
    let (_, served, trace_id, _) = send(&gateway, "flaky", "two").await;
    assert_eq!(served.as_deref(), Some("steady"));
    let trace = gateway
        .app
        .routing
        .traces
        .get(&trace_id)
        .await
        .expect("kept");
    assert!(
        trace
            .attempts
            .iter()
            .all(|attempt| attempt.model == "steady"),
        "{trace:#?}"
    );
    let excluded = trace.policies[0].scores[0]
        .excluded
        .clone()
        .unwrap_or_default();
    assert!(excluded.contains("circuit open"), "{trace:#?}");
    let metrics = gateway
        .get("/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("routerly_routing_circuit_state{model=\"flaky\",state=\"open\"} 1"),
        "{metrics}"
    );

    // After the cool-down one request probes it; its success closes the circuit.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, served, trace_id, _) = send(&gateway, "flaky", "three").await;
    assert_eq!(status, 200);
    assert_eq!(served.as_deref(), Some("flaky"), "the probe went to flaky");
    let trace = gateway
        .app
        .routing
        .traces
        .get(&trace_id)
        .await
        .expect("kept");
    assert!(
        trace.policies[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("half-open"),
        "{trace:#?}"
    );
    let (_, served, _, _) = send(&gateway, "flaky", "four").await;
    assert_eq!(served.as_deref(), Some("flaky"), "closed again");
    let metrics = gateway
        .get("/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("routerly_routing_circuit_state{model=\"flaky\",state=\"closed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("routerly_routing_fallbacks_total 1"),
        "{metrics}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn the_llm_policy_asks_the_routing_model_and_falls_back_when_it_fails() {
    let provider = mock(MockKind::OpenAi).await;
    let routing_mock = mock(MockKind::Anthropic).await;
    let down = unreachable_model("router-down").await;
    let router = anthropic_model("router", &routing_mock);
    let models = vec![
        openai_model("poet", &provider),
        openai_model("coder", &provider),
        down,
        router,
    ];
    let gateway = Gateway::start_with(models, |draft| {
        // The routing models are registered, not project models.
        draft.projects.projects[0]
            .models
            .retain(|model| model.model_id == "poet" || model.model_id == "coder");
        set_prompt(draft, "poet", "writes poems with verses that rhyme");
        set_prompt(draft, "coder", "writes rust code and fixes programs");
        set_policies(
            draft,
            json!([{ "type": "llm", "config": {
                "routingModelId": "router-down", "fallbackModelIds": ["router"], "includeReason": true } }]),
            0,
        );
    })
    .await;
    // Coder's description shares "writes", "rust", "code" with the message (0.5), poet's
    // only "writes" (≈0.17): coder first.
    let (status, served, trace_id, body) =
        send(&gateway, "auto", "please writes rust code for me").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("coder"));
    let trace = gateway
        .app
        .routing
        .traces
        .get(&trace_id)
        .await
        .expect("kept");
    assert_eq!(trace.policies[0].status, "weighted", "{trace:#?}");
    assert!(
        trace.policies[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("`router`"),
        "{trace:#?}"
    );
    let records = gateway.wait_for_records(3).await;
    let routing_calls: Vec<_> = records
        .iter()
        .filter(|record| record.call_type == CallType::Routing)
        .collect();
    assert_eq!(routing_calls.len(), 2, "{records:#?}");
    assert!(
        routing_calls
            .iter()
            .any(|record| record.model_id.as_deref() == Some("router-down")
                && record.outcome == Outcome::Error)
    );
    let charged = routing_calls
        .iter()
        .find(|record| record.model_id.as_deref() == Some("router"))
        .expect("the fallback routing model's call is recorded");
    assert_eq!(charged.outcome, Outcome::Success);
    assert!(
        charged.cost_usd > 0.0,
        "routing calls are charged: {charged:#?}"
    );
    assert_eq!(charged.trace_id, trace_id);
    let requests = routing_mock.requests();
    assert!(
        !requests.is_empty() && requests[0].body.to_string().contains("\\\"routing\\\""),
        "the routing model was asked for the routing JSON"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_policy_that_fails_is_skipped_and_the_request_still_served() {
    let provider = mock(MockKind::OpenAi).await;
    let down = unreachable_model("router-down").await;
    let gateway = Gateway::start_with(
        vec![
            openai_model("a", &provider),
            openai_model("b", &provider),
            down,
        ],
        |draft| {
            draft.projects.projects[0]
                .models
                .retain(|model| model.model_id != "router-down");
            set_policies(
                draft,
                json!([{ "type": "llm", "config": { "routingModelId": "router-down" } }]),
                0,
            );
        },
    )
    .await;
    let (status, _, trace_id, body) = send(&gateway, "auto", "hello").await;
    assert_eq!(status, 200, "{body}");
    let trace = gateway
        .app
        .routing
        .traces
        .get(&trace_id)
        .await
        .expect("kept");
    assert_eq!(trace.policies[0].status, "failed", "{trace:#?}");
    assert!(trace.shuffled, "no policy counted: an even shuffle");
    assert!(
        trace.policies[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("router-down")
    );
    gateway.stop().await;
}

fn intent_policy(threshold: f64) -> Value {
    json!([{ "type": "semantic-intent", "config": {
        "embeddingModelId": "embed",
        "absoluteThreshold": threshold,
        "intents": {
            "code": { "examples": ["write rust code", "fix my python code"], "models": ["coder"] },
            "travel": { "examples": ["book a flight to paris", "find a hotel in paris"], "models": ["planner"] },
        }
    } }])
}

#[tokio::test]
async fn semantic_intent_picks_the_intent_with_mock_embeddings() {
    let provider = mock(MockKind::OpenAi).await;
    let mut embed = openai_model("embed", &provider);
    embed.upstream_model = "text-embedding-3-small".to_owned();
    let gateway = Gateway::start_with(
        vec![
            openai_model("planner", &provider),
            openai_model("coder", &provider),
            embed,
        ],
        |draft| {
            draft.projects.projects[0]
                .models
                .retain(|model| model.model_id != "embed");
            set_policies(draft, intent_policy(0.4), 0);
        },
    )
    .await;
    for (text, expected) in [
        ("please write rust code", "coder"),
        ("book a hotel in paris", "planner"),
    ] {
        let (status, served, trace_id, body) = send(&gateway, "auto", text).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(served.as_deref(), Some(expected), "{text}");
        let trace = gateway
            .app
            .routing
            .traces
            .get(&trace_id)
            .await
            .expect("kept");
        assert_eq!(
            trace.ranking.len(),
            1,
            "only the intent's model is kept: {trace:#?}"
        );
    }
    // Centroids are embedded once: 1 call for the examples, then 1 per message.
    let embeddings = provider
        .requests()
        .iter()
        .filter(|request| request.path == "/v1/embeddings")
        .count();
    assert_eq!(embeddings, 3);
    gateway.stop().await;
}

#[tokio::test]
async fn no_disk_on_the_request_path_with_every_policy_enabled() {
    let provider = mock(MockKind::OpenAi).await;
    let mut embed = openai_model("embed", &provider);
    embed.upstream_model = "text-embedding-3-small".to_owned();
    let models = vec![
        openai_model("planner", &provider),
        openai_model("coder", &provider),
        openai_model("router", &provider),
        embed,
    ];
    let gateway = Gateway::start_with(models, |draft| {
        draft.projects.projects[0]
            .models
            .retain(|model| model.model_id == "planner" || model.model_id == "coder");
        let mut policies = json!([
            { "type": "health" }, { "type": "performance" }, { "type": "cheapest" },
            { "type": "capability" }, { "type": "context" },
            { "type": "rate-limit", "config": { "maxCallsPerWindow": 1000 } },
            { "type": "fairness" }, { "type": "budget-remaining" },
            { "type": "llm", "config": { "routingModelId": "router" } },
        ]);
        policies
            .as_array_mut()
            .expect("a list")
            .push(intent_policy(0.0)[0].clone());
        set_policies(draft, policies, 1);
    })
    .await;
    let (status, _, _, body) = send(&gateway, "auto", "warm up").await;
    assert_eq!(status, 200, "{body}");
    let config = gateway.home().join("config");
    let hidden = gateway.home().join("config.hidden");
    std::fs::rename(&config, &hidden).expect("hide the config directory");
    std::fs::write(&config, b"not a directory").expect("put a file in its place");
    for text in ["write rust code", "book a flight to paris", "hello"] {
        let (status, _, trace_id, body) = send(&gateway, "auto", text).await;
        assert_eq!(status, 200, "{text}: {body}");
        let trace = gateway
            .app
            .routing
            .traces
            .get(&trace_id)
            .await
            .expect("kept");
        assert_eq!(trace.policies.len(), 10);
        assert!(
            trace
                .policies
                .iter()
                .all(|policy| policy.status != "failed"),
            "{trace:#?}"
        );
    }
    std::fs::remove_file(&config).expect("remove the stand-in");
    std::fs::rename(&hidden, &config).expect("restore the config directory");
    gateway.stop().await;
}

#[tokio::test]
async fn routing_configuration_is_validated_through_the_api() {
    let provider = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![openai_model("a", &provider)]).await;
    let token = admin_token(&gateway).await;
    let put = |body: Value| {
        gateway
            .client
            .put(format!(
                "{}/api/projects/{PROJECT_ID}/policies",
                gateway.base_url
            ))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    for (body, expected) in [
        (
            json!({ "policies": [{ "type": "cheapst" }] }),
            "unknown policy type `cheapst`",
        ),
        (
            json!({ "policies": [{ "type": "health", "config": { "halfLife": 3 } }] }),
            "unknown field `halfLife`",
        ),
        (
            json!({ "policies": [{ "type": "llm", "config": { "routingModelId": "nope" } }] }),
            "model `nope`",
        ),
    ] {
        let response = put(body.clone()).await.expect("answers");
        assert_eq!(response.status(), 400, "{body}");
        let text = response.text().await.expect("a body");
        assert!(text.contains(expected), "{body}: {text}");
    }
    let response = put(json!({ "policies": [{ "type": "cheapest" }], "retries": 2 }))
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let shown: Value = response.json().await.expect("JSON");
    assert_eq!(shown["retries"], 2);
    assert_eq!(
        shown["policies"][0],
        json!({ "type": "cheapest", "enabled": true, "config": {} })
    );
    gateway.stop().await;
}
