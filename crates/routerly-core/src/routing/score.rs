//! Each policy's scoring as a pure function of what it reads: prices, statistics already
//! summed by the caller, the request, budgets' remaining fractions, a routing model's
//! points, embedding similarities. Scores are in [0, 1]; an exclusion carries its reason.

use crate::canonical::{ChatRequest, ContentPart, ResponseFormat};
use crate::config::{Capabilities, Pricing};

use super::policy::SemanticIntentConfig;

/// One policy's verdict on every candidate, in candidate order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyResult {
    /// Score per candidate, in [0, 1].
    pub scores: Vec<f64>,
    /// Why a candidate is excluded, per candidate; `None` keeps it.
    pub exclusions: Vec<Option<String>>,
}

impl PolicyResult {
    /// Scores without exclusions.
    pub fn scores(scores: Vec<f64>) -> Self {
        let exclusions = vec![None; scores.len()];
        PolicyResult { scores, exclusions }
    }

    /// Every candidate scores 1 and none is excluded (the policy has no opinion).
    pub fn neutral(candidates: usize) -> Self {
        PolicyResult::scores(vec![1.0; candidates])
    }
}

/// `cheapest`: p = (input + output price per million) / 2; score = lowest paid p / p; free
/// models score 1, and when a free model is present paid ones are capped at 0.5.
pub fn cheapest(prices: &[Pricing]) -> PolicyResult {
    let mean_price = |pricing: &Pricing| (pricing.input + pricing.output) / 2.0;
    let paid = prices.iter().map(mean_price).filter(|price| *price > 0.0);
    let lowest_paid = paid.fold(f64::INFINITY, f64::min);
    let any_free = prices.iter().any(|pricing| mean_price(pricing) <= 0.0);
    PolicyResult::scores(
        prices
            .iter()
            .map(|pricing| {
                let price = mean_price(pricing);
                if price <= 0.0 {
                    return 1.0;
                }
                let score = lowest_paid / price;
                if any_free { score.min(0.5) } else { score }
            })
            .collect(),
    )
}

/// The weight of an observation `age_seconds` old under a half-life.
pub fn decay_weight(age_seconds: f64, half_life_seconds: f64) -> f64 {
    if half_life_seconds <= 0.0 {
        return 1.0;
    }
    0.5f64.powf(age_seconds.max(0.0) / half_life_seconds)
}

/// A model's calls in the health window, as the statistics sum them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HealthInput {
    /// Calls, each weighted by its decay.
    pub decayed_calls: f64,
    /// Errors and timeouts, each weighted by its decay.
    pub decayed_errors: f64,
    /// Calls, unweighted.
    pub raw_calls: u64,
    /// Errors and timeouts, unweighted.
    pub raw_errors: u64,
}

/// `health` score: 1 − errors / (calls + pseudoCounts), both decayed; 1 with no calls.
pub fn health_score(input: &HealthInput, pseudo_counts: f64) -> f64 {
    let denominator = input.decayed_calls + pseudo_counts;
    if denominator <= 0.0 {
        return 1.0;
    }
    (1.0 - input.decayed_errors / denominator).clamp(0.0, 1.0)
}

/// Whether the raw recent error rate reaches the circuit breaker.
pub fn breaker_tripped(input: &HealthInput, circuit_breaker: f64) -> bool {
    input.raw_calls > 0 && input.raw_errors as f64 / input.raw_calls as f64 >= circuit_breaker
}

/// `performance`: score = fastest / this over models with data (decayed mean latency, time
/// to first token for streams); everyone scores 1 when fewer than two models have data, and
/// a model without data scores 1 (it is worth finding out).
pub fn performance(latencies_ms: &[Option<f64>]) -> PolicyResult {
    let known: Vec<f64> = latencies_ms
        .iter()
        .flatten()
        .copied()
        .filter(|latency| *latency > 0.0)
        .collect();
    if known.len() < 2 {
        return PolicyResult::neutral(latencies_ms.len());
    }
    let fastest = known.iter().copied().fold(f64::INFINITY, f64::min);
    PolicyResult::scores(
        latencies_ms
            .iter()
            .map(|latency| match latency {
                Some(latency) if *latency > 0.0 => (fastest / latency).clamp(0.0, 1.0),
                _ => 1.0,
            })
            .collect(),
    )
}

