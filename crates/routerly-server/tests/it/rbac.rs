//! The permission matrix of PRODUCT.md and issue 7, as a table-driven test over every
//! `/api` route with every role, plus cross-project isolation and key masking.
//!
//! The expectations here are written from the matrix, independently of `api::rbac`: each route
//! maps to one matrix row, and each row says which callers may use it.

use crate::management;

use http::{Method, StatusCode};
use management::{ALPHA_TOKEN, BETA_TOKEN, Harness, PROVIDER_KEY};
use routerly_server::api::rbac::{Access, ROUTES};
use serde_json::{Value, json};

/// Rows of the matrix (and a few rows the matrix implies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// Public routes: anyone.
    Public,
    /// Any logged-in caller.
    Anyone,
    /// Read models (keys masked).
    ModelRead,
    /// Write models, read a key in clear.
    ModelWrite,
    /// Read project, its usage and traces (inside project `alpha`).
    ProjectRead,
    /// List projects: anyone who may read some project.
    ProjectList,
    /// Write project (models, policies, limits), tokens (inside project `alpha`).
    ProjectWrite,
    /// Create a project: a global project writer.
    ProjectCreate,
    /// Manage project members (inside project `alpha`).
    Members,
    /// Usage reports: narrowed to what the caller may read, refused to nobody with a role.
    Usage,
    /// Users and roles.
    Users,
    /// Settings, channels, key rotation, audit log.
    Settings,
}

/// Which callers each row allows, in the order of `CALLERS` (admin, operator, viewer,
/// project admin, project editor, project viewer, custom `auditor` = model:read + report:read).
fn allowed(row: Row) -> [bool; 7] {
    const Y: bool = true;
    const N: bool = false;
    match row {
        Row::Public | Row::Anyone | Row::Usage => [Y, Y, Y, Y, Y, Y, Y],
        Row::ModelRead => [Y, Y, Y, Y, Y, Y, Y],
        Row::ModelWrite => [Y, Y, N, N, N, N, N],
        Row::ProjectRead => [Y, Y, Y, Y, Y, Y, N],
        Row::ProjectList => [Y, Y, Y, Y, Y, Y, N],
        Row::ProjectWrite => [Y, Y, N, Y, Y, N, N],
        Row::ProjectCreate => [Y, Y, N, N, N, N, N],
        Row::Members => [Y, Y, N, Y, N, N, N],
        Row::Users => [Y, N, N, N, N, N, N],
        Row::Settings => [Y, N, N, N, N, N, N],
    }
}

const CALLER_NAMES: [&str; 7] = [
    "admin",
    "operator",
    "viewer",
    "project-admin",
    "project-editor",
    "project-viewer",
    "auditor",
];

/// The matrix row of a route; a new route must be added here.
fn row_of(method: &Method, path: &str) -> Row {
    let get = *method == Method::GET;
    match path {
        "/api/openapi.json"
        | "/api/setup/status"
        | "/api/setup/first-admin"
        | "/api/auth/login"
        | "/api/auth/refresh"
        | "/api/auth/logout" => Row::Public,
        "/api/me" | "/api/system" => Row::Anyone,
        "/api/models" | "/api/models/{id}" | "/api/catalogue" | "/api/routing/health" if get => {
            Row::ModelRead
        }
        // A connection test spends the provider key: for who may change the model. (The
        // probe names no model, so no provider is called: 404 once allowed.)
        "/api/models" | "/api/models/{id}" | "/api/models/{id}/key" | "/api/models/{id}/test" => {
            Row::ModelWrite
        }
        "/api/projects" if get => Row::ProjectList,
        "/api/projects" => Row::ProjectCreate,
        "/api/projects/{project}/members" | "/api/projects/{project}/members/{user}" if !get => {
            Row::Members
        }
        path if path.starts_with("/api/projects/{project}") => {
            if get {
                Row::ProjectRead
            } else {
                Row::ProjectWrite
            }
        }
        path if path.starts_with("/api/usage") || path == "/api/traces/{trace_id}" => Row::Usage,
        "/api/limits" | "/api/limits/{id}" | "/api/alerts" if get => Row::Usage,
        "/api/limits" | "/api/limits/{id}" => Row::ProjectWrite,
        path if path.starts_with("/api/users")
            || path.starts_with("/api/roles")
            || path.starts_with("/api/api-keys") =>
        {
            Row::Users
        }
        path if path.starts_with("/api/channels")
            || path.starts_with("/api/settings")
            || path.starts_with("/api/audit")
            || path == "/api/system/rotate-key" =>
        {
            Row::Settings
        }
        other => panic!("route {method} {other} has no row in this test: add it to `row_of`"),
    }
}

