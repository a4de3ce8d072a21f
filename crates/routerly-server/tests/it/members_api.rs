//! Behaviour of `/api/projects/{project}/members`, read through the typed contract of
//! `routerly-api`: the listing, adding by email or id, changing a role, removing, and who
//! may do each.

use crate::management;

use http::{Method, StatusCode};
use management::{Harness, error};
use routerly_api::ErrorCode;
use routerly_api::members::{MemberList, MemberView};
use serde_json::json;

fn member(user_id: &str, email: &str, role: &str) -> MemberView {
    MemberView {
        user_id: user_id.into(),
        email: Some(email.into()),
        role: role.into(),
    }
}

async fn members(harness: &Harness, token: &str, project: &str) -> MemberList {
    let answer = harness
        .call(
            Method::GET,
            &format!("/api/projects/{project}/members"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    serde_json::from_value(answer.body).expect("a MemberList")
}

#[tokio::test]
async fn members_are_listed_added_changed_and_removed() {
    let harness = Harness::start().await;
    let admin = harness.token("project-admin").await;
    let before = members(&harness, &admin, "alpha").await;
    assert_eq!(
        before.members[..3],
        [
            member("u-project-admin", "project-admin@example.com", "admin"),
            member("u-project-editor", "project-editor@example.com", "editor"),
            member("u-project-viewer", "project-viewer@example.com", "viewer"),
        ]
    );
    // By email, whatever its case, or by id (as `user_id`).
    let added = harness
        .call(
            Method::POST,
            "/api/projects/alpha/members",
            Some(&admin),
            Some(json!({ "email": "VIEWER@example.com", "role": "editor" })),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let added: MemberList = serde_json::from_value(added.body).unwrap();
    assert_eq!(
        added.members.last(),
        Some(&member("u-viewer", "viewer@example.com", "editor"))
    );
    let by_id = harness
        .call(
            Method::POST,
            "/api/projects/alpha/members",
            Some(&admin),
            Some(json!({ "user_id": "u-operator", "role": "viewer" })),
        )
        .await;
    assert_eq!(by_id.status, StatusCode::CREATED, "{}", by_id.text);

    let changed = harness
        .call(
            Method::PATCH,
            "/api/projects/alpha/members/viewer@example.com",
            Some(&admin),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let changed: MemberList = serde_json::from_value(changed.body).unwrap();
    assert!(
        changed
            .members
            .contains(&member("u-viewer", "viewer@example.com", "viewer"))
    );

    let removed = harness
        .call(
            Method::DELETE,
            "/api/projects/alpha/members/u-viewer",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    let after = members(&harness, &admin, "alpha").await;
    assert!(
        after
            .members
            .iter()
            .all(|member| member.user_id != "u-viewer")
    );
    assert_eq!(
        after.members.len(),
        before.members.len() + 1,
        "u-operator stays"
    );
}

#[tokio::test]
async fn bad_members_are_refused_with_the_field_named() {
    let harness = Harness::start().await;
    let admin = harness.token("project-admin").await;
    let cases = [
        (
            Method::POST,
            "/api/projects/alpha/members",
            json!({ "email": "viewer@example.com", "role": "owner" }),
            (StatusCode::BAD_REQUEST, ErrorCode::Invalid, Some("role")),
        ),
        (
            Method::POST,
            "/api/projects/alpha/members",
            json!({ "email": "nobody@example.com", "role": "viewer" }),
            (StatusCode::NOT_FOUND, ErrorCode::NotFound, Some("email")),
        ),
        (
            Method::POST,
            "/api/projects/alpha/members",
            json!({ "email": "viewer@example.com" }),
            (StatusCode::BAD_REQUEST, ErrorCode::Invalid, Some("role")),
        ),
        (
            Method::POST,
            "/api/projects/alpha/members",
            json!({ "email": "viewer@example.com", "role": "viewer", "admin": true }),
            (StatusCode::BAD_REQUEST, ErrorCode::Invalid, Some("admin")),
        ),
        (
            Method::PATCH,
            "/api/projects/alpha/members/viewer@example.com",
            json!({ "role": "editor" }),
            (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
        ),
        (
            Method::PATCH,
            "/api/projects/alpha/members/u-project-viewer",
            json!({ "role": ["editor"] }),
            (StatusCode::BAD_REQUEST, ErrorCode::Invalid, Some("role")),
        ),
        // A project admin learns nothing of projects outside their own, existing or not.
        (
            Method::POST,
            "/api/projects/gamma/members",
            json!({ "email": "viewer@example.com", "role": "viewer" }),
            (StatusCode::FORBIDDEN, ErrorCode::Forbidden, None),
        ),
    ];
    for (method, path, body, (status, code, field)) in cases {
        let answer = harness
            .call(method.clone(), path, Some(&admin), Some(body.clone()))
            .await;
        let detail = error(answer.body).error;
        assert_eq!(
            (answer.status, detail.code, detail.field.as_deref()),
            (status, code, field),
            "{method} {path} {body}"
        );
    }
    let removed = harness
        .call(
            Method::DELETE,
            "/api/projects/alpha/members/viewer@example.com",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NOT_FOUND, "not a member");
    let global_admin = harness.token("admin").await;
    let answer = harness
        .call(
            Method::GET,
            "/api/projects/gamma/members",
            Some(&global_admin),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
    let unchanged = members(&harness, &admin, "alpha").await;
    assert!(
        unchanged
            .members
            .iter()
            .all(|member| member.user_id != "u-viewer")
    );
}

#[tokio::test]
async fn only_holders_of_project_members_manage_members() {
    let harness = Harness::start().await;
    for name in ["project-editor", "project-viewer", "outsider"] {
        let token = harness.token(name).await;
        let answer = harness
            .call(
                Method::POST,
                "/api/projects/alpha/members",
                Some(&token),
                Some(json!({ "email": format!("{name}@example.com"), "role": "admin" })),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{name}: {}",
            answer.text
        );
    }
    // A project viewer may read the list, an outsider may not.
    let viewer = harness.token("project-viewer").await;
    assert_eq!(members(&harness, &viewer, "alpha").await.members.len(), 4);
    let outsider = harness.token("outsider").await;
    let answer = harness
        .call(
            Method::GET,
            "/api/projects/alpha/members",
            Some(&outsider),
            None,
        )
        .await;
    assert!(
        matches!(answer.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{}",
        answer.status
    );
}
