//! Budgets and rate limits as pure data and arithmetic: what a limit is, which limits a
//! call is held to, which limits its usage counts toward, and the calendar and rolling
//! windows that counters live in. The server keeps the counters; nothing here does IO.
//!
//! # Levels and modes
//!
//! A limit sits at one of six levels, ordered from the top: global, model, project,
//! project-model, token, token-model (PRODUCT.md, "Budgets and limits"). For one call
//! every level applies (a call always has a project, a token and a model), so the levels
//! form one chain. A limit's [`Mode`] says how it combines with the levels above, per
//! metric:
//!
//! - `extend` (the default): enforced in addition to what the levels above enforce.
//! - `replace`: enforced *instead of* the limits of the same metric at the nearest level
//!   above that still enforces that metric (so a token's cost limit replaces the
//!   project's cost limits even when the project-model level between them has none).
//! - `disable`: like `replace`, but enforces nothing itself: its value is ignored.
//!
//! Replacing and disabling reach one level up (the nearest with limits of that metric),
//! never further, so a global safety net is only lifted by a model or project limit that
//! says so, never by a token.
//!
//! Usage rolls up regardless of modes: a call counts toward every limit whose scope covers
//! it (see [`counting_limits`]), even a limit that a lower level disabled for this call, so
//! a project's spend stays true when one of its tokens is exempt from it.
//!
//! # Windows
//!
//! Calendar windows ([`Period`]) start on the hour, at midnight, on Monday at midnight, on
//! the first of the month or on 1 January, in the limit's time zone (UTC unless one is
//! named). Where a local start does not exist (a daylight-saving gap) the window starts at
//! the first local time after the gap; where it is ambiguous, at the earlier instant.
//!
//! Rolling windows (the last N seconds) are counted in [`rolling_bucket_seconds`] buckets,
//! one sixtieth of the span (at least one second); the oldest, partly expired bucket counts
//! whole, so a rolling limit errs on the safe side by at most one bucket's usage.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Relative slack when comparing floating-point amounts with a limit, so that fifty
/// reservations of a fiftieth of a limit fit exactly despite rounding.
pub const FIT_EPSILON: f64 = 1e-9;

/// Longest window of a `calls` limit that counts as a rate limit (answered with 429).
pub const RATE_LIMIT_MAX_SECONDS: u64 = 3600;

/// Longest rolling window: five years. Window arithmetic adds and subtracts spans from
/// instants; a bound here keeps every such sum far inside the range of a date, so it never
/// overflows (a `100000000d` window once panicked the handler, the back-fill and start-up).
pub const MAX_WINDOW_SECONDS: u64 = 5 * 366 * 86_400;

/// What a limit measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
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

impl Metric {
    /// Every metric, in the order listings show them.
    pub const ALL: [Metric; 5] = [
        Metric::Cost,
        Metric::Calls,
        Metric::InputTokens,
        Metric::OutputTokens,
        Metric::TotalTokens,
    ];

    /// The name used in files, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cost => "cost",
            Metric::Calls => "calls",
            Metric::InputTokens => "input_tokens",
            Metric::OutputTokens => "output_tokens",
            Metric::TotalTokens => "total_tokens",
        }
    }
}

impl FromStr for Metric {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Metric::ALL
            .into_iter()
            .find(|metric| metric.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown metric `{text}`; use cost, calls, input_tokens, output_tokens or total_tokens"
                )
            })
    }
}

/// A calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// From the start of the hour.
    Hourly,
    /// From midnight.
    Daily,
    /// From Monday at midnight.
    Weekly,
    /// From the first of the month.
    Monthly,
    /// From 1 January.
    Yearly,
}

impl Period {
    /// Every period.
    pub const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    /// The name used in files, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }
}

/// The span a limit counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// A calendar period in the limit's time zone.
    Calendar(Period),
    /// The last `seconds` seconds.
    Rolling {
        /// The span, at least one second.
        seconds: u64,
    },
}

impl Window {
    /// Parses `hourly`…`yearly`, or a rolling span `30s`, `15m`, `1h`, `7d` (optionally
    /// written `rolling:1h`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(period) = Period::ALL.into_iter().find(|p| p.as_str() == text) {
            return Ok(Window::Calendar(period));
        }
        let span = text
            .strip_prefix("rolling:")
            .or_else(|| text.strip_prefix("rolling "))
            .unwrap_or(text)
            .trim();
        parse_span(span).map(|seconds| Window::Rolling { seconds })
    }

    /// The longest this window can be, in seconds (for deciding what is a rate limit and
    /// how much history a rebuild must read).
    pub fn max_seconds(self) -> u64 {
        match self {
            Window::Calendar(Period::Hourly) => 3600,
            Window::Calendar(Period::Daily) => 25 * 3600,
            Window::Calendar(Period::Weekly) => 7 * 86_400 + 3600,
            Window::Calendar(Period::Monthly) => 31 * 86_400 + 3600,
            Window::Calendar(Period::Yearly) => 366 * 86_400 + 3600,
            Window::Rolling { seconds } => seconds,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Calendar(period) => f.write_str(period.as_str()),
            Window::Rolling { seconds } => write!(f, "rolling:{}", format_span(*seconds)),
        }
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses `30s`, `15m`, `1h`, `7d` into seconds.
pub fn parse_span(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "`{text}` is not a window: use hourly, daily, weekly, monthly, yearly, or a rolling span such as 30s, 15m, 1h, 7d"
        )
    };
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(unit_at);
    let multiplier = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    let too_long = || {
        format!(
            "`{text}`: a rolling window is at most {} (five years); use a calendar window or a shorter span",
            format_span(MAX_WINDOW_SECONDS)
        )
    };
    if number.is_empty() {
        return Err(invalid());
    }
    // Only digits remain, so a number that does not parse is too large for a u64.
    let number: u64 = number.parse().map_err(|_| too_long())?;
    let seconds = number.checked_mul(multiplier).ok_or_else(too_long)?;
    if seconds == 0 {
        return Err(format!(
            "`{text}`: a rolling window must be longer than zero"
        ));
    }
    if seconds > MAX_WINDOW_SECONDS {
        return Err(too_long());
    }
    Ok(seconds)
}

