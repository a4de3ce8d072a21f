//! The statistics-reading routing policies through the running service: `performance`,
//! `rate-limit`, `fairness` and `budget-remaining`, each fed by real calls to mock
//! providers (their usage records update the statistics and budget counters), checked by
//! the model that serves `auto` and by the policy's scores in the trace from
//! `/api/traces/{id}`.
//!
//! Every test steers its traffic by naming a model (the named model is tried first) and
//! then asks for `auto`, so the counts the policies read are known exactly; the only
//! latency test uses margins of hundreds of milliseconds.

use crate::common;

use common::*;
use routerly_core::config::ModelConfig;
use routerly_core::limits::{Limit, Metric, Mode, Scope, Window};
use routerly_core::usage::{Outcome, UsageRecord};
use routerly_mock::MockKind;
use serde_json::{Value, json};

/// A `calls` limit over a rolling window of six hours: long enough that nothing leaves it
/// during a test, and not a rate limit (those are answered 429 before routing).
fn calls_limit(id: &str, scope: &str, value: f64) -> Limit {
    Limit {
        id: id.to_owned(),
        scope: Scope::parse(scope).expect("test scope"),
        metric: Metric::Calls,
        window: Window::parse("6h").expect("test window"),
        value,
        mode: Mode::Extend,
        time_zone: None,
    }
}

/// A gateway whose project routes `models` by `policies` (no retries), and an admin token
/// to read its traces.
async fn routed_gateway(models: Vec<ModelConfig>, policies: Value) -> (Gateway, String) {
    let gateway = Gateway::start_with(models, |draft| set_policies(draft, policies, 0)).await;
    let token = admin_token(&gateway).await;
    (gateway, token)
}

/// Sends an OpenAI request with [`TOKEN`]; returns status, served model, trace id and body.
async fn send(gateway: &Gateway, model: &str, text: &str) -> (u16, Option<String>, String, Value) {
    routed(gateway.openai(&openai_body(model, text)).await).await
}

/// Status, served model, trace id and body of a routed answer.
async fn routed(response: reqwest::Response) -> (u16, Option<String>, String, Value) {
    let trace_id = response
        .headers()
        .get("x-routerly-trace-id")
        .and_then(|value| value.to_str().ok())
        .expect("every routed answer names its trace")
        .to_owned();
    let (status, served, body) = answer(response).await;
    (status, served, trace_id, body)
}

/// Sends a request naming `model` and asserts that model served it.
async fn send_to(gateway: &Gateway, model: &str, text: &str) -> String {
    let (status, served, trace_id, body) = send(gateway, model, text).await;
    assert_eq!(status, 200, "a call to `{model}`: {body}");
    assert_eq!(served.as_deref(), Some(model), "the named model serves");
    trace_id
}

/// The only policy's trace entry, checked to be of `kind`.
fn only_policy<'t>(trace: &'t Value, kind: &str) -> &'t Value {
    let policies = trace["policies"].as_array().expect("policies");
    assert_eq!(policies.len(), 1, "one policy is enabled: {trace:#}");
    assert_eq!(policies[0]["type"], kind, "{trace:#}");
    &policies[0]
}

/// The score the policy gave `model`.
fn score_of(policy: &Value, model: &str) -> f64 {
    model_entry(policy, model)["score"]
        .as_f64()
        .expect("a numeric score")
}

/// Why the policy excluded `model`, if it did.
fn exclusion_of(policy: &Value, model: &str) -> Option<String> {
    model_entry(policy, model)["excluded"]
        .as_str()
        .map(str::to_owned)
}

fn model_entry<'p>(policy: &'p Value, model: &str) -> &'p Value {
    policy["scores"]
        .as_array()
        .expect("scores")
        .iter()
        .find(|entry| entry["model"] == model)
        .unwrap_or_else(|| panic!("no score for `{model}` in {policy:#}"))
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: expected {expected}, got {actual}"
    );
}

fn record_of<'r>(records: &'r [UsageRecord], trace_id: &str) -> &'r UsageRecord {
    records
        .iter()
        .find(|record| record.trace_id == trace_id)
        .unwrap_or_else(|| panic!("no usage record for trace {trace_id}: {records:#?}"))
}

