//! Behaviour of `/api/projects` and what hangs off a project (its models, tokens and
//! routing policies), read through the typed contract of `routerly-api`: success,
//! validation, conflict and not-found paths, and what a project editor may not do.

use crate::management;

use http::{Method, StatusCode};
use management::{Harness, refused};
use routerly_api::ErrorCode;
use routerly_api::projects::{
    CreatedToken, ProjectList, ProjectModelList, ProjectModelView, ProjectView, RoutingView,
    TokenList, TokenView,
};
use serde_json::{Value, json};

async fn ok<T: serde::de::DeserializeOwned>(
    harness: &Harness,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    status: StatusCode,
) -> T {
    let answer = harness.call(method, path, Some(token), body).await;
    assert_eq!(answer.status, status, "{path}: {}", answer.text);
    serde_json::from_value(answer.body).expect("the documented answer")
}

fn invalid(field: &str) -> (StatusCode, ErrorCode, Option<String>) {
    (
        StatusCode::BAD_REQUEST,
        ErrorCode::Invalid,
        Some(field.to_owned()),
    )
}

#[tokio::test]
async fn a_project_is_created_listed_changed_and_removed() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let created: ProjectView = ok(
        &harness,
        Method::POST,
        "/api/projects",
        &admin,
        Some(json!({ "name": " Shop Bot ", "timeouts": { "connect_ms": 2000 }, "strict_translation": true })),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (created.name.as_str(), created.slug.as_str()),
        ("Shop Bot", "shop-bot")
    );
    assert_eq!(created.timeouts.connect_ms, Some(2000));
    assert!(created.strict_translation && created.models.is_empty() && created.tokens.is_empty());
    assert!(
        created.routing.types.is_empty(),
        "the policy types are listed by /policies only"
    );

    let list: ProjectList = ok(
        &harness,
        Method::GET,
        "/api/projects",
        &admin,
        None,
        StatusCode::OK,
    )
    .await;
    let slugs: Vec<&str> = list
        .projects
        .iter()
        .map(|project| project.slug.as_str())
        .collect();
    assert_eq!(slugs, ["alpha", "beta", "shop-bot"]);
    // A project member lists only their own projects.
    let editor = harness.token("project-editor").await;
    let theirs: ProjectList = ok(
        &harness,
        Method::GET,
        "/api/projects",
        &editor,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(theirs.projects.len(), 1);
    assert_eq!(theirs.projects[0].slug, "alpha");

    let renamed: ProjectView = ok(
        &harness,
        Method::PATCH,
        "/api/projects/shop-bot",
        &admin,
        Some(json!({ "name": "Shop", "strict_translation": false })),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.slug.as_str(),
            renamed.strict_translation
        ),
        ("Shop", "shop-bot", false)
    );
    let shown: ProjectView = ok(
        &harness,
        Method::GET,
        &format!("/api/projects/{}", created.id),
        &admin,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown, renamed, "by id as by slug");
    // Another project's name is taken; its own is not.
    assert_eq!(
        refused(
            &harness,
            Method::PATCH,
            "/api/projects/shop-bot",
            &admin,
            Some(json!({ "name": "Alpha" }))
        )
        .await,
        (
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            Some("name".to_owned())
        )
    );
    let same = harness
        .call(
            Method::PATCH,
            "/api/projects/shop-bot",
            Some(&admin),
            Some(json!({ "name": "Shop" })),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);

    let gone = harness
        .call(Method::DELETE, "/api/projects/Shop", Some(&admin), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "by name");
    assert_eq!(
        refused(
            &harness,
            Method::GET,
            "/api/projects/shop-bot",
            &admin,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_projects_are_refused_with_the_field_named() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    for (method, path, body, expected) in [
        (
            Method::POST,
            "/api/projects",
            json!({ "name": "  " }),
            invalid("name"),
        ),
        (
            Method::POST,
            "/api/projects",
            json!({ "name": "X", "slug": "Not A Slug" }),
            invalid("slug"),
        ),
        // serde would fill the timeouts from an array of their values in order.
        (
            Method::POST,
            "/api/projects",
            json!({ "name": "X", "timeouts": [null, null] }),
            invalid("timeouts"),
        ),
        (
            Method::POST,
            "/api/projects",
            json!({ "name": "X", "timeouts": { "connect_ms": "soon" } }),
            invalid("timeouts.connect_ms"),
        ),
        (
            Method::POST,
            "/api/projects",
            json!({ "name": "X", "owner": "me" }),
            invalid("owner"),
        ),
        (
            Method::POST,
            "/api/projects",
            json!({ "name": "Alpha" }),
            (StatusCode::CONFLICT, ErrorCode::Conflict, None),
        ),
        (
            Method::PATCH,
            "/api/projects/alpha",
            json!({ "model_order": ["m2"] }),
            invalid("model_order"),
        ),
        (
            Method::PATCH,
            "/api/projects/alpha",
            json!({ "timeouts": [1] }),
            invalid("timeouts"),
        ),
        (
            Method::PATCH,
            "/api/projects/gamma",
            json!({ "name": "G" }),
            (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
        ),
    ] {
        assert_eq!(
            refused(&harness, method.clone(), path, &admin, Some(body.clone())).await,
            expected,
            "{method} {path} {body}"
        );
    }
    let list: ProjectList = ok(
        &harness,
        Method::GET,
        "/api/projects",
        &admin,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list.projects.len(), 2, "nothing was added");
}

#[tokio::test]
async fn project_models_are_added_ordered_changed_and_removed() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let added: ProjectModelList = ok(
        &harness,
        Method::POST,
        "/api/projects/alpha/models",
        &admin,
        Some(json!({ "model_id": "m3", "aliases": ["smart"], "routing_prompt": "hard questions" })),
        StatusCode::CREATED,
    )
    .await;
    let ids: Vec<&str> = added
        .models
        .iter()
        .map(|model| model.model_id.as_str())
        .collect();
    assert_eq!(ids, ["m1", "m3"]);
    let reordered: ProjectView = ok(
        &harness,
        Method::PATCH,
        "/api/projects/alpha",
        &admin,
        Some(json!({ "model_order": ["m3", "m1"] })),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        reordered.models[0].model_id, "m3",
        "the fallback order changed"
    );
    let changed: ProjectModelView = ok(
        &harness,
        Method::PATCH,
        "/api/projects/alpha/models/m3",
        &admin,
        Some(json!({ "routing_prompt": null })),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        changed,
        ProjectModelView {
            model_id: "m3".into(),
            aliases: vec!["smart".into()],
            routing_prompt: None
        }
    );
    for (method, path, body, expected) in [
        (
            Method::POST,
            "/api/projects/alpha/models",
            json!({ "model_id": "nope" }),
            invalid("model_id"),
        ),
        (
            Method::POST,
            "/api/projects/alpha/models",
            json!({ "model_id": "m2", "aliases": ["smart"] }),
            invalid("aliases"),
        ),
        (
            Method::PATCH,
            "/api/projects/alpha/models/m2",
            json!({ "aliases": [] }),
            (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
        ),
    ] {
        assert_eq!(
            refused(&harness, method.clone(), path, &admin, Some(body.clone())).await,
            expected,
            "{method} {path} {body}"
        );
    }
    let removed = harness
        .call(
            Method::DELETE,
            "/api/projects/alpha/models/m3",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let models: ProjectModelList = ok(
        &harness,
        Method::GET,
        "/api/projects/alpha/models",
        &admin,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(models.models.len(), 1);
    assert_eq!(
        refused(
            &harness,
            Method::DELETE,
            "/api/projects/alpha/models/m3",
            &admin,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_token_is_shown_once_listed_without_its_secret_changed_and_revoked() {
    let harness = Harness::start().await;
    let admin = harness.token("project-admin").await;
    let created: CreatedToken = ok(
        &harness,
        Method::POST,
        "/api/projects/alpha/tokens",
        &admin,
        Some(json!({ "labels": ["ci"], "models": ["m1"] })),
        StatusCode::CREATED,
    )
    .await;
    assert!(created.token.starts_with("sk-lr-"));
    assert_eq!(created.project_id, "p-alpha");
    let list = harness
        .call(
            Method::GET,
            "/api/projects/alpha/tokens",
            Some(&admin),
            None,
        )
        .await;
    assert!(
        !list.text.contains(&created.token),
        "the secret is never listed"
    );
    assert!(!list.text.contains("hash"), "nor its hash");
    let list: TokenList = serde_json::from_value(list.body).unwrap();
    assert!(list.tokens.contains(&created.view));
    let changed: TokenView = ok(
        &harness,
        Method::PATCH,
        &format!("/api/projects/alpha/tokens/{}", created.view.id),
        &admin,
        Some(json!({ "labels": [], "expires_at": "2999-01-01T00:00:00Z" })),
        StatusCode::OK,
    )
    .await;
    assert!(changed.labels.is_empty() && changed.expires_at.is_some());
    let cleared: TokenView = ok(
        &harness,
        Method::PATCH,
        &format!("/api/projects/alpha/tokens/{}", created.view.id),
        &admin,
        Some(json!({ "expires_at": null })),
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared.expires_at, None, "null removes the expiry");
    for (method, path, body, expected) in [
        (
            Method::POST,
            "/api/projects/alpha/tokens",
            json!({ "models": ["m2"] }),
            invalid("models"),
        ),
        (
            Method::POST,
            "/api/projects/alpha/tokens",
            json!({ "expires_at": "2000-01-01T00:00:00Z" }),
            invalid("expires_at"),
        ),
        (
            Method::POST,
            "/api/projects/alpha/tokens",
            json!({ "expires_at": "tomorrow" }),
            invalid("expires_at"),
        ),
        (
            Method::PATCH,
            "/api/projects/alpha/tokens/tok_missing",
            json!({ "labels": [] }),
            (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
        ),
    ] {
        assert_eq!(
            refused(&harness, method.clone(), path, &admin, Some(body.clone())).await,
            expected,
            "{method} {path} {body}"
        );
    }
    let revoked = harness
        .call(
            Method::DELETE,
            &format!("/api/projects/alpha/tokens/{}", created.view.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let list: TokenList = ok(
        &harness,
        Method::GET,
        "/api/projects/alpha/tokens",
        &admin,
        None,
        StatusCode::OK,
    )
    .await;
    let token = list
        .tokens
        .iter()
        .find(|token| token.id == created.view.id)
        .unwrap();
    assert!(token.revoked_at.is_some());
    // A project viewer may read tokens but not make one.
    let viewer = harness.token("project-viewer").await;
    assert_eq!(
        refused(
            &harness,
            Method::POST,
            "/api/projects/alpha/tokens",
            &viewer,
            Some(json!({}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn routing_policies_are_replaced_whole_and_checked_by_type() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let shown: RoutingView = ok(
        &harness,
        Method::GET,
        "/api/projects/alpha/policies",
        &admin,
        None,
        StatusCode::OK,
    )
    .await;
    assert!(shown.policies.is_empty());
    assert!(
        shown.types.contains(&"cheapest".to_owned()),
        "{:?}",
        shown.types
    );
    let replaced: RoutingView = ok(
        &harness,
        Method::PUT,
        "/api/projects/alpha/policies",
        &admin,
        Some(json!({ "policies": [{ "type": "cheapest" }, { "type": "health", "enabled": false }], "retries": 2 })),
        StatusCode::OK,
    )
    .await;
    let kinds: Vec<(&str, bool)> = replaced
        .policies
        .iter()
        .map(|policy| (policy.kind.as_str(), policy.enabled))
        .collect();
    assert_eq!(kinds, [("cheapest", true), ("health", false)]);
    assert_eq!(replaced.retries, 2);
    let project: ProjectView = ok(
        &harness,
        Method::GET,
        "/api/projects/alpha",
        &admin,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(project.routing.policies, replaced.policies);
    for (body, expected) in [
        (
            json!({ "policies": [{ "type": "fastest-ever" }] }),
            invalid("policies[0]"),
        ),
        (
            json!({ "policies": [{ "type": "cheapest" }, { "type": "cheapest" }] }),
            invalid("policies"),
        ),
        (json!({ "policies": [], "retries": 11 }), invalid("retries")),
        (
            json!({ "policies": [{ "type": "cheapest", "weight": 2 }] }),
            invalid("policies[0].weight"),
        ),
    ] {
        assert_eq!(
            refused(
                &harness,
                Method::PUT,
                "/api/projects/alpha/policies",
                &admin,
                Some(body.clone())
            )
            .await,
            expected,
            "{body}"
        );
    }
    // Changing routing needs project:write.
    let viewer = harness.token("project-viewer").await;
    assert_eq!(
        refused(
            &harness,
            Method::PUT,
            "/api/projects/alpha/policies",
            &viewer,
            Some(json!({ "policies": [] }))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn names_and_labels_are_bounded_one_line_texts() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let long = "n".repeat(129);
    for (method, path, body, field) in [
        (
            Method::POST,
            "/api/projects",
            json!({ "name": long }),
            "name",
        ),
        (
            Method::POST,
            "/api/projects",
            json!({ "name": "two\nlines" }),
            "name",
        ),
        (
            Method::PATCH,
            "/api/projects/alpha",
            json!({ "name": "tab\there" }),
            "name",
        ),
        (
            Method::PATCH,
            "/api/projects/alpha",
            json!({ "name": long }),
            "name",
        ),
        (
            Method::POST,
            "/api/roles",
            json!({ "id": "long", "name": long, "permissions": [] }),
            "name",
        ),
        (
            Method::POST,
            "/api/api-keys",
            json!({ "name": "bell\u{7}" }),
            "name",
        ),
        (
            Method::POST,
            "/api/projects/alpha/tokens",
            json!({ "labels": vec!["x"; 33] }),
            "labels",
        ),
    ] {
        assert_eq!(
            refused(&harness, method.clone(), path, &admin, Some(body.clone())).await,
            invalid(field),
            "{method} {path} {body}"
        );
    }
    // At the bounds: 128 characters, 32 labels, trimmed, blank ones left out.
    let name = "n".repeat(128);
    let created: ProjectView = ok(
        &harness,
        Method::POST,
        "/api/projects",
        &admin,
        Some(json!({ "name": name })),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created.name.chars().count(), 128);
    let mut labels = vec![" web ".to_owned(), "  ".to_owned()];
    labels.extend((0..30).map(|index| format!("l{index}")));
    let token: CreatedToken = ok(
        &harness,
        Method::POST,
        "/api/projects/alpha/tokens",
        &admin,
        Some(json!({ "labels": labels })),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(token.view.labels.len(), 31);
    assert_eq!(token.view.labels[0], "web");
}
