//! `/api/projects/{project}/members`: who holds which project role. `{user}` is the user's
//! id or email.

use axum::extract::{Path, State};
use routerly_core::config::{Project, ProjectMember};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AuthUser, Permission};
use super::rbac::ProjectRole;
use super::{ApiError, ApiJson, ErrorCode, project_or_404};
use crate::state::App;
use crate::store::{Draft, Snapshot};

fn members_view(snapshot: &Snapshot, project: &Project) -> Value {
    let members: Vec<Value> = project
        .members
        .iter()
        .map(|member| {
            json!({
                "user_id": member.user_id,
                "email": snapshot.user(&member.user_id).map(|user| user.email.as_str()),
                "role": member.role,
            })
        })
        .collect();
    json!({ "members": members })
}

/// The user whose id or email is `key`, as an id.
pub(super) fn user_id_of(draft: &Draft, key: &str) -> Result<String, ApiError> {
    let key = key.trim();
    draft
        .users
        .users
        .iter()
        .find(|user| user.id == key || user.email.eq_ignore_ascii_case(key))
        .map(|user| user.id.clone())
        .ok_or_else(|| ApiError::not_found(format!("no user `{key}`")))
}

fn project_mut<'d>(draft: &'d mut Draft, key: &str) -> Result<&'d mut Project, ApiError> {
    draft
        .projects
        .projects
        .iter_mut()
        .find(|project| project.id == key || project.slug == key || project.name == key)
        .ok_or_else(|| ApiError::not_found(format!("no project `{key}`")))
}

/// `GET /api/projects/{project}/members`.
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::ProjectRead)?;
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    Ok(axum::Json(members_view(&snapshot, project)))
}

/// Body of `POST /api/projects/{project}/members`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user's email (or id).
    #[serde(alias = "user_id")]
    email: String,
    role: String,
}

/// Body of `PATCH /api/projects/{project}/members/{user}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    role: String,
}

/// `POST /api/projects/{project}/members`: adds a member, or changes their role.
pub async fn add(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<(http::StatusCode, axum::Json<Value>), ApiError> {
    user.require(Permission::ProjectMembers)?;
    let role =
        ProjectRole::parse(&body.role).map_err(|message| ApiError::invalid("role", message))?;
    set_role(&app, &user, &key, &body.email, role, "email").await?;
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    Ok((
        http::StatusCode::CREATED,
        axum::Json(members_view(&snapshot, project)),
    ))
}

/// `PATCH /api/projects/{project}/members/{user}`: changes a member's role.
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path((key, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::ProjectMembers)?;
    let role =
        ProjectRole::parse(&body.role).map_err(|message| ApiError::invalid("role", message))?;
    let snapshot = app.store.snapshot();
    let is_member = snapshot.project(&key).is_some_and(|project| {
        project.members.iter().any(|existing| {
            existing.user_id == member
                || snapshot
                    .user(&existing.user_id)
                    .is_some_and(|user| user.email.eq_ignore_ascii_case(&member))
        })
    });
    if !is_member {
        return Err(ApiError::not_found(format!(
            "`{member}` is not a member of project `{key}`"
        )));
    }
    set_role(&app, &user, &key, &member, role, "user").await?;
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    Ok(axum::Json(members_view(&snapshot, project)))
}

async fn set_role(
    app: &App,
    user: &AuthUser,
    key: &str,
    member: &str,
    role: ProjectRole,
    field: &'static str,
) -> Result<(), ApiError> {
    let key = key.to_owned();
    let member = member.to_owned();
    super::grants::update(app, user, move |draft| {
        let user_id = user_id_of(draft, &member).map_err(|error| ApiError {
            field: Some(field.to_owned()),
            ..error
        })?;
        let project = project_mut(draft, &key)?;
        match project
            .members
            .iter_mut()
            .find(|existing| existing.user_id == user_id)
        {
            Some(existing) => existing.role = role.as_str().to_owned(),
            None => project.members.push(ProjectMember {
                user_id,
                role: role.as_str().to_owned(),
            }),
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// `DELETE /api/projects/{project}/members/{user}`.
pub async fn remove(
    State(app): State<App>,
    user: AuthUser,
    Path((key, member)): Path<(String, String)>,
) -> Result<http::StatusCode, ApiError> {
    user.require(Permission::ProjectMembers)?;
    super::grants::update(&app, &user, move |draft| {
        let user_id = user_id_of(draft, &member)?;
        let project = project_mut(draft, &key)?;
        let before = project.members.len();
        project
            .members
            .retain(|existing| existing.user_id != user_id);
        if project.members.len() == before {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("`{member}` is not a member of project `{key}`"),
            ));
        }
        Ok(())
    })
    .await?;
    Ok(http::StatusCode::NO_CONTENT)
}
