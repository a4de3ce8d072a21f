//! Scoring and ranking, each case worked out by hand in its comment.

use std::collections::BTreeMap;

use super::policy::{Intent, SemanticIntentConfig};
use super::rank::{Participation, PolicyOutcome, rank, shuffle};
use super::score::{self, HealthInput, PolicyResult, RequestNeeds};
use crate::config::{Capabilities, Pricing};

fn close(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: {actual:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a - e).abs() < 1e-9,
            "{what}: got {actual:?}, expected {expected:?}"
        );
    }
}

fn price(input: f64, output: f64) -> Pricing {
    Pricing {
        input,
        output,
        ..Pricing::default()
    }
}

#[test]
fn cheapest_scores_by_mean_price_and_caps_paid_models_next_to_free_ones() {
    let cases: [(&str, Vec<Pricing>, Vec<f64>); 3] = [
        // p = 2, 4, 8 → 2/2, 2/4, 2/8.
        (
            "paid only",
            vec![price(1.0, 3.0), price(2.0, 6.0), price(4.0, 12.0)],
            vec![1.0, 0.5, 0.25],
        ),
        // A free model scores 1; the cheapest paid (2/2 = 1) is capped at 0.5, p = 8 → 0.25.
        (
            "free present",
            vec![price(0.0, 0.0), price(1.0, 3.0), price(4.0, 12.0)],
            vec![1.0, 0.5, 0.25],
        ),
        (
            "all free",
            vec![price(0.0, 0.0), price(0.0, 0.0)],
            vec![1.0, 1.0],
        ),
    ];
    for (what, prices, expected) in cases {
        let result = score::cheapest(&prices);
        close(&result.scores, &expected, what);
        assert!(result.exclusions.iter().all(Option::is_none), "{what}");
    }
}

#[test]
fn health_scores_decayed_error_rates_with_pseudo_counts_and_trips_the_breaker_on_raw_rates() {
    let cases = [
        // No calls: 1.
        ("no calls", HealthInput::default(), 1.0, false),
        // 2 errors of 8 decayed calls, pseudo 2 → 1 − 2/10 = 0.8; raw 2/8 < 0.9.
        (
            "some errors",
            HealthInput {
                decayed_calls: 8.0,
                decayed_errors: 2.0,
                raw_calls: 8,
                raw_errors: 2,
            },
            0.8,
            false,
        ),
        // 9 of 10 fail → 1 − 9/12 = 0.25; raw 0.9 ≥ 0.9 trips the breaker.
        (
            "failing",
            HealthInput {
                decayed_calls: 10.0,
                decayed_errors: 9.0,
                raw_calls: 10,
                raw_errors: 9,
            },
            0.25,
            true,
        ),
    ];
    for (what, input, expected, tripped) in cases {
        assert!(
            (score::health_score(&input, 2.0) - expected).abs() < 1e-9,
            "{what}"
        );
        assert_eq!(score::breaker_tripped(&input, 0.9), tripped, "{what}");
    }
    // A call one half-life old counts half.
    assert!((score::decay_weight(300.0, 300.0) - 0.5).abs() < 1e-12);
    assert!((score::decay_weight(0.0, 300.0) - 1.0).abs() < 1e-12);
}

