//! Rollups: usage aggregated by time bucket, project, one dimension (model, token, end user
//! or tag) and outcome, kept as records are written so that no report reads raw records.
//!
//! A record adds to one cell per dimension of its bucket: `all`, `model`, `token`, `user` and
//! one per distinct tag. Buckets are hours; hours older than the hourly horizon are merged
//! into UTC days by [`Rollups::compact`]. A query names at most one dimension (in its filters
//! and its grouping together); [`Rollups::aggregate`] then reads only the cells of that
//! dimension. A query over two dimensions at once (say, one model's calls grouped by token)
//! is answered by [`Aggregator`] over raw records instead, with the same arithmetic, so both
//! ways give the same answer.
//!
//! Latency and time-to-first-token are kept as [`Sketch`]es (logarithmic buckets with 2 %
//! relative accuracy, mergeable), in the `all` and `model` cells only: p50 and p95 are
//! reported per project, per model and over time, not per token, user or tag.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use routerly_api::usage::UsageTotals;
use routerly_core::usage::{Outcome, UsageRecord};
use serde::{Deserialize, Serialize};

/// Seconds in an hour bucket.
pub const HOUR: i64 = 3600;
/// Seconds in a day bucket.
pub const DAY: i64 = 86_400;
/// Every outcome, in the order of their indexes.
pub const OUTCOMES: [Outcome; 5] = [
    Outcome::Success,
    Outcome::Error,
    Outcome::Timeout,
    Outcome::BudgetExceeded,
    Outcome::Cancelled,
];

/// The first [`OUTCOMES`] this many are calls that reached a provider.
pub const PROVIDER_OUTCOMES: usize = 3;

/// The index of `outcome` in [`OUTCOMES`].
pub fn outcome_index(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Success => 0,
        Outcome::Error => 1,
        Outcome::Timeout => 2,
        Outcome::BudgetExceeded => 3,
        Outcome::Cancelled => 4,
    }
}

/// The relative accuracy of a sketch's quantiles: γ = (1 + α) / (1 − α) with α = 2 %.
const SKETCH_GAMMA: f64 = 1.02 / 0.98;

/// A mergeable quantile sketch (DDSketch): counts per logarithmic bucket `⌈log_γ x⌉`, so a
/// quantile is within 2 % of a true value of the data; values ≤ 0 share one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sketch {
    /// (bucket, count), sorted by bucket.
    bins: Vec<(i16, u32)>,
}

impl Sketch {
    fn bucket(value: f64) -> i16 {
        if value.is_nan() || value <= 1e-6 {
            return i16::MIN;
        }
        (value.ln() / SKETCH_GAMMA.ln())
            .ceil()
            .clamp(-30_000.0, 30_000.0) as i16
    }

    /// Counts `value`.
    pub fn add(&mut self, value: f64) {
        self.add_count(Self::bucket(value), 1);
    }

    fn add_count(&mut self, bucket: i16, count: u32) {
        match self.bins.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(at) => self.bins[at].1 = self.bins[at].1.saturating_add(count),
            Err(at) => self.bins.insert(at, (bucket, count)),
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        for &(bucket, count) in &other.bins {
            self.add_count(bucket, count);
        }
    }

    /// The (bucket, count) pairs, sorted by bucket.
    pub fn bins(&self) -> &[(i16, u32)] {
        &self.bins
    }

    /// A sketch of these (bucket, count) pairs, in any order.
    pub fn from_bins(pairs: impl IntoIterator<Item = (i16, u32)>) -> Sketch {
        let mut sketch = Sketch::default();
        for (bucket, count) in pairs {
            sketch.add_count(bucket, count);
        }
        sketch
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.bins.iter().map(|(_, count)| u64::from(*count)).sum()
    }

    /// The `q` quantile (0 ≤ q ≤ 1) within 2 %, or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (total - 1) as f64).floor() as u64;
        let mut seen = 0;
        for &(bucket, count) in &self.bins {
            seen += u64::from(count);
            if seen > rank {
                if bucket == i16::MIN {
                    return Some(0.0);
                }
                return Some(2.0 * SKETCH_GAMMA.powi(i32::from(bucket)) / (SKETCH_GAMMA + 1.0));
            }
        }
        None
    }
}

/// Sums over some calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Calls.
    pub calls: u64,
    /// Prompt tokens (cached included).
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to cache.
    pub cache_write_tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Its input part.
    pub input_cost_usd: f64,
    /// Its output part.
    pub output_cost_usd: f64,
    /// Sum of latencies, ms.
    pub latency_ms_sum: f64,
    /// Sum of times to first token, ms, over the calls that had one.
    pub ttft_ms_sum: f64,
    /// Calls that had a time to first token.
    pub ttft_calls: u64,
    /// Latencies (only where the dimension keeps sketches).
    #[serde(default, skip_serializing_if = "is_empty_sketch")]
    pub latency: Sketch,
    /// Times to first token (idem).
    #[serde(default, skip_serializing_if = "is_empty_sketch")]
    pub ttft: Sketch,
}

fn is_empty_sketch(sketch: &Sketch) -> bool {
    sketch.bins.is_empty()
}

impl Totals {
    /// Counts `record`, with sketches when `sketches`.
    pub fn add(&mut self, record: &UsageRecord, sketches: bool) {
        self.add_sample(record, sketches.then(|| SketchBuckets::of(record)));
    }

    /// Counts `record`, with its sketch buckets when given (worked out once for every cell
    /// a record adds to).
    fn add_sample(&mut self, record: &UsageRecord, sketches: Option<SketchBuckets>) {
        self.calls += 1;
        self.input_tokens += record.input_tokens;
        self.output_tokens += record.output_tokens;
        self.cached_input_tokens += record.cached_input_tokens;
        self.cache_write_tokens += record.cache_write_tokens;
        self.cost_usd += record.cost_usd;
        self.input_cost_usd += record.input_cost_usd;
        self.output_cost_usd += record.output_cost_usd;
        self.latency_ms_sum += record.latency_ms;
        if let Some(ttft) = record.ttft_ms {
            self.ttft_ms_sum += ttft;
            self.ttft_calls += 1;
        }
        if let Some(buckets) = sketches {
            self.latency.add_count(buckets.latency, 1);
            if let Some(ttft) = buckets.ttft {
                self.ttft.add_count(ttft, 1);
            }
        }
    }

    /// Adds `other`.
    pub fn merge(&mut self, other: &Totals) {
        self.merge_sums(other);
        self.latency.merge(&other.latency);
        self.ttft.merge(&other.ttft);
    }

    /// Adds `other`'s sums, not its sketches.
    pub fn merge_sums(&mut self, other: &Totals) {
        self.calls += other.calls;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_usd += other.cost_usd;
        self.input_cost_usd += other.input_cost_usd;
        self.output_cost_usd += other.output_cost_usd;
        self.latency_ms_sum += other.latency_ms_sum;
        self.ttft_ms_sum += other.ttft_ms_sum;
        self.ttft_calls += other.ttft_calls;
    }
}

/// A record's buckets in the latency and time-to-first-token sketches.
#[derive(Debug, Clone, Copy)]
struct SketchBuckets {
    latency: i16,
    ttft: Option<i16>,
}

