//! Budgets at run time: admitting calls against every applicable limit before any
//! provider is called, settling what they really used, and noticing alert thresholds.
//!
//! - [`Budgets::admit`] (request path, before the attempt loop): works out the effective
//!   limits of the call for each candidate model, drops candidates whose model-level
//!   limits have no room for the call's estimate, and reserves the estimate atomically
//!   against every limit of the survivors ([`CounterStore::try_reserve`]). The estimate is
//!   the prompt estimate of [`routerly_core::estimate`] plus `max_tokens` (or the
//!   `budget_default_output_tokens` setting), priced at each candidate's prices; limits
//!   shared by several candidates reserve the largest of their estimates, and fallbacks are
//!   reserved too, so a fallback can never overspend its model's limits.
//! - [`BudgetGuard`]: the reservation; dropping it gives the reservation back. It travels
//!   with the call's record (also into a stream relay), so it is dropped only after the
//!   call's usage record has been observed: for a moment the call counts twice, never zero
//!   times, so concurrent calls cannot overspend.
//! - [`Budgets::observe`] (the usage sink's observer, so every record passes once): adds
//!   the call's true cost, calls and tokens to every limit covering it (usage rolls up) and
//!   queues alerts for thresholds crossed. Refused calls (`budget_exceeded`) and calls that
//!   never reached a model count nothing.
//!
//! A call is admitted only when its whole estimate fits under each limit, so with estimates
//! that are upper bounds no limit is ever exceeded; a call whose actual use exceeds its
//! estimate (no `max_tokens`, a long answer) can overshoot by that difference once.
//!
//! Counters live in memory behind [`CounterStore`]; the request path never touches the
//! disk. At start-up they are rebuilt from the usage log and the last checkpoint
//! ([`rebuild`]); a limit added while running is back-filled from the log in the
//! background, counting the calls it sees meanwhile exactly once.

pub mod rebuild;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use routerly_core::alerts::{AlertEvent, AlertLimit, EventKind};
use routerly_core::canonical::Usage;
use routerly_core::config::ModelConfig;
use routerly_core::limits::{
    self, Amounts, CallScope, Limit, Metric, Window, calendar_window, effective_limits,
};
use routerly_core::usage::{self, Outcome, UsageRecord};
use serde::Serialize;

use crate::metrics::{Exposition, Kind, Value};
use crate::notify::{AlertLedger, LedgerKey};
use crate::store::config::{ConfigStore, Snapshot};
use crate::store::counters::{
    Check, CounterError, CounterHealth, CounterKey, CounterStore, ReservationId,
};

/// How long ids of observed records are kept for checkpoints (longer than any write delay).
const RECENT_IDS: Duration = Duration::from_secs(10);
/// How long a back-fill waits for the usage writer to put earlier records on disk.
const BACKFILL_SETTLE: Duration = Duration::from_millis(300);

/// What a call is expected to use, before a model is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEstimate {
    /// Estimated prompt tokens.
    pub input_tokens: u64,
    /// `max_tokens`, or the configured default.
    pub output_tokens: u64,
}

impl CallEstimate {
    /// The estimate's calls, tokens and cost at `model`'s prices (uncached input price:
    /// the highest, so the estimate stays an upper bound).
    pub fn amounts(&self, model: &ModelConfig) -> Amounts {
        let usage = Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            ..Usage::default()
        };
        Amounts {
            cost_usd: usage::cost(&model.pricing, &usage).total_usd,
            calls: 1.0,
            input_tokens: self.input_tokens as f64,
            output_tokens: self.output_tokens as f64,
        }
    }
}

/// A call refused by a limit.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRefusal {
    /// The limit that had no room.
    pub limit: Limit,
    /// Used in its window.
    pub used: f64,
    /// Held by calls in flight.
    pub reserved: f64,
    /// What this call needed.
    pub needed: f64,
    /// When the limit has room for the call again.
    pub resets_at: DateTime<Utc>,
}

impl BudgetRefusal {
    /// Whether this is a rate limit (429) rather than an exhausted budget (503).
    pub fn is_rate_limit(&self) -> bool {
        self.limit.is_rate_limit()
    }

    /// Seconds until [`BudgetRefusal::resets_at`], at least one.
    pub fn retry_after(&self) -> Duration {
        let seconds = (self.resets_at - Utc::now()).num_seconds().max(1);
        Duration::from_secs(seconds as u64)
    }

