//! `/api/projects/{project}/members`: who holds which project role. `{user}` is the user's
//! id or email.

use axum::extract::{Path, State};
use routerly_api::members::{AddMember, MemberList, MemberView, UpdateMember};
use routerly_core::config::{Project, ProjectMember};

use super::auth::{AuthUser, Permission};
use super::rbac::ProjectRole;
use super::{ApiError, ApiJson, ErrorCode, project_or_404};
use crate::state::App;
use crate::store::{Draft, Snapshot};

fn members_view(snapshot: &Snapshot, project: &Project) -> MemberList {
    MemberList {
        members: project
            .members
            .iter()
            .map(|member| MemberView {
                user_id: member.user_id.clone(),
                email: snapshot
                    .user(&member.user_id)
                    .map(|user| user.email.clone()),
                role: member.role.clone(),
            })
            .collect(),
    }
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

/// `GET /api/projects/{project}/members`.
#[utoipa::path(get, path = "/api/projects/{project}/members", operation_id = "list_members", tag = "members",
    params(("project" = String, Path, description = "The project's id, slug or name.")),
    responses((status = 200, body = MemberList)))]
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
) -> Result<axum::Json<MemberList>, ApiError> {
    user.require(Permission::ProjectRead)?;
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    Ok(axum::Json(members_view(&snapshot, project)))
}

/// `POST /api/projects/{project}/members`: adds a member, or changes their role.
#[utoipa::path(post, path = "/api/projects/{project}/members", operation_id = "add_member", tag = "members",
    params(("project" = String, Path, description = "The project's id, slug or name.")),
    request_body = AddMember, responses((status = 201, body = MemberList)))]
pub async fn add(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<(http::StatusCode, axum::Json<MemberList>), ApiError> {
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
#[utoipa::path(patch, path = "/api/projects/{project}/members/{user}", operation_id = "update_member", tag = "members",
    params(("project" = String, Path, description = "The project's id, slug or name."),
        ("user" = String, Path, description = "The member's user id or email.")),
    request_body = UpdateMember, responses((status = 200, body = MemberList)))]
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path((key, member)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> Result<axum::Json<MemberList>, ApiError> {
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
        let project = super::projects::find_project(draft, &key)?;
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
#[utoipa::path(delete, path = "/api/projects/{project}/members/{user}", operation_id = "remove_member", tag = "members",
    params(("project" = String, Path, description = "The project's id, slug or name."),
        ("user" = String, Path, description = "The member's user id or email.")),
    responses((status = 204, description = "They are no longer a member.")))]
pub async fn remove(
    State(app): State<App>,
    user: AuthUser,
    Path((key, member)): Path<(String, String)>,
) -> Result<http::StatusCode, ApiError> {
    user.require(Permission::ProjectMembers)?;
    super::grants::update(&app, &user, move |draft| {
        let user_id = user_id_of(draft, &member)?;
        let project = super::projects::find_project(draft, &key)?;
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