impl SketchBuckets {
    fn of(record: &UsageRecord) -> Self {
        SketchBuckets {
            latency: Sketch::bucket(record.latency_ms),
            ttft: record.ttft_ms.map(Sketch::bucket),
        }
    }
}

/// A sketch being summed: counts in a dense run of buckets, so adding a cell's sketch is a
/// handful of additions (a report sums thousands of cells).
#[derive(Debug, Clone, Default, PartialEq)]
struct DenseSketch {
    first: i32,
    counts: Vec<u32>,
}

impl DenseSketch {
    fn add(&mut self, sketch: &Sketch) {
        let (Some(low), Some(high)) = (sketch.bins.first(), sketch.bins.last()) else {
            return;
        };
        let (low, high) = (i32::from(low.0), i32::from(high.0));
        if self.counts.is_empty() {
            self.first = low;
        }
        if low < self.first {
            let grow = (self.first - low) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = low;
        }
        let end = (high - self.first + 1) as usize;
        if end > self.counts.len() {
            self.counts.resize(end, 0);
        }
        for &(bucket, count) in &sketch.bins {
            let at = (i32::from(bucket) - self.first) as usize;
            self.counts[at] = self.counts[at].saturating_add(count);
        }
    }

    fn sparse(&self) -> Sketch {
        Sketch {
            bins: self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, count)| **count > 0)
                .map(|(at, count)| ((self.first + at as i32) as i16, *count))
                .collect(),
        }
    }
}

/// Totals split by outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Per outcome (index of [`OUTCOMES`]), without sketches.
    pub by_outcome: [Totals; 5],
    latency: DenseSketch,
    ttft: DenseSketch,
}

impl Group {
    /// Adds `totals` of outcome index `outcome`. The latency and time-to-first-token
    /// sketches take provider calls only (success, error, timeout): a budget refusal is
    /// answered by Routerly in no time and a cancelled call ends when the client leaves,
    /// so either would pull the percentiles toward zero beside an average that leaves
    /// them out.
    pub fn add(&mut self, outcome: usize, totals: &Totals) {
        self.by_outcome[outcome].merge_sums(totals);
        if outcome < PROVIDER_OUTCOMES {
            self.latency.add(&totals.latency);
            self.ttft.add(&totals.ttft);
        }
    }

    /// Every outcome together, with the sketches.
    pub fn total(&self) -> Totals {
        let mut total = Totals::default();
        for totals in &self.by_outcome {
            total.merge_sums(totals);
        }
        total.latency = self.latency.sparse();
        total.ttft = self.ttft.sparse();
        total
    }

    /// The totals a report shows: totals, errors (calls that did not succeed), calls per
    /// outcome, mean and p50/p95 latency and time to first token.
    pub fn view(&self) -> UsageTotals {
        let total = self.total();
        let errors = total.calls - self.by_outcome[0].calls;
        let by_outcome = OUTCOMES
            .iter()
            .zip(&self.by_outcome)
            .filter(|(_, totals)| totals.calls > 0)
            .map(|(outcome, totals)| ((*outcome).into(), totals.calls))
            .collect();
        let mean = |sum: f64, count: u64| {
            if count == 0 { 0.0 } else { sum / count as f64 }
        };
        // Calls that reached a provider: budget refusals (answered by Routerly in no time)
        // and cancellations (the client left) are counted apart, so neither dilutes the
        // provider's latency nor inflates its error rate.
        let provider = &self.by_outcome[..PROVIDER_OUTCOMES];
        let provider_calls: u64 = provider.iter().map(|totals| totals.calls).sum();
        let provider_latency: f64 = provider.iter().map(|totals| totals.latency_ms_sum).sum();
        UsageTotals {
            calls: total.calls,
            errors,
            provider_calls,
            provider_errors: provider_calls - self.by_outcome[0].calls,
            refused: self.by_outcome[3].calls,
            provider_avg_latency_ms: mean(provider_latency, provider_calls),
            by_outcome,
            input_tokens: total.input_tokens,
            output_tokens: total.output_tokens,
            cached_input_tokens: total.cached_input_tokens,
            cache_write_tokens: total.cache_write_tokens,
            total_tokens: total.input_tokens + total.output_tokens,
            cost_usd: total.cost_usd,
            input_cost_usd: total.input_cost_usd,
            output_cost_usd: total.output_cost_usd,
            avg_latency_ms: mean(total.latency_ms_sum, total.calls),
            p50_latency_ms: total.latency.quantile(0.5),
            p95_latency_ms: total.latency.quantile(0.95),
            avg_ttft_ms: mean(total.ttft_ms_sum, total.ttft_calls),
            p50_ttft_ms: total.ttft.quantile(0.5),
            p95_ttft_ms: total.ttft.quantile(0.95),
        }
    }
}

/// What a cell is about besides its project and outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Every call of the project.
    All,
    /// Calls of one model (`""`: none was tried).
    Model,
    /// Calls of one project token.
    Token,
    /// Calls with one `user` field (`""`: none).
    User,
    /// Calls carrying one tag.
    Tag,
}

impl Dimension {
    fn has_sketches(self) -> bool {
        matches!(self, Dimension::All | Dimension::Model)
    }

    /// Whether hour buckets keep this dimension (the others, high-cardinality and without
    /// sketches, are kept by UTC day only).
    pub fn has_hours(self) -> bool {
        self.has_sketches()
    }
}

type Name = Arc<str>;

/// One cell's key within a bucket and dimension.
#[derive(Debug, Clone, Eq)]
struct CellKey {
    project: Name,
    value: Name,
    outcome: u8,
}

/// Equal names, compared by address first: the names of the cells a record adds to are
/// interned, so the text is compared only where two names differ.
impl PartialEq for CellKey {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Name, b: &Name| Arc::ptr_eq(a, b) || a == b;
        self.outcome == other.outcome
            && same(&self.project, &other.project)
            && same(&self.value, &other.value)
    }
}

/// By the names' text, as equality.
impl std::hash::Hash for CellKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.project.hash(state);
        self.value.hash(state);
        self.outcome.hash(state);
    }
}

/// The cells of one bucket, per dimension (indexed by `Dimension as usize`), so a report
/// reads only its dimension's cells.
/// Hashed with foldhash (randomly seeded): a record adds to a cell of every dimension, and
/// SipHash of those keys was most of the rollups' cost per record.
type Cells = [HashMap<CellKey, Totals, foldhash::fast::RandomState>; 5];

const DIMENSIONS: [Dimension; 5] = [
    Dimension::All,
    Dimension::Model,
    Dimension::Token,
    Dimension::User,
    Dimension::Tag,
];

/// How a report groups its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One group.
    Nothing,
    /// Per project.
    Project,
    /// Per value of a dimension (not [`Dimension::All`]).
    Dimension(Dimension),
    /// Per time bucket of `seconds` (an hour or a day) in `zone` (days start at its
    /// midnight; past the hourly horizon, at UTC midnight).
    Time {
        /// [`HOUR`] or [`DAY`].
        seconds: i64,
        /// The time zone days are counted in.
        zone: chrono_tz::Tz,
    },
}

