//! Management sessions: expiry, refresh rotation, reuse detection, logout, tampered tokens,
//! rate-limited logins, password changes; admin API keys; the audit log; key rotation.

use crate::management;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use http::{Method, StatusCode};
use management::{Harness, PASSWORD, PROVIDER_KEY, email};
use routerly_server::api::auth::{
    AccessClaims, LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS, LOGIN_FAILURES_PER_ADDRESS,
};
use serde_json::{Value, json};

async fn me(harness: &Harness, token: &str) -> StatusCode {
    harness
        .call(Method::GET, "/api/me", Some(token), None)
        .await
        .status
}

async fn refresh(harness: &Harness, refresh_token: &str) -> management::Answer {
    harness
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({ "refresh_token": refresh_token })),
        )
        .await
}

fn field(answer: &management::Answer, name: &str) -> String {
    answer.body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {}", answer.text))
        .to_owned()
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_whole_family() {
    let harness = Harness::start().await;
    let login = harness
        .login(&email("operator"), PASSWORD, [10, 0, 0, 1])
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let (access, first) = (
        field(&login, "access_token"),
        field(&login, "refresh_token"),
    );
    assert_eq!(me(&harness, &access).await, StatusCode::OK);

    let rotated = refresh(&harness, &first).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let (second_access, second) = (
        field(&rotated, "access_token"),
        field(&rotated, "refresh_token"),
    );
    assert_ne!(first, second, "the refresh token rotates");
    assert_eq!(me(&harness, &second_access).await, StatusCode::OK);

    // The first token comes back: it was stolen. The whole family dies, access tokens too.
    let reused = refresh(&harness, &first).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{}", reused.text);
    assert!(reused.text.contains("reused"), "{}", reused.text);
    assert_eq!(
        refresh(&harness, &second).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&harness, &second_access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&harness, &access).await, StatusCode::UNAUTHORIZED);

    // Another login of the same user is a separate family and unaffected.
    let other = harness
        .login(&email("operator"), PASSWORD, [10, 0, 0, 1])
        .await;
    assert_eq!(
        me(&harness, &field(&other, "access_token")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let harness = Harness::start().await;
    let login = harness
        .login(&email("viewer"), PASSWORD, [10, 0, 0, 2])
        .await;
    let (access, refresh_token) = (
        field(&login, "access_token"),
        field(&login, "refresh_token"),
    );
    let logout = harness
        .call(
            Method::POST,
            "/api/auth/logout",
            None,
            Some(json!({ "refresh_token": refresh_token })),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(
        refresh(&harness, &refresh_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&harness, &access).await,
        StatusCode::UNAUTHORIZED,
        "the access token dies with its session"
    );
}

#[tokio::test]
async fn expired_and_tampered_tokens_are_refused() {
    let harness = Harness::start().await;
    let token = harness.token("viewer").await;
    assert_eq!(me(&harness, &token).await, StatusCode::OK);

    // Expired: a correctly signed token whose `exp` has passed.
    let (_, payload, _) = split(&token);
    let mut claims: AccessClaims = serde_json::from_slice(&payload).expect("claims");
    claims.exp = Utc::now().timestamp() - 1;
    let expired = harness.app.session_keys.issue_access_token(&claims);
    let answer = harness
        .call(Method::GET, "/api/me", Some(&expired), None)
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.text.contains("expired"), "{}", answer.text);

    // Tampered: the viewer makes themselves admin, keeping the signature.
    let (header, payload, signature) = split(&token);
    let mut claims: Value = serde_json::from_slice(&payload).expect("claims");
    claims["role"] = json!("admin");
    claims["sub"] = json!("u-admin");
    let forged = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert_eq!(me(&harness, &forged).await, StatusCode::UNAUTHORIZED);
    // `alg: none` and garbage.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_eq!(me(&harness, &none).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&harness, "not-a-jwt").await, StatusCode::UNAUTHORIZED);
    let unauthenticated = harness.call(Method::GET, "/api/models", None, None).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);

    // An expired refresh-token family.
    let hash: [u8; 32] =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix("rt_old")).into();
    harness
        .app
        .sessions
        .issue(
            "old".into(),
            hash,
            "u-viewer".into(),
            Utc::now() - chrono::Duration::seconds(1),
        )
        .await
        .expect("issue");
    let answer = refresh(&harness, "rt_old").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.text.contains("expired"), "{}", answer.text);
}

