//! The escalation matrix of issue 13: for every built-in role, project role and a set of
//! custom permission sets, every way to gain a permission through the API (admin API keys,
//! global roles, custom roles, project members, limits that lift a level, `env:` references,
//! endpoint changes) is refused unless the caller holds what it would gain, and allowed when
//! it does.
//!
//! The expectations come from the table of what each caller holds, written here from
//! PRODUCT.md, independently of `api::grants`.

use crate::management;

use std::collections::BTreeSet;

use http::{Method, StatusCode};
use management::{Harness, email};
use routerly_core::config::{CustomRole, ProjectMember, User};
use serde_json::json;

const ALL: &[&str] = &[
    "model:read",
    "model:write",
    "project:read",
    "project:write",
    "project:members",
    "user:read",
    "user:write",
    "report:read",
    "settings:write",
];

/// Custom roles the matrix adds to the harness's callers: (role id, its permissions).
const CUSTOM_ROLES: &[(&str, &[&str])] = &[
    ("user-writer", &["user:read", "user:write"]),
    ("member-manager", &["project:read", "project:members"]),
    ("model-writer", &["model:read", "model:write"]),
    (
        "limit-setter",
        &[
            "model:read",
            "project:read",
            "project:write",
            "settings:write",
        ],
    ),
    ("full-custom", ALL),
];

/// A caller: name, global permissions (their role's, plus `model:read` for a project
/// member), and their role in project `alpha`.
struct Caller {
    name: &'static str,
    global: BTreeSet<&'static str>,
    alpha: Option<&'static str>,
}

fn set(permissions: &[&'static str]) -> BTreeSet<&'static str> {
    permissions.iter().copied().collect()
}

fn role_permissions(role: &str) -> BTreeSet<&'static str> {
    match role {
        "admin" => set(ALL),
        "operator" => set(&[
            "model:read",
            "model:write",
            "project:read",
            "project:write",
            "project:members",
            "report:read",
        ]),
        "viewer" => set(&["model:read", "project:read", "report:read"]),
        "none" => set(&[]),
        "auditor" => set(&["model:read", "report:read"]),
        "spare" => set(&["model:read"]),
        custom => CUSTOM_ROLES
            .iter()
            .find(|(id, _)| *id == custom)
            .map(|(_, permissions)| set(permissions))
            .expect("a role of the matrix"),
    }
}

fn project_role_permissions(role: &str) -> BTreeSet<&'static str> {
    match role {
        "viewer" => set(&["model:read", "project:read"]),
        "editor" => set(&["model:read", "project:read", "project:write"]),
        "admin" => set(&[
            "model:read",
            "project:read",
            "project:write",
            "project:members",
        ]),
        other => panic!("no project role {other}"),
    }
}

fn callers() -> Vec<Caller> {
    let mut callers: Vec<Caller> = [
        ("admin", "admin", None),
        ("operator", "operator", None),
        ("viewer", "viewer", None),
        ("project-admin", "none", Some("admin")),
        ("project-editor", "none", Some("editor")),
        ("project-viewer", "none", Some("viewer")),
        ("auditor", "auditor", None),
    ]
    .into_iter()
    .map(|(name, role, alpha)| {
        let mut global = role_permissions(role);
        if alpha.is_some() {
            global.insert("model:read");
        }
        Caller {
            name,
            global,
            alpha,
        }
    })
    .collect();
    for (role, permissions) in CUSTOM_ROLES {
        callers.push(Caller {
            name: role,
            global: set(permissions),
            alpha: None,
        });
    }
    callers
}

impl Caller {
    fn in_alpha(&self) -> BTreeSet<&'static str> {
        let mut held = self.global.clone();
        if let Some(role) = self.alpha {
            held.extend(project_role_permissions(role));
        }
        held
    }

    fn holds(&self, wanted: &BTreeSet<&'static str>) -> bool {
        wanted.is_subset(&self.global)
    }

    fn can(&self, permission: &str) -> bool {
        self.global.contains(permission)
    }

    fn is_admin(&self) -> bool {
        self.global.len() == ALL.len()
    }
}

