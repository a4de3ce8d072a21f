//! A project's routing configuration: the ordered policies `{type, enabled, config}` and the
//! retry count, with each policy's keys and defaults exactly as PRODUCT.md fixes them.
//!
//! A policy's `config` is parsed into its typed form when the file is read, so the request
//! path never parses configuration. Unknown types and unknown or bad keys are refused with
//! a message that names them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Retries per candidate when a project sets none.
pub const DEFAULT_RETRIES: u32 = 1;
/// The most retries per candidate a project may ask for.
pub const MAX_RETRIES: u32 = 10;

/// A project's routing: its ordered policies and how often a failing model is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// The policies, most important first.
    pub policies: Vec<PolicyEntry>,
    /// Retries on the same model after a retryable failure, before the next candidate.
    pub retries: u32,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            policies: Vec::new(),
            retries: DEFAULT_RETRIES,
        }
    }
}

impl RoutingConfig {
    /// Checks what serde cannot: each type at most once, the retry count in range.
    pub fn validate(&self) -> Result<(), String> {
        for (index, entry) in self.policies.iter().enumerate() {
            let kind = entry.policy.kind();
            if self.policies[..index]
                .iter()
                .any(|earlier| earlier.policy.kind() == kind)
            {
                return Err(format!("policy `{}` is listed twice", kind.as_str()));
            }
        }
        if self.retries > MAX_RETRIES {
            return Err(format!(
                "`retries` is {}; at most {MAX_RETRIES} are allowed",
                self.retries
            ));
        }
        Ok(())
    }

    /// The enabled policies, in order.
    pub fn enabled(&self) -> impl Iterator<Item = &Policy> {
        self.policies
            .iter()
            .filter(|entry| entry.enabled)
            .map(|entry| &entry.policy)
    }

    /// Whether any policy is enabled (when none is, routing costs nothing).
    pub fn any_enabled(&self) -> bool {
        self.policies.iter().any(|entry| entry.enabled)
    }

    /// Model ids the policies call themselves (routing and embedding models), with the
    /// configuration key that names each, for cross-file validation.
    pub fn referenced_models(&self) -> Vec<(&'static str, &str)> {
        let mut referenced = Vec::new();
        for entry in &self.policies {
            match &entry.policy {
                Policy::Llm(llm) => {
                    referenced.push(("llm.routingModelId", llm.routing_model_id.as_str()));
                    for fallback in &llm.fallback_model_ids {
                        referenced.push(("llm.fallbackModelIds", fallback.as_str()));
                    }
                }
                Policy::SemanticIntent(semantic) => referenced.push((
                    "semantic-intent.embeddingModelId",
                    semantic.embedding_model_id.as_str(),
                )),
                _ => {}
            }
        }
        referenced
    }
}

/// One policy in a project's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPolicyEntry", into = "RawPolicyEntry")]
pub struct PolicyEntry {
    /// Whether it takes part in routing.
    pub enabled: bool,
    /// Its type and typed configuration.
    pub policy: Policy,
}

/// The shape of a policy in the file and the API: `{type, enabled, config}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(default)]
    config: Value,
}

fn enabled_by_default() -> bool {
    true
}

impl TryFrom<RawPolicyEntry> for PolicyEntry {
    type Error = String;

    fn try_from(raw: RawPolicyEntry) -> Result<Self, String> {
        Ok(PolicyEntry {
            enabled: raw.enabled,
            policy: Policy::parse(&raw.kind, raw.config)?,
        })
    }
}

impl From<PolicyEntry> for RawPolicyEntry {
    fn from(entry: PolicyEntry) -> Self {
        RawPolicyEntry {
            kind: entry.policy.kind().as_str().to_owned(),
            enabled: entry.enabled,
            config: entry.policy.config_json(),
        }
    }
}

/// The ten policy types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// `cheapest`.
    Cheapest,
    /// `health`.
    Health,
    /// `performance`.
    Performance,
    /// `capability`.
    Capability,
    /// `context`.
    Context,
    /// `rate-limit`.
    RateLimit,
    /// `fairness`.
    Fairness,
    /// `budget-remaining`.
    BudgetRemaining,
    /// `llm`.
    Llm,
    /// `semantic-intent`.
    SemanticIntent,
}

