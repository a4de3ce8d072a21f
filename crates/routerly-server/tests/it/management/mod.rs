//! The harness of the management API tests: a service on a temporary `ROUTERLY_HOME`, called
//! in process through its router, with users for every built-in role, project roles in
//! project `alpha`, a member of project `beta`, a custom role, and usage in both projects.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use chrono::Utc;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use routerly_core::config::{
    CustomRole, ModelConfig, Project, ProjectMember, ProjectModel, ProjectToken, User,
};
use routerly_server::Service;
use routerly_server::api::auth::{AccessClaims, hash_password};
use routerly_server::state::App;
use routerly_server::store::Home;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tower::ServiceExt;

/// The provider key of model `m1`, which only a model writer may ever see.
pub const PROVIDER_KEY: &str = "sk-provider-secret-0123456789";
/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery";
/// The project token of `alpha`.
pub const ALPHA_TOKEN: &str = "sk-lr-alpha-0123456789abcdef0123456789abcdef";
/// The project token of `beta`.
pub const BETA_TOKEN: &str = "sk-lr-beta-0123456789abcdef0123456789abcdef0";

/// A test caller: name (the email's local part), global role, project memberships.
pub type Caller = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The callers the tests act as.
pub const CALLERS: [Caller; 9] = [
    ("admin", "admin", &[]),
    ("operator", "operator", &[]),
    ("viewer", "viewer", &[]),
    ("project-admin", "none", &[("alpha", "admin")]),
    ("project-editor", "none", &[("alpha", "editor")]),
    ("project-viewer", "none", &[("alpha", "viewer")]),
    ("auditor", "auditor", &[]),
    ("outsider", "none", &[("beta", "admin")]),
    ("victim", "viewer", &[("alpha", "viewer")]),
];

/// An error answer's body, read through the typed contract.
pub fn error(body: Value) -> routerly_api::ErrorBody {
    serde_json::from_value(body).expect("an error body")
}

/// A refused call's status, error code and field, read through the typed contract.
pub async fn refused(
    harness: &Harness,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, routerly_api::ErrorCode, Option<String>) {
    let answer = harness.call(method, path, Some(token), body).await;
    let detail = error(answer.body).error;
    (answer.status, detail.code, detail.field)
}

/// The email of a caller.
pub fn email(name: &str) -> String {
    format!("{name}@example.com")
}

/// A service with its router, on a temporary home.
pub struct Harness {
    /// The temporary home.
    pub dir: TempDir,
    /// The shared state.
    pub app: App,
    router: axum::Router,
    _service: Service,
}

/// An answer: status, headers, body as JSON (or as a string when it is not JSON).
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Value,
    /// Body as text.
    pub text: String,
}

fn model(id: &str, api_key: Option<String>) -> ModelConfig {
    serde_json::from_value(json!({
        "id": id, "provider": "openai", "endpoint": "http://127.0.0.1:9/v1", "upstream_model": id,
        "api_key": api_key,
    }))
    .expect("model json")
}

fn token(id: &str, secret: &str) -> ProjectToken {
    serde_json::from_value(json!({
        "id": id, "hash": hex::encode(Sha256::digest(secret.as_bytes())), "snippet": "sk-lr-…",
    }))
    .expect("token json")
}

fn usage_line(
    project_id: &str,
    token_id: &str,
    model: &str,
    cost: f64,
    user: &str,
    tag: &str,
) -> String {
    json!({
        "id": uuid::Uuid::new_v4().to_string(), "timestamp": Utc::now(), "project_id": project_id,
        "token_id": token_id, "model_id": model, "provider": "openai", "surface": "chat_completions",
        "call_type": "completion", "stream": false, "input_tokens": 10, "output_tokens": 5,
        "cached_input_tokens": 0, "cache_write_tokens": 0, "cost_usd": cost, "input_cost_usd": cost / 2.0,
        "output_cost_usd": cost / 2.0, "latency_ms": 12.0, "ttft_ms": null, "overhead_ms": 0.1,
        "outcome": "success", "status": 200, "error": null, "trace_id": "t", "user": user, "tags": [tag],
    })
    .to_string()
}

