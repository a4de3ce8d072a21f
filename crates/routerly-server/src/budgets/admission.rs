//! Admission: before any provider is called, a call's candidates are checked against
//! their limits and its estimate is reserved on every limit of the survivors at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use routerly_core::canonical::Usage;
use routerly_core::config::ModelConfig;
use routerly_core::limits::{self, Amounts, CallScope, Limit, Metric, effective_limits};
use routerly_core::usage;
use smallvec::SmallVec;

use super::{Budgets, LimitIndex};
use crate::store::config::Snapshot;
use crate::store::counters::{Check, CounterError, CounterKey, CounterStore, ReservationId};

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

impl Budgets {
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
        // A call has a candidate or two and is under a handful of limits: these lists stay
        // on the stack (each heap allocation here was a block of memory gone cold).
        let mut survivors: SmallVec<[Candidate<'m>; 2]> = SmallVec::new();
        let mut first_refusal: Option<BudgetRefusal> = None;
        for &model in &candidates {
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
                self.note_refusal(&refusal, &index, now);
                return Err(AdmitError::Refused(Box::new(refusal)));
            }
            // The limits the survivors reserve against, in index order, each with the most
            // any survivor needs and the most of every amount of the survivors under it;
            // then the counters they hold, in that order, each with the most of the amounts
            // of its limits. Searched in order: a call is under a handful of limits.
            let mut needed: SmallVec<[(usize, f64, Amounts); 4]> = SmallVec::new();
            for candidate in &survivors {
                for &limit_index in &candidate.limits {
                    let amount = candidate.amounts.get(index.limits[limit_index].metric);
                    match needed.binary_search_by_key(&limit_index, |&(at, ..)| at) {
                        Ok(at) => {
                            let (_, most, amounts) = &mut needed[at];
                            *most = most.max(amount);
                            *amounts = max_amounts(amounts, &candidate.amounts);
                        }
                        Err(at) => needed.insert(at, (limit_index, amount, candidate.amounts)),
                    }
                }
            }
            let checks: SmallVec<[Check; 4]> = needed
                .iter()
                .map(|&(limit_index, needed, _)| {
                    let limit = &index.limits[limit_index];
                    Check {
                        key: index.keys[limit_index].clone(),
                        metric: limit.metric,
                        value: limit.value,
                        needed,
                    }
                })
                .collect();
            // In the checks' order, so that calls under the same limits hold the same
            // counters in the same order (a shared store's lease serves them by that).
            let mut holds: SmallVec<[(CounterKey, Amounts); 4]> = SmallVec::new();
            for (limit_index, _, amounts) in &needed {
                let key = &index.keys[*limit_index];
                match holds.iter_mut().find(|(held, _)| held == key) {
                    Some((_, hold)) => *hold = max_amounts(hold, amounts),
                    None => holds.push((key.clone(), *amounts)),
                }
            }
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
                    // The survivors, in the list the candidates came in.
                    let mut candidates = candidates;
                    candidates.clear();
                    candidates.extend(survivors.iter().map(|c| c.model));
                    return Ok(Admission {
                        candidates,
                        guard: Some(BudgetGuard {
                            counters: Arc::clone(&self.counters),
                            reservation,
                        }),
                    });
                }
                Err(failed) => {
                    let limit_index = needed[failed.check].0;
                    let limit = &index.limits[limit_index];
                    let refusal = BudgetRefusal {
                        limit: limit.clone(),
                        used: failed.used,
                        reserved: failed.reserved,
                        needed: checks[failed.check].needed,
                        resets_at: failed.resets_at,
                    };
                    if !limit.scope.level().is_model_level() {
                        self.note_refusal(&refusal, &index, now);
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
}

fn max_amounts(a: &Amounts, b: &Amounts) -> Amounts {
    Amounts {
        cost_usd: a.cost_usd.max(b.cost_usd),
        calls: a.calls.max(b.calls),
        input_tokens: a.input_tokens.max(b.input_tokens),
        output_tokens: a.output_tokens.max(b.output_tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budgets::testing::fixture;

    const ESTIMATE: CallEstimate = CallEstimate {
        input_tokens: 1_000,
        output_tokens: 1_000,
    };

    fn models(snapshot: &Snapshot) -> Vec<&ModelConfig> {
        ["big", "small"]
            .iter()
            .map(|id| snapshot.model(id).expect("model"))
            .collect()
    }

    fn ids(admission: &Admission<'_>) -> Vec<String> {
        admission
            .candidates
            .iter()
            .map(|model| model.id.clone())
            .collect()
    }

    #[test]
    fn the_estimate_is_priced_at_each_models_uncached_prices() {
        let f = fixture("[]");
        let snapshot = f.budgets.store.snapshot();
        let big = ESTIMATE.amounts(snapshot.model("big").expect("big"));
        assert!((big.cost_usd - 0.04).abs() < 1e-12, "{big:?}");
        assert_eq!(
            (big.calls, big.input_tokens, big.output_tokens),
            (1.0, 1e3, 1e3)
        );
        let small = ESTIMATE.amounts(snapshot.model("small").expect("small"));
        assert!((small.cost_usd - 0.003).abs() < 1e-12, "{small:?}");
    }

    #[tokio::test]
    async fn without_limits_every_candidate_passes_and_nothing_is_held() {
        let f = fixture("[]");
        let snapshot = f.budgets.store.snapshot();
        let admission = f
            .budgets
            .admit(&snapshot, "p1", "t1", models(&snapshot), ESTIMATE)
            .await
            .expect("admitted");
        assert_eq!(ids(&admission), ["big", "small"]);
        assert!(admission.guard.is_none());
    }

    #[tokio::test]
    async fn reservations_count_until_their_guard_is_dropped() {
        let f = fixture(
            r#"[{"id": "two", "scope": "project:p1", "metric": "calls", "window": "daily", "value": 2}]"#,
        );
        let snapshot = f.budgets.store.snapshot();
        let admit = || {
            f.budgets
                .admit(&snapshot, "p1", "t1", models(&snapshot), ESTIMATE)
        };
        let first = admit().await.expect("first");
        let second = admit().await.expect("second");
        let Err(AdmitError::Refused(refusal)) = admit().await else {
            panic!("a third call in flight fits no more");
        };
        assert_eq!(refusal.limit.id, "two");
        assert_eq!(
            (refusal.used, refusal.reserved, refusal.needed),
            (0.0, 2.0, 1.0)
        );
        assert!(refusal.message().contains("`two`"), "{}", refusal.message());
        assert!(refusal.retry_after() >= Duration::from_secs(1));
        // The report says what the refused call needed, for gauges to say "refusing".
        let reported = f.budgets.usage(&snapshot)[0]
            .last_refusal
            .expect("the refusal is reported");
        assert_eq!(reported.needed, 1.0);
        assert!(reported.at <= Utc::now());
        drop(first);
        let third = admit().await.expect("a released reservation makes room");
        assert!(third.guard.is_some() && second.guard.is_some());
        let use_now = &f.budgets.usage(&snapshot)[0];
        assert_eq!((use_now.used, use_now.reserved), (0.0, 2.0));
        drop((second, third));
        assert_eq!(f.budgets.usage(&snapshot)[0].reserved, 0.0);
    }

    #[tokio::test]
    async fn a_full_model_limit_drops_that_candidate_only() {
        // `big` has room for 0.05 USD: one estimate (0.04) fits, a second does not.
        let f = fixture(
            r#"[{"id": "big-cost", "scope": "model:big", "metric": "cost", "window": "monthly", "value": 0.05}]"#,
        );
        let snapshot = f.budgets.store.snapshot();
        let admit = || {
            f.budgets
                .admit(&snapshot, "p1", "t1", models(&snapshot), ESTIMATE)
        };
        let first = admit().await.expect("first");
        assert_eq!(ids(&first), ["big", "small"]);
        let second = admit().await.expect("the fallback still has room");
        assert_eq!(ids(&second), ["small"]);
        let held = f.budgets.usage(&snapshot)[0].reserved;
        assert!(
            (held - 0.04).abs() < 1e-12,
            "only the first call holds `big`'s limit: {held}"
        );
        assert!(first.guard.is_some() && second.guard.is_some());
        let alone = f
            .budgets
            .admit(
                &snapshot,
                "p1",
                "t1",
                vec![snapshot.model("big").expect("big")],
                ESTIMATE,
            )
            .await;
        let Err(AdmitError::Refused(refusal)) = alone else {
            panic!("no candidate left");
        };
        assert_eq!(refusal.limit.id, "big-cost");
        assert!((refusal.reserved - 0.04).abs() < 1e-12, "{refusal:?}");
    }

    #[tokio::test]
    async fn a_limit_shared_by_candidates_holds_the_largest_estimate_once() {
        let f = fixture(
            r#"[{"id": "project-cost", "scope": "project:p1", "metric": "cost", "window": "daily", "value": 1}]"#,
        );
        let snapshot = f.budgets.store.snapshot();
        let admission = f
            .budgets
            .admit(&snapshot, "p1", "t1", models(&snapshot), ESTIMATE)
            .await
            .expect("admitted");
        let reserved = f.budgets.usage(&snapshot)[0].reserved;
        assert!((reserved - 0.04).abs() < 1e-12, "held {reserved}");
        drop(admission);
    }

    #[tokio::test]
    async fn a_project_limit_refuses_whatever_the_candidates_and_alerts_once() {
        let f = fixture(
            r#"[{"id": "none", "scope": "project:p1", "metric": "calls", "window": "hourly", "value": 0}]"#,
        );
        let snapshot = f.budgets.store.snapshot();
        for _ in 0..3 {
            let refused = f
                .budgets
                .admit(&snapshot, "p1", "t1", models(&snapshot), ESTIMATE)
                .await;
            assert!(
                matches!(refused, Err(AdmitError::Refused(_))),
                "{refused:?}"
            );
        }
        let fired = f.ledger.fired();
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            fired[0].key.event,
            routerly_core::alerts::EventKind::Exhausted
        );
    }

    #[test]
    fn remaining_fractions_read_model_level_limits_only() {
        let f = fixture(
            r#"[{"id": "big-calls", "scope": "model:big", "metric": "calls", "window": "daily", "value": 4},
                {"id": "project-calls", "scope": "project:p1", "metric": "calls", "window": "daily", "value": 4}]"#,
        );
        let snapshot = f.budgets.store.snapshot();
        f.budgets.observe(&crate::budgets::testing::record(
            Some("big"),
            0.0,
            routerly_core::usage::Outcome::Success,
        ));
        let fractions = f
            .budgets
            .remaining_fractions(&snapshot, "p1", "t1", &["big", "small"]);
        assert_eq!(fractions, [0.75, 1.0]);
    }
}