/// The largest value a limit takes (USD, calls or tokens per window): far above any real
/// budget, far below where adding usage to it loses precision.
pub const MAX_LIMIT_VALUE: f64 = 1e12;

/// `at` moved by `seconds` (negative: back), saturating at the ends of the calendar instead
/// of panicking.
pub fn shift_seconds(at: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    Duration::try_seconds(seconds)
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(if seconds < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// `seconds` as a signed count, saturating (window spans are `u64`).
pub fn signed_seconds(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

/// `seconds` in the largest unit that divides it (`90m`, `2h`, `7d`).
pub fn format_span(seconds: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// How a limit combines with the levels above (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Enforced in addition to the levels above.
    #[default]
    Extend,
    /// Enforced instead of the nearest level above with this metric.
    Replace,
    /// Lifts the nearest level above with this metric; enforces nothing.
    Disable,
}

impl Mode {
    /// The name used in files, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Extend => "extend",
            Mode::Replace => "replace",
            Mode::Disable => "disable",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "extend" => Ok(Mode::Extend),
            "replace" => Ok(Mode::Replace),
            "disable" => Ok(Mode::Disable),
            _ => Err(format!(
                "unknown mode `{text}`; use extend, replace or disable"
            )),
        }
    }
}

/// The levels, from the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Every call.
    Global,
    /// Every project's calls to one model.
    Model,
    /// One project's calls.
    Project,
    /// One project's calls to one model.
    ProjectModel,
    /// One token's calls.
    Token,
    /// One token's calls to one model.
    TokenModel,
}

impl Level {
    /// The name used in messages and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Global => "global",
            Level::Model => "model",
            Level::Project => "project",
            Level::ProjectModel => "project-model",
            Level::Token => "token",
            Level::TokenModel => "token-model",
        }
    }

    /// Whether the level names a model (so it differs between a call's candidates).
    pub fn is_model_level(self) -> bool {
        matches!(self, Level::Model | Level::ProjectModel | Level::TokenModel)
    }
}

/// What a limit applies to. Projects are stored by id; token ids are unique across
/// projects. The names are shared (`Arc<str>`): a call's budget counters are keyed by
/// scope, and a key is copied into each reservation and usage addition without an
/// allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `global`.
    Global,
    /// `model:ID`.
    Model(Arc<str>),
    /// `project:P`.
    Project(Arc<str>),
    /// `project:P/model:ID`.
    ProjectModel(Arc<str>, Arc<str>),
    /// `token:TOKEN_ID`.
    Token(Arc<str>),
    /// `token:TOKEN_ID/model:ID`.
    TokenModel(Arc<str>, Arc<str>),
}