impl Harness {
    /// Starts the service with the fixture described in the module documentation.
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let usage = [
            usage_line("p-alpha", "t-alpha", "m1", 0.5, "alice", "web"),
            usage_line("p-alpha", "t-alpha", "m1", 0.25, "bob", "batch"),
            usage_line("p-beta", "t-beta", "m2", 4.0, "carol", "secret-beta-tag"),
        ];
        std::fs::write(data.join("usage.jsonl"), usage.join("\n") + "\n").expect("usage");
        let service = Service::open(Home::new(dir.path()))
            .await
            .expect("service opens");
        let app = service.app();
        // Requests go through the router in process; the service keeps its background tasks.
        let router = routerly_server::router(app.clone());
        let harness = Harness {
            dir,
            app,
            router,
            _service: service,
        };
        harness.seed().await;
        harness
    }

    async fn seed(&self) {
        let key = self.app.store.master_key();
        let password_hash = hash_password(PASSWORD).expect("hash");
        let encrypted = key.encrypt(PROVIDER_KEY);
        self.app
            .store
            .update(move |draft| {
                draft.models.models = vec![
                    model("m1", Some(encrypted)),
                    model("m2", None),
                    model("m3", None),
                ];
                let mut alpha: Project = serde_json::from_value(json!({
                    "id": "p-alpha", "name": "Alpha", "slug": "alpha",
                }))
                .expect("project");
                alpha.models.push(ProjectModel {
                    model_id: "m1".into(),
                    aliases: vec![],
                    routing_prompt: None,
                });
                alpha.tokens.push(token("t-alpha", ALPHA_TOKEN));
                let mut beta: Project = serde_json::from_value(json!({
                    "id": "p-beta", "name": "Beta", "slug": "beta",
                }))
                .expect("project");
                beta.models.push(ProjectModel {
                    model_id: "m2".into(),
                    aliases: vec![],
                    routing_prompt: None,
                });
                beta.tokens.push(token("t-beta", BETA_TOKEN));
                for (name, role, memberships) in CALLERS {
                    draft.users.users.push(User {
                        id: format!("u-{name}"),
                        email: email(name),
                        password_hash: password_hash.clone(),
                        role: role.to_owned(),
                        created_at: Utc::now(),
                    });
                    for (project, project_role) in memberships {
                        let target = if *project == "alpha" {
                            &mut alpha
                        } else {
                            &mut beta
                        };
                        target.members.push(ProjectMember {
                            user_id: format!("u-{name}"),
                            role: (*project_role).to_owned(),
                        });
                    }
                }
                draft.projects.projects = vec![alpha, beta];
                draft.roles.roles = vec![
                    CustomRole {
                        id: "auditor".into(),
                        name: "Auditor".into(),
                        permissions: vec!["model:read".into(), "report:read".into()],
                    },
                    CustomRole {
                        id: "spare".into(),
                        name: "Spare".into(),
                        permissions: vec!["model:read".into()],
                    },
                ];
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .expect("seed the configuration");
    }

    /// A fresh session and access token for the caller `name`, without a password check.
    pub async fn token(&self, name: &str) -> String {
        let snapshot = self.app.store.snapshot();
        let user = snapshot.user_by_email(&email(name)).expect("known caller");
        let family_id = uuid::Uuid::new_v4().to_string();
        let refresh_hash: [u8; 32] = Sha256::digest(family_id.as_bytes()).into();
        self.app
            .sessions
            .issue(
                family_id.clone(),
                refresh_hash,
                user.id.clone(),
                Utc::now() + chrono::Duration::hours(1),
            )
            .await
            .expect("issue a session");
        let now = Utc::now().timestamp();
        self.app.session_keys.issue_access_token(&AccessClaims {
            sub: user.id.clone(),
            email: user.email.clone(),
            role: user.role.clone(),
            sid: family_id,
            iat: now,
            exp: now + 600,
        })
    }

    /// Sends a request from loopback with an optional bearer credential and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.call_from(method, path, bearer, body, [127, 0, 0, 1])
            .await
    }

    /// [`Harness::call`] from the address `ip`.
    pub async fn call_from(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        ip: [u8; 4],
    ) -> Answer {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(bearer) = bearer {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        let body = match body {
            Some(body) => {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::String(text.clone()));
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// Logs in with a password and returns the session answer.
    pub async fn login(&self, email: &str, password: &str, ip: [u8; 4]) -> Answer {
        self.call_from(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": email, "password": password })),
            ip,
        )
        .await
    }
}
