//! Behaviour of `/api/roles`, read through the typed contract of `routerly-api`: the
//! listing, and the success, validation, conflict and not-found paths of each change.

use crate::management;

use http::{Method, StatusCode};
use management::{Harness, error};
use routerly_api::ErrorCode;
use routerly_api::roles::{RoleList, RoleView};
use serde_json::json;

async fn roles(harness: &Harness, token: &str) -> RoleList {
    let answer = harness
        .call(Method::GET, "/api/roles", Some(token), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    serde_json::from_value(answer.body).expect("a RoleList")
}

#[tokio::test]
async fn the_listing_has_builtin_roles_first_then_custom_ones_and_every_permission() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let list = roles(&harness, &admin).await;
    let ids: Vec<(&str, bool)> = list
        .roles
        .iter()
        .map(|role| (role.id.as_str(), role.builtin))
        .collect();
    assert_eq!(
        ids,
        [
            ("admin", true),
            ("operator", true),
            ("viewer", true),
            ("none", true),
            ("auditor", false),
            ("spare", false)
        ]
    );
    assert_eq!(
        list.roles[0].permissions, list.permissions,
        "admin holds everything"
    );
    assert!(list.roles[3].permissions.is_empty(), "`none` holds nothing");
    assert!(list.permissions.contains(&"settings:write".to_owned()));
    assert_eq!(
        list.roles[4].permissions,
        ["model:read", "report:read"],
        "a custom role's permissions as stored"
    );
    // Reading roles needs user:read, which a viewer does not hold.
    let viewer = harness.token("viewer").await;
    let answer = harness
        .call(Method::GET, "/api/roles", Some(&viewer), None)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_role_is_created_changed_and_removed() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let created = harness
        .call(
            Method::POST,
            "/api/roles",
            Some(&admin),
            Some(json!({ "id": "reporter", "name": " Reporter ", "permissions": ["report:read", " project:read", ""] })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let created: RoleView = serde_json::from_value(created.body).unwrap();
    assert_eq!(
        created,
        RoleView {
            id: "reporter".into(),
            name: "Reporter".into(),
            // Trimmed, blanks dropped, in the fixed order of every permission.
            permissions: vec!["project:read".into(), "report:read".into()],
            builtin: false,
        }
    );
    assert!(roles(&harness, &admin).await.roles.contains(&created));

    let changed = harness
        .call(
            Method::PATCH,
            "/api/roles/reporter",
            Some(&admin),
            Some(json!({ "permissions": ["report:read"] })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let changed: RoleView = serde_json::from_value(changed.body).unwrap();
    assert_eq!(
        (changed.name.as_str(), changed.permissions.as_slice()),
        ("Reporter", ["report:read".to_owned()].as_slice()),
        "what the change leaves out is kept"
    );
    assert!(roles(&harness, &admin).await.roles.contains(&changed));

    let removed = harness
        .call(Method::DELETE, "/api/roles/reporter", Some(&admin), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    assert!(
        !roles(&harness, &admin)
            .await
            .roles
            .iter()
            .any(|role| role.id == "reporter")
    );
    let again = harness
        .call(Method::DELETE, "/api/roles/reporter", Some(&admin), None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(error(again.body).error.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn invalid_roles_are_refused_naming_the_field_and_nothing_is_written() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let before = roles(&harness, &admin).await;
    let cases = [
        (
            json!({ "id": "Bad Id", "name": "x", "permissions": ["model:read"] }),
            "id",
        ),
        (
            json!({ "id": "operator", "name": "x", "permissions": ["model:read"] }),
            "id",
        ),
        (
            json!({ "id": "x".repeat(65), "name": "x", "permissions": ["model:read"] }),
            "id",
        ),
        (
            json!({ "id": "ok", "name": "  ", "permissions": ["model:read"] }),
            "name",
        ),
        (
            json!({ "id": "ok", "name": "x", "permissions": ["model:fly"] }),
            "permissions",
        ),
        (
            json!({ "id": "ok", "name": "x", "permissions": [" "] }),
            "permissions",
        ),
        (
            json!({ "id": "ok", "name": "x", "permissions": ["model:read"], "extra": 1 }),
            "extra",
        ),
        (json!({ "id": "ok", "name": "x" }), "permissions"),
    ];
    for (body, field) in cases {
        let answer = harness
            .call(Method::POST, "/api/roles", Some(&admin), Some(body.clone()))
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
    let duplicate = harness
        .call(
            Method::POST,
            "/api/roles",
            Some(&admin),
            Some(json!({ "id": "spare", "name": "Again", "permissions": ["model:read"] })),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT, "{}", duplicate.text);

    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "permissions": [] }), "permissions"),
        (json!({ "permissions": ["nope"] }), "permissions"),
    ] {
        let answer = harness
            .call(
                Method::PATCH,
                "/api/roles/spare",
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
        assert_eq!(
            error(answer.body).error.field.as_deref(),
            Some(field),
            "{body}"
        );
    }
    assert_eq!(roles(&harness, &admin).await, before, "nothing was written");
}

#[tokio::test]
async fn builtin_held_and_unknown_roles_are_not_changed() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let builtin = harness
        .call(
            Method::PATCH,
            "/api/roles/viewer",
            Some(&admin),
            Some(json!({ "name": "Watcher" })),
        )
        .await;
    assert_eq!(builtin.status, StatusCode::CONFLICT, "{}", builtin.text);
    let unknown = harness
        .call(
            Method::PATCH,
            "/api/roles/ghost",
            Some(&admin),
            Some(json!({ "name": "Ghost" })),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    // `auditor` is held by the user auditor@example.com.
    let held = harness
        .call(Method::DELETE, "/api/roles/auditor", Some(&admin), None)
        .await;
    assert_eq!(held.status, StatusCode::CONFLICT, "{}", held.text);
    assert!(
        error(held.body)
            .error
            .message
            .contains("auditor@example.com"),
        "names who holds it"
    );
}
