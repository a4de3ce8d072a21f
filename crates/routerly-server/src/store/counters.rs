//! [`CounterStore`]: budget counters per scope and window with atomic reservations, and
//! [`MemoryCounterStore`], the single-machine version (rebuilt from the usage log and its
//! checkpoints at start).

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use routerly_core::limits::{self, Amounts, Metric, Scope, Window, WindowTotals};
use smallvec::SmallVec;

use super::StoreFuture;

/// One counter: a scope's usage in one window shape. Every limit with the same scope,
/// window and time zone shares it, whatever its metric (a counter keeps all metrics).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// Whose usage.
    pub scope: Scope,
    /// Over which span.
    pub window: Window,
    /// The time zone of a calendar window (UTC for rolling ones).
    pub zone: Tz,
}

impl std::fmt::Display for CounterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}|{}", self.scope, self.window, self.zone.name())
    }
}

impl std::str::FromStr for CounterKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.rsplitn(3, '|');
        let (Some(zone), Some(window), Some(scope)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("`{text}` is not a counter key"));
        };
        Ok(CounterKey {
            scope: Scope::parse(scope)?,
            window: Window::parse(window)?,
            zone: limits::parse_time_zone(zone)?,
        })
    }
}

/// One condition of a reservation: `needed` more of `metric` must fit under `value` in
/// the counter `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The counter.
    pub key: CounterKey,
    /// The metric compared.
    pub metric: Metric,
    /// The limit's value.
    pub value: f64,
    /// What the call may use of `metric`.
    pub needed: f64,
}

/// Why [`CounterStore::try_reserve`] refused: the first check that did not fit.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFailed {
    /// Index of the check in the slice given.
    pub check: usize,
    /// Used in the window.
    pub used: f64,
    /// Held by calls in flight.
    pub reserved: f64,
    /// When the check would pass again (with nothing else in flight).
    pub resets_at: DateTime<Utc>,
}

/// A reservation held by a call in flight.
pub type ReservationId = u64;

/// A counter's state now.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CounterReading {
    /// Used in the window that contains now.
    pub used: Amounts,
    /// Held by calls in flight.
    pub reserved: Amounts,
}

/// What [`CounterStore::reserve`] answers when the store could answer: the reservation,
/// or the first check that did not fit.
pub type Reserved = Result<ReservationId, CheckFailed>;

/// A shared counter store could not be reached (or answered nonsense); the call is refused
/// with `budget_unavailable` (fail-closed) unless the store falls back to local counters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("budget counters unavailable: {0}")]
pub struct CounterError(pub String);

/// How the shared counters are doing, for `/ready` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterHealth {
    /// In memory on this replica (no Redis configured).
    Local,
    /// Redis answers.
    Shared,
    /// Redis does not answer; calls are refused (`fail_open` false) or admitted against
    /// local counters (`fail_open` true).
    Degraded {
        /// Whether calls are admitted against local counters.
        fail_open: bool,
    },
}

