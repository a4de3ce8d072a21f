//! Budgets against a real service on loopback with mock providers: refusals before any
//! provider is called, in each client's error format; candidates dropped by their own
//! limits; rate limits; reservations that hold under concurrency and come back after
//! failures; counters and alerts that survive a restart.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Gateway, PROJECT_ID, TOKEN_ID, mock, openai_model, status_header_json};
use routerly_core::limits::{Limit, Metric, Mode, Scope, Window};
use routerly_core::usage::Outcome;
use routerly_mock::MockKind;
use routerly_server::Service;
use routerly_server::store::{Draft, Home};
use serde_json::{Value, json};

fn limit(id: &str, scope: &str, metric: Metric, window: &str, value: f64) -> Limit {
    Limit {
        id: id.to_owned(),
        scope: Scope::parse(scope).expect("test scope"),
        metric,
        window: Window::parse(window).expect("test window"),
        value,
        mode: Mode::Extend,
        time_zone: None,
    }
}

/// An OpenAI body whose answer is exactly `max_tokens` words (the mock's answer is longer
/// and `max_tokens` cuts it), so the output estimate is exact.
fn exact_body(extra: &str, max_tokens: u64) -> Value {
    json!({
        "model": "auto",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": format!("please answer at length {extra}")}],
    })
}

/// Output tokens of each call in the concurrency test, and their price (input is free, so
/// the estimate is exactly the true cost).
const OUTPUT_TOKENS: u64 = 5;
const OUTPUT_PRICE: f64 = 2.0;
const CALL_COST: f64 = OUTPUT_TOKENS as f64 * OUTPUT_PRICE / 1_000_000.0;

/// 200 concurrent requests against a cost limit that fits exactly 50.
///
/// k = 0: every reservation is taken under one lock, in some total order; the estimate
/// equals the true cost (free input, `max_tokens` equal to the answer's length), so the
/// first 50 in that order fit, every later one sees the limit full, and settling changes
/// nothing. A wave of upstream 500s first proves that failed calls give their
/// reservations back: the second wave still finds room for exactly 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_calls_never_overspend_a_limit_that_fits_fifty() {
    let upstream = mock(MockKind::OpenAi).await;
    let mut model = openai_model("gpt", &upstream);
    model.pricing.input = 0.0;
    model.pricing.output = OUTPUT_PRICE;
    let limit_value = 50.0 * CALL_COST;
    let gateway = Arc::new(
        Gateway::start_with(vec![model], |draft| {
            draft.limits.limits.push(limit(
                "fifty",
                &format!("project:{PROJECT_ID}"),
                Metric::Cost,
                "daily",
                limit_value,
            ));
        })
        .await,
    );

    let wave = |text: &'static str| {
        let gateway = Arc::clone(&gateway);
        async move {
            let calls = (0..200).map(|i| {
                let gateway = Arc::clone(&gateway);
                tokio::spawn(async move {
                    let response = gateway
                        .openai(&exact_body(&format!("{text} #{i}"), OUTPUT_TOKENS))
                        .await;
                    response.status().as_u16()
                })
            });
            let mut statuses = Vec::new();
            for call in calls {
                statuses.push(call.await.expect("the call task does not panic"));
            }
            statuses
        }
    };

    // Wave 1: every dispatched call fails upstream with a 500.
    let statuses = wave("[mock:status=500] [mock:delay_ms=100]").await;
    let failed = statuses.iter().filter(|s| **s == 502).count();
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(failed + refused, 200, "only 502s and 503s: {statuses:?}");
    assert!(failed >= 1, "some calls reached the provider: {statuses:?}");
    let usage = limit_use(&gateway, "fifty");
    assert_eq!(
        usage["reserved"], 0.0,
        "failed calls give their reservations back"
    );
    assert_eq!(usage["used"], 0.0, "failed calls cost nothing");

    // Wave 2: the same 200 calls succeed upstream; exactly 50 fit.
    let upstream_before = upstream.requests().len();
    let statuses = wave("[mock:delay_ms=200]").await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(
        served, 50,
        "k = 0: exactly 50 of 200 are dispatched ({statuses:?})"
    );
    assert_eq!(refused, 150, "the rest are refused with 503");
    assert_eq!(
        upstream.requests().len() - upstream_before,
        50,
        "refused calls never reach the provider"
    );

    let records = gateway.wait_for_records(200 + 200).await;
    let spent: f64 = records.iter().map(|record| record.cost_usd).sum();
    assert!(
        spent <= limit_value * (1.0 + 1e-9),
        "recorded spend {spent} exceeds the limit {limit_value}"
    );
    assert!(
        (spent - limit_value).abs() < 1e-12,
        "50 calls spend the whole limit: {spent}"
    );
    let refused_records = records
        .iter()
        .filter(|record| record.outcome == Outcome::BudgetExceeded)
        .count();
    assert_eq!(
        refused_records,
        refused + (200 - failed),
        "every refusal is recorded as budget_exceeded"
    );
    let usage = limit_use(&gateway, "fifty");
    assert_eq!(usage["reserved"], 0.0);
    assert!((usage["used"].as_f64().expect("used") - limit_value).abs() < 1e-12);
}

