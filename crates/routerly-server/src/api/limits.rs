//! `/api/limits` (budgets and rate limits at every level, with their current use),
//! `/api/usage/limits` (spend against each limit) and `/api/alerts` (the alerts sent).
//!
//! Who may change a limit, and which limits a change may lift, is decided with every other
//! grant in [`super::grants`]. Listings show the limits of the projects whose usage the caller may
//! read, and the global and model limits to callers who may read every project's usage.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use routerly_api::limits::{
    AlertDelivery, AlertKind, AlertList, AlertRecord, CreateLimit, DeliveryOutcome, LimitList,
    LimitMetric, LimitMode, LimitRefusal, LimitUse, UpdateLimit,
};
use routerly_core::alerts::EventKind;
use routerly_core::limits::{Limit, Metric, Mode, Scope, Window, parse_time_zone};
use serde::Deserialize;

use super::ApiQuery as Query;
use super::auth::AuthUser;
use super::rbac::ProjectScope;
use super::{ApiError, ApiJson, ErrorCode};
use crate::notify::Outcome;
use crate::state::App;
use crate::store::config::Snapshot;

fn metric_view(metric: Metric) -> LimitMetric {
    match metric {
        Metric::Cost => LimitMetric::Cost,
        Metric::Calls => LimitMetric::Calls,
        Metric::InputTokens => LimitMetric::InputTokens,
        Metric::OutputTokens => LimitMetric::OutputTokens,
        Metric::TotalTokens => LimitMetric::TotalTokens,
    }
}

fn metric_of(metric: LimitMetric) -> Metric {
    match metric {
        LimitMetric::Cost => Metric::Cost,
        LimitMetric::Calls => Metric::Calls,
        LimitMetric::InputTokens => Metric::InputTokens,
        LimitMetric::OutputTokens => Metric::OutputTokens,
        LimitMetric::TotalTokens => Metric::TotalTokens,
    }
}

fn mode_view(mode: Mode) -> LimitMode {
    match mode {
        Mode::Extend => LimitMode::Extend,
        Mode::Replace => LimitMode::Replace,
        Mode::Disable => LimitMode::Disable,
    }
}

fn mode_of(mode: LimitMode) -> Mode {
    match mode {
        LimitMode::Extend => Mode::Extend,
        LimitMode::Replace => Mode::Replace,
        LimitMode::Disable => Mode::Disable,
    }
}

fn use_view(limit_use: crate::budgets::LimitUse) -> LimitUse {
    let limit = limit_use.limit;
    LimitUse {
        id: limit.id,
        scope: limit.scope.to_string(),
        metric: metric_view(limit.metric),
        window: limit.window.to_string(),
        value: limit.value,
        mode: mode_view(limit.mode),
        time_zone: limit.time_zone,
        level: limit_use.level.to_owned(),
        used: limit_use.used,
        reserved: limit_use.reserved,
        percent: limit_use.percent,
        window_start: limit_use.window_start,
        resets_at: limit_use.resets_at,
        last_refusal: limit_use.last_refusal.map(|refusal| LimitRefusal {
            at: refusal.at,
            needed: refusal.needed,
        }),
    }
}

/// The limit `id` with its use, if the caller may see it.
fn use_of(app: &App, user: &AuthUser, id: &str) -> Result<LimitUse, ApiError> {
    let snapshot = app.store.snapshot();
    app.budgets
        .usage(&snapshot)
        .into_iter()
        .find(|limit_use| limit_use.limit.id == id && visible(user, &snapshot, &limit_use.limit))
        .map(use_view)
        .ok_or_else(|| ApiError::not_found(format!("no limit `{id}`")))
}

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
    scope_visible(user, snapshot, Some(&limit.scope))
}

/// Whether `user` may see what concerns `scope` (unknown: only callers who see everything).
fn scope_visible(user: &AuthUser, snapshot: &Snapshot, scope: Option<&Scope>) -> bool {
    match user.usage_scope() {
        ProjectScope::All => true,
        wanted => scope
            .and_then(|scope| owning_project(snapshot, scope))
            .is_some_and(|id| wanted.includes(id)),
    }
}

