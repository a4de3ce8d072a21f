//! `/api/usage`: records (newest first, paged, or one trace's), a summary, totals by
//! project, model, token, user and tag, a timeline, and a streamed export (CSV or JSON
//! Lines). Reports read the rollups; records are found through the segment indexes
//! (`store::history`). Every answer covers only the projects the caller may read
//! (`AuthUser::usage_scope`).

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::State;

use super::ApiQuery as Query;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use routerly_api::usage::{
    Bucket, ModelUsage, ProjectUsage, TagUsage, Timeline, TimelinePoint, TokenLastUse, TokenUsage,
    UsageByModel, UsageByProject, UsageByToken, UsageByUser, UsageLastUse, UsagePage, UsageQuery,
    UsageRecord as UsageRecordView, UsageSummary, UsageTotals, UserUsage,
};
use routerly_core::usage::{Outcome, UsageRecord};
use serde_json::Value;

use super::auth::AuthUser;
use super::rbac::ProjectScope;
use super::{ApiError, ErrorCode};
use crate::state::App;
use crate::store::history::{Report, UsageHistory};
use crate::store::rollup::{self, DAY, Dimension, Filter, GroupBy, HOUR};

/// Longest value accepted for a text filter.
const MAX_FILTER_CHARS: usize = 512;

/// A text filter, checked for length; `(none)` means the empty value (no model, no user).
fn text_filter(field: &str, value: &Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(value) if value.chars().count() > MAX_FILTER_CHARS => Err(ApiError::invalid(
            field,
            format!("longer than {MAX_FILTER_CHARS} characters"),
        )),
        // No recorded value holds one (PostgreSQL text cannot): refused in both modes alike.
        Some(value) if value.contains('\0') => {
            Err(ApiError::invalid(field, "contains a NUL character"))
        }
        Some(value) if value == "(none)" => Ok(Some(String::new())),
        Some(value) => Ok(Some(value.clone())),
    }
}

/// The filter `query` asks for, narrowed to the projects the caller may read.
fn filter_for(app: &App, user: &AuthUser, query: &UsageQuery) -> Result<Filter, ApiError> {
    let mut scope = user.usage_scope();
    if let Some(key) = &query.project {
        let snapshot = app.store.snapshot();
        let forbidden = || {
            ApiError::new(
                ErrorCode::Forbidden,
                format!("you may not read the usage of project `{key}`"),
            )
        };
        match snapshot.project(key) {
            Some(project) if scope.includes(&project.id) => {
                scope = ProjectScope::Only([project.id.clone()].into_iter().collect());
            }
            Some(_) => return Err(forbidden()),
            None if scope == ProjectScope::All => {
                return Err(ApiError::not_found(format!("no project `{key}`")));
            }
            None => return Err(forbidden()),
        }
    }
    // Parameters only some routes read are still checked on every route, as documented.
    if query.trace.as_ref().is_some_and(|trace| trace.len() > 64) {
        return Err(ApiError::invalid("trace", "not a trace id"));
    }
    if query.tz.as_ref().is_some_and(|tz| tz.chars().count() > 64) {
        return Err(ApiError::invalid("tz", "not a time zone name"));
    }
    if let Some(bucket) = query.bucket.as_deref()
        && !["hour", "day"].contains(&bucket)
    {
        return Err(ApiError::invalid("bucket", "use hour or day"));
    }
    if let Some(format) = query.format.as_deref()
        && !["csv", "jsonl", "ndjson"].contains(&format)
    {
        return Err(ApiError::invalid("format", "use csv or jsonl"));
    }
    // The document declares both as int64, as most clients read integers.
    for (field, value) in [("limit", query.limit), ("offset", query.offset)] {
        if value.is_some_and(|value| i64::try_from(value).is_err()) {
            return Err(ApiError::invalid(field, "too large"));
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
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from > to
    {
        return Err(ApiError::invalid("from", "`from` is after `to`"));
    }
    Ok(Filter {
        projects: match scope {
            ProjectScope::All => None,
            ProjectScope::Only(ids) => Some(ids.into_iter().collect::<HashSet<String>>()),
        },
        model: text_filter("model", &query.model)?,
        token: text_filter("token", &query.token)?,
        user: text_filter("user", &query.user)?,
        tag: text_filter("tag", &query.tag)?,
        outcome,
        from: query.from.map(|from| from.timestamp()),
        to: query.to.map(|to| {
            // Exclusive: a `to` inside a second still covers the records before it.
            if to.timestamp_subsec_nanos() > 0 {
                to.timestamp() + 1
            } else {
                to.timestamp()
            }
        }),
    })
}

/// Runs `work` on the history off the async workers.
async fn with_history<T: Send + 'static>(
    app: &App,
    work: impl FnOnce(&dyn UsageHistory) -> std::io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let history = app.usage_reads.clone();
    tokio::task::spawn_blocking(move || work(&*history))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// A report for `query` grouped by `group`.
async fn report(
    app: &App,
    user: &AuthUser,
    query: &UsageQuery,
    group: GroupBy,
) -> Result<Report, ApiError> {
    let filter = filter_for(app, user, query)?;
    with_history(app, move |history| history.report(filter, group)).await
}

/// The covered range of a report.
fn covered(report: &Report) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let time = |seconds: Option<i64>| {
        seconds.and_then(|seconds| DateTime::<Utc>::from_timestamp(seconds, 0))
    };
    (time(report.filter.from), time(report.filter.to))
}

/// `GET /api/usage`: records newest first, paged; with `trace`, that trace's records.
#[utoipa::path(get, path = "/api/usage", operation_id = "list_usage", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsagePage)))]
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<UsagePage>, ApiError> {
    let filter = filter_for(&app, &user, &query)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000) as usize;
    let offset = usize::try_from(query.offset.unwrap_or(0))
        .map_err(|_| ApiError::invalid("offset", "too large"))?;
    if let Some(trace) = &query.trace {
        let trace = trace.clone();
        let found = with_history(&app, move |history| history.find_trace(&trace)).await?;
        let records: Vec<UsageRecordView> = found
            .into_iter()
            .filter(|record| filter.matches_in_time(record))
            .map(UsageRecordView::from)
            .collect();
        return Ok(axum::Json(UsagePage {
            total: Some(records.len() as u64),
            records,
            limit: limit as u64,
            offset: 0,
            has_more: false,
        }));
    }
    let page = with_history(&app, move |history| {
        let page = history.page(&filter, offset, limit)?;
        // The total comes from the rollups when they can say it exactly: no time bound
        // inside a bucket, at most one dimension.
        let report = history.report(filter.clone(), GroupBy::Nothing)?;
        let exact = report.from_rollups
            && report.filter.from == filter.from
            && report.filter.to == filter.to;
        let total = exact.then(|| {
            report
                .groups
                .values()
                .map(|group| group.total().calls)
                .sum::<u64>()
        });
        Ok((page, total))
    })
    .await?;
    let (page, total) = page;
    Ok(axum::Json(UsagePage {
        records: page
            .records
            .into_iter()
            .map(UsageRecordView::from)
            .collect(),
        total,
        limit: limit as u64,
        offset: offset as u64,
        has_more: page.has_more,
    }))
}