impl PolicyKind {
    /// Every type, in the order PRODUCT.md lists them.
    pub const ALL: [PolicyKind; 10] = [
        PolicyKind::Cheapest,
        PolicyKind::Health,
        PolicyKind::Performance,
        PolicyKind::Capability,
        PolicyKind::Context,
        PolicyKind::RateLimit,
        PolicyKind::Fairness,
        PolicyKind::BudgetRemaining,
        PolicyKind::Llm,
        PolicyKind::SemanticIntent,
    ];

    /// The name used in config files, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Cheapest => "cheapest",
            PolicyKind::Health => "health",
            PolicyKind::Performance => "performance",
            PolicyKind::Capability => "capability",
            PolicyKind::Context => "context",
            PolicyKind::RateLimit => "rate-limit",
            PolicyKind::Fairness => "fairness",
            PolicyKind::BudgetRemaining => "budget-remaining",
            PolicyKind::Llm => "llm",
            PolicyKind::SemanticIntent => "semantic-intent",
        }
    }

    /// Parses a type name, or says which names exist.
    pub fn parse(name: &str) -> Result<PolicyKind, String> {
        PolicyKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = PolicyKind::ALL.iter().map(|kind| kind.as_str()).collect();
                format!(
                    "unknown policy type `{name}`; known types: {}",
                    names.join(", ")
                )
            })
    }
}

/// A policy with its typed configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Price.
    Cheapest(CheapestConfig),
    /// Recent error rate, with a circuit breaker.
    Health(HealthConfig),
    /// Recent latency.
    Performance(PerformanceConfig),
    /// What the request uses against what the model can do.
    Capability(CapabilityConfig),
    /// Prompt size against the context window.
    Context(ContextConfig),
    /// Calls in a window against a per-model limit.
    RateLimit(RateLimitConfig),
    /// Even spread of calls.
    Fairness(FairnessConfig),
    /// What is left of the model's tightest budget.
    BudgetRemaining(BudgetRemainingConfig),
    /// A routing model's judgement.
    Llm(LlmConfig),
    /// The intent of the last user message.
    SemanticIntent(SemanticIntentConfig),
}

impl Policy {
    /// The policy's type.
    pub fn kind(&self) -> PolicyKind {
        match self {
            Policy::Cheapest(_) => PolicyKind::Cheapest,
            Policy::Health(_) => PolicyKind::Health,
            Policy::Performance(_) => PolicyKind::Performance,
            Policy::Capability(_) => PolicyKind::Capability,
            Policy::Context(_) => PolicyKind::Context,
            Policy::RateLimit(_) => PolicyKind::RateLimit,
            Policy::Fairness(_) => PolicyKind::Fairness,
            Policy::BudgetRemaining(_) => PolicyKind::BudgetRemaining,
            Policy::Llm(_) => PolicyKind::Llm,
            Policy::SemanticIntent(_) => PolicyKind::SemanticIntent,
        }
    }

    /// Parses `config` (absent or `null` meaning `{}`) for the policy type `kind`, applying
    /// defaults; errors name the type and the key at fault.
    pub fn parse(kind: &str, config: Value) -> Result<Policy, String> {
        let kind = PolicyKind::parse(kind)?;
        let config = if config.is_null() {
            Value::Object(serde_json::Map::new())
        } else {
            config
        };
        let policy = match kind {
            PolicyKind::Cheapest => Policy::Cheapest(typed(kind, config)?),
            PolicyKind::Health => Policy::Health(typed(kind, config)?),
            PolicyKind::Performance => Policy::Performance(typed(kind, config)?),
            PolicyKind::Capability => Policy::Capability(typed(kind, config)?),
            PolicyKind::Context => Policy::Context(typed(kind, config)?),
            PolicyKind::RateLimit => Policy::RateLimit(typed(kind, config)?),
            PolicyKind::Fairness => Policy::Fairness(typed(kind, config)?),
            PolicyKind::BudgetRemaining => Policy::BudgetRemaining(typed(kind, config)?),
            PolicyKind::Llm => Policy::Llm(typed(kind, config)?),
            PolicyKind::SemanticIntent => Policy::SemanticIntent(typed(kind, config)?),
        };
        policy
            .check()
            .map_err(|message| format!("policy `{}`: {message}", kind.as_str()))?;
        Ok(policy)
    }

