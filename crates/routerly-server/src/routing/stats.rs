//! The statistics policies read, in memory: per model, calls, errors and latencies in
//! five-second buckets; per project and model, successful calls; per model, the circuit
//! breaker. Updated from each usage record as it is emitted (the usage sink's observer), and
//! rebuilt from the recent part of the usage log at start-up, so the request path reads
//! memory only and never the usage file.
//!
//! With Redis ([`crate::store::redis_shared`]), a background task exchanges with the other
//! replicas every half second, off the request path:
//! - circuits: one this replica opens is told to the others ([`Stats::take_opened`]) and
//!   theirs are learnt ([`Stats::learn_opened`]): a model's circuit opened on one replica is
//!   open on all within a second, each replica then probing it on its own after the cool-down;
//! - the counts themselves: what this replica observed since the last exchange, summed per
//!   bucket ([`Stats::take_deltas`]), is added to a Redis stream, and the other replicas'
//!   sums are added to this replica's buckets ([`Stats::learn_deltas`]), so latency, error
//!   and call counts (and so every policy reading them) cover the calls all replicas answered,
//!   within a second. Policies still read memory only.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use routerly_core::routing::policy::{HealthConfig, PerformanceConfig};
use routerly_core::routing::score::{self, HealthInput, PolicyResult};
use routerly_core::usage::{Outcome, UsageRecord};
use serde::{Deserialize, Serialize};

/// Width of a bucket, in seconds.
const BUCKET_SECONDS: i64 = 5;
/// How long buckets are kept when no policy asks for longer.
const MIN_RETENTION_SECONDS: i64 = 2 * 3600;
/// The longest window kept, whatever a policy asks.
const MAX_RETENTION_SECONDS: i64 = 24 * 3600;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    start: i64,
    calls: u32,
    errors: u32,
    latency_sum_ms: f64,
    latency_count: u32,
}

/// A model's circuit breaker (PRODUCT.md: excluded past the breaker rate, one probe after a
/// cool-down).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Circuit {
    /// Calls flow; only calls after `since` count toward the raw rate.
    Closed {
        /// When the circuit last closed (seconds, fractional); errors before are forgotten.
        since: f64,
    },
    /// Excluded since `since`.
    Open {
        /// When it opened.
        since: f64,
    },
    /// One probe request was let through at `probe_at`; others stay excluded.
    HalfOpen {
        /// When the probe began.
        probe_at: f64,
    },
}

impl Circuit {
    /// The state's name, for traces and `/metrics`.
    pub fn name(&self) -> &'static str {
        match self {
            Circuit::Closed { .. } => "closed",
            Circuit::Open { .. } => "open",
            Circuit::HalfOpen { .. } => "half_open",
        }
    }
}

/// One model as routing sees it now ([`Stats::report`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReport {
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    /// When the circuit last changed state (seconds); `None` when it never opened.
    pub circuit_since: Option<f64>,
    /// Attempts in the window (since the circuit last closed).
    pub calls: u64,
    /// Of which failed (errors and timeouts that count against a model).
    pub failures: u64,
    /// The `health` policy's score, 0 to 1.
    pub score: f64,
    /// Mean latency of the successful calls in the window, milliseconds.
    pub mean_latency_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct ModelSeries {
    buckets: VecDeque<Bucket>,
    circuit: Option<Circuit>,
}

/// One bucket's counts in [`Deltas`]: calls, errors, latency sum (ms), latency samples.
type Cell = (u32, u32, f64, u32);

/// Counts observed on one replica since its last exchange, summed per bucket start: what
/// it tells the others ([`Stats::take_deltas`]) and learns from them ([`Stats::learn_deltas`]).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deltas {
    /// Per model, per bucket start: calls, errors, latency sum (ms), latency samples.
    #[serde(default, rename = "m")]
    models: BTreeMap<String, BTreeMap<i64, Cell>>,
    /// Per project, per model, per bucket start: successful completions.
    #[serde(default, rename = "s")]
    successes: BTreeMap<String, BTreeMap<String, BTreeMap<i64, u32>>>,
}

