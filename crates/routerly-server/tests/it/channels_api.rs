//! Behaviour of `/api/channels`, read through the typed contract of `routerly-api`: each
//! route's success, validation, conflict and not-found paths, secrets never shown, and a
//! test delivery to a webhook that answers.

use crate::management;

use http::{Method, StatusCode};
use management::{Harness, error};
use routerly_api::ErrorCode;
use routerly_api::channels::{ChannelList, ChannelTested, ChannelView, SmtpTls};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn channels(harness: &Harness, token: &str) -> ChannelList {
    let answer = harness
        .call(Method::GET, "/api/channels", Some(token), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    serde_json::from_value(answer.body).expect("a ChannelList")
}

#[tokio::test]
async fn channels_are_added_listed_shown_and_removed_without_their_secrets() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    assert!(channels(&harness, &admin).await.channels.is_empty());

    let smtp = harness
        .call(
            Method::POST,
            "/api/channels",
            Some(&admin),
            Some(json!({
                "type": "smtp", "id": "mail", "host": "smtp.example.com", "port": 587,
                "username": "alerts", "password": "smtp-password-123",
                "from": "routerly@example.com", "to": ["ops@example.com, cfo@example.com"],
            })),
        )
        .await;
    assert_eq!(smtp.status, StatusCode::CREATED, "{}", smtp.text);
    let smtp: ChannelView = serde_json::from_value(smtp.body).unwrap();
    assert_eq!(
        smtp,
        ChannelView::Smtp {
            id: "mail".into(),
            host: "smtp.example.com".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            ca_file: None,
            username: Some("alerts".into()),
            password_set: true,
            from: "routerly@example.com".into(),
            // A comma-separated entry is split.
            to: vec!["ops@example.com".into(), "cfo@example.com".into()],
        }
    );
    let hook = harness
        .call(
            Method::POST,
            "/api/channels",
            Some(&admin),
            Some(json!({ "type": "webhook", "url": "https://93.184.215.14/hook" })),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.text);
    let hook: ChannelView = serde_json::from_value(hook.body).unwrap();
    let ChannelView::Webhook { id, secret_set, .. } = &hook else {
        panic!("{hook:?}")
    };
    assert!(id.starts_with("ch-") && !secret_set, "{hook:?}");

    let list = channels(&harness, &admin).await;
    assert_eq!(list.channels, [smtp.clone(), hook.clone()]);
    let shown = harness
        .call(Method::GET, "/api/channels/mail", Some(&admin), None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(!shown.text.contains("smtp-password") && !shown.text.contains("enc:v1:"));
    assert_eq!(
        serde_json::from_value::<ChannelView>(shown.body).unwrap(),
        smtp
    );
    let settings =
        std::fs::read_to_string(harness.dir.path().join("config/settings.json")).unwrap();
    assert!(
        !settings.contains("smtp-password-123") && settings.contains("enc:v1:"),
        "the password is stored sealed"
    );

    let removed = harness
        .call(Method::DELETE, "/api/channels/mail", Some(&admin), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    assert_eq!(channels(&harness, &admin).await.channels, [hook]);
    for (method, path) in [
        (Method::DELETE, "/api/channels/mail"),
        (Method::GET, "/api/channels/mail"),
        (Method::POST, "/api/channels/mail/test"),
    ] {
        let answer = harness.call(method.clone(), path, Some(&admin), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(error(answer.body).error.code, ErrorCode::NotFound);
    }
}

#[tokio::test]
async fn invalid_channels_are_refused_naming_the_field_and_nothing_is_written() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let smtp = |change: Value| {
        let mut body = json!({
            "type": "smtp", "host": "smtp.example.com", "port": 587,
            "from": "routerly@example.com", "to": ["ops@example.com"],
        });
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    let cases = [
        (smtp(json!({ "from": "not an address" })), "from"),
        (smtp(json!({ "to": ["ops@example.com", "nobody"] })), "to"),
        (smtp(json!({ "to": [" , "] })), "to"),
        (smtp(json!({ "tls": "ssl3" })), "tls"),
        (smtp(json!({ "port": 70000 })), "port"),
        (smtp(json!({ "ca_file": "/no/such/ca.pem" })), "ca_file"),
        (smtp(json!({ "colour": "red" })), "colour"),
        (
            json!({ "type": "webhook", "url": "http://127.0.0.1:9/hook" }),
            "url",
        ),
        (
            json!({ "type": "webhook", "url": "ftp://93.184.215.14/hook" }),
            "url",
        ),
        (json!({ "type": "pager", "number": "555" }), "type"),
    ];
    for (body, field) in cases {
        let answer = harness
            .call(
                Method::POST,
                "/api/channels",
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
        let detail = error(answer.body).error;
        assert_eq!(detail.code, ErrorCode::Invalid, "{body}");
        assert_eq!(
            detail.field.as_deref(),
            Some(field),
            "{body}: {}",
            detail.message
        );
    }
    assert!(channels(&harness, &admin).await.channels.is_empty());

    let first = harness
        .call(
            Method::POST,
            "/api/channels",
            Some(&admin),
            Some(smtp(json!({ "id": "mail" }))),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = harness
        .call(
            Method::POST,
            "/api/channels",
            Some(&admin),
            Some(smtp(json!({ "id": "mail" }))),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(channels(&harness, &admin).await.channels.len(), 1);
}

#[tokio::test]
async fn a_test_alert_is_delivered_to_a_webhook_that_answers() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let allowed = harness
        .call(
            Method::PATCH,
            "/api/settings",
            Some(&admin),
            Some(json!({ "allow_private_webhooks": true })),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut received = Vec::new();
        let mut buffer = [0; 4096];
        // Read until the JSON body is complete.
        while !received.ends_with(b"}") {
            let read = socket.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the delivery ended early");
            received.extend_from_slice(&buffer[..read]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&received).into_owned()
    });
    let hook = harness
        .call(
            Method::POST,
            "/api/channels",
            Some(&admin),
            Some(json!({ "type": "webhook", "id": "hook", "url": format!("http://127.0.0.1:{port}/alerts"), "secret": "hook-secret" })),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.text);
    let tested = harness
        .call(Method::POST, "/api/channels/hook/test", Some(&admin), None)
        .await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.text);
    let tested: ChannelTested = serde_json::from_value(tested.body).unwrap();
    assert!(tested.delivered && tested.channel == "hook");
    let request = receiver.await.unwrap();
    assert!(request.starts_with("POST /alerts "), "{request}");
    assert!(
        request.contains(&tested.event_id),
        "the event delivered is the one named"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("x-routerly-signature")
    );
}
