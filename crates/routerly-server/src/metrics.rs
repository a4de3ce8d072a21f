//! `GET /metrics`: counters and histograms in the Prometheus text format.
//!
//! Nearly every figure is derived from the [`UsageRecord`] that each call leaves, at the one
//! place records are emitted (the usage sink's observer, see [`Metrics::observe`]), so a
//! metric can never disagree with the usage log and the request path carries no extra hooks.
//! The only other inputs are [`Metrics::call_started`] (for the in-flight gauge: calls
//! started minus records observed) and the usage writer's queue depth, read at scrape time.
//!
//! Series are keyed by low-cardinality labels only: project id, model id, provider, surface
//! and outcome (never a token, a user or any text of the request). A record updates plain
//! atomics; the series map is behind a read-write lock that is written once per new label
//! set, and looked up without allocating.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use routerly_core::usage::{Outcome, Surface, UsageRecord};

/// Upper bounds (seconds) of the request-duration and time-to-first-token buckets.
const DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Upper bounds (seconds) of the gateway-overhead buckets: Routerly's own time is far below
/// a provider's, so these start at 25 µs.
const OVERHEAD_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// A cumulative histogram with fixed buckets.
struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    counts: [AtomicU64; 17],
    /// The sum of observations, as `f64` bits.
    sum: AtomicF64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [f64; N]) -> Self {
        const { assert!(N < 17, "one slot is kept for +Inf") };
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicF64::default(),
        }
    }

    fn observe(&self, seconds: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(N);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum.add(seconds);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (index, bound) in self.bounds.iter().enumerate() {
            cumulative += self.counts[index].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[N].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum.get());
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// An `f64` counter updated with compare-and-swap.
#[derive(Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn add(&self, value: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// The labels of one call series.
#[derive(Clone, PartialEq, Eq)]
struct CallLabels {
    project: String,
    model: String,
    provider: String,
    surface: Surface,
    outcome: Outcome,
}

impl CallLabels {
    fn matches(&self, record: &UsageRecord) -> bool {
        self.surface == record.surface
            && self.outcome == record.outcome
            && self.project == record.project_id
            && self.model == record.model_id.as_deref().unwrap_or("")
            && self.provider == record.provider.as_deref().unwrap_or("")
    }

    fn render(&self) -> String {
        format!(
            "project=\"{}\",model=\"{}\",provider=\"{}\",surface=\"{}\",outcome=\"{}\"",
            escape(&self.project),
            escape(&self.model),
            escape(&self.provider),
            surface_name(self.surface),
            outcome_name(self.outcome),
        )
    }
}

/// Everything counted for one label set.
struct CallSeries {
    labels: CallLabels,
    requests: AtomicU64,
    duration: Histogram<16>,
    overhead: Histogram<12>,
    ttft: Histogram<16>,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    cached_input_tokens: AtomicU64,
    cache_write_tokens: AtomicU64,
    cost_usd: AtomicF64,
}

impl CallSeries {
    fn new(labels: CallLabels) -> Self {
        CallSeries {
            labels,
            requests: AtomicU64::new(0),
            duration: Histogram::new(&DURATION_BUCKETS),
            overhead: Histogram::new(&OVERHEAD_BUCKETS),
            ttft: Histogram::new(&DURATION_BUCKETS),
            input_tokens: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            cached_input_tokens: AtomicU64::new(0),
            cache_write_tokens: AtomicU64::new(0),
            cost_usd: AtomicF64::default(),
        }
    }
}

/// How one upstream attempt ended, as a label.
fn attempt_result(status: Option<u16>) -> &'static str {
    match status {
        None => "network",
        Some(200..=299) => "ok",
        Some(429) => "429",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
    }
}