/// Budget counters: usage per [`CounterKey`] in its current window, plus the amounts that
/// calls in flight have reserved. Reserving is atomic across every check of a call, so
/// concurrent calls cannot both take the last room.
///
/// The operations on the request path are async so that a network backend (Redis, one
/// script call per reservation) can implement them without blocking a worker:
/// [`CounterStore::reserve`], [`CounterStore::release`] and [`CounterStore::add`]. Their
/// `_detached` forms are for callers that cannot wait (a dropped guard, the usage sink's
/// observer): they hand the work to the store, which applies detached operations in the
/// order they were handed over (so a call's usage is added before its reservation is
/// given back, and for a moment it counts twice, never zero times).
///
/// Reads ([`CounterStore::read`], [`CounterStore::resets_at`]) are synchronous and local:
/// exact for the in-memory store, a view refreshed about every second for a shared one.
/// The remaining operations maintain the local view (rebuild at start, checkpoints,
/// counters of added or removed limits).
pub trait CounterStore: Send + Sync {
    /// If every check fits (used + reserved + needed ≤ value), holds `holds` and returns
    /// the reservation; otherwise holds nothing and says which check failed.
    fn reserve<'a>(
        &'a self,
        now: DateTime<Utc>,
        checks: &'a [Check],
        holds: &'a [(CounterKey, Amounts)],
    ) -> StoreFuture<'a, Result<Reserved, CounterError>>;

    /// [`CounterStore::reserve`] answered at once by a store that never waits (the
    /// in-memory one), so a call does not box a future for it; `None` from a store that
    /// must go through [`CounterStore::reserve`].
    fn reserve_now(
        &self,
        _now: DateTime<Utc>,
        _checks: &[Check],
        _holds: &[(CounterKey, Amounts)],
    ) -> Option<Reserved> {
        None
    }

    /// Gives back what a reservation held (the call finished, failed or was cancelled);
    /// releasing twice is harmless.
    fn release(&self, reservation: ReservationId) -> StoreFuture<'_, Result<(), CounterError>>;

    /// Adds a finished call's usage, which happened `at`, to each counter of `keys`.
    fn add<'a>(
        &'a self,
        at: DateTime<Utc>,
        keys: &'a [CounterKey],
        amounts: &'a Amounts,
    ) -> StoreFuture<'a, Result<(), CounterError>>;

    /// [`CounterStore::release`] without waiting, in order with other detached operations.
    fn release_detached(&self, reservation: ReservationId);

    /// [`CounterStore::add`] without waiting, in order with other detached operations;
    /// the local view counts it at once.
    fn add_detached(&self, at: DateTime<Utc>, keys: &[CounterKey], amounts: &Amounts);

    /// The counter's use and reservations now.
    fn read(&self, now: DateTime<Utc>, key: &CounterKey) -> CounterReading;

    /// When `needed` more of `metric` fits under `value` again in `key`'s window.
    fn resets_at(
        &self,
        now: DateTime<Utc>,
        key: &CounterKey,
        metric: Metric,
        needed: f64,
        value: f64,
    ) -> DateTime<Utc>;

    /// Adds `totals` (from a scan of the usage log) to the local counter `key`. A shared
    /// store keeps its own totals and only refreshes its view.
    fn merge(&self, key: &CounterKey, totals: &WindowTotals);

    /// Every counter's totals, for checkpoints.
    fn export(&self) -> Vec<(CounterKey, WindowTotals)>;

    /// Whether the store has a counter for `key`.
    fn contains(&self, key: &CounterKey) -> bool;

    /// Creates an empty counter for `key` if it has none.
    fn register(&self, key: &CounterKey);

    /// Forgets counters for which `keep` is false.
    fn retain(&self, keep: &(dyn Fn(&CounterKey) -> bool + Sync));

    /// How the store is doing, for `/ready` and `/metrics`.
    fn health(&self) -> CounterHealth {
        CounterHealth::Local
    }

    /// Calls admitted against local counters because the shared store was away.
    fn fail_open_total(&self) -> u64 {
        0
    }
}

#[derive(Debug)]
struct CounterEntry {
    totals: WindowTotals,
    reserved: Amounts,
}

/// The counters' maps hash with foldhash (randomly seeded; keys come from the configuration
/// and Routerly's own ids): SipHash of every key was a budgeted call's largest hashing cost.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Counters {
    entries: FastMap<CounterKey, CounterEntry>,
    /// A call's holds (a handful: inline, no allocation per call).
    reservations: FastMap<ReservationId, SmallVec<[(CounterKey, Amounts); 2]>>,
    next_reservation: ReservationId,
}

impl Counters {
    fn entry(&mut self, key: &CounterKey) -> &mut CounterEntry {
        // Looked up twice rather than cloning the key for `entry` on every call.
        if self.entries.contains_key(key) {
            return self.entries.get_mut(key).expect("present just above");
        }
        self.entries
            .entry(key.clone())
            .or_insert_with(|| CounterEntry {
                totals: WindowTotals::new(key.window),
                reserved: Amounts::default(),
            })
    }
}