/// `GET /api/usage/summary`: totals, calls per outcome, latency and time-to-first-token
/// percentiles.
#[utoipa::path(get, path = "/api/usage/summary", operation_id = "usage_summary", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageSummary)))]
pub async fn summary(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<UsageSummary>, ApiError> {
    let report = report(&app, &user, &query, GroupBy::Nothing).await?;
    let totals = report.groups.get("").cloned().unwrap_or_default().view();
    let (from, to) = covered(&report);
    Ok(axum::Json(UsageSummary { totals, from, to }))
}

/// Rows of `report`, most expensive first, each made by `row` from its name (`""` shown as
/// `(none)`) and totals.
fn rows<T>(report: &Report, row: impl Fn(String, UsageTotals) -> T) -> Vec<T> {
    let mut rows: Vec<(&String, UsageTotals)> = report
        .groups
        .iter()
        .map(|(name, group)| (name, group.view()))
        .collect();
    rows.sort_by(|a, b| b.1.cost_usd.total_cmp(&a.1.cost_usd).then(a.0.cmp(b.0)));
    rows.into_iter()
        .map(|(name, totals)| {
            let name = if name.is_empty() {
                "(none)".to_owned()
            } else {
                name.clone()
            };
            row(name, totals)
        })
        .collect()
}

/// `GET /api/usage/by-model`: totals per model, most expensive first.
#[utoipa::path(get, path = "/api/usage/by-model", operation_id = "usage_by_model", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageByModel)))]
pub async fn by_model(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<UsageByModel>, ApiError> {
    let report = report(&app, &user, &query, GroupBy::Dimension(Dimension::Model)).await?;
    let models = rows(&report, |model_id, totals| ModelUsage { model_id, totals });
    Ok(axum::Json(UsageByModel { models }))
}

/// `GET /api/usage/by-project`: totals per project, most expensive first (one request for
/// every project's panel).
#[utoipa::path(get, path = "/api/usage/by-project", operation_id = "usage_by_project", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageByProject)))]
pub async fn by_project(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<UsageByProject>, ApiError> {
    let report = report(&app, &user, &query, GroupBy::Project).await?;
    let projects = rows(&report, |project_id, totals| ProjectUsage {
        project_id,
        totals,
    });
    Ok(axum::Json(UsageByProject { projects }))
}

/// `GET /api/usage/by-token`: totals per project token, most expensive first.
#[utoipa::path(get, path = "/api/usage/by-token", operation_id = "usage_by_token", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageByToken)))]
pub async fn by_token(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<UsageByToken>, ApiError> {
    let report = report(&app, &user, &query, GroupBy::Dimension(Dimension::Token)).await?;
    let tokens = rows(&report, |token_id, totals| TokenUsage { token_id, totals });
    Ok(axum::Json(UsageByToken { tokens }))
}

/// `GET /api/usage/last-use`: when each token was last used (the Tokens tab's column, for
/// every token in one request). The rollups say which tokens have calls at all; only
/// those are looked up, each by its newest record, so a token never used costs nothing.
/// `limit` (default and most 1,000) bounds how many tokens are looked up.
#[utoipa::path(get, path = "/api/usage/last-use", operation_id = "usage_last_use", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageLastUse)))]
pub async fn last_use(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<UsageLastUse>, ApiError> {
    let filter = filter_for(&app, &user, &query)?;
    let limit = query.limit.unwrap_or(1000).clamp(1, 1000) as usize;
    let mut tokens = with_history(&app, move |history| {
        let report = history.report(filter.clone(), GroupBy::Dimension(Dimension::Token))?;
        let mut tokens = Vec::new();
        for token_id in report.groups.keys().filter(|id| !id.is_empty()).take(limit) {
            let of_token = Filter {
                token: Some(token_id.clone()),
                ..filter.clone()
            };
            if let Some(newest) = history.page(&of_token, 0, 1)?.records.into_iter().next() {
                tokens.push(TokenLastUse {
                    token_id: token_id.clone(),
                    last_used_at: newest.timestamp,
                });
            }
        }
        Ok(tokens)
    })
    .await?;
    tokens.sort_by(|a, b| {
        b.last_used_at
            .cmp(&a.last_used_at)
            .then_with(|| a.token_id.cmp(&b.token_id))
    });
    Ok(axum::Json(UsageLastUse { tokens }))
}

/// `GET /api/usage/by-user`: totals per request `user` field and per tag, for spend
/// attribution.
#[utoipa::path(get, path = "/api/usage/by-user", operation_id = "usage_by_user", tag = "usage", params(UsageQuery),
    responses((status = 200, body = UsageByUser)))]
pub async fn by_user(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<UsageByUser>, ApiError> {
    let users = report(&app, &user, &query, GroupBy::Dimension(Dimension::User)).await?;
    let tags = report(&app, &user, &query, GroupBy::Dimension(Dimension::Tag)).await?;
    Ok(axum::Json(UsageByUser {
        users: rows(&users, |user, totals| UserUsage { user, totals }),
        tags: rows(&tags, |tag, totals| TagUsage { tag, totals }),
    }))
}

/// `GET /api/usage/timeline`: totals per hour or day (days from midnight in `tz`), oldest
/// first.
#[utoipa::path(get, path = "/api/usage/timeline", operation_id = "usage_timeline", tag = "usage", params(UsageQuery),
    responses((status = 200, body = Timeline)))]
pub async fn timeline(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<Timeline>, ApiError> {
    let bucket = match query.bucket.as_deref().unwrap_or("day") {
        "hour" => Bucket::Hour,
        "day" => Bucket::Day,
        other => {
            return Err(ApiError::invalid(
                "bucket",
                format!(
                    "unknown bucket `{}`; use hour or day",
                    other.chars().take(40).collect::<String>()
                ),
            ));
        }
    };
    let seconds = match bucket {
        Bucket::Hour => HOUR,
        Bucket::Day => DAY,
    };
    let zone: chrono_tz::Tz = match &query.tz {
        None => chrono_tz::Tz::UTC,
        Some(name) => name.parse().map_err(|_| {
            ApiError::invalid(
                "tz",
                format!(
                    "unknown time zone `{}`",
                    name.chars().take(64).collect::<String>()
                ),
            )
        })?,
    };
    let report = report(&app, &user, &query, GroupBy::Time { seconds, zone }).await?;
    let mut points: Vec<TimelinePoint> = report
        .groups
        .iter()
        .filter_map(|(key, group)| {
            Some(TimelinePoint {
                start: rollup::bucket_time(key)?,
                totals: group.view(),
            })
        })
        .collect();
    points.sort_by_key(|point| point.start);
    let (from, to) = covered(&report);
    Ok(axum::Json(Timeline {
        bucket,
        tz: zone.name().to_owned(),
        from,
        to,
        points,
    }))
}

/// A CSV field, quoted when it needs to be; a field a spreadsheet would run as a formula
/// is prefixed with `'`.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// The CSV columns of [`export`].
pub const CSV_COLUMNS: [&str; 24] = [
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
    "input_cost_usd",
    "output_cost_usd",
    "latency_ms",
    "ttft_ms",
    "outcome",
    "status",
    "error",
    "trace_id",
    "user",
    "tags",
];

/// One record as a CSV line.
fn csv_line(record: &UsageRecord, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let value = serde_json::to_value(record)?;
    for (index, column) in CSV_COLUMNS.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let field = match &value[*column] {
            Value::Null => String::new(),
            Value::String(text) => csv_field(text),
            Value::Array(items) => csv_field(
                &items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            // Numbers and booleans: never formulas (a negative number is a number).
            other => other.to_string(),
        };
        out.extend_from_slice(field.as_bytes());
    }
    out.push(b'\n');
    Ok(())
}

/// Bytes gathered before a chunk of an export is sent.
const EXPORT_CHUNK: usize = 64 * 1024;
/// Chunks an export keeps ready ahead of the client (its memory bound).
const EXPORT_CHUNKS_AHEAD: usize = 4;

/// `GET /api/usage/export`: the matching records, oldest first, as CSV (default) or JSON
/// Lines (`format=jsonl`, the log's lines as they are), streamed as they are read: memory stays constant whatever the
/// size, and a client that hangs up stops the read.
#[utoipa::path(get, path = "/api/usage/export", operation_id = "usage_export", tag = "usage", params(UsageQuery),
    responses((status = 200, description = "The records, oldest first: CSV with a header line, or JSON Lines (each line as the usage log holds it).",
        content(("text/csv"), ("application/x-ndjson")))))]
pub async fn export(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<UsageQuery>,
) -> Result<Response, ApiError> {
    let jsonl = match query.format.as_deref().unwrap_or("csv") {
        "csv" => false,
        "jsonl" | "ndjson" => true,
        other => {
            return Err(ApiError::invalid(
                "format",
                format!(
                    "unknown format `{}`; use csv or jsonl",
                    other.chars().take(40).collect::<String>()
                ),
            ));
        }
    };
    let filter = filter_for(&app, &user, &query)?;
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(EXPORT_CHUNKS_AHEAD);
    let history = app.usage_reads.clone();
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(EXPORT_CHUNK + 4096);
        if !jsonl {
            chunk.extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
            chunk.push(b'\n');
        }
        let send = |chunk: &mut Vec<u8>| {
            let full = std::mem::replace(chunk, Vec::with_capacity(EXPORT_CHUNK + 4096));
            sender.blocking_send(Ok(Bytes::from(full))).is_ok()
        };
        let mut open = true;
        // A panic while reading (a bug) must not end the body as if the file were complete:
        // it is caught here and ends the transfer with an error, as a read error does.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            history.export(&filter, &mut |record, line| {
                // JSON Lines: the log's own line, byte for byte.
                let written = if jsonl {
                    chunk.extend_from_slice(line);
                    chunk.push(b'\n');
                    Ok(())
                } else {
                    csv_line(record, &mut chunk)
                };
                if let Err(error) = written {
                    tracing::error!(record_id = %record.id, %error, "cannot export a usage record");
                }
                if chunk.len() >= EXPORT_CHUNK {
                    open = send(&mut chunk);
                }
                open
            })
        }))
        .unwrap_or_else(|panic| {
            Err(std::io::Error::other(format!(
                "the export stopped: {}",
                crate::panics::panic_message(&*panic)
            )))
        });
        match result {
            Ok(_) if open => {
                if !chunk.is_empty() {
                    send(&mut chunk);
                }
            }
            Ok(_) => {}
            Err(error) => {
                // The status is sent already: end the body with an error so the client sees
                // a truncated transfer, not a complete file.
                tracing::error!(%error, "usage export failed");
                let _ = sender.blocking_send(Err(error));
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let (content_type, name) = if jsonl {
        ("application/x-ndjson", "routerly-usage.jsonl")
    } else {
        ("text/csv; charset=utf-8", "routerly-usage.csv")
    };
    Ok((
        [
            (http::header::CONTENT_TYPE, content_type.to_owned()),
            (
                http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
