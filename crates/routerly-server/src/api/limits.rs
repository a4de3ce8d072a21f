//! `/api/limits` (budgets and rate limits at every level, with their current use) and
//! `/api/usage/limits` (spend against each limit).
//!
//! Who may change a limit, and which limits a change may lift, is decided with every other
//! grant in [`super::grants`]. Listings show the limits of the projects whose usage the caller may
//! read, and the global and model limits to callers who may read every project's usage.

use axum::extract::{Path, State};

use super::ApiQuery as Query;
use routerly_core::limits::{Limit, Metric, Mode, Scope, Window, parse_time_zone};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AuthUser;
use super::rbac::ProjectScope;
use super::{ApiError, ApiJson, ErrorCode};
use crate::budgets::LimitUse;
use crate::state::App;
use crate::store::config::Snapshot;

/// The project a scope belongs to, if any.
fn owning_project<'s>(snapshot: &'s Snapshot, scope: &Scope) -> Option<&'s str> {
    if let Some(project) = scope.project() {
        return snapshot.project(project).map(|p| p.id.as_str());
    }
    let token = scope.token()?;
    snapshot
        .projects
        .projects
        .iter()
        .find(|project| project.tokens.iter().any(|t| t.id == token))
        .map(|project| project.id.as_str())
}

/// Whether `user` may see `limit`.
fn visible(user: &AuthUser, snapshot: &Snapshot, limit: &Limit) -> bool {
    match user.usage_scope() {
        ProjectScope::All => true,
        scope => owning_project(snapshot, &limit.scope).is_some_and(|id| scope.includes(id)),
    }
}

/// Resolves a project given by id, slug or name in `scope` to its id; checks that a
/// token or model it names exists.
fn resolve_scope(snapshot: &Snapshot, scope: Scope) -> Result<Scope, ApiError> {
    let project_id = |key: &str| {
        snapshot
            .project(key)
            .map(|project| project.id.clone())
            .ok_or_else(|| ApiError::invalid("scope", format!("no project `{key}`")))
    };
    let resolved = match scope {
        Scope::Project(key) => Scope::Project(project_id(&key)?),
        Scope::ProjectModel(key, model) => Scope::ProjectModel(project_id(&key)?, model),
        other => other,
    };
    if let Some(model) = resolved.model()
        && snapshot.model(model).is_none()
    {
        return Err(ApiError::invalid("scope", format!("no model `{model}`")));
    }
    if let Some(token) = resolved.token()
        && !snapshot
            .projects
            .projects
            .iter()
            .any(|project| project.tokens.iter().any(|t| t.id == token))
    {
        return Err(ApiError::invalid(
            "scope",
            format!("no token with the id `{token}`"),
        ));
    }
    Ok(resolved)
}

/// Query of `GET /api/limits` and `GET /api/usage/limits`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsQuery {
    /// Only limits with this scope (projects by id, slug or name).
    #[serde(default)]
    scope: Option<String>,
}

fn listing(app: &App, user: &AuthUser, query: &LimitsQuery) -> Result<Vec<LimitUse>, ApiError> {
    let snapshot = app.store.snapshot();
    let wanted = match &query.scope {
        Some(text) => Some(resolve_scope(
            &snapshot,
            Scope::parse(text).map_err(|message| ApiError::invalid("scope", message))?,
        )?),
        None => None,
    };
    Ok(app
        .budgets
        .usage(&snapshot)
        .into_iter()
        .filter(|limit_use| {
            wanted
                .as_ref()
                .is_none_or(|scope| &limit_use.limit.scope == scope)
        })
        .filter(|limit_use| visible(user, &snapshot, &limit_use.limit))
        .collect())
}

/// `GET /api/limits`: limits with their use and reset time.
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<LimitsQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        json!({ "limits": listing(&app, &user, &query)? }),
    ))
}

/// `GET /api/usage/limits`: spend against each limit (the same view as `GET /api/limits`).
pub async fn usage(
    state: State<App>,
    user: AuthUser,
    query: Query<LimitsQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    list(state, user, query).await
}

/// `GET /api/limits/{id}`.
pub async fn show(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let snapshot = app.store.snapshot();
    app.budgets
        .usage(&snapshot)
        .into_iter()
        .find(|limit_use| limit_use.limit.id == id && visible(&user, &snapshot, &limit_use.limit))
        .map(|limit_use| axum::Json(json!(limit_use)))
        .ok_or_else(|| ApiError::not_found(format!("no limit `{id}`")))
}

/// Body of `POST /api/limits`: the window as `window` (`daily`, `rolling:15m`), or as
/// `period` or `rolling` the way the CLI takes them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLimit {
    #[serde(default)]
    id: Option<String>,
    scope: String,
    metric: Metric,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    rolling: Option<String>,
    value: f64,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    time_zone: Option<String>,
}