impl Deltas {
    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty() && self.successes.is_empty()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Deltas) {
        for (model_id, buckets) in other.models {
            let mine = self.models.entry(model_id).or_default();
            for (start, (calls, errors, latency_sum, latency_count)) in buckets {
                let cell = mine.entry(start).or_default();
                cell.0 += calls;
                cell.1 += errors;
                cell.2 += latency_sum;
                cell.3 += latency_count;
            }
        }
        for (project_id, models) in other.successes {
            let mine = self.successes.entry(project_id).or_default();
            for (model_id, buckets) in models {
                let cells = mine.entry(model_id).or_default();
                for (start, count) in buckets {
                    *cells.entry(start).or_default() += count;
                }
            }
        }
    }
}

/// The statistics' maps hash with foldhash (randomly seeded; keys are model and project ids
/// from the configuration): SipHash here was a tenth of a call's hashing under load.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Inner {
    models: FastMap<String, ModelSeries>,
    /// When another replica last opened each model's circuit (seconds).
    opened_elsewhere: HashMap<String, f64>,
    /// Circuits opened here since the last [`Stats::take_opened`]; `None` when not shared.
    opened_here: Option<Vec<(String, f64)>>,
    /// Counts observed here since the last [`Stats::take_deltas`]; `None` when not shared.
    outbox: Option<Deltas>,
    /// Successful completions per project, then per model, in buckets (start, count).
    successes: FastMap<String, FastMap<String, VecDeque<(i64, u32)>>>,
    retention: i64,
}

/// The in-memory statistics. One short mutex section per record and per routed request.
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            inner: Mutex::new(Inner {
                retention: MIN_RETENTION_SECONDS,
                ..Inner::default()
            }),
        }
    }
}

/// Seconds since the epoch, fractional.
pub fn now_seconds() -> f64 {
    seconds_of(Utc::now())
}

fn seconds_of(time: DateTime<Utc>) -> f64 {
    time.timestamp_micros() as f64 / 1e6
}

fn bucket_start(seconds: f64) -> i64 {
    (seconds.floor() as i64).div_euclid(BUCKET_SECONDS) * BUCKET_SECONDS
}