/// The harness with the custom roles, a user per custom role, and for every caller a
/// target user (global viewer, viewer of `alpha`) to try to promote or take over.
async fn start() -> Harness {
    let harness = Harness::start().await;
    let password_hash =
        routerly_server::api::auth::hash_password(management::PASSWORD).expect("hash");
    let names: Vec<&str> = callers().iter().map(|caller| caller.name).collect();
    harness
        .app
        .store
        .update(move |draft| {
            for (role, permissions) in CUSTOM_ROLES {
                draft.roles.roles.push(CustomRole {
                    id: (*role).to_owned(),
                    name: (*role).to_owned(),
                    permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
                });
                draft.users.users.push(User {
                    id: format!("u-{role}"),
                    email: email(role),
                    password_hash: password_hash.clone(),
                    role: (*role).to_owned(),
                    created_at: chrono::Utc::now(),
                });
            }
            for name in names {
                draft.users.users.push(User {
                    id: format!("u-joiner-{name}"),
                    email: email(&format!("joiner-{name}")),
                    password_hash: password_hash.clone(),
                    role: "none".to_owned(),
                    created_at: chrono::Utc::now(),
                });
                let id = format!("u-target-{name}");
                draft.users.users.push(User {
                    id: id.clone(),
                    email: email(&format!("target-{name}")),
                    password_hash: password_hash.clone(),
                    role: "viewer".to_owned(),
                    created_at: chrono::Utc::now(),
                });
                draft.projects.projects[0].members.push(ProjectMember {
                    user_id: id,
                    role: "viewer".to_owned(),
                });
            }
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .expect("matrix fixture");
    harness
}

fn expect(allowed: bool, status: StatusCode, what: &str, body: &str) {
    if allowed {
        assert!(
            status.is_success(),
            "{what}: expected success, got {status}: {body}"
        );
    } else {
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{what}: expected 403: {body}"
        );
    }
}

#[tokio::test]
async fn api_keys_and_global_roles_are_granted_only_by_holders() {
    let harness = start().await;
    let roles = [
        "admin",
        "operator",
        "viewer",
        "none",
        "spare",
        "user-writer",
    ];
    for caller in callers() {
        let token = harness.token(caller.name).await;
        for role in roles {
            let wanted = role_permissions(role);
            let allowed = caller.can("user:write") && caller.holds(&wanted);

            let answer = harness
                .call(
                    Method::POST,
                    "/api/api-keys",
                    Some(&token),
                    Some(json!({ "name": format!("{}-{role}", caller.name), "role": role })),
                )
                .await;
            let what = format!("{} creates an API key with role {role}", caller.name);
            expect(allowed, answer.status, &what, &answer.text);
            if allowed {
                let key = answer.body["key"].as_str().expect("the key").to_owned();
                let me = harness.call(Method::GET, "/api/me", Some(&key), None).await;
                let granted: BTreeSet<&str> = me.body["permissions"]
                    .as_array()
                    .expect("permissions")
                    .iter()
                    .filter_map(|p| p.as_str())
                    .collect();
                assert!(
                    granted.iter().all(|p| caller.global.contains(p)),
                    "{what}: the key holds {granted:?}, more than {:?}",
                    caller.global
                );
            }

            let answer = harness
                .call(
                    Method::PATCH,
                    &format!("/api/users/u-target-{}", caller.name),
                    Some(&token),
                    Some(json!({ "role": role })),
                )
                .await;
            let what = format!("{} sets a user's role to {role}", caller.name);
            // Changing the target needs what the target holds (viewer, and viewer of alpha;
            // the admin puts it back after each round).
            // Setting the role it already has changes nothing, so it grants nothing.
            let allowed_patch = caller.can("user:write")
                && (role == "viewer"
                    || (caller.holds(&wanted)
                        && caller.holds(&role_permissions("viewer"))
                        && project_role_permissions("viewer").is_subset(&caller.in_alpha())));
            expect(allowed_patch, answer.status, &what, &answer.text);
            // Put the target back to viewer (as the admin) for the next round.
            let admin = harness.token("admin").await;
            let reset = harness
                .call(
                    Method::PATCH,
                    &format!("/api/users/u-target-{}", caller.name),
                    Some(&admin),
                    Some(json!({ "role": "viewer" })),
                )
                .await;
            assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
        }
    }
}

#[tokio::test]
async fn nobody_takes_over_an_account_that_holds_more() {
    let harness = start().await;
    for caller in callers() {
        for target in ["admin", "operator", "project-admin", "auditor"] {
            // A new token each time: a password change ends the target's sessions.
            let token = harness.token(caller.name).await;
            let target_holds = {
                let found = callers().into_iter().find(|c| c.name == target).expect("t");
                let global_ok = found.global.iter().all(|p| caller.global.contains(p));
                let alpha_ok = found.alpha.is_none_or(|role| {
                    project_role_permissions(role).is_subset(&caller.in_alpha())
                });
                global_ok && alpha_ok
            };
            let allowed = caller.can("user:write") && target_holds;
            let answer = harness
                .call(
                    Method::PATCH,
                    &format!("/api/users/{}", email(target)),
                    Some(&token),
                    Some(json!({ "password": format!("new password of {target}") })),
                )
                .await;
            expect(
                allowed,
                answer.status,
                &format!("{} sets {target}'s password", caller.name),
                &answer.text,
            );
        }
    }
}

#[tokio::test]
async fn custom_roles_are_defined_only_with_permissions_held() {
    let harness = start().await;
    let sets: [&[&str]; 4] = [
        &["model:read"],
        &["user:read", "user:write"],
        &["settings:write"],
        ALL,
    ];
    for caller in callers() {
        let token = harness.token(caller.name).await;
        for (index, permissions) in sets.iter().enumerate() {
            let wanted = set(permissions);
            let allowed = caller.can("user:write") && caller.holds(&wanted);
            let id = format!("r-{}-{index}", caller.name);
            let answer = harness
                .call(
                    Method::POST,
                    "/api/roles",
                    Some(&token),
                    Some(json!({ "id": id, "name": id, "permissions": permissions })),
                )
                .await;
            expect(
                allowed,
                answer.status,
                &format!("{} defines a role with {permissions:?}", caller.name),
                &answer.text,
            );
            // Widening the harmless `spare` role (model:read) is granting too; changing a role
            // needs what it grants before and after.
            let mut before_and_after = wanted.clone();
            before_and_after.insert("model:read");
            let allowed_widening = caller.can("user:write")
                && (wanted == set(&["model:read"]) || caller.holds(&before_and_after));
            let answer = harness
                .call(
                    Method::PATCH,
                    "/api/roles/spare",
                    Some(&token),
                    Some(json!({ "permissions": permissions })),
                )
                .await;
            expect(
                allowed_widening,
                answer.status,
                &format!("{} widens role spare to {permissions:?}", caller.name),
                &answer.text,
            );
            let admin = harness.token("admin").await;
            let reset = harness
                .call(
                    Method::PATCH,
                    "/api/roles/spare",
                    Some(&admin),
                    Some(json!({ "permissions": ["model:read"] })),
                )
                .await;
            assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
        }
    }
}

#[tokio::test]
async fn members_are_added_only_with_the_role_held_in_the_project() {
    let harness = start().await;
    for caller in callers() {
        let token = harness.token(caller.name).await;
        for role in ["viewer", "editor", "admin"] {
            let mut wanted = project_role_permissions(role);
            wanted.insert("project:members");
            let allowed = wanted.is_subset(&caller.in_alpha());
            let answer = harness
                .call(
                    Method::POST,
                    "/api/projects/alpha/members",
                    Some(&token),
                    Some(
                        json!({ "email": email(&format!("joiner-{}", caller.name)), "role": role }),
                    ),
                )
                .await;
            let what = format!("{} makes someone {role} of alpha", caller.name);
            if caller.in_alpha().contains("project:members") {
                expect(allowed, answer.status, &what, &answer.text);
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{what}: {}",
                    answer.text
                );
            }
            // Through user creation, which needs only `user:write` at the route.
            let answer = harness
                .call(
                    Method::POST,
                    "/api/users",
                    Some(&token),
                    Some(json!({
                        "email": format!("new-{}-{role}@example.com", caller.name),
                        "password": "long enough password",
                        "role": "none",
                        "projects": [format!("alpha:{role}")],
                    })),
                )
                .await;
            expect(
                caller.can("user:write") && allowed,
                answer.status,
                &format!("{} creates a user who is {role} of alpha", caller.name),
                &answer.text,
            );
            let admin = harness.token("admin").await;
            harness
                .call(
                    Method::DELETE,
                    &format!(
                        "/api/projects/alpha/members/{}",
                        email(&format!("joiner-{}", caller.name))
                    ),
                    Some(&admin),
                    None,
                )
                .await;
        }
    }
}

