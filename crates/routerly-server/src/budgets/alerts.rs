//! Alerts from budgets: a threshold crossed, a limit exhausted, a new window for a limit
//! that was exhausted; each once per limit and window (the [`AlertLedger`] decides).
//!
//! [`AlertLedger`]: crate::notify::AlertLedger

use chrono::{DateTime, Utc};
use routerly_core::alerts::{AlertEvent, AlertLimit, EventKind};
use routerly_core::limits::{self, Window, calendar_window};

use super::{BudgetRefusal, Budgets, LimitIndex};
use crate::notify::LedgerKey;
use crate::store::counters::CounterKey;

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

impl Budgets {
    /// Fires threshold and exhaustion alerts for one limit, each once per window.
    pub(super) fn check_thresholds(
        &self,
        index: &LimitIndex,
        limit_index: usize,
        now: DateTime<Utc>,
    ) {
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

    /// A call was refused: remembers it for the limit's report (so a gauge can say the
    /// limit is refusing calls, whatever its percentage) and fires its exhausted alert.
    pub(super) fn note_refusal(
        &self,
        refusal: &BudgetRefusal,
        index: &LimitIndex,
        now: DateTime<Utc>,
    ) {
        self.refusals().insert(
            refusal.limit.id.clone(),
            super::LastRefusal {
                at: now,
                needed: refusal.needed,
            },
        );
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
}