/// The process-wide registry; cheap to share behind an [`Arc`].
#[derive(Default)]
pub struct Metrics {
    /// Call series by a hash of their labels (collisions share the vector).
    calls: RwLock<HashMap<u64, Vec<Arc<CallSeries>>>>,
    /// Upstream attempts by (model, result).
    attempts: RwLock<HashMap<(String, &'static str), Arc<AtomicU64>>>,
    started: AtomicU64,
    finished: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("started", &self.started)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// An authenticated call began (it will leave exactly one usage record).
    pub fn call_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls started whose record has not been emitted yet.
    pub fn in_flight(&self) -> u64 {
        // `finished` is read first so a record racing the read never makes this negative.
        let finished = self.finished.load(Ordering::Relaxed);
        self.started
            .load(Ordering::Relaxed)
            .saturating_sub(finished)
    }

    /// Counts one emitted usage record: the call's series, its tokens, cost and attempts.
    pub fn observe(&self, record: &UsageRecord) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        let series = self.series(record);
        series.requests.fetch_add(1, Ordering::Relaxed);
        series.duration.observe(record.latency_ms / 1000.0);
        series.overhead.observe(record.overhead_ms / 1000.0);
        if let Some(ttft_ms) = record.ttft_ms {
            series.ttft.observe(ttft_ms / 1000.0);
        }
        let add = |counter: &AtomicU64, value: u64| {
            if value > 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        add(&series.input_tokens, record.input_tokens);
        add(&series.output_tokens, record.output_tokens);
        add(&series.cached_input_tokens, record.cached_input_tokens);
        add(&series.cache_write_tokens, record.cache_write_tokens);
        if record.cost_usd != 0.0 {
            series.cost_usd.add(record.cost_usd);
        }
        for attempt in &record.attempts {
            self.count_attempt(&attempt.model_id, attempt_result(attempt.status));
        }
        // The model named by a record that reached the client with 200 answered it; a failed
        // last attempt is already among `attempts`.
        if record.status == 200
            && let Some(model) = &record.model_id
        {
            self.count_attempt(model, "ok");
        }
    }

    fn series(&self, record: &UsageRecord) -> Arc<CallSeries> {
        let mut hasher = DefaultHasher::new();
        record.project_id.hash(&mut hasher);
        record.model_id.as_deref().unwrap_or("").hash(&mut hasher);
        record.provider.as_deref().unwrap_or("").hash(&mut hasher);
        surface_name(record.surface).hash(&mut hasher);
        outcome_name(record.outcome).hash(&mut hasher);
        let key = hasher.finish();
        if let Some(series) = self
            .calls
            .read()
            .expect("metrics lock poisoned")
            .get(&key)
            .and_then(|bucket| bucket.iter().find(|series| series.labels.matches(record)))
        {
            return Arc::clone(series);
        }
        let mut calls = self.calls.write().expect("metrics lock poisoned");
        let bucket = calls.entry(key).or_default();
        if let Some(series) = bucket.iter().find(|series| series.labels.matches(record)) {
            return Arc::clone(series);
        }
        let series = Arc::new(CallSeries::new(CallLabels {
            project: record.project_id.clone(),
            model: record.model_id.clone().unwrap_or_default(),
            provider: record.provider.clone().unwrap_or_default(),
            surface: record.surface,
            outcome: record.outcome,
        }));
        bucket.push(Arc::clone(&series));
        series
    }

    fn count_attempt(&self, model: &str, result: &'static str) {
        // A borrowed lookup would need the key as a pair of references; model ids are
        // short and this runs once per attempt, so the owned key is built only to insert.
        if let Some(counter) = self
            .attempts
            .read()
            .expect("metrics lock poisoned")
            .iter()
            .find(|((name, kind), _)| name == model && *kind == result)
            .map(|(_, counter)| Arc::clone(counter))
        {
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.attempts
            .write()
            .expect("metrics lock poisoned")
            .entry((model.to_owned(), result))
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition, with the usage writer's current queue depth.
    pub fn render(&self, usage_queue_depth: usize) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let mut calls: Vec<Arc<CallSeries>> = self
            .calls
            .read()
            .expect("metrics lock poisoned")
            .values()
            .flatten()
            .cloned()
            .collect();
        let rendered: Vec<String> = {
            calls.sort_by_cached_key(|series| series.labels.render());
            calls.iter().map(|series| series.labels.render()).collect()
        };
        let counter =
            |out: &mut String, name: &str, help: &str, value: &dyn Fn(&CallSeries) -> String| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (series, labels) in calls.iter().zip(&rendered) {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", value(series));
                }
            };
        counter(
            &mut out,
            "routerly_requests_total",
            "Authenticated proxy calls, by how they ended.",
            &|series| series.requests.load(Ordering::Relaxed).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP routerly_request_errors_total Calls that did not succeed (outcome error, timeout, budget_exceeded or cancelled).\n# TYPE routerly_request_errors_total counter"
        );
        for (series, labels) in calls.iter().zip(&rendered) {
            if series.labels.outcome != Outcome::Success {
                let _ = writeln!(
                    out,
                    "routerly_request_errors_total{{{labels}}} {}",
                    series.requests.load(Ordering::Relaxed)
                );
            }
        }
        let histograms: [(&str, &str, HistogramOf); 3] = [
            (
                "routerly_request_duration_seconds",
                "From the request's arrival to its last byte.",
                |series| &series.duration,
            ),
            (
                "routerly_overhead_seconds",
                "Time spent in Routerly itself: duration minus time waiting for providers.",
                |series| &series.overhead,
            ),
            (
                "routerly_time_to_first_token_seconds",
                "From the request's arrival to the first streamed byte (streams only).",
                |series| &series.ttft,
            ),
        ];
        for (name, help, histogram) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (series, labels) in calls.iter().zip(&rendered) {
                histogram(series).write_to(&mut out, name, labels);
            }
        }
        let _ = writeln!(
            out,
            "# HELP routerly_tokens_total Tokens reported by providers, by type.\n# TYPE routerly_tokens_total counter"
        );
        for (series, labels) in calls.iter().zip(&rendered) {
            for (kind, counter) in [
                ("input", &series.input_tokens),
                ("output", &series.output_tokens),
                ("cached_input", &series.cached_input_tokens),
                ("cache_write", &series.cache_write_tokens),
            ] {
                let _ = writeln!(
                    out,
                    "routerly_tokens_total{{{labels},type=\"{kind}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
        }
        counter(
            &mut out,
            "routerly_cost_usd_total",
            "Cost in USD at the serving model's prices.",
            &|series| series.cost_usd.get().to_string(),
        );

        let mut attempts: Vec<((String, &'static str), u64)> = self
            .attempts
            .read()
            .expect("metrics lock poisoned")
            .iter()
            .map(|(key, counter)| (key.clone(), counter.load(Ordering::Relaxed)))
            .collect();
        attempts.sort();
        let _ = writeln!(
            out,
            "# HELP routerly_upstream_attempts_total Requests sent to providers, by model and result (ok, 429, 4xx, 5xx, network).\n# TYPE routerly_upstream_attempts_total counter"
        );
        for ((model, result), count) in attempts {
            let _ = writeln!(
                out,
                "routerly_upstream_attempts_total{{model=\"{}\",result=\"{result}\"}} {count}",
                escape(&model)
            );
        }
        let _ = writeln!(
            out,
            "# HELP routerly_in_flight_requests Proxy calls started and not yet finished (streams included).\n# TYPE routerly_in_flight_requests gauge\nrouterly_in_flight_requests {}",
            self.in_flight()
        );
        let _ = writeln!(
            out,
            "# HELP routerly_usage_queue_depth Usage records waiting for the usage writer.\n# TYPE routerly_usage_queue_depth gauge\nrouterly_usage_queue_depth {usage_queue_depth}"
        );
        out
    }
}

/// Picks one histogram of a series.
type HistogramOf = fn(&CallSeries) -> &dyn WriteHistogram;

/// Lets histograms of different bucket counts share one rendering loop.
trait WriteHistogram {
    fn write_to(&self, out: &mut String, name: &str, labels: &str);
}

impl<const N: usize> WriteHistogram for Histogram<N> {
    fn write_to(&self, out: &mut String, name: &str, labels: &str) {
        self.write(out, name, labels);
    }
}

pub(crate) fn surface_name(surface: Surface) -> &'static str {
    match surface {
        Surface::ChatCompletions => "chat_completions",
        Surface::Messages => "messages",
        Surface::Responses => "responses",
        Surface::Embeddings => "embeddings",
    }
}

pub(crate) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Error => "error",
        Outcome::Timeout => "timeout",
        Outcome::BudgetExceeded => "budget_exceeded",
        Outcome::Cancelled => "cancelled",
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(value);
    }
    std::borrow::Cow::Owned(
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_every_observation() {
        let histogram = Histogram::new(&OVERHEAD_BUCKETS);
        histogram.observe(0.000_01);
        histogram.observe(0.003);
        histogram.observe(5.0);
        let mut out = String::new();
        histogram.write(&mut out, "h", "a=\"b\"");
        assert!(
            out.contains("h_bucket{a=\"b\",le=\"0.000025\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("h_bucket{a=\"b\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{a=\"b\",le=\"0.1\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("h_count{a=\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