/// Which calls a report covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only these projects (`None`: every project).
    pub projects: Option<HashSet<String>>,
    /// Only this model (`""`: calls where none was tried).
    pub model: Option<String>,
    /// Only this token.
    pub token: Option<String>,
    /// Only this `user` field.
    pub user: Option<String>,
    /// Only calls carrying this tag.
    pub tag: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// From this time, inclusive (seconds since the epoch).
    pub from: Option<i64>,
    /// Until this time, exclusive.
    pub to: Option<i64>,
}

impl Filter {
    /// The dimensions this filter and `group` name (at most one keeps the answer in the
    /// rollups).
    pub fn dimensions(&self, group: GroupBy) -> Vec<Dimension> {
        let mut dimensions = Vec::new();
        for (named, dimension) in [
            (self.model.is_some(), Dimension::Model),
            (self.token.is_some(), Dimension::Token),
            (self.user.is_some(), Dimension::User),
            (self.tag.is_some(), Dimension::Tag),
            (
                group == GroupBy::Dimension(Dimension::Model),
                Dimension::Model,
            ),
            (
                group == GroupBy::Dimension(Dimension::Token),
                Dimension::Token,
            ),
            (
                group == GroupBy::Dimension(Dimension::User),
                Dimension::User,
            ),
            (group == GroupBy::Dimension(Dimension::Tag), Dimension::Tag),
        ] {
            if named && !dimensions.contains(&dimension) {
                dimensions.push(dimension);
            }
        }
        dimensions
    }

    /// Whether `record` passes every condition but time.
    pub fn matches(&self, record: &UsageRecord) -> bool {
        self.projects
            .as_ref()
            .is_none_or(|projects| projects.contains(&record.project_id))
            && self
                .model
                .as_ref()
                .is_none_or(|model| record.model_id.as_deref().unwrap_or("") == model)
            && self
                .token
                .as_ref()
                .is_none_or(|token| &record.token_id == token)
            && self
                .user
                .as_ref()
                .is_none_or(|user| record.user.as_deref().unwrap_or("") == user)
            && self
                .tag
                .as_ref()
                .is_none_or(|tag| record.tags.contains(tag))
            && self.outcome.is_none_or(|outcome| record.outcome == outcome)
    }

    /// Whether `record` passes every condition, time included.
    pub fn matches_in_time(&self, record: &UsageRecord) -> bool {
        let at = record.timestamp.timestamp();
        self.from.is_none_or(|from| at >= from)
            && self.to.is_none_or(|to| at < to)
            && self.matches(record)
    }
}

/// A report's groups, by key (project, dimension value, or bucket start as text).
pub type Groups = BTreeMap<String, Group>;

/// Aggregates raw records exactly as the rollups do: the answer for queries the rollups
/// cannot serve, and the brute force the rollups are tested against.
#[derive(Debug)]
pub struct Aggregator {
    filter: Filter,
    group: GroupBy,
    hourly_from: i64,
    sketches: bool,
    /// The groups so far.
    pub groups: Groups,
}

impl Aggregator {
    /// An aggregator for `filter` (its time range already widened by
    /// [`Rollups::widen`]) grouped by `group`; `hourly_from` is the rollups' horizon.
    pub fn new(filter: Filter, group: GroupBy, hourly_from: i64) -> Aggregator {
        let dimensions = filter.dimensions(group);
        let sketches = dimensions.iter().all(|dimension| dimension.has_sketches());
        Aggregator {
            filter,
            group,
            hourly_from,
            sketches,
            groups: Groups::new(),
        }
    }

    /// Counts `record` when it matches.
    pub fn add(&mut self, record: &UsageRecord) {
        if !self.filter.matches_in_time(record) {
            return;
        }
        let outcome = usize::from(outcome_index(record.outcome));
        let sketches = self.sketches;
        let mut one = Totals::default();
        one.add(record, sketches);
        let add = |groups: &mut Groups, key: &str| {
            groups.entry(key.to_owned()).or_default().add(outcome, &one);
        };
        match self.group {
            GroupBy::Nothing => add(&mut self.groups, ""),
            GroupBy::Project => add(&mut self.groups, &record.project_id),
            GroupBy::Dimension(Dimension::All) => add(&mut self.groups, ""),
            GroupBy::Dimension(Dimension::Model) => {
                add(&mut self.groups, record.model_id.as_deref().unwrap_or(""))
            }
            GroupBy::Dimension(Dimension::Token) => add(&mut self.groups, &record.token_id),
            GroupBy::Dimension(Dimension::User) => {
                add(&mut self.groups, record.user.as_deref().unwrap_or(""))
            }
            GroupBy::Dimension(Dimension::Tag) => {
                // Filtered by a tag, the groups are that tag's alone (not the tags seen with it).
                let mut seen: Vec<&str> = Vec::new();
                for tag in &record.tags {
                    if self.filter.tag.as_ref().is_some_and(|wanted| wanted != tag) {
                        continue;
                    }
                    if !seen.contains(&tag.as_str()) {
                        seen.push(tag);
                        add(&mut self.groups, tag);
                    }
                }
            }
            GroupBy::Time { seconds, zone } => {
                let at = record.timestamp.timestamp();
                let stored = if at - at.rem_euclid(HOUR) >= self.hourly_from {
                    at - at.rem_euclid(HOUR)
                } else {
                    at - at.rem_euclid(DAY)
                };
                let key = time_key(stored, seconds, zone, self.hourly_from);
                add(&mut self.groups, &key.to_string());
            }
        }
    }
}

/// The start of the report bucket (of `seconds`, in `zone`) holding the stored bucket
/// starting at `stored`.
pub(crate) fn time_key(stored: i64, seconds: i64, zone: chrono_tz::Tz, hourly_from: i64) -> i64 {
    if stored < hourly_from || seconds == HOUR {
        return stored;
    }
    // A day in `zone`: the local midnight at or before the stored hour's start.
    let local = zone
        .timestamp_opt(stored, 0)
        .single()
        .map(|at| at.date_naive());
    local
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .and_then(|midnight| zone.from_local_datetime(&midnight).earliest())
        .map(|at| at.timestamp())
        .unwrap_or(stored - stored.rem_euclid(DAY))
}

/// The aggregates of every call ever written: day buckets (UTC) of every dimension for all
/// time, and hour buckets of the dimensions that keep them ([`Dimension::has_hours`]) from
/// `hourly_from`. A day bucket always equals the sum of its hours, so a report over whole
/// days reads days (pre-merged) and hours only at the edges of its range.
#[derive(Debug, Clone, Default)]
pub struct Rollups {
    /// Hour buckets (by start) at or after `hourly_from`, of `All` and `Model` only.
    hours: BTreeMap<i64, Cells>,
    /// Day buckets (by start, UTC) of every dimension, for all time.
    days: BTreeMap<i64, Cells>,
    /// A UTC midnight: where hour buckets begin.
    hourly_from: i64,
    /// Interned names.
    names: HashSet<Name, foldhash::fast::RandomState>,
}

/// A cell as stored: project, dimension, value, outcome index, totals.
type StoredCell = (String, Dimension, String, u8, StoredTotals);

