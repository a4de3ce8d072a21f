//! `/api/usage`: usage records, and totals over them (a summary, per model, project, token,
//! user and tag, and a timeline). Every answer covers only the projects the caller may read.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use routerly_core::usage as core;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::{IntoParams, ToSchema};

/// The filters every `/api/usage` route takes, as query parameters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Only this project (id, slug or name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 512)]
    pub project: Option<String>,
    /// Only this model (`(none)`: calls where no model was tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 512)]
    pub model: Option<String>,
    /// Only this token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 512)]
    pub token: Option<String>,
    /// Only records with this `user` field (`(none)`: without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 512)]
    pub user: Option<String>,
    /// Only records carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 512)]
    pub tag: Option<String>,
    /// Only this outcome (`success`, `error`, `timeout`, `budget_exceeded`, `cancelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<Outcome>)]
    pub outcome: Option<String>,
    /// From this time (RFC 3339), inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Until this time (RFC 3339), exclusive; not before `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Page size of `GET /api/usage` (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 0)]
    pub limit: Option<u64>,
    /// Records to skip (`GET /api/usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 0)]
    pub offset: Option<u64>,
    /// Only the records of this trace id (`GET /api/usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 64)]
    pub trace: Option<String>,
    /// Timeline bucket (`GET /api/usage/timeline`): `hour` or `day` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<Bucket>)]
    pub bucket: Option<String>,
    /// Time zone whose midnights start timeline days (IANA name, default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 64)]
    pub tz: Option<String>,
    /// Export format (`GET /api/usage/export`): `csv` (default) or `jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<ExportFormat>)]
    pub format: Option<String>,
}

/// A timeline's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// One hour.
    Hour,
    /// One day, from midnight in the timeline's time zone.
    Day,
}

/// The format of `GET /api/usage/export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One usage record as JSON per line (also accepted as `ndjson`).
    Jsonl,
}

/// How a call ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema, TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The client got its answer.
    Success,
    /// It failed (provider error, bad request, no candidate).
    Error,
    /// A provider timed out.
    Timeout,
    /// A budget stopped it before any provider was called.
    BudgetExceeded,
    /// The client hung up before the answer was complete.
    Cancelled,
}

/// Which client surface a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/embeddings`.
    Embeddings,
}

/// What a call was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum CallType {
    /// A client's completion.
    Completion,
    /// A routing model's call.
    Routing,
    /// An embedding.
    Embedding,
}

/// One call as the usage log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UsageRecord {
    /// The record's id.
    pub id: String,
    /// When the call started.
    #[ts(type = "string")]
    pub timestamp: DateTime<Utc>,
    /// The project's id.
    pub project_id: String,
    /// The project token's id.
    pub token_id: String,
    /// The model that answered (or was tried last); `null` when none was tried.
    pub model_id: Option<String>,
    /// That model's provider.
    pub provider: Option<String>,
    /// The client surface.
    pub surface: Surface,
    /// What the call was for.
    pub call_type: CallType,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// Uncached input tokens.
    #[ts(type = "number")]
    pub input_tokens: u64,
    /// Output tokens.
    #[ts(type = "number")]
    pub output_tokens: u64,
    /// Input tokens read from cache.
    #[ts(type = "number")]
    pub cached_input_tokens: u64,
    /// Input tokens written to cache.
    #[ts(type = "number")]
    pub cache_write_tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Of which the input side.
    pub input_cost_usd: f64,
    /// Of which the output side.
    pub output_cost_usd: f64,
    /// From the call's arrival to its last byte, in milliseconds.
    pub latency_ms: f64,
    /// Time to the first token of a stream, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Time Routerly itself spent, in milliseconds.
    pub overhead_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status the client got.
    pub status: u16,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The id the client got in `x-routerly-trace-id`.
    pub trace_id: String,
    /// The request's `user` field.
    pub user: Option<String>,
    /// Tags from `x-routerly-tags`.
    pub tags: Vec<String>,
    /// Models tried before the one that answered, with why each failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<Attempt>>", optional)]
    pub attempts: Vec<Attempt>,
    /// The model the client asked for, when routing served another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub requested_model: Option<String>,
}

/// A model tried before the one that answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Attempt {
    /// The model.
    pub model_id: String,
    /// Why it failed.
    pub error: String,
    /// The provider's HTTP status, when it answered.
    pub status: Option<u16>,
}

