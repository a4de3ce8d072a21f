//! `/api/projects`: projects, their models and aliases, and their tokens. `{project}`
//! in a path is the project's id, slug or name.

use axum::extract::{Path, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::RngCore;
use routerly_api::projects::{
    AddProjectModel, CreateProject, CreateToken, CreatedToken, ProjectList, ProjectMemberRef,
    ProjectModelList, ProjectModelView, ProjectView, TokenList, TokenView, UpdateProject,
    UpdateProjectModel, UpdateToken,
};
use routerly_core::config::{Project, ProjectModel, ProjectToken};
use sha2::{Digest, Sha256};

use super::auth::{AuthUser, Permission};
use super::models::check_id;
use super::{ApiError, ApiJson, ErrorCode, project_or_404};
use crate::state::App;
use crate::store::Draft;

/// The prefix of every project token.
pub const TOKEN_PREFIX: &str = "sk-lr-";

fn project_view(project: &Project) -> ProjectView {
    ProjectView {
        id: project.id.clone(),
        name: project.name.clone(),
        slug: project.slug.clone(),
        models: models_view(&project.models),
        tokens: project.tokens.iter().map(token_view).collect(),
        members: project
            .members
            .iter()
            .map(|member| ProjectMemberRef {
                user_id: member.user_id.clone(),
                role: member.role.clone(),
            })
            .collect(),
        timeouts: project.timeouts.into(),
        routing: super::routing::routing_view(&project.routing, false),
        strict_translation: project.strict_translation,
        created_at: project.created_at,
    }
}

fn model_view(model: &ProjectModel) -> ProjectModelView {
    ProjectModelView {
        model_id: model.model_id.clone(),
        aliases: model.aliases.clone(),
        routing_prompt: model.routing_prompt.clone(),
    }
}

fn models_view(models: &[ProjectModel]) -> Vec<ProjectModelView> {
    models.iter().map(model_view).collect()
}

/// A token as listings show it: never its hash.
fn token_view(token: &ProjectToken) -> TokenView {
    TokenView {
        id: token.id.clone(),
        snippet: token.snippet.clone(),
        labels: token.labels.clone(),
        models: token.models.clone(),
        expires_at: token.expires_at,
        revoked_at: token.revoked_at,
        created_at: token.created_at,
    }
}

/// The project whose id, slug or name is `key`, in a configuration being changed.
pub(super) fn find_project<'d>(
    draft: &'d mut Draft,
    key: &str,
) -> Result<&'d mut Project, ApiError> {
    draft
        .projects
        .projects
        .iter_mut()
        .find(|project| project.id == key || project.slug == key || project.name == key)
        .ok_or_else(|| ApiError::not_found(format!("no project `{key}`")))
}

/// A URL-friendly slug of `name`.
fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}

/// `GET /api/projects`: the projects the caller may read.
#[utoipa::path(get, path = "/api/projects", operation_id = "list_projects", tag = "projects",
    responses((status = 200, body = ProjectList)))]
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
) -> Result<axum::Json<ProjectList>, ApiError> {
    let scope = user.project_scope(Permission::ProjectRead);
    let snapshot = app.store.snapshot();
    let projects = snapshot
        .projects
        .projects
        .iter()
        .filter(|project| scope.includes(&project.id))
        .map(project_view)
        .collect();
    Ok(axum::Json(ProjectList { projects }))
}

/// `GET /api/projects/{project}`.
#[utoipa::path(get, path = "/api/projects/{project}", operation_id = "show_project", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name.")), responses((status = 200, body = ProjectView)))]
pub async fn show(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
) -> Result<axum::Json<ProjectView>, ApiError> {
    user.require(Permission::ProjectRead)?;
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    Ok(axum::Json(project_view(project)))
}

/// `POST /api/projects`.
#[utoipa::path(post, path = "/api/projects", operation_id = "create_project", tag = "projects",
    request_body = CreateProject, responses((status = 201, body = ProjectView)))]
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(http::StatusCode, axum::Json<ProjectView>), ApiError> {
    user.require(Permission::ProjectWrite)?;
    let name = super::display_name("name", &body.name, "the project needs a name")?;
    let slug = body
        .slug
        .map(|slug| slug.trim().to_owned())
        .unwrap_or_else(|| slugify(&name));
    if slug.is_empty() || slug != slugify(&slug) {
        return Err(ApiError::invalid(
            "slug",
            format!("`{slug}` is not a valid slug: use lowercase letters, digits and dashes"),
        ));
    }
    let project = Project {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        slug,
        models: Vec::new(),
        tokens: Vec::new(),
        members: Vec::new(),
        timeouts: body.timeouts.into(),
        routing: Default::default(),
        strict_translation: body.strict_translation,
        created_at: Utc::now(),
    };
    let stored = project.clone();
    super::grants::update(&app, &user, move |draft| {
        if let Some(existing) = draft
            .projects
            .projects
            .iter()
            .find(|existing| existing.slug == stored.slug || existing.name == stored.name)
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "a project named `{}` (slug `{}`) already exists",
                    existing.name, existing.slug
                ),
            ));
        }
        draft.projects.projects.push(stored);
        Ok(())
    })
    .await?;
    Ok((
        http::StatusCode::CREATED,
        axum::Json(project_view(&project)),
    ))
}

