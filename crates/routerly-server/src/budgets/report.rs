//! Reports: each limit's use now, for the API, the CLI and `/metrics`.

use chrono::{DateTime, Utc};
use routerly_core::limits::{self, Limit, Window, calendar_window};
use serde::Serialize;

use super::Budgets;
use crate::metrics::{Exposition, Kind, Value};
use crate::store::config::Snapshot;
use crate::store::counters::CounterHealth;

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
    /// The last call this limit refused on this replica in the current window.
    pub last_refusal: Option<super::LastRefusal>,
}

impl Budgets {
    /// Every limit of the configuration with its use now.
    pub fn usage(&self, snapshot: &Snapshot) -> Vec<LimitUse> {
        let index = self.index_for(snapshot);
        let now = Utc::now();
        // Held while the report is built (no await, no other lock taken under it): refusals
        // only insert under it.
        let refusals = self.refusals();
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
                    last_refusal: refusals
                        .get(&limit.id)
                        .filter(|refusal| refusal.at >= window_start)
                        .copied(),
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
}
