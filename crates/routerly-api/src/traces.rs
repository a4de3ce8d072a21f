//! `/api/traces/{trace_id}` and `/api/projects/{project}/traces`: the routing trace of a
//! call (found by the `x-routerly-trace-id` its client received): the candidates, each
//! policy's scores, the final order and every attempt.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::{IntoParams, ToSchema};

/// One routing decision and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct TraceView {
    /// The call's trace id (its usage record's `trace_id`, the `x-routerly-trace-id` header).
    pub id: String,
    /// The project's id.
    pub project_id: String,
    /// When the call arrived.
    #[ts(type = "string")]
    pub created_at: DateTime<Utc>,
    /// The model name the client asked for.
    pub requested_model: String,
    /// Candidates after the token's models and the model-level budgets, in configured order.
    pub candidates: Vec<String>,
    /// Candidates dropped before the policies because their own limits had no room.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>", optional)]
    pub dropped_by_budget: Vec<String>,
    /// Each enabled policy, in order.
    pub policies: Vec<PolicyTraceView>,
    /// The final order (the fallback order), best first.
    pub ranking: Vec<RankedModelView>,
    /// Whether the order is an even shuffle (every policy left out).
    pub shuffled: bool,
    /// Microseconds spent choosing.
    pub routing_us: u64,
    /// Every attempt, retries included.
    pub attempts: Vec<AttemptTraceView>,
    /// The model that served, if any.
    #[ts(type = "string | null")]
    pub served_by: Option<String>,
    /// How the call ended (`success`, `error`, `timeout`, …), once it has.
    #[ts(type = "string | null")]
    pub outcome: Option<String>,
    /// The status returned to the client.
    #[ts(type = "number | null")]
    pub status: Option<u16>,
}

/// One policy's part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct PolicyTraceView {
    /// The policy type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `weighted`, `uniform` (left out of the mean), or `failed` (skipped).
    pub status: String,
    /// Its weight in the mean when it counted.
    #[ts(type = "number | null")]
    pub weight: Option<u32>,
    /// Score per candidate.
    pub scores: Vec<ModelScoreView>,
    /// Why it failed, or what it decided (the intent, the routing model's reasons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub detail: Option<String>,
    /// Microseconds it took.
    pub duration_us: u64,
}

/// A candidate's score from one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ModelScoreView {
    /// The model.
    pub model: String,
    /// Its score, 0 to 1.
    pub score: f64,
    /// Why the policy excluded it (for instance `circuit open: cooling down`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub excluded: Option<String>,
}

/// A place in the final ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct RankedModelView {
    /// The model.
    pub model: String,
    /// The weighted mean, when any policy counted.
    #[ts(type = "number | null")]
    pub score: Option<f64>,
}

/// One try of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct AttemptTraceView {
    /// The model.
    pub model: String,
    /// 0 for the first try of this model, 1 for its first retry, …
    pub retry: u32,
    /// Backoff waited before this try, in milliseconds.
    pub waited_ms: f64,
    /// When it began, in milliseconds after the call arrived.
    pub started_ms: f64,
    /// How long it took until an answer or a failure, in milliseconds.
    #[ts(type = "number | null")]
    pub duration_ms: Option<f64>,
    /// `success`, `failed`, or `rejected` (the provider refused the request itself).
    pub outcome: String,
    /// The provider's status, when it answered.
    #[ts(type = "number | null")]
    pub status: Option<u16>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
    /// What the translation for this model left out (the `x-routerly-dropped` header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>", optional)]
    pub dropped: Vec<String>,
}

/// `GET /api/projects/{project}/traces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct TraceList {
    /// The project's most recent traces, newest first.
    pub traces: Vec<TraceView>,
}

/// The query of `GET /api/projects/{project}/traces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TraceQuery {
    /// How many traces, newest first: 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}