/// `PATCH /api/projects/{project}`.
#[utoipa::path(patch, path = "/api/projects/{project}", operation_id = "update_project", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name.")), request_body = UpdateProject, responses((status = 200, body = ProjectView)))]
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<UpdateProject>,
) -> Result<axum::Json<ProjectView>, ApiError> {
    user.require(Permission::ProjectWrite)?;
    let name = body
        .name
        .as_deref()
        .map(|name| super::display_name("name", name, "the project needs a name"))
        .transpose()?;
    let updated = super::grants::update(&app, &user, move |draft| {
        let id = find_project(draft, &key)?.id.clone();
        if let Some(name) = &name
            && draft
                .projects
                .projects
                .iter()
                .any(|other| other.id != id && other.name == *name)
        {
            // Projects are found by name too: two of one name would make that ambiguous.
            return Err(ApiError {
                field: Some("name".to_owned()),
                ..ApiError::new(
                    ErrorCode::Conflict,
                    format!("a project named `{name}` already exists"),
                )
            });
        }
        let project = find_project(draft, &key)?;
        if let Some(name) = name {
            project.name = name;
        }
        if let Some(timeouts) = body.timeouts {
            project.timeouts = timeouts.into();
        }
        if let Some(strict_translation) = body.strict_translation {
            project.strict_translation = strict_translation;
        }
        if let Some(order) = body.model_order {
            let mut current: Vec<&str> =
                project.models.iter().map(|m| m.model_id.as_str()).collect();
            let mut wanted: Vec<&str> = order.iter().map(String::as_str).collect();
            current.sort_unstable();
            wanted.sort_unstable();
            if current != wanted {
                return Err(ApiError::invalid(
                    "model_order",
                    "list each of the project's models exactly once",
                ));
            }
            project.models.sort_by_key(|model| {
                order
                    .iter()
                    .position(|id| *id == model.model_id)
                    .unwrap_or(usize::MAX)
            });
        }
        Ok(project.clone())
    })
    .await?;
    Ok(axum::Json(project_view(&updated)))
}

/// `DELETE /api/projects/{project}`.
#[utoipa::path(delete, path = "/api/projects/{project}", operation_id = "remove_project", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name.")), responses((status = 204, description = "The project, its tokens and memberships are gone.")))]
pub async fn remove(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
) -> Result<http::StatusCode, ApiError> {
    user.require(Permission::ProjectWrite)?;
    super::grants::update(&app, &user, move |draft| {
        let id = find_project(draft, &key)?.id.clone();
        draft.projects.projects.retain(|project| project.id != id);
        Ok(())
    })
    .await?;
    Ok(http::StatusCode::NO_CONTENT)
}

/// `GET /api/projects/{project}/models`.
#[utoipa::path(get, path = "/api/projects/{project}/models", operation_id = "list_project_models", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name.")), responses((status = 200, body = ProjectModelList)))]
pub async fn list_models(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
) -> Result<axum::Json<ProjectModelList>, ApiError> {
    user.require(Permission::ProjectRead)?;
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    Ok(axum::Json(ProjectModelList {
        models: models_view(&project.models),
    }))
}