fn split(token: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let parts: Vec<Vec<u8>> = token
        .split('.')
        .map(|part| URL_SAFE_NO_PAD.decode(part).expect("base64url"))
        .collect();
    (parts[0].clone(), parts[1].clone(), parts[2].clone())
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_and_address_and_per_address() {
    let harness = Harness::start().await;
    let target = email("admin");
    for _ in 0..LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS {
        let answer = harness
            .login(&target, "wrong password", [10, 1, 0, 1])
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    // Locked for this account from this address: even the right password waits...
    let locked = harness.login(&target, PASSWORD, [10, 1, 0, 1]).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.text
    );
    let wait: u64 = locked.headers[http::header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait > 0 && wait <= 15 * 60, "retry-after {wait}");
    assert_eq!(locked.body["error"]["code"], "rate_limited");
    // ...but the owner, elsewhere, is not locked out by a stranger's guesses.
    assert_eq!(
        harness.login(&target, PASSWORD, [10, 1, 0, 2]).await.status,
        StatusCode::OK
    );
    // Other accounts are not locked.
    assert_eq!(
        harness
            .login(&email("viewer"), PASSWORD, [10, 1, 0, 3])
            .await
            .status,
        StatusCode::OK
    );

    // One address trying many accounts is limited too.
    for index in 0..LOGIN_FAILURES_PER_ADDRESS {
        let answer = harness
            .login(&format!("nobody{index}@example.com"), "x", [10, 2, 0, 1])
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let answer = harness
        .login(&email("operator"), PASSWORD, [10, 2, 0, 1])
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        harness
            .login(&email("operator"), PASSWORD, [10, 2, 0, 2])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let harness = Harness::start().await;
    let other = harness
        .login(&email("viewer"), PASSWORD, [10, 3, 0, 1])
        .await;
    let other_access = field(&other, "access_token");
    let token = harness.token("viewer").await;
    let wrong = harness
        .call(
            Method::PUT,
            "/api/me",
            Some(&token),
            Some(json!({ "current_password": "nope", "new_password": "brand new password" })),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.body["error"]["field"], "current_password");
    let short = harness
        .call(
            Method::PUT,
            "/api/me",
            Some(&token),
            Some(json!({ "current_password": PASSWORD, "new_password": "short" })),
        )
        .await;
    assert_eq!(short.body["error"]["field"], "password");
    let changed = harness
        .call(
            Method::PUT,
            "/api/me",
            Some(&token),
            Some(json!({ "current_password": PASSWORD, "new_password": "brand new password" })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(
        me(&harness, &field(&changed, "access_token")).await,
        StatusCode::OK
    );
    assert_eq!(me(&harness, &other_access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&harness, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        harness
            .login(&email("viewer"), PASSWORD, [10, 3, 0, 2])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        harness
            .login(&email("viewer"), "brand new password", [10, 3, 0, 2])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn api_keys_carry_their_role_until_revoked_and_are_stored_hashed() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let created = harness
        .call(
            Method::POST,
            "/api/api-keys",
            Some(&admin),
            Some(json!({ "name": "ci", "role": "viewer" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = field(&created, "key");
    let id = field(&created, "id");
    let me = harness.call(Method::GET, "/api/me", Some(&key), None).await;
    assert_eq!(
        (me.body["via"].as_str(), me.body["role"].as_str()),
        (Some("api_key"), Some("viewer"))
    );
    assert_eq!(
        harness
            .call(Method::GET, "/api/models", Some(&key), None)
            .await
            .status,
        StatusCode::OK
    );
    let write = harness
        .call(
            Method::POST,
            "/api/models",
            Some(&key),
            Some(json!({ "id": "x", "provider": "openai" })),
        )
        .await;
    assert_eq!(
        write.status,
        StatusCode::FORBIDDEN,
        "a viewer key cannot write"
    );
    let listed = harness
        .call(Method::GET, "/api/api-keys", Some(&admin), None)
        .await;
    assert!(
        !listed.text.contains(&key) && !listed.text.contains("hash"),
        "{}",
        listed.text
    );
    let stored =
        std::fs::read_to_string(harness.dir.path().join("data/api-keys.json")).expect("stored");
    assert!(!stored.contains(&key), "the key is stored hashed");
    let bad_role = harness
        .call(
            Method::POST,
            "/api/api-keys",
            Some(&admin),
            Some(json!({ "name": "x", "role": "wizard" })),
        )
        .await;
    assert_eq!(bad_role.body["error"]["field"], "role");

    let revoked = harness
        .call(
            Method::DELETE,
            &format!("/api/api-keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        harness
            .call(Method::GET, "/api/me", Some(&key), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Through `x-api-key` too (refused the same way once revoked).
    let request = harness
        .call(Method::GET, "/api/models", Some("rly-ak-unknown"), None)
        .await;
    assert_eq!(request.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changes_are_audited_with_who_and_before_after_but_no_secret() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let created = harness
        .call(
            Method::POST,
            "/api/models",
            Some(&admin),
            Some(json!({ "id": "audited", "provider": "openai", "api_key": "sk-audited-secret-42424242" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let changed = harness
        .call(
            Method::PATCH,
            "/api/models/audited",
            Some(&admin),
            Some(json!({ "context_window": 42 })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    let user = harness
        .call(
            Method::POST,
            "/api/users",
            Some(&admin),
            Some(json!({ "email": "new@example.com", "password": "long password" })),
        )
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", user.text);
    // A refused change is not a change.
    let viewer = harness.token("viewer").await;
    harness
        .call(Method::DELETE, "/api/models/audited", Some(&viewer), None)
        .await;

    let audit = harness
        .call(Method::GET, "/api/audit", Some(&admin), None)
        .await;
    let entries = audit.body["entries"].as_array().expect("entries");
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|entry| entry["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        vec![
            "POST /api/users",
            "PATCH /api/models/{id}",
            "POST /api/models"
        ]
    );
    let patch = &entries[1];
    assert_eq!(patch["actor"]["email"], email("admin"));
    assert_eq!(patch["path"], "/api/models/audited");
    assert_eq!(patch["changes"][0]["before"]["context_window"], Value::Null);
    assert_eq!(patch["changes"][0]["after"]["context_window"], 42);
    assert_eq!(patch["changes"][0]["after"]["api_key"], "[redacted]");
    assert_eq!(
        entries[0]["changes"][0]["after"]["password_hash"],
        "[redacted]"
    );
    let file =
        std::fs::read_to_string(harness.dir.path().join("data/audit.jsonl")).expect("audit log");
    assert_eq!(file.lines().count(), 3);
    assert!(
        !file.contains("sk-audited-secret")
            && !file.contains("enc:v1:")
            && !file.contains("$argon2")
    );
    let refused = harness
        .call(
            Method::GET,
            "/api/audit",
            Some(&harness.token("operator").await),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn rotating_the_master_key_reencrypts_secrets_and_keeps_sessions_refreshable() {
    let harness = Harness::start().await;
    let login = harness
        .login(&email("admin"), PASSWORD, [10, 4, 0, 1])
        .await;
    let (access, refresh_token) = (
        field(&login, "access_token"),
        field(&login, "refresh_token"),
    );
    let secret_path = harness.dir.path().join("config/secret");
    let models_path = harness.dir.path().join("config/models.json");
    let (secret_before, models_before) = (
        std::fs::read_to_string(&secret_path).expect("secret"),
        std::fs::read_to_string(&models_path).expect("models"),
    );
    let rotated = harness
        .call(Method::POST, "/api/system/rotate-key", Some(&access), None)
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert_eq!(rotated.body["secrets_reencrypted"], 1);
    let (secret_after, models_after) = (
        std::fs::read_to_string(&secret_path).expect("secret"),
        std::fs::read_to_string(&models_path).expect("models"),
    );
    assert_ne!(secret_before, secret_after);
    assert_ne!(models_before, models_after);
    assert!(!models_after.contains(PROVIDER_KEY));
    assert_eq!(
        harness.app.store.snapshot().model_api_key("m1"),
        Some(PROVIDER_KEY)
    );
    // Access tokens were signed with the old key; the refresh token still works.
    assert_eq!(me(&harness, &access).await, StatusCode::UNAUTHORIZED);
    let renewed = refresh(&harness, &refresh_token).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    let revealed = harness
        .call(
            Method::GET,
            "/api/models/m1/key",
            Some(&field(&renewed, "access_token")),
            None,
        )
        .await;
    assert_eq!(revealed.body["api_key"], PROVIDER_KEY);
    // A restart reads the new key and the re-encrypted files.
    let home = routerly_server::store::Home::new(harness.dir.path());
    let key = home.master_key().expect("new key file");
    let store = routerly_server::store::ConfigStore::open(&home, key).expect("reopens");
    assert_eq!(store.snapshot().model_api_key("m1"), Some(PROVIDER_KEY));
}
