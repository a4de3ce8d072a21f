//! `/api/users`: the people who log in. `{user}` is a user's id or email. Password hashes
//! never leave the store; the last admin cannot be removed or demoted.

use axum::extract::{Path, State};
use routerly_api::users::{CreateUser, UpdateUser, UserList, UserProject, UserView};
use routerly_core::config::{ProjectMember, User};

use super::auth::{AuthUser, Permission, check_new_password, hash_new_password};
use super::members::user_id_of;
use super::rbac::{ProjectRole, member_role, role_permissions};
use super::{ApiError, ApiJson, ErrorCode};
use crate::state::App;
use crate::store::{Draft, Snapshot};

/// A user as the API shows it: never the password hash.
pub fn user_view(snapshot: &Snapshot, user: &User) -> UserView {
    UserView {
        id: user.id.clone(),
        email: user.email.clone(),
        role: user.role.clone(),
        projects: snapshot
            .projects
            .projects
            .iter()
            .filter_map(|project| {
                member_role(project, &user.id).map(|role| UserProject {
                    id: project.id.clone(),
                    slug: project.slug.clone(),
                    role: role.as_str().to_owned(),
                })
            })
            .collect(),
        created_at: user.created_at,
    }
}

/// `email` trimmed, or a 400 naming the field: it must hold an `@` and fit 254 characters.
fn valid_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    if !email.contains('@') || email.chars().count() > 254 {
        return Err(ApiError::invalid("email", "the email address is not valid"));
    }
    Ok(email.to_owned())
}

/// A 409 naming the field when a user other than `except` logs in with `email` (emails
/// are compared without case, as login does).
fn check_email_free(draft: &Draft, email: &str, except: Option<&str>) -> Result<(), ApiError> {
    if draft
        .users
        .users
        .iter()
        .any(|user| Some(user.id.as_str()) != except && user.email.eq_ignore_ascii_case(email))
    {
        return Err(ApiError {
            field: Some("email".to_owned()),
            ..ApiError::new(
                ErrorCode::Conflict,
                format!("a user `{email}` already exists"),
            )
        });
    }
    Ok(())
}

/// Checks that `role` names a built-in or custom global role.
pub(super) fn check_role(
    draft_roles: &routerly_core::config::RolesFile,
    role: &str,
) -> Result<(), ApiError> {
    if role_permissions(role, draft_roles).is_none() {
        let mut known: Vec<String> = super::rbac::BUILTIN_ROLES
            .iter()
            .map(|(id, ..)| (*id).to_owned())
            .collect();
        known.extend(draft_roles.roles.iter().map(|custom| custom.id.clone()));
        return Err(ApiError::invalid(
            "role",
            format!("unknown role `{role}`; roles: {}", known.join(", ")),
        ));
    }
    Ok(())
}

/// Parses `PROJECT` or `PROJECT:ROLE` (role `viewer` by default).
fn parse_membership(entry: &str) -> Result<(String, ProjectRole), ApiError> {
    let (project, role) = match entry.rsplit_once(':') {
        Some((project, role)) if ProjectRole::parse(role).is_ok() => {
            (project, ProjectRole::parse(role).expect("checked"))
        }
        _ => (entry, ProjectRole::Viewer),
    };
    if project.trim().is_empty() {
        return Err(ApiError::invalid("projects", "a project entry is empty"));
    }
    Ok((project.trim().to_owned(), role))
}

/// Makes `user_id` a member of each project in `memberships` with its role.
fn apply_memberships(
    draft: &mut Draft,
    user_id: &str,
    memberships: &[(String, ProjectRole)],
) -> Result<(), ApiError> {
    for (key, role) in memberships {
        let project = draft
            .projects
            .projects
            .iter_mut()
            .find(|project| project.id == *key || project.slug == *key || project.name == *key)
            .ok_or_else(|| ApiError::invalid("projects", format!("no project `{key}`")))?;
        match project
            .members
            .iter_mut()
            .find(|member| member.user_id == user_id)
        {
            Some(member) => member.role = role.as_str().to_owned(),
            None => project.members.push(ProjectMember {
                user_id: user_id.to_owned(),
                role: role.as_str().to_owned(),
            }),
        }
    }
    Ok(())
}

fn admins(draft: &Draft) -> usize {
    draft
        .users
        .users
        .iter()
        .filter(|user| user.role == "admin")
        .count()
}

/// `GET /api/users`.
#[utoipa::path(get, path = "/api/users", operation_id = "list_users", tag = "users",
    responses((status = 200, body = UserList)))]
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
) -> Result<axum::Json<UserList>, ApiError> {
    user.require(Permission::UserRead)?;
    let snapshot = app.store.snapshot();
    let users = snapshot
        .users
        .users
        .iter()
        .map(|user| user_view(&snapshot, user))
        .collect();
    Ok(axum::Json(UserList { users }))
}

/// `GET /api/users/{user}`.
#[utoipa::path(get, path = "/api/users/{user}", operation_id = "show_user", tag = "users",
    params(("user" = String, Path, description = "The user's id or email.")),
    responses((status = 200, body = UserView)))]