    /// The message the client reads: which limit, at which level, how full, and when it
    /// resets.
    pub fn message(&self) -> String {
        let what = if self.is_rate_limit() {
            "Rate limit reached"
        } else {
            "Budget exceeded"
        };
        let unit = if self.limit.metric == Metric::Cost {
            " USD"
        } else {
            ""
        };
        format!(
            "{what}: {} limit `{}` ({}) has {:.6}{unit} used and {:.6}{unit} reserved of {}{unit}; this request needs up to {:.6}{unit}. It resets at {}.",
            self.limit.scope.level().as_str(),
            self.limit.id,
            self.limit.describe(),
            self.used,
            self.reserved,
            self.limit.value,
            self.needed,
            self.resets_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    }
}

/// Why [`Budgets::admit`] did not admit a call.
#[derive(Debug, Clone, PartialEq)]
pub enum AdmitError {
    /// A limit has no room for it.
    Refused(Box<BudgetRefusal>),
    /// The shared counters cannot be reached and the failure mode is fail-closed.
    Unavailable(CounterError),
}

/// Every counter's totals and the ids of records observed lately, for a checkpoint.
pub type CheckpointState = (Vec<(CounterKey, limits::WindowTotals)>, Vec<String>);

/// A call's reservation; dropping it gives the reserved amounts back.
pub struct BudgetGuard {
    counters: Arc<dyn CounterStore>,
    reservation: ReservationId,
}

impl std::fmt::Debug for BudgetGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetGuard")
            .field("reservation", &self.reservation)
            .finish()
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        self.counters.release_detached(self.reservation);
    }
}

/// The candidates that may serve a call, and its reservation.
#[derive(Debug)]
pub struct Admission<'m> {
    /// The candidates with room, in their order.
    pub candidates: Vec<&'m ModelConfig>,
    /// The reservation; `None` when no limit exists.
    pub guard: Option<BudgetGuard>,
}

/// The limits of one configuration with their counters, rebuilt when limits change.
#[derive(Debug)]
struct LimitIndex {
    /// The snapshot this index was built from, held so that its address (compared on
    /// every call) cannot be reused by a later snapshot while this index is cached.
    snapshot: Option<Arc<Snapshot>>,
    limits: Vec<Limit>,
    keys: Vec<CounterKey>,
    by_id: HashMap<String, usize>,
    thresholds: Vec<u32>,
}

impl LimitIndex {
    fn build(snapshot: &Snapshot, held: Option<Arc<Snapshot>>) -> Self {
        let default_zone =
            limits::parse_time_zone(&snapshot.settings.budget_time_zone).unwrap_or(Tz::UTC);
        let limits = snapshot.limits.limits.clone();
        let keys = limits
            .iter()
            .map(|limit| counter_key(limit, default_zone))
            .collect();
        let by_id = limits
            .iter()
            .enumerate()
            .map(|(index, limit)| (limit.id.clone(), index))
            .collect();
        let mut thresholds = snapshot.settings.alert_thresholds.clone();
        thresholds.sort_unstable();
        thresholds.dedup();
        LimitIndex {
            snapshot: held,
            limits,
            keys,
            by_id,
            thresholds,
        }
    }

    fn index_of(&self, limit: &Limit) -> usize {
        self.by_id[&limit.id]
    }
}

/// The counter of `limit`: rolling windows are counted in UTC whatever the zone.
pub fn counter_key(limit: &Limit, default_zone: Tz) -> CounterKey {
    let zone = match limit.window {
        Window::Rolling { .. } => Tz::UTC,
        Window::Calendar(_) => limit
            .time_zone
            .as_deref()
            .and_then(|zone| limits::parse_time_zone(zone).ok())
            .unwrap_or(default_zone),
    };
    CounterKey {
        scope: limit.scope.clone(),
        window: limit.window,
        zone,
    }
}

/// The start of the window an alert about `key` belongs to: the calendar window, or for a
/// rolling window the span-aligned period (so a rolling limit alerts at most once per span).
pub fn alert_window_start(key: &CounterKey, now: DateTime<Utc>) -> DateTime<Utc> {
    match key.window {
        Window::Calendar(period) => calendar_window(period, key.zone, now).0,
        Window::Rolling { seconds } => {
            let seconds = limits::signed_seconds(seconds);
            let start = now.timestamp().div_euclid(seconds).saturating_mul(seconds);
            DateTime::from_timestamp(start, 0).unwrap_or(now)
        }
    }
}

/// Calls observed recently and counters being back-filled; one lock, taken before the
/// counters' lock, so a record is either in a back-fill's "seen live" set or not counted
/// live at all.
#[derive(Debug, Default)]
struct Live {
    /// Keys being back-filled from the log, with the ids of records counted live meanwhile.
    pending: HashMap<CounterKey, HashSet<String>>,
    /// Ids of records observed in the last [`RECENT_IDS`].
    recent: VecDeque<(Instant, String)>,
}

