//! A project's routing (`/api/projects/{project}/policies`) and routing traces
//! (`/api/traces/{trace_id}`, `/api/projects/{project}/traces[/{trace_id}]`).
//!
//! The policies are read and replaced as a whole, `{policies: [{type, enabled, config}],
//! retries}`: the CLI's `enable`, `disable` and `reorder` are edits of that list. A body
//! with an unknown policy type or a bad parameter is refused with a message naming it.

use axum::extract::{Path, State};

use super::ApiQuery as Query;
use routerly_api::projects::{PolicyView, ReplaceRouting, RoutingView};
use routerly_api::traces::{TraceList, TraceQuery, TraceView};
use routerly_core::routing::{Policy, PolicyEntry, PolicyKind, RoutingConfig};

use super::auth::AuthUser;
use super::rbac::Permission;
use super::{ApiError, ApiJson, project_or_404};
use crate::routing::trace;
use crate::state::App;

/// `routing` as the API shows it; `with_types` adds every policy type there is.
pub(super) fn routing_view(routing: &RoutingConfig, with_types: bool) -> RoutingView {
    RoutingView {
        policies: routing
            .policies
            .iter()
            .map(|entry| PolicyView {
                kind: entry.policy.kind().as_str().to_owned(),
                enabled: entry.enabled,
                config: entry.policy.config_json(),
            })
            .collect(),
        retries: routing.retries,
        types: if with_types {
            PolicyKind::ALL
                .iter()
                .map(|kind| kind.as_str().to_owned())
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// `GET /api/projects/{project}/policies`: the project's routing, with every policy type.
#[utoipa::path(get, path = "/api/projects/{project}/policies", operation_id = "show_project_policies", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name.")), responses((status = 200, body = RoutingView)))]
pub async fn show(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
) -> Result<axum::Json<RoutingView>, ApiError> {
    user.require(Permission::ProjectRead)?;
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    Ok(axum::Json(routing_view(&project.routing, true)))
}

/// `PUT /api/projects/{project}/policies`: replaces the project's routing; each policy's
/// configuration is checked against its type (a 400 names `policies[i]`).
#[utoipa::path(put, path = "/api/projects/{project}/policies", operation_id = "replace_project_policies", tag = "projects",
    params(("project" = String, Path, description = "The project's id, slug or name.")), request_body = ReplaceRouting, responses((status = 200, body = RoutingView)))]
pub async fn replace(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<ReplaceRouting>,
) -> Result<axum::Json<RoutingView>, ApiError> {
    if let Some(retries) = body.retries
        && retries > routerly_core::routing::policy::MAX_RETRIES
    {
        return Err(ApiError::invalid(
            "retries",
            format!(
                "`retries` is {retries}; at most {} are allowed",
                routerly_core::routing::policy::MAX_RETRIES
            ),
        ));
    }
    let policies = body
        .policies
        .into_iter()
        .enumerate()
        .map(|(index, view)| {
            Ok(PolicyEntry {
                enabled: view.enabled,
                policy: Policy::parse(&view.kind, view.config)
                    .map_err(|message| ApiError::invalid(&format!("policies[{index}]"), message))?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    user.require(Permission::ProjectWrite)?;
    let updated = super::grants::update(&app, &user, move |draft| {
        let project = super::projects::find_project(draft, &key)?;
        let routing = RoutingConfig {
            policies,
            retries: body.retries.unwrap_or(project.routing.retries),
        };
        routing
            .validate()
            .map_err(|message| ApiError::invalid("policies", message))?;
        project.routing = routing.clone();
        Ok(routing)
    })
    .await?;
    for policy in updated.enabled() {
        if let Some(window) = crate::routing::window_minutes(policy) {
            app.routing.stats.retain_at_least(window);
        }
    }
    Ok(axum::Json(routing_view(&updated, true)))
}

/// `GET /api/traces/{trace_id}`: the routing trace of one call, to a caller who may read
/// that project's usage (any other trace id answers 404, whether it exists or not).
#[utoipa::path(get, path = "/api/traces/{trace_id}", operation_id = "show_trace", tag = "traces",
    params(("trace_id" = String, Path, description = "The `x-routerly-trace-id` the client received.")),
    responses((status = 200, body = TraceView)))]
pub async fn show_trace(
    State(app): State<App>,
    user: AuthUser,
    Path(trace_id): Path<String>,
) -> Result<axum::Json<TraceView>, ApiError> {
    let not_found = || ApiError::not_found(format!("no trace `{trace_id}`"));
    let found = app
        .routing
        .traces
        .get(&trace_id)
        .await
        .ok_or_else(not_found)?;
    if !user.usage_scope().includes(&found.project_id) {
        return Err(not_found());
    }
    Ok(axum::Json(trace::view(&found)))
}

/// Traces listed at most.
const MAX_TRACES: usize = 500;

/// `GET /api/projects/{project}/traces`: the project's most recent routing traces.
#[utoipa::path(get, path = "/api/projects/{project}/traces", operation_id = "list_project_traces", tag = "traces",
    params(("project" = String, Path, description = "The project's id, slug or name."), TraceQuery),
    responses((status = 200, body = TraceList)))]
pub async fn list_traces(
    State(app): State<App>,
    user: AuthUser,
    Path(key): Path<String>,
    Query(query): Query<TraceQuery>,
) -> Result<axum::Json<TraceList>, ApiError> {
    user.require(Permission::ProjectRead)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_TRACES).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("`limit` is {limit}; use 1 to {MAX_TRACES}"),
        ));
    }
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    let traces = app
        .routing
        .traces
        .recent_of(&project.id, limit)
        .iter()
        .map(|found| trace::view(found))
        .collect();
    Ok(axum::Json(TraceList { traces }))
}

/// `GET /api/projects/{project}/traces/{trace_id}`: one trace of the project.
#[utoipa::path(get, path = "/api/projects/{project}/traces/{trace_id}", operation_id = "show_project_trace", tag = "traces",
    params(("project" = String, Path, description = "The project's id, slug or name."),
        ("trace_id" = String, Path, description = "The `x-routerly-trace-id` the client received.")),
    responses((status = 200, body = TraceView)))]
pub async fn project_trace(
    State(app): State<App>,
    user: AuthUser,
    Path((key, trace_id)): Path<(String, String)>,
) -> Result<axum::Json<TraceView>, ApiError> {
    user.require(Permission::ProjectRead)?;
    let snapshot = app.store.snapshot();
    let project = project_or_404(&snapshot, &key)?;
    let not_found = || ApiError::not_found(format!("no trace `{trace_id}` in project `{key}`"));
    let found = app
        .routing
        .traces
        .get(&trace_id)
        .await
        .ok_or_else(not_found)?;
    if found.project_id != project.id {
        return Err(not_found());
    }
    Ok(axum::Json(trace::view(&found)))
}
