//! `/api/api-keys`: long-lived admin API keys for scripts and CI, scoped to a global role.
//! The key is in the creation answer only; the store keeps its hash.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::audit::AuditDetail;
use super::auth::{AuthUser, Permission};
use super::users::check_role;
use super::{ApiError, ApiJson};
use crate::state::App;
use crate::store::api_keys::{ApiKey, new_api_key};

fn key_view(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "snippet": key.snippet,
        "created_by": key.created_by,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    })
}

/// `GET /api/api-keys`.
pub async fn list(State(app): State<App>, user: AuthUser) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::UserWrite)?;
    let keys: Vec<Value> = app.api_keys.list().iter().map(key_view).collect();
    Ok(axum::Json(json!({ "api_keys": keys })))
}

/// Body of `POST /api/api-keys`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    name: String,
    #[serde(default = "default_role")]
    role: String,
}

fn default_role() -> String {
    "admin".to_owned()
}

/// `POST /api/api-keys`: the only answer that carries the key.
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<Response, ApiError> {
    user.require(Permission::UserWrite)?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "the key needs a name"));
    }
    let roles = app.store.snapshot().roles.clone();
    check_role(&roles, &body.role)?;
    super::grants::require_role(&user, &body.role, &roles)?;
    let (secret, record) = new_api_key(name, &body.role, &user.user_id);
    app.api_keys
        .create(record.clone())
        .await
        .map_err(ApiError::internal)?;
    let mut view = key_view(&record);
    view["key"] = Value::String(secret);
    let mut response = (http::StatusCode::CREATED, axum::Json(view)).into_response();
    response
        .extensions_mut()
        .insert(AuditDetail(key_view(&record)));
    Ok(response)
}

/// `DELETE /api/api-keys/{id}`: revokes at once.
pub async fn revoke(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    user.require(Permission::UserWrite)?;
    // Revoking a key takes away what it holds: only for callers who hold it all.
    if let Some(key) = app
        .api_keys
        .list()
        .into_iter()
        .find(|key| key.id == id && key.revoked_at.is_none())
    {
        super::grants::require_role(&user, &key.role, &app.store.snapshot().roles)?;
    }
    if !app.api_keys.revoke(&id).await.map_err(ApiError::internal)? {
        return Err(ApiError::not_found(format!("no live API key `{id}`")));
    }
    let mut response = http::StatusCode::NO_CONTENT.into_response();
    response
        .extensions_mut()
        .insert(AuditDetail(json!({ "revoked_api_key": id })));
    Ok(response)
}
