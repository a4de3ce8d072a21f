//! `/api/usage`: the usage log, newest first, paged.

use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::{AuthUser, Permission};
use crate::state::App;
use crate::store::usage_log::read_usage;

/// Query of `GET /api/usage`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Only this project (id, slug or name).
    #[serde(default)]
    project: Option<String>,
    /// Page size (default 50, at most 1000).
    #[serde(default)]
    limit: Option<usize>,
    /// Records to skip.
    #[serde(default)]
    offset: Option<usize>,
}

/// `GET /api/usage`.
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::ReportRead)?;
    let project_id = match &query.project {
        Some(key) => Some(
            app.store
                .snapshot()
                .project(key)
                .map(|project| project.id.clone())
                .ok_or_else(|| ApiError::not_found(format!("no project `{key}`")))?,
        ),
        None => None,
    };
    let path = app.home.usage_log_path();
    let records = tokio::task::spawn_blocking(move || read_usage(&path))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let offset = query.offset.unwrap_or(0);
    let matching: Vec<_> = records
        .into_iter()
        .rev()
        .filter(|record| {
            project_id
                .as_ref()
                .is_none_or(|id| &record.project_id == id)
        })
        .collect();
    let total = matching.len();
    let page: Vec<_> = matching.into_iter().skip(offset).take(limit).collect();
    Ok(axum::Json(
        json!({ "records": page, "total": total, "limit": limit, "offset": offset }),
    ))
}