/// A concrete request for a route: its path with parameters filled in, and a body that the
/// handler accepts (or refuses for a reason other than permission).
fn probe(method: &Method, template: &str, round: usize) -> (String, Option<Value>) {
    let path = template
        .replace("{project}", "alpha")
        .replace("{model_id}", "m1")
        .replace("{token_id}", "t-alpha")
        .replace("{user}", "victim@example.com")
        .replace("{trace_id}", "trace-1");
    let path = match template {
        "/api/models/{id}" if *method == Method::DELETE => path.replace("{id}", "m3"),
        "/api/models/{id}" | "/api/models/{id}/key" => path.replace("{id}", "m1"),
        "/api/roles/{id}" => path.replace("{id}", "spare"),
        _ => path.replace("{id}", "no-such-id"),
    };
    let body = match (method.as_str(), template) {
        ("GET", _) | ("DELETE", _) => None,
        ("POST", "/api/setup/first-admin") => {
            Some(json!({ "email": "late@example.com", "password": "long enough" }))
        }
        ("POST", "/api/auth/login") => {
            Some(json!({ "email": "nobody@example.com", "password": "wrong password" }))
        }
        ("POST", "/api/auth/refresh") | ("POST", "/api/auth/logout") => {
            Some(json!({ "refresh_token": "rt_unknown" }))
        }
        ("PUT", "/api/me") | ("PATCH", "/api/me") => {
            Some(json!({ "current_password": "not it", "new_password": "whatever long" }))
        }
        ("POST", "/api/models") => Some(json!({
            "id": format!("probe-{round}"), "provider": "openai", "api_key": "sk-probe-key-0123456789",
        })),
        ("PATCH", "/api/models/{id}") => Some(json!({ "context_window": 1000 })),
        ("POST", "/api/projects") => Some(json!({ "name": format!("Probe {round}") })),
        ("PATCH", "/api/projects/{project}") => Some(json!({ "name": "Alpha renamed" })),
        ("POST", "/api/projects/{project}/models") => Some(json!({ "model_id": "m2" })),
        ("PATCH", "/api/projects/{project}/models/{model_id}") => {
            Some(json!({ "routing_prompt": "good at tests" }))
        }
        ("POST", "/api/projects/{project}/tokens") => Some(json!({ "labels": ["probe"] })),
        ("PATCH", "/api/projects/{project}/tokens/{token_id}") => Some(json!({ "labels": ["x"] })),
        ("POST", "/api/projects/{project}/members") => {
            Some(json!({ "email": "viewer@example.com", "role": "viewer" }))
        }
        ("PATCH", "/api/projects/{project}/members/{user}") => Some(json!({ "role": "editor" })),
        ("POST", "/api/users") => Some(json!({
            "email": format!("new-{round}@example.com"), "password": "short",
        })),
        ("PATCH", "/api/users/{user}") => Some(json!({ "role": "viewer" })),
        ("POST", "/api/roles") => Some(json!({
            "id": format!("probe-{round}"), "name": "Probe", "permissions": ["model:read"],
        })),
        ("PATCH", "/api/roles/{id}") => Some(json!({ "name": "Spare renamed" })),
        ("POST", "/api/api-keys") => Some(json!({ "name": "probe", "role": "viewer" })),
        ("PATCH", "/api/settings") | ("PUT", "/api/settings") => {
            Some(json!({ "log_level": "debug" }))
        }
        _ => Some(json!({})),
    };
    (path, body)
}

/// Whether an answer means "this route is not served (yet)".
fn not_served(status: StatusCode, body: &Value) -> bool {
    (status == StatusCode::NOT_FOUND
        && body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("no API route")))
        || status == StatusCode::METHOD_NOT_ALLOWED
}

