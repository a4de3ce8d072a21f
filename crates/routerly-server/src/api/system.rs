//! `/api/system`: what the service is and how it is doing, and master-key rotation.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::audit::AuditDetail;
use super::auth::{AuthUser, Permission};
use super::{ApiError, ErrorCode};
use crate::state::App;
use crate::store::home::SECRET_KEY_ENV;
use crate::store::secrets::MasterKey;

/// `GET /api/system`: version, uptime, counts and health.
pub async fn info(State(app): State<App>, _user: AuthUser) -> axum::Json<Value> {
    let snapshot = app.store.snapshot();
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started_at.elapsed().as_secs(),
        "home": app.home.root.display().to_string(),
        "listen": app.listening_on.get().map_or_else(
            || format!("{}:{}", snapshot.settings.host, snapshot.settings.port),
            ToString::to_string,
        ),
        "configured_listen": format!("{}:{}", snapshot.settings.host, snapshot.settings.port),
        "models": snapshot.models.models.len(),
        "projects": snapshot.projects.projects.len(),
        "users": snapshot.users.users.len(),
        "usage_writer": if app.usage.is_healthy() { "ok" } else { "failing" },
        "config_error": app.store.last_reload_error(),
        "master_key_source": if std::env::var_os(SECRET_KEY_ENV).is_some() { "environment" } else { "file" },
    }))
}

/// `POST /api/system/rotate-key`: a new master key; every secret in the config files is
/// re-encrypted under it, all or nothing. Access tokens signed with the old key stop
/// working (refresh tokens and API keys keep working).
pub async fn rotate_key(State(app): State<App>, user: AuthUser) -> Result<Response, ApiError> {
    user.require(Permission::SettingsWrite)?;
    if std::env::var_os(SECRET_KEY_ENV).is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the master key comes from {SECRET_KEY_ENV}, which Routerly cannot change; \
                 unset it to use config/secret, or rotate it outside Routerly"
            ),
        ));
    }
    let new_key = MasterKey::generate();
    let count = app
        .store
        .rotate_master_key(new_key)
        .await
        .map_err(ApiError::internal)?;
    let signing_key = app
        .home
        .new_session_signing_key()
        .map_err(ApiError::internal)?;
    app.session_keys.replace(signing_key);
    tracing::info!(secrets = count, "master key rotated");
    let body = json!({ "rotated": true, "secrets_reencrypted": count });
    let mut response = axum::Json(body.clone()).into_response();
    response.extensions_mut().insert(AuditDetail(body));
    Ok(response)
}