/// `GET /api/usage`: a page of records, newest first (or one trace's records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UsagePage {
    /// The records.
    pub records: Vec<UsageRecord>,
    /// How many records match, when the rollups can say it exactly; else `null`.
    #[ts(type = "number | null")]
    pub total: Option<u64>,
    /// The page size.
    #[ts(type = "number")]
    pub limit: u64,
    /// Records skipped.
    #[ts(type = "number")]
    pub offset: u64,
    /// Whether more records follow this page.
    pub has_more: bool,
}

/// Totals over a set of calls.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
pub struct UsageTotals {
    /// Calls.
    #[ts(type = "number")]
    pub calls: u64,
    /// Calls that did not succeed.
    #[ts(type = "number")]
    pub errors: u64,
    /// Calls that reached a provider (not refused by a budget, not cancelled).
    #[ts(type = "number")]
    pub provider_calls: u64,
    /// Of those, the ones that failed (error or timeout).
    #[ts(type = "number")]
    pub provider_errors: u64,
    /// Calls refused by a budget before any provider was called.
    #[ts(type = "number")]
    pub refused: u64,
    /// Mean latency of the calls that reached a provider (ms).
    pub provider_avg_latency_ms: f64,
    /// Calls per outcome (outcomes without calls left out).
    #[ts(type = "Partial<Record<Outcome, number>>")]
    pub by_outcome: BTreeMap<Outcome, u64>,
    /// Uncached input tokens.
    #[ts(type = "number")]
    pub input_tokens: u64,
    /// Output tokens.
    #[ts(type = "number")]
    pub output_tokens: u64,
    /// Input tokens read from cache.
    #[ts(type = "number")]
    pub cached_input_tokens: u64,
    /// Input tokens written to cache.
    #[ts(type = "number")]
    pub cache_write_tokens: u64,
    /// Input plus output tokens.
    #[ts(type = "number")]
    pub total_tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Of which the input side.
    pub input_cost_usd: f64,
    /// Of which the output side.
    pub output_cost_usd: f64,
    /// Mean latency of every call (ms).
    pub avg_latency_ms: f64,
    /// Median latency (ms) of the calls that reached a provider (budget refusals and
    /// cancellations left out, as in `provider_avg_latency_ms`), from sketches with 2 %
    /// accuracy; `null` where there is none.
    pub p50_latency_ms: Option<f64>,
    /// 95th percentile latency (ms) of the calls that reached a provider; `null` where
    /// there is none.
    pub p95_latency_ms: Option<f64>,
    /// Mean time to first token of streams (ms).
    pub avg_ttft_ms: f64,
    /// Median time to first token (ms) of the calls that reached a provider; `null` where
    /// there is none.
    pub p50_ttft_ms: Option<f64>,
    /// 95th percentile time to first token (ms) of the calls that reached a provider;
    /// `null` where there is none.
    pub p95_ttft_ms: Option<f64>,
}

/// `GET /api/usage/summary`: totals over the filtered calls and the range they cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UsageSummary {
    /// The totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: UsageTotals,
    /// Start of the range the totals cover; `null`: from the first record.
    #[ts(type = "string | null")]
    pub from: Option<DateTime<Utc>>,
    /// End of the range (exclusive); `null`: up to now.
    #[ts(type = "string | null")]
    pub to: Option<DateTime<Utc>>,
}

/// Totals of one model; `(none)` for calls refused before a model was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ModelUsage {
    /// The model's id, or `(none)`.
    pub model_id: String,
    /// Its totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: UsageTotals,
}

/// Totals of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ProjectUsage {
    /// The project's id.
    pub project_id: String,
    /// Its totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: UsageTotals,
}

/// Totals of one project token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct TokenUsage {
    /// The token's id.
    pub token_id: String,
    /// Its totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: UsageTotals,
}

/// Totals of one request `user` field; `(none)` for calls without one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UserUsage {
    /// The `user` field, or `(none)`.
    pub user: String,
    /// Its totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: UsageTotals,
}

/// Totals of one tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct TagUsage {
    /// The tag.
    pub tag: String,
    /// Its totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: UsageTotals,
}

/// `GET /api/usage/by-model`: most expensive first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UsageByModel {
    /// One row per model.
    pub models: Vec<ModelUsage>,
}