#[test]
fn performance_scores_fastest_over_this_and_is_neutral_with_too_little_data() {
    type Case = (&'static str, Vec<Option<f64>>, Vec<f64>);
    let cases: [Case; 3] = [
        // 100, 200, 400 ms → 1, 0.5, 0.25.
        (
            "three known",
            vec![Some(100.0), Some(200.0), Some(400.0)],
            vec![1.0, 0.5, 0.25],
        ),
        // Only one model has data: everyone 1.
        (
            "one known",
            vec![Some(100.0), None, None],
            vec![1.0, 1.0, 1.0],
        ),
        // Two known, one unknown (scores 1, worth finding out).
        (
            "two known",
            vec![Some(50.0), None, Some(200.0)],
            vec![1.0, 1.0, 0.25],
        ),
    ];
    for (what, latencies, expected) in cases {
        close(&score::performance(&latencies).scores, &expected, what);
    }
}

#[test]
fn capability_excludes_only_models_known_to_lack_what_the_request_uses() {
    let tools = RequestNeeds {
        tools: true,
        ..RequestNeeds::default()
    };
    let models = [
        Capabilities {
            tools: Some(true),
            ..Capabilities::default()
        },
        Capabilities {
            tools: Some(false),
            ..Capabilities::default()
        },
        Capabilities::default(),
    ];
    let result = score::capability(tools, &models);
    assert_eq!(result.exclusions[0], None);
    assert_eq!(result.exclusions[1].as_deref(), Some("lacks tools"));
    assert_eq!(result.exclusions[2], None, "unknown flags do not exclude");
    let plain = score::capability(RequestNeeds::default(), &models);
    assert!(plain.exclusions.iter().all(Option::is_none));
}

#[test]
fn context_excludes_what_cannot_fit_and_penalises_above_eighty_percent() {
    // 900 prompt + 100 output = 1000 tokens against windows 10 000, 1 100, 1 000 and unknown:
    // 10 % → 1; 1000/1100 = 0.909 → 1 − (0.109/0.2)·0.9 = 0.5909…; 1000 ≥ 1000 → excluded.
    let result = score::context(900, 100, &[Some(10_000), Some(1_100), Some(1_000), None]);
    let fill = 1000.0 / 1100.0;
    let expected_near_full = 1.0 - (fill - 0.8) / 0.2 * 0.9;
    close(
        &result.scores,
        &[1.0, expected_near_full, 0.0, 1.0],
        "context scores",
    );
    assert!(result.exclusions[2].is_some());
    assert!(
        result
            .exclusions
            .iter()
            .filter(|reason| reason.is_some())
            .count()
            == 1
    );
}

#[test]
fn rate_limit_excludes_at_the_limit_and_scores_fewest_over_this() {
    // Limit 10; calls 2, 4, 10, 0: the fewest is 0, so busy models score 0/n = 0, the idle
    // one scores 1, and the one at 10 is excluded.
    let result = score::rate_limit(&[2, 4, 10, 0], 10);
    close(&result.scores, &[0.0, 0.0, 0.0, 1.0], "with an idle model");
    assert!(result.exclusions[2].is_some());
    // Calls 2, 4, 8 → 2/2, 2/4, 2/8.
    let result = score::rate_limit(&[2, 4, 8], 10);
    close(&result.scores, &[1.0, 0.5, 0.25], "busy models");
}

#[test]
fn fairness_scores_one_minus_the_share_of_the_projects_successes() {
    // 6, 3, 1 of 10 → 0.4, 0.7, 0.9.
    close(
        &score::fairness(&[6, 3, 1], 10).scores,
        &[0.4, 0.7, 0.9],
        "shares",
    );
    close(
        &score::fairness(&[0, 0], 0).scores,
        &[1.0, 1.0],
        "no calls yet",
    );
}

#[test]
fn budget_remaining_is_the_fraction_left() {
    close(
        &score::budget_remaining(&[1.0, 0.25, -0.5]).scores,
        &[1.0, 0.25, 0.0],
        "fractions",
    );
}

fn intents() -> SemanticIntentConfig {
    let mut intents = BTreeMap::new();
    intents.insert(
        "code".to_owned(),
        Intent {
            examples: vec!["write code".to_owned()],
            models: vec!["coder".to_owned()],
        },
    );
    intents.insert(
        "travel".to_owned(),
        Intent {
            examples: vec!["book a flight".to_owned()],
            models: vec!["planner".to_owned()],
        },
    );
    SemanticIntentConfig {
        embedding_model_id: "embed".to_owned(),
        intents,
        absolute_threshold: 0.6,
        ambiguity_threshold: 0.08,
    }
}

#[test]
fn semantic_intent_keeps_one_both_or_all_intents_by_the_thresholds() {
    let config = intents();
    let models = ["coder", "planner", "general"];
    let cases = [
        // Clear winner: 0.9 vs 0.3 → only `code`'s models.
        ("clear", 0.9, 0.3, vec![None, Some(()), Some(())]),
        // Ambiguous: 0.7 vs 0.65 (gap 0.05 < 0.08) → both intents' models.
        ("ambiguous", 0.7, 0.65, vec![None, None, Some(())]),
        // Weak: 0.5 < 0.6 → all kept.
        ("weak", 0.5, 0.2, vec![None, None, None]),
    ];
    for (what, code, travel, expected) in cases {
        let similarities = vec![("code".to_owned(), code), ("travel".to_owned(), travel)];
        let decision = score::intent_decision(&similarities, &config);
        let result = score::intent_exclusions(&models, &decision, &config);
        let excluded: Vec<Option<()>> = result
            .exclusions
            .iter()
            .map(|reason| reason.as_ref().map(|_| ()))
            .collect();
        assert_eq!(excluded, expected, "{what}: {}", decision.explanation);
    }
    assert!((score::cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-9);
    assert!(score::cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-9);
    assert_eq!(
        score::centroid(&[vec![1.0, 0.0], vec![0.0, 1.0]]),
        vec![0.5, 0.5]
    );
}

fn scored(scores: &[f64]) -> PolicyOutcome {
    PolicyOutcome::Scored(PolicyResult::scores(scores.to_vec()))
}

fn no_random(_: usize) -> usize {
    panic!("no shuffle expected")
}

#[test]
fn worked_example_1_weights_three_two_one() {
    // Three policies, weights 3, 2, 1 (total 6); candidates A, B, C:
    //   cheapest    A 1.0  B 0.5  C 0.25
    //   performance A 0.2  B 1.0  C 0.5
    //   fairness    A 0.9  B 0.6  C 1.0
    // A = (3·1.0 + 2·0.2 + 1·0.9)/6 = 4.3/6 = 0.7167
    // B = (3·0.5 + 2·1.0 + 1·0.6)/6 = 4.1/6 = 0.6833
    // C = (3·0.25 + 2·0.5 + 1·1.0)/6 = 2.75/6 = 0.4583  → A, B, C.
    let outcomes = [
        scored(&[1.0, 0.5, 0.25]),
        scored(&[0.2, 1.0, 0.5]),
        scored(&[0.9, 0.6, 1.0]),
    ];
    let ranking = rank(3, &outcomes, None, &mut no_random);
    assert_eq!(ranking.order, vec![0, 1, 2]);
    let combined: Vec<f64> = ranking
        .combined
        .iter()
        .map(|c| c.expect("ranked"))
        .collect();
    close(&combined, &[4.3 / 6.0, 4.1 / 6.0, 2.75 / 6.0], "combined");
    assert_eq!(
        ranking.participation,
        vec![
            Participation::Weighted(3),
            Participation::Weighted(2),
            Participation::Weighted(1)
        ]
    );
}

#[test]
fn worked_example_2_a_uniform_policy_is_left_out_and_keeps_its_weight_slot() {
    // Two policies: the first (weight 2) scores everyone 0.7 (within 1e-4: left out); the
    // second (weight 1) alone decides: B 0.9 > C 0.4 > A 0.1 → B, C, A.
    let outcomes = [scored(&[0.7, 0.70005, 0.7]), scored(&[0.1, 0.9, 0.4])];
    let ranking = rank(3, &outcomes, None, &mut no_random);
    assert_eq!(ranking.order, vec![1, 2, 0]);
    assert_eq!(
        ranking.participation,
        vec![Participation::Uniform, Participation::Weighted(1)]
    );
    close(
        &ranking
            .combined
            .iter()
            .map(|c| c.expect("ranked"))
            .collect::<Vec<_>>(),
        &[0.1, 0.9, 0.4],
        "only the second counts",
    );
}

#[test]
fn worked_example_3_exclusions_come_first_and_uniformity_is_judged_on_survivors() {
    // capability excludes A; cheapest scores A 1.0, B 0.5, C 0.5: among the survivors B and C
    // it is uniform (left out). health failed (skipped). performance (weight 1 of n = 3): B 0.4,
    // C 0.8 → C, B.
    let mut capability = PolicyResult::neutral(3);
    capability.exclusions[0] = Some("lacks tools".to_owned());
    let outcomes = [
        PolicyOutcome::Scored(capability),
        scored(&[1.0, 0.5, 0.5]),
        PolicyOutcome::Failed("stats unavailable".to_owned()),
    ];
    let mut with_performance = outcomes.to_vec();
    with_performance.push(scored(&[0.0, 0.4, 0.8]));
    let ranking = rank(3, &with_performance, None, &mut no_random);
    assert_eq!(ranking.order, vec![2, 1]);
    assert_eq!(ranking.excluded, vec![(0, 0, "lacks tools".to_owned())]);
    assert_eq!(
        ranking.participation,
        vec![
            Participation::Uniform,
            Participation::Uniform,
            Participation::Failed,
            Participation::Weighted(1)
        ]
    );
    assert_eq!(ranking.combined[0], None);
}

#[test]
fn when_every_policy_is_left_out_the_survivors_are_shuffled_evenly() {
    let outcomes = [
        scored(&[0.5, 0.5, 0.5]),
        PolicyOutcome::Failed("x".to_owned()),
    ];
    // A deterministic "random" that always picks 0: Fisher–Yates gives [1, 2, 0].
    let ranking = rank(3, &outcomes, None, &mut |_| 0);
    assert!(ranking.shuffled);
    assert_eq!(ranking.order, vec![1, 2, 0]);
    // Evenness: over all 3! choice sequences each permutation appears once.
    let mut seen = std::collections::HashSet::new();
    for first in 0..3 {
        for second in 0..2 {
            let mut items = [0, 1, 2];
            let mut picks = [first, second].into_iter();
            shuffle(&mut items, &mut |_| picks.next().expect("two picks"));
            seen.insert(items);
        }
    }
    assert_eq!(seen.len(), 6, "every permutation is reachable exactly once");
    // With no enabled policy, nothing is shuffled: the configured order stays.
    let none = rank(3, &[], None, &mut no_random);
    assert_eq!(none.order, vec![0, 1, 2]);
    assert!(!none.shuffled);
}

#[test]
fn a_pinned_model_stays_first_unless_excluded() {
    let outcomes = [scored(&[0.1, 0.9, 0.5])];
    assert_eq!(
        rank(3, &outcomes, Some(0), &mut no_random).order,
        vec![0, 1, 2]
    );
    let mut exclude_pinned = PolicyResult::scores(vec![0.1, 0.9, 0.5]);
    exclude_pinned.exclusions[0] = Some("too small".to_owned());
    let ranking = rank(
        3,
        &[PolicyOutcome::Scored(exclude_pinned)],
        Some(0),
        &mut no_random,
    );
    assert_eq!(ranking.order, vec![1, 2]);
}
