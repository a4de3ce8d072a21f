//! A model's endpoint may not point at a link-local address (cloud metadata), whether the
//! model is registered or moved: `POST /api/models` and `PATCH /api/models/{id}` answer 400
//! with `error.field = "endpoint"`, and nothing is stored. The same check refuses the test
//! call (`POST /api/models/{id}/test`), so the API never accepts an endpoint it would then
//! refuse to reach.

use crate::management;

use http::{Method, StatusCode};
use management::Harness;
use serde_json::json;

const LINK_LOCAL: &[&str] = &[
    "http://169.254.169.254/latest/meta-data",
    "http://2852039166/v1",
    "http://[fe80::1]:8080/v1",
    "http://[::ffff:169.254.169.254]/v1",
];

#[tokio::test]
async fn a_link_local_endpoint_is_refused_on_create_and_on_change() {
    let harness = Harness::start().await;
    let operator = harness.token("operator").await;

    for (n, endpoint) in LINK_LOCAL.iter().enumerate() {
        let id = format!("metadata-{n}");
        let answer = harness
            .call(
                Method::POST,
                "/api/models",
                Some(&operator),
                Some(json!({ "id": id, "provider": "custom", "endpoint": endpoint })),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{endpoint}: {}",
            answer.text
        );
        assert_eq!(answer.body["error"]["field"], "endpoint", "{}", answer.text);
        let message = answer.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("link-local"), "{endpoint}: {message}");
        let missing = harness
            .call(
                Method::GET,
                &format!("/api/models/{id}"),
                Some(&operator),
                None,
            )
            .await;
        assert_eq!(
            missing.status,
            StatusCode::NOT_FOUND,
            "{endpoint} was stored"
        );
    }

    // A model on an ordinary address is registered, then cannot be moved to metadata.
    let answer = harness
        .call(
            Method::POST,
            "/api/models",
            Some(&operator),
            Some(
                json!({ "id": "local", "provider": "custom", "endpoint": "http://127.0.0.1:9/v1" }),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    for endpoint in LINK_LOCAL {
        let answer = harness
            .call(
                Method::PATCH,
                "/api/models/local",
                Some(&operator),
                Some(json!({ "endpoint": endpoint })),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{endpoint}: {}",
            answer.text
        );
        assert_eq!(answer.body["error"]["field"], "endpoint", "{}", answer.text);
    }
    let kept = harness
        .call(Method::GET, "/api/models/local", Some(&operator), None)
        .await;
    assert_eq!(
        kept.body["endpoint"], "http://127.0.0.1:9/v1",
        "{}",
        kept.text
    );

    // Neighbouring addresses and local models stay allowed.
    for endpoint in [
        "http://169.253.255.255/v1",
        "http://localhost:11434",
        "http://10.0.0.5/v1",
    ] {
        let answer = harness
            .call(
                Method::PATCH,
                "/api/models/local",
                Some(&operator),
                Some(json!({ "endpoint": endpoint })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{endpoint}: {}", answer.text);
    }
    // A scheme other than http(s) is refused for the same field.
    let answer = harness
        .call(
            Method::PATCH,
            "/api/models/local",
            Some(&operator),
            Some(json!({ "endpoint": "file:///etc/passwd" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.body["error"]["field"], "endpoint", "{}", answer.text);
}