#[tokio::test]
async fn every_route_allows_exactly_the_roles_of_the_matrix() {
    let harness = Harness::start().await;
    let mut baseline = harness.app.store.snapshot().to_draft();
    let mut checked = 0;
    let mut not_yet_served = Vec::new();
    for (round, route) in ROUTES.iter().enumerate() {
        let row = row_of(&route.method, route.path);
        assert_eq!(
            row == Row::Public,
            route.access == Access::Public,
            "{} {}: public in the table iff public in the matrix",
            route.method,
            route.path
        );
        let (path, body) = probe(&route.method, route.path, round);
        if row != Row::Public {
            let answer = harness
                .call(route.method.clone(), &path, None, body.clone())
                .await;
            if not_served(answer.status, &answer.body) {
                not_yet_served.push(format!("{} {}", route.method, route.path));
                continue;
            }
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{} {path} without credentials: {}",
                route.method,
                answer.text
            );
        }
        for (index, caller) in CALLER_NAMES.iter().enumerate() {
            let token = harness.token(caller).await;
            let answer = harness
                .call(route.method.clone(), &path, Some(&token), body.clone())
                .await;
            if not_served(answer.status, &answer.body) {
                not_yet_served.push(format!("{} {}", route.method, route.path));
                break;
            }
            let expected = allowed(row)[index];
            if row == Row::Public {
                // Public handlers answer for themselves (a wrong password is a 401).
                assert!(
                    answer.status != StatusCode::FORBIDDEN && answer.status.as_u16() < 500,
                    "{caller}: {} {path}: {}",
                    route.method,
                    answer.text
                );
            } else if expected {
                assert!(
                    answer.status != StatusCode::FORBIDDEN
                        && answer.status != StatusCode::UNAUTHORIZED
                        && answer.status.as_u16() < 500,
                    "{caller} must be allowed {} {path} (row {row:?}), got {}: {}",
                    route.method,
                    answer.status,
                    answer.text
                );
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{caller} must be refused {} {path} (row {row:?}): {}",
                    route.method,
                    answer.text
                );
            }
            checked += 1;
            if route.path == "/api/system/rotate-key" {
                // Only the ciphertexts changed; they are the new baseline.
                baseline = harness.app.store.snapshot().to_draft();
            } else if route.method != Method::GET {
                let baseline = baseline.clone();
                harness
                    .app
                    .store
                    .update(move |draft| {
                        *draft = baseline;
                        Ok::<_, std::convert::Infallible>(())
                    })
                    .await
                    .expect("restore the configuration");
            }
        }
    }
    eprintln!(
        "checked {checked} route × role pairs; not served yet: {}",
        not_yet_served.join(", ")
    );
    assert!(checked > 300, "only {checked} pairs were checked");
}

