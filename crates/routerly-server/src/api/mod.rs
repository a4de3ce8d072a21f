//! The management API under `/api`, used by the dashboard and the CLI.
//!
//! Handlers take extractors, check one permission, call the store, and convert the
//! result. Errors are JSON `{"error":{"code","message","field"}}` with the status from
//! [`ApiError::status`].

mod api_keys;
pub mod audit;
pub mod auth;
mod channels;
pub mod grants;
mod limits;
mod members;
mod model_checks;
mod models;
pub mod openapi;
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

use crate::state::App;
use crate::store::UpdateError;

/// The `/api` routes. What each route requires is declared in [`rbac::ROUTES`], and the
/// [`rbac::authorize`] middleware enforces it before any handler runs.
pub fn router(app: App) -> Router<App> {
    Router::new()
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/setup/status", get(setup::status))
        .route("/api/setup/first-admin", post(setup::first_admin))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route(
            "/api/me",
            get(auth::me).put(auth::update_me).patch(auth::patch_me),
        )
        .route("/api/models", get(models::list).post(models::create))
        .route(
            "/api/models/{id}",
            get(models::show)
                .patch(models::update)
                .delete(models::remove),
        )
        .route("/api/models/{id}/key", get(models::reveal_key))
        .route("/api/models/{id}/test", post(model_checks::test_connection))
        .route("/api/routing/health", get(model_checks::health))
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
        .route("/api/alerts", get(limits::alerts))
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
        .route("/api/usage/last-use", get(usage::last_use))
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

pub use routerly_api::ErrorCode;

/// The HTTP status of an error kind, from one exhaustive match.
pub fn error_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Invalid => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::DeliveryFailed => StatusCode::BAD_GATEWAY,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
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

/// Longest name of a project, role or API key, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Most labels on a project token.
pub const MAX_LABELS: usize = 32;

/// A name for people (a project's, a role's, an API key's) as it will be stored: at most
/// [`MAX_NAME_CHARS`] characters, none of them a control character (a name is shown on one
/// line in tables, logs and CSV exports), then trimmed and not empty (`missing` says what
/// is missing). The length and characters are checked as sent, as the schema documents.
pub fn display_name(field: &str, value: &str, missing: &str) -> Result<String, ApiError> {
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "contains a control character"));
    }
    let name = value.trim();
    if name.is_empty() {
        return Err(ApiError::invalid(field, missing));
    }
    Ok(name.to_owned())
}

/// A project token's labels as they will be stored: at most [`MAX_LABELS`], each trimmed,
/// blank ones left out (as the CLI and the dashboard split a comma-separated list).
pub fn token_labels(labels: Vec<String>) -> Result<Vec<String>, ApiError> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::invalid(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    Ok(labels
        .iter()
        .map(|label| label.trim())
        .filter(|label| !label.is_empty())
        .map(str::to_owned)
        .collect())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = routerly_api::ErrorBody {
            error: routerly_api::ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (error_status(self.code), axum::Json(body)).into_response()
    }
}

impl From<UpdateError<ApiError>> for ApiError {
    fn from(error: UpdateError<ApiError>) -> Self {
        match error {
            UpdateError::Rejected(error) => error,
            UpdateError::Invalid(error) => ApiError {
                code: ErrorCode::Invalid,
                field: error.field.clone(),
                message: error.to_string(),
            },
            UpdateError::Store(error) => store_error(error),
        }
    }
}

/// A store failure as the API answers it: a config file broken on disk is a 503 naming the
/// file (and where), so the caller knows why every change is refused until it is fixed; the
/// parser's own words stay in the log, since they may quote a value of the file.
fn store_error(error: crate::store::StoreError) -> ApiError {
    use crate::store::StoreError;
    match &error {
        StoreError::Config(file_error) => {
            tracing::error!(error = %file_error, "a change was refused: a config file on disk is broken");
            let position = if file_error.line > 0 {
                format!(" at line {}, column {}", file_error.line, file_error.column)
            } else {
                " (it cannot be read)".to_owned()
            };
            ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "{}{position} is broken on disk; no change is accepted until it is fixed (details in the service log)",
                    config_file_name(&file_error.path)
                ),
            )
        }
        StoreError::Invalid(validation) => ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "the config files on disk do not agree ({validation}); no change is accepted until they are fixed"
            ),
        ),
        StoreError::Database(message) => {
            tracing::error!(error = %message, "a change was refused: the configuration database is unavailable");
            ApiError::new(
                ErrorCode::Unavailable,
                "the configuration database (PostgreSQL) is unavailable; no change is accepted until it is back (details in the service log)",
            )
        }
        _ => ApiError::internal(error),
    }
}