/// One limit's use now, for `/api/usage/limits`, `routerly limit list` and `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct LimitUse {
    /// The limit.
    #[serde(flatten)]
    pub limit: Limit,
    /// Its level.
    pub level: &'static str,
    /// Used in the current window.
    pub used: f64,
    /// Held by calls in flight.
    pub reserved: f64,
    /// `used / value` in percent (0 for a zero-valued limit with no use).
    pub percent: f64,
    /// Start of the current window (for a rolling window: now minus its span).
    pub window_start: DateTime<Utc>,
    /// When the window resets: the next calendar window, or when a call of one unit fits
    /// again in a rolling window.
    pub resets_at: DateTime<Utc>,
}

/// Budget enforcement for one service. See the module documentation.
pub struct Budgets {
    store: Arc<ConfigStore>,
    counters: Arc<dyn CounterStore>,
    index: StdMutex<Arc<LimitIndex>>,
    live: Arc<StdMutex<Live>>,
    ledger: Arc<AlertLedger>,
    usage_log: PathBuf,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets").finish_non_exhaustive()
    }
}

impl Budgets {
    /// Every budget alert fired, oldest first, with its deliveries.
    pub fn alerts(&self) -> Vec<crate::notify::LedgerEntry> {
        self.ledger.fired()
    }

    /// Budgets over `counters` (already rebuilt), alerting through `ledger`.
    pub fn new(
        store: Arc<ConfigStore>,
        counters: Arc<dyn CounterStore>,
        ledger: Arc<AlertLedger>,
        usage_log: PathBuf,
    ) -> Self {
        let current = store.snapshot();
        let index = Arc::new(LimitIndex::build(&current, Some(Arc::clone(&current))));
        Budgets {
            store,
            counters,
            index: StdMutex::new(index),
            live: Arc::new(StdMutex::new(Live::default())),
            ledger,
            usage_log,
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<dyn CounterStore> {
        &self.counters
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .expect("budget live lock is never poisoned")
    }

    /// The index of `snapshot`'s limits; when the limits changed, counters of removed
    /// limits are dropped and new ones are back-filled from the usage log.
    fn index_for(&self, snapshot: &Snapshot) -> Arc<LimitIndex> {
        let same = |held: &Arc<Snapshot>| std::ptr::eq(Arc::as_ptr(held), snapshot);
        let mut index = self
            .index
            .lock()
            .expect("budget index lock is never poisoned");
        if index.snapshot.as_ref().is_some_and(same) {
            return Arc::clone(&index);
        }
        let current = self.store.snapshot();
        let held = same(&current).then_some(current);
        if held.is_none() && index.limits == snapshot.limits.limits {
            // Not the store's current snapshot (it changed meanwhile), same limits.
            return Arc::clone(&index);
        }
        let fresh = LimitIndex::build(snapshot, held);
        let changed = fresh.limits != index.limits;
        *index = Arc::new(fresh);
        let built = Arc::clone(&index);
        drop(index);
        if changed {
            self.adopt_keys(&built);
        }
        built
    }

    /// Registers counters of new limits (and back-fills them); forgets unused ones.
    fn adopt_keys(&self, index: &LimitIndex) {
        let wanted: HashSet<&CounterKey> = index.keys.iter().collect();
        let mut fresh_keys = Vec::new();
        {
            let mut live = self.live();
            for key in &index.keys {
                if !self.counters.contains(key) && !live.pending.contains_key(key) {
                    live.pending.insert(key.clone(), HashSet::new());
                    self.counters.register(key);
                    fresh_keys.push(key.clone());
                }
            }
            self.counters.retain(&|key| wanted.contains(key));
            live.pending.retain(|key, _| wanted.contains(key));
        }
        if fresh_keys.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let live = Arc::clone(&self.live);
                let counters = Arc::clone(&self.counters);
                let usage_log = self.usage_log.clone();
                let registered_at = Utc::now();
                runtime.spawn(async move {
                    tokio::time::sleep(BACKFILL_SETTLE).await;
                    let keys = fresh_keys.clone();
                    let scanned = tokio::task::spawn_blocking(move || {
                        rebuild::scan_for_backfill(&usage_log, &keys, registered_at)
                    })
                    .await;
                    match scanned {
                        Ok(Ok(scanned)) => finish_backfill(&live, counters.as_ref(), scanned),
                        Ok(Err(error)) => {
                            tracing::error!(%error, "cannot back-fill new budget counters from the usage log; they count from now on");
                            abandon_backfill(&live, &fresh_keys);
                        }
                        Err(error) => {
                            tracing::error!(%error, "budget back-fill task failed");
                            abandon_backfill(&live, &fresh_keys);
                        }
                    }
                });
            }
            Err(_) => abandon_backfill(&self.live, &fresh_keys),
        }
    }