#[tokio::test]
async fn a_member_of_one_project_cannot_reach_another() {
    let harness = Harness::start().await;
    let token = harness.token("project-admin").await;
    for path in [
        "/api/projects/beta",
        "/api/projects/p-beta",
        "/api/projects/beta/tokens",
        "/api/projects/beta/members",
        "/api/projects/beta/models",
        "/api/usage?project=beta",
        "/api/usage/summary?project=p-beta",
        "/api/usage/export?project=beta",
        "/api/usage/export?project=beta&format=jsonl",
        "/api/usage/by-project?project=beta",
        "/api/usage/by-token?project=beta",
    ] {
        let answer = harness.call(Method::GET, path, Some(&token), None).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.text
        );
    }
    let answer = harness
        .call(
            Method::POST,
            "/api/projects/beta/tokens",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);

    let projects = harness
        .call(Method::GET, "/api/projects", Some(&token), None)
        .await;
    let slugs: Vec<&str> = projects.body["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(|project| project["slug"].as_str())
        .collect();
    assert_eq!(slugs, vec!["alpha"]);

    let usage = harness
        .call(Method::GET, "/api/usage", Some(&token), None)
        .await;
    assert_eq!(
        usage.body["total"], 2,
        "only alpha's records: {}",
        usage.text
    );
    for path in [
        "/api/usage/summary",
        "/api/usage/by-model",
        "/api/usage/by-user",
        "/api/usage/timeline",
        "/api/usage/export",
        "/api/usage/export?format=jsonl",
        "/api/usage/by-project",
        "/api/usage/by-token",
        "/api/usage?trace=t",
    ] {
        let answer = harness.call(Method::GET, path, Some(&token), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert!(
            !answer.text.contains("p-beta")
                && !answer.text.contains("secret-beta-tag")
                && !answer.text.contains("carol"),
            "{path} leaks beta's usage: {}",
            answer.text
        );
    }
    let summary = harness
        .call(Method::GET, "/api/usage/summary", Some(&token), None)
        .await;
    assert_eq!(summary.body["calls"], 2);
    assert!((summary.body["cost_usd"].as_f64().expect("cost") - 0.75).abs() < 1e-9);

    // A global viewer sees every project's usage; the custom report:read role too.
    for caller in ["viewer", "auditor"] {
        let token = harness.token(caller).await;
        let usage = harness
            .call(Method::GET, "/api/usage", Some(&token), None)
            .await;
        assert_eq!(usage.body["total"], 3, "{caller}: {}", usage.text);
    }
    // Nothing about tokens is ever shown in clear.
    let admin = harness.token("admin").await;
    for path in [
        "/api/projects",
        "/api/projects/alpha",
        "/api/projects/alpha/tokens",
    ] {
        let answer = harness.call(Method::GET, path, Some(&admin), None).await;
        assert!(!answer.text.contains(ALPHA_TOKEN) && !answer.text.contains(BETA_TOKEN));
        assert!(
            !answer.text.contains("\"hash\""),
            "{path} shows token hashes"
        );
    }
}

#[tokio::test]
async fn only_a_model_writer_ever_sees_a_provider_key_in_clear() {
    let harness = Harness::start().await;
    for caller in [
        "viewer",
        "project-viewer",
        "project-admin",
        "auditor",
        "operator",
        "admin",
    ] {
        let token = harness.token(caller).await;
        for path in ["/api/models", "/api/models/m1"] {
            let answer = harness.call(Method::GET, path, Some(&token), None).await;
            assert_eq!(answer.status, StatusCode::OK, "{caller} {path}");
            assert!(
                !answer.text.contains(PROVIDER_KEY),
                "{caller} sees the key at {path}"
            );
            assert!(
                answer.text.contains("sk-…6789"),
                "{caller} sees the mask: {}",
                answer.text
            );
        }
        let revealed = harness
            .call(Method::GET, "/api/models/m1/key", Some(&token), None)
            .await;
        if ["operator", "admin"].contains(&caller) {
            assert_eq!(revealed.body["api_key"], PROVIDER_KEY, "{caller}");
        } else {
            assert_eq!(revealed.status, StatusCode::FORBIDDEN, "{caller}");
            assert!(!revealed.text.contains(PROVIDER_KEY));
        }
    }
}

#[tokio::test]
async fn custom_roles_grant_exactly_their_permissions() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let created = harness
        .call(
            Method::POST,
            "/api/roles",
            Some(&admin),
            Some(json!({ "id": "modeler", "name": "Modeler", "permissions": ["model:read", "model:write"] })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let bad = harness
        .call(
            Method::POST,
            "/api/roles",
            Some(&admin),
            Some(json!({ "id": "bad", "name": "Bad", "permissions": ["model:fly"] })),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["field"], "permissions");
    let user = harness
        .call(
            Method::PATCH,
            "/api/users/auditor@example.com",
            Some(&admin),
            Some(json!({ "role": "modeler" })),
        )
        .await;
    assert_eq!(user.status, StatusCode::OK, "{}", user.text);
    let token = harness.token("auditor").await;
    let model = harness
        .call(
            Method::POST,
            "/api/models",
            Some(&token),
            Some(json!({ "id": "new", "provider": "openai" })),
        )
        .await;
    assert_eq!(model.status, StatusCode::CREATED, "{}", model.text);
    let usage = harness
        .call(Method::GET, "/api/usage", Some(&token), None)
        .await;
    assert_eq!(
        usage.status,
        StatusCode::FORBIDDEN,
        "report:read was taken away"
    );
    let in_use = harness
        .call(Method::DELETE, "/api/roles/modeler", Some(&admin), None)
        .await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{}", in_use.text);
}