/// `config/NAME` for a config file's path.
fn config_file_name(path: &std::path::Path) -> String {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("config/{name}")
}

/// The largest body a management API request may have (a configuration change is far
/// smaller); capped further by `connections.body_memory_bytes`.
pub const API_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A JSON body whose deserialization errors become 400s naming the field. The body is read
/// through the shared body budget like every other surface's ([`crate::admission::read_body`]):
/// 413 beyond [`API_MAX_BODY_BYTES`], 503 with `retry-after` while the budget is in use,
/// 408 after `body_timeout_ms` of silence.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + serde::Serialize> FromRequest<App> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(request: Request, app: &App) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let idle = std::time::Duration::from_millis(
            app.store.snapshot().settings.connections.body_timeout_ms,
        );
        let (bytes, _permit) = crate::admission::read_body(
            &app.body_budget,
            &parts.headers,
            body,
            API_MAX_BODY_BYTES,
            idle,
        )
        .await
        .map_err(body_refusal)?;
        // Every body is an object: serde would also fill a struct from an array of its
        // fields in order (`[null, null]` passed as an empty change).
        if bytes.trim_ascii_start().first() == Some(&b'[') {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                "invalid request body: expected a JSON object",
            )
            .into_response());
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value: T = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| body_error(&error).into_response())?;
        // What serde lets through that the API must refuse, found in the body as sent: a NUL
        // character (PostgreSQL cannot store one) and an array given where an object belongs
        // (serde fills a nested struct from an array of its fields in order), each named by
        // its path.
        if let Ok(sent) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            // A JSON text holds NUL only as the escape `\u0000`: other bodies are not walked.
            if memchr::memmem::find(&bytes, br"\u0000").is_some()
                && let Some(field) = nul_character(&sent)
            {
                return Err(ApiError {
                    code: ErrorCode::Invalid,
                    message: "invalid request body: a string contains a NUL character".to_owned(),
                    field,
                }
                .into_response());
            }
            if let Ok(read) = serde_json::to_value(&value)
                && let Some(field) = array_for_object(&sent, &read, String::new())
            {
                return Err(ApiError::invalid(
                    &field,
                    format!("`{field}` must be a JSON object, not an array"),
                )
                .into_response());
            }
        }
        Ok(ApiJson(value))
    }
}

/// The path of the first member that `sent` gives as an array where the value it was read
/// into is an object.
fn array_for_object(
    sent: &serde_json::Value,
    read: &serde_json::Value,
    path: String,
) -> Option<String> {
    use serde_json::Value;
    match (sent, read) {
        (Value::Array(_), Value::Object(_)) => Some(path),
        (Value::Object(sent), Value::Object(read)) => sent.iter().find_map(|(key, value)| {
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            read.get(key)
                .and_then(|read| array_for_object(value, read, inner))
        }),
        (Value::Array(sent), Value::Array(read)) => {
            sent.iter()
                .zip(read)
                .enumerate()
                .find_map(|(index, (sent, read))| {
                    array_for_object(sent, read, format!("{path}[{index}]"))
                })
        }
        _ => None,
    }
}

/// Where a JSON body holds a NUL character, in a string or a member's name: `Some(path)`
/// (`Some(None)` for a body that is itself such a string). PostgreSQL's text and jsonb cannot
/// hold NUL, so such a body would be a 500 in shared mode after passing every check (the
/// config document and the audit log are stored as jsonb); refusing it answers 400 in both
/// modes, on every route.
fn nul_character(sent: &serde_json::Value) -> Option<Option<String>> {
    nul_path(sent, String::new()).map(|path| (!path.is_empty()).then_some(path))
}

/// The path (`pricing.input`, `projects[2]`) of the first string or member name in `value`
/// holding a NUL character. serde_json refuses nesting beyond 128 levels, so the recursion
/// is bounded.
fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0').then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_path(item, format!("{path}[{index}]"))),
        Value::Object(members) => members.iter().find_map(|(name, member)| {
            let member_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if name.contains('\0') {
                Some(member_path)
            } else {
                nul_path(member, member_path)
            }
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// A body the budget or the connection refused, in the API's error shape.
fn body_refusal(error: crate::admission::BodyError) -> Response {
    use crate::admission::BodyError;
    let code = match error {
        BodyError::TooLarge(_) => ErrorCode::PayloadTooLarge,
        BodyError::OverBudget => ErrorCode::Unavailable,
        BodyError::Stalled(_) => ErrorCode::RequestTimeout,
        BodyError::Unreadable => ErrorCode::Invalid,
    };
    let mut response = ApiError::new(code, error.message()).into_response();
    if error == BodyError::OverBudget {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(crate::admission::OVER_BUDGET_RETRY_AFTER.as_secs()),
        );
    }
    response
}

/// A query string read into `T`, whose errors become 400s in the API's JSON shape naming the
/// parameter, for a value of the wrong type too (axum's own `Query` answers in plain text
/// and does not say which parameter).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let inner = error.inner().to_string();
                ApiError {
                    code: ErrorCode::Invalid,
                    field: field_of(&error.path().to_string(), &inner),
                    message: format!("invalid query: {inner}"),
                }
            })
    }
}

