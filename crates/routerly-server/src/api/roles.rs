//! `/api/roles`: the built-in global roles and custom ones (`config/roles.json`), each a set
//! of the permissions in [`Permission::ALL`].

use axum::extract::{Path, State};
use routerly_core::config::CustomRole;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AuthUser, Permission};
use super::rbac::{BUILTIN_ROLES, PermissionSet, is_builtin_role};
use super::{ApiError, ApiJson, ErrorCode};
use crate::state::App;

fn check_permissions(names: &[String]) -> Result<Vec<String>, ApiError> {
    let mut permissions = Vec::new();
    for name in names
        .iter()
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
    {
        let permission =
            Permission::parse(name).map_err(|message| ApiError::invalid("permissions", message))?;
        permissions.push(permission);
    }
    if permissions.is_empty() {
        return Err(ApiError::invalid(
            "permissions",
            "a role needs at least one permission",
        ));
    }
    Ok(PermissionSet::of(&permissions)
        .names()
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// `GET /api/roles`: built-in roles first, then custom ones, and every permission.
pub async fn list(State(app): State<App>, user: AuthUser) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::UserRead)?;
    let snapshot = app.store.snapshot();
    let mut roles: Vec<Value> = BUILTIN_ROLES
        .iter()
        .map(|(id, name, permissions)| {
            json!({ "id": id, "name": name, "permissions": permissions.names(), "builtin": true })
        })
        .collect();
    roles.extend(snapshot.roles.roles.iter().map(|role| {
        json!({ "id": role.id, "name": role.name, "permissions": role.permissions, "builtin": false })
    }));
    let permissions: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    Ok(axum::Json(
        json!({ "roles": roles, "permissions": permissions }),
    ))
}

/// Body of `POST /api/roles`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    id: String,
    name: String,
    permissions: Vec<String>,
}

/// `POST /api/roles`.
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateRole>,
) -> Result<(http::StatusCode, axum::Json<Value>), ApiError> {
    user.require(Permission::UserWrite)?;
    let id = body.id.trim().to_owned();
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(ApiError::invalid(
            "id",
            format!("`{id}` is not a valid role id: use lowercase letters, digits, - and _"),
        ));
    }
    if is_builtin_role(&id) {
        return Err(ApiError::invalid(
            "id",
            format!("`{id}` is a built-in role"),
        ));
    }
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "the role needs a name"));
    }
    let role = CustomRole {
        id,
        name: body.name.trim().to_owned(),
        permissions: check_permissions(&body.permissions)?,
    };
    let stored = role.clone();
    super::grants::update(&app, &user, move |draft| {
        if draft
            .roles
            .roles
            .iter()
            .any(|existing| existing.id == stored.id)
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("a role `{}` already exists", stored.id),
            ));
        }
        draft.roles.roles.push(stored);
        Ok(())
    })
    .await?;
    Ok((
        http::StatusCode::CREATED,
        axum::Json(serde_json::to_value(role).map_err(ApiError::internal)?),
    ))
}

/// Body of `PATCH /api/roles/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

/// `PATCH /api/roles/{id}`.
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRole>,
) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::UserWrite)?;
    if is_builtin_role(&id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("`{id}` is a built-in role and cannot be changed"),
        ));
    }
    let permissions = body
        .permissions
        .as_deref()
        .map(check_permissions)
        .transpose()?;
    let updated = super::grants::update(&app, &user, move |draft| {
        let role = draft
            .roles
            .roles
            .iter_mut()
            .find(|role| role.id == id)
            .ok_or_else(|| ApiError::not_found(format!("no role `{id}`")))?;
        if let Some(name) = body.name {
            if name.trim().is_empty() {
                return Err(ApiError::invalid("name", "the role needs a name"));
            }
            role.name = name.trim().to_owned();
        }
        if let Some(permissions) = permissions {
            role.permissions = permissions;
        }
        Ok(role.clone())
    })
    .await?;
    Ok(axum::Json(
        serde_json::to_value(updated).map_err(ApiError::internal)?,
    ))
}

/// `DELETE /api/roles/{id}`: refused while a user or an API key has the role.
pub async fn remove(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<http::StatusCode, ApiError> {
    user.require(Permission::UserWrite)?;
    let key_users: Vec<String> = app
        .api_keys
        .list()
        .await
        .map_err(super::auth::api_keys_unavailable)?
        .into_iter()
        .filter(|key| key.role == id && key.revoked_at.is_none())
        .map(|key| key.name)
        .collect();
    super::grants::update(&app, &user, move |draft| {
        let holders: Vec<&str> = draft
            .users
            .users
            .iter()
            .filter(|user| user.role == id)
            .map(|user| user.email.as_str())
            .chain(key_users.iter().map(String::as_str))
            .collect();
        if !holders.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "role `{id}` is held by {}; give them another role first",
                    holders.join(", ")
                ),
            ));
        }
        let before = draft.roles.roles.len();
        draft.roles.roles.retain(|role| role.id != id);
        if draft.roles.roles.len() == before {
            return Err(ApiError::not_found(format!("no role `{id}`")));
        }
        Ok(())
    })
    .await?;
    Ok(http::StatusCode::NO_CONTENT)
}
