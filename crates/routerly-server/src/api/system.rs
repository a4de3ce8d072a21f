//! `/api/system`: what the service is and how it is doing, and master-key rotation.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use routerly_api::system::{KeyRotated, MasterKeySource, SystemInfo, UsageWriter};

use super::audit::AuditDetail;
use super::auth::{AuthUser, Permission};
use super::{ApiError, ErrorCode};
use crate::state::App;
use crate::store::home::SECRET_KEY_ENV;
use crate::store::secrets::MasterKey;

/// `GET /api/system`: version, uptime, counts and health.
#[utoipa::path(get, path = "/api/system", operation_id = "system_info", tag = "system",
    responses((status = 200, body = SystemInfo)))]
pub async fn info(State(app): State<App>, _user: AuthUser) -> axum::Json<SystemInfo> {
    let snapshot = app.store.snapshot();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    axum::Json(SystemInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: app.started_at.elapsed().as_secs(),
        home: app.home.root.display().to_string(),
        listen: app.listening_on.get().map_or_else(
            || format!("{}:{}", snapshot.settings.host, snapshot.settings.port),
            ToString::to_string,
        ),
        configured_listen: format!("{}:{}", snapshot.settings.host, snapshot.settings.port),
        models: count(snapshot.models.models.len()),
        projects: count(snapshot.projects.projects.len()),
        users: count(snapshot.users.users.len()),
        usage_writer: if app.usage.is_healthy() {
            UsageWriter::Ok
        } else {
            UsageWriter::Failing
        },
        config_error: app.store.last_reload_error(),
        master_key_source: if std::env::var_os(SECRET_KEY_ENV).is_some() {
            MasterKeySource::Environment
        } else {
            MasterKeySource::File
        },
    })
}

/// `POST /api/system/rotate-key`: a new master key; every secret in the config files is
/// re-encrypted under it, all or nothing. Access tokens signed with the old key stop
/// working (refresh tokens and API keys keep working).
#[utoipa::path(post, path = "/api/system/rotate-key", operation_id = "rotate_master_key", tag = "system",
    responses((status = 200, body = KeyRotated)))]
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
    if app.store.is_shared() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the configuration is in PostgreSQL, shared by every replica under one master key \
             (ROUTERLY_SECRET_KEY): change that key outside Routerly (config export, re-seal, \
             config import)",
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
    let body = KeyRotated {
        rotated: true,
        secrets_reencrypted: count as u64,
    };
    let detail = serde_json::to_value(&body).map_err(ApiError::internal)?;
    let mut response = axum::Json(body).into_response();
    response.extensions_mut().insert(AuditDetail(detail));
    Ok(response)
}