// ---- performance ---------------------------------------------------------------------------

#[tokio::test]
async fn performance_ranks_the_faster_model_first_once_two_models_have_latencies() {
    let provider = mock(MockKind::OpenAi).await;
    // `slow` is listed first, so only the policy can put `fast` ahead of it.
    let (gateway, token) = routed_gateway(
        vec![
            openai_model("slow", &provider),
            openai_model("fast", &provider),
        ],
        json!([{ "type": "performance" }]),
    )
    .await;

    let slow_call = send_to(&gateway, "slow", "take your time [mock:delay_ms=300]").await;
    // Only `slow` has a latency yet: everyone scores 1 and the policy is left out.
    let fast_call = send_to(&gateway, "fast", "quick").await;
    let trace = trace_via_api(&gateway, &token, &fast_call).await;
    let policy = only_policy(&trace, "performance");
    assert_eq!(
        policy["status"], "uniform",
        "one model with data is not enough: {trace:#}"
    );
    assert_eq!(score_of(policy, "slow"), 1.0);

    let (status, served, trace_id, body) = send(&gateway, "auto", "which one?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("fast"), "the faster model serves");
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["fast", "slow"]);
    assert_eq!(trace["shuffled"], false);
    let policy = only_policy(&trace, "performance");
    assert_eq!(policy["status"], "weighted", "{trace:#}");
    assert_eq!(policy["weight"], 1);

    // One sample each: score = fastest latency / this latency, from the usage records.
    let records = gateway.wait_for_records(3).await;
    let slow_latency = record_of(&records, &slow_call).latency_ms;
    let fast_latency = record_of(&records, &fast_call).latency_ms;
    assert!(
        slow_latency >= 300.0,
        "the mock's delay counts: {slow_latency}"
    );
    assert_eq!(score_of(policy, "fast"), 1.0);
    let slow_score = score_of(policy, "slow");
    assert!(
        (slow_score - fast_latency / slow_latency).abs() < 1e-6,
        "slow scores {slow_score}, expected {fast_latency} / {slow_latency}"
    );
    assert!(slow_score < 0.5, "a 300 ms delay halves the score at least");
    gateway.stop().await;
}

#[tokio::test]
async fn performance_judges_a_stream_by_its_first_token_not_its_whole_length() {
    let provider = mock(MockKind::OpenAi).await;
    let (gateway, token) = routed_gateway(
        vec![
            openai_model("steady", &provider),
            openai_model("streamy", &provider),
        ],
        json!([{ "type": "performance" }]),
    )
    .await;

    // `streamy` starts at once but takes 50 ms per event (about a dozen events) to finish;
    // `steady` answers in one piece after 200 ms.
    let response = gateway
        .openai(&json!({
            "model": "streamy",
            "stream": true,
            "messages": [{"role": "user", "content": "trickle it [mock:chunk_delay_ms=50]"}],
        }))
        .await;
    let stream_trace = response
        .headers()
        .get("x-routerly-trace-id")
        .and_then(|value| value.to_str().ok())
        .expect("a trace id")
        .to_owned();
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("the stream ends");
    assert!(text.contains("[DONE]"), "{text}");
    // A stream's record is written when it ends, after its last bytes: wait for it.
    gateway.wait_for_records(1).await;
    let steady_call = send_to(&gateway, "steady", "in one go [mock:delay_ms=200]").await;

    let records = gateway.wait_for_records(2).await;
    let streamed = record_of(&records, &stream_trace);
    let steady = record_of(&records, &steady_call);
    let ttft = streamed
        .ttft_ms
        .expect("a stream has a time to first token");
    assert!(streamed.stream);
    assert!(
        streamed.latency_ms > steady.latency_ms && ttft < steady.latency_ms / 2.0,
        "the stream must be slower in total but quicker to start: ttft {ttft}, total {}, steady {}",
        streamed.latency_ms,
        steady.latency_ms
    );

    let (status, served, trace_id, body) = send(&gateway, "auto", "which one?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        served.as_deref(),
        Some("streamy"),
        "time to first token decides for streams"
    );
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["streamy", "steady"]);
    let policy = only_policy(&trace, "performance");
    assert_eq!(policy["status"], "weighted", "{trace:#}");
    assert_eq!(score_of(policy, "streamy"), 1.0);
    let steady_score = score_of(policy, "steady");
    assert!(
        (steady_score - ttft / steady.latency_ms).abs() < 1e-6,
        "steady scores {steady_score}, expected {ttft} / {}",
        steady.latency_ms
    );
    gateway.stop().await;
}