impl Scope {
    /// Parses `global`, `model:ID`, `project:P`, `project:P/model:ID`, `token:T` or
    /// `token:T/model:ID`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "`{text}` is not a scope: use global, model:ID, project:P, project:P/model:ID, token:TOKEN_ID or token:TOKEN_ID/model:ID"
            )
        };
        let text = text.trim();
        if text == "global" {
            return Ok(Scope::Global);
        }
        let (head, model) = match text.split_once("/model:") {
            Some((head, model)) => (head, Some(model)),
            None => (text, None),
        };
        let non_empty = |value: &str| {
            let value = value.trim();
            if value.is_empty() || value.contains('/') {
                Err(invalid())
            } else {
                Ok(Arc::<str>::from(value))
            }
        };
        let (kind, name) = head.split_once(':').ok_or_else(invalid)?;
        let name = non_empty(name)?;
        match (kind, model) {
            ("model", None) => Ok(Scope::Model(name)),
            ("project", None) => Ok(Scope::Project(name)),
            ("project", Some(model)) => Ok(Scope::ProjectModel(name, non_empty(model)?)),
            ("token", None) => Ok(Scope::Token(name)),
            ("token", Some(model)) => Ok(Scope::TokenModel(name, non_empty(model)?)),
            _ => Err(invalid()),
        }
    }

    /// The level of this scope.
    pub fn level(&self) -> Level {
        match self {
            Scope::Global => Level::Global,
            Scope::Model(_) => Level::Model,
            Scope::Project(_) => Level::Project,
            Scope::ProjectModel(..) => Level::ProjectModel,
            Scope::Token(_) => Level::Token,
            Scope::TokenModel(..) => Level::TokenModel,
        }
    }

    /// The model this scope names, if any.
    pub fn model(&self) -> Option<&str> {
        match self {
            Scope::Model(model) | Scope::ProjectModel(_, model) | Scope::TokenModel(_, model) => {
                Some(&**model)
            }
            _ => None,
        }
    }

    /// The project this scope names, if any.
    pub fn project(&self) -> Option<&str> {
        match self {
            Scope::Project(project) | Scope::ProjectModel(project, _) => Some(&**project),
            _ => None,
        }
    }

    /// The token this scope names, if any.
    pub fn token(&self) -> Option<&str> {
        match self {
            Scope::Token(token) | Scope::TokenModel(token, _) => Some(&**token),
            _ => None,
        }
    }

    /// Whether a call by `call` falls in this scope.
    pub fn covers(&self, call: &CallScope<'_>) -> bool {
        let model_is = |model: &str| call.model_id == Some(model);
        match self {
            Scope::Global => true,
            Scope::Model(model) => model_is(model),
            Scope::Project(project) => call.project_id == &**project,
            Scope::ProjectModel(project, model) => call.project_id == &**project && model_is(model),
            Scope::Token(token) => call.token_id == &**token,
            Scope::TokenModel(token, model) => call.token_id == &**token && model_is(model),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Model(model) => write!(f, "model:{model}"),
            Scope::Project(project) => write!(f, "project:{project}"),
            Scope::ProjectModel(project, model) => write!(f, "project:{project}/model:{model}"),
            Scope::Token(token) => write!(f, "token:{token}"),
            Scope::TokenModel(token, model) => write!(f, "token:{token}/model:{model}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `config/limits.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsFile {
    /// Every limit, at every level.
    pub limits: Vec<Limit>,
}

/// One limit: `{metric, window, value}` on a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Stable id, used to remove it and in alerts.
    pub id: String,
    /// What it applies to.
    pub scope: Scope,
    /// What it measures.
    pub metric: Metric,
    /// Over which span.
    pub window: Window,
    /// The most allowed in one window (USD for `cost`).
    pub value: f64,
    /// How it combines with the levels above.
    #[serde(default)]
    pub mode: Mode,
    /// IANA time zone of a calendar window; `None` means the `budget_time_zone` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl Limit {
    /// Whether refusing a call for this limit is a rate limit (429) rather than an
    /// exhausted budget (503): a `calls` limit over at most an hour.
    pub fn is_rate_limit(&self) -> bool {
        self.metric == Metric::Calls && self.window.max_seconds() <= RATE_LIMIT_MAX_SECONDS
    }

    /// A short human description, such as `cost ≤ 10 USD per daily window on project:p1`.
    pub fn describe(&self) -> String {
        let value = match self.metric {
            Metric::Cost => format!("{} USD", trim_float(self.value)),
            metric => format!("{} {}", trim_float(self.value), metric.as_str()),
        };
        format!("{value} per {} window on {}", self.window, self.scope)
    }
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The parties of one call, as scopes see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallScope<'a> {
    /// The project's id.
    pub project_id: &'a str,
    /// The token's id.
    pub token_id: &'a str,
    /// The model's id; `None` when no model was tried.
    pub model_id: Option<&'a str>,
}

/// The limits a call is held to: every limit whose scope covers it, combined level by
/// level by their modes (see the module documentation). `disable` limits never appear.
pub fn effective_limits<'l>(limits: &'l [Limit], call: &CallScope<'_>) -> Vec<&'l Limit> {
    let mut covering: Vec<&Limit> = limits.iter().filter(|l| l.scope.covers(call)).collect();
    covering.sort_by_key(|limit| limit.scope.level());
    let mut enforced: Vec<&Limit> = Vec::new();
    let mut index = 0;
    while index < covering.len() {
        let level = covering[index].scope.level();
        let end = covering[index..]
            .iter()
            .position(|limit| limit.scope.level() != level)
            .map_or(covering.len(), |offset| index + offset);
        let at_level = &covering[index..end];
        for metric in Metric::ALL {
            let lifts = at_level
                .iter()
                .any(|limit| limit.metric == metric && limit.mode != Mode::Extend);
            if !lifts {
                continue;
            }
            let nearest_above = enforced
                .iter()
                .filter(|limit| limit.metric == metric)
                .map(|limit| limit.scope.level())
                .max();
            if let Some(above) = nearest_above {
                enforced.retain(|limit| !(limit.metric == metric && limit.scope.level() == above));
            }
        }
        enforced.extend(at_level.iter().filter(|limit| limit.mode != Mode::Disable));
        index = end;
    }
    enforced
}

/// The limits a finished call counts toward: every limit whose scope covers it, whatever
/// the modes below it say (usage rolls up). `disable` limits count nothing.
pub fn counting_limits<'l>(
    limits: &'l [Limit],
    call: &CallScope<'_>,
) -> impl Iterator<Item = &'l Limit> {
    let call = *call;
    limits
        .iter()
        .filter(move |limit| limit.mode != Mode::Disable && limit.scope.covers(&call))
}

/// The four quantities every counter keeps; `total_tokens` is derived.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Amounts {
    /// USD.
    pub cost_usd: f64,
    /// Calls.
    pub calls: f64,
    /// Prompt tokens.
    pub input_tokens: f64,
    /// Generated tokens.
    pub output_tokens: f64,
}

impl Amounts {
    /// The value of `metric`.
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Cost => self.cost_usd,
            Metric::Calls => self.calls,
            Metric::InputTokens => self.input_tokens,
            Metric::OutputTokens => self.output_tokens,
            Metric::TotalTokens => self.input_tokens + self.output_tokens,
        }
    }

    /// Adds `other`.
    pub fn add(&mut self, other: &Amounts) {
        self.cost_usd += other.cost_usd;
        self.calls += other.calls;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }

    /// Subtracts `other`, never going below zero.
    pub fn subtract(&mut self, other: &Amounts) {
        self.cost_usd = (self.cost_usd - other.cost_usd).max(0.0);
        self.calls = (self.calls - other.calls).max(0.0);
        self.input_tokens = (self.input_tokens - other.input_tokens).max(0.0);
        self.output_tokens = (self.output_tokens - other.output_tokens).max(0.0);
    }

    /// Whether everything is zero.
    pub fn is_zero(&self) -> bool {
        *self == Amounts::default()
    }
}

/// Whether `amount` more fits under `value` when `used` is already spent and `reserved`
/// is held by calls in flight, allowing [`FIT_EPSILON`] of rounding.
pub fn fits(used: f64, reserved: f64, amount: f64, value: f64) -> bool {
    used + reserved + amount <= value + value.abs() * FIT_EPSILON + f64::EPSILON
}

/// Parses an IANA time zone name such as `Europe/Rome` (or `UTC`).
pub fn parse_time_zone(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| {
        format!("unknown time zone `{name}`; use an IANA name such as Europe/Rome or UTC")
    })
}