    /// The configuration as JSON, every key present (defaults filled in).
    pub fn config_json(&self) -> Value {
        let value = match self {
            Policy::Cheapest(config) => serde_json::to_value(config),
            Policy::Health(config) => serde_json::to_value(config),
            Policy::Performance(config) => serde_json::to_value(config),
            Policy::Capability(config) => serde_json::to_value(config),
            Policy::Context(config) => serde_json::to_value(config),
            Policy::RateLimit(config) => serde_json::to_value(config),
            Policy::Fairness(config) => serde_json::to_value(config),
            Policy::BudgetRemaining(config) => serde_json::to_value(config),
            Policy::Llm(config) => serde_json::to_value(config),
            Policy::SemanticIntent(config) => serde_json::to_value(config),
        };
        value.expect("policy configurations serialize")
    }

    /// Range checks serde cannot express.
    fn check(&self) -> Result<(), String> {
        match self {
            Policy::Health(health) => {
                positive("windowMinutes", health.window_minutes)?;
                positive("halfLifeMinutes", health.half_life_minutes)?;
                non_negative("pseudoCounts", health.pseudo_counts)?;
                non_negative("cooldownSeconds", health.cooldown_seconds)?;
                if !(health.circuit_breaker > 0.0 && health.circuit_breaker <= 1.0) {
                    return Err(format!(
                        "`circuitBreaker` must be a rate above 0 and at most 1, not {}",
                        health.circuit_breaker
                    ));
                }
                Ok(())
            }
            Policy::Performance(performance) => {
                positive("windowMinutes", performance.window_minutes)?;
                positive("halfLifeMinutes", performance.half_life_minutes)
            }
            Policy::RateLimit(rate_limit) => {
                positive("windowMinutes", rate_limit.window_minutes)?;
                count_at_most(
                    "maxCallsPerWindow",
                    rate_limit.max_calls_per_window,
                    MAX_POLICY_COUNT as u64,
                )
            }
            Policy::Fairness(fairness) => positive("windowMinutes", fairness.window_minutes),
            Policy::Llm(llm) => {
                if llm.routing_model_id.trim().is_empty() {
                    return Err("`routingModelId` must name a model".to_owned());
                }
                count_at_most(
                    "maxCompletionTokens",
                    u64::from(llm.max_completion_tokens),
                    1_000_000,
                )?;
                count_at_most(
                    "maxUserMessageChars",
                    llm.max_user_message_chars as u64,
                    1_000_000,
                )?;
                if llm.memory {
                    count_at_most("memoryCount", llm.memory_count as u64, 1000)?;
                }
                Ok(())
            }
            Policy::SemanticIntent(semantic) => {
                if semantic.embedding_model_id.trim().is_empty() {
                    return Err("`embeddingModelId` must name a model".to_owned());
                }
                if semantic.intents.is_empty() {
                    return Err("`intents` must hold at least one intent".to_owned());
                }
                for (name, intent) in &semantic.intents {
                    if intent
                        .examples
                        .iter()
                        .all(|example| example.trim().is_empty())
                    {
                        return Err(format!(
                            "intent `{name}` needs at least one non-empty example in `examples`"
                        ));
                    }
                    if intent.models.is_empty() {
                        return Err(format!(
                            "intent `{name}` needs at least one model in `models`"
                        ));
                    }
                }
                for (key, value) in [
                    ("absoluteThreshold", semantic.absolute_threshold),
                    ("ambiguityThreshold", semantic.ambiguity_threshold),
                ] {
                    if !(-1.0..=1.0).contains(&value) {
                        return Err(format!(
                            "`{key}` is a cosine similarity between -1 and 1, not {value}"
                        ));
                    }
                }
                Ok(())
            }
            Policy::Cheapest(_)
            | Policy::Capability(_)
            | Policy::Context(_)
            | Policy::BudgetRemaining(_) => Ok(()),
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(kind: PolicyKind, config: Value) -> Result<T, String> {
    serde_json::from_value(config).map_err(|error| format!("policy `{}`: {error}", kind.as_str()))
}

/// The longest window or half-life a policy may look at, in minutes (a year): longer spans
/// would only keep statistics that no longer describe the model.
pub const MAX_POLICY_MINUTES: f64 = 366.0 * 24.0 * 60.0;
/// The largest count a policy setting takes (`pseudoCounts`, `cooldownSeconds`, …).
pub const MAX_POLICY_COUNT: f64 = 1e9;

fn positive(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 && value <= MAX_POLICY_MINUTES {
        Ok(())
    } else {
        Err(format!(
            "`{key}` must be above 0 and at most {MAX_POLICY_MINUTES}, not {value}"
        ))
    }
}

fn non_negative(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && (0.0..=MAX_POLICY_COUNT).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "`{key}` must be between 0 and {MAX_POLICY_COUNT}, not {value}"
        ))
    }
}