// ---- rate-limit ----------------------------------------------------------------------------

#[tokio::test]
async fn rate_limit_ranks_the_busier_model_last_then_excludes_it_at_its_limit() {
    let busy_mock = mock(MockKind::OpenAi).await;
    let spare_mock = mock(MockKind::OpenAi).await;
    let (gateway, token) = routed_gateway(
        vec![
            openai_model("busy", &busy_mock),
            openai_model("spare", &spare_mock),
        ],
        json!([{ "type": "rate-limit", "config": { "maxCallsPerWindow": 3 } }]),
    )
    .await;

    send_to(&gateway, "busy", "one").await;
    send_to(&gateway, "busy", "two").await;
    // 2 calls against 0: busy scores 0 / 2 = 0, spare (no calls) 1; both stay in.
    let (status, served, trace_id, body) = send(&gateway, "auto", "three").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        served.as_deref(),
        Some("spare"),
        "the less-called model serves"
    );
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["spare", "busy"]);
    let policy = only_policy(&trace, "rate-limit");
    assert_eq!(policy["status"], "weighted", "{trace:#}");
    assert_eq!(
        (score_of(policy, "busy"), score_of(policy, "spare")),
        (0.0, 1.0)
    );
    assert_eq!(
        exclusion_of(policy, "busy"),
        None,
        "under its limit it is only ranked lower"
    );

    // The third call reaches the limit; after it busy is excluded even when named.
    send_to(&gateway, "busy", "four").await;
    let (status, served, trace_id, body) = send(&gateway, "busy", "five").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("spare"), "the other model serves");
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["spare"]);
    let policy = only_policy(&trace, "rate-limit");
    assert_eq!(
        exclusion_of(policy, "busy").as_deref(),
        Some("3 calls in the window, the limit is 3"),
        "{trace:#}"
    );
    assert_eq!(exclusion_of(policy, "spare"), None);
    assert_eq!(
        trace["attempts"].as_array().expect("attempts").len(),
        1,
        "only spare was tried: {trace:#}"
    );
    assert_eq!(
        busy_mock.requests().len(),
        3,
        "busy was called 3 times only"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn rate_limit_counts_failed_attempts_and_refuses_when_every_model_is_at_its_limit() {
    let flaky_mock = mock(MockKind::OpenAi).await;
    let spare_mock = mock(MockKind::OpenAi).await;
    let (gateway, token) = routed_gateway(
        vec![
            openai_model("flaky", &flaky_mock),
            openai_model("spare", &spare_mock),
        ],
        json!([{ "type": "rate-limit", "config": { "maxCallsPerWindow": 1, "windowMinutes": 5 } }]),
    )
    .await;

    // flaky fails and spare takes over: one call each, the failed attempt included.
    flaky_mock.fail_next(1, 500);
    let (status, served, _, body) = send(&gateway, "flaky", "one").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("spare"), "fell back");

    let (status, served, trace_id, body) = send(&gateway, "auto", "two").await;
    assert_eq!(status, 503, "nothing is left to serve: {body}");
    assert_eq!(served, None);
    assert_eq!(body["error"]["code"], "no_candidate", "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    for model in ["flaky", "spare"] {
        assert!(
            message.contains(&format!(
                "`{model}` excluded by `rate-limit` (1 calls in the window, the limit is 1)"
            )),
            "the refusal names why {model} was left out: {message}"
        );
    }
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert!(ranking(&trace).is_empty(), "{trace:#}");
    assert!(
        trace["attempts"].as_array().expect("attempts").is_empty(),
        "no provider was called: {trace:#}"
    );
    let policy = only_policy(&trace, "rate-limit");
    assert!(exclusion_of(policy, "flaky").is_some() && exclusion_of(policy, "spare").is_some());
    assert_eq!(
        (flaky_mock.requests().len(), spare_mock.requests().len()),
        (1, 1)
    );
    let records = gateway.stop().await;
    let refused = records
        .iter()
        .find(|record| record.trace_id == trace_id)
        .expect("the refusal is recorded");
    assert_eq!(
        (refused.outcome, refused.model_id.as_deref()),
        (Outcome::Error, None)
    );
}