/// What a request uses that not every model can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestNeeds {
    /// Image parts.
    pub vision: bool,
    /// Tool definitions.
    pub tools: bool,
    /// JSON mode or a schema.
    pub json: bool,
    /// Extended thinking or reasoning.
    pub thinking: bool,
}

impl RequestNeeds {
    /// What `request` uses.
    pub fn of(request: &ChatRequest) -> Self {
        let image = |part: &ContentPart| match part {
            ContentPart::Image { .. } => true,
            ContentPart::ToolResult { content, .. } => content
                .iter()
                .any(|inner| matches!(inner, ContentPart::Image { .. })),
            _ => false,
        };
        RequestNeeds {
            vision: request
                .messages
                .iter()
                .any(|message| message.content.iter().any(image)),
            tools: !request.tools.is_empty(),
            json: matches!(
                request.response_format,
                Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
            ),
            thinking: request.reasoning.is_some(),
        }
    }
}

/// `capability`: excludes a model whose flag is `false` for something the request uses;
/// unknown flags do not exclude.
pub fn capability(needs: RequestNeeds, capabilities: &[Capabilities]) -> PolicyResult {
    let exclusions = capabilities
        .iter()
        .map(|capabilities| {
            let lacking: Vec<&str> = [
                (needs.vision, capabilities.vision, "vision (images)"),
                (needs.tools, capabilities.tools, "tools"),
                (needs.json, capabilities.json, "json"),
                (needs.thinking, capabilities.thinking, "thinking"),
            ]
            .into_iter()
            .filter(|(needed, flag, _)| *needed && *flag == Some(false))
            .map(|(_, _, name)| name)
            .collect();
            (!lacking.is_empty()).then(|| format!("lacks {}", lacking.join(", ")))
        })
        .collect();
    PolicyResult {
        scores: vec![1.0; capabilities.len()],
        exclusions,
    }
}

/// Share of the window above which `context` starts to penalise.
pub const CONTEXT_COMFORT: f64 = 0.8;
/// The `context` score of a model whose window is just big enough.
pub const CONTEXT_FLOOR: f64 = 0.1;

/// `context`: excluded when estimate + requested output ≥ the window; the score falls
/// linearly from 1 at 80 % of the window to 0.1 at 100 %. An unknown window scores 1.
pub fn context(prompt_tokens: u64, output_tokens: u64, windows: &[Option<u64>]) -> PolicyResult {
    let needed = prompt_tokens + output_tokens;
    let mut result = PolicyResult::neutral(windows.len());
    for (index, window) in windows.iter().enumerate() {
        let Some(window) = window.filter(|window| *window > 0) else {
            continue;
        };
        if needed >= window {
            result.exclusions[index] = Some(format!(
                "needs ~{needed} tokens, the context window is {window}"
            ));
            result.scores[index] = 0.0;
            continue;
        }
        let fill = needed as f64 / window as f64;
        if fill > CONTEXT_COMFORT {
            let over = (fill - CONTEXT_COMFORT) / (1.0 - CONTEXT_COMFORT);
            result.scores[index] = 1.0 - over * (1.0 - CONTEXT_FLOOR);
        }
    }
    result
}

/// `rate-limit`: excluded at the limit; otherwise score = fewest calls / this model's calls
/// (a model with no calls scores 1).
pub fn rate_limit(calls: &[u64], max_calls_per_window: u64) -> PolicyResult {
    let fewest = calls.iter().copied().min().unwrap_or(0);
    let mut result = PolicyResult::neutral(calls.len());
    for (index, &count) in calls.iter().enumerate() {
        if count >= max_calls_per_window {
            result.exclusions[index] = Some(format!(
                "{count} calls in the window, the limit is {max_calls_per_window}"
            ));
            result.scores[index] = 0.0;
        } else if count > 0 {
            result.scores[index] = fewest as f64 / count as f64;
        }
    }
    result
}

/// `fairness`: score = 1 − this model's share of the project's recent successful calls.
pub fn fairness(successes: &[u64], project_total: u64) -> PolicyResult {
    if project_total == 0 {
        return PolicyResult::neutral(successes.len());
    }
    PolicyResult::scores(
        successes
            .iter()
            .map(|&count| (1.0 - count as f64 / project_total as f64).clamp(0.0, 1.0))
            .collect(),
    )
}