/// Resolves a project given by id, slug or name in `scope` to its id; checks that a
/// token or model it names exists.
fn resolve_scope(snapshot: &Snapshot, scope: Scope) -> Result<Scope, ApiError> {
    let project_id = |key: &str| {
        snapshot
            .project(key)
            .map(|project| std::sync::Arc::<str>::from(project.id.as_str()))
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

fn listing(app: &App, user: &AuthUser, query: &LimitsQuery) -> Result<LimitList, ApiError> {
    let snapshot = app.store.snapshot();
    // `?scope=` (a form's empty filter) filters nothing; a scope naming nothing that exists
    // matches no limit (a filter, not a reference to check).
    let wanted = match query
        .scope
        .as_deref()
        .filter(|text| !text.trim().is_empty())
    {
        Some(text) => {
            let scope =
                Scope::parse(text).map_err(|message| ApiError::invalid("scope", message))?;
            match resolve_scope(&snapshot, scope) {
                Ok(scope) => Some(scope),
                Err(_) => return Ok(LimitList { limits: Vec::new() }),
            }
        }
        None => None,
    };
    let limits = app
        .budgets
        .usage(&snapshot)
        .into_iter()
        .filter(|limit_use| {
            wanted
                .as_ref()
                .is_none_or(|scope| &limit_use.limit.scope == scope)
        })
        .filter(|limit_use| visible(user, &snapshot, &limit_use.limit))
        .map(use_view)
        .collect();
    Ok(LimitList { limits })
}

/// `GET /api/limits`: the limits the caller may see, with their use and reset time.
#[utoipa::path(get, path = "/api/limits", tag = "limits", operation_id = "list_limits",
    params(("scope" = Option<String>, Query, description = "Only limits with this scope (`global`, `project:alpha`, …; projects by id, slug or name); empty: every limit.", pattern = r"^(global|model:[^/\s]+|(project|token):[^/\s]+(/model:[^/\s]+)?)?$")),
    responses((status = 200, body = LimitList)))]
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<LimitsQuery>,
) -> Result<axum::Json<LimitList>, ApiError> {
    Ok(axum::Json(listing(&app, &user, &query)?))
}

/// `GET /api/usage/limits`: spend against each limit (the same view as `GET /api/limits`).
#[utoipa::path(get, path = "/api/usage/limits", tag = "limits", operation_id = "limit_usage",
    params(("scope" = Option<String>, Query, description = "Only limits with this scope.", pattern = r"^(global|model:[^/\s]+|(project|token):[^/\s]+(/model:[^/\s]+)?)?$")),
    responses((status = 200, body = LimitList)))]
pub async fn usage(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<LimitsQuery>,
) -> Result<axum::Json<LimitList>, ApiError> {
    Ok(axum::Json(listing(&app, &user, &query)?))
}

/// `GET /api/limits/{id}`.
#[utoipa::path(get, path = "/api/limits/{id}", tag = "limits", operation_id = "show_limit",
    params(("id" = String, Path, description = "The limit's id.")),
    responses((status = 200, body = LimitUse)))]
pub async fn show(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<LimitUse>, ApiError> {
    use_of(&app, &user, &id).map(axum::Json)
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

/// The limit in `limits` other than `limit` itself that says the same: two identical limits
/// would only ever refuse together, so the second is a mistake.
fn twin<'l>(limits: &'l [Limit], limit: &Limit) -> Option<&'l Limit> {
    limits.iter().find(|existing| {
        existing.id != limit.id
            && existing.scope == limit.scope
            && existing.metric == limit.metric
            && existing.window == limit.window
            && existing.value == limit.value
            && existing.mode == limit.mode
            && existing.time_zone == limit.time_zone
    })
}

fn twin_error(twin: &Limit) -> ApiError {
    let mut error = ApiError::new(
        ErrorCode::Conflict,
        format!("the same limit exists already as `{}`", twin.id),
    );
    error.field = Some("value".to_owned());
    error
}

/// `POST /api/limits`: a new limit; refused (409) when its id is taken or an identical limit
/// exists. Who may add which limit is decided in `grants`.
#[utoipa::path(post, path = "/api/limits", tag = "limits", operation_id = "create_limit",
    request_body = CreateLimit, responses((status = 201, body = LimitUse)))]
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateLimit>,
) -> Result<(http::StatusCode, axum::Json<LimitUse>), ApiError> {
    let snapshot = app.store.snapshot();
    let scope = Scope::parse(&body.scope).map_err(|message| ApiError::invalid("scope", message))?;
    let scope = resolve_scope(&snapshot, scope)?;
    let window = parse_window(body.window, body.period, body.rolling)?
        .ok_or_else(|| ApiError::invalid("window", "a limit needs a window: period or rolling"))?;
    if let Some(zone) = &body.time_zone {
        parse_time_zone(zone).map_err(|message| ApiError::invalid("time_zone", message))?;
    }
    if body.id.as_deref().is_some_and(|id| id.trim().is_empty()) {
        return Err(ApiError::invalid("id", "a chosen id cannot be blank"));
    }
    let limit = Limit {
        id: body
            .id
            .unwrap_or_else(|| format!("lim-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])),
        scope,
        metric: metric_of(body.metric),
        window,
        value: body.value,
        mode: body.mode.map(mode_of).unwrap_or_default(),
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
            let mut error = ApiError::new(
                ErrorCode::Conflict,
                format!("a limit `{}` exists already", stored.id),
            );
            error.field = Some("id".to_owned());
            return Err(error);
        }
        if let Some(twin) = twin(&draft.limits.limits, &stored) {
            return Err(twin_error(twin));
        }
        draft.limits.limits.push(stored);
        Ok(())
    })
    .await?;
    Ok((
        http::StatusCode::CREATED,
        axum::Json(use_of(&app, &user, &limit.id)?),
    ))
}

