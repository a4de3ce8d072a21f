//! `/api/usage`: the usage log and reports over it: records (newest first, paged), a summary,
//! totals by model, by user and by tag, a timeline, and a CSV export. Every answer covers only
//! the projects the caller may read (`AuthUser::usage_scope`).

use std::collections::BTreeMap;

use axum::extract::State;

use super::ApiQuery as Query;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use routerly_core::usage::{Outcome, UsageRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AuthUser;
use super::rbac::ProjectScope;
use super::{ApiError, ErrorCode};
use crate::state::App;
use crate::store::usage_log::read_usage_all;

/// Filters every usage route takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Only this project (id, slug or name).
    #[serde(default)]
    project: Option<String>,
    /// Only this model.
    #[serde(default)]
    model: Option<String>,
    /// Only this token.
    #[serde(default)]
    token: Option<String>,
    /// Only records with this `user` field.
    #[serde(default)]
    user: Option<String>,
    /// Only records carrying this tag.
    #[serde(default)]
    tag: Option<String>,
    /// Only this outcome (`success`, `error`, …).
    #[serde(default)]
    outcome: Option<String>,
    /// From this time (RFC 3339), inclusive.
    #[serde(default)]
    from: Option<DateTime<Utc>>,
    /// Until this time (RFC 3339), exclusive.
    #[serde(default)]
    to: Option<DateTime<Utc>>,
    /// Page size of `GET /api/usage` (default 50, at most 1000).
    #[serde(default)]
    limit: Option<usize>,
    /// Records to skip.
    #[serde(default)]
    offset: Option<usize>,
    /// Timeline bucket: `hour` or `day` (default).
    #[serde(default)]
    bucket: Option<String>,
}

/// The records the caller may see that match `query`, oldest first.
async fn matching_records(
    app: &App,
    user: &AuthUser,
    query: &UsageQuery,
) -> Result<Vec<UsageRecord>, ApiError> {
    let mut scope = user.usage_scope();
    if let Some(key) = &query.project {
        let snapshot = app.store.snapshot();
        let project = snapshot.project(key);
        match project {
            Some(project) if scope.includes(&project.id) => {
                scope = ProjectScope::Only([project.id.clone()].into_iter().collect());
            }
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("you may not read the usage of project `{key}`"),
                ));
            }
            None if scope == ProjectScope::All => {
                return Err(ApiError::not_found(format!("no project `{key}`")));
            }
            None => {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("you may not read the usage of project `{key}`"),
                ));
            }
        }
    }
    let outcome: Option<Outcome> = match &query.outcome {
        Some(outcome) => Some(
            serde_json::from_value(Value::String(outcome.clone())).map_err(|_| {
                ApiError::invalid(
                    "outcome",
                    "use success, error, timeout, budget_exceeded or cancelled",
                )
            })?,
        ),
        None => None,
    };
    let path = app.home.usage_log_path();
    let records = tokio::task::spawn_blocking(move || read_usage_all(&path))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(records
        .into_iter()
        .filter(|record| scope.includes(&record.project_id))
        .filter(|record| {
            query
                .model
                .as_ref()
                .is_none_or(|model| record.model_id.as_ref() == Some(model))
        })
        .filter(|record| {
            query
                .token
                .as_ref()
                .is_none_or(|token| &record.token_id == token)
        })
        .filter(|record| {
            query
                .user
                .as_ref()
                .is_none_or(|user| record.user.as_ref() == Some(user))
        })
        .filter(|record| {
            query
                .tag
                .as_ref()
                .is_none_or(|tag| record.tags.contains(tag))
        })
        .filter(|record| outcome.is_none_or(|outcome| record.outcome == outcome))
        .filter(|record| query.from.is_none_or(|from| record.timestamp >= from))
        .filter(|record| query.to.is_none_or(|to| record.timestamp < to))
        .collect())
}

/// `GET /api/usage`: records newest first, paged.
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let records = matching_records(&app, &user, &query).await?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let offset = query.offset.unwrap_or(0);
    let total = records.len();
    let page: Vec<UsageRecord> = records.into_iter().rev().skip(offset).take(limit).collect();
    Ok(axum::Json(
        json!({ "records": page, "total": total, "limit": limit, "offset": offset }),
    ))
}

/// Running totals over some records.
#[derive(Debug, Default, Clone)]
struct Totals {
    calls: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_input_tokens: u64,
    cost_usd: f64,
    latency_ms_sum: f64,
}

impl Totals {
    fn add(&mut self, record: &UsageRecord) {
        self.calls += 1;
        if record.outcome != Outcome::Success {
            self.errors += 1;
        }
        self.input_tokens += record.input_tokens;
        self.output_tokens += record.output_tokens;
        self.cached_input_tokens += record.cached_input_tokens;
        self.cost_usd += record.cost_usd;
        self.latency_ms_sum += record.latency_ms;
    }

