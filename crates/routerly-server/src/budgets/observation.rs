//! Observation: every finished call's record counts its true use toward each limit that
//! covers it, once, and may cross an alert threshold.

use std::time::Instant;

use chrono::Utc;
use routerly_core::limits::{self, Amounts, CallScope};
use routerly_core::usage::{Outcome, UsageRecord};
use smallvec::SmallVec;

use super::{Budgets, RECENT_IDS};
use crate::store::counters::CounterKey;

impl Budgets {
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
        // A call counts toward a handful of limits: both lists stay on the stack.
        let counted: SmallVec<[usize; 4]> = limits::counting_limits(&index.limits, &call)
            .map(|limit| index.index_of(limit))
            .collect();
        if counted.is_empty() {
            return;
        }
        let mut keys: SmallVec<[CounterKey; 4]> = SmallVec::new();
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
            live.recent.observe(&record.id, Instant::now(), RECENT_IDS);
        }
        let now = Utc::now();
        for limit_index in counted {
            self.check_thresholds(&index, limit_index, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use routerly_core::alerts::EventKind;
    use routerly_core::usage::Outcome;

    use crate::budgets::testing::{fixture, record};

    const LIMITS: &str = r#"[
        {"id": "project-cost", "scope": "project:p1", "metric": "cost", "window": "daily", "value": 1},
        {"id": "small-calls", "scope": "model:small", "metric": "calls", "window": "rolling:1h", "value": 10},
        {"id": "token-input", "scope": "token:t1", "metric": "input_tokens", "window": "monthly", "value": 1000000}
    ]"#;

    fn used(f: &crate::budgets::testing::Fixture) -> Vec<(String, f64)> {
        let snapshot = f.budgets.store.snapshot();
        f.budgets
            .usage(&snapshot)
            .into_iter()
            .map(|limit_use| (limit_use.limit.id, limit_use.used))
            .collect()
    }

    #[test]
    fn a_record_counts_toward_every_limit_covering_it() {
        let f = fixture(LIMITS);
        f.budgets
            .observe(&record(Some("small"), 0.25, Outcome::Success));
        f.budgets
            .observe(&record(Some("big"), 0.5, Outcome::Success));
        assert_eq!(
            used(&f),
            [
                ("project-cost".to_owned(), 0.75),
                ("small-calls".to_owned(), 1.0),
                ("token-input".to_owned(), 200.0),
            ]
        );
    }

    #[test]
    fn refused_calls_and_calls_without_a_model_count_nothing() {
        let f = fixture(LIMITS);
        f.budgets
            .observe(&record(Some("small"), 0.25, Outcome::BudgetExceeded));
        f.budgets.observe(&record(None, 0.25, Outcome::Success));
        assert!(
            used(&f).iter().all(|(_, used)| *used == 0.0),
            "{:?}",
            used(&f)
        );
        // A provider error on a model still used it.
        f.budgets
            .observe(&record(Some("small"), 0.0, Outcome::Error));
        assert_eq!(used(&f)[1], ("small-calls".to_owned(), 1.0));
    }

    #[test]
    fn thresholds_alert_once_per_window_and_exhaustion_once() {
        let f = fixture(LIMITS);
        let events = |f: &crate::budgets::testing::Fixture| {
            f.ledger
                .fired()
                .into_iter()
                .map(|entry| (entry.key.limit_id, entry.key.event, entry.key.threshold))
                .collect::<Vec<_>>()
        };
        f.budgets
            .observe(&record(Some("big"), 0.4, Outcome::Success));
        assert!(events(&f).is_empty(), "{:?}", events(&f));
        f.budgets
            .observe(&record(Some("big"), 0.2, Outcome::Success));
        f.budgets
            .observe(&record(Some("big"), 0.05, Outcome::Success));
        let half = || ("project-cost".to_owned(), EventKind::Threshold, Some(50));
        assert_eq!(events(&f), [half()]);
        f.budgets
            .observe(&record(Some("big"), 0.5, Outcome::Success));
        f.budgets
            .observe(&record(Some("big"), 0.5, Outcome::Success));
        let fired = events(&f);
        assert_eq!(
            fired,
            [
                half(),
                ("project-cost".to_owned(), EventKind::Threshold, Some(80)),
                ("project-cost".to_owned(), EventKind::Threshold, Some(100)),
                ("project-cost".to_owned(), EventKind::Exhausted, None),
            ]
        );
    }
}