pub async fn show(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
) -> Result<axum::Json<UserView>, ApiError> {
    user.require(Permission::UserRead)?;
    let snapshot = app.store.snapshot();
    let found = snapshot
        .user(&key)
        .or_else(|| snapshot.user_by_email(&key))
        .ok_or_else(|| ApiError::not_found(format!("no user `{key}`")))?;
    Ok(axum::Json(user_view(&snapshot, found)))
}

/// `POST /api/users`.
#[utoipa::path(post, path = "/api/users", operation_id = "create_user", tag = "users",
    request_body = CreateUser, responses((status = 201, body = UserView)))]
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(http::StatusCode, axum::Json<UserView>), ApiError> {
    user.require(Permission::UserWrite)?;
    let email = valid_email(&body.email)?;
    check_new_password(&body.password)?;
    let memberships = body
        .projects
        .iter()
        .map(|entry| parse_membership(entry))
        .collect::<Result<Vec<_>, _>>()?;
    let role = body.role.unwrap_or_else(|| {
        if memberships.is_empty() {
            "viewer"
        } else {
            "none"
        }
        .to_owned()
    });
    check_role(&app.store.snapshot().roles, &role)?;
    let password_hash = hash_new_password(&app, body.password).await?;
    let new_user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email,
        password_hash,
        role,
        created_at: chrono::Utc::now(),
    };
    let user_id = new_user.id.clone();
    super::grants::update(&app, &user, move |draft| {
        check_email_free(draft, &new_user.email, None)?;
        check_role(&draft.roles, &new_user.role)?;
        apply_memberships(draft, &new_user.id, &memberships)?;
        draft.users.users.push(new_user);
        Ok(())
    })
    .await?;
    let snapshot = app.store.snapshot();
    let created = snapshot
        .user(&user_id)
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    Ok((
        http::StatusCode::CREATED,
        axum::Json(user_view(&snapshot, created)),
    ))
}

/// `PATCH /api/users/{user}`: a new password ends every session of the user.
#[utoipa::path(patch, path = "/api/users/{user}", operation_id = "update_user", tag = "users",
    params(("user" = String, Path, description = "The user's id or email.")),
    request_body = UpdateUser, responses((status = 200, body = UserView)))]
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<axum::Json<UserView>, ApiError> {
    user.require(Permission::UserWrite)?;
    let email = body.email.as_deref().map(valid_email).transpose()?;
    let password_hash = match body.password {
        Some(password) => {
            check_new_password(&password)?;
            Some(hash_new_password(&app, password).await?)
        }
        None => None,
    };
    let memberships = body
        .projects
        .iter()
        .flatten()
        .map(|entry| parse_membership(entry))
        .collect::<Result<Vec<_>, _>>()?;
    let password_changed = password_hash.is_some();
    let user_id = super::grants::update(&app, &user, move |draft| {
        let user_id = user_id_of(draft, &key)?;
        if let Some(role) = &body.role {
            check_role(&draft.roles, role)?;
        }
        if let Some(email) = &email {
            check_email_free(draft, email, Some(&user_id))?;
        }
        let admin_count = admins(draft);
        let target = draft
            .users
            .users
            .iter_mut()
            .find(|user| user.id == user_id)
            .expect("found by user_id_of");
        if let Some(role) = body.role {
            if target.role == "admin" && role != "admin" && admin_count == 1 {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "this is the last admin; make another user admin first",
                ));
            }
            target.role = role;
        }
        if let Some(email) = email {
            target.email = email;
        }
        if let Some(password_hash) = password_hash {
            target.password_hash = password_hash;
        }
        apply_memberships(draft, &user_id, &memberships)?;
        Ok(user_id)
    })
    .await?;
    if password_changed {
        app.sessions
            .revoke_user(user_id.clone())
            .await
            .map_err(ApiError::internal)?;
    }
    let snapshot = app.store.snapshot();
    let updated = snapshot
        .user(&user_id)
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    Ok(axum::Json(user_view(&snapshot, updated)))
}

/// `DELETE /api/users/{user}`: removes the user, their memberships and sessions.
#[utoipa::path(delete, path = "/api/users/{user}", operation_id = "remove_user", tag = "users",
    params(("user" = String, Path, description = "The user's id or email.")),
    responses((status = 204, description = "The user is removed and their sessions end.")))]
pub async fn remove(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
) -> Result<http::StatusCode, ApiError> {
    user.require(Permission::UserWrite)?;
    let user_id = super::grants::update(&app, &user, move |draft| {
        let user_id = user_id_of(draft, &key)?;
        let is_admin = draft
            .users
            .users
            .iter()
            .any(|user| user.id == user_id && user.role == "admin");
        if is_admin && admins(draft) == 1 {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "this is the last admin; make another user admin first",
            ));
        }
        draft.users.users.retain(|user| user.id != user_id);
        for project in &mut draft.projects.projects {
            project.members.retain(|member| member.user_id != user_id);
        }
        Ok(user_id)
    })
    .await?;
    app.sessions
        .revoke_user(user_id)
        .await
        .map_err(ApiError::internal)?;
    Ok(http::StatusCode::NO_CONTENT)
}