/// `PATCH /api/limits/{id}`: changes the fields given; refused (409) when the change would
/// make it identical to another limit.
#[utoipa::path(patch, path = "/api/limits/{id}", tag = "limits", operation_id = "update_limit",
    params(("id" = String, Path, description = "The limit's id.")),
    request_body = UpdateLimit, responses((status = 200, body = LimitUse)))]
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateLimit>,
) -> Result<axum::Json<LimitUse>, ApiError> {
    let window = parse_window(body.window, body.period, body.rolling)?;
    if let Some(zone) = &body.time_zone {
        parse_time_zone(zone).map_err(|message| ApiError::invalid("time_zone", message))?;
    }
    let wanted = id.clone();
    super::grants::update(&app, &user, move |draft| {
        let index = draft
            .limits
            .limits
            .iter()
            .position(|limit| limit.id == wanted)
            .ok_or_else(|| ApiError::not_found(format!("no limit `{wanted}`")))?;
        let mut limit = draft.limits.limits[index].clone();
        if let Some(value) = body.value {
            limit.value = value;
        }
        if let Some(mode) = body.mode {
            limit.mode = mode_of(mode);
        }
        if let Some(window) = window {
            limit.window = window;
        }
        if body.time_zone.is_some() {
            limit.time_zone = body.time_zone;
        }
        if let Some(twin) = twin(&draft.limits.limits, &limit) {
            return Err(twin_error(twin));
        }
        draft.limits.limits[index] = limit;
        Ok(())
    })
    .await?;
    use_of(&app, &user, &id).map(axum::Json)
}

/// `DELETE /api/limits/{id}`.
#[utoipa::path(delete, path = "/api/limits/{id}", tag = "limits", operation_id = "remove_limit",
    params(("id" = String, Path, description = "The limit's id.")),
    responses((status = 204, description = "The limit is removed.")))]
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

fn outcome_view(outcome: Outcome) -> DeliveryOutcome {
    match outcome {
        Outcome::Pending => DeliveryOutcome::Pending,
        Outcome::Delivered => DeliveryOutcome::Delivered,
        Outcome::Failed => DeliveryOutcome::Failed,
    }
}

/// `GET /api/alerts`: the budget alerts sent, newest first, with their delivery to each
/// channel: those about limits of the projects whose usage the caller may read, and every
/// alert to callers who may read every project's usage. Delivery errors are not shown (they
/// may name a channel's secret URL); the service log has them.
#[utoipa::path(get, path = "/api/alerts", tag = "limits", operation_id = "list_alerts",
    responses((status = 200, body = AlertList)))]
pub async fn alerts(
    State(app): State<App>,
    user: AuthUser,
) -> Result<axum::Json<AlertList>, ApiError> {
    let snapshot = app.store.snapshot();
    let alerts = app
        .budgets
        .alerts()
        .await
        .into_iter()
        .rev()
        .filter_map(|entry| {
            let event = match entry.key.event {
                EventKind::Threshold => AlertKind::Threshold,
                EventKind::Exhausted => AlertKind::Exhausted,
                EventKind::Reset => AlertKind::Reset,
                EventKind::Test => return None,
            };
            // The scope it had when it fired; else the limit's own, if it still exists.
            let scope = entry
                .scope
                .as_deref()
                .and_then(|text| Scope::parse(text).ok())
                .or_else(|| {
                    snapshot
                        .limits
                        .limits
                        .iter()
                        .find(|limit| limit.id == entry.key.limit_id)
                        .map(|limit| limit.scope.clone())
                });
            if !scope_visible(&user, &snapshot, scope.as_ref()) {
                return None;
            }
            Some(AlertRecord {
                limit_id: entry.key.limit_id,
                scope: scope.map(|scope| scope.to_string()),
                event,
                threshold: entry.key.threshold,
                window_start: DateTime::<Utc>::from_timestamp(entry.key.window_start, 0)
                    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
                fired_at: entry.fired_at,
                message: entry.message,
                deliveries: entry
                    .deliveries
                    .into_iter()
                    .map(|delivery| AlertDelivery {
                        channel: delivery.channel,
                        outcome: outcome_view(delivery.outcome),
                        attempts: delivery.attempts,
                        finished_at: delivery.finished_at,
                    })
                    .collect(),
            })
        })
        .collect();
    Ok(axum::Json(AlertList { alerts }))
}