/// [`CounterStore`] in memory, behind one mutex that is never held across an `.await`.
#[derive(Debug, Default)]
pub struct MemoryCounterStore {
    counters: StdMutex<Counters>,
}

impl MemoryCounterStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryCounterStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .expect("counter lock is never poisoned")
    }
}

impl MemoryCounterStore {
    /// [`CounterStore::reserve`], done at once.
    pub fn try_reserve(
        &self,
        now: DateTime<Utc>,
        checks: &[Check],
        holds: &[(CounterKey, Amounts)],
    ) -> Result<ReservationId, CheckFailed> {
        let mut counters = self.lock();
        for (index, check) in checks.iter().enumerate() {
            let entry = counters.entry(&check.key);
            let used = entry
                .totals
                .used(check.key.window, check.key.zone, now)
                .get(check.metric);
            let reserved = entry.reserved.get(check.metric);
            if !limits::fits(used, reserved, check.needed, check.value) {
                let resets_at = entry.totals.resets_at(
                    check.key.window,
                    check.key.zone,
                    now,
                    check.metric,
                    0.0,
                    check.needed,
                    check.value,
                );
                return Err(CheckFailed {
                    check: index,
                    used,
                    reserved,
                    resets_at,
                });
            }
        }
        for (key, amounts) in holds {
            counters.entry(key).reserved.add(amounts);
        }
        let id = counters.next_reservation;
        counters.next_reservation += 1;
        counters
            .reservations
            .insert(id, holds.iter().cloned().collect());
        Ok(id)
    }

    /// [`CounterStore::release`], done at once.
    pub fn release_now(&self, reservation: ReservationId) {
        let mut counters = self.lock();
        let Some(holds) = counters.reservations.remove(&reservation) else {
            return;
        };
        for (key, amounts) in holds {
            if let Some(entry) = counters.entries.get_mut(&key) {
                entry.reserved.subtract(&amounts);
            }
        }
    }

    /// [`CounterStore::add`], done at once.
    pub fn add_now(&self, at: DateTime<Utc>, keys: &[CounterKey], amounts: &Amounts) {
        let mut counters = self.lock();
        for key in keys {
            counters
                .entry(key)
                .totals
                .add(key.window, key.zone, at, amounts);
        }
    }

    /// Replaces the counter `key` by a shared store's view of it.
    pub fn replace(&self, key: &CounterKey, totals: WindowTotals, reserved: Amounts) {
        let mut counters = self.lock();
        let entry = counters.entry(key);
        entry.totals = totals;
        entry.reserved = reserved;
    }
}

impl CounterStore for MemoryCounterStore {
    fn reserve_now(
        &self,
        now: DateTime<Utc>,
        checks: &[Check],
        holds: &[(CounterKey, Amounts)],
    ) -> Option<Reserved> {
        Some(self.try_reserve(now, checks, holds))
    }