// ---- fairness ------------------------------------------------------------------------------

#[tokio::test]
async fn fairness_sends_auto_to_the_model_with_the_smallest_share_of_recent_successes() {
    let provider = mock(MockKind::OpenAi).await;
    let (gateway, token) = routed_gateway(
        vec![
            openai_model("a", &provider),
            openai_model("b", &provider),
            openai_model("c", &provider),
        ],
        json!([{ "type": "fairness" }]),
    )
    .await;

    send_to(&gateway, "a", "one").await;
    send_to(&gateway, "a", "two").await;
    send_to(&gateway, "b", "three").await;

    // Shares 2/3, 1/3, 0: scores 1/3, 2/3, 1.
    let (status, served, trace_id, body) = send(&gateway, "auto", "four").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("c"), "the unused model serves");
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["c", "b", "a"]);
    let policy = only_policy(&trace, "fairness");
    assert_eq!(policy["status"], "weighted", "{trace:#}");
    assert_close(score_of(policy, "a"), 1.0 / 3.0, "a's score");
    assert_close(score_of(policy, "b"), 2.0 / 3.0, "b's score");
    assert_close(score_of(policy, "c"), 1.0, "c's score");

    // Counts 2, 1, 1: b and c tie at 0.75 (the configured order breaks the tie), a last.
    let (_, served, trace_id, _) = send(&gateway, "auto", "five").await;
    assert_eq!(served.as_deref(), Some("b"));
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["b", "c", "a"]);
    // Counts 2, 2, 1: c again.
    let (_, served, _, _) = send(&gateway, "auto", "six").await;
    assert_eq!(served.as_deref(), Some("c"));

    // Counts 2, 2, 2: the spread is even, the policy has no preference left.
    let (status, _, trace_id, _) = send(&gateway, "auto", "seven").await;
    assert_eq!(status, 200);
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    let policy = only_policy(&trace, "fairness");
    assert_eq!(policy["status"], "uniform", "{trace:#}");
    for model in ["a", "b", "c"] {
        assert_close(score_of(policy, model), 2.0 / 3.0, model);
    }
    assert_eq!(trace["shuffled"], true, "every policy left out: a shuffle");
    gateway.stop().await;
}

const OTHER_TOKEN: &str = "sk-lr-other-0123456789abcdef0123456789abcd";

#[tokio::test]
async fn fairness_counts_only_this_projects_successful_calls() {
    let first_mock = mock(MockKind::OpenAi).await;
    let second_mock = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(
        vec![
            openai_model("first", &first_mock),
            openai_model("second", &second_mock),
        ],
        |draft| {
            set_policies(draft, json!([{ "type": "fairness" }]), 0);
            // Another project on the same models, with its own token.
            let mut other = draft.projects.projects[0].clone();
            other.id = "proj-other".to_owned();
            other.name = "Other".to_owned();
            other.slug = "other".to_owned();
            other.tokens = vec![project_token("tok-other", OTHER_TOKEN)];
            draft.projects.projects.push(other);
        },
    )
    .await;
    let token = admin_token(&gateway).await;

    // The other project's calls to `first` are not this project's.
    for call in 0..3 {
        let response = gateway
            .post("/v1/chat/completions")
            .bearer_auth(OTHER_TOKEN)
            .json(&openai_body("first", &format!("other {call}")))
            .send()
            .await
            .expect("the service answers");
        let (status, served, body) = answer(response).await;
        assert_eq!((status, served.as_deref()), (200, Some("first")), "{body}");
    }
    // Here `first` fails and `second` serves: only the success counts.
    first_mock.fail_next(1, 500);
    let (status, served, _, body) = send(&gateway, "first", "mine").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("second"), "fell back");

    // This project: first 0 of 1 success, second 1 of 1.
    let (status, served, trace_id, body) = send(&gateway, "auto", "again").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("first"));
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["first", "second"]);
    let policy = only_policy(&trace, "fairness");
    assert_eq!(policy["status"], "weighted", "{trace:#}");
    assert_eq!(
        (score_of(policy, "first"), score_of(policy, "second")),
        (1.0, 0.0)
    );
    gateway.stop().await;
}

