//! Behaviour of `GET /api/audit`, read through the typed contract of `routerly-api`: who
//! made each change and from where, what changed, paging, bad queries, and a log line that
//! is not an entry.

use crate::management;

use std::io::Write;

use http::{Method, StatusCode};
use management::{Harness, email, error};
use routerly_api::ErrorCode;
use routerly_api::audit::{AuditActor, AuditPage};
use serde_json::{Value, json};

async fn audit(harness: &Harness, token: &str, query: &str) -> AuditPage {
    let answer = harness
        .call(
            Method::GET,
            &format!("/api/audit{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    serde_json::from_value(answer.body).expect("an AuditPage")
}

#[tokio::test]
async fn each_change_names_its_actor_address_route_and_changes() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let created = harness
        .call_from(
            Method::POST,
            "/api/roles",
            Some(&admin),
            Some(json!({ "id": "reporter", "name": "Reporter", "permissions": ["report:read"] })),
            [10, 1, 2, 3],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = harness
        .call(
            Method::POST,
            "/api/api-keys",
            Some(&admin),
            Some(json!({ "name": "ci", "role": "viewer" })),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    let (key_id, key) = (
        key.body["id"].as_str().unwrap().to_owned(),
        key.body["key"].as_str().unwrap().to_owned(),
    );
    // An admin key changes a role; its entry names the key, not a user.
    let admin_key = harness
        .call(
            Method::POST,
            "/api/api-keys",
            Some(&admin),
            Some(json!({ "name": "deploy" })),
        )
        .await;
    let admin_key_id = admin_key.body["id"].as_str().unwrap().to_owned();
    let admin_key = admin_key.body["key"].as_str().unwrap().to_owned();
    let changed = harness
        .call(
            Method::PATCH,
            "/api/roles/reporter",
            Some(&admin_key),
            Some(json!({ "name": "Reports" })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);

    let page = audit(&harness, &admin, "").await;
    assert_eq!((page.total, page.limit, page.offset), (4, 50, 0));
    let actions: Vec<&str> = page.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "PATCH /api/roles/{id}",
            "POST /api/api-keys",
            "POST /api/api-keys",
            "POST /api/roles"
        ],
        "newest first"
    );
    let [patch, deploy_key, ci_key, role] = &page.entries[..] else {
        unreachable!()
    };
    assert_eq!(
        role.actor,
        AuditActor::Session {
            user_id: "u-admin".into(),
            email: email("admin")
        }
    );
    assert_eq!(role.address.as_deref(), Some("10.1.2.3"));
    assert_eq!(role.path, "/api/roles");
    assert_eq!(role.status, 201);
    assert_eq!(role.changes.len(), 1);
    assert_eq!(
        (role.changes[0].file.as_str(), role.changes[0].id.as_deref()),
        ("roles.json", Some("reporter"))
    );
    assert_eq!(role.changes[0].before, Value::Null);
    assert_eq!(role.changes[0].after["name"], "Reporter");

    assert_eq!(
        patch.actor,
        AuditActor::ApiKey {
            api_key: admin_key_id.clone(),
            name: "deploy".into()
        }
    );
    assert_eq!(patch.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(patch.changes[0].before["name"], "Reporter");
    assert_eq!(patch.changes[0].after["name"], "Reports");
    // API keys live outside the config files: the detail says which, never the key.
    assert!(ci_key.changes.is_empty());
    assert_eq!(ci_key.detail["id"], key_id.as_str());
    assert_eq!(deploy_key.detail["id"], admin_key_id.as_str());
    let text = serde_json::to_string(&page).unwrap();
    assert!(
        !text.contains(&key) && !text.contains(&admin_key),
        "no key in the log"
    );

    // Paging: the total stays, the window moves.
    let second = audit(&harness, &admin, "?limit=2&offset=2").await;
    assert_eq!((second.total, second.limit, second.offset), (4, 2, 2));
    assert_eq!(second.entries, page.entries[2..]);
    let clamped = audit(&harness, &admin, "?limit=100000").await;
    assert_eq!(clamped.limit, 1000);
    let past = audit(&harness, &admin, "?offset=10").await;
    assert!(past.entries.is_empty() && past.total == 4);
}

#[tokio::test]
async fn bad_queries_are_refused_naming_the_parameter() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    for (query, field) in [
        ("?limit=ten", "limit"),
        ("?offset=-1", "offset"),
        ("?page=2", "page"),
    ] {
        let answer = harness
            .call(
                Method::GET,
                &format!("/api/audit{query}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            answer.text
        );
        let body = error(answer.body);
        assert_eq!(body.error.code, ErrorCode::Invalid);
        assert_eq!(body.error.field.as_deref(), Some(field), "{query}");
    }
}

#[tokio::test]
async fn a_line_that_is_not_an_entry_is_left_out_of_the_page() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let created = harness
        .call(
            Method::POST,
            "/api/roles",
            Some(&admin),
            Some(json!({ "id": "reporter", "name": "Reporter", "permissions": ["report:read"] })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(harness.dir.path().join("data/audit.jsonl"))
        .unwrap();
    writeln!(file, r#"{{"note": "added by hand"}}"#).unwrap();
    drop(file);
    let page = audit(&harness, &admin, "").await;
    assert_eq!(page.entries.len(), 1, "{page:?}");
    assert_eq!(page.entries[0].action, "POST /api/roles");
}