/// `POST /api/projects/{project}/models`: adds a model (or replaces its aliases and
/// prompt if the project already has it).
#[utoipa::path(post, path = "/api/projects/{project}/models", operation_id = "add_project_model", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name.")), request_body = AddProjectModel, responses((status = 201, body = ProjectModelList)))]
pub async fn add_model(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<AddProjectModel>,
) -> Result<(http::StatusCode, axum::Json<ProjectModelList>), ApiError> {
    user.require(Permission::ProjectWrite)?;
    for alias in &body.aliases {
        check_id("aliases", alias)?;
    }
    let project = super::grants::update(&app, &user, move |draft| {
        if draft
            .models
            .models
            .iter()
            .all(|model| model.id != body.model_id)
        {
            return Err(ApiError::invalid(
                "model_id",
                format!("no model `{}` is registered", body.model_id),
            ));
        }
        let project = find_project(draft, &key)?;
        for alias in &body.aliases {
            let clash = project.models.iter().find(|other| {
                other.model_id != body.model_id
                    && (other.model_id == *alias || other.aliases.contains(alias))
            });
            if let Some(other) = clash {
                return Err(ApiError::invalid(
                    "aliases",
                    format!(
                        "`{alias}` already names model `{}` in this project",
                        other.model_id
                    ),
                ));
            }
        }
        let entry = ProjectModel {
            model_id: body.model_id.clone(),
            aliases: body.aliases,
            routing_prompt: body.routing_prompt,
        };
        match project
            .models
            .iter_mut()
            .find(|model| model.model_id == body.model_id)
        {
            Some(existing) => *existing = entry,
            None => project.models.push(entry),
        }
        Ok(project.clone())
    })
    .await?;
    Ok((
        http::StatusCode::CREATED,
        axum::Json(ProjectModelList {
            models: models_view(&project.models),
        }),
    ))
}