/// The calendar window of `period` in `zone` that contains `at`: its start and the start
/// of the next one.
pub fn calendar_window(
    period: Period,
    zone: Tz,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    // UTC has neither offsets nor transitions: its windows need no time-zone look-ups
    // (those were most of a budgeted call's window arithmetic).
    let utc = zone == Tz::UTC;
    let local = if utc {
        at.naive_utc()
    } else {
        at.with_timezone(&zone).naive_local()
    };
    let date = local.date();
    let (start, next) = match period {
        Period::Hourly => {
            let start = date.and_hms_opt(local.hour(), 0, 0).expect("valid hour");
            (start, start + Duration::hours(1))
        }
        Period::Daily => {
            let start = midnight(date);
            (start, midnight(date + Duration::days(1)))
        }
        Period::Weekly => {
            let monday = date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
            (midnight(monday), midnight(monday + Duration::days(7)))
        }
        Period::Monthly => {
            let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1).expect("valid");
            let next = if date.month() == 12 {
                NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
            }
            .expect("valid");
            (midnight(first), midnight(next))
        }
        Period::Yearly => {
            let first = NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("valid");
            let next = NaiveDate::from_ymd_opt(date.year() + 1, 1, 1).expect("valid");
            (midnight(first), midnight(next))
        }
    };
    if utc {
        return (start.and_utc(), next.and_utc());
    }
    let start = resolve_local(zone, start);
    let mut end = resolve_local(zone, next);
    if end <= start {
        // Only an hourly window inside a repeated hour can end up empty; give it an hour.
        end = start + Duration::hours(1);
    }
    (start, end)
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).expect("midnight exists")
}

/// The instant of local time `naive` in `zone`: the earlier one when ambiguous, the first
/// existing time after it when it falls in a gap.
fn resolve_local(zone: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let mut candidate = naive;
    for _ in 0..(4 * 24) {
        if let Some(instant) = zone.from_local_datetime(&candidate).earliest() {
            return instant.with_timezone(&Utc);
        }
        candidate += Duration::minutes(15);
    }
    Utc.from_utc_datetime(&naive)
}

/// Bucket width of a rolling window of `span` seconds: a sixtieth, at least one second.
pub fn rolling_bucket_seconds(span: u64) -> u64 {
    (span / 60).max(1)
}

/// Running totals of one counter in its window: a calendar window's total, or a rolling
/// window's buckets. Reservations are not kept here: they belong to calls in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WindowTotals {
    /// The calendar window starting at `start` (Unix seconds) and its total.
    Calendar {
        /// Start of the window, Unix seconds.
        start: i64,
        /// What was used in it.
        used: Amounts,
    },
    /// Buckets of a rolling window, oldest first: (bucket start in Unix seconds, usage).
    Rolling {
        /// The buckets.
        buckets: VecDeque<(i64, Amounts)>,
    },
}

impl WindowTotals {
    /// Empty totals for `window`.
    pub fn new(window: Window) -> Self {
        match window {
            Window::Calendar(_) => WindowTotals::Calendar {
                start: i64::MIN,
                used: Amounts::default(),
            },
            Window::Rolling { .. } => WindowTotals::Rolling {
                buckets: VecDeque::new(),
            },
        }
    }

    /// Adds usage that happened `at`; usage older than the current window is ignored.
    pub fn add(&mut self, window: Window, zone: Tz, at: DateTime<Utc>, amounts: &Amounts) {
        match (self, window) {
            (WindowTotals::Calendar { start, used }, Window::Calendar(period)) => {
                let (window_start, _) = calendar_window(period, zone, at);
                let window_start = window_start.timestamp();
                if window_start > *start {
                    *start = window_start;
                    *used = Amounts::default();
                }
                if window_start == *start {
                    used.add(amounts);
                }
            }
            (WindowTotals::Rolling { buckets }, Window::Rolling { seconds }) => {
                let width = signed_seconds(rolling_bucket_seconds(seconds));
                let bucket = at.timestamp().div_euclid(width).saturating_mul(width);
                add_to_bucket(buckets, bucket, amounts);
            }
            (totals, window) => {
                *totals = WindowTotals::new(window);
                totals.add(window, zone, at, amounts);
            }
        }
    }

    /// Adds `other`, usage counted apart (such as by a scan of the usage log) for the same
    /// window: a calendar total of a later window replaces this one, of an earlier one is
    /// ignored; rolling buckets are added bucket by bucket.
    pub fn merge(&mut self, other: &WindowTotals) {
        match (&mut *self, other) {
            (
                WindowTotals::Calendar { start, used },
                WindowTotals::Calendar {
                    start: other_start,
                    used: other_used,
                },
            ) => {
                if *other_start > *start {
                    *start = *other_start;
                    *used = *other_used;
                } else if *other_start == *start {
                    used.add(other_used);
                }
            }
            (WindowTotals::Rolling { buckets }, WindowTotals::Rolling { buckets: other }) => {
                for (bucket, amounts) in other {
                    add_to_bucket(buckets, *bucket, amounts);
                }
            }
            (this, other) => *this = other.clone(),
        }
    }

    /// What was used in the window that contains `now`; drops expired buckets.
    pub fn used(&mut self, window: Window, zone: Tz, now: DateTime<Utc>) -> Amounts {
        match (self, window) {
            (WindowTotals::Calendar { start, used }, Window::Calendar(period)) => {
                let (window_start, _) = calendar_window(period, zone, now);
                if window_start.timestamp() == *start {
                    *used
                } else {
                    Amounts::default()
                }
            }
            (WindowTotals::Rolling { buckets }, Window::Rolling { seconds }) => {
                let width = signed_seconds(rolling_bucket_seconds(seconds));
                let oldest_live = now
                    .timestamp()
                    .saturating_sub(signed_seconds(seconds))
                    .saturating_sub(width);
                while buckets
                    .front()
                    .is_some_and(|(start, _)| *start <= oldest_live)
                {
                    buckets.pop_front();
                }
                let mut total = Amounts::default();
                for (_, amounts) in buckets.iter() {
                    total.add(amounts);
                }
                total
            }
            _ => Amounts::default(),
        }
    }

