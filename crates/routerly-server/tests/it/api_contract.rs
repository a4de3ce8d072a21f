//! The management API's contract has one source, the types of `routerly-api`: the OpenAPI
//! document (`docs/openapi.json`) and the dashboard's TypeScript types
//! (`dashboard/src/api-types.ts`) are generated from them and committed. These tests fail
//! when either file is not what the types generate now (a field renamed on one side only);
//! `UPDATE_EXPECT=1 cargo test -p routerly-server --test it api_contract` rewrites them.

use crate::management;

use http::{Method, StatusCode};
use management::Harness;
use routerly_server::api::rbac::ROUTES;
use serde_json::Value;

#[test]
fn the_committed_openapi_document_is_generated_from_the_types() {
    expect_test::expect_file!["../../../../docs/openapi.json"]
        .assert_eq(&routerly_server::api::openapi::document_json());
}

#[test]
fn the_dashboards_typescript_types_are_generated_from_the_types() {
    expect_test::expect_file!["../../../../dashboard/src/api-types.ts"]
        .assert_eq(&routerly_api::typescript());
}

/// Routes whose handlers still build untyped views, and so are not yet in the document.
const NOT_YET_DOCUMENTED: &[&str] = &[];

#[test]
fn every_route_is_in_the_document_with_its_method() {
    let document: Value =
        serde_json::from_str(&routerly_server::api::openapi::document_json()).unwrap();
    let mut missing = Vec::new();
    for route in ROUTES {
        let method = route.method.as_str().to_ascii_lowercase();
        let documented = document["paths"][route.path][&method].is_object();
        let waived = NOT_YET_DOCUMENTED
            .iter()
            .any(|prefix| route.path.starts_with(prefix));
        if !documented && !waived {
            missing.push(format!("{} {}", route.method, route.path));
        }
    }
    assert!(
        missing.is_empty(),
        "not in the OpenAPI document: {missing:#?}"
    );
    // And nothing is documented that the router does not declare.
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            assert!(
                ROUTES
                    .iter()
                    .any(|route| route.path == path && route.method == method),
                "{method} {path} is documented but not routed"
            );
        }
    }
}

#[test]
fn every_operation_has_its_own_operation_id() {
    // Tools key operations by id: two methods sharing one were seen as one operation
    // (schemathesis tested `PUT /api/me` and skipped `PATCH`).
    let document: Value =
        serde_json::from_str(&routerly_server::api::openapi::document_json()).unwrap();
    let mut seen = std::collections::HashMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            // utoipa falls back on the handler's name, which says nothing outside its
            // module (`list`, `create`): every operation names its id.
            const HANDLER_NAMES: &[&str] = &[
                "list", "show", "create", "update", "remove", "delete", "get", "test", "info",
            ];
            assert!(
                !HANDLER_NAMES.contains(&id),
                "{method} {path} has the bare handler name `{id}` as operationId: \
                 give #[utoipa::path] an explicit operation_id"
            );
            if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("{method} {path} and {other} share the operationId {id}");
            }
        }
    }
}

#[tokio::test]
async fn the_document_is_served_to_anyone() {
    let harness = Harness::start().await;
    let answer = harness
        .call(Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["openapi"], "3.1.0");
    assert_eq!(
        answer.body,
        serde_json::from_str::<Value>(&routerly_server::api::openapi::document_json()).unwrap()
    );
}

#[tokio::test]
async fn me_answers_the_callers_effective_permissions_in_each_project() {
    let harness = Harness::start().await;
    let token = harness.token("project-editor").await;
    let answer = harness
        .call(Method::GET, "/api/me", Some(&token), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let me: routerly_api::auth::Me = serde_json::from_value(answer.body).unwrap();
    assert_eq!(me.role, "none");
    // Every project member may read the model catalogue; nothing else is global.
    assert_eq!(me.permissions, ["model:read"]);
    assert_eq!(me.via, routerly_api::auth::Via::Session);
    let [alpha] = me.projects.as_slice() else {
        panic!("one membership: {:?}", me.projects)
    };
    assert_eq!(
        (alpha.slug.as_str(), alpha.role.as_str()),
        ("alpha", "editor")
    );
    assert_eq!(
        alpha.permissions,
        ["model:read", "project:read", "project:write"]
    );

    // A global viewer who is a project viewer holds the union of both there.
    let token = harness.token("victim").await;
    let answer = harness
        .call(Method::GET, "/api/me", Some(&token), None)
        .await;
    let me: routerly_api::auth::Me = serde_json::from_value(answer.body).unwrap();
    assert_eq!(
        me.permissions,
        ["model:read", "project:read", "report:read"]
    );
    assert_eq!(
        me.projects[0].permissions,
        ["model:read", "project:read", "report:read"]
    );

    // Without credentials: 401 in the API's error shape.
    let answer = harness.call(Method::GET, "/api/me", None, None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let error: routerly_api::ErrorBody = serde_json::from_value(answer.body).unwrap();
    assert_eq!(error.error.code, routerly_api::ErrorCode::Unauthenticated);
}