/// The use of limit `id` as `GET /api/limits` shows it (read from the service directly).
fn limit_use(gateway: &Gateway, id: &str) -> Value {
    let snapshot = gateway.app.store.snapshot();
    let limits = gateway.app.budgets.usage(&snapshot);
    let found = limits
        .into_iter()
        .find(|limit_use| limit_use.limit.id == id)
        .expect("the limit exists");
    serde_json::to_value(found).expect("a limit's use serializes")
}

#[tokio::test]
async fn an_exhausted_budget_answers_503_in_each_clients_format_before_any_provider_is_called() {
    let upstream = mock(MockKind::OpenAi).await;
    let model = openai_model("gpt", &upstream);
    let gateway = Gateway::start_with(vec![model], |draft| {
        draft.limits.limits.push(limit(
            "proj-daily",
            &format!("project:{PROJECT_ID}"),
            Metric::Cost,
            "daily",
            0.0,
        ));
    })
    .await;

    let (status, retry_after, body) =
        status_header_json(gateway.openai(&exact_body("hello", 5)).await, "retry-after").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains("project limit `proj-daily`"), "{message}");
    assert!(message.contains("resets at"), "{message}");
    let retry_after: u64 = retry_after
        .expect("a retry-after header")
        .parse()
        .expect("retry-after in seconds");
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");

    let (status, _, body) = status_header_json(
        gateway
            .anthropic(&json!({"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
            .await,
        "retry-after",
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "error", "Anthropic's error shape: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("proj-daily")),
        "{body}"
    );
    assert!(upstream.requests().is_empty(), "no provider was called");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 2);
    for record in records {
        assert_eq!(record.outcome, Outcome::BudgetExceeded);
        assert_eq!(record.model_id, None);
        assert_eq!(record.cost_usd, 0.0);
    }
}

#[tokio::test]
async fn a_model_whose_own_limit_is_exhausted_leaves_the_candidates() {
    let upstream = mock(MockKind::OpenAi).await;
    let first = openai_model("first", &upstream);
    let second = openai_model("second", &upstream);
    let gateway = Gateway::start_with(vec![first, second], |draft| {
        draft.limits.limits.push(limit(
            "first-off",
            "model:first",
            Metric::Calls,
            "daily",
            0.0,
        ));
        draft.limits.limits.push(limit(
            "second-per-token",
            &format!("token:{TOKEN_ID}/model:second"),
            Metric::Calls,
            "daily",
            1.0,
        ));
    })
    .await;
    let (status, model, body) = common::answer(gateway.openai(&exact_body("one", 5)).await).await;
    assert_eq!((status, model.as_deref()), (200, Some("second")), "{body}");
    // The second model's token-model limit is now used up too: nothing is left.
    let (status, _, body) = common::answer(gateway.openai(&exact_body("two", 5)).await).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("model limit `first-off`")),
        "the refusal names the best candidate's limit: {body}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_short_call_limit_is_a_rate_limit_answered_429() {
    let upstream = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(vec![openai_model("gpt", &upstream)], |draft| {
        draft.limits.limits.push(limit(
            "per-minute",
            &format!("token:{TOKEN_ID}"),
            Metric::Calls,
            "1m",
            2.0,
        ));
    })
    .await;
    for call in 0..2 {
        let (status, _, body) = common::answer(gateway.openai(&exact_body("hi", 5)).await).await;
        assert_eq!(status, 200, "call {call}: {body}");
    }
    let (status, retry_after, body) =
        status_header_json(gateway.openai(&exact_body("hi", 5)).await, "retry-after").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let retry_after: u64 = retry_after.expect("retry-after").parse().expect("seconds");
    assert!((1..=61).contains(&retry_after), "{retry_after}");
    let metrics = gateway
        .get("/metrics")
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains(&format!(
            "routerly_budget_used{{limit=\"per-minute\",level=\"token\",scope=\"token:{TOKEN_ID}\",metric=\"calls\",window=\"rolling:1m\"}} 2"
        )),
        "{metrics}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_token_limit_that_replaces_the_projects_lets_usage_roll_up() {
    let upstream = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(vec![openai_model("gpt", &upstream)], |draft| {
        draft.limits.limits.push(limit(
            "project-calls",
            &format!("project:{PROJECT_ID}"),
            Metric::Calls,
            "daily",
            1.0,
        ));
        let mut token_limit = limit(
            "token-calls",
            &format!("token:{TOKEN_ID}"),
            Metric::Calls,
            "daily",
            3.0,
        );
        token_limit.mode = Mode::Replace;
        draft.limits.limits.push(token_limit);
    })
    .await;
    for call in 0..3 {
        let (status, _, body) = common::answer(gateway.openai(&exact_body("hi", 5)).await).await;
        assert_eq!(
            status, 200,
            "call {call}: the token's limit replaces the project's: {body}"
        );
    }
    let (status, _, body) = common::answer(gateway.openai(&exact_body("hi", 5)).await).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("token-calls"))
    );
    assert_eq!(
        limit_use(&gateway, "project-calls")["used"],
        3.0,
        "usage rolls up"
    );
    gateway.stop().await;
}