fn count_at_most(key: &str, value: u64, max: u64) -> Result<(), String> {
    if (1..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("`{key}` must be between 1 and {max}, not {value}"))
    }
}

/// `cheapest`: no keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheapestConfig {}

/// `health` {`windowMinutes` 20, `halfLifeMinutes` 5, `pseudoCounts` 2, `circuitBreaker`
/// 0.9}, plus `cooldownSeconds` (30): how long an open circuit waits before one probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthConfig {
    /// How far back calls count.
    pub window_minutes: f64,
    /// Age at which a call counts half.
    pub half_life_minutes: f64,
    /// Successes assumed on top of the calls seen, so one failure is not a verdict.
    pub pseudo_counts: f64,
    /// Raw recent error rate at which the model is excluded (the circuit opens).
    pub circuit_breaker: f64,
    /// How long an open circuit waits before letting one probe request through.
    pub cooldown_seconds: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            window_minutes: 20.0,
            half_life_minutes: 5.0,
            pseudo_counts: 2.0,
            circuit_breaker: 0.9,
            cooldown_seconds: 30.0,
        }
    }
}

/// `performance` {`windowMinutes` 20, `halfLifeMinutes` 5, `minSamples` 1}.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PerformanceConfig {
    /// How far back latencies count.
    pub window_minutes: f64,
    /// Age at which a latency counts half.
    pub half_life_minutes: f64,
    /// Samples a model needs in the window to count as having data.
    pub min_samples: u32,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        PerformanceConfig {
            window_minutes: 20.0,
            half_life_minutes: 5.0,
            min_samples: 1,
        }
    }
}

/// `capability`: no keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityConfig {}

/// `context`: no keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {}

/// `rate-limit` {`windowMinutes` 1, `maxCallsPerWindow`}.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitConfig {
    /// The window calls are counted over.
    #[serde(default = "one_minute")]
    pub window_minutes: f64,
    /// Calls a model may take per window (required).
    pub max_calls_per_window: u64,
}

fn one_minute() -> f64 {
    1.0
}

/// `fairness` {`windowMinutes` 60}.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FairnessConfig {
    /// The window successful calls are counted over.
    pub window_minutes: f64,
}

impl Default for FairnessConfig {
    fn default() -> Self {
        FairnessConfig {
            window_minutes: 60.0,
        }
    }
}

/// `budget-remaining`: no keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRemainingConfig {}

/// `llm` {`routingModelId`, `fallbackModelIds` [], `maxCompletionTokens` 200,
/// `maxUserMessageChars` 4000, `includeReason` false, `memory` false, `memoryCount` 5}.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LlmConfig {
    /// The model asked to score the candidates (required).
    pub routing_model_id: String,
    /// Models asked, in order, when the routing model fails.
    #[serde(default)]
    pub fallback_model_ids: Vec<String>,
    /// Output tokens the routing model may use.
    #[serde(default = "default_max_completion_tokens")]
    pub max_completion_tokens: u32,
    /// The user message is cut to this many characters.
    #[serde(default = "default_max_user_message_chars")]
    pub max_user_message_chars: usize,
    /// Whether the routing model is asked for a reason per model (shown in the trace).
    #[serde(default)]
    pub include_reason: bool,
    /// Whether the last choices per `x-routerly-conversation-id` are given to it.
    #[serde(default)]
    pub memory: bool,
    /// How many earlier choices memory keeps per conversation.
    #[serde(default = "default_memory_count")]
    pub memory_count: usize,
}

fn default_max_completion_tokens() -> u32 {
    200
}

fn default_max_user_message_chars() -> usize {
    4000
}

fn default_memory_count() -> usize {
    5
}

/// `semantic-intent` {`embeddingModelId`, `intents`, `absoluteThreshold` 0.60,
/// `ambiguityThreshold` 0.08}.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SemanticIntentConfig {
    /// The model whose embeddings are compared (required).
    pub embedding_model_id: String,
    /// Intents by name (required).
    pub intents: BTreeMap<String, Intent>,
    /// The best similarity must reach this for any intent to count.
    #[serde(default = "default_absolute_threshold")]
    pub absolute_threshold: f64,
    /// The best must lead the second by this much to count alone.
    #[serde(default = "default_ambiguity_threshold")]
    pub ambiguity_threshold: f64,
}

fn default_absolute_threshold() -> f64 {
    0.60
}