// ---- budget-remaining ----------------------------------------------------------------------

#[tokio::test]
async fn budget_remaining_prefers_the_model_with_more_of_its_budget_left() {
    let provider = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(
        vec![openai_model("a", &provider), openai_model("b", &provider)],
        |draft| {
            set_policies(draft, json!([{ "type": "budget-remaining" }]), 0);
            draft
                .limits
                .limits
                .push(calls_limit("a-calls", "model:a", 10.0));
            draft
                .limits
                .limits
                .push(calls_limit("b-calls", "model:b", 10.0));
        },
    )
    .await;
    let token = admin_token(&gateway).await;

    for call in 0..4 {
        send_to(&gateway, "a", &format!("spend {call}")).await;
    }
    // a has 6 of 10 calls left, b all 10.
    let (status, served, trace_id, body) = send(&gateway, "auto", "which one?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("b"));
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["b", "a"]);
    let policy = only_policy(&trace, "budget-remaining");
    assert_eq!(policy["status"], "weighted", "{trace:#}");
    assert_close(score_of(policy, "a"), 0.6, "a's remaining fraction");
    assert_close(score_of(policy, "b"), 1.0, "b's remaining fraction");

    // b has now served 1 call; 5 more leave it 4 of 10, less than a's 6.
    for call in 0..5 {
        send_to(&gateway, "b", &format!("spend {call}")).await;
    }
    let (status, served, trace_id, body) = send(&gateway, "auto", "and now?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        served.as_deref(),
        Some("a"),
        "the preference follows the spend"
    );
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["a", "b"]);
    let policy = only_policy(&trace, "budget-remaining");
    assert_close(score_of(policy, "a"), 0.6, "a's remaining fraction");
    assert_close(score_of(policy, "b"), 0.4, "b's remaining fraction");
    gateway.stop().await;
}

#[tokio::test]
async fn budget_remaining_scores_a_models_tightest_limit_and_one_without_limits_scores_one() {
    let provider = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(
        vec![
            openai_model("a", &provider),
            openai_model("b", &provider),
            openai_model("c", &provider),
        ],
        |draft| {
            set_policies(draft, json!([{ "type": "budget-remaining" }]), 0);
            let limits = &mut draft.limits.limits;
            // a: a loose model limit and a tight project-model one.
            limits.push(calls_limit("a-model", "model:a", 10.0));
            limits.push(calls_limit(
                "a-project-model",
                &format!("project:{PROJECT_ID}/model:a"),
                4.0,
            ));
            // b: a token-model limit.
            limits.push(calls_limit(
                "b-token-model",
                &format!("token:{TOKEN_ID}/model:b"),
                5.0,
            ));
            // The project's own limit covers every candidate alike; it is no model's.
            limits.push(calls_limit(
                "project",
                &format!("project:{PROJECT_ID}"),
                100.0,
            ));
        },
    )
    .await;
    let token = admin_token(&gateway).await;

    send_to(&gateway, "a", "one").await;
    send_to(&gateway, "a", "two").await;
    send_to(&gateway, "b", "three").await;

    // a: min(8/10, 2/4) = 0.5; b: 4/5 = 0.8; c: no limits, 1.
    let (status, served, trace_id, body) = send(&gateway, "auto", "which one?").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.as_deref(), Some("c"));
    let trace = trace_via_api(&gateway, &token, &trace_id).await;
    assert_eq!(ranking(&trace), vec!["c", "b", "a"]);
    let policy = only_policy(&trace, "budget-remaining");
    assert_close(score_of(policy, "a"), 0.5, "a's tightest limit");
    assert_close(score_of(policy, "b"), 0.8, "b's token-model limit");
    assert_close(score_of(policy, "c"), 1.0, "c has no limits");
    gateway.stop().await;
}