/// `budget-remaining`: the smallest remaining fraction among the model's limits (the
/// caller passes 1 for a model without limits).
pub fn budget_remaining(fractions: &[f64]) -> PolicyResult {
    PolicyResult::scores(
        fractions
            .iter()
            .map(|fraction| fraction.clamp(0.0, 1.0))
            .collect(),
    )
}

/// Cosine similarity; 0 when either vector is zero or their lengths differ.
pub fn cosine(left: &[f32], right: &[f32]) -> f64 {
    if left.len() != right.len() || left.is_empty() {
        return 0.0;
    }
    let (mut dot, mut left_norm, mut right_norm) = (0f64, 0f64, 0f64);
    for (a, b) in left.iter().zip(right) {
        let (a, b) = (f64::from(*a), f64::from(*b));
        dot += a * b;
        left_norm += a * a;
        right_norm += b * b;
    }
    if left_norm == 0.0 || right_norm == 0.0 {
        return 0.0;
    }
    dot / (left_norm.sqrt() * right_norm.sqrt())
}

/// The mean of `vectors` (the centroid of an intent's examples); empty when there are none
/// or their lengths differ.
pub fn centroid(vectors: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = vectors.first() else {
        return Vec::new();
    };
    if vectors.iter().any(|vector| vector.len() != first.len()) {
        return Vec::new();
    }
    let mut sum = vec![0f32; first.len()];
    for vector in vectors {
        for (total, value) in sum.iter_mut().zip(vector) {
            *total += value;
        }
    }
    let count = vectors.len() as f32;
    sum.iter_mut().for_each(|value| *value /= count);
    sum
}

/// What `semantic-intent` decided.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentDecision {
    /// The intents whose models are kept; empty keeps every candidate.
    pub kept_intents: Vec<String>,
    /// In words, for the trace.
    pub explanation: String,
}

/// `semantic-intent`: given the message's similarity to each intent's centroid, the best
/// at or above `absoluteThreshold` and ahead of the second by at least `ambiguityThreshold`
/// keeps only its models; within `ambiguityThreshold` of the second keeps both intents'
/// models; below `absoluteThreshold` keeps all.
pub fn intent_decision(
    similarities: &[(String, f64)],
    config: &SemanticIntentConfig,
) -> IntentDecision {
    let mut ranked: Vec<&(String, f64)> = similarities.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let Some((best, best_similarity)) = ranked.first().map(|entry| (&entry.0, entry.1)) else {
        return IntentDecision {
            kept_intents: Vec::new(),
            explanation: "no intents".to_owned(),
        };
    };
    if best_similarity < config.absolute_threshold {
        return IntentDecision {
            kept_intents: Vec::new(),
            explanation: format!(
                "best intent `{best}` at {best_similarity:.3} is below absoluteThreshold {}: all kept",
                config.absolute_threshold
            ),
        };
    }
    match ranked.get(1) {
        Some((second, second_similarity))
            if best_similarity - second_similarity < config.ambiguity_threshold =>
        {
            IntentDecision {
                kept_intents: vec![best.clone(), second.clone()],
                explanation: format!(
                    "`{best}` ({best_similarity:.3}) and `{second}` ({second_similarity:.3}) are within ambiguityThreshold {}: both kept",
                    config.ambiguity_threshold
                ),
            }
        }
        _ => IntentDecision {
            kept_intents: vec![best.clone()],
            explanation: format!("intent `{best}` ({best_similarity:.3})"),
        },
    }
}

/// The exclusions of `semantic-intent` for candidates `model_ids` after `decision`.
pub fn intent_exclusions(
    model_ids: &[&str],
    decision: &IntentDecision,
    config: &SemanticIntentConfig,
) -> PolicyResult {
    let mut result = PolicyResult::neutral(model_ids.len());
    if decision.kept_intents.is_empty() {
        return result;
    }
    let kept = |model_id: &str| {
        decision.kept_intents.iter().any(|intent| {
            config
                .intents
                .get(intent)
                .is_some_and(|intent| intent.models.iter().any(|model| model == model_id))
        })
    };
    for (index, model_id) in model_ids.iter().enumerate() {
        if !kept(model_id) {
            result.exclusions[index] = Some(format!(
                "not a model of intent {}",
                decision.kept_intents.join(" or ")
            ));
            result.scores[index] = 0.0;
        }
    }
    result
}
