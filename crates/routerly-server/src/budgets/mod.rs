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

//!
//! One file per concern: [`admission`], [`observation`], [`alerts`], [`report`] (use,
//! `/metrics`) and [`tasks`] (start-up, checkpoints, resets); this file holds the
//! [`Budgets`] service and the index of limits they share.

pub mod admission;
pub mod alerts;
pub mod observation;
pub mod rebuild;
pub mod report;
pub mod tasks;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use chrono_tz::Tz;
use routerly_core::limits::{self, Limit, Window};

pub use admission::{Admission, AdmitError, BudgetGuard, BudgetRefusal, CallEstimate};
pub use alerts::alert_window_start;
pub use report::LimitUse;
pub use tasks::{CheckpointState, final_checkpoint, spawn_periodic, start};

use crate::notify::AlertLedger;
use crate::store::config::{ConfigStore, Snapshot};
use crate::store::counters::{CounterKey, CounterStore};

/// How long ids of observed records are kept for checkpoints (longer than any write delay).
const RECENT_IDS: Duration = Duration::from_secs(10);
/// How long a back-fill waits for the usage writer to put earlier records on disk.
const BACKFILL_SETTLE: Duration = Duration::from_millis(300);

/// The limits of one configuration with their counters, rebuilt when limits change.
#[derive(Debug)]
struct LimitIndex {
    /// The snapshot this index was built from, held so that its address (compared on
    /// every call) cannot be reused by a later snapshot while this index is cached.
    snapshot: Option<Arc<Snapshot>>,
    limits: Vec<Limit>,
    keys: Vec<CounterKey>,
    /// foldhash (randomly seeded): looked up for every limit on every call.
    by_id: HashMap<String, usize, foldhash::fast::RandomState>,
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

/// Calls observed recently and counters being back-filled; one lock, taken before the
/// counters' lock, so a record is either in a back-fill's "seen live" set or not counted
/// live at all.
#[derive(Debug, Default)]
struct Live {
    /// Keys being back-filled from the log, with the ids of records counted live meanwhile.
    pending: HashMap<CounterKey, HashSet<String>>,
    /// Ids of records observed in the last [`RECENT_IDS`].
    recent: RecentIds,
}

/// The ids of records observed lately, oldest first, for checkpoints. At thousands of
/// calls a second the list holds tens of thousands of ids: a UUID in its usual text (every
/// id Routerly makes) is kept as its 128 bits, so the list is one ring of fixed entries
/// rather than a small allocation per call that is freed ten seconds later, by then gone
/// cold from the caches for the calls that reuse it. Other ids are kept as text.
#[derive(Clone, Debug, Default)]
struct RecentIds {
    uuids: VecDeque<(Instant, u128)>,
    texts: VecDeque<(Instant, String)>,
}

impl RecentIds {
    /// Adds `id`, observed `now`, and forgets those observed more than `keep` before.
    fn observe(&mut self, id: &str, now: Instant, keep: Duration) {
        let old = |at: &Instant| now.duration_since(*at) > keep;
        while self.uuids.front().is_some_and(|(at, _)| old(at)) {
            self.uuids.pop_front();
        }
        while self.texts.front().is_some_and(|(at, _)| old(at)) {
            self.texts.pop_front();
        }
        match uuid_bits(id) {
            Some(bits) => self.uuids.push_back((now, bits)),
            None => self.texts.push_back((now, id.to_owned())),
        }
    }

    /// The ids, each as it was written (the UUIDs first, then the others).
    fn ids(&self) -> Vec<String> {
        let uuids = self
            .uuids
            .iter()
            .map(|(_, bits)| uuid::Uuid::from_u128(*bits).hyphenated().to_string());
        uuids
            .chain(self.texts.iter().map(|(_, id)| id.clone()))
            .collect()
    }
}

/// The bits of `id` when it is a UUID written as `Uuid` writes one (hyphenated, lower case),
/// so that writing the bits back gives `id` again.
fn uuid_bits(id: &str) -> Option<u128> {
    if id.len() != 36 || id.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(id).ok().map(|uuid| uuid.as_u128())
}

/// Budget enforcement for one service. See the module documentation.
pub struct Budgets {
    store: Arc<ConfigStore>,
    counters: Arc<dyn CounterStore>,
    index: StdMutex<Arc<LimitIndex>>,
    live: Arc<StdMutex<Live>>,
    ledger: Arc<AlertLedger>,
    usage_log: PathBuf,
    /// The last call each limit refused here (by limit id): when, and what it needed.
    /// Written only when a call is refused, so never on an admitted call's path.
    refusals: StdMutex<HashMap<String, LastRefusal>>,
}

/// The last call a limit refused on this replica.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LastRefusal {
    /// When it was refused.
    pub at: chrono::DateTime<Utc>,
    /// What it needed (its estimate, in the limit's metric).
    pub needed: f64,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets").finish_non_exhaustive()
    }
}

