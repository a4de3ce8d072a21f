//! `/api/api-keys`: long-lived admin API keys for scripts and CI, scoped to a global role.
//! The key is in the creation answer only; the store keeps its hash.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use routerly_api::api_keys::{ApiKeyList, ApiKeyView, CreateApiKey, CreatedApiKey};
use serde_json::json;

use super::audit::AuditDetail;
use super::auth::{AuthUser, Permission};
use super::users::check_role;
use super::{ApiError, ApiJson};
use crate::state::App;
use crate::store::api_keys::{ApiKey, new_api_key};

fn key_view(key: &ApiKey) -> ApiKeyView {
    ApiKeyView {
        id: key.id.clone(),
        name: key.name.clone(),
        role: key.role.clone(),
        snippet: key.snippet.clone(),
        created_by: key.created_by.clone(),
        created_at: key.created_at,
        revoked_at: key.revoked_at,
    }
}

/// `GET /api/api-keys`: every key, revoked ones included (needs `user:write`).
#[utoipa::path(get, path = "/api/api-keys", operation_id = "list_api_keys", tag = "api-keys",
    responses((status = 200, body = ApiKeyList)))]
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
) -> Result<axum::Json<ApiKeyList>, ApiError> {
    user.require(Permission::UserWrite)?;
    let api_keys = app
        .api_keys
        .list()
        .await
        .map_err(super::auth::api_keys_unavailable)?
        .iter()
        .map(key_view)
        .collect();
    Ok(axum::Json(ApiKeyList { api_keys }))
}

/// `POST /api/api-keys`: a new key carrying a role the caller holds every permission of
/// (needs `user:write`); the only answer that carries the key.
#[utoipa::path(post, path = "/api/api-keys", operation_id = "create_api_key", tag = "api-keys",
    request_body = CreateApiKey, responses((status = 201, body = CreatedApiKey)))]
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> Result<Response, ApiError> {
    user.require(Permission::UserWrite)?;
    let name = super::display_name("name", &body.name, "the key needs a name")?;
    let name = name.as_str();
    let role = body.role.as_deref().unwrap_or("admin");
    let roles = app.store.snapshot().roles.clone();
    check_role(&roles, role)?;
    super::grants::require_role(&user, role, &roles)?;
    let (secret, record) = new_api_key(name, role, &user.user_id);
    app.api_keys
        .create(record.clone())
        .await
        .map_err(super::auth::api_keys_unavailable)?;
    let view = key_view(&record);
    let audit = AuditDetail(serde_json::to_value(&view).map_err(ApiError::internal)?);
    let mut response = (
        http::StatusCode::CREATED,
        axum::Json(CreatedApiKey { view, key: secret }),
    )
        .into_response();
    response.extensions_mut().insert(audit);
    Ok(response)
}

/// `DELETE /api/api-keys/{id}`: revokes a live key at once (needs `user:write` and every
/// permission of the key's role).
#[utoipa::path(delete, path = "/api/api-keys/{id}", operation_id = "revoke_api_key", tag = "api-keys",
    params(("id" = String, Path, description = "The key's id (`ak_…`).")),
    responses((status = 204, description = "The key is revoked.")))]
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
        .await
        .map_err(super::auth::api_keys_unavailable)?
        .into_iter()
        .find(|key| key.id == id && key.revoked_at.is_none())
    {
        super::grants::require_role(&user, &key.role, &app.store.snapshot().roles)?;
    }
    if !app
        .api_keys
        .revoke(id.clone())
        .await
        .map_err(super::auth::api_keys_unavailable)?
    {
        return Err(ApiError::not_found(format!("no live API key `{id}`")));
    }
    let mut response = http::StatusCode::NO_CONTENT.into_response();
    response
        .extensions_mut()
        .insert(AuditDetail(json!({ "revoked_api_key": id })));
    Ok(response)
}
