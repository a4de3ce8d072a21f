//! Behaviour of `/api/limits`, `/api/usage/limits` and `/api/alerts`, read through the
//! typed contract of `routerly-api`: success, validation, not-found and duplicate paths, what
//! each caller sees, and the alert history with each delivery's outcome.

use crate::management;

use std::time::Duration;

use http::{Method, StatusCode};
use management::{Harness, error};
use routerly_api::ErrorCode;
use routerly_api::limits::{
    AlertKind, AlertList, DeliveryOutcome, LimitList, LimitMetric, LimitMode, LimitUse,
};
use serde_json::{Value, json};

async fn add(harness: &Harness, token: &str, body: Value) -> LimitUse {
    let answer = harness
        .call(Method::POST, "/api/limits", Some(token), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    serde_json::from_value(answer.body).expect("a LimitUse")
}

#[tokio::test]
async fn a_limit_is_added_shown_changed_and_removed() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let limit = add(
        &harness,
        &admin,
        json!({ "scope": "project:alpha", "metric": "cost", "period": "daily", "value": 5.0 }),
    )
    .await;
    // The project is named by slug and stored by id; the use starts at zero.
    assert_eq!(limit.scope, "project:p-alpha");
    assert_eq!(limit.level, "project");
    assert_eq!(
        (limit.metric, limit.mode, limit.window.as_str()),
        (LimitMetric::Cost, LimitMode::Extend, "daily")
    );
    assert_eq!((limit.value, limit.used, limit.percent), (5.0, 0.0, 0.0));
    assert!(limit.id.starts_with("lim-"), "{}", limit.id);
    assert!(limit.resets_at > limit.window_start);

    let path = format!("/api/limits/{}", limit.id);
    let shown = harness.call(Method::GET, &path, Some(&admin), None).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(
        serde_json::from_value::<LimitUse>(shown.body).unwrap(),
        limit
    );

    let listed = harness
        .call(
            Method::GET,
            "/api/limits?scope=project:alpha",
            Some(&admin),
            None,
        )
        .await;
    let listed: LimitList = serde_json::from_value(listed.body).unwrap();
    assert_eq!(listed.limits, std::slice::from_ref(&limit));
    let usage = harness
        .call(Method::GET, "/api/usage/limits", Some(&admin), None)
        .await;
    let usage: LimitList = serde_json::from_value(usage.body).unwrap();
    assert_eq!(usage.limits, std::slice::from_ref(&limit));

    // A change answers the limit with its use, as the listing shows it.
    let changed = harness
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({ "value": 7.5, "mode": "replace", "rolling": "1h" })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let changed: LimitUse = serde_json::from_value(changed.body).unwrap();
    assert_eq!(
        (changed.value, changed.mode, changed.window.as_str()),
        (7.5, LimitMode::Replace, "rolling:1h")
    );
    assert_eq!(harness.app.store.snapshot().limits.limits[0].value, 7.5);

    let removed = harness
        .call(Method::DELETE, &path, Some(&admin), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert!(harness.app.store.snapshot().limits.limits.is_empty());
    for method in [Method::GET, Method::DELETE] {
        let answer = harness
            .call(method.clone(), &path, Some(&admin), None)
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(error(answer.body).error.code, ErrorCode::NotFound);
    }
    let answer = harness
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({ "value": 1 })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_limits_are_refused_on_creation_and_on_change() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let body = json!({ "scope": "project:alpha", "metric": "calls", "rolling": "1m", "value": 10 });
    let first = add(&harness, &admin, body.clone()).await;

    // The same limit again, even with the project spelled by id: 409, naming the first.
    let mut same = body.clone();
    same["scope"] = json!("project:p-alpha");
    let answer = harness
        .call(Method::POST, "/api/limits", Some(&admin), Some(same))
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let refused = error(answer.body);
    assert_eq!(refused.error.code, ErrorCode::Conflict);
    assert_eq!(refused.error.field.as_deref(), Some("value"));
    assert!(
        refused.error.message.contains(&first.id),
        "{}",
        refused.error.message
    );

    // A chosen id that is taken: 409 on the id.
    let mut taken = body.clone();
    taken["id"] = json!(first.id);
    taken["value"] = json!(11);
    let answer = harness
        .call(Method::POST, "/api/limits", Some(&admin), Some(taken))
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(error(answer.body).error.field.as_deref(), Some("id"));

    // A different value is another limit; changing it into the first is refused, and
    // nothing changes.
    let mut other = body.clone();
    other["value"] = json!(20);
    let second = add(&harness, &admin, other).await;
    let answer = harness
        .call(
            Method::PATCH,
            &format!("/api/limits/{}", second.id),
            Some(&admin),
            Some(json!({ "value": 10 })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text);
    let stored = harness.app.store.snapshot();
    assert_eq!(stored.limits.limits.len(), 2);
    assert_eq!(stored.limits.limits[1].value, 20.0);
    // Changing a limit to what it already is, is no duplicate of itself.
    let answer = harness
        .call(
            Method::PATCH,
            &format!("/api/limits/{}", second.id),
            Some(&admin),
            Some(json!({ "value": 20 })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn invalid_limits_are_refused_naming_the_field() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let cases = [
        (
            json!({ "scope": "project:nope", "metric": "cost", "period": "daily", "value": 1 }),
            "scope",
        ),
        (
            json!({ "scope": "galaxy", "metric": "cost", "period": "daily", "value": 1 }),
            "scope",
        ),
        (
            json!({ "scope": "model:nope", "metric": "cost", "period": "daily", "value": 1 }),
            "scope",
        ),
        (
            json!({ "scope": "global", "metric": "cost", "value": 1 }),
            "window",
        ),
        (
            json!({ "scope": "global", "metric": "cost", "period": "15m", "value": 1 }),
            "period",
        ),
        (
            json!({ "scope": "global", "metric": "cost", "period": "daily", "rolling": "1h", "value": 1 }),
            "window",
        ),
        (
            json!({ "scope": "global", "metric": "joules", "period": "daily", "value": 1 }),
            "metric",
        ),
        (
            json!({ "scope": "global", "metric": "cost", "period": "daily", "value": -1 }),
            "value",
        ),
        (
            json!({ "scope": "global", "metric": "cost", "period": "daily", "value": 1, "time_zone": "Mars/Olympus" }),
            "time_zone",
        ),
        (
            json!({ "scope": "global", "metric": "cost", "period": "daily", "value": 1, "id": " " }),
            "id",
        ),
        (
            json!({ "scope": "global", "metric": "cost", "period": "daily", "value": 1, "colour": "red" }),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let answer = harness
            .call(
                Method::POST,
                "/api/limits",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.text
        );
        let refused = error(answer.body);
        assert_eq!(refused.error.code, ErrorCode::Invalid, "{body}");
        assert_eq!(
            refused.error.field.as_deref(),
            Some(field),
            "{body}: {}",
            refused.error.message
        );
    }
    assert!(harness.app.store.snapshot().limits.limits.is_empty());
    let answer = harness
        .call(Method::GET, "/api/limits?scope=galaxy", Some(&admin), None)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    // A filter naming a project that does not exist matches nothing.
    let answer = harness
        .call(
            Method::GET,
            "/api/limits?scope=project:nope",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(
        serde_json::from_value::<LimitList>(answer.body)
            .unwrap()
            .limits
            .is_empty()
    );
}

#[tokio::test]
async fn a_project_member_sees_only_the_limits_of_its_projects() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let alpha = add(
        &harness,
        &admin,
        json!({ "scope": "project:alpha", "metric": "cost", "period": "monthly", "value": 50 }),
    )
    .await;
    let beta = add(
        &harness,
        &admin,
        json!({ "scope": "project:beta", "metric": "cost", "period": "monthly", "value": 50 }),
    )
    .await;
    let global = add(
        &harness,
        &admin,
        json!({ "scope": "global", "metric": "cost", "period": "monthly", "value": 500 }),
    )
    .await;
    let viewer = harness.token("project-viewer").await;
    let listed = harness
        .call(Method::GET, "/api/limits", Some(&viewer), None)
        .await;
    let listed: LimitList = serde_json::from_value(listed.body).unwrap();
    let ids: Vec<&str> = listed
        .limits
        .iter()
        .map(|limit| limit.id.as_str())
        .collect();
    assert_eq!(ids, [alpha.id.as_str()]);
    for hidden in [&beta.id, &global.id] {
        let answer = harness
            .call(
                Method::GET,
                &format!("/api/limits/{hidden}"),
                Some(&viewer),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{hidden}");
    }
    // A project editor of alpha cannot lift a limit of beta.
    let editor = harness.token("project-editor").await;
    let answer = harness
        .call(
            Method::PATCH,
            &format!("/api/limits/{}", beta.id),
            Some(&editor),
            Some(json!({ "value": 1000 })),
        )
        .await;
    assert!(answer.status.is_client_error(), "{}", answer.text);
    assert_eq!(harness.app.store.snapshot().limits.limits[1].value, 50.0);
}

/// A loopback HTTP server that answers every request 200 and counts them.
async fn webhook_sink() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let router = axum::Router::new().fallback(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { "ok" }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, hits)
}

fn record(project: &str, token: &str, model: &str, cost: f64) -> routerly_core::usage::UsageRecord {
    serde_json::from_value(json!({
        "id": uuid::Uuid::new_v4().to_string(), "timestamp": chrono::Utc::now(), "project_id": project,
        "token_id": token, "model_id": model, "provider": "openai", "surface": "chat_completions",
        "call_type": "completion", "stream": false, "input_tokens": 10, "output_tokens": 5,
        "cached_input_tokens": 0, "cache_write_tokens": 0, "cost_usd": cost, "input_cost_usd": cost,
        "output_cost_usd": 0.0, "latency_ms": 12.0, "ttft_ms": null, "overhead_ms": 0.1,
        "outcome": "success", "status": 200, "error": null, "trace_id": "t", "user": null, "tags": [],
    }))
    .expect("a usage record")
}

#[tokio::test]
async fn alerts_sent_are_listed_with_their_delivery_to_those_who_may_see_the_limit() {
    let harness = Harness::start().await;
    let (url, hits) = webhook_sink().await;
    harness
        .app
        .store
        .update(move |draft| {
            draft.settings.allow_private_webhooks = true;
            draft.settings.notification_channels = vec![
                serde_json::from_value(json!({ "type": "webhook", "id": "ops", "url": url }))
                    .unwrap(),
            ];
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .unwrap();
    let admin = harness.token("admin").await;
    let alpha = add(
        &harness,
        &admin,
        json!({ "scope": "project:alpha", "metric": "cost", "period": "monthly", "value": 1 }),
    )
    .await;
    let beta = add(
        &harness,
        &admin,
        json!({ "scope": "project:beta", "metric": "cost", "period": "monthly", "value": 1 }),
    )
    .await;
    let empty = harness
        .call(Method::GET, "/api/alerts", Some(&admin), None)
        .await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(
        serde_json::from_value::<AlertList>(empty.body)
            .unwrap()
            .alerts
            .is_empty()
    );

    // Alpha spends 60% of its limit (the 50% threshold), beta all of its own.
    harness
        .app
        .budgets
        .observe(&record("p-alpha", "t-alpha", "m1", 0.6));
    harness
        .app
        .budgets
        .observe(&record("p-beta", "t-beta", "m2", 1.0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let alerts = loop {
        let answer = harness
            .call(Method::GET, "/api/alerts", Some(&admin), None)
            .await;
        let alerts: AlertList = serde_json::from_value(answer.body).unwrap();
        let settled = alerts.alerts.iter().all(|alert| {
            alert.deliveries.len() == 1 && alert.deliveries[0].outcome == DeliveryOutcome::Delivered
        });
        if settled && !alerts.alerts.is_empty() {
            break alerts.alerts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Beta: 50%, 80%, 100% and exhausted; alpha: 50%; newest first.
    let seen: Vec<(&str, AlertKind, Option<u32>)> = alerts
        .iter()
        .map(|alert| (alert.limit_id.as_str(), alert.event, alert.threshold))
        .collect();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen.contains(&(alpha.id.as_str(), AlertKind::Threshold, Some(50))));
    assert!(seen.contains(&(beta.id.as_str(), AlertKind::Exhausted, None)));
    assert!(!seen.contains(&(alpha.id.as_str(), AlertKind::Threshold, Some(80))));
    assert!(
        alerts
            .windows(2)
            .all(|pair| pair[0].fired_at >= pair[1].fired_at)
    );
    let first = &alerts[0];
    assert_eq!(first.deliveries[0].channel, "ops");
    assert_eq!(first.deliveries[0].attempts, 1);
    assert!(first.deliveries[0].finished_at.is_some());
    assert!(
        first
            .message
            .as_deref()
            .is_some_and(|message| !message.is_empty())
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 5);

    // A project viewer of alpha sees alpha's alert only: not beta's spend.
    let viewer = harness.token("project-viewer").await;
    let answer = harness
        .call(Method::GET, "/api/alerts", Some(&viewer), None)
        .await;
    let visible: AlertList = serde_json::from_value(answer.body).unwrap();
    let ids: Vec<&str> = visible
        .alerts
        .iter()
        .map(|alert| alert.limit_id.as_str())
        .collect();
    assert_eq!(ids, [alpha.id.as_str()]);
    assert_eq!(visible.alerts[0].scope.as_deref(), Some("project:p-alpha"));
    // Nobody without a login.
    let answer = harness.call(Method::GET, "/api/alerts", None, None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // The history survives the limit's removal and a restart of the ledger.
    harness
        .call(
            Method::DELETE,
            &format!("/api/limits/{}", alpha.id),
            Some(&admin),
            None,
        )
        .await;
    let answer = harness
        .call(Method::GET, "/api/alerts", Some(&viewer), None)
        .await;
    let kept: AlertList = serde_json::from_value(answer.body).unwrap();
    assert_eq!(kept.alerts.len(), 1);
    // The ledger is saved once each delivery is settled.
    let saved = loop {
        let saved = std::fs::read_to_string(harness.dir.path().join("data/alerts.json"))
            .unwrap_or_default();
        if saved.matches("\"delivered\"").count() == 5 {
            break saved;
        }
        assert!(tokio::time::Instant::now() < deadline, "not saved: {saved}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        !saved.contains("/hook"),
        "the channel's URL is not kept: {saved}"
    );
}