/// [`Totals`] as a checkpoint stores them: an array, not an object, so a cell costs a few
/// dozen bytes (calls, input, output, cached, cache-write tokens, cost, input cost, output
/// cost, latency sum, ttft sum, ttft calls, latency sketch, ttft sketch).
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredTotals(
    u64,
    u64,
    u64,
    u64,
    u64,
    f64,
    f64,
    f64,
    f64,
    f64,
    u64,
    #[serde(default)] Vec<(i16, u32)>,
    #[serde(default)] Vec<(i16, u32)>,
);

impl From<&Totals> for StoredTotals {
    fn from(totals: &Totals) -> Self {
        StoredTotals(
            totals.calls,
            totals.input_tokens,
            totals.output_tokens,
            totals.cached_input_tokens,
            totals.cache_write_tokens,
            totals.cost_usd,
            totals.input_cost_usd,
            totals.output_cost_usd,
            totals.latency_ms_sum,
            totals.ttft_ms_sum,
            totals.ttft_calls,
            totals.latency.bins.clone(),
            totals.ttft.bins.clone(),
        )
    }
}

fn sorted_sketch(mut bins: Vec<(i16, u32)>) -> Sketch {
    bins.sort_by_key(|(bucket, _)| *bucket);
    bins.dedup_by_key(|(bucket, _)| *bucket);
    Sketch { bins }
}

impl From<StoredTotals> for Totals {
    fn from(stored: StoredTotals) -> Self {
        Totals {
            calls: stored.0,
            input_tokens: stored.1,
            output_tokens: stored.2,
            cached_input_tokens: stored.3,
            cache_write_tokens: stored.4,
            cost_usd: stored.5,
            input_cost_usd: stored.6,
            output_cost_usd: stored.7,
            latency_ms_sum: stored.8,
            ttft_ms_sum: stored.9,
            ttft_calls: stored.10,
            latency: sorted_sketch(stored.11),
            ttft: sorted_sketch(stored.12),
        }
    }
}

/// The JSON form of [`Rollups`] in a version 1 checkpoint (`usage.json`), read once to
/// upgrade to the binary checkpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct RollupsFile {
    hourly_from: i64,
    /// (bucket start, width in seconds, cells as (project, dimension, value, outcome
    /// index, totals)).
    buckets: Vec<(i64, i64, Vec<StoredCell>)>,
}

/// Why a binary checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt usage rollups: {}", self.0)
    }
}