/// `PATCH /api/projects/{project}/models/{model_id}`: changes a project model's routing
/// prompt or aliases.
#[utoipa::path(patch, path = "/api/projects/{project}/models/{model_id}", operation_id = "update_project_model", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name."), ("model_id" = String, Path, description = "The model's id.")), request_body = UpdateProjectModel, responses((status = 200, body = ProjectModelView)))]
pub async fn update_model(
    State(app): State<App>,
    user: AuthUser,
    Path((key, model_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateProjectModel>,
) -> Result<axum::Json<ProjectModelView>, ApiError> {
    user.require(Permission::ProjectWrite)?;
    for alias in body.aliases.iter().flatten() {
        check_id("aliases", alias)?;
    }
    let updated = super::grants::update(&app, &user, move |draft| {
        let project = find_project(draft, &key)?;
        if let Some(aliases) = &body.aliases {
            for alias in aliases {
                if let Some(other) = project.models.iter().find(|other| {
                    other.model_id != model_id
                        && (other.model_id == *alias || other.aliases.contains(alias))
                }) {
                    return Err(ApiError::invalid(
                        "aliases",
                        format!(
                            "`{alias}` already names model `{}` in this project",
                            other.model_id
                        ),
                    ));
                }
            }
        }
        let entry = project
            .models
            .iter_mut()
            .find(|model| model.model_id == model_id)
            .ok_or_else(|| {
                ApiError::not_found(format!("project `{key}` has no model `{model_id}`"))
            })?;
        if let Some(aliases) = body.aliases {
            entry.aliases = aliases;
        }
        if let Some(prompt) = body.routing_prompt {
            entry.routing_prompt = prompt.filter(|prompt| !prompt.trim().is_empty());
        }
        Ok(entry.clone())
    })
    .await?;
    Ok(axum::Json(model_view(&updated)))
}

/// `DELETE /api/projects/{project}/models/{model_id}`.
#[utoipa::path(delete, path = "/api/projects/{project}/models/{model_id}", operation_id = "remove_project_model", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name."), ("model_id" = String, Path, description = "The model's id.")), responses((status = 204, description = "The project no longer uses the model.")))]
pub async fn remove_model(
    State(app): State<App>,
    user: AuthUser,
    Path((key, model_id)): Path<(String, String)>,
) -> Result<http::StatusCode, ApiError> {
    user.require(Permission::ProjectWrite)?;
    super::grants::update(&app, &user, move |draft| {
        let project = find_project(draft, &key)?;
        let before = project.models.len();
        project.models.retain(|model| model.model_id != model_id);
        if project.models.len() == before {
            return Err(ApiError::not_found(format!(
                "project `{key}` has no model `{model_id}`"
            )));
        }
        Ok(())
    })
    .await?;
    Ok(http::StatusCode::NO_CONTENT)
}

/// `GET /api/projects/{project}/tokens`.
#[utoipa::path(get, path = "/api/projects/{project}/tokens", operation_id = "list_project_tokens", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name.")), responses((status = 200, body = TokenList)))]
pub async fn list_tokens(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
) -> Result<axum::Json<TokenList>, ApiError> {
    user.require(Permission::ProjectRead)?;
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    Ok(axum::Json(TokenList {
        tokens: project.tokens.iter().map(token_view).collect(),
    }))
}

/// A new token: `sk-lr-` and 32 random bytes, base64url.
fn new_project_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `POST /api/projects/{project}/tokens`: the only answer that carries the token.
#[utoipa::path(post, path = "/api/projects/{project}/tokens", operation_id = "create_project_token", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name.")), request_body = CreateToken, responses((status = 201, body = CreatedToken)))]
pub async fn create_token(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(http::StatusCode, axum::Json<CreatedToken>), ApiError> {
    user.require(Permission::ProjectWrite)?;
    if let Some(expires_at) = body.expires_at
        && expires_at <= Utc::now()
    {
        return Err(ApiError::invalid("expires_at", "the expiry is in the past"));
    }
    let secret = new_project_token();
    let token = ProjectToken {
        id: format!("tok_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
        hash: hex::encode(Sha256::digest(secret.as_bytes())),
        snippet: format!(
            "{}…{}",
            &secret[..TOKEN_PREFIX.len() + 4],
            &secret[secret.len() - 4..]
        ),
        labels: super::token_labels(body.labels)?,
        models: body.models,
        expires_at: body.expires_at,
        revoked_at: None,
        created_at: Utc::now(),
    };
    let stored = token.clone();
    let project_id = super::grants::update(&app, &user, move |draft| {
        let registered: Vec<String> = draft
            .models
            .models
            .iter()
            .map(|model| model.id.clone())
            .collect();
        let project = find_project(draft, &key)?;
        if let Some(unknown) = stored.models.iter().find(|model| {
            !project.models.iter().any(|pm| &pm.model_id == *model) || !registered.contains(model)
        }) {
            return Err(ApiError::invalid(
                "models",
                format!("model `{unknown}` is not one of this project's models"),
            ));
        }
        project.tokens.push(stored);
        Ok(project.id.clone())
    })
    .await?;
    Ok((
        http::StatusCode::CREATED,
        axum::Json(CreatedToken {
            view: token_view(&token),
            token: secret,
            project_id,
        }),
    ))
}

/// `PATCH /api/projects/{project}/tokens/{token_id}`: changes labels, models or expiry.
#[utoipa::path(patch, path = "/api/projects/{project}/tokens/{token_id}", operation_id = "update_project_token", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name."), ("token_id" = String, Path, description = "The token's id (`tok_…`).")), request_body = UpdateToken, responses((status = 200, body = TokenView)))]
pub async fn update_token(
    State(app): State<App>,
    user: AuthUser,
    Path((key, token_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateToken>,
) -> Result<axum::Json<TokenView>, ApiError> {
    user.require(Permission::ProjectWrite)?;
    if let Some(Some(expires_at)) = body.expires_at
        && expires_at <= Utc::now()
    {
        return Err(ApiError::invalid("expires_at", "the expiry is in the past"));
    }
    let updated = super::grants::update(&app, &user, move |draft| {
        let project = find_project(draft, &key)?;
        if let Some(models) = &body.models
            && let Some(unknown) = models
                .iter()
                .find(|model| !project.models.iter().any(|pm| &pm.model_id == *model))
        {
            return Err(ApiError::invalid(
                "models",
                format!("model `{unknown}` is not one of this project's models"),
            ));
        }
        let token = project
            .tokens
            .iter_mut()
            .find(|token| token.id == token_id)
            .ok_or_else(|| {
                ApiError::not_found(format!("project `{key}` has no token `{token_id}`"))
            })?;
        if let Some(labels) = body.labels {
            token.labels = super::token_labels(labels)?;
        }
        if let Some(models) = body.models {
            token.models = models;
        }
        if let Some(expires_at) = body.expires_at {
            token.expires_at = expires_at;
        }
        Ok(token.clone())
    })
    .await?;
    Ok(axum::Json(token_view(&updated)))
}

/// `DELETE /api/projects/{project}/tokens/{token_id}`: revokes at once.
#[utoipa::path(delete, path = "/api/projects/{project}/tokens/{token_id}", operation_id = "revoke_project_token", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name."), ("token_id" = String, Path, description = "The token's id (`tok_…`).")), responses((status = 204, description = "The token is refused from now on.")))]
pub async fn revoke_token(
    State(app): State<App>,
    user: AuthUser,
    Path((key, token_id)): Path<(String, String)>,
) -> Result<http::StatusCode, ApiError> {
    user.require(Permission::ProjectWrite)?;
    super::grants::update(&app, &user, move |draft| {
        let project = find_project(draft, &key)?;
        let token = project
            .tokens
            .iter_mut()
            .find(|token| token.id == token_id)
            .ok_or_else(|| {
                ApiError::not_found(format!("project `{key}` has no token `{token_id}`"))
            })?;
        token.revoked_at.get_or_insert_with(Utc::now);
        Ok(())
    })
    .await?;
    Ok(http::StatusCode::NO_CONTENT)
}
