//! `/api/roles`: the built-in global roles and custom ones (`config/roles.json`), each a set
//! of the permissions in [`Permission::ALL`].

use axum::extract::{Path, State};
use routerly_api::roles::{CreateRole, RoleList, RoleView, UpdateRole};
use routerly_core::config::CustomRole;

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

/// A custom role as the API shows it.
fn custom_view(role: CustomRole) -> RoleView {
    RoleView {
        id: role.id,
        name: role.name,
        permissions: role.permissions,
        builtin: false,
    }
}

/// `GET /api/roles`: built-in roles first, then custom ones, and every permission.
#[utoipa::path(get, path = "/api/roles", tag = "roles", operation_id = "list_roles",
    responses((status = 200, body = RoleList)))]
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
) -> Result<axum::Json<RoleList>, ApiError> {
    user.require(Permission::UserRead)?;
    let snapshot = app.store.snapshot();
    let builtin = BUILTIN_ROLES
        .iter()
        .map(|(id, name, permissions)| RoleView {
            id: (*id).to_owned(),
            name: (*name).to_owned(),
            permissions: permissions.names().into_iter().map(str::to_owned).collect(),
            builtin: true,
        });
    let custom = snapshot.roles.roles.iter().cloned().map(custom_view);
    Ok(axum::Json(RoleList {
        roles: builtin.chain(custom).collect(),
        permissions: Permission::ALL
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
    }))
}

/// `POST /api/roles`.
#[utoipa::path(post, path = "/api/roles", tag = "roles", operation_id = "create_role",
    request_body = CreateRole, responses((status = 201, body = RoleView)))]
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateRole>,
) -> Result<(http::StatusCode, axum::Json<RoleView>), ApiError> {
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
    let role = CustomRole {
        id,
        name: super::display_name("name", &body.name, "the role needs a name")?,
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
    Ok((http::StatusCode::CREATED, axum::Json(custom_view(role))))
}

/// `PATCH /api/roles/{id}`.
#[utoipa::path(patch, path = "/api/roles/{id}", tag = "roles", operation_id = "update_role",
    params(("id" = String, Path, description = "The custom role's id.")),
    request_body = UpdateRole, responses((status = 200, body = RoleView)))]
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRole>,
) -> Result<axum::Json<RoleView>, ApiError> {
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
            role.name = super::display_name("name", &name, "the role needs a name")?;
        }
        if let Some(permissions) = permissions {
            role.permissions = permissions;
        }
        Ok(role.clone())
    })
    .await?;
    Ok(axum::Json(custom_view(updated)))
}

/// `DELETE /api/roles/{id}`: refused while a user or an API key has the role.
#[utoipa::path(delete, path = "/api/roles/{id}", tag = "roles", operation_id = "remove_role",
    params(("id" = String, Path, description = "The custom role's id.")),
    responses((status = 204, description = "The role is removed.")))]
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
