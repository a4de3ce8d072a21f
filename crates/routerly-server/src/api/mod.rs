//! The management API under `/api`, used by the dashboard and the CLI.
//!
//! Handlers take extractors, check one permission, call the store, and convert the
//! result. Errors are JSON `{"error":{"code","message","field"}}` with the status from
//! [`ApiError::status`].

mod api_keys;
pub mod audit;
pub mod auth;
mod channels;
mod limits;
mod members;
mod models;
mod projects;
pub mod rbac;
mod roles;
mod routing;
mod settings;
mod setup;
mod system;
mod usage;
mod users;

use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::state::App;
use crate::store::UpdateError;

/// The `/api` routes. What each route requires is declared in [`rbac::ROUTES`], and the
/// [`rbac::authorize`] middleware enforces it before any handler runs.
pub fn router(app: App) -> Router<App> {
    Router::new()
        .route("/api/setup/status", get(setup::status))
        .route("/api/setup/first-admin", post(setup::first_admin))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route(
            "/api/me",
            get(auth::me).put(auth::update_me).patch(auth::update_me),
        )
        .route("/api/models", get(models::list).post(models::create))
        .route(
            "/api/models/{id}",
            get(models::show)
                .patch(models::update)
                .delete(models::remove),
        )
        .route("/api/models/{id}/key", get(models::reveal_key))
        .route("/api/catalogue", get(models::catalogue))
        .route("/api/projects", get(projects::list).post(projects::create))
        .route(
            "/api/projects/{project}",
            get(projects::show)
                .patch(projects::update)
                .delete(projects::remove),
        )
        .route(
            "/api/projects/{project}/models",
            get(projects::list_models).post(projects::add_model),
        )
        .route(
            "/api/projects/{project}/models/{model_id}",
            patch(projects::update_model).delete(projects::remove_model),
        )
        .route(
            "/api/projects/{project}/tokens",
            get(projects::list_tokens).post(projects::create_token),
        )
        .route(
            "/api/projects/{project}/tokens/{token_id}",
            patch(projects::update_token).delete(projects::revoke_token),
        )
        .route(
            "/api/projects/{project}/members",
            get(members::list).post(members::add),
        )
        .route(
            "/api/projects/{project}/members/{user}",
            patch(members::update).delete(members::remove),
        )
        .route(
            "/api/projects/{project}/policies",
            get(routing::show).put(routing::replace),
        )
        .route("/api/projects/{project}/traces", get(routing::list_traces))
        .route(
            "/api/projects/{project}/traces/{trace_id}",
            get(routing::project_trace),
        )
        .route("/api/traces/{trace_id}", get(routing::show_trace))
        .route("/api/usage", get(usage::list))
        .route("/api/usage/limits", get(limits::usage))
        .route("/api/limits", get(limits::list).post(limits::create))
        .route(
            "/api/limits/{id}",
            get(limits::show)
                .patch(limits::update)
                .delete(limits::remove),
        )
        .route("/api/channels", get(channels::list).post(channels::create))
        .route(
            "/api/channels/{id}",
            get(channels::show).delete(channels::remove),
        )
        .route("/api/channels/{id}/test", post(channels::test))
        .route("/api/usage/summary", get(usage::summary))
        .route("/api/usage/by-model", get(usage::by_model))
        .route("/api/usage/by-project", get(usage::by_project))
        .route("/api/usage/by-token", get(usage::by_token))
        .route("/api/usage/by-user", get(usage::by_user))
        .route("/api/usage/timeline", get(usage::timeline))
        .route("/api/usage/export", get(usage::export))
        .route("/api/users", get(users::list).post(users::create))
        .route(
            "/api/users/{user}",
            get(users::show).patch(users::update).delete(users::remove),
        )
        .route("/api/roles", get(roles::list).post(roles::create))
        .route(
            "/api/roles/{id}",
            patch(roles::update).delete(roles::remove),
        )
        .route("/api/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api/api-keys/{id}", delete(api_keys::revoke))
        .route("/api/settings", get(settings::show).patch(settings::update))
        .route("/api/system", get(system::info))
        .route("/api/system/rotate-key", post(system::rotate_key))
        .route("/api/audit", get(audit::list))
        .route_layer(axum::middleware::from_fn_with_state(app, rbac::authorize))
        .fallback(not_found)
}

async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no API route {}", uri.path()))
}

/// Kinds of management API error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body or a parameter is invalid.
    Invalid,
    /// No or bad credentials.
    Unauthenticated,
    /// The caller lacks the permission.
    Forbidden,
    /// The resource does not exist.
    NotFound,
    /// It conflicts with existing state (duplicate id, in use).
    Conflict,
    /// Too many attempts.
    RateLimited,
    /// Something Routerly called on the caller's behalf (a notification channel) failed.
    DeliveryFailed,
    /// Something broke inside; details are in the log.
    Internal,
}

impl ErrorCode {
    fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Invalid => "invalid_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::DeliveryFailed => "delivery_failed",
            ErrorCode::Internal => "internal_error",
        }
    }

    /// The HTTP status of this kind, from one exhaustive match.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::Invalid => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::DeliveryFailed => StatusCode::BAD_GATEWAY,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error of the management API.
#[derive(Debug)]
pub struct ApiError {
    /// What kind.
    pub code: ErrorCode,
    /// In words.
    pub message: String,
    /// The body field at fault.
    pub field: Option<String>,
}

impl ApiError {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            code: ErrorCode::Invalid,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// A 404 for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::NotFound, what)
    }

    /// A 500 whose detail goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::now_v7();
        tracing::error!(error_id = %id, "internal error: {detail}");
        ApiError::new(
            ErrorCode::Internal,
            format!("internal error (id {id}); see the service log"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "field": self.field,
            }
        });
        (self.code.status(), axum::Json(body)).into_response()
    }
}

impl From<UpdateError<ApiError>> for ApiError {
    fn from(error: UpdateError<ApiError>) -> Self {
        match error {
            UpdateError::Rejected(error) => error,
            UpdateError::Invalid(error) => ApiError::new(ErrorCode::Invalid, error.to_string()),
            UpdateError::Store(error) => ApiError::internal(error),
        }
    }
}

/// A JSON body whose deserialization errors become 400s naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = bytes::Bytes::from_request(request, state)
            .await
            .map_err(|error| ApiError::new(ErrorCode::Invalid, error.body_text()))?;
        let value: T = serde_json::from_slice(&bytes).map_err(|error| {
            let field = field_of(&error.to_string());
            ApiError {
                code: ErrorCode::Invalid,
                message: format!("invalid request body: {error}"),
                field,
            }
        })?;
        Ok(ApiJson(value))
    }
}

/// The field a serde error names (`missing field \`x\``, `unknown field \`x\``).
fn field_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

/// Creates the first admin at start from `ROUTERLY_ADMIN_EMAIL`/`ROUTERLY_ADMIN_PASSWORD`.
pub async fn setup_headless_admin(app: &App, email: &str, password: &str) -> Result<(), String> {
    setup::create_first_admin(app, email, password)
        .await
        .map(|_| ())
        .map_err(|error| error.message)
}

/// The project named by `key` (id, slug or name) in `snapshot`, or a 404 naming it.
pub(crate) fn project_or_404<'s>(
    snapshot: &'s crate::store::config::Snapshot,
    key: &str,
) -> Result<&'s routerly_core::config::Project, ApiError> {
    snapshot
        .project(key)
        .ok_or_else(|| ApiError::not_found(format!("no project `{key}`")))
}