fn parse_window(
    window: Option<String>,
    period: Option<String>,
    rolling: Option<String>,
) -> Result<Option<Window>, ApiError> {
    let given: Vec<(&str, String)> = [("window", window), ("period", period), ("rolling", rolling)]
        .into_iter()
        .filter_map(|(field, value)| value.map(|value| (field, value)))
        .collect();
    match given.as_slice() {
        [] => Ok(None),
        [(field, text)] => {
            let window =
                Window::parse(text).map_err(|message| ApiError::invalid(field, message))?;
            let kind_matches = !matches!(
                (*field, window),
                ("period", Window::Rolling { .. }) | ("rolling", Window::Calendar(_))
            );
            if !kind_matches {
                return Err(ApiError::invalid(
                    field,
                    format!("`{text}` is not a {field} window"),
                ));
            }
            Ok(Some(window))
        }
        _ => Err(ApiError::invalid(
            "window",
            "give one of window, period or rolling",
        )),
    }
}

/// `POST /api/limits`.
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateLimit>,
) -> Result<(http::StatusCode, axum::Json<Value>), ApiError> {
    let snapshot = app.store.snapshot();
    let scope = Scope::parse(&body.scope).map_err(|message| ApiError::invalid("scope", message))?;
    let scope = resolve_scope(&snapshot, scope)?;
    let window = parse_window(body.window, body.period, body.rolling)?
        .ok_or_else(|| ApiError::invalid("window", "a limit needs a window: period or rolling"))?;
    if let Some(zone) = &body.time_zone {
        parse_time_zone(zone).map_err(|message| ApiError::invalid("time_zone", message))?;
    }
    let limit = Limit {
        id: body
            .id
            .unwrap_or_else(|| format!("lim-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])),
        scope,
        metric: body.metric,
        window,
        value: body.value,
        mode: body.mode,
        time_zone: body.time_zone,
    };
    let stored = limit.clone();
    super::grants::update(&app, &user, move |draft| {
        if draft
            .limits
            .limits
            .iter()
            .any(|existing| existing.id == stored.id)
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("a limit `{}` exists already", stored.id),
            ));
        }
        // Two identical limits would only ever refuse together: the second is a mistake.
        if let Some(twin) = draft.limits.limits.iter().find(|existing| {
            existing.scope == stored.scope
                && existing.metric == stored.metric
                && existing.window == stored.window
                && existing.value == stored.value
                && existing.mode == stored.mode
                && existing.time_zone == stored.time_zone
        }) {
            let mut error = ApiError::new(
                ErrorCode::Conflict,
                format!("the same limit exists already as `{}`", twin.id),
            );
            error.field = Some("value".to_owned());
            return Err(error);
        }
        draft.limits.limits.push(stored);
        Ok(())
    })
    .await?;
    let snapshot = app.store.snapshot();
    let view = app
        .budgets
        .usage(&snapshot)
        .into_iter()
        .find(|limit_use| limit_use.limit.id == limit.id)
        .map(|limit_use| json!(limit_use))
        .unwrap_or_else(|| json!(limit));
    Ok((http::StatusCode::CREATED, axum::Json(view)))
}

/// Body of `PATCH /api/limits/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateLimit {
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    rolling: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
}

/// `PATCH /api/limits/{id}`.
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateLimit>,
) -> Result<axum::Json<Value>, ApiError> {
    let window = parse_window(body.window, body.period, body.rolling)?;
    if let Some(zone) = &body.time_zone {
        parse_time_zone(zone).map_err(|message| ApiError::invalid("time_zone", message))?;
    }
    let updated = super::grants::update(&app, &user, move |draft| {
        let limit = draft
            .limits
            .limits
            .iter_mut()
            .find(|limit| limit.id == id)
            .ok_or_else(|| ApiError::not_found(format!("no limit `{id}`")))?;
        if let Some(value) = body.value {
            limit.value = value;
        }
        if let Some(mode) = body.mode {
            limit.mode = mode;
        }
        if let Some(window) = window {
            limit.window = window;
        }
        if body.time_zone.is_some() {
            limit.time_zone = body.time_zone;
        }
        Ok(limit.clone())
    })
    .await?;
    Ok(axum::Json(json!(updated)))
}

/// `DELETE /api/limits/{id}`.
pub async fn remove(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<http::StatusCode, ApiError> {
    super::grants::update(&app, &user, move |draft| {
        let before = draft.limits.limits.len();
        draft.limits.limits.retain(|limit| limit.id != id);
        if draft.limits.limits.len() == before {
            return Err(ApiError::not_found(format!("no limit `{id}`")));
        }
        Ok(())
    })
    .await?;
    Ok(http::StatusCode::NO_CONTENT)
}