/// `GET /api/usage/by-project`: most expensive first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UsageByProject {
    /// One row per project.
    pub projects: Vec<ProjectUsage>,
}

/// `GET /api/usage/by-token`: most expensive first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UsageByToken {
    /// One row per token.
    pub tokens: Vec<TokenUsage>,
}

/// When one project token was last used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct TokenLastUse {
    /// The token's id.
    pub token_id: String,
    /// The time of its newest usage record matching the filter.
    #[ts(type = "string")]
    pub last_used_at: DateTime<Utc>,
}

/// `GET /api/usage/last-use`: the newest call of each token, most recent first; tokens
/// without a matching call are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UsageLastUse {
    /// One row per token that has a matching call.
    pub tokens: Vec<TokenLastUse>,
}

/// `GET /api/usage/by-user`: per `user` field and per tag, most expensive first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UsageByUser {
    /// One row per `user` field.
    pub users: Vec<UserUsage>,
    /// One row per tag.
    pub tags: Vec<TagUsage>,
}

/// One bucket of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct TimelinePoint {
    /// When the bucket starts.
    #[ts(type = "string")]
    pub start: DateTime<Utc>,
    /// Its totals.
    #[serde(flatten)]
    #[ts(flatten)]
    pub totals: UsageTotals,
}

/// `GET /api/usage/timeline`: buckets with calls, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Timeline {
    /// The bucket size.
    pub bucket: Bucket,
    /// The time zone whose midnights start days.
    pub tz: String,
    /// Start of the covered range; `null`: from the first record.
    #[ts(type = "string | null")]
    pub from: Option<DateTime<Utc>>,
    /// End of the covered range (exclusive); `null`: up to now.
    #[ts(type = "string | null")]
    pub to: Option<DateTime<Utc>>,
    /// The buckets that have calls.
    pub points: Vec<TimelinePoint>,
}

impl From<core::Outcome> for Outcome {
    fn from(outcome: core::Outcome) -> Self {
        match outcome {
            core::Outcome::Success => Outcome::Success,
            core::Outcome::Error => Outcome::Error,
            core::Outcome::Timeout => Outcome::Timeout,
            core::Outcome::BudgetExceeded => Outcome::BudgetExceeded,
            core::Outcome::Cancelled => Outcome::Cancelled,
        }
    }
}

impl From<Outcome> for core::Outcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => core::Outcome::Success,
            Outcome::Error => core::Outcome::Error,
            Outcome::Timeout => core::Outcome::Timeout,
            Outcome::BudgetExceeded => core::Outcome::BudgetExceeded,
            Outcome::Cancelled => core::Outcome::Cancelled,
        }
    }
}

impl From<core::UsageRecord> for UsageRecord {
    fn from(record: core::UsageRecord) -> Self {
        UsageRecord {
            id: record.id,
            timestamp: record.timestamp,
            project_id: record.project_id,
            token_id: record.token_id,
            model_id: record.model_id,
            provider: record.provider,
            surface: match record.surface {
                core::Surface::ChatCompletions => Surface::ChatCompletions,
                core::Surface::Messages => Surface::Messages,
                core::Surface::Responses => Surface::Responses,
                core::Surface::Embeddings => Surface::Embeddings,
            },
            call_type: match record.call_type {
                core::CallType::Completion => CallType::Completion,
                core::CallType::Routing => CallType::Routing,
                core::CallType::Embedding => CallType::Embedding,
            },
            stream: record.stream,
            input_tokens: record.input_tokens,
            output_tokens: record.output_tokens,
            cached_input_tokens: record.cached_input_tokens,
            cache_write_tokens: record.cache_write_tokens,
            cost_usd: record.cost_usd,
            input_cost_usd: record.input_cost_usd,
            output_cost_usd: record.output_cost_usd,
            latency_ms: record.latency_ms,
            ttft_ms: record.ttft_ms,
            overhead_ms: record.overhead_ms,
            outcome: record.outcome.into(),
            status: record.status,
            error: record.error,
            trace_id: record.trace_id,
            user: record.user,
            tags: record.tags,
            attempts: record
                .attempts
                .into_iter()
                .map(|attempt| Attempt {
                    model_id: attempt.model_id,
                    error: attempt.error,
                    status: attempt.status,
                })
                .collect(),
            requested_model: record.requested_model,
        }
    }
}
