//! `/api/limits` (budgets and rate limits at every level, with their current use),
//! `/api/usage/limits` (the same view) and `/api/alerts` (the budget alerts sent).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// What a limit measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum LimitMetric {
    /// Spend in USD.
    Cost,
    /// Calls that reached a provider.
    Calls,
    /// Prompt tokens.
    InputTokens,
    /// Generated tokens.
    OutputTokens,
    /// Prompt plus generated tokens.
    TotalTokens,
}

/// How a limit combines with the levels above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum LimitMode {
    /// Enforced in addition to the levels above.
    #[default]
    Extend,
    /// Enforced instead of the nearest level above with this metric.
    Replace,
    /// Lifts the nearest level above with this metric; enforces nothing.
    Disable,
}

/// A limit with its use in the current window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct LimitUse {
    /// Stable id, used to change or remove it and in alerts.
    pub id: String,
    /// What it applies to: `global`, `model:ID`, `project:ID`, `project:ID/model:ID`,
    /// `token:ID` or `token:ID/model:ID`.
    pub scope: String,
    /// What it measures.
    pub metric: LimitMetric,
    /// Over which span: a calendar window (`daily`) or a rolling one (`rolling:15m`).
    pub window: String,
    /// The most allowed in one window (USD for `cost`).
    pub value: f64,
    /// How it combines with the levels above.
    pub mode: LimitMode,
    /// IANA time zone of a calendar window; absent: the `budget_time_zone` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub time_zone: Option<String>,
    /// Its level: `global`, `model`, `project`, `project-model`, `token` or `token-model`.
    pub level: String,
    /// Used in the current window.
    pub used: f64,
    /// Held by calls in flight.
    pub reserved: f64,
    /// `used / value` in percent (0 for a zero-valued limit with no use).
    pub percent: f64,
    /// Start of the current window (for a rolling window: now minus its span).
    #[ts(type = "string")]
    pub window_start: DateTime<Utc>,
    /// When the window resets: the next calendar window, or when a call of one unit fits
    /// again in a rolling window.
    #[ts(type = "string")]
    pub resets_at: DateTime<Utc>,
    /// The last call this limit refused in the current window (as seen by the replica that
    /// answers); absent when it refused none. A limit whose room is less than that call's
    /// `needed` is refusing calls like it, whatever its percentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_refusal: Option<LimitRefusal>,
}

/// A call a limit refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct LimitRefusal {
    /// When.
    #[ts(type = "string")]
    pub at: DateTime<Utc>,
    /// What the call needed: its estimate in the limit's metric (prompt plus `max_tokens`
    /// priced at the model's prices, for cost).
    pub needed: f64,
}

/// `GET /api/limits` and `GET /api/usage/limits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct LimitList {
    /// The limits the caller may see (those of the projects whose usage it may read; global
    /// and model limits to callers who may read every project's usage).
    pub limits: Vec<LimitUse>,
}

/// Body of `POST /api/limits`: the window as `window` (`daily`, `rolling:15m`), or as
/// `period` (`daily`) or `rolling` (`15m`) the way the CLI takes them; exactly one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateLimit {
    /// A chosen id (absent: generated, `lim-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub id: Option<String>,
    /// What it applies to; projects by id, slug or name.
    pub scope: String,
    /// What it measures.
    pub metric: LimitMetric,
    /// The window, calendar or rolling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub window: Option<String>,
    /// A calendar window: `hourly`, `daily`, `weekly`, `monthly` or `yearly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub period: Option<String>,
    /// A rolling window's span: `30s`, `15m`, `1h`, `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub rolling: Option<String>,
    /// The most allowed in one window (not negative).
    pub value: f64,
    /// How it combines with the levels above (absent: `extend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub mode: Option<LimitMode>,
    /// IANA time zone of a calendar window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub time_zone: Option<String>,
}

/// Body of `PATCH /api/limits/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateLimit {
    /// The most allowed in one window (not negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub value: Option<f64>,
    /// How it combines with the levels above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub mode: Option<LimitMode>,
    /// The window, calendar or rolling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub window: Option<String>,
    /// A calendar window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub period: Option<String>,
    /// A rolling window's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub rolling: Option<String>,
    /// IANA time zone of a calendar window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub time_zone: Option<String>,
}

/// What a budget alert says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub enum AlertKind {
    /// A threshold of the limit was crossed (`threshold` says which).
    #[serde(rename = "budget.threshold")]
    Threshold,
    /// The limit is exhausted: calls it covers are refused until the window resets.
    #[serde(rename = "budget.exhausted")]
    Exhausted,
    /// A limit that was exhausted has a new window.
    #[serde(rename = "budget.reset")]
    Reset,
}

/// How one delivery of an alert to one channel went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Still being tried (with retries and backoff).
    Pending,
    /// The channel accepted it.
    Delivered,
    /// Every attempt failed; the service log has the reason.
    Failed,
}

/// One delivery of an alert to one notification channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct AlertDelivery {
    /// The channel's id.
    pub channel: String,
    /// How it went.
    pub outcome: DeliveryOutcome,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was delivered or given up; `null` while pending.
    #[ts(type = "string | null")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// One budget alert sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct AlertRecord {
    /// The limit's id (the limit may since have been removed).
    pub limit_id: String,
    /// The limit's scope when the alert fired (`null` for alerts recorded before scopes were).
    pub scope: Option<String>,
    /// What happened.
    pub event: AlertKind,
    /// The threshold crossed, in percent (`budget.threshold` only).
    pub threshold: Option<u32>,
    /// Start of the limit's window the alert is about.
    #[ts(type = "string")]
    pub window_start: DateTime<Utc>,
    /// When it fired.
    #[ts(type = "string")]
    pub fired_at: DateTime<Utc>,
    /// The alert's sentence, as delivered (`null` for alerts recorded before messages were).
    pub message: Option<String>,
    /// Its delivery to each channel configured when it fired (empty: none was).
    pub deliveries: Vec<AlertDelivery>,
}

/// `GET /api/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct AlertList {
    /// The alerts about limits the caller may see, newest first.
    pub alerts: Vec<AlertRecord>,
}
