//! `/api/settings`: `config/settings.json`, as [`SettingsView`] shows it (the metrics token
//! is write-only; notification channels have their own routes). A change names the fields
//! it sets ([`UpdateSettings`]); the address, port, log level and format and the connection
//! limits apply at the next start.

use axum::extract::State;
use routerly_api::settings::{SettingsView, UpdateSettings};
use routerly_core::config::Settings;

use super::auth::{AuthUser, Permission};
use super::{ApiError, ApiJson};
use crate::state::App;

/// `GET /api/settings`.
#[utoipa::path(get, path = "/api/settings", tag = "settings", operation_id = "show_settings",
    responses((status = 200, body = SettingsView)))]
pub async fn show(
    State(app): State<App>,
    user: AuthUser,
) -> Result<axum::Json<SettingsView>, ApiError> {
    user.require(Permission::SettingsWrite)?;
    Ok(axum::Json(SettingsView::from(
        &app.store.snapshot().settings,
    )))
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

/// `PATCH /api/settings`: sets the given fields (inside `timeouts` and `connections` too);
/// the metrics token is sealed under the master key before it is stored.
#[utoipa::path(patch, path = "/api/settings", tag = "settings", operation_id = "update_settings",
    request_body = UpdateSettings, responses((status = 200, body = SettingsView)))]
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(mut change): ApiJson<UpdateSettings>,
) -> Result<axum::Json<SettingsView>, ApiError> {
    user.require(Permission::SettingsWrite)?;
    if let Some(Some(token)) = &mut change.metrics_token {
        *token = app.store.master_key().seal(token);
    }
    let updated = super::grants::update(&app, &user, move |draft| {
        change
            .apply(&mut draft.settings)
            .map_err(|(field, why)| ApiError::invalid(&field, why))?;
        check(&draft.settings)?;
        Ok(SettingsView::from(&draft.settings))
    })
    .await?;
    Ok(axum::Json(updated))
}