    /// When a call needing `needed` of `metric` fits again under `value`, given `reserved`
    /// held by calls in flight: the end of a calendar window, or the moment enough rolling
    /// buckets have expired. Call [`WindowTotals::used`] first to drop expired buckets.
    #[expect(
        clippy::too_many_arguments,
        reason = "the window, the instant and the limit's figures"
    )]
    pub fn resets_at(
        &self,
        window: Window,
        zone: Tz,
        now: DateTime<Utc>,
        metric: Metric,
        reserved: f64,
        needed: f64,
        value: f64,
    ) -> DateTime<Utc> {
        match (self, window) {
            (WindowTotals::Rolling { buckets }, Window::Rolling { seconds }) => {
                let width = signed_seconds(rolling_bucket_seconds(seconds));
                let mut left: f64 = buckets.iter().map(|(_, a)| a.get(metric)).sum();
                for (start, amounts) in buckets {
                    left -= amounts.get(metric);
                    if fits(left, reserved, needed, value) {
                        let expires = start
                            .saturating_add(width)
                            .saturating_add(signed_seconds(seconds));
                        return DateTime::from_timestamp(expires, 0).unwrap_or(now);
                    }
                }
                shift_seconds(now, signed_seconds(seconds))
            }
            (_, Window::Calendar(period)) => calendar_window(period, zone, now).1,
            (_, Window::Rolling { seconds }) => shift_seconds(now, signed_seconds(seconds)),
        }
    }
}

