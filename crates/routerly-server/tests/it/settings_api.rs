//! Behaviour of `/api/settings`, read through the typed contract of `routerly-api`: what is
//! shown (never the metrics token), a change of some members (nested ones too) keeping the
//! rest, `null` clearing what may be cleared, and refusals that name the field and write
//! nothing.

use crate::management;

use http::{Method, StatusCode};
use management::{Harness, error};
use routerly_api::ErrorCode;
use routerly_api::settings::{LogFormat, SettingsView};
use serde_json::{Value, json};

async fn settings(harness: &Harness, token: &str) -> SettingsView {
    let answer = harness
        .call(Method::GET, "/api/settings", Some(token), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    serde_json::from_value(answer.body).expect("a SettingsView")
}

async fn patch(harness: &Harness, token: &str, change: Value) -> SettingsView {
    let answer = harness
        .call(
            Method::PATCH,
            "/api/settings",
            Some(token),
            Some(change.clone()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{change}: {}", answer.text);
    serde_json::from_value(answer.body).expect("a SettingsView")
}

#[tokio::test]
async fn a_change_sets_what_it_names_and_keeps_the_rest() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let before = settings(&harness, &admin).await;
    assert_eq!(before.log_format, LogFormat::Text);
    assert!(!before.metrics_token_set);

    let after = patch(
        &harness,
        &admin,
        json!({
            "public_url": "https://routerly.example.com",
            "alert_thresholds": [25, 90],
            "timeouts": { "idle_ms": 5000 },
            "connections": { "max_connections": 64 },
            "trusted_proxies": ["10.0.0.0/8", "127.0.0.1"],
            "usage_retention_days": 90,
            "metrics_token": "metrics-token-secret-1234",
        }),
    )
    .await;
    let mut expected = before.clone();
    expected.public_url = Some("https://routerly.example.com".into());
    expected.alert_thresholds = vec![25, 90];
    // Inside a nested object, only the named member changes.
    expected.timeouts.idle_ms = 5000;
    expected.connections.max_connections = 64;
    expected.trusted_proxies = vec!["10.0.0.0/8".into(), "127.0.0.1".into()];
    expected.usage_retention_days = Some(90);
    expected.metrics_token_set = true;
    assert_eq!(after, expected);
    assert_eq!(settings(&harness, &admin).await, expected);
    let shown = harness
        .call(Method::GET, "/api/settings", Some(&admin), None)
        .await;
    assert!(!shown.text.contains("metrics-token-secret") && !shown.text.contains("enc:v1:"));
    let file = std::fs::read_to_string(harness.dir.path().join("config/settings.json")).unwrap();
    assert!(!file.contains("metrics-token-secret-1234"), "stored sealed");

    // `null` clears what may be cleared; an absent member is kept.
    let cleared = patch(
        &harness,
        &admin,
        json!({ "public_url": null, "usage_retention_days": null, "metrics_token": null }),
    )
    .await;
    assert_eq!(cleared.public_url, None);
    assert_eq!(cleared.usage_retention_days, None);
    assert!(!cleared.metrics_token_set);
    assert_eq!(cleared.alert_thresholds, [25, 90]);
}

#[tokio::test]
async fn invalid_changes_are_refused_naming_the_field_and_nothing_is_written() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let before = settings(&harness, &admin).await;
    let cases = [
        (json!({ "port": 0 }), "port"),
        (json!({ "port": 70000 }), "port"),
        (json!({ "host": " " }), "host"),
        (json!({ "public_url": "ftp://example.com" }), "public_url"),
        (json!({ "log_format": "xml" }), "log_format"),
        (
            json!({ "timeouts": { "idle_ms": "soon" } }),
            "timeouts.idle_ms",
        ),
        (json!({ "timeouts": { "idle": 5 } }), "timeouts.idle"),
        (
            json!({ "connections": { "max_connections": -1 } }),
            "connections.max_connections",
        ),
        (
            json!({ "trusted_proxies": ["10.0.0.1", "not-an-address"] }),
            "trusted_proxies[1]",
        ),
        (
            json!({ "notification_channels": [] }),
            "notification_channels",
        ),
        (
            json!({ "usage_retention_days": "ever" }),
            "usage_retention_days",
        ),
    ];
    for (change, field) in cases {
        let answer = harness
            .call(
                Method::PATCH,
                "/api/settings",
                Some(&admin),
                Some(change.clone()),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{change}: {}",
            answer.text
        );
        let detail = error(answer.body).error;
        assert_eq!(detail.code, ErrorCode::Invalid, "{change}");
        assert_eq!(
            detail.field.as_deref(),
            Some(field),
            "{change}: {}",
            detail.message
        );
    }
    // Out of the documented ranges: refused where the configuration is validated.
    for change in [
        json!({ "max_body_bytes": 10 }),
        json!({ "shutdown_grace_seconds": 100000 }),
        json!({ "connections": { "header_timeout_ms": 5 } }),
        json!({ "alert_thresholds": [0] }),
    ] {
        let answer = harness
            .call(
                Method::PATCH,
                "/api/settings",
                Some(&admin),
                Some(change.clone()),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{change}: {}",
            answer.text
        );
    }
    assert_eq!(
        settings(&harness, &admin).await,
        before,
        "nothing was written"
    );
    // Settings need settings:write.
    let operator = harness.token("operator").await;
    for method in [Method::GET, Method::PATCH] {
        let answer = harness
            .call(
                method.clone(),
                "/api/settings",
                Some(&operator),
                Some(json!({})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method}");
    }
}