#[tokio::test]
async fn limits_that_lift_a_level_need_that_levels_permission() {
    let harness = start().await;
    let admin = harness.token("admin").await;
    for (id, scope) in [("g-cost", "global"), ("m-cost", "model:m1")] {
        let answer = harness
            .call(
                Method::POST,
                "/api/limits",
                Some(&admin),
                Some(json!({ "id": id, "scope": scope, "metric": "cost", "period": "daily", "value": 1.0 })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    for caller in callers() {
        let token = harness.token(caller.name).await;
        let alpha_write = caller.in_alpha().contains("project:write");
        let cases: [(&str, &str, f64, bool); 4] = [
            // (scope, mode, value, allowed)
            ("project:alpha", "extend", 0.5, alpha_write),
            (
                "project:alpha",
                "disable",
                0.0,
                alpha_write && caller.can("model:write") && caller.can("settings:write"),
            ),
            (
                "project:alpha",
                "replace",
                100.0,
                alpha_write && caller.can("model:write") && caller.can("settings:write"),
            ),
            (
                "model:m1",
                "replace",
                100.0,
                caller.can("model:write") && caller.can("settings:write"),
            ),
        ];
        for (index, (scope, mode, value, allowed)) in cases.into_iter().enumerate() {
            let id = format!("l-{}-{index}", caller.name);
            let answer = harness
                .call(
                    Method::POST,
                    "/api/limits",
                    Some(&token),
                    Some(json!({ "id": id, "scope": scope, "metric": "cost", "period": "daily", "value": value, "mode": mode })),
                )
                .await;
            let what = format!("{} adds a {mode} cost limit on {scope}", caller.name);
            expect(allowed, answer.status, &what, &answer.text);
            if allowed {
                harness
                    .call(
                        Method::DELETE,
                        &format!("/api/limits/{id}"),
                        Some(&admin),
                        None,
                    )
                    .await;
            }
        }
    }
    // Turning an `extend` limit into `disable` later is lifting too.
    let editor = harness.token("project-editor").await;
    let answer = harness
        .call(
            Method::POST,
            "/api/limits",
            Some(&editor),
            Some(json!({ "id": "p-own", "scope": "project:alpha", "metric": "cost", "period": "daily", "value": 0.5 })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let answer = harness
        .call(
            Method::PATCH,
            "/api/limits/p-own",
            Some(&editor),
            Some(json!({ "mode": "disable" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    assert!(
        answer.text.contains("g-cost") || answer.text.contains("m-cost"),
        "{}",
        answer.text
    );
    // A token limit that disables the project's own limit lifts only what the editor writes.
    let answer = harness
        .call(
            Method::POST,
            "/api/limits",
            Some(&editor),
            Some(json!({ "id": "t-off", "scope": "token:t-alpha", "metric": "cost", "period": "daily", "value": 0, "mode": "disable" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    // ...but once the project limit that stood between is removed, it would lift the global
    // one: the removal is refused.
    let answer = harness
        .call(Method::DELETE, "/api/limits/p-own", Some(&editor), None)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    // Nor may the editor touch the admin's limits.
    for method in [Method::PATCH, Method::DELETE] {
        let answer = harness
            .call(
                method.clone(),
                "/api/limits/g-cost",
                Some(&editor),
                (method == Method::PATCH).then(|| json!({ "value": 1000 })),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{method}: {}",
            answer.text
        );
    }
}

/// The variable the `env:` cases read: one that is always set (tests cannot set variables:
/// the workspace forbids `unsafe`), added to the allow-list by the admin first.
const ENV_NAME: &str = "PATH";

#[tokio::test]
async fn env_references_are_admin_only_allow_listed_and_never_revealed() {
    let env_value = std::env::var(ENV_NAME).expect("PATH is set");
    let harness = start().await;
    let admin = harness.token("admin").await;
    let allow = json!({ "env_allow_list": ["*_API_KEY", ENV_NAME] });
    let answer = harness
        .call(
            Method::PATCH,
            "/api/settings",
            Some(&admin),
            Some(allow.clone()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    for caller in callers() {
        let token = harness.token(caller.name).await;
        let answer = harness
            .call(
                Method::POST,
                "/api/models",
                Some(&token),
                Some(json!({
                    "id": format!("env-{}", caller.name), "provider": "custom",
                    "endpoint": "http://127.0.0.1:9/v1", "api_key": format!("env:{ENV_NAME}"),
                })),
            )
            .await;
        expect(
            caller.is_admin(),
            answer.status,
            &format!("{} registers a model keyed by env:{ENV_NAME}", caller.name),
            &answer.text,
        );
        // The service's own variables and names off the allow-list are refused to everyone.
        for name in ["ROUTERLY_SECRET_KEY", "ROUTERLY_ADMIN_PASSWORD", "HOME"] {
            let answer = harness
                .call(
                    Method::POST,
                    "/api/models",
                    Some(&token),
                    Some(json!({
                        "id": format!("bad-{}", caller.name), "provider": "custom",
                        "endpoint": "http://127.0.0.1:9/v1", "api_key": format!("env:{name}"),
                    })),
                )
                .await;
            assert!(
                answer.status == StatusCode::FORBIDDEN || answer.status == StatusCode::BAD_REQUEST,
                "{} with env:{name}: {} {}",
                caller.name,
                answer.status,
                answer.text
            );
            if caller.is_admin() {
                assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
                assert_eq!(answer.body["error"]["field"], "api_key", "{}", answer.text);
            }
        }
        // Widening the allow-list is admin-only.
        let answer = harness
            .call(
                Method::PATCH,
                "/api/settings",
                Some(&token),
                Some(json!({ "env_allow_list": ["*_API_KEY", ENV_NAME, "HOME"] })),
            )
            .await;
        expect(
            caller.is_admin(),
            answer.status,
            &format!("{} widens env_allow_list", caller.name),
            &answer.text,
        );
        if caller.is_admin() {
            let reset = harness
                .call(
                    Method::PATCH,
                    "/api/settings",
                    Some(&token),
                    Some(allow.clone()),
                )
                .await;
            assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
        }
    }
    // `*` alone is refused even from the admin; ROUTERLY_* stays closed whatever the list.
    let answer = harness
        .call(
            Method::PATCH,
            "/api/settings",
            Some(&admin),
            Some(json!({ "env_allow_list": ["*"] })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(
        answer.body["error"]["field"], "env_allow_list",
        "{}",
        answer.text
    );

    // The key of an env model is shown as the reference, to everyone who may see keys.
    let answer = harness
        .call(Method::GET, "/api/models/env-admin/key", Some(&admin), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["api_key"], format!("env:{ENV_NAME}"));
    assert!(!answer.text.contains(&env_value), "{}", answer.text);
    for path in ["/api/models", "/api/models/env-admin", "/api/audit"] {
        let answer = harness.call(Method::GET, path, Some(&admin), None).await;
        assert!(!answer.text.contains(&env_value), "{path}: {}", answer.text);
    }

    // Pointing that model elsewhere would send the value there: admin only, unless the key
    // is replaced in the same change.
    for caller in callers() {
        let token = harness.token(caller.name).await;
        let answer = harness
            .call(
                Method::PATCH,
                "/api/models/env-admin",
                Some(&token),
                Some(json!({ "endpoint": format!("http://127.0.0.1:{}/v1", 10 + caller.name.len()) })),
            )
            .await;
        let what = format!("{} moves the endpoint of an env-keyed model", caller.name);
        if caller.can("model:write") {
            expect(caller.is_admin(), answer.status, &what, &answer.text);
        } else {
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{what}: {}",
                answer.text
            );
        }
    }
    let operator = harness.token("operator").await;
    let answer = harness
        .call(
            Method::PATCH,
            "/api/models/env-admin",
            Some(&operator),
            Some(json!({ "endpoint": "http://127.0.0.1:7/v1", "api_key": "sk-typed-by-the-operator" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // A channel whose secret is read from the environment is admin-only too.
    let limit_setter = harness.token("limit-setter").await;
    let answer = harness
        .call(
            Method::POST,
            "/api/channels",
            Some(&limit_setter),
            Some(json!({ "type": "webhook", "url": "https://example.com/hook", "secret": format!("env:{ENV_NAME}") })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
}

#[tokio::test]
async fn an_access_token_works_only_with_its_own_users_live_session() {
    let harness = start().await;
    let victim_token = harness.token("victim").await;
    let victim_claims = harness
        .app
        .session_keys
        .verify_access_token(&victim_token)
        .expect("valid token");
    // A token for the admin that names the victim's live session is refused.
    let admin = harness
        .app
        .store
        .snapshot()
        .user_by_email(&email("admin"))
        .cloned()
        .expect("admin");
    let now = chrono::Utc::now().timestamp();
    let borrowed =
        harness
            .app
            .session_keys
            .issue_access_token(&routerly_server::api::auth::AccessClaims {
                sub: admin.id.clone(),
                email: admin.email.clone(),
                role: "admin".to_owned(),
                sid: victim_claims.sid.clone(),
                iat: now,
                exp: now + 600,
            });
    let answer = harness
        .call(Method::GET, "/api/users", Some(&borrowed), None)
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    // A token signed with a key derived from the master key (the old scheme) is forged.
    let derived = harness.app.store.master_key().derive("session-signing");
    let forger = routerly_server::api::auth::SessionKeys::new(derived);
    let admin_token = harness.token("admin").await;
    let admin_claims = harness
        .app
        .session_keys
        .verify_access_token(&admin_token)
        .expect("valid");
    let forged = forger.issue_access_token(&admin_claims);
    let answer = harness
        .call(Method::GET, "/api/users", Some(&forged), None)
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    let answer = harness
        .call(Method::GET, "/api/users", Some(&admin_token), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // The signing key file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(harness.app.home.session_key_path())
        .expect("session key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// The invariant behind the matrix: the API's handlers change the configuration only
/// through `api::grants::update`, so no route can grant without the check. (`setup.rs`
/// creates the first admin before anyone holds anything.)
#[test]
fn api_handlers_change_the_configuration_only_through_grants_update() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/api") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".rs") || name == "grants.rs" || name == "setup.rs" {
            continue;
        }
        let text: String = std::fs::read_to_string(&path)
            .expect("source")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if text.contains("store.update(") || text.contains(".update_config(") {
            offenders.push(name);
        }
    }
    assert!(
        offenders.is_empty(),
        "these API modules change the configuration without api::grants::update: {offenders:?}"
    );
}

/// The dashboard hides what a caller may not do from `GET /api/me`: each project lists the
/// caller's effective permissions there (global role and project role together).
#[tokio::test]
async fn me_lists_the_effective_permissions_in_each_project() {
    let harness = start().await;
    for (name, want) in [
        (
            "project-editor",
            vec!["model:read", "project:read", "project:write"],
        ),
        ("project-viewer", vec!["model:read", "project:read"]),
    ] {
        let token = harness.token(name).await;
        let answer = harness
            .call(Method::GET, "/api/me", Some(&token), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let alpha = answer.body["projects"]
            .as_array()
            .and_then(|projects| projects.iter().find(|project| project["slug"] == "alpha"))
            .unwrap_or_else(|| panic!("{name} is a member of alpha: {}", answer.text));
        let got: Vec<&str> = alpha["permissions"]
            .as_array()
            .expect("permissions")
            .iter()
            .filter_map(|permission| permission.as_str())
            .collect();
        assert_eq!(got, want, "{name}");
    }
    // A global viewer who is also a project viewer: the union.
    let token = harness.token("victim").await;
    let answer = harness
        .call(Method::GET, "/api/me", Some(&token), None)
        .await;
    let alpha = &answer.body["projects"][0]["permissions"];
    assert!(
        alpha
            .as_array()
            .is_some_and(|list| list.iter().any(|p| p == "report:read")),
        "{}",
        answer.text
    );
}

/// A second limit identical to an existing one (same scope, metric, window, value, mode) is
/// refused with 409 naming the field; a different value is another limit.
#[tokio::test]
async fn an_identical_limit_is_refused() {
    let harness = start().await;
    let admin = harness.token("admin").await;
    let body =
        json!({ "scope": "project:alpha", "metric": "cost", "period": "daily", "value": 0.05 });
    let first = harness
        .call(
            Method::POST,
            "/api/limits",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = harness
        .call(Method::POST, "/api/limits", Some(&admin), Some(body))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.body["error"]["field"], "value", "{}", again.text);
    assert!(
        again.text.contains(first.body["id"].as_str().expect("id")),
        "{}",
        again.text
    );
    let other = harness
        .call(
            Method::POST,
            "/api/limits",
            Some(&admin),
            Some(json!({ "scope": "project:alpha", "metric": "cost", "period": "daily", "value": 0.06 })),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);
}

/// A project's fallback order is changed with `model_order`: every model of the project,
/// each once; anything else is a 400 naming the field, and a project viewer may not.
#[tokio::test]
async fn a_project_editor_reorders_the_projects_models() {
    let harness = start().await;
    let editor = harness.token("project-editor").await;
    for model in ["m2", "m3"] {
        let answer = harness
            .call(
                Method::POST,
                "/api/projects/alpha/models",
                Some(&editor),
                Some(json!({ "model_id": model })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    let order = |answer: &management::Answer| -> Vec<String> {
        answer.body["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|model| model["model_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let answer = harness
        .call(
            Method::PATCH,
            "/api/projects/alpha",
            Some(&editor),
            Some(json!({ "model_order": ["m3", "m1", "m2"] })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(order(&answer), ["m3", "m1", "m2"]);
    for wrong in [
        json!(["m3", "m1"]),
        json!(["m3", "m1", "m1"]),
        json!(["m3", "m1", "m9"]),
    ] {
        let answer = harness
            .call(
                Method::PATCH,
                "/api/projects/alpha",
                Some(&editor),
                Some(json!({ "model_order": wrong })),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{wrong}: {}",
            answer.text
        );
        assert_eq!(
            answer.body["error"]["field"], "model_order",
            "{}",
            answer.text
        );
    }
    let viewer = harness.token("project-viewer").await;
    let answer = harness
        .call(
            Method::PATCH,
            "/api/projects/alpha",
            Some(&viewer),
            Some(json!({ "model_order": ["m1", "m2", "m3"] })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    let admin = harness.token("admin").await;
    let answer = harness
        .call(Method::GET, "/api/projects/alpha", Some(&admin), None)
        .await;
    assert_eq!(order(&answer), ["m3", "m1", "m2"], "{}", answer.text);
}