/// A service on a home that outlives it, to restart on the same files.
struct Restartable {
    app: routerly_server::state::App,
    base_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_on(home: &std::path::Path, edit: impl FnOnce(&mut Draft)) -> Restartable {
    let service = Service::open(Home::new(home))
        .await
        .expect("the service opens");
    let app = service.app();
    app.store
        .update(|draft| {
            edit(draft);
            Ok::<(), std::convert::Infallible>(())
        })
        .await
        .expect("a valid configuration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(service.serve(listener, async move {
        let _ = stopped.await;
    }));
    Restartable {
        app,
        base_url,
        stop,
        served,
    }
}

impl Restartable {
    async fn call(&self, body: &Value) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.base_url))
            .bearer_auth(common::TOKEN)
            .json(body)
            .send()
            .await
            .expect("the service answers")
            .status()
            .as_u16()
    }

    async fn stop(self) {
        drop(self.app);
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.served)
            .await
            .expect("stops within 10 s")
            .expect("no panic")
            .expect("clean shutdown");
    }
}

#[tokio::test]
async fn counters_and_sent_alerts_survive_a_restart_in_the_middle_of_a_window() {
    let upstream = mock(MockKind::OpenAi).await;
    let home = tempfile::tempdir().expect("temporary home");
    let model = openai_model("gpt", &upstream);
    let configure = move |draft: &mut Draft| {
        let mut project: routerly_core::config::Project =
            serde_json::from_value(json!({"id": PROJECT_ID, "name": "Test", "slug": "test"}))
                .expect("project");
        project.models = vec![common::project_model("gpt")];
        project.tokens = vec![common::project_token(TOKEN_ID, common::TOKEN)];
        draft.projects.projects = vec![project];
        draft.models.models = vec![model];
        draft.limits.limits = vec![limit(
            "calls",
            &format!("project:{PROJECT_ID}"),
            Metric::Calls,
            "daily",
            4.0,
        )];
    };

    let first = start_on(home.path(), configure.clone()).await;
    for _ in 0..3 {
        assert_eq!(first.call(&exact_body("hi", 5)).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.stop().await;
    let alerts =
        std::fs::read_to_string(home.path().join("data/alerts.json")).expect("alerts saved");
    assert!(alerts.contains("\"threshold\": 50"), "{alerts}");
    assert!(!alerts.contains("\"threshold\": 100"), "{alerts}");

    // After a clean stop the checkpoint holds the counters; one more call fits, then none.
    let second = start_on(home.path(), |_| {}).await;
    assert_eq!(second.call(&exact_body("hi", 5)).await, 200);
    assert_eq!(
        second.call(&exact_body("hi", 5)).await,
        503,
        "4 calls used before and after the restart"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.stop().await;
    let alerts =
        std::fs::read_to_string(home.path().join("data/alerts.json")).expect("alerts saved");
    assert_eq!(
        alerts.matches("\"threshold\": 50").count(),
        1,
        "the 50 % alert is not repeated: {alerts}"
    );
    assert_eq!(alerts.matches("\"threshold\": 100").count(), 1, "{alerts}");

    // Without the checkpoint the log alone gives the same count.
    std::fs::remove_file(home.path().join("data/checkpoints/counters.json"))
        .expect("remove the checkpoint");
    let third = start_on(home.path(), |_| {}).await;
    assert_eq!(
        third.call(&exact_body("hi", 5)).await,
        503,
        "rebuilt from the usage log"
    );
    third.stop().await;
}
