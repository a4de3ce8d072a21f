//! `GET /metrics`: counters and histograms in the Prometheus text format.
//!
//! Every part of the service that has figures (calls here, budgets, routing, admission)
//! adds its families to one [`Exposition`] at scrape time, and `prometheus-client` writes
//! it: one encoder, one label escaping, whatever text a label value holds.
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
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
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

    /// The histogram as one sample: its sum, count and per-bucket counts (`+Inf` last).
    fn value(&self) -> Value {
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(&bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        buckets.push((f64::INFINITY, self.counts[N].load(Ordering::Relaxed)));
        Value::Histogram {
            sum: self.sum.get(),
            count: buckets.iter().map(|(_, count)| count).sum(),
            buckets,
        }
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

    fn labels(&self) -> Labels {
        vec![
            ("project", self.project.clone()),
            ("model", self.model.clone()),
            ("provider", self.provider.clone()),
            ("surface", self.surface.name().to_owned()),
            ("outcome", self.outcome.name().to_owned()),
        ]
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
    /// Call series by a hash of their labels (collisions share the vector). foldhash, randomly
    /// seeded: the labels come from the configuration, not from callers, and SipHash here
    /// (twice: the labels, then their hash as the map's key) was 700 instructions per call.
    calls: RwLock<HashMap<u64, Vec<Arc<CallSeries>>, foldhash::fast::RandomState>>,
    labels_hasher: foldhash::fast::RandomState,
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
        let mut hasher = self.labels_hasher.build_hasher();
        record.project_id.hash(&mut hasher);
        record.model_id.as_deref().unwrap_or("").hash(&mut hasher);
        record.provider.as_deref().unwrap_or("").hash(&mut hasher);
        record.surface.name().hash(&mut hasher);
        record.outcome.name().hash(&mut hasher);
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

    /// Adds the call families, with the usage writer's current queue depth.
    pub fn add_to(&self, exposition: &mut Exposition, usage_queue_depth: usize) {
        let mut calls: Vec<(Labels, Arc<CallSeries>)> = self
            .calls
            .read()
            .expect("metrics lock poisoned")
            .values()
            .flatten()
            .map(|series| (series.labels.labels(), Arc::clone(series)))
            .collect();
        calls.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut family = |name, help, kind, value: &dyn Fn(&CallSeries) -> Option<Value>| {
            let family = exposition.family(name, help, kind);
            for (labels, series) in &calls {
                if let Some(value) = value(series) {
                    family.sample(labels.clone(), value);
                }
            }
        };
        family(
            "routerly_requests_total",
            "Authenticated proxy calls, by how they ended.",
            Kind::Counter,
            &|series| Some(Value::Integer(series.requests.load(Ordering::Relaxed))),
        );
        family(
            "routerly_request_errors_total",
            "Calls that did not succeed (outcome error, timeout, budget_exceeded or cancelled).",
            Kind::Counter,
            &|series| {
                (series.labels.outcome != Outcome::Success)
                    .then(|| Value::Integer(series.requests.load(Ordering::Relaxed)))
            },
        );
        family(
            "routerly_request_duration_seconds",
            "From the request's arrival to its last byte.",
            Kind::Histogram,
            &|series| Some(series.duration.value()),
        );
        family(
            "routerly_overhead_seconds",
            "Time spent in Routerly itself: duration minus time waiting for providers.",
            Kind::Histogram,
            &|series| Some(series.overhead.value()),
        );
        family(
            "routerly_time_to_first_token_seconds",
            "From the request's arrival to the first streamed byte (streams only).",
            Kind::Histogram,
            &|series| Some(series.ttft.value()),
        );
        let tokens = exposition.family(
            "routerly_tokens_total",
            "Tokens reported by providers, by type.",
            Kind::Counter,
        );
        for (labels, series) in &calls {
            for (kind, counter) in [
                ("input", &series.input_tokens),
                ("output", &series.output_tokens),
                ("cached_input", &series.cached_input_tokens),
                ("cache_write", &series.cache_write_tokens),
            ] {
                let mut labels = labels.clone();
                labels.push(("type", kind.to_owned()));
                tokens.sample(labels, Value::Integer(counter.load(Ordering::Relaxed)));
            }
        }
        let cost = exposition.family(
            "routerly_cost_usd_total",
            "Cost in USD at the serving model's prices.",
            Kind::Counter,
        );
        for (labels, series) in &calls {
            cost.sample(labels.clone(), Value::Number(series.cost_usd.get()));
        }

        let mut attempts: Vec<((String, &'static str), u64)> = self
            .attempts
            .read()
            .expect("metrics lock poisoned")
            .iter()
            .map(|(key, counter)| (key.clone(), counter.load(Ordering::Relaxed)))
            .collect();
        attempts.sort();
        let family = exposition.family(
            "routerly_upstream_attempts_total",
            "Requests sent to providers, by model and result (ok, 429, 4xx, 5xx, network).",
            Kind::Counter,
        );
        for ((model, result), count) in attempts {
            family.sample(
                vec![("model", model), ("result", result.to_owned())],
                Value::Integer(count),
            );
        }
        exposition.single(
            "routerly_in_flight_requests",
            "Proxy calls started and not yet finished (streams included).",
            Kind::Gauge,
            Value::Integer(self.in_flight()),
        );
        exposition.single(
            "routerly_usage_queue_depth",
            "Usage records waiting for the usage writer.",
            Kind::Gauge,
            Value::Integer(usage_queue_depth as u64),
        );
    }
}

/// A sample's labels, in the order they are written.
pub type Labels = Vec<(&'static str, String)>;

/// How a family's samples are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever grows; its name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Bucketed observations with their sum and count.
    Histogram,
}

/// One sample's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count.
    Integer(u64),
    /// An amount (USD, a fraction).
    Number(f64),
    /// Per-bucket (not cumulative) counts by upper bound, `+Inf` last.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

/// One metric family of a scrape.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Labels, Value)>,
}

impl Family {
    /// Adds a sample.
    pub fn sample(&mut self, labels: Labels, value: Value) -> &mut Self {
        self.samples.push((labels, value));
        self
    }
}

/// What one scrape of `/metrics` reports, gathered from every part of the service and
/// written by `prometheus-client` in the Prometheus text format (version 0.0.4).
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    /// A new family; `name` is the exported name (counters end in `_total`).
    pub fn family(&mut self, name: &'static str, help: &'static str, kind: Kind) -> &mut Family {
        debug_assert_eq!(
            kind == Kind::Counter,
            name.ends_with("_total"),
            "counter names end in _total, others do not: {name}"
        );
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        self.families.last_mut().expect("just pushed")
    }

    /// A family of one sample without labels.
    pub fn single(&mut self, name: &'static str, help: &'static str, kind: Kind, value: Value) {
        self.family(name, help, kind).sample(Vec::new(), value);
    }

    /// The text exposition.
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing into a String cannot fail");
        out
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.families {
            let (name, kind) = match family.kind {
                // The encoder adds the `_total` suffix of counters itself.
                Kind::Counter => (
                    family.name.strip_suffix("_total").unwrap_or(family.name),
                    MetricType::Counter,
                ),
                Kind::Gauge => (family.name, MetricType::Gauge),
                Kind::Histogram => (family.name, MetricType::Histogram),
            };
            let mut metric = encoder.encode_descriptor(name, family.help, None, kind)?;
            for (labels, value) in &family.samples {
                let mut sample = metric.encode_family(labels)?;
                match value {
                    Value::Integer(value) if family.kind == Kind::Counter => {
                        sample.encode_counter::<NoLabelSet, _, u64>(value, None)?
                    }
                    Value::Number(value) if family.kind == Kind::Counter => {
                        sample.encode_counter::<NoLabelSet, _, f64>(value, None)?
                    }
                    Value::Integer(value) => sample.encode_gauge(value)?,
                    Value::Number(value) => sample.encode_gauge(value)?,
                    Value::Histogram {
                        sum,
                        count,
                        buckets,
                    } => sample.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?,
                }
            }
        }
        Ok(())
    }
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
        let mut exposition = Exposition::default();
        exposition.single("h", "A histogram.", Kind::Histogram, histogram.value());
        let out = exposition.encode();
        assert!(out.contains("# TYPE h histogram\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"2.5e-05\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"0.1\"} 2\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert_eq!(out.matches("le=\"+Inf\"").count(), 1, "{out}");
        assert!(out.contains("h_count 3\n"), "{out}");
    }

    #[test]
    fn counters_keep_their_total_name_and_every_label_value_is_escaped() {
        let mut exposition = Exposition::default();
        exposition
            .family("c_total", "A counter.", Kind::Counter)
            .sample(
                vec![
                    ("model", "a\"b\\c\nd".to_owned()),
                    ("kind", "plain".to_owned()),
                ],
                Value::Integer(7),
            );
        exposition.single("g", "A gauge.", Kind::Gauge, Value::Number(0.25));
        let out = exposition.encode();
        assert!(out.contains("# TYPE c_total counter\n"), "{out}");
        assert!(
            out.contains("c_total{model=\"a\\\"b\\\\c\\nd\",kind=\"plain\"} 7\n"),
            "{out}"
        );
        assert!(out.contains("g 0.25\n"), "{out}");
        // A label value can never start a line of its own.
        assert!(
            out.lines().all(|line| line.starts_with('#')
                || line.starts_with("c_total")
                || line.starts_with('g')),
            "{out}"
        );
    }
}