    fn view(&self) -> Value {
        json!({
            "calls": self.calls,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost_usd": self.cost_usd,
            "avg_latency_ms": if self.calls == 0 { 0.0 } else { self.latency_ms_sum / self.calls as f64 },
        })
    }
}

fn grouped(groups: BTreeMap<String, Totals>, key: &str) -> Vec<Value> {
    let mut rows: Vec<(String, Totals)> = groups.into_iter().collect();
    rows.sort_by(|a, b| b.1.cost_usd.total_cmp(&a.1.cost_usd).then(a.0.cmp(&b.0)));
    rows.into_iter()
        .map(|(name, totals)| {
            let mut row = totals.view();
            row[key] = Value::String(name);
            row
        })
        .collect()
}

/// `GET /api/usage/summary`: totals and calls per outcome.
pub async fn summary(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let records = matching_records(&app, &user, &query).await?;
    let mut totals = Totals::default();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for record in &records {
        totals.add(record);
        let outcome = serde_json::to_value(record.outcome)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        *outcomes.entry(outcome).or_default() += 1;
    }
    let mut view = totals.view();
    view["by_outcome"] = json!(outcomes);
    view["from"] = json!(query.from);
    view["to"] = json!(query.to);
    Ok(axum::Json(view))
}

/// `GET /api/usage/by-model`: totals per model, most expensive first.
pub async fn by_model(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let records = matching_records(&app, &user, &query).await?;
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    for record in &records {
        let model = record
            .model_id
            .clone()
            .unwrap_or_else(|| "(none)".to_owned());
        groups.entry(model).or_default().add(record);
    }
    Ok(axum::Json(json!({ "models": grouped(groups, "model_id") })))
}

/// `GET /api/usage/by-user`: totals per request `user` field and per tag, for spend
/// attribution.
pub async fn by_user(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let records = matching_records(&app, &user, &query).await?;
    let mut users: BTreeMap<String, Totals> = BTreeMap::new();
    let mut tags: BTreeMap<String, Totals> = BTreeMap::new();
    for record in &records {
        let name = record.user.clone().unwrap_or_else(|| "(none)".to_owned());
        users.entry(name).or_default().add(record);
        for tag in &record.tags {
            tags.entry(tag.clone()).or_default().add(record);
        }
    }
    Ok(axum::Json(json!({
        "users": grouped(users, "user"),
        "tags": grouped(tags, "tag"),
    })))
}

/// `GET /api/usage/timeline`: totals per hour or day, oldest first.
pub async fn timeline(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let bucket_seconds: i64 = match query.bucket.as_deref().unwrap_or("day") {
        "hour" => 3600,
        "day" => 86_400,
        other => {
            return Err(ApiError::invalid(
                "bucket",
                format!("unknown bucket `{other}`; use hour or day"),
            ));
        }
    };
    let records = matching_records(&app, &user, &query).await?;
    let mut buckets: BTreeMap<i64, Totals> = BTreeMap::new();
    for record in &records {
        let seconds = record.timestamp.timestamp();
        let start = seconds - seconds.rem_euclid(bucket_seconds);
        buckets.entry(start).or_default().add(record);
    }
    let points: Vec<Value> = buckets
        .into_iter()
        .map(|(start, totals)| {
            let mut point = totals.view();
            point["start"] = json!(Utc.timestamp_opt(start, 0).single());
            point
        })
        .collect();
    Ok(axum::Json(json!({
        "bucket": if bucket_seconds == 3600 { "hour" } else { "day" },
        "points": points,
    })))
}

/// A CSV field, quoted when it needs to be.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The CSV columns of [`export`].
const CSV_COLUMNS: [&str; 21] = [
    "id",
    "timestamp",
    "project_id",
    "token_id",
    "model_id",
    "provider",
    "surface",
    "call_type",
    "stream",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "outcome",
    "status",
    "trace_id",
    "user",
    "tags",
];

/// `GET /api/usage/export`: the matching records as CSV, oldest first.
pub async fn export(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<Response, ApiError> {
    let records = matching_records(&app, &user, &query).await?;
    let mut csv = CSV_COLUMNS.join(",");
    csv.push('\n');
    for record in &records {
        let value = serde_json::to_value(record).map_err(ApiError::internal)?;
        let fields: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|column| match &value[*column] {
                Value::Null => String::new(),
                Value::String(text) => csv_field(text),
                Value::Array(items) => csv_field(
                    &items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(";"),
                ),
                other => other.to_string(),
            })
            .collect();
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    Ok((
        [
            (http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"routerly-usage.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}
