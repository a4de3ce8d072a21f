//! `/api/settings`: `config/settings.json`. Reading shows secrets redacted; a change names
//! the fields it sets, and only [`EDITABLE`] fields may be set here (notification channels
//! have their own routes). Changes to the address, port and log level apply at the next start.

use axum::extract::State;
use routerly_core::config::Settings;
use serde_json::{Map, Value, json};

use super::auth::{AuthUser, Permission};
use super::{ApiError, ApiJson};
use crate::state::App;
use crate::store::audit::redact;

/// The fields `PATCH /api/settings` may set.
pub const EDITABLE: &[&str] = &[
    "host",
    "port",
    "dashboard",
    "log_level",
    "log_format",
    "public_url",
    "max_body_bytes",
    "timeouts",
    "shutdown_grace_seconds",
    "alert_thresholds",
    "allow_private_webhooks",
    "budget_time_zone",
    "budget_default_output_tokens",
    "usage_log_rotate_bytes",
    "usage_retention_days",
    "usage_compress_after_days",
    "usage_hourly_rollup_days",
    "metrics_token",
    "env_allow_list",
];

/// Fields that hold a secret, sealed under the master key before they are stored.
const SECRET_FIELDS: &[&str] = &["metrics_token"];

/// Settings as the API shows them.
pub fn settings_view(settings: &Settings) -> Value {
    redact(&serde_json::to_value(settings).unwrap_or(Value::Null))
}

/// `GET /api/settings`.
pub async fn show(State(app): State<App>, user: AuthUser) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::SettingsWrite)?;
    Ok(axum::Json(settings_view(&app.store.snapshot().settings)))
}

/// Checks a changed settings value beyond its type.
fn check(settings: &Settings) -> Result<(), ApiError> {
    if settings.port == 0 {
        return Err(ApiError::invalid(
            "port",
            "the port must be between 1 and 65535",
        ));
    }
    if settings.host.trim().is_empty() {
        return Err(ApiError::invalid("host", "the listen address is empty"));
    }
    if settings.log_level.trim().is_empty() {
        return Err(ApiError::invalid("log_level", "the log level is empty"));
    }
    if let Some(url) = &settings.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ApiError::invalid(
            "public_url",
            format!("`{url}` is not an http(s) URL"),
        ));
    }
    Ok(())
}

/// `PATCH /api/settings`: sets the given fields.
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::SettingsWrite)?;
    if let Some(field) = body
        .keys()
        .find(|field| !EDITABLE.contains(&field.as_str()))
    {
        return Err(ApiError::invalid(
            field,
            format!(
                "`{field}` cannot be set here; settable fields: {}",
                EDITABLE.join(", ")
            ),
        ));
    }
    let key = app.store.master_key();
    let mut body = body;
    for field in SECRET_FIELDS {
        if let Some(Value::String(secret)) = body.get(*field) {
            let sealed = key.seal(secret);
            body.insert((*field).to_owned(), Value::String(sealed));
        }
    }
    let updated = super::grants::update(&app, &user, move |draft| {
        let mut merged = serde_json::to_value(&draft.settings).map_err(ApiError::internal)?;
        for (field, value) in body {
            merged[field.as_str()] = value;
        }
        let settings: Settings =
            serde_path_to_error::deserialize(merged).map_err(|error| super::body_error(&error))?;
        check(&settings)?;
        draft.settings = settings.clone();
        Ok(settings)
    })
    .await?;
    Ok(axum::Json(json!(settings_view(&updated))))
}