/// Adds `amounts` to the bucket starting at `bucket`, keeping buckets in order.
fn add_to_bucket(buckets: &mut VecDeque<(i64, Amounts)>, bucket: i64, amounts: &Amounts) {
    match buckets.iter().rposition(|(start, _)| *start <= bucket) {
        Some(position) if buckets[position].0 == bucket => buckets[position].1.add(amounts),
        Some(position) => buckets.insert(position + 1, (bucket, *amounts)),
        None => buckets.push_front((bucket, *amounts)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn utc_windows_without_zone_look_ups_match_the_zone_path() {
        // `Etc/UTC` takes the general path (offsets looked up); `UTC` the direct one.
        for instant in [
            "2026-12-31T23:59:59.999Z",
            "2027-01-01T00:00:00Z",
            "2028-02-29T12:30:00Z",
            "2026-03-29T01:30:00Z",
            "1970-01-01T00:00:00Z",
        ] {
            let at: DateTime<Utc> = instant.parse().expect("an instant");
            for period in Period::ALL {
                assert_eq!(
                    calendar_window(period, Tz::UTC, at),
                    calendar_window(period, Tz::Etc__UTC, at),
                    "{period:?} at {instant}"
                );
            }
        }
    }

    #[test]
    fn calendar_windows_start_and_end_on_local_boundaries() {
        // (period, zone, instant, expected start, expected end)
        let cases = [
            (
                "hourly",
                "UTC",
                "2025-03-10T14:59:59Z",
                "2025-03-10T14:00:00Z",
                "2025-03-10T15:00:00Z",
            ),
            (
                "daily",
                "UTC",
                "2025-03-10T00:00:00Z",
                "2025-03-10T00:00:00Z",
                "2025-03-11T00:00:00Z",
            ),
            (
                "daily",
                "UTC",
                "2025-03-10T23:59:59Z",
                "2025-03-10T00:00:00Z",
                "2025-03-11T00:00:00Z",
            ),
            // Monday 2025-03-10; a Sunday belongs to the week that began six days before.
            (
                "weekly",
                "UTC",
                "2025-03-16T23:00:00Z",
                "2025-03-10T00:00:00Z",
                "2025-03-17T00:00:00Z",
            ),
            (
                "weekly",
                "UTC",
                "2025-03-17T00:00:00Z",
                "2025-03-17T00:00:00Z",
                "2025-03-24T00:00:00Z",
            ),
            (
                "monthly",
                "UTC",
                "2024-02-29T12:00:00Z",
                "2024-02-01T00:00:00Z",
                "2024-03-01T00:00:00Z",
            ),
            (
                "monthly",
                "UTC",
                "2025-12-31T23:59:59Z",
                "2025-12-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
            ),
            (
                "yearly",
                "UTC",
                "2025-07-01T00:00:00Z",
                "2025-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
            ),
            // Rome is UTC+1 in winter: local midnight is 23:00 UTC the day before.
            (
                "daily",
                "Europe/Rome",
                "2025-01-15T22:30:00Z",
                "2025-01-14T23:00:00Z",
                "2025-01-15T23:00:00Z",
            ),
            (
                "daily",
                "Europe/Rome",
                "2025-01-15T23:30:00Z",
                "2025-01-15T23:00:00Z",
                "2025-01-16T23:00:00Z",
            ),
            // The day clocks go forward (2025-03-30) lasts 23 hours in Rome.
            (
                "daily",
                "Europe/Rome",
                "2025-03-30T12:00:00Z",
                "2025-03-29T23:00:00Z",
                "2025-03-30T22:00:00Z",
            ),
            // New York's month of November starts at UTC-4 and the next at UTC-5.
            (
                "monthly",
                "America/New_York",
                "2025-11-15T12:00:00Z",
                "2025-11-01T04:00:00Z",
                "2025-12-01T05:00:00Z",
            ),
            // India is UTC+5:30: local hours start at half past in UTC.
            (
                "hourly",
                "Asia/Kolkata",
                "2025-05-05T10:20:00Z",
                "2025-05-05T09:30:00Z",
                "2025-05-05T10:30:00Z",
            ),
            // Weekly in Tokyo (UTC+9): Monday 00:00 local is Sunday 15:00 UTC.
            (
                "weekly",
                "Asia/Tokyo",
                "2025-03-16T16:00:00Z",
                "2025-03-16T15:00:00Z",
                "2025-03-23T15:00:00Z",
            ),
            // Santiago skips local midnight when DST starts (2025-09-07): the day starts at 01:00.
            (
                "daily",
                "America/Santiago",
                "2025-09-07T12:00:00Z",
                "2025-09-07T04:00:00Z",
                "2025-09-08T03:00:00Z",
            ),
        ];
        for (period, zone, instant, start, end) in cases {
            let Window::Calendar(period) = Window::parse(period).expect("period") else {
                panic!("{period} is a calendar period");
            };
            let zone = parse_time_zone(zone).expect("zone");
            let (got_start, got_end) = calendar_window(period, zone, at(instant));
            assert_eq!(
                (got_start, got_end),
                (at(start), at(end)),
                "{period:?} in {zone} at {instant}"
            );
        }
    }

    #[test]
    fn windows_and_spans_parse_and_print() {
        let cases = [
            ("daily", Some("daily")),
            ("30s", Some("rolling:30s")),
            ("15m", Some("rolling:15m")),
            ("90m", Some("rolling:90m")),
            ("120m", Some("rolling:2h")),
            ("rolling:7d", Some("rolling:7d")),
            ("rolling 1h", Some("rolling:1h")),
            ("0s", None),
            ("5w", None),
            ("fortnightly", None),
            ("h", None),
        ];
        for (text, expected) in cases {
            let got = Window::parse(text).ok().map(|window| window.to_string());
            assert_eq!(got.as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn rolling_windows_longer_than_five_years_are_refused() {
        assert_eq!(
            Window::parse("1830d"),
            Ok(Window::Rolling {
                seconds: MAX_WINDOW_SECONDS
            })
        );
        assert_eq!(Window::parse("rolling:43920h"), Window::parse("1830d"));
        // The issue's value, the fuzzer's crashing input (`limits` target) and an overflow.
        for text in [
            "1831d",
            "100000000d",
            "7222222222d",
            "99999999999999999999s",
            "18446744073709551615m",
        ] {
            let error = Window::parse(text).expect_err(text);
            assert!(error.contains("at most 1830d"), "{text}: {error}");
            let json = format!(
                r#"{{"id":"l","scope":"global","metric":"calls","window":"{text}","value":1}}"#
            );
            assert!(
                serde_json::from_str::<Limit>(&json).is_err(),
                "a hand edit with {text} is refused"
            );
        }
        // The longest window works at the far end of the instants the service meets.
        let window = Window::parse("1830d").expect("the longest window");
        let now = at("2106-02-07T06:28:15Z");
        let mut totals = WindowTotals::new(window);
        totals.add(
            window,
            Tz::UTC,
            now,
            &Amounts {
                calls: 1.0,
                ..Amounts::default()
            },
        );
        assert_eq!(totals.used(window, Tz::UTC, now).calls, 1.0);
        let reset = totals.resets_at(window, Tz::UTC, now, Metric::Calls, 0.0, 1.0, 1.0);
        assert!(reset > now + Duration::days(1829), "{reset}");
    }

    #[test]
    fn scopes_parse_print_and_cover() {
        let call = CallScope {
            project_id: "p1",
            token_id: "t1",
            model_id: Some("gpt"),
        };
        let cases = [
            ("global", true),
            ("model:gpt", true),
            ("model:claude", false),
            ("project:p1", true),
            ("project:p2", false),
            ("project:p1/model:gpt", true),
            ("project:p1/model:claude", false),
            ("token:t1", true),
            ("token:t2", false),
            ("token:t1/model:gpt", true),
            ("token:t1/model:claude", false),
        ];
        for (text, covers) in cases {
            let scope = Scope::parse(text).expect(text);
            assert_eq!(scope.to_string(), text);
            assert_eq!(scope.covers(&call), covers, "{text}");
        }
        for bad in [
            "",
            "models:x",
            "project:",
            "token:t/model:",
            "user:u",
            "project:a/b",
        ] {
            assert!(Scope::parse(bad).is_err(), "`{bad}` must be refused");
        }
    }

    fn limit(id: &str, scope: &str, metric: Metric, mode: Mode) -> Limit {
        Limit {
            id: id.to_owned(),
            scope: Scope::parse(scope).expect("scope"),
            metric,
            window: Window::Calendar(Period::Daily),
            value: 10.0,
            mode,
            time_zone: None,
        }
    }

    #[test]
    fn levels_combine_by_mode() {
        use Metric::{Calls, Cost};
        use Mode::{Disable, Extend, Replace};
        let call = CallScope {
            project_id: "p1",
            token_id: "t1",
            model_id: Some("gpt"),
        };
        // (limits, ids enforced for the call, ids the call counts toward)
        let cases: Vec<(Vec<Limit>, Vec<&str>, Vec<&str>)> = vec![
            // Every level extends by default; other projects', tokens' and models' limits do not apply.
            (
                vec![
                    limit("g", "global", Cost, Extend),
                    limit("m", "model:gpt", Cost, Extend),
                    limit("m2", "model:claude", Cost, Extend),
                    limit("p", "project:p1", Cost, Extend),
                    limit("p2", "project:p2", Cost, Extend),
                    limit("pm", "project:p1/model:gpt", Cost, Extend),
                    limit("t", "token:t1", Cost, Extend),
                    limit("tm", "token:t1/model:gpt", Cost, Extend),
                ],
                vec!["g", "m", "p", "pm", "t", "tm"],
                vec!["g", "m", "p", "pm", "t", "tm"],
            ),
            // A token's replace skips the empty project-model level and replaces the project's.
            (
                vec![
                    limit("g", "global", Cost, Extend),
                    limit("p", "project:p1", Cost, Extend),
                    limit("t", "token:t1", Cost, Replace),
                ],
                vec!["g", "t"],
                vec!["g", "p", "t"],
            ),
            // Replace works per metric: the project's call limit stays.
            (
                vec![
                    limit("p-cost", "project:p1", Cost, Extend),
                    limit("p-calls", "project:p1", Calls, Extend),
                    limit("t", "token:t1", Cost, Replace),
                ],
                vec!["p-calls", "t"],
                vec!["p-cost", "p-calls", "t"],
            ),
            // Disable lifts the level above and enforces nothing; usage still rolls up.
            (
                vec![
                    limit("g", "global", Cost, Extend),
                    limit("p", "project:p1", Cost, Extend),
                    limit("t", "token:t1", Cost, Disable),
                ],
                vec!["g"],
                vec!["g", "p"],
            ),
            // Replacing reaches one level up only: the global safety net stays.
            (
                vec![
                    limit("g", "global", Cost, Extend),
                    limit("p", "project:p1", Cost, Extend),
                    limit("pm", "project:p1/model:gpt", Cost, Extend),
                    limit("tm", "token:t1/model:gpt", Cost, Replace),
                ],
                vec!["g", "p", "tm"],
                vec!["g", "p", "pm", "tm"],
            ),
            // A model limit may replace the global one for calls to that model.
            (
                vec![
                    limit("g", "global", Cost, Extend),
                    limit("m", "model:gpt", Cost, Replace),
                ],
                vec!["m"],
                vec!["g", "m"],
            ),
            // Nothing above to replace: replace acts like extend.
            (
                vec![limit("t", "token:t1", Cost, Replace)],
                vec!["t"],
                vec!["t"],
            ),
            // Two limits at one level (daily and monthly) are replaced together.
            (
                vec![
                    limit("p-day", "project:p1", Cost, Extend),
                    limit("p-month", "project:p1", Cost, Extend),
                    limit("pm", "project:p1/model:gpt", Cost, Replace),
                ],
                vec!["pm"],
                vec!["p-day", "p-month", "pm"],
            ),
            // A lower disable after a replace lifts the replacement, not what it replaced.
            (
                vec![
                    limit("p", "project:p1", Cost, Extend),
                    limit("pm", "project:p1/model:gpt", Cost, Replace),
                    limit("t", "token:t1", Cost, Disable),
                ],
                vec![],
                vec!["p", "pm"],
            ),
        ];
        for (index, (limits, enforced, counted)) in cases.into_iter().enumerate() {
            let mut got: Vec<&str> = effective_limits(&limits, &call)
                .into_iter()
                .map(|limit| limit.id.as_str())
                .collect();
            got.sort_unstable();
            let mut expected = enforced.clone();
            expected.sort_unstable();
            assert_eq!(got, expected, "case {index}: enforced");
            let mut got: Vec<&str> = counting_limits(&limits, &call)
                .map(|limit| limit.id.as_str())
                .collect();
            got.sort_unstable();
            let mut expected = counted.clone();
            expected.sort_unstable();
            assert_eq!(got, expected, "case {index}: counted");
        }
    }

    #[test]
    fn rolling_windows_count_the_last_span_in_buckets() {
        let window = Window::Rolling { seconds: 60 };
        let zone = Tz::UTC;
        let one_call = Amounts {
            calls: 1.0,
            ..Amounts::default()
        };
        let mut totals = WindowTotals::new(window);
        let start = at("2025-01-01T00:00:00Z");
        for second in [0, 10, 10, 59] {
            totals.add(window, zone, start + Duration::seconds(second), &one_call);
        }
        // (seconds after start, calls still in the window)
        let cases = [
            (59, 4.0),
            (60, 4.0),
            (61, 3.0),
            (70, 3.0),
            (71, 1.0),
            (119, 1.0),
            (120, 0.0),
        ];
        for (offset, calls) in cases {
            let now = start + Duration::seconds(offset);
            assert_eq!(totals.used(window, zone, now).calls, calls, "at +{offset}s");
        }

        // Room for one more call under a limit of 4 comes back when the first bucket expires.
        let mut totals = WindowTotals::new(window);
        for second in [0, 10, 10, 59] {
            totals.add(window, zone, start + Duration::seconds(second), &one_call);
        }
        let now = start + Duration::seconds(59);
        totals.used(window, zone, now);
        let reset = totals.resets_at(window, zone, now, Metric::Calls, 0.0, 1.0, 4.0);
        assert_eq!(reset, start + Duration::seconds(61));
        let reset = totals.resets_at(window, zone, now, Metric::Calls, 0.0, 1.0, 2.0);
        assert_eq!(
            reset,
            start + Duration::seconds(71),
            "two buckets must expire"
        );
    }

    #[test]
    fn calendar_totals_reset_with_the_window() {
        let window = Window::Calendar(Period::Daily);
        let zone = Tz::UTC;
        let spend = Amounts {
            cost_usd: 1.5,
            ..Amounts::default()
        };
        let mut totals = WindowTotals::new(window);
        totals.add(window, zone, at("2025-01-01T10:00:00Z"), &spend);
        totals.add(window, zone, at("2025-01-01T23:00:00Z"), &spend);
        assert_eq!(
            totals
                .used(window, zone, at("2025-01-01T23:59:59Z"))
                .cost_usd,
            3.0
        );
        assert_eq!(
            totals
                .used(window, zone, at("2025-01-02T00:00:00Z"))
                .cost_usd,
            0.0
        );
        // A late record of yesterday does not leak into today.
        totals.add(window, zone, at("2025-01-02T01:00:00Z"), &spend);
        totals.add(window, zone, at("2025-01-01T22:00:00Z"), &spend);
        assert_eq!(
            totals
                .used(window, zone, at("2025-01-02T02:00:00Z"))
                .cost_usd,
            1.5
        );
        let reset = totals.resets_at(
            window,
            zone,
            at("2025-01-02T02:00:00Z"),
            Metric::Cost,
            0.0,
            1.0,
            1.0,
        );
        assert_eq!(reset, at("2025-01-03T00:00:00Z"));
    }

    #[test]
    fn totals_merge_by_window() {
        let window = Window::Rolling { seconds: 600 };
        let zone = Tz::UTC;
        let call = Amounts {
            calls: 1.0,
            ..Amounts::default()
        };
        let now = at("2025-01-01T00:10:00Z");
        let mut live = WindowTotals::new(window);
        live.add(window, zone, now, &call);
        let mut scanned = WindowTotals::new(window);
        scanned.add(window, zone, now - Duration::seconds(300), &call);
        scanned.add(window, zone, now, &call);
        live.merge(&scanned);
        assert_eq!(live.used(window, zone, now).calls, 3.0);

        let daily = Window::Calendar(Period::Daily);
        let mut today = WindowTotals::new(daily);
        today.add(daily, zone, now, &call);
        let mut yesterday = WindowTotals::new(daily);
        yesterday.add(daily, zone, now - Duration::days(1), &call);
        today.merge(&yesterday);
        assert_eq!(
            today.used(daily, zone, now).calls,
            1.0,
            "an older window is ignored"
        );
        yesterday.merge(&today);
        assert_eq!(
            yesterday.used(daily, zone, now).calls,
            1.0,
            "a later window replaces"
        );
    }

    #[test]
    fn fifty_fiftieths_fit_exactly() {
        let value = 0.000_35;
        let each = value / 50.0;
        let mut used = 0.0;
        for call in 0..50 {
            assert!(fits(used, 0.0, each, value), "call {call} must fit");
            used += each;
        }
        assert!(!fits(used, 0.0, each, value), "the 51st must not fit");
    }

    #[test]
    fn rate_limits_are_short_call_limits() {
        let mut rate = limit("r", "global", Metric::Calls, Mode::Extend);
        rate.window = Window::Rolling { seconds: 60 };
        assert!(rate.is_rate_limit());
        rate.window = Window::Calendar(Period::Hourly);
        assert!(rate.is_rate_limit());
        rate.window = Window::Calendar(Period::Daily);
        assert!(!rate.is_rate_limit());
        let cost = limit("c", "global", Metric::Cost, Mode::Extend);
        assert!(!cost.is_rate_limit());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn window() -> impl Strategy<Value = Window> {
            prop_oneof![
                proptest::sample::select(Period::ALL.to_vec()).prop_map(Window::Calendar),
                (1u64..=MAX_WINDOW_SECONDS).prop_map(|seconds| Window::Rolling { seconds }),
                any::<u64>().prop_map(|seconds| Window::Rolling { seconds }),
            ]
        }

        /// Instants from 1970 to 2106, as the service's clock and usage log hold them.
        fn instant() -> impl Strategy<Value = DateTime<Utc>> {
            any::<u32>().prop_map(|seconds| {
                DateTime::from_timestamp(i64::from(seconds), 0).expect("a u32 instant")
            })
        }

        proptest! {
            #[test]
            fn window_text_never_panics_and_reads_back(text in "\\PC{0,24}") {
                if let Ok(window) = Window::parse(&text) {
                    prop_assert_eq!(Window::parse(&window.to_string()), Ok(window));
                }
            }

            #[test]
            fn windows_format_and_parse_back(window in window()) {
                let text = window.to_string();
                match Window::parse(&text) {
                    Ok(parsed) => prop_assert_eq!(parsed, window),
                    Err(_) => prop_assert!(window.max_seconds() > MAX_WINDOW_SECONDS, "{} refused", text),
                }
                let spelled = [
                    text.clone(),
                    format!("  {text} "),
                    text.trim_start_matches("rolling:").to_owned(),
                    text.replace("rolling:", "rolling "),
                ];
                for spelling in spelled {
                    prop_assert_eq!(Window::parse(&spelling), Window::parse(&text), "{}", spelling);
                }
            }

            #[test]
            fn spans_format_and_parse_back(seconds in 1u64..=u64::MAX) {
                let parsed = parse_span(&format_span(seconds));
                if seconds <= MAX_WINDOW_SECONDS {
                    prop_assert_eq!(parsed, Ok(seconds));
                } else {
                    prop_assert!(parsed.expect_err("too long").contains("at most 1830d"));
                }
            }

            #[test]
            fn scopes_format_and_parse_back(
                text in "global|model:[a-z0-9_-]{1,8}|(project|token):[a-z0-9_-]{1,8}(/model:[a-z0-9.-]{1,8})?"
            ) {
                let scope = Scope::parse(&text).expect("a well-formed scope");
                prop_assert_eq!(scope.to_string(), text);
            }

            #[test]
            fn accepted_windows_work_at_any_instant(
                text in prop_oneof![
                    window().prop_map(|window| window.to_string()),
                    "[0-9]{1,20}[smhd]",
                ],
                now in instant(),
                ago in proptest::collection::vec(any::<i32>(), 0..8),
                zone in proptest::sample::select(vec![Tz::UTC, Tz::Europe__Rome, Tz::America__Sao_Paulo, Tz::Australia__Lord_Howe, Tz::Pacific__Kiritimati]),
            ) {
                let Ok(window) = Window::parse(&text) else {
                    return Ok(());
                };
                if let Window::Calendar(period) = window {
                    let (start, end) = calendar_window(period, zone, now);
                    prop_assert!(start <= now && now < end);
                }
                let mut totals = WindowTotals::new(window);
                let amounts = Amounts { cost_usd: 1.0, calls: 1.0, input_tokens: 2.0, output_tokens: 3.0 };
                for ago in ago {
                    totals.add(window, zone, now - Duration::seconds(i64::from(ago)), &amounts);
                }
                let used = totals.used(window, zone, now);
                let reset = totals.resets_at(window, zone, now, Metric::Calls, 0.0, 1.0, used.calls);
                prop_assert!(reset >= now, "{} resets at {} before {}", window, reset, now);
            }
        }
    }
}
