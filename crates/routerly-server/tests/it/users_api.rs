//! Behaviour of `/api/users`, read through the typed contract of `routerly-api`: the
//! listing and a user by id or email, and the success, validation, conflict and not-found
//! paths of creating, changing and removing one.

use crate::management;

use http::{Method, StatusCode};
use management::{Harness, PASSWORD, refused};
use routerly_api::ErrorCode;
use routerly_api::users::{UserList, UserProject, UserView};
use serde_json::json;

async fn user(harness: &Harness, token: &str, key: &str) -> UserView {
    let answer = harness
        .call(Method::GET, &format!("/api/users/{key}"), Some(token), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    serde_json::from_value(answer.body).expect("a UserView")
}

#[tokio::test]
async fn users_are_listed_with_their_projects_and_found_by_id_or_email() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let answer = harness
        .call(Method::GET, "/api/users", Some(&admin), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(
        !answer.text.contains("password"),
        "no password hash: {}",
        answer.text
    );
    let list: UserList = serde_json::from_value(answer.body).expect("a UserList");
    assert_eq!(list.users.len(), 9);
    let editor = list
        .users
        .iter()
        .find(|user| user.email == "project-editor@example.com")
        .expect("listed");
    assert_eq!(editor.role, "none");
    assert_eq!(
        editor.projects,
        [UserProject {
            id: "p-alpha".into(),
            slug: "alpha".into(),
            role: "editor".into()
        }]
    );
    assert_eq!(&user(&harness, &admin, "u-project-editor").await, editor);
    assert_eq!(
        &user(&harness, &admin, "project-editor@example.com").await,
        editor
    );
    assert_eq!(
        refused(
            &harness,
            Method::GET,
            "/api/users/nobody@example.com",
            &admin,
            None
        )
        .await,
        (StatusCode::NOT_FOUND, ErrorCode::NotFound, None)
    );
    // Reading users needs user:read, which a viewer and a project admin do not hold.
    for name in ["viewer", "project-admin"] {
        let token = harness.token(name).await;
        let answer = harness
            .call(Method::GET, "/api/users", Some(&token), None)
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{name}");
    }
}

#[tokio::test]
async fn a_user_is_created_with_memberships_and_can_log_in() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let answer = harness
        .call(
            Method::POST,
            "/api/users",
            Some(&admin),
            Some(json!({ "email": "  new@example.com ", "password": "a new password", "projects": ["alpha:editor", "beta"] })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let created: UserView = serde_json::from_value(answer.body).unwrap();
    assert_eq!(created.email, "new@example.com", "trimmed");
    assert_eq!(created.role, "none", "with projects and no role: none");
    let memberships: Vec<(&str, &str)> = created
        .projects
        .iter()
        .map(|project| (project.slug.as_str(), project.role.as_str()))
        .collect();
    assert_eq!(memberships, [("alpha", "editor"), ("beta", "viewer")]);
    assert_eq!(user(&harness, &admin, &created.id).await, created);
    let login = harness
        .login("new@example.com", "a new password", [10, 0, 0, 1])
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);

    // Without projects the role defaults to viewer.
    let plain = harness
        .call(
            Method::POST,
            "/api/users",
            Some(&admin),
            Some(json!({ "email": "plain@example.com", "password": "a new password" })),
        )
        .await;
    assert_eq!(plain.status, StatusCode::CREATED, "{}", plain.text);
    assert_eq!(plain.body["role"], "viewer");
}

#[tokio::test]
async fn a_new_user_is_refused_with_the_field_named() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let invalid = |field: &str| {
        (
            StatusCode::BAD_REQUEST,
            ErrorCode::Invalid,
            Some(field.to_owned()),
        )
    };
    for (body, expected) in [
        (
            json!({ "email": "no-at-sign", "password": "a new password" }),
            invalid("email"),
        ),
        (
            json!({ "email": format!("{}@example.com", "a".repeat(250)), "password": "a new password" }),
            invalid("email"),
        ),
        (
            json!({ "email": "short@example.com", "password": "short" }),
            invalid("password"),
        ),
        (
            json!({ "email": "role@example.com", "password": "a new password", "role": "emperor" }),
            invalid("role"),
        ),
        (
            json!({ "email": "proj@example.com", "password": "a new password", "projects": ["gamma"] }),
            invalid("projects"),
        ),
        (
            json!({ "email": "proj@example.com", "password": "a new password", "projects": [""] }),
            invalid("projects"),
        ),
        (
            json!({ "email": "proj@example.com", "password": "a new password", "projects": {"alpha": "editor"} }),
            invalid("projects"),
        ),
        (
            json!({ "email": "x@example.com", "password": "a new password", "admin": true }),
            invalid("admin"),
        ),
        // The same email in another case is the same login.
        (
            json!({ "email": "VIEWER@example.com", "password": "a new password" }),
            (
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                Some("email".to_owned()),
            ),
        ),
    ] {
        assert_eq!(
            refused(
                &harness,
                Method::POST,
                "/api/users",
                &admin,
                Some(body.clone())
            )
            .await,
            expected,
            "{body}"
        );
    }
    let list: UserList = serde_json::from_value(
        harness
            .call(Method::GET, "/api/users", Some(&admin), None)
            .await
            .body,
    )
    .unwrap();
    assert_eq!(list.users.len(), 9, "nothing was added");
    // Adding users needs user:write.
    let operator = harness.token("operator").await;
    let body = json!({ "email": "op@example.com", "password": "a new password" });
    let answer = harness
        .call(Method::POST, "/api/users", Some(&operator), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
}

#[tokio::test]
async fn a_user_is_changed_and_an_email_stays_one_login() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let answer = harness
        .call(
            Method::PATCH,
            "/api/users/victim@example.com",
            Some(&admin),
            Some(json!({ "email": " renamed@example.com", "role": "operator", "projects": ["alpha:admin"] })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let changed: UserView = serde_json::from_value(answer.body).unwrap();
    assert_eq!(
        (
            changed.id.as_str(),
            changed.email.as_str(),
            changed.role.as_str()
        ),
        ("u-victim", "renamed@example.com", "operator")
    );
    assert_eq!(changed.projects[0].role, "admin", "the membership changed");

    // Another user's email, in any case, is refused: two users would share one login.
    assert_eq!(
        refused(
            &harness,
            Method::PATCH,
            "/api/users/u-victim",
            &admin,
            Some(json!({ "email": "Viewer@Example.com" }))
        )
        .await,
        (
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            Some("email".to_owned())
        )
    );
    // Its own email in another case is not a conflict.
    let recased = harness
        .call(
            Method::PATCH,
            "/api/users/u-victim",
            Some(&admin),
            Some(json!({ "email": "Renamed@example.com" })),
        )
        .await;
    assert_eq!(recased.status, StatusCode::OK, "{}", recased.text);
    for (body, field) in [
        (json!({ "email": "nope" }), "email"),
        (json!({ "password": "short" }), "password"),
        (json!({ "role": "emperor" }), "role"),
        (json!({ "projects": ["gamma:editor"] }), "projects"),
        (json!({ "nickname": "v" }), "nickname"),
    ] {
        assert_eq!(
            refused(
                &harness,
                Method::PATCH,
                "/api/users/u-victim",
                &admin,
                Some(body.clone())
            )
            .await,
            (
                StatusCode::BAD_REQUEST,
                ErrorCode::Invalid,
                Some(field.to_owned())
            ),
            "{body}"
        );
    }
    assert_eq!(
        refused(
            &harness,
            Method::PATCH,
            "/api/users/ghost@example.com",
            &admin,
            Some(json!({ "role": "viewer" }))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // The last admin keeps the role.
    assert_eq!(
        refused(
            &harness,
            Method::PATCH,
            "/api/users/u-admin",
            &admin,
            Some(json!({ "role": "viewer" }))
        )
        .await,
        (StatusCode::CONFLICT, ErrorCode::Conflict, None)
    );
}

#[tokio::test]
async fn a_new_password_ends_the_users_sessions() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let viewer = harness.token("viewer").await;
    let me = harness
        .call(Method::GET, "/api/me", Some(&viewer), None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    let answer = harness
        .call(
            Method::PATCH,
            "/api/users/u-viewer",
            Some(&admin),
            Some(json!({ "password": "another long password" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let me = harness
        .call(Method::GET, "/api/me", Some(&viewer), None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "the old session ended");
    let old = harness
        .login("viewer@example.com", PASSWORD, [10, 0, 0, 2])
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = harness
        .login("viewer@example.com", "another long password", [10, 0, 0, 2])
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.text);
}

#[tokio::test]
async fn a_user_is_removed_with_their_memberships_but_never_the_last_admin() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let editor = harness.token("project-editor").await;
    let answer = harness
        .call(
            Method::DELETE,
            "/api/users/project-editor@example.com",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    let snapshot = harness.app.store.snapshot();
    assert!(snapshot.user("u-project-editor").is_none());
    assert!(
        snapshot.projects.projects.iter().all(|project| project
            .members
            .iter()
            .all(|member| member.user_id != "u-project-editor")),
        "no membership left behind"
    );
    let me = harness
        .call(Method::GET, "/api/me", Some(&editor), None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "their session ended");
    assert_eq!(
        refused(
            &harness,
            Method::DELETE,
            "/api/users/u-project-editor",
            &admin,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        refused(&harness, Method::DELETE, "/api/users/u-admin", &admin, None).await,
        (StatusCode::CONFLICT, ErrorCode::Conflict, None)
    );
    let operator = harness.token("operator").await;
    assert_eq!(
        refused(
            &harness,
            Method::DELETE,
            "/api/users/u-viewer",
            &operator,
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
}