/// Whether an attempt that failed with `status` (none: connect error, timeout, unreadable
/// answer) counts against the model's health. A request the provider refused as malformed
/// says nothing about the model.
fn is_model_failure(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(status) => matches!(status, 401 | 403 | 404 | 408 | 409 | 425 | 429 | 500..=599),
    }
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("routing stats lock is never poisoned")
    }

    /// Keeps at least `window_minutes` of history (up to a day).
    pub fn retain_at_least(&self, window_minutes: f64) {
        let wanted = ((window_minutes * 60.0).ceil() as i64 + BUCKET_SECONDS)
            .clamp(MIN_RETENTION_SECONDS, MAX_RETENTION_SECONDS);
        let mut inner = self.lock();
        inner.retention = inner.retention.max(wanted);
    }

    /// Counts one finished call: its failed attempts against their models, then the outcome
    /// of the model that served or failed last. A call the client abandoned still called
    /// its model (a call for `rate-limit`), but says nothing of its speed or health.
    pub fn observe(&self, record: &UsageRecord) {
        if record.outcome == Outcome::BudgetExceeded {
            return;
        }
        let at = seconds_of(record.timestamp);
        let mut inner = self.lock();
        for attempt in &record.attempts {
            let failed = is_model_failure(attempt.status);
            inner.count(&attempt.model_id, at, failed, None);
        }
        let Some(model_id) = record.model_id.as_deref() else {
            return;
        };
        if record.outcome == Outcome::Cancelled {
            inner.count(model_id, at, false, None);
        }
        if record.outcome == Outcome::Success {
            let latency = if record.stream {
                record.ttft_ms.unwrap_or(record.latency_ms)
            } else {
                record.latency_ms
            };
            inner.count(model_id, at, false, Some(latency));
            if record.call_type == routerly_core::usage::CallType::Completion {
                inner.success(&record.project_id, model_id, at);
            }
        }
        // A failed call's last model is already among its attempts.
    }

    /// The oldest record time (seconds) the statistics keep: the start-up replay feeds
    /// [`Stats::observe`] the records from then on.
    pub fn keeps_since(&self) -> f64 {
        now_seconds() - self.lock().retention as f64
    }

    /// `health` for `model_ids` now: decayed error rates, and exclusions by the circuit
    /// breaker, whose state moves here (open → half-open after the cool-down, one probe).
    pub fn health(
        &self,
        model_ids: &[&str],
        config: &HealthConfig,
        now: f64,
    ) -> (PolicyResult, Vec<String>) {
        let window = config.window_minutes * 60.0;
        let half_life = config.half_life_minutes * 60.0;
        let mut inner = self.lock();
        let Inner {
            models,
            opened_elsewhere,
            opened_here,
            ..
        } = &mut *inner;
        let mut result = PolicyResult::neutral(model_ids.len());
        let mut notes = Vec::new();
        for (index, model_id) in model_ids.iter().enumerate() {
            let elsewhere = opened_elsewhere
                .get(*model_id)
                .copied()
                .filter(|opened| now - opened < config.cooldown_seconds);
            let series = match (models.get_mut(*model_id), elsewhere) {
                (Some(series), _) => series,
                (None, Some(_)) => models.entry((*model_id).to_owned()).or_default(),
                (None, None) => continue, // No calls yet: healthy, circuit closed.
            };
            let since = match series.circuit {
                Some(Circuit::Closed { since }) => since,
                _ => f64::NEG_INFINITY,
            };
            if let (Some(opened), None | Some(Circuit::Closed { .. })) = (elsewhere, series.circuit)
                && opened > since
            {
                // Another replica opened it after it last closed here.
                series.circuit = Some(Circuit::Open { since: opened });
                result.exclusions[index] =
                    Some("circuit open (opened by another replica): cooling down".to_owned());
                continue;
            }
            let input = health_input(&series.buckets, now, window, half_life, since);
            result.scores[index] = score::health_score(&input, config.pseudo_counts);
            let tripped = score::breaker_tripped(&input, config.circuit_breaker);
            let circuit = series.circuit.unwrap_or(Circuit::Closed {
                since: f64::NEG_INFINITY,
            });
            let (next, excluded) = match circuit {
                Circuit::Closed { .. } if tripped => {
                    if let Some(opened_here) = opened_here.as_mut() {
                        opened_here.push(((*model_id).to_owned(), now));
                    }
                    (
                        Circuit::Open { since: now },
                        Some(format!(
                            "circuit open: {} of {} recent calls failed (breaker {})",
                            input.raw_errors, input.raw_calls, config.circuit_breaker
                        )),
                    )
                }
                Circuit::Closed { .. } => (circuit, None),
                Circuit::Open { since } if now - since >= config.cooldown_seconds => {
                    notes.push(format!("{model_id}: half-open, this request probes it"));
                    (Circuit::HalfOpen { probe_at: now }, None)
                }
                Circuit::Open { .. } => (circuit, Some("circuit open: cooling down".to_owned())),
                Circuit::HalfOpen { probe_at }
                    if now - probe_at >= config.cooldown_seconds.max(1.0) * 4.0 =>
                {
                    // The probe never reported back (the caller went away): probe again.
                    notes.push(format!(
                        "{model_id}: half-open, this request probes it again"
                    ));
                    (Circuit::HalfOpen { probe_at: now }, None)
                }
                Circuit::HalfOpen { .. } => (
                    circuit,
                    Some("circuit half-open: a probe is in flight".to_owned()),
                ),
            };
            series.circuit = Some(next);
            if let Some(reason) = excluded {
                result.exclusions[index] = Some(reason);
            }
        }
        (result, notes)
    }

    /// `performance` for `model_ids`: decayed mean latency of models with enough samples.
    pub fn performance(
        &self,
        model_ids: &[&str],
        config: &PerformanceConfig,
        now: f64,
    ) -> PolicyResult {
        let window = config.window_minutes * 60.0;
        let half_life = config.half_life_minutes * 60.0;
        let inner = self.lock();
        let latencies: Vec<Option<f64>> = model_ids
            .iter()
            .map(|model_id| {
                let series = inner.models.get(*model_id)?;
                let (mut weighted, mut weights, mut samples) = (0f64, 0f64, 0u32);
                for bucket in in_window(&series.buckets, now, window) {
                    if bucket.latency_count == 0 {
                        continue;
                    }
                    let weight = score::decay_weight(age(bucket, now), half_life);
                    weighted += weight * bucket.latency_sum_ms;
                    weights += weight * f64::from(bucket.latency_count);
                    samples += bucket.latency_count;
                }
                (samples >= config.min_samples.max(1) && weights > 0.0).then(|| weighted / weights)
            })
            .collect();
        score::performance(&latencies)
    }

    /// Calls per model in the last `window_minutes` (every attempt counts).
    pub fn calls(&self, model_ids: &[&str], window_minutes: f64, now: f64) -> Vec<u64> {
        let inner = self.lock();
        model_ids
            .iter()
            .map(|model_id| {
                inner.models.get(*model_id).map_or(0, |series| {
                    in_window(&series.buckets, now, window_minutes * 60.0)
                        .map(|bucket| u64::from(bucket.calls))
                        .sum()
                })
            })
            .collect()
    }

    /// Successful completions of `project_id` per model in `model_ids`, and over all its
    /// models, in the last `window_minutes`.
    pub fn successes(
        &self,
        project_id: &str,
        model_ids: &[&str],
        window_minutes: f64,
        now: f64,
    ) -> (Vec<u64>, u64) {
        let inner = self.lock();
        let Some(project) = inner.successes.get(project_id) else {
            return (vec![0; model_ids.len()], 0);
        };
        let from = bucket_start(now - window_minutes * 60.0);
        let count = |buckets: &VecDeque<(i64, u32)>| -> u64 {
            buckets
                .iter()
                .rev()
                .take_while(|(start, _)| *start >= from)
                .map(|(_, count)| u64::from(*count))
                .sum()
        };
        let per_model = model_ids
            .iter()
            .map(|model_id| project.get(*model_id).map_or(0, count))
            .collect();
        let total = project.values().map(count).sum();
        (per_model, total)
    }

    /// How routing sees `model_id` now under `config` (the health policy's window and
    /// half-life): its circuit, its recent calls and failures, the health score and the
    /// mean latency of its successes. Reading it moves no circuit (only routing does).
    pub fn report(&self, model_id: &str, config: &HealthConfig, now: f64) -> ModelReport {
        let inner = self.lock();
        let Some(series) = inner.models.get(model_id) else {
            return ModelReport {
                circuit: "closed",
                circuit_since: None,
                calls: 0,
                failures: 0,
                score: 1.0,
                mean_latency_ms: None,
            };
        };
        let circuit = series.circuit.unwrap_or(Circuit::Closed {
            since: f64::NEG_INFINITY,
        });
        let (since, changed) = match circuit {
            Circuit::Closed { since } => (since, since),
            Circuit::Open { since } => (f64::NEG_INFINITY, since),
            Circuit::HalfOpen { probe_at } => (f64::NEG_INFINITY, probe_at),
        };
        let window = config.window_minutes * 60.0;
        let input = health_input(
            &series.buckets,
            now,
            window,
            config.half_life_minutes * 60.0,
            since,
        );
        let (latency_sum, latency_count) = in_window(&series.buckets, now, window)
            .fold((0f64, 0u32), |(sum, count), bucket| {
                (sum + bucket.latency_sum_ms, count + bucket.latency_count)
            });
        ModelReport {
            circuit: circuit.name(),
            circuit_since: changed.is_finite().then_some(changed),
            calls: input.raw_calls,
            failures: input.raw_errors,
            score: score::health_score(&input, config.pseudo_counts),
            mean_latency_ms: (latency_count > 0).then(|| latency_sum / f64::from(latency_count)),
        }
    }

    /// Starts collecting the circuits opened and the calls observed here, for
    /// [`Stats::take_opened`] and [`Stats::take_deltas`] (what is observed before, such as
    /// the start-up replay of this replica's own log, is not told).
    pub fn share(&self) {
        let mut inner = self.lock();
        inner.opened_here.get_or_insert_with(Vec::new);
        inner.outbox.get_or_insert_with(Deltas::default);
    }

    /// The counts observed here since the last call (empty when not shared).
    pub fn take_deltas(&self) -> Deltas {
        self.lock()
            .outbox
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Adds another replica's counts to the buckets here. They move no circuit (a probe's
    /// outcome is the prober's), and are not told again.
    pub fn learn_deltas(&self, deltas: Deltas) {
        let mut inner = self.lock();
        for (model_id, buckets) in deltas.models {
            for (start, (calls, errors, latency_sum_ms, latency_count)) in buckets {
                let delta = Bucket {
                    start,
                    calls,
                    errors,
                    latency_sum_ms,
                    latency_count,
                };
                inner.add(&model_id, delta);
            }
        }
        for (project_id, models) in deltas.successes {
            for (model_id, buckets) in models {
                for (start, count) in buckets {
                    inner.add_successes(&project_id, &model_id, start, count);
                }
            }
        }
    }

    /// The circuits opened here since the last call: (model id, when, in seconds).
    pub fn take_opened(&self) -> Vec<(String, f64)> {
        self.lock()
            .opened_here
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Learns when circuits were opened by any replica (this one's own opens among them
    /// change nothing: its circuit is open since then already).
    pub fn learn_opened(&self, opened: HashMap<String, f64>) {
        self.lock().opened_elsewhere = opened;
    }

    /// Each model's circuit state, for `/metrics`.
    pub fn circuits(&self) -> Vec<(String, &'static str)> {
        let inner = self.lock();
        let mut circuits: Vec<(String, &'static str)> = inner
            .models
            .iter()
            .filter_map(|(model_id, series)| {
                series
                    .circuit
                    .map(|circuit| (model_id.clone(), circuit.name()))
            })
            .collect();
        circuits.sort();
        circuits
    }
}

impl Inner {
    fn count(&mut self, model_id: &str, at: f64, failed: bool, latency_ms: Option<f64>) {
        let delta = Bucket {
            start: bucket_start(at),
            calls: 1,
            errors: u32::from(failed),
            latency_sum_ms: latency_ms.unwrap_or(0.0),
            latency_count: u32::from(latency_ms.is_some()),
        };
        if let Some(outbox) = self.outbox.as_mut() {
            let cell = outbox
                .models
                .entry(model_id.to_owned())
                .or_default()
                .entry(delta.start)
                .or_default();
            cell.0 += delta.calls;
            cell.1 += delta.errors;
            cell.2 += delta.latency_sum_ms;
            cell.3 += delta.latency_count;
        }
        let series = self.add(model_id, delta);
        // A probe reports back: success closes the circuit, failure opens it again.
        if let Some(Circuit::HalfOpen { .. }) = series.circuit {
            series.circuit = Some(if failed {
                Circuit::Open { since: at }
            } else {
                Circuit::Closed { since: at }
            });
        }
    }

    /// Adds `delta` to the bucket of its start, dropping buckets past the retention.
    fn add(&mut self, model_id: &str, delta: Bucket) -> &mut ModelSeries {
        let retention = self.retention;
        if !self.models.contains_key(model_id) {
            self.models
                .insert(model_id.to_owned(), ModelSeries::default());
        }
        let series = self
            .models
            .get_mut(model_id)
            .expect("the series was just made");
        let start = delta.start;
        let bucket = match series
            .buckets
            .iter_mut()
            .rev()
            .find(|bucket| bucket.start == start)
        {
            Some(bucket) => bucket,
            None => {
                // Records arrive nearly in order; an old straggler goes where it belongs.
                let position = series
                    .buckets
                    .iter()
                    .rposition(|bucket| bucket.start < start)
                    .map_or(0, |index| index + 1);
                series.buckets.insert(
                    position,
                    Bucket {
                        start,
                        ..Bucket::default()
                    },
                );
                &mut series.buckets[position]
            }
        };
        bucket.calls += delta.calls;
        bucket.errors += delta.errors;
        bucket.latency_sum_ms += delta.latency_sum_ms;
        bucket.latency_count += delta.latency_count;
        let horizon = start - retention;
        while series
            .buckets
            .front()
            .is_some_and(|bucket| bucket.start < horizon)
        {
            series.buckets.pop_front();
        }
        series
    }

    fn success(&mut self, project_id: &str, model_id: &str, at: f64) {
        let start = bucket_start(at);
        if let Some(outbox) = self.outbox.as_mut() {
            *outbox
                .successes
                .entry(project_id.to_owned())
                .or_default()
                .entry(model_id.to_owned())
                .or_default()
                .entry(start)
                .or_default() += 1;
        }
        self.add_successes(project_id, model_id, start, 1);
    }

    fn add_successes(&mut self, project_id: &str, model_id: &str, start: i64, count: u32) {
        let retention = self.retention;
        // Looked up before inserting, as `add` does: `entry` copied both ids on every call.
        let models = match self.successes.get_mut(project_id) {
            Some(models) => models,
            None => self.successes.entry(project_id.to_owned()).or_default(),
        };
        let buckets = match models.get_mut(model_id) {
            Some(buckets) => buckets,
            None => models.entry(model_id.to_owned()).or_default(),
        };
        match buckets.iter_mut().rev().find(|(first, _)| *first == start) {
            Some((_, cell)) => *cell += count,
            None => {
                let position = buckets
                    .iter()
                    .rposition(|(first, _)| *first < start)
                    .map_or(0, |index| index + 1);
                buckets.insert(position, (start, count));
            }
        }
        while buckets
            .front()
            .is_some_and(|(first, _)| *first < start - retention)
        {
            buckets.pop_front();
        }
    }
}

fn age(bucket: &Bucket, now: f64) -> f64 {
    (now - (bucket.start as f64 + BUCKET_SECONDS as f64 / 2.0)).max(0.0)
}

/// Buckets that overlap the last `window` seconds, newest first.
fn in_window(buckets: &VecDeque<Bucket>, now: f64, window: f64) -> impl Iterator<Item = &Bucket> {
    let from = bucket_start(now - window);
    buckets
        .iter()
        .rev()
        .take_while(move |bucket| bucket.start >= from)
}

fn health_input(
    buckets: &VecDeque<Bucket>,
    now: f64,
    window: f64,
    half_life: f64,
    since: f64,
) -> HealthInput {
    let mut input = HealthInput::default();
    for bucket in in_window(buckets, now, window) {
        // After a recovery only buckets wholly after it count.
        if (bucket.start as f64) < since {
            break;
        }
        let weight = score::decay_weight(age(bucket, now), half_life);
        input.decayed_calls += weight * f64::from(bucket.calls);
        input.decayed_errors += weight * f64::from(bucket.errors);
        input.raw_calls += u64::from(bucket.calls);
        input.raw_errors += u64::from(bucket.errors);
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, outcome: Outcome, latency_ms: f64, seconds_ago: i64) -> UsageRecord {
        let line = serde_json::json!({
            "id": "r", "timestamp": (Utc::now() - chrono::Duration::seconds(seconds_ago)).to_rfc3339(),
            "project_id": "p", "token_id": "t", "model_id": model, "provider": "openai",
            "surface": "chat_completions", "call_type": "completion", "stream": false,
            "input_tokens": 1, "output_tokens": 1, "cached_input_tokens": 0, "cache_write_tokens": 0,
            "cost_usd": 0.0, "input_cost_usd": 0.0, "output_cost_usd": 0.0, "latency_ms": latency_ms,
            "ttft_ms": null, "overhead_ms": 0.1, "outcome": outcome, "status": 200, "error": null,
            "trace_id": "x", "user": null, "tags": [],
            "attempts": if outcome == Outcome::Success { serde_json::json!([]) } else {
                serde_json::json!([{"model_id": model, "error": "HTTP 500", "status": 500}]) },
        });
        serde_json::from_value(line).expect("a usage record")
    }

    #[test]
    fn latency_calls_and_successes_are_counted_per_window() {
        let stats = Stats::default();
        for (model, latency, ago) in [
            ("fast", 100.0, 10),
            ("fast", 300.0, 20),
            ("slow", 800.0, 10),
            ("slow", 50.0, 5000),
        ] {
            stats.observe(&record(model, Outcome::Success, latency, ago));
        }
        stats.observe(&record("slow", Outcome::Error, 0.0, 10));
        let now = now_seconds();
        assert_eq!(
            stats.calls(&["fast", "slow", "none"], 1.0, now),
            vec![2, 2, 0]
        );
        let (per_model, total) = stats.successes("p", &["fast", "slow"], 60.0, now);
        assert_eq!(
            (per_model, total),
            (vec![2, 1], 3),
            "the 83-minute-old call is outside 60 minutes"
        );
        let performance = stats.performance(&["fast", "slow"], &PerformanceConfig::default(), now);
        // Decayed mean of fast ≈ 200 (two samples 10 s apart), slow 800 → slow ≈ 0.25.
        assert!(
            (performance.scores[1] - 0.25).abs() < 0.01,
            "{performance:?}"
        );
    }

    #[test]
    fn an_abandoned_call_counts_as_a_call_but_not_for_speed_or_health() {
        let stats = Stats::default();
        stats.observe(&record("m", Outcome::Success, 100.0, 10));
        stats.observe(&record("other", Outcome::Success, 200.0, 10));
        let mut cancelled = record("m", Outcome::Cancelled, 5000.0, 5);
        cancelled.attempts.clear();
        stats.observe(&cancelled);
        let now = now_seconds();
        assert_eq!(
            stats.calls(&["m"], 1.0, now),
            vec![2],
            "the provider was called twice"
        );
        let performance = stats.performance(&["m", "other"], &PerformanceConfig::default(), now);
        let (per_model, _) = stats.successes("p", &["m"], 60.0, now);
        assert_eq!(per_model, vec![1], "an abandoned call is no success");
        let health = stats.health(&["m"], &HealthConfig::default(), now).0;
        assert_eq!(health.exclusions, vec![None], "nor a failure: {health:?}");
        assert_eq!(
            performance.scores,
            vec![1.0, 0.5],
            "the 5 s the client waited before leaving is no latency sample: {performance:?}"
        );
    }

    #[test]
    fn the_breaker_opens_then_lets_one_probe_through_and_a_success_closes_it() {
        let stats = Stats::default();
        for _ in 0..3 {
            stats.observe(&record("bad", Outcome::Error, 0.0, 1));
        }
        let config = HealthConfig {
            cooldown_seconds: 0.0,
            ..HealthConfig::default()
        };
        let now = now_seconds();
        let (first, _) = stats.health(&["bad"], &config, now);
        assert!(
            first.exclusions[0]
                .as_deref()
                .is_some_and(|reason| reason.contains("circuit open"))
        );
        // Cool-down of 0: the next request probes; the one after waits for the probe.
        let (probe, notes) = stats.health(&["bad"], &config, now + 0.1);
        assert_eq!(probe.exclusions[0], None);
        assert_eq!(notes.len(), 1);
        let (waiting, _) = stats.health(&["bad"], &config, now + 0.2);
        assert!(waiting.exclusions[0].is_some());
        stats.observe(&record("bad", Outcome::Success, 10.0, 0));
        let (closed, _) = stats.health(&["bad"], &config, now_seconds() + 0.3);
        assert_eq!(
            closed.exclusions[0], None,
            "errors before the recovery are forgotten"
        );
        assert_eq!(stats.circuits(), vec![("bad".to_owned(), "closed")]);
    }

    #[test]
    fn a_report_shows_the_circuit_and_recent_calls_without_moving_the_circuit() {
        let stats = Stats::default();
        let config = HealthConfig {
            cooldown_seconds: 0.0,
            ..HealthConfig::default()
        };
        let now = now_seconds();
        let unknown = stats.report("never", &config, now);
        assert_eq!(
            (
                unknown.circuit,
                unknown.calls,
                unknown.score,
                unknown.circuit_since
            ),
            ("closed", 0, 1.0, None)
        );
        stats.observe(&record("m", Outcome::Success, 100.0, 10));
        stats.observe(&record("m", Outcome::Success, 300.0, 8));
        let healthy = stats.report("m", &config, now);
        assert_eq!((healthy.calls, healthy.failures), (2, 0));
        assert_eq!(healthy.mean_latency_ms, Some(200.0));
        for _ in 0..3 {
            stats.observe(&record("bad", Outcome::Error, 0.0, 1));
        }
        assert_eq!(stats.report("bad", &config, now).circuit, "closed");
        stats.health(&["bad"], &config, now);
        let open = stats.report("bad", &config, now + 1.0);
        assert_eq!((open.circuit, open.calls, open.failures), ("open", 3, 3));
        assert_eq!(open.circuit_since, Some(now));
        assert!(open.score < 0.5, "{open:?}");
        assert_eq!(
            stats.report("bad", &config, now + 2.0).circuit,
            "open",
            "a report past the cool-down does not half-open the circuit"
        );
    }

    #[test]
    fn a_circuit_opened_on_one_replica_is_open_on_another_until_its_cool_down() {
        let (here, there) = (Stats::default(), Stats::default());
        here.share();
        there.share();
        here.observe(&record("bad", Outcome::Error, 0.0, 1));
        let config = HealthConfig {
            cooldown_seconds: 30.0,
            ..HealthConfig::default()
        };
        let now = now_seconds();
        assert!(here.health(&["bad"], &config, now).0.exclusions[0].is_some());
        let opened = here.take_opened();
        assert_eq!(opened, vec![("bad".to_owned(), now)]);
        assert!(here.take_opened().is_empty(), "told once");
        // `there` never saw a call to `bad`: healthy until it learns of the opening.
        assert_eq!(there.health(&["bad"], &config, now).0.exclusions[0], None);
        there.learn_opened(opened.into_iter().collect());
        let (learnt, _) = there.health(&["bad", "good"], &config, now + 0.5);
        assert!(
            learnt.exclusions[0]
                .as_deref()
                .is_some_and(|reason| reason.contains("another replica")),
            "{learnt:?}"
        );
        assert_eq!(learnt.exclusions[1], None);
        assert!(
            there.take_opened().is_empty(),
            "a learnt opening is not told again"
        );
        // After the cool-down `there` probes on its own; a success closes it for good.
        let (probe, _) = there.health(&["bad"], &config, now + 31.0);
        assert_eq!(probe.exclusions[0], None);
        there.observe(&record("bad", Outcome::Success, 10.0, 0));
        let (closed, _) = there.health(&["bad"], &config, now_seconds() + 32.0);
        assert_eq!(
            closed.exclusions[0], None,
            "the old opening does not reopen it"
        );
        // Without sharing nothing is collected.
        let alone = Stats::default();
        alone.observe(&record("bad", Outcome::Error, 0.0, 1));
        assert!(alone.health(&["bad"], &config, now).0.exclusions[0].is_some());
        assert!(alone.take_opened().is_empty());
    }

    #[test]
    fn counts_told_by_one_replica_are_counted_by_another_once_and_not_told_again() {
        let (here, there) = (Stats::default(), Stats::default());
        // Observed before sharing (the start-up replay of its own log): not news.
        here.observe(&record("slow", Outcome::Success, 50.0, 30));
        here.share();
        there.share();
        assert!(here.take_deltas().is_empty());
        here.observe(&record("slow", Outcome::Success, 900.0, 10));
        here.observe(&record("slow", Outcome::Success, 700.0, 10));
        here.observe(&record("slow", Outcome::Error, 0.0, 5));
        there.observe(&record("fast", Outcome::Success, 100.0, 10));
        let told = here.take_deltas();
        assert!(here.take_deltas().is_empty(), "told once");
        // As it travels: JSON in the Redis stream.
        let wire = serde_json::to_string(&told).expect("serialises");
        there.learn_deltas(serde_json::from_str(&wire).expect("parses"));
        let now = now_seconds();
        assert_eq!(there.calls(&["slow", "fast"], 1.0, now), vec![3, 1]);
        let (per_model, total) = there.successes("p", &["slow", "fast"], 60.0, now);
        assert_eq!((per_model, total), (vec![2, 1], 3));
        let report = there.report("slow", &HealthConfig::default(), now);
        assert_eq!((report.calls, report.failures), (3, 1));
        assert_eq!(report.mean_latency_ms, Some(800.0));
        let performance = there.performance(&["fast", "slow"], &PerformanceConfig::default(), now);
        assert!(
            performance.scores[0] > performance.scores[1],
            "the other replica's latencies rank the models here: {performance:?}"
        );
        let mine = there.take_deltas();
        assert_eq!(
            mine.models.keys().collect::<Vec<_>>(),
            vec!["fast"],
            "only its own call is told; learnt counts are not told again: {mine:?}"
        );
        // Untold counts (Redis away) merge with the next ones.
        let mut pending = Deltas::default();
        pending.merge(told.clone());
        pending.merge(told);
        assert_eq!(
            pending.models["slow"]
                .values()
                .map(|cell| cell.0)
                .sum::<u32>(),
            6
        );
    }
}