fn default_ambiguity_threshold() -> f64 {
    0.08
}

/// One intent: example messages and the models that serve it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Messages typical of the intent; their embeddings' mean is its centroid.
    pub examples: Vec<String>,
    /// The models kept when a message has this intent.
    pub models: Vec<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<RoutingConfig, String> {
        let config: RoutingConfig = serde_json::from_value(value).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn defaults_are_filled_in_as_product_md_fixes_them() {
        let config = parse(json!({"policies": [
            {"type": "health"}, {"type": "performance"}, {"type": "fairness"},
            {"type": "rate-limit", "config": {"maxCallsPerWindow": 10}},
            {"type": "llm", "config": {"routingModelId": "router"}},
            {"type": "semantic-intent", "config": {"embeddingModelId": "embed",
                "intents": {"code": {"examples": ["write rust"], "models": ["m1"]}}}},
        ]}))
        .expect("valid");
        assert_eq!(config.retries, 1);
        let configs: Vec<Value> = config
            .policies
            .iter()
            .map(|entry| entry.policy.config_json())
            .collect();
        assert_eq!(
            configs[0],
            json!({"windowMinutes": 20.0, "halfLifeMinutes": 5.0, "pseudoCounts": 2.0, "circuitBreaker": 0.9, "cooldownSeconds": 30.0})
        );
        assert_eq!(
            configs[1],
            json!({"windowMinutes": 20.0, "halfLifeMinutes": 5.0, "minSamples": 1})
        );
        assert_eq!(configs[2], json!({"windowMinutes": 60.0}));
        assert_eq!(
            configs[3],
            json!({"windowMinutes": 1.0, "maxCallsPerWindow": 10})
        );
        assert_eq!(
            configs[4],
            json!({"routingModelId": "router", "fallbackModelIds": [], "maxCompletionTokens": 200,
                "maxUserMessageChars": 4000, "includeReason": false, "memory": false, "memoryCount": 5})
        );
        assert_eq!(configs[5]["absoluteThreshold"], json!(0.6));
        assert_eq!(configs[5]["ambiguityThreshold"], json!(0.08));
        assert!(config.policies.iter().all(|entry| entry.enabled));
    }

    #[test]
    fn errors_name_the_unknown_type_or_the_bad_parameter() {
        let cases = [
            (json!({"type": "cheapst"}), "unknown policy type `cheapst`"),
            (
                json!({"type": "health", "config": {"windowMinute": 5}}),
                "unknown field `windowMinute`",
            ),
            (
                json!({"type": "health", "config": {"circuitBreaker": 1.5}}),
                "`circuitBreaker`",
            ),
            (
                json!({"type": "rate-limit", "config": {}}),
                "missing field `maxCallsPerWindow`",
            ),
            (
                json!({"type": "rate-limit", "config": {"maxCallsPerWindow": "ten"}}),
                "policy `rate-limit`",
            ),
            (json!({"type": "llm"}), "missing field `routingModelId`"),
            (
                json!({"type": "semantic-intent", "config": {"embeddingModelId": "e", "intents": {}}}),
                "`intents`",
            ),
            (
                json!({"type": "fairness", "config": {"windowMinutes": 0}}),
                "`windowMinutes`",
            ),
        ];
        for (entry, expected) in cases {
            let error = parse(json!({"policies": [entry.clone()]}))
                .expect_err(&format!("{entry} must be refused"));
            assert!(
                error.contains(expected),
                "{entry}: `{error}` should contain `{expected}`"
            );
        }
        let twice = parse(json!({"policies": [{"type": "cheapest"}, {"type": "cheapest"}]}))
            .expect_err("a type listed twice is refused");
        assert!(twice.contains("`cheapest` is listed twice"), "{twice}");
        let retries = parse(json!({"retries": 11})).expect_err("too many retries");
        assert!(retries.contains("`retries`"), "{retries}");
    }

    #[test]
    fn entries_round_trip_through_json() {
        let config = parse(json!({"policies": [
            {"type": "cheapest", "enabled": false},
            {"type": "context", "config": null},
        ], "retries": 3}))
        .expect("valid");
        let written = serde_json::to_value(&config).expect("serializes");
        assert_eq!(
            written,
            json!({"policies": [
                {"type": "cheapest", "enabled": false, "config": {}},
                {"type": "context", "enabled": true, "config": {}},
            ], "retries": 3})
        );
        assert_eq!(parse(written).expect("reads back"), config);
    }
}