impl Budgets {
    /// Every budget alert fired, oldest first, with its deliveries.
    pub async fn alerts(&self) -> Vec<crate::notify::LedgerEntry> {
        self.ledger.history().await
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
            refusals: StdMutex::new(HashMap::new()),
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<dyn CounterStore> {
        &self.counters
    }

    fn refusals(&self) -> MutexGuard<'_, HashMap<String, LastRefusal>> {
        self.refusals
            .lock()
            .expect("refusals lock is never poisoned")
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

    /// Registers counters of new limits (and back-fills them); forgets unused ones, and the
    /// last refusals of removed limits.
    fn adopt_keys(&self, index: &LimitIndex) {
        self.refusals().retain(|id, _| index.by_id.contains_key(id));
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

/// A home with models `big` (USD 10/M input, 30/M output) and `small` (USD 1/M, 2/M), one
/// project `p1` (token `t1`) using both, and `limits` (the `limits` array of
/// `config/limits.json`): what the admission and observation tests run against.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use routerly_core::usage::{CallType, Outcome, Surface, UsageRecord};

    use super::Budgets;
    use crate::notify::AlertLedger;
    use crate::store::counters::MemoryCounterStore;
    use crate::store::{ConfigKind, ConfigStore, Home};

    pub(crate) struct Fixture {
        pub(crate) budgets: Budgets,
        pub(crate) ledger: Arc<AlertLedger>,
        _dir: tempfile::TempDir,
    }

    pub(crate) fn fixture(limits: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        let key = home.init_with_env_key(None).expect("init").master_key;
        let model = |id: &str, input: f64, output: f64| {
            format!(
                r#"{{"id": "{id}", "provider": "openai", "endpoint": "https://api.openai.com/v1", "upstream_model": "{id}", "pricing": {{"input": {input}, "output": {output}}}}}"#
            )
        };
        let models = format!(
            r#"{{"models": [{}, {}]}}"#,
            model("big", 10.0, 30.0),
            model("small", 1.0, 2.0)
        );
        std::fs::write(home.config_file(ConfigKind::Models), models).expect("models");
        let hash = "0".repeat(64);
        let projects = format!(
            r#"{{"projects": [{{"id": "p1", "name": "Demo", "slug": "demo", "models": [{{"model_id": "big"}}, {{"model_id": "small"}}], "tokens": [{{"id": "t1", "hash": "{hash}", "snippet": "sk-lr-…test"}}]}}]}}"#
        );
        std::fs::write(home.config_file(ConfigKind::Projects), projects).expect("projects");
        std::fs::write(
            home.config_file(ConfigKind::Limits),
            format!(r#"{{"limits": {limits}}}"#),
        )
        .expect("limits");
        let store = Arc::new(ConfigStore::open(&home, key).expect("open"));
        let ledger = Arc::new(AlertLedger::open(None));
        let budgets = Budgets::new(
            store,
            Arc::new(MemoryCounterStore::new()),
            Arc::clone(&ledger),
            home.usage_log_path(),
        );
        Fixture {
            budgets,
            ledger,
            _dir: dir,
        }
    }

    /// A finished call of `p1`/`t1` on `model` costing `cost_usd`.
    pub(crate) fn record(model: Option<&str>, cost_usd: f64, outcome: Outcome) -> UsageRecord {
        UsageRecord {
            requested_model: None,
            id: uuid::Uuid::now_v7().to_string(),
            timestamp: chrono::Utc::now(),
            project_id: "p1".to_owned(),
            token_id: "t1".to_owned(),
            model_id: model.map(str::to_owned),
            provider: Some("openai".to_owned()),
            surface: Surface::ChatCompletions,
            call_type: CallType::Completion,
            stream: false,
            input_tokens: 100,
            output_tokens: 50,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            cost_usd,
            input_cost_usd: 0.0,
            output_cost_usd: 0.0,
            latency_ms: 10.0,
            ttft_ms: None,
            overhead_ms: 0.1,
            outcome,
            status: 200,
            error: None,
            trace_id: "trace".to_owned(),
            user: None,
            tags: vec![],
            attempts: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_are_given_back_as_observed_and_forgotten_when_old() {
        let start = Instant::now();
        let keep = Duration::from_secs(10);
        let v7 = uuid::Uuid::now_v7().to_string();
        let upper = uuid::Uuid::now_v7().to_string().to_uppercase();
        let braced = format!("{{{}}}", uuid::Uuid::now_v7());
        let mut recent = RecentIds::default();
        recent.observe("rec-1", start, keep);
        recent.observe(&v7, start + Duration::from_secs(1), keep);
        recent.observe(&upper, start + Duration::from_secs(2), keep);
        recent.observe(&braced, start + Duration::from_secs(3), keep);
        let mut ids = recent.ids();
        ids.sort();
        let mut expected = vec![
            "rec-1".to_owned(),
            v7.clone(),
            upper.clone(),
            braced.clone(),
        ];
        expected.sort();
        assert_eq!(ids, expected, "every id exactly as it was written");
        assert_eq!(
            (recent.uuids.len(), recent.texts.len()),
            (1, 3),
            "only the usual form is kept as bits"
        );
        // Eleven and a half seconds on, the first two are older than ten.
        let later = uuid::Uuid::now_v7().to_string();
        recent.observe(&later, start + Duration::from_millis(11_500), keep);
        let mut ids = recent.ids();
        ids.sort();
        let mut expected = vec![upper, braced, later];
        expected.sort();
        assert_eq!(ids, expected);
    }
}