/// Reads the little-endian fields of a binary checkpoint, refusing to run past its end.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// The next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], Corrupt> {
        if len > self.bytes.len() {
            return Err(Corrupt("truncated"));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Corrupt> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    /// A `u8`.
    pub fn u8(&mut self) -> Result<u8, Corrupt> {
        Ok(self.array::<1>()?[0])
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, Corrupt> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, Corrupt> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// An `i64`.
    pub fn i64(&mut self) -> Result<i64, Corrupt> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, Corrupt> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A count of items at least `item_bytes` long each, checked against what is left.
    pub fn count(&mut self, item_bytes: usize) -> Result<usize, Corrupt> {
        let count = self.u32()? as usize;
        if count.saturating_mul(item_bytes.max(1)) > self.bytes.len() {
            return Err(Corrupt("a count runs past the end"));
        }
        Ok(count)
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Bytes of one cell in the binary form, sketches aside.
const CELL_BYTES: usize = 4 + 4 + 1 + 11 * 8 + 2 * 4;

fn put_sketch(out: &mut Vec<u8>, sketch: &Sketch) {
    out.extend_from_slice(&(sketch.bins.len() as u32).to_le_bytes());
    for &(bucket, count) in &sketch.bins {
        out.extend_from_slice(&bucket.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
    }
}

fn read_sketch(reader: &mut Reader<'_>) -> Result<Sketch, Corrupt> {
    let len = reader.count(6)?;
    let mut bins = Vec::with_capacity(len);
    let mut previous = None;
    for _ in 0..len {
        let bucket = i16::from_le_bytes(reader.array()?);
        let count = reader.u32()?;
        if previous.is_some_and(|previous| previous >= bucket) {
            return Err(Corrupt("sketch buckets out of order"));
        }
        previous = Some(bucket);
        bins.push((bucket, count));
    }
    Ok(Sketch { bins })
}

impl Rollups {
    fn intern(&mut self, name: &str) -> Name {
        if let Some(name) = self.names.get(name) {
            return Arc::clone(name);
        }
        let name: Name = Arc::from(name);
        self.names.insert(Arc::clone(&name));
        name
    }

    /// Where hour buckets begin.
    pub fn hourly_from(&self) -> i64 {
        self.hourly_from
    }

    /// Where hour buckets begin for a report of `filter` grouped by `group`: the horizon,
    /// or never (`i64::MAX`) when its one dimension is kept by day only.
    pub fn horizon(&self, filter: &Filter, group: GroupBy) -> i64 {
        match filter.dimensions(group).as_slice() {
            [dimension] if !dimension.has_hours() => i64::MAX,
            _ => self.hourly_from,
        }
    }

    /// Adds `record` to its day and hour buckets.
    pub fn add(&mut self, record: &UsageRecord) {
        let at = record.timestamp.timestamp();
        let hour = at - at.rem_euclid(HOUR);
        let project = self.intern(&record.project_id);
        let outcome = outcome_index(record.outcome);
        let buckets = SketchBuckets::of(record);
        let cells = [
            (Dimension::All, self.intern("")),
            (
                Dimension::Model,
                self.intern(record.model_id.as_deref().unwrap_or("")),
            ),
            (Dimension::Token, self.intern(&record.token_id)),
            (
                Dimension::User,
                self.intern(record.user.as_deref().unwrap_or("")),
            ),
        ];
        let mut tags: Vec<Name> = Vec::new();
        for tag in &record.tags {
            let tag = self.intern(tag);
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let tagged = tags.iter().map(|tag| (Dimension::Tag, tag));
        let cells = cells.iter().map(|(dimension, value)| (*dimension, value));
        let add = |bucket: &mut Cells, dimension: Dimension, value: &Name| {
            bucket[dimension as usize]
                .entry(CellKey {
                    project: Arc::clone(&project),
                    value: Arc::clone(value),
                    outcome,
                })
                .or_default()
                .add_sample(record, dimension.has_sketches().then_some(buckets));
        };
        let day = self.days.entry(at - at.rem_euclid(DAY)).or_default();
        for (dimension, value) in cells.clone().chain(tagged) {
            add(day, dimension, value);
        }
        if hour >= self.hourly_from {
            let bucket = self.hours.entry(hour).or_default();
            for (dimension, value) in cells.filter(|(dimension, _)| dimension.has_hours()) {
                add(bucket, dimension, value);
            }
        }
    }

    /// Drops hour buckets older than `horizon_days` before `now` (their days hold them).
    pub fn compact(&mut self, now: DateTime<Utc>, horizon_days: i64) {
        let cut = now.timestamp() - horizon_days * DAY;
        let cut = cut - cut.rem_euclid(DAY);
        if cut <= self.hourly_from {
            return;
        }
        self.hours = self.hours.split_off(&cut);
        self.hourly_from = cut;
    }

    /// Stored buckets.
    pub fn bucket_count(&self) -> usize {
        self.hours.len() + self.days.len()
    }

    /// Stored cells.
    pub fn cell_count(&self) -> usize {
        self.hours
            .values()
            .chain(self.days.values())
            .flat_map(|cells| cells.iter().map(HashMap::len))
            .sum()
    }

    /// `filter` with its time range widened to whole stored buckets (hours from the
    /// horizon, days before it): the range every report of one dimension that keeps hours
    /// covers.
    pub fn widen(&self, filter: Filter) -> Filter {
        widen_at(filter, self.hourly_from)
    }

    /// `filter` widened as a report grouped by `group` is answered: to whole days when its
    /// dimension is kept by day only, else as [`Rollups::widen`].
    pub fn widen_for(&self, filter: Filter, group: GroupBy) -> Filter {
        let horizon = self.horizon(&filter, group);
        widen_at(filter, horizon)
    }

    /// The answer to `filter` (widened by [`Rollups::widen_for`]) grouped by `group`, or
    /// `None` when it names more than one dimension (then aggregate raw records with
    /// [`Aggregator`]).
    pub fn aggregate(&self, filter: &Filter, group: GroupBy) -> Option<Groups> {
        let dimensions = filter.dimensions(group);
        if dimensions.len() > 1 {
            return None;
        }
        let dimension = dimensions.first().copied().unwrap_or(Dimension::All);
        let horizon = self.horizon(filter, group);
        let wanted_value = match dimension {
            Dimension::All => None,
            Dimension::Model => filter.model.as_deref(),
            Dimension::Token => filter.token.as_deref(),
            Dimension::User => filter.user.as_deref(),
            Dimension::Tag => filter.tag.as_deref(),
        };
        let outcome = filter.outcome.map(outcome_index);
        let from = filter.from.unwrap_or(i64::MIN);
        let to = filter.to.unwrap_or(i64::MAX);
        if from >= to {
            return Some(Groups::new());
        }
        // (buckets, from, to): the stored buckets that tile [from, to).
        let mut spans: Vec<(&BTreeMap<i64, Cells>, i64, i64)> = Vec::new();
        let local_days = matches!(group, GroupBy::Time { seconds, zone } if seconds == HOUR || zone != chrono_tz::Tz::UTC);
        if local_days {
            // Hour resolution wherever hours are kept.
            spans.push((&self.days, from, to.min(horizon)));
            spans.push((&self.hours, from.max(horizon), to));
        } else {
            // Whole days from the day buckets; hours only at the ends.
            let first_day = if from.rem_euclid(DAY) == 0 || from == i64::MIN {
                from
            } else {
                from - from.rem_euclid(DAY) + DAY
            };
            let last_day = if to == i64::MAX {
                to
            } else {
                to - to.rem_euclid(DAY)
            };
            if first_day < last_day {
                spans.push((&self.hours, from, first_day));
                spans.push((&self.days, first_day, last_day));
                spans.push((&self.hours, last_day, to));
            } else {
                spans.push((&self.hours, from, to));
            }
        }
        let mut by_name: HashMap<&str, Group> = HashMap::new();
        let mut by_time: HashMap<i64, Group> = HashMap::new();
        for (buckets, from, to) in spans {
            if from >= to {
                continue;
            }
            for (&start, cells) in buckets.range(from..to) {
                for (key, totals) in &cells[dimension as usize] {
                    if wanted_value.is_some_and(|value| &*key.value != value)
                        || outcome.is_some_and(|outcome| key.outcome != outcome)
                        || filter
                            .projects
                            .as_ref()
                            .is_some_and(|projects| !projects.contains(&*key.project))
                    {
                        continue;
                    }
                    let group = match group {
                        GroupBy::Nothing => by_name.entry("").or_default(),
                        GroupBy::Project => by_name.entry(&*key.project).or_default(),
                        GroupBy::Dimension(_) => by_name.entry(&*key.value).or_default(),
                        GroupBy::Time { seconds, zone } => by_time
                            .entry(time_key(start, seconds, zone, horizon))
                            .or_default(),
                    };
                    group.add(usize::from(key.outcome), totals);
                }
            }
        }
        let mut groups: Groups = by_name
            .into_iter()
            .map(|(name, group)| (name.to_owned(), group))
            .collect();
        groups.extend(
            by_time
                .into_iter()
                .map(|(start, group)| (start.to_string(), group)),
        );
        Some(groups)
    }

    /// The version 1 JSON form: hour buckets of the dimensions that keep hours, day buckets
    /// before the horizon, and from it, day buckets of the dimensions kept by day only
    /// ([`Rollups::from_file`] rebuilds the rest).
    pub fn to_file(&self) -> RollupsFile {
        let mut buckets = Vec::with_capacity(self.bucket_count());
        for (map, width) in [(&self.days, DAY), (&self.hours, HOUR)] {
            for (&start, cells) in map {
                let mut cells: Vec<StoredCell> = DIMENSIONS
                    .iter()
                    .filter(|dimension| {
                        width == HOUR || start < self.hourly_from || !dimension.has_hours()
                    })
                    .flat_map(|dimension| {
                        cells[*dimension as usize].iter().map(|(key, totals)| {
                            (
                                key.project.to_string(),
                                *dimension,
                                key.value.to_string(),
                                key.outcome,
                                StoredTotals::from(totals),
                            )
                        })
                    })
                    .collect();
                cells.sort_by(|a, b| (&a.0, a.1, &a.2, a.3).cmp(&(&b.0, b.1, &b.2, b.3)));
                buckets.push((start, width, cells));
            }
        }
        RollupsFile {
            hourly_from: self.hourly_from,
            buckets,
        }
    }

    /// Rollups from their version 1 JSON form: hour cells are added to their days too, and
    /// kept as hours only for the dimensions that keep hours.
    pub fn from_file(file: RollupsFile) -> Rollups {
        let mut rollups = Rollups {
            hourly_from: file.hourly_from,
            ..Rollups::default()
        };
        for (start, width, cells) in file.buckets {
            for (project, dimension, value, outcome, totals) in cells {
                let key = CellKey {
                    project: rollups.intern(&project),
                    value: rollups.intern(&value),
                    outcome: outcome.min(4),
                };
                let totals = Totals::from(totals);
                let day = start - start.rem_euclid(DAY);
                rollups.days.entry(day).or_default()[dimension as usize]
                    .entry(key.clone())
                    .or_default()
                    .merge(&totals);
                if width != DAY && dimension.has_hours() && start >= rollups.hourly_from {
                    rollups.hours.entry(start).or_default()[dimension as usize].insert(key, totals);
                }
            }
        }
        rollups
    }

    /// Appends the binary form: the horizon, the interned names, then each bucket (days,
    /// then hours) with its cells per dimension, every number little-endian.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hourly_from.to_le_bytes());
        let mut ids: HashMap<&str, u32> = HashMap::with_capacity(self.names.len());
        out.extend_from_slice(&(self.names.len() as u32).to_le_bytes());
        for name in &self.names {
            ids.insert(name, ids.len() as u32);
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        for map in [&self.days, &self.hours] {
            out.extend_from_slice(&(map.len() as u32).to_le_bytes());
            for (&start, cells) in map {
                out.extend_from_slice(&start.to_le_bytes());
                for cells in cells {
                    out.extend_from_slice(&(cells.len() as u32).to_le_bytes());
                    for (key, totals) in cells {
                        out.extend_from_slice(&ids[&*key.project].to_le_bytes());
                        out.extend_from_slice(&ids[&*key.value].to_le_bytes());
                        out.push(key.outcome);
                        for number in [
                            totals.calls,
                            totals.input_tokens,
                            totals.output_tokens,
                            totals.cached_input_tokens,
                            totals.cache_write_tokens,
                        ] {
                            out.extend_from_slice(&number.to_le_bytes());
                        }
                        for number in [
                            totals.cost_usd,
                            totals.input_cost_usd,
                            totals.output_cost_usd,
                            totals.latency_ms_sum,
                            totals.ttft_ms_sum,
                        ] {
                            out.extend_from_slice(&number.to_le_bytes());
                        }
                        out.extend_from_slice(&totals.ttft_calls.to_le_bytes());
                        put_sketch(out, &totals.latency);
                        put_sketch(out, &totals.ttft);
                    }
                }
            }
        }
    }

    /// Rollups from their binary form ([`Rollups::encode`]); anything out of place (a
    /// short read, a name that is not UTF-8, an unknown name or outcome, a repeated cell)
    /// is an error, never a guess.
    pub fn decode(reader: &mut Reader<'_>) -> Result<Rollups, Corrupt> {
        let mut rollups = Rollups {
            hourly_from: reader.i64()?,
            ..Rollups::default()
        };
        let count = reader.count(4)?;
        let mut names = Vec::with_capacity(count);
        for _ in 0..count {
            let len = reader.count(1)?;
            let name = std::str::from_utf8(reader.take(len)?)
                .map_err(|_| Corrupt("a name is not UTF-8"))?;
            names.push(rollups.intern(name));
        }
        let name = |id: u32| {
            names
                .get(id as usize)
                .cloned()
                .ok_or(Corrupt("an unknown name"))
        };
        for hours in [false, true] {
            let buckets = reader.count(8 + 5 * 4)?;
            for _ in 0..buckets {
                let start = reader.i64()?;
                let mut bucket = Cells::default();
                for (index, cells) in bucket.iter_mut().enumerate() {
                    let count = reader.count(CELL_BYTES)?;
                    if hours && count > 0 && !DIMENSIONS[index].has_hours() {
                        return Err(Corrupt("hour cells of a dimension kept by day"));
                    }
                    cells.reserve(count);
                    for _ in 0..count {
                        let key = CellKey {
                            project: name(reader.u32()?)?,
                            value: name(reader.u32()?)?,
                            outcome: reader.u8()?,
                        };
                        if key.outcome > 4 {
                            return Err(Corrupt("an unknown outcome"));
                        }
                        let mut totals = Totals {
                            calls: reader.u64()?,
                            input_tokens: reader.u64()?,
                            output_tokens: reader.u64()?,
                            cached_input_tokens: reader.u64()?,
                            cache_write_tokens: reader.u64()?,
                            cost_usd: reader.f64()?,
                            input_cost_usd: reader.f64()?,
                            output_cost_usd: reader.f64()?,
                            latency_ms_sum: reader.f64()?,
                            ttft_ms_sum: reader.f64()?,
                            ttft_calls: reader.u64()?,
                            ..Totals::default()
                        };
                        totals.latency = read_sketch(reader)?;
                        totals.ttft = read_sketch(reader)?;
                        if cells.insert(key, totals).is_some() {
                            return Err(Corrupt("a cell appears twice"));
                        }
                    }
                }
                let map = if hours {
                    &mut rollups.hours
                } else {
                    &mut rollups.days
                };
                if map.insert(start, bucket).is_some() {
                    return Err(Corrupt("a bucket appears twice"));
                }
            }
        }
        Ok(rollups)
    }
}

/// `filter` with its time range widened to whole hours from `horizon`, whole UTC days
/// before it.
fn widen_at(mut filter: Filter, horizon: i64) -> Filter {
    let floor = |at: i64| {
        let hour = at - at.rem_euclid(HOUR);
        if hour >= horizon {
            hour
        } else {
            at - at.rem_euclid(DAY)
        }
    };
    filter.from = filter.from.map(floor);
    filter.to = filter.to.map(|to| {
        let start = floor(to);
        if start == to {
            to
        } else if start >= horizon {
            start + HOUR
        } else {
            // Day buckets end at or before the horizon, a UTC midnight.
            start + DAY
        }
    });
    filter
}

/// A bucket key of a time-grouped report as a time.
pub fn bucket_time(key: &str) -> Option<DateTime<Utc>> {
    key.parse::<i64>()
        .ok()
        .and_then(|seconds| Utc.timestamp_opt(seconds, 0).single())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{Datelike, TimeZone};
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use routerly_core::usage::{CallType, Surface};

    use super::*;

    /// Around a UTC midnight, so hour and day edges are crossed both ways.
    const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn random_record(rng: &mut StdRng, index: usize) -> UsageRecord {
        let pick =
            |rng: &mut StdRng, names: &[&str]| names[rng.gen_range(0..names.len())].to_owned();
        // Timestamps within four days of BASE, a quarter of them on an exact hour edge.
        let mut at = BASE + rng.gen_range(-2 * DAY..2 * DAY);
        if rng.gen_bool(0.25) {
            at -= at.rem_euclid(HOUR) + i64::from(rng.gen_bool(0.5));
        }
        let mut tags = Vec::new();
        for _ in 0..rng.gen_range(0..3) {
            tags.push(pick(rng, &["a", "b", "c"]));
        }
        UsageRecord {
            requested_model: None,
            id: format!("r{index}"),
            timestamp: Utc
                .timestamp_opt(at, rng.gen_range(0..1_000_000_000))
                .unwrap(),
            project_id: pick(rng, &["p1", "p2", "p3"]),
            token_id: pick(rng, &["t1", "t2", "t3", "t4"]),
            model_id: rng.gen_bool(0.9).then(|| pick(rng, &["m1", "m2", "m3"])),
            provider: None,
            surface: Surface::ChatCompletions,
            call_type: CallType::Completion,
            stream: rng.gen_bool(0.5),
            input_tokens: rng.gen_range(0..5000),
            output_tokens: rng.gen_range(0..2000),
            cached_input_tokens: rng.gen_range(0..100),
            cache_write_tokens: rng.gen_range(0..50),
            cost_usd: rng.gen_range(0.0..0.1),
            input_cost_usd: rng.gen_range(0.0..0.05),
            output_cost_usd: rng.gen_range(0.0..0.05),
            latency_ms: rng.gen_range(0.0..30_000.0),
            ttft_ms: rng.gen_bool(0.5).then(|| rng.gen_range(0.0..5000.0)),
            overhead_ms: 0.1,
            outcome: OUTCOMES[rng.gen_range(0..5)],
            status: 200,
            error: None,
            trace_id: format!("trace-{index}"),
            user: rng.gen_bool(0.7).then(|| pick(rng, &["u1", "u2", "u3"])),
            tags,
            attempts: Vec::new(),
        }
    }

    #[test]
    fn percentiles_leave_out_budget_refusals_and_cancellations() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut group = Group::default();
        for (index, (outcome, latency_ms)) in [
            (Outcome::Success, 900.0),
            (Outcome::Error, 1100.0),
            (Outcome::BudgetExceeded, 0.0),
            (Outcome::BudgetExceeded, 0.0),
            (Outcome::BudgetExceeded, 0.0),
            (Outcome::Cancelled, 5.0),
        ]
        .into_iter()
        .enumerate()
        {
            let mut record = random_record(&mut rng, index);
            record.outcome = outcome;
            record.latency_ms = latency_ms;
            let mut totals = Totals::default();
            totals.add(&record, true);
            group.add(usize::from(outcome_index(outcome)), &totals);
        }
        let view = group.view();
        assert_eq!((view.calls, view.refused, view.provider_calls), (6, 3, 2));
        let p50 = view.p50_latency_ms.expect("a median");
        assert!(
            (850.0..=1150.0).contains(&p50),
            "p50 {p50} over the two provider calls"
        );
        assert!(view.p95_latency_ms.expect("a p95") > 850.0);
    }

    /// What a report should say, computed naively from the records.
    fn brute_force(
        records: &[UsageRecord],
        filter: &Filter,
        group: GroupBy,
        hourly_from: i64,
    ) -> BTreeMap<String, (u64, u64, u64, f64, Sketch)> {
        let mut expected: BTreeMap<String, (u64, u64, u64, f64, Sketch)> = BTreeMap::new();
        for record in records {
            let at = record.timestamp.timestamp();
            let in_time =
                filter.from.is_none_or(|from| at >= from) && filter.to.is_none_or(|to| at < to);
            let model = record.model_id.clone().unwrap_or_default();
            let user = record.user.clone().unwrap_or_default();
            let ok = in_time
                && filter
                    .projects
                    .as_ref()
                    .is_none_or(|p| p.contains(&record.project_id))
                && filter.model.as_ref().is_none_or(|m| *m == model)
                && filter.token.as_ref().is_none_or(|t| *t == record.token_id)
                && filter.user.as_ref().is_none_or(|u| *u == user)
                && filter.tag.as_ref().is_none_or(|t| record.tags.contains(t))
                && filter.outcome.is_none_or(|o| o == record.outcome);
            if !ok {
                continue;
            }
            let keys: Vec<String> = match group {
                GroupBy::Nothing | GroupBy::Dimension(Dimension::All) => vec![String::new()],
                GroupBy::Project => vec![record.project_id.clone()],
                GroupBy::Dimension(Dimension::Model) => vec![model],
                GroupBy::Dimension(Dimension::Token) => vec![record.token_id.clone()],
                GroupBy::Dimension(Dimension::User) => vec![user],
                GroupBy::Dimension(Dimension::Tag) => {
                    let mut tags = record.tags.clone();
                    tags.sort();
                    tags.dedup();
                    tags.retain(|tag| filter.tag.as_ref().is_none_or(|wanted| wanted == tag));
                    tags
                }
                GroupBy::Time { seconds, zone } => {
                    let hour = at - at.rem_euclid(HOUR);
                    let start = if hour < hourly_from {
                        at - at.rem_euclid(DAY)
                    } else if seconds == HOUR {
                        hour
                    } else {
                        let local = record.timestamp.with_timezone(&zone);
                        zone.with_ymd_and_hms(local.year(), local.month(), local.day(), 0, 0, 0)
                            .earliest()
                            .unwrap()
                            .timestamp()
                    };
                    vec![start.to_string()]
                }
            };
            let sketches = filter
                .dimensions(group)
                .iter()
                .all(|d| matches!(d, Dimension::All | Dimension::Model));
            for key in keys {
                let entry = expected.entry(key).or_default();
                entry.0 += 1;
                entry.1 += record.input_tokens + record.output_tokens;
                entry.2 += u64::from(record.outcome != Outcome::Success);
                entry.3 += record.cost_usd;
                // Percentiles are over the calls that reached a provider.
                let provider = matches!(
                    record.outcome,
                    Outcome::Success | Outcome::Error | Outcome::Timeout
                );
                if sketches && provider {
                    entry.4.add(record.latency_ms);
                }
            }
        }
        expected
    }

    fn summarize(groups: &Groups) -> BTreeMap<String, (u64, u64, u64, f64, Sketch)> {
        groups
            .iter()
            .map(|(key, group)| {
                let total = group.total();
                (
                    key.clone(),
                    (
                        total.calls,
                        total.input_tokens + total.output_tokens,
                        total.calls - group.by_outcome[0].calls,
                        total.cost_usd,
                        total.latency,
                    ),
                )
            })
            .collect()
    }

    fn assert_same(
        got: &BTreeMap<String, (u64, u64, u64, f64, Sketch)>,
        expected: &BTreeMap<String, (u64, u64, u64, f64, Sketch)>,
        what: &str,
    ) {
        let got_keys: Vec<&String> = got.keys().collect();
        let expected_keys: Vec<&String> = expected.keys().collect();
        assert_eq!(got_keys, expected_keys, "groups of {what}");
        for (key, want) in expected {
            let have = &got[key];
            assert_eq!(
                (have.0, have.1, have.2),
                (want.0, want.1, want.2),
                "{what} [{key}]"
            );
            assert!(
                (have.3 - want.3).abs() <= 1e-9 * want.3.abs().max(1.0),
                "{what} [{key}] cost {} vs {}",
                have.3,
                want.3
            );
            assert_eq!(have.4, want.4, "{what} [{key}] latency sketch");
        }
    }

    fn random_filter(rng: &mut StdRng) -> Filter {
        let maybe = |rng: &mut StdRng, names: &[&str]| {
            rng.gen_bool(0.3)
                .then(|| names[rng.gen_range(0..names.len())].to_owned())
        };
        let from = rng
            .gen_bool(0.5)
            .then(|| BASE + rng.gen_range(-50..50) * HOUR);
        let to = rng
            .gen_bool(0.5)
            .then(|| BASE + rng.gen_range(-50..50) * HOUR);
        Filter {
            projects: rng
                .gen_bool(0.3)
                .then(|| ["p1".to_owned(), "p3".to_owned()].into_iter().collect()),
            model: maybe(rng, &["m1", "m2", ""]),
            token: maybe(rng, &["t1", "t2"]),
            user: maybe(rng, &["u1", ""]),
            tag: maybe(rng, &["a", "c"]),
            outcome: rng.gen_bool(0.3).then(|| OUTCOMES[rng.gen_range(0..5)]),
            from,
            to,
        }
    }

    const GROUPS: [GroupBy; 7] = [
        GroupBy::Nothing,
        GroupBy::Project,
        GroupBy::Dimension(Dimension::Model),
        GroupBy::Dimension(Dimension::Token),
        GroupBy::Dimension(Dimension::User),
        GroupBy::Dimension(Dimension::Tag),
        GroupBy::Time {
            seconds: HOUR,
            zone: chrono_tz::Tz::UTC,
        },
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Rollups (kept across a checkpoint taken mid-stream and a compaction of old
        /// hours into days) answer every report exactly as the raw records do.
        #[test]
        fn rollups_equal_a_brute_force_aggregation(seed in any::<u64>(), count in 1usize..400, split in 0usize..400) {
            let mut rng = StdRng::seed_from_u64(seed);
            let records: Vec<UsageRecord> = (0..count).map(|i| random_record(&mut rng, i)).collect();
            let mut rollups = Rollups::default();
            let split = split.min(count);
            for record in &records[..split] {
                rollups.add(record);
            }
            // A restart mid-hour: the checkpointed form (binary, or the version 1 JSON an
            // upgrade reads once), read back, continues.
            let mut rollups = if rng.gen_bool(0.5) {
                let mut bytes = Vec::new();
                rollups.encode(&mut bytes);
                let mut reader = Reader::new(&bytes);
                let decoded = Rollups::decode(&mut reader).expect("round trip");
                prop_assert!(reader.is_empty());
                decoded
            } else {
                let json = serde_json::to_vec(&rollups.to_file()).unwrap();
                Rollups::from_file(serde_json::from_slice(&json).unwrap())
            };
            for record in &records[split..] {
                rollups.add(record);
            }
            if rng.gen_bool(0.5) {
                // Hours older than a day before BASE (mid-range) become days.
                rollups.compact(Utc.timestamp_opt(BASE, 0).unwrap(), 1);
            }
            let zones = [chrono_tz::Tz::UTC, chrono_tz::America::New_York, chrono_tz::Europe::Berlin, chrono_tz::Asia::Tokyo];
            for round in 0..12 {
                let mut filter = random_filter(&mut rng);
                let mut group = GROUPS[rng.gen_range(0..GROUPS.len())];
                if round % 4 == 0 {
                    group = GroupBy::Time { seconds: DAY, zone: zones[rng.gen_range(0..zones.len())] };
                }
                // Time bounds on whole hours, which before the horizon (for a dimension kept
                // by day only, everywhere) widen to whole days.
                let hourly_from = rollups.horizon(&filter, group);
                let dimensions = filter.dimensions(group);
                prop_assert_eq!(
                    hourly_from == i64::MAX,
                    dimensions.len() == 1 && !dimensions[0].has_hours()
                );
                let widen_from = |at: i64| if at >= hourly_from { at } else { at - at.rem_euclid(DAY) };
                let widen_to = |at: i64| if at >= hourly_from || at.rem_euclid(DAY) == 0 { at } else { at - at.rem_euclid(DAY) + DAY };
                let widened = Filter { from: filter.from.map(widen_from), to: filter.to.map(widen_to), ..filter.clone() };
                prop_assert_eq!(&rollups.widen_for(filter.clone(), group), &widened);
                filter = widened;
                let expected = brute_force(&records, &filter, group, hourly_from);
                let mut aggregator = Aggregator::new(filter.clone(), group, hourly_from);
                for record in &records {
                    aggregator.add(record);
                }
                assert_same(&summarize(&aggregator.groups), &expected, &format!("raw {group:?} {filter:?}"));
                match rollups.aggregate(&filter, group) {
                    Some(groups) => assert_same(&summarize(&groups), &expected, &format!("rollups {group:?} {filter:?}")),
                    None => prop_assert!(filter.dimensions(group).len() > 1, "rollups refuse only two-dimension queries"),
                }
            }
        }
    }

    #[test]
    fn the_binary_form_refuses_truncation_and_out_of_place_fields() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut rollups = Rollups::default();
        for index in 0..60 {
            rollups.add(&random_record(&mut rng, index));
        }
        rollups.compact(Utc.timestamp_opt(BASE, 0).unwrap(), 1);
        let mut bytes = Vec::new();
        rollups.encode(&mut bytes);
        let decoded = Rollups::decode(&mut Reader::new(&bytes)).expect("whole");
        assert_eq!(decoded.cell_count(), rollups.cell_count());
        assert_eq!(decoded.hourly_from(), rollups.hourly_from());
        let step = (bytes.len() / 300).max(1);
        for len in (0..bytes.len()).step_by(step).chain(0..64) {
            assert!(
                Rollups::decode(&mut Reader::new(&bytes[..len])).is_err(),
                "a prefix of {len} of {} bytes decoded",
                bytes.len()
            );
        }
        // A name id past the table, an outcome past the last: refused, not guessed.
        let names = rollups.names.len();
        let first_cell =
            8 + 4 + rollups.names.iter().map(|n| 4 + n.len()).sum::<usize>() + 4 + 8 + 4;
        let mut bad = bytes.clone();
        bad[first_cell..first_cell + 4].copy_from_slice(&(names as u32).to_le_bytes());
        assert_eq!(
            Rollups::decode(&mut Reader::new(&bad)).err(),
            Some(Corrupt("an unknown name"))
        );
        let mut bad = bytes.clone();
        bad[first_cell + 8] = 9;
        assert_eq!(
            Rollups::decode(&mut Reader::new(&bad)).err(),
            Some(Corrupt("an unknown outcome"))
        );
    }

    /// Token, user and tag cells are kept by day only; `All` and `Model` by hour too.
    #[test]
    fn high_cardinality_dimensions_keep_days_only() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut rollups = Rollups::default();
        for index in 0..200 {
            rollups.add(&random_record(&mut rng, index));
        }
        for cells in rollups.hours.values() {
            for dimension in DIMENSIONS {
                assert_eq!(
                    cells[dimension as usize].is_empty(),
                    !dimension.has_hours(),
                    "{dimension:?}"
                );
            }
        }
        let by_user = GroupBy::Dimension(Dimension::User);
        let filter = Filter {
            from: Some(BASE + 5 * HOUR),
            to: Some(BASE + 7 * HOUR),
            ..Filter::default()
        };
        let widened = rollups.widen_for(filter.clone(), by_user);
        assert_eq!((widened.from, widened.to), (Some(BASE), Some(BASE + DAY)));
        let widened = rollups.widen_for(filter, GroupBy::Dimension(Dimension::Model));
        assert_eq!(
            (widened.from, widened.to),
            (Some(BASE + 5 * HOUR), Some(BASE + 7 * HOUR))
        );
    }

    #[test]
    fn quantiles_from_a_sketch_are_within_two_percent() {
        let mut sketch = Sketch::default();
        let mut values: Vec<f64> = (1..=10_000).map(|i| f64::from(i) * 0.37).collect();
        for value in &values {
            sketch.add(*value);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.5, 0.95, 0.99] {
            let truth = values[(q * (values.len() - 1) as f64).floor() as usize];
            let estimate = sketch.quantile(q).expect("not empty");
            assert!(
                (estimate - truth).abs() <= 0.02 * truth,
                "q{q}: {estimate} vs {truth}"
            );
        }
        assert_eq!(Sketch::default().quantile(0.5), None);
        let mut zero = Sketch::default();
        zero.add(0.0);
        zero.add(f64::NAN);
        assert_eq!(zero.quantile(0.5), Some(0.0));
    }
}