/// `value` read into `T`, an error naming the field by its path like [`ApiJson`]'s; for a
/// body read in two steps (by a tag, since serde reads an internally tagged enum through a
/// buffer that loses the path).
pub(crate) fn typed_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| body_error(&error))
}

/// A 400 for a body that does not fit its type, naming the field by its path
/// (`pricing.input`, `projects[2]`).
pub(crate) fn body_error(error: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = error.inner().to_string();
    ApiError {
        code: ErrorCode::Invalid,
        message: format!("invalid request body: {inner}"),
        field: field_of(&error.path().to_string(), &inner),
    }
}

/// The field a deserialization error is about: its path (which ends with the name of an
/// unknown field), with the field that a `missing field` message names appended. Without a
/// path (a query string), the field that a `missing` or `unknown field` message names.
fn field_of(path: &str, message: &str) -> Option<String> {
    let path = if path == "." { "" } else { path };
    let prefixes: &[&str] = if path.is_empty() {
        &["missing field `", "unknown field `"]
    } else {
        &["missing field `"]
    };
    let named = prefixes.iter().find_map(|prefix| {
        let start = message.find(prefix)? + prefix.len();
        let end = start + message[start..].find('`')?;
        Some(&message[start..end])
    });
    match (path, named) {
        ("", None) => None,
        ("", Some(named)) => Some(named.to_owned()),
        (path, None) => Some(path.to_owned()),
        (path, Some(named)) => Some(format!("{path}.{named}")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn field(json: &str) -> Option<String> {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only deserialized")]
        struct Inner {
            input: f64,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only deserialized")]
        struct Outer {
            name: String,
            pricing: Inner,
            #[serde(default)]
            tags: Vec<u32>,
        }
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let error = serde_path_to_error::deserialize::<_, Outer>(&mut deserializer)
            .expect_err("the body is wrong");
        body_error(&error).field
    }

    #[test]
    fn a_nul_character_is_found_by_its_path() {
        let cases: [(&str, Option<Option<&str>>); 8] = [
            (r#"{"name": "a\u0000b"}"#, Some(Some("name"))),
            (
                r#"{"name": "ab", "tags": ["x", "\u0000"]}"#,
                Some(Some("tags[1]")),
            ),
            (
                r#"{"pricing": {"input": 1, "note": "\u0000"}}"#,
                Some(Some("pricing.note")),
            ),
            (r#"{"a\u0000": 1}"#, Some(Some("a\u{0}"))),
            (r#""\u0000""#, Some(None)),
            // An escaped backslash before `u0000` is text, not NUL.
            (r#"{"name": "a\\u0000"}"#, None),
            (r#"{"name": "a\u0001"}"#, None),
            (r#"{"name": "plain"}"#, None),
        ];
        for (json, expected) in cases {
            assert_eq!(
                nul_character(&serde_json::from_str(json).expect("JSON")),
                expected.map(|field| field.map(str::to_owned)),
                "{json}"
            );
        }
    }

    #[test]
    fn a_body_error_names_the_field_by_its_path() {
        let cases = [
            (r#"{"name": 1, "pricing": {"input": 1}}"#, Some("name")),
            (
                r#"{"name": "a", "pricing": {"input": "x"}}"#,
                Some("pricing.input"),
            ),
            (
                r#"{"name": "a", "pricing": {"input": 1, "extra": 2}}"#,
                Some("pricing.extra"),
            ),
            (r#"{"name": "a", "pricing": {}}"#, Some("pricing.input")),
            (r#"{"pricing": {"input": 1}}"#, Some("name")),
            (
                r#"{"name": "a", "pricing": {"input": 1}, "tags": [1, "x"]}"#,
                Some("tags[1]"),
            ),
            (r#"{"name": "a", "surprise": 1}"#, Some("surprise")),
            (r#""text""#, None),
        ];
        for (json, expected) in cases {
            assert_eq!(field(json).as_deref(), expected, "{json}");
        }
    }
}
