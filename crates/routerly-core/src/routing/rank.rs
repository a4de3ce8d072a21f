//! Combining the enabled policies' verdicts into one ranking (PRODUCT.md, "Routing
//! policies"): excluded candidates are removed; the rest are ranked by the weighted mean of
//! the policy scores, the policy in position i of n enabled policies weighing n − i; a
//! policy that scores every survivor alike (within [`SAME_SCORE`]) is left out of the mean;
//! if every policy is left out, the survivors are shuffled evenly. The ranking is also the
//! fallback order.

use super::score::PolicyResult;

/// Scores closer than this count as the same.
pub const SAME_SCORE: f64 = 1e-4;

/// One enabled policy's outcome, in the order of the project's list.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyOutcome {
    /// It scored (and maybe excluded) the candidates.
    Scored(PolicyResult),
    /// It failed; it is skipped (never failing the request) and the reason is traced.
    Failed(String),
}

/// How one policy took part in the ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Participation {
    /// Its scores counted with this weight.
    Weighted(u32),
    /// It scored every survivor alike, so it was left out of the mean.
    Uniform,
    /// It failed and was skipped.
    Failed,
}

/// The combined decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Surviving candidates (indexes into the candidate list), best first.
    pub order: Vec<usize>,
    /// The weighted mean per candidate; `None` for excluded candidates, or for everyone when
    /// no policy counted.
    pub combined: Vec<Option<f64>>,
    /// Excluded candidates: (candidate, policy position, reason), in policy order.
    pub excluded: Vec<(usize, usize, String)>,
    /// How each policy took part, by position.
    pub participation: Vec<Participation>,
    /// Whether the order is an even shuffle because no policy counted.
    pub shuffled: bool,
}

/// Ranks `candidates` candidates by `outcomes` (one per enabled policy, in order).
///
/// `pinned` (the model the client named) goes first when it survives. `random_below(k)`
/// returns a uniform integer in `0..k`, for the even shuffle.
pub fn rank(
    candidates: usize,
    outcomes: &[PolicyOutcome],
    pinned: Option<usize>,
    random_below: &mut dyn FnMut(usize) -> usize,
) -> Ranking {
    let mut excluded = Vec::new();
    let mut alive = vec![true; candidates];
    for (position, outcome) in outcomes.iter().enumerate() {
        let PolicyOutcome::Scored(result) = outcome else {
            continue;
        };
        for (candidate, reason) in result.exclusions.iter().enumerate().take(candidates) {
            if let Some(reason) = reason
                && alive[candidate]
            {
                alive[candidate] = false;
                excluded.push((candidate, position, reason.clone()));
            }
        }
    }
    let survivors: Vec<usize> = (0..candidates).filter(|&index| alive[index]).collect();

    let n = outcomes.len() as u32;
    let mut participation = Vec::with_capacity(outcomes.len());
    let mut weighted_sum = vec![0f64; candidates];
    let mut total_weight = 0f64;
    for (position, outcome) in outcomes.iter().enumerate() {
        let PolicyOutcome::Scored(result) = outcome else {
            participation.push(Participation::Failed);
            continue;
        };
        let score = |candidate: usize| result.scores.get(candidate).copied().unwrap_or(0.0);
        let (low, high) = survivors
            .iter()
            .map(|&candidate| score(candidate))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
                (low.min(value), high.max(value))
            });
        if survivors.is_empty() || high - low <= SAME_SCORE {
            participation.push(Participation::Uniform);
            continue;
        }
        let weight = n - position as u32;
        participation.push(Participation::Weighted(weight));
        total_weight += f64::from(weight);
        for &candidate in &survivors {
            weighted_sum[candidate] += f64::from(weight) * score(candidate);
        }
    }

    let pinned = pinned.filter(|&index| index < candidates && alive[index]);
    let (mut order, combined, shuffled) = if total_weight > 0.0 {
        let combined: Vec<Option<f64>> = (0..candidates)
            .map(|index| alive[index].then(|| weighted_sum[index] / total_weight))
            .collect();
        let mut order = survivors;
        // Stable: equal means keep the configured order.
        order.sort_by(|a, b| {
            let (a, b) = (combined[*a].unwrap_or(0.0), combined[*b].unwrap_or(0.0));
            b.total_cmp(&a)
        });
        (order, combined, false)
    } else {
        let mut order = survivors;
        let shuffled = !outcomes.is_empty();
        if shuffled {
            shuffle(&mut order, random_below);
        }
        (order, vec![None; candidates], shuffled)
    };
    if let Some(pinned) = pinned
        && let Some(at) = order.iter().position(|&index| index == pinned)
    {
        let first = order.remove(at);
        order.insert(0, first);
    }
    Ranking {
        order,
        combined,
        excluded,
        participation,
        shuffled,
    }
}

/// Fisher–Yates: every order equally likely when `random_below` is uniform.
pub fn shuffle<T>(items: &mut [T], random_below: &mut dyn FnMut(usize) -> usize) {
    for last in (1..items.len()).rev() {
        let other = random_below(last + 1).min(last);
        items.swap(last, other);
    }
}