    /// Admits a call of `project`/`token` whose candidates are `candidates`, reserving
    /// `estimate` (see the module documentation), or says which limit refuses it.
    pub async fn admit<'m>(
        &self,
        snapshot: &Snapshot,
        project_id: &str,
        token_id: &str,
        candidates: Vec<&'m ModelConfig>,
        estimate: CallEstimate,
    ) -> Result<Admission<'m>, AdmitError> {
        let index = self.index_for(snapshot);
        if index.limits.is_empty() {
            return Ok(Admission {
                candidates,
                guard: None,
            });
        }
        let now = Utc::now();
        struct Candidate<'m> {
            model: &'m ModelConfig,
            limits: Vec<usize>,
            amounts: Amounts,
        }
        let mut survivors: Vec<Candidate<'m>> = Vec::with_capacity(candidates.len());
        let mut first_refusal: Option<BudgetRefusal> = None;
        for model in candidates {
            let call = CallScope {
                project_id,
                token_id,
                model_id: Some(&model.id),
            };
            let limits: Vec<usize> = effective_limits(&index.limits, &call)
                .into_iter()
                .map(|limit| index.index_of(limit))
                .collect();
            let amounts = estimate.amounts(model);
            // A quick look at the model's own limits; the reservation below decides.
            let full = limits.iter().copied().find(|&limit_index| {
                let limit = &index.limits[limit_index];
                if !limit.scope.level().is_model_level() {
                    return false;
                }
                let reading = self.counters.read(now, &index.keys[limit_index]);
                !limits::fits(
                    reading.used.get(limit.metric),
                    reading.reserved.get(limit.metric),
                    amounts.get(limit.metric),
                    limit.value,
                )
            });
            match full {
                Some(limit_index) => {
                    if first_refusal.is_none() {
                        first_refusal = Some(self.refusal(
                            &index,
                            limit_index,
                            amounts.get(index.limits[limit_index].metric),
                            now,
                        ));
                    }
                }
                None => survivors.push(Candidate {
                    model,
                    limits,
                    amounts,
                }),
            }
        }
        loop {
            if survivors.is_empty() {
                let refusal = first_refusal.expect("a candidate was dropped for a reason");
                self.alert_refusal(&refusal, &index, now);
                return Err(AdmitError::Refused(Box::new(refusal)));
            }
            let mut needed: HashMap<usize, f64, foldhash::fast::RandomState> = HashMap::default();
            let mut holds: HashMap<&CounterKey, Amounts, foldhash::fast::RandomState> =
                HashMap::default();
            for candidate in &survivors {
                for &limit_index in &candidate.limits {
                    let limit = &index.limits[limit_index];
                    let amount = candidate.amounts.get(limit.metric);
                    let entry = needed.entry(limit_index).or_insert(0.0);
                    *entry = entry.max(amount);
                    let hold = holds.entry(&index.keys[limit_index]).or_default();
                    *hold = max_amounts(hold, &candidate.amounts);
                }
            }
            let mut limit_order: Vec<usize> = needed.keys().copied().collect();
            limit_order.sort_unstable();
            let checks: Vec<Check> = limit_order
                .iter()
                .map(|&limit_index| {
                    let limit = &index.limits[limit_index];
                    Check {
                        key: index.keys[limit_index].clone(),
                        metric: limit.metric,
                        value: limit.value,
                        needed: needed[&limit_index],
                    }
                })
                .collect();
            let holds: Vec<(CounterKey, Amounts)> = holds
                .into_iter()
                .map(|(key, amounts)| (key.clone(), amounts))
                .collect();
            let reserved = match self.counters.reserve_now(now, &checks, &holds) {
                Some(reserved) => reserved,
                None => self
                    .counters
                    .reserve(now, &checks, &holds)
                    .await
                    .map_err(AdmitError::Unavailable)?,
            };
            match reserved {
                Ok(reservation) => {
                    return Ok(Admission {
                        candidates: survivors.iter().map(|c| c.model).collect(),
                        guard: Some(BudgetGuard {
                            counters: Arc::clone(&self.counters),
                            reservation,
                        }),
                    });
                }
                Err(failed) => {
                    let limit_index = limit_order[failed.check];
                    let limit = &index.limits[limit_index];
                    let refusal = BudgetRefusal {
                        limit: limit.clone(),
                        used: failed.used,
                        reserved: failed.reserved,
                        needed: checks[failed.check].needed,
                        resets_at: failed.resets_at,
                    };
                    if !limit.scope.level().is_model_level() {
                        self.alert_refusal(&refusal, &index, now);
                        return Err(AdmitError::Refused(Box::new(refusal)));
                    }
                    survivors.retain(|candidate| !candidate.limits.contains(&limit_index));
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
    }

    fn refusal(
        &self,
        index: &LimitIndex,
        limit_index: usize,
        needed: f64,
        now: DateTime<Utc>,
    ) -> BudgetRefusal {
        let limit = &index.limits[limit_index];
        let key = &index.keys[limit_index];
        let reading = self.counters.read(now, key);
        BudgetRefusal {
            limit: limit.clone(),
            used: reading.used.get(limit.metric),
            reserved: reading.reserved.get(limit.metric),
            needed,
            resets_at: self
                .counters
                .resets_at(now, key, limit.metric, needed, limit.value),
        }
    }

    /// For the `budget-remaining` routing policy: per model in `model_ids`, the smallest
    /// fraction left (1 − used / value, never below 0) among the model-level limits that
    /// apply to a call of `project_id`/`token_id` on it (model, project-model, token-model);
    /// 1 for a model without such limits. Limits above the model level are the same for
    /// every candidate, so they cannot tell models apart. Reads memory only.
    pub fn remaining_fractions(
        &self,
        snapshot: &Snapshot,
        project_id: &str,
        token_id: &str,
        model_ids: &[&str],
    ) -> Vec<f64> {
        let index = self.index_for(snapshot);
        if index.limits.is_empty() {
            return vec![1.0; model_ids.len()];
        }
        let now = Utc::now();
        model_ids
            .iter()
            .map(|model_id| {
                let call = CallScope {
                    project_id,
                    token_id,
                    model_id: Some(model_id),
                };
                effective_limits(&index.limits, &call)
                    .into_iter()
                    .filter(|limit| limit.scope.level().is_model_level())
                    .map(|limit| {
                        if limit.value <= 0.0 {
                            return 0.0;
                        }
                        let key = &index.keys[index.index_of(limit)];
                        let used = self.counters.read(now, key).used.get(limit.metric);
                        (1.0 - used / limit.value).clamp(0.0, 1.0)
                    })
                    .fold(1.0, f64::min)
            })
            .collect()
    }

    /// Counts a finished call toward every limit that covers it, and alerts on thresholds.
    pub fn observe(&self, record: &UsageRecord) {
        if record.outcome == Outcome::BudgetExceeded {
            return;
        }
        let Some(model_id) = record.model_id.as_deref() else {
            return;
        };
        let snapshot = self.store.snapshot();
        let index = self.index_for(&snapshot);
        if index.limits.is_empty() {
            return;
        }
        let call = CallScope {
            project_id: &record.project_id,
            token_id: &record.token_id,
            model_id: Some(model_id),
        };
        let counted: Vec<usize> = limits::counting_limits(&index.limits, &call)
            .map(|limit| index.index_of(limit))
            .collect();
        if counted.is_empty() {
            return;
        }
        let mut keys: Vec<CounterKey> = Vec::with_capacity(counted.len());
        for &limit_index in &counted {
            if !keys.contains(&index.keys[limit_index]) {
                keys.push(index.keys[limit_index].clone());
            }
        }
        let amounts = Amounts {
            cost_usd: record.cost_usd,
            calls: 1.0,
            input_tokens: record.input_tokens as f64,
            output_tokens: record.output_tokens as f64,
        };
        {
            let mut live = self.live();
            self.counters
                .add_detached(record.timestamp, &keys, &amounts);
            for key in &keys {
                if let Some(seen) = live.pending.get_mut(key) {
                    seen.insert(record.id.clone());
                }
            }
            let now = Instant::now();
            while live
                .recent
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > RECENT_IDS)
            {
                live.recent.pop_front();
            }
            live.recent.push_back((now, record.id.clone()));
        }
        let now = Utc::now();
        for limit_index in counted {
            self.check_thresholds(&index, limit_index, now);
        }
    }

    /// Fires threshold and exhaustion alerts for one limit, each once per window.
    fn check_thresholds(&self, index: &LimitIndex, limit_index: usize, now: DateTime<Utc>) {
        let limit = &index.limits[limit_index];
        if limit.value <= 0.0 {
            return;
        }
        let key = &index.keys[limit_index];
        let used = self.counters.read(now, key).used.get(limit.metric);
        let percent = used / limit.value * 100.0;
        let window_start = alert_window_start(key, now);
        for &threshold in &index.thresholds {
            if percent + 1e-9 >= f64::from(threshold) {
                self.fire(
                    index,
                    limit_index,
                    EventKind::Threshold,
                    Some(threshold),
                    used,
                    window_start,
                    now,
                );
            }
        }
        if limits::fits(used, 0.0, 0.0, limit.value) && used + 1e-12 < limit.value {
            return;
        }
        self.fire(
            index,
            limit_index,
            EventKind::Exhausted,
            None,
            used,
            window_start,
            now,
        );
    }

    fn alert_refusal(&self, refusal: &BudgetRefusal, index: &LimitIndex, now: DateTime<Utc>) {
        let limit_index = index.index_of(&refusal.limit);
        let key = &index.keys[limit_index];
        self.fire(
            index,
            limit_index,
            EventKind::Exhausted,
            None,
            refusal.used,
            alert_window_start(key, now),
            now,
        );
    }

    #[expect(clippy::too_many_arguments, reason = "one alert's every field")]
    fn fire(
        &self,
        index: &LimitIndex,
        limit_index: usize,
        kind: EventKind,
        threshold: Option<u32>,
        used: f64,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let limit = &index.limits[limit_index];
        let ledger_key = LedgerKey {
            limit_id: limit.id.clone(),
            window_start: window_start.timestamp(),
            event: kind,
            threshold,
        };
        if self.ledger.fired_already(&ledger_key) {
            return;
        }
        let key = &index.keys[limit_index];
        let resets_at = match key.window {
            Window::Calendar(period) => calendar_window(period, key.zone, now).1,
            Window::Rolling { seconds } => {
                limits::shift_seconds(window_start, limits::signed_seconds(seconds))
            }
        };
        let message = match kind {
            EventKind::Threshold => format!(
                "{}% of {} limit `{}` used ({})",
                threshold.unwrap_or(0),
                limit.scope.level().as_str(),
                limit.id,
                limit.describe()
            ),
            EventKind::Exhausted => format!(
                "{} limit `{}` is exhausted ({}); calls it covers are refused until {}",
                limit.scope.level().as_str(),
                limit.id,
                limit.describe(),
                resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            EventKind::Reset => format!(
                "{} limit `{}` has a new window ({})",
                limit.scope.level().as_str(),
                limit.id,
                limit.describe()
            ),
            EventKind::Test => "test".to_owned(),
        };
        let event = AlertEvent {
            id: uuid::Uuid::now_v7().to_string(),
            event: kind,
            timestamp: now,
            limit: Some(AlertLimit {
                id: limit.id.clone(),
                scope: limit.scope.to_string(),
                level: limit.scope.level().as_str().to_owned(),
                metric: limit.metric.as_str().to_owned(),
                window: limit.window.to_string(),
                value: limit.value,
                used,
                window_start,
                resets_at,
            }),
            threshold_percent: threshold,
            message,
        };
        self.ledger.send_once(ledger_key, event);
    }

    /// Fires `budget.reset` for limits exhausted in an earlier window that have a new one;
    /// called periodically off the request path.
    pub fn check_resets(&self) {
        let snapshot = self.store.snapshot();
        let index = self.index_for(&snapshot);
        let now = Utc::now();
        for (limit_index, limit) in index.limits.iter().enumerate() {
            let key = &index.keys[limit_index];
            let window_start = alert_window_start(key, now).timestamp();
            let Some(exhausted_in) = self.ledger.last_exhausted(&limit.id) else {
                continue;
            };
            if exhausted_in >= window_start {
                continue;
            }
            let used = self.counters.read(now, key).used.get(limit.metric);
            if used < limit.value {
                self.fire(
                    &index,
                    limit_index,
                    EventKind::Reset,
                    None,
                    used,
                    alert_window_start(key, now),
                    now,
                );
            }
        }
    }

    /// Every limit of the configuration with its use now.
    pub fn usage(&self, snapshot: &Snapshot) -> Vec<LimitUse> {
        let index = self.index_for(snapshot);
        let now = Utc::now();
        index
            .limits
            .iter()
            .zip(&index.keys)
            .map(|(limit, key)| {
                let reading = self.counters.read(now, key);
                let used = reading.used.get(limit.metric);
                let (window_start, resets_at) = match key.window {
                    Window::Calendar(period) => calendar_window(period, key.zone, now),
                    Window::Rolling { seconds } => (
                        limits::shift_seconds(now, -limits::signed_seconds(seconds)),
                        if used > 0.0 {
                            self.counters.resets_at(
                                now,
                                key,
                                limit.metric,
                                limit.value.min(1.0),
                                limit.value,
                            )
                        } else {
                            now
                        },
                    ),
                };
                LimitUse {
                    limit: limit.clone(),
                    level: limit.scope.level().as_str(),
                    used,
                    reserved: reading.reserved.get(limit.metric),
                    percent: if limit.value > 0.0 {
                        used / limit.value * 100.0
                    } else {
                        0.0
                    },
                    window_start,
                    resets_at,
                }
            })
            .collect()
    }

    /// Budget gauges for `/metrics`: use, reservations and value of each limit in its
    /// current window (USD for cost), labelled by limit id, level, scope, metric and window;
    /// and whether the counters are shared, reachable, and how many calls fell back to
    /// local counters.
    pub fn add_metrics(&self, snapshot: &Snapshot, exposition: &mut Exposition) {
        let uses = self.usage(snapshot);
        let (shared, degraded) = match self.counters.health() {
            CounterHealth::Local => (0, 0),
            CounterHealth::Shared => (1, 0),
            CounterHealth::Degraded { .. } => (1, 1),
        };
        exposition.single(
            "routerly_budget_counters_shared",
            "Whether budget counters are shared through Redis.",
            Kind::Gauge,
            Value::Integer(shared),
        );
        exposition.single(
            "routerly_budget_counters_degraded",
            "Whether the shared budget counters are unreachable now.",
            Kind::Gauge,
            Value::Integer(degraded),
        );
        exposition.single(
            "routerly_budget_fail_open_total",
            "Calls admitted against local counters because Redis was unreachable.",
            Kind::Counter,
            Value::Integer(self.counters.fail_open_total()),
        );
        type Gauge = (&'static str, &'static str, fn(&LimitUse) -> f64);
        let gauges: [Gauge; 3] = [
            (
                "routerly_budget_used",
                "Use of each limit in its current window (USD for cost).",
                |u| u.used,
            ),
            (
                "routerly_budget_reserved",
                "Amounts held by calls in flight against each limit.",
                |u| u.reserved,
            ),
            ("routerly_budget_limit", "The value of each limit.", |u| {
                u.limit.value
            }),
        ];
        for (name, help, value) in gauges {
            let family = exposition.family(name, help, Kind::Gauge);
            for limit_use in &uses {
                let limit = &limit_use.limit;
                family.sample(
                    vec![
                        ("limit", limit.id.clone()),
                        ("level", limit_use.level.to_owned()),
                        ("scope", limit.scope.to_string()),
                        ("metric", limit.metric.as_str().to_owned()),
                        ("window", limit.window.to_string()),
                    ],
                    Value::Number(value(limit_use)),
                );
            }
        }
    }

    /// The counters and the ids of records observed lately, taken together so that a
    /// checkpoint is consistent; `None` while a back-fill is running.
    pub fn checkpoint_state(&self) -> Option<CheckpointState> {
        let live = self.live();
        if !live.pending.is_empty() {
            return None;
        }
        let counters = self.counters.export();
        let recent = live.recent.iter().map(|(_, id)| id.clone()).collect();
        Some((counters, recent))
    }
}

/// Adds what a back-fill found in the log to counters registered since, skipping records
/// already counted live.
fn finish_backfill(
    live: &StdMutex<Live>,
    counters: &dyn CounterStore,
    scanned: rebuild::Backfilled,
) {
    let mut live = live.lock().expect("budget live lock is never poisoned");
    for (key_index, key) in scanned.keys.iter().enumerate() {
        let Some(seen) = live.pending.remove(key) else {
            continue;
        };
        counters.merge(key, &scanned.older[key_index]);
        for recent in &scanned.recent {
            if recent.keys.contains(&key_index) && !seen.contains(&recent.id) {
                let mut totals = limits::WindowTotals::new(key.window);
                totals.add(key.window, key.zone, recent.timestamp, &recent.amounts);
                counters.merge(key, &totals);
            }
        }
    }
    tracing::info!(
        counters = scanned.keys.len(),
        "budget counters back-filled from the usage log"
    );
}

fn abandon_backfill(live: &StdMutex<Live>, keys: &[CounterKey]) {
    let mut live = live.lock().expect("budget live lock is never poisoned");
    for key in keys {
        live.pending.remove(key);
    }
}

fn max_amounts(a: &Amounts, b: &Amounts) -> Amounts {
    Amounts {
        cost_usd: a.cost_usd.max(b.cost_usd),
        calls: a.calls.max(b.calls),
        input_tokens: a.input_tokens.max(b.input_tokens),
        output_tokens: a.output_tokens.max(b.output_tokens),
    }
}

/// Rebuilds the counters from the usage log and checkpoint, opens the alert ledger and
/// starts the notifier: what [`crate::Service::open`] needs before serving.
pub async fn start(
    home: &crate::store::Home,
    store: &Arc<ConfigStore>,
    files: Vec<std::path::PathBuf>,
    mut replay: Box<dyn crate::store::history::Replay + Send>,
) -> Result<(Arc<Budgets>, tokio::task::JoinHandle<()>), crate::store::StoreError> {
    let snapshot = store.snapshot();
    let index = LimitIndex::build(&snapshot, None);
    let mut keys: Vec<CounterKey> = Vec::new();
    for key in &index.keys {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    let usage_log = home.usage_log_path();
    let checkpoint_path = home.checkpoint_path();
    let (rebuilt, stats) = {
        tokio::task::spawn_blocking(move || {
            rebuild::rebuild(&files, &checkpoint_path, &keys, Utc::now(), &mut *replay)
        })
        .await
        .expect("the rebuild task does not panic")
        .map_err(|error| crate::store::StoreError::io(home.usage_log_path(), error))?
    };
    tracing::info!(
        counters = rebuilt.len(),
        records = stats.records,
        files = stats.files,
        from_checkpoint = stats.from_checkpoint,
        millis = stats.millis,
        "usage log read at start-up: budget counters, usage rollups and routing statistics rebuilt"
    );
    let counters = open_counters(&snapshot)?;
    for (key, totals) in &rebuilt {
        counters.merge(key, totals);
    }
    let ledger = Arc::new(AlertLedger::open(Some(home.alerts_path())));
    let notifier = crate::notify::spawn_notifier(Arc::clone(&ledger), Arc::clone(store));
    let budgets = Arc::new(Budgets::new(Arc::clone(store), counters, ledger, usage_log));
    Ok((budgets, notifier))
}

/// The counter store: Redis when `ROUTERLY_REDIS_URL` is set (see
/// [`crate::store::redis_counters`]), else in memory.
fn open_counters(snapshot: &Snapshot) -> Result<Arc<dyn CounterStore>, crate::store::StoreError> {
    use crate::store::redis_counters::{RedisCounterStore, RedisSettings};
    let timeouts = &snapshot.settings.timeouts;
    // A reservation outlives any call that has not yet been answered twice over.
    let default_ttl = Duration::from_millis(2 * (timeouts.connect_ms + timeouts.first_token_ms))
        .max(Duration::from_secs(10));
    let settings =
        RedisSettings::from_env(default_ttl).map_err(crate::store::StoreError::Settings)?;
    let Some(settings) = settings else {
        return Ok(Arc::new(crate::store::counters::MemoryCounterStore::new()));
    };
    tracing::info!(
        prefix = %settings.prefix,
        failure_mode = ?settings.failure_mode,
        reservation_ttl_seconds = settings.reservation_ttl.as_secs(),
        "budget counters are shared through Redis"
    );
    let store = RedisCounterStore::open(settings).map_err(crate::store::StoreError::Settings)?;
    Ok(store)
}

/// Every [`rebuild::CHECKPOINT_INTERVAL`], writes a checkpoint; every few seconds, sends
/// `budget.reset` alerts that are due. Stops when `stop` turns `true`.
pub fn spawn_periodic(
    budgets: &Arc<Budgets>,
    home: &crate::store::Home,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let budgets = Arc::clone(budgets);
    let home = home.clone();
    crate::panics::supervise("budget checkpoints and resets", move || {
        let (budgets, home, mut stop) = (Arc::clone(&budgets), home.clone(), stop.clone());
        async move {
            let mut resets = tokio::time::interval(Duration::from_secs(5));
            let mut checkpoints = tokio::time::interval(rebuild::CHECKPOINT_INTERVAL);
            resets.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            checkpoints.tick().await;
            while !*stop.borrow() {
                tokio::select! {
                    _ = resets.tick() => budgets.check_resets(),
                    _ = checkpoints.tick() => final_checkpoint(&budgets, &home).await,
                    changed = stop.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    })
}

/// Writes a checkpoint now (skipped while a back-fill runs) and saves the alert ledger.
pub async fn final_checkpoint(budgets: &Arc<Budgets>, home: &crate::store::Home) {
    let budgets = Arc::clone(budgets);
    let home = home.clone();
    let written = tokio::task::spawn_blocking(move || {
        budgets.ledger.save();
        // The position first, then the counters: see `rebuild`.
        let position = rebuild::current_position(&home.usage_log_path())?;
        let Some((counters, recent)) = budgets.checkpoint_state() else {
            return Ok(false);
        };
        rebuild::write_checkpoint(&home.checkpoint_path(), position, counters, recent)?;
        Ok::<_, std::io::Error>(true)
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "cannot write the budget checkpoint"),
        Err(error) => tracing::error!(%error, "the budget checkpoint task failed"),
    }
}