    fn reserve<'a>(
        &'a self,
        now: DateTime<Utc>,
        checks: &'a [Check],
        holds: &'a [(CounterKey, Amounts)],
    ) -> StoreFuture<'a, Result<Reserved, CounterError>> {
        Box::pin(std::future::ready(Ok(self.try_reserve(now, checks, holds))))
    }

    fn release(&self, reservation: ReservationId) -> StoreFuture<'_, Result<(), CounterError>> {
        self.release_now(reservation);
        Box::pin(std::future::ready(Ok(())))
    }

    fn add<'a>(
        &'a self,
        at: DateTime<Utc>,
        keys: &'a [CounterKey],
        amounts: &'a Amounts,
    ) -> StoreFuture<'a, Result<(), CounterError>> {
        self.add_now(at, keys, amounts);
        Box::pin(std::future::ready(Ok(())))
    }

    fn release_detached(&self, reservation: ReservationId) {
        self.release_now(reservation);
    }

    fn add_detached(&self, at: DateTime<Utc>, keys: &[CounterKey], amounts: &Amounts) {
        self.add_now(at, keys, amounts);
    }

    fn read(&self, now: DateTime<Utc>, key: &CounterKey) -> CounterReading {
        let mut counters = self.lock();
        match counters.entries.get_mut(key) {
            Some(entry) => CounterReading {
                used: entry.totals.used(key.window, key.zone, now),
                reserved: entry.reserved,
            },
            None => CounterReading::default(),
        }
    }

    fn resets_at(
        &self,
        now: DateTime<Utc>,
        key: &CounterKey,
        metric: Metric,
        needed: f64,
        value: f64,
    ) -> DateTime<Utc> {
        let mut counters = self.lock();
        let entry = counters.entry(key);
        entry.totals.used(key.window, key.zone, now);
        entry
            .totals
            .resets_at(key.window, key.zone, now, metric, 0.0, needed, value)
    }

    fn merge(&self, key: &CounterKey, totals: &WindowTotals) {
        let mut counters = self.lock();
        counters.entry(key).totals.merge(totals);
    }

    fn export(&self) -> Vec<(CounterKey, WindowTotals)> {
        let counters = self.lock();
        counters
            .entries
            .iter()
            .map(|(key, entry)| (key.clone(), entry.totals.clone()))
            .collect()
    }

    fn contains(&self, key: &CounterKey) -> bool {
        self.lock().entries.contains_key(key)
    }

    fn register(&self, key: &CounterKey) {
        self.lock().entry(key);
    }

    fn retain(&self, keep: &(dyn Fn(&CounterKey) -> bool + Sync)) {
        self.lock().entries.retain(|key, _| keep(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_all_or_nothing_and_come_back() {
        let store = MemoryCounterStore::new();
        let now = Utc::now();
        let key = |scope: &str| CounterKey {
            scope: Scope::parse(scope).expect("scope"),
            window: Window::parse("daily").expect("window"),
            zone: chrono_tz::Tz::UTC,
        };
        let cost = |usd: f64| Amounts {
            cost_usd: usd,
            calls: 1.0,
            ..Amounts::default()
        };
        let checks = |usd: f64| {
            vec![
                Check {
                    key: key("global"),
                    metric: Metric::Cost,
                    value: 10.0,
                    needed: usd,
                },
                Check {
                    key: key("project:p1"),
                    metric: Metric::Cost,
                    value: 3.0,
                    needed: usd,
                },
            ]
        };
        let holds = |usd: f64| vec![(key("global"), cost(usd)), (key("project:p1"), cost(usd))];
        let first = store
            .try_reserve(now, &checks(2.0), &holds(2.0))
            .expect("fits");
        let refused = store
            .try_reserve(now, &checks(2.0), &holds(2.0))
            .expect_err("the project has 1 USD of room left");
        assert_eq!(
            (refused.check, refused.used, refused.reserved),
            (1, 0.0, 2.0)
        );
        assert_eq!(
            store.read(now, &key("global")).reserved.cost_usd,
            2.0,
            "a refused reservation holds nothing"
        );
        store.add_now(now, &[key("global"), key("project:p1")], &cost(1.5));
        store.release_now(first);
        let reading = store.read(now, &key("project:p1"));
        assert_eq!(
            (reading.used.cost_usd, reading.reserved.cost_usd),
            (1.5, 0.0)
        );
        store.release_now(first);
        assert_eq!(
            store.read(now, &key("project:p1")).reserved.cost_usd,
            0.0,
            "release is idempotent"
        );
        store
            .try_reserve(now, &checks(1.5), &holds(1.5))
            .expect("1.5 + 1.5 fits under 3");
        let text = key("project:p1").to_string();
        assert_eq!(text, "project:p1|daily|UTC");
        assert_eq!(text.parse::<CounterKey>(), Ok(key("project:p1")));
    }
}
