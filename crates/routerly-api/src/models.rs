//! `/api/models` and `/api/catalogue`: the models Routerly may route to, and the providers
//! and models it knows the prices of. A model's API key is never answered in clear except
//! by `GET /api/models/{id}/key`.

use chrono::{DateTime, Utc};
use routerly_core::catalogue as core_catalogue;
use routerly_core::config as core;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// A registered model as the API shows it: its key masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Model {
    /// Routerly's id for the model, unique in the installation.
    pub id: String,
    /// Which provider serves it (`openai`, `anthropic`, `gemini`, …; see `/api/catalogue`).
    #[schema(value_type = ProviderName, inline)]
    pub provider: String,
    /// Base URL as the provider's official SDK takes it.
    pub endpoint: String,
    /// The provider's own model name (Azure: the deployment).
    pub upstream_model: String,
    /// The key masked (`sk-…wXyZ`), an `env:NAME` reference as it is, `(unreadable)` when
    /// the master key cannot decrypt it, or `null` when there is none.
    pub api_key: Option<String>,
    /// Prices in USD per million tokens.
    pub pricing: Pricing,
    /// Context window in tokens, when known.
    #[ts(type = "number | null")]
    pub context_window: Option<u64>,
    /// What the model can do.
    pub capabilities: Capabilities,
    /// Timeouts that replace the service's for this model.
    pub timeouts: TimeoutOverrides,
    /// Azure OpenAI's `api-version`, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub api_version: Option<String>,
    /// When it was registered.
    #[ts(type = "string")]
    pub created_at: DateTime<Utc>,
    /// Its circuit breaker as routing sees it now; in the list only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub circuit: Option<CircuitState>,
}

/// A provider's name in configs, the API and the CLI: the schema lists every one this build
/// supports (`routerly_core::config::ProviderKind::ALL`).
pub struct ProviderName;

impl utoipa::PartialSchema for ProviderName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(
                core::ProviderKind::ALL.map(core::ProviderKind::as_str),
            ))
            .into()
    }
}

impl utoipa::ToSchema for ProviderName {
    fn name() -> std::borrow::Cow<'static, str> {
        "ProviderName".into()
    }
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through (also: never called).
    Closed,
    /// Too many failures: routing skips the model while it cools down.
    Open,
    /// Cooled down: one trial call decides whether it closes again.
    HalfOpen,
}

/// `GET /api/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ModelList {
    /// Every model, in the order they were registered.
    pub models: Vec<Model>,
}

/// Prices in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(default, deny_unknown_fields)]
pub struct Pricing {
    /// Uncached input tokens (absent in a request: 0).
    #[schema(minimum = 0)]
    pub input: f64,
    /// Output tokens (absent in a request: 0).
    #[schema(minimum = 0)]
    pub output: f64,
    /// Input tokens read from cache; the input price when `null`.
    #[schema(minimum = 0)]
    #[ts(optional = nullable)]
    pub cached_input: Option<f64>,
    /// Input tokens written to cache; the input price when `null`.
    #[schema(minimum = 0)]
    #[ts(optional = nullable)]
    pub cache_write: Option<f64>,
    /// Higher prices for calls whose prompt is longer than a threshold; absent for flat
    /// prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub long_context: Option<PriceTier>,
}

/// The prices of a call whose prompt has more than `above_input_tokens` tokens; they
/// replace the base prices for the whole call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PriceTier {
    /// The prompt length (all input tokens) above which this tier applies.
    #[ts(type = "number")]
    pub above_input_tokens: u64,
    /// Uncached input tokens.
    #[schema(minimum = 0)]
    pub input: f64,
    /// Output tokens.
    #[schema(minimum = 0)]
    pub output: f64,
    /// Cached input tokens; the tier's input price when absent.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub cached_input: Option<f64>,
    /// Cache-write tokens; the tier's input price when absent.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub cache_write: Option<f64>,
}

/// Capability flags; `null` means unknown, which never excludes a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(default, deny_unknown_fields)]
pub struct Capabilities {
    /// Accepts images.
    #[ts(optional = nullable)]
    pub vision: Option<bool>,
    /// Calls tools.
    #[ts(optional = nullable)]
    pub tools: Option<bool>,
    /// JSON mode and schemas.
    #[ts(optional = nullable)]
    pub json: Option<bool>,
    /// Extended thinking.
    #[ts(optional = nullable)]
    pub thinking: Option<bool>,
    /// Embeddings.
    #[ts(optional = nullable)]
    pub embedding: Option<bool>,
}

/// Timeouts in milliseconds that replace the service's, each one given; `null`: the
/// service's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutOverrides {
    /// Connecting to the provider.
    #[ts(optional, type = "number | null")]
    pub connect_ms: Option<u64>,
    /// Waiting for the first token.
    #[ts(optional, type = "number | null")]
    pub first_token_ms: Option<u64>,
    /// Waiting between two chunks of a stream.
    #[ts(optional, type = "number | null")]
    pub idle_ms: Option<u64>,
}

/// Body of `POST /api/models`. What it leaves out comes from the catalogue when Routerly
/// knows the model (`provider` + `upstream_model`), else from defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    /// Routerly's id: letters, digits and `- _ . : / @`, at most 128, not `auto`.
    #[schema(pattern = r"^(?!auto$)[A-Za-z0-9_.:/@-]{1,128}$")]
    pub id: String,
    /// Which provider serves it (see `/api/catalogue`).
    #[schema(value_type = ProviderName, inline)]
    pub provider: String,
    /// Base URL (`http(s)://…`); absent or blank: the provider's default (`custom`,
    /// `azure` and the local servers have none: they need one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(pattern = r"^\s*(https?://.*)?$")]
    pub endpoint: Option<String>,
    /// The provider key, or `env:NAME` to read it from the service's environment; stored
    /// encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(pattern = r"^(?!\s*env:\s*$)")]
    pub api_key: Option<String>,
    /// The provider's own model name; absent or blank: the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub upstream_model: Option<String>,
    /// Prices that replace the catalogue's, field by field.
    #[serde(default)]
    #[ts(as = "Option<PricingOverride>", optional)]
    pub pricing: PricingOverride,
    /// Context window in tokens; absent: the catalogue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub context_window: Option<u64>,
    /// Capabilities that replace the catalogue's, flag by flag.
    #[serde(default)]
    #[ts(as = "Option<Capabilities>", optional)]
    pub capabilities: Capabilities,
    /// Timeouts that replace the service's.
    #[serde(default)]
    #[ts(as = "Option<TimeoutOverrides>", optional)]
    pub timeouts: TimeoutOverrides,
    /// Azure OpenAI's `api-version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub api_version: Option<String>,
}

/// Prices of `POST /api/models`; each one given replaces the catalogue's.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(default, deny_unknown_fields)]
pub struct PricingOverride {
    /// Uncached input tokens.
    #[schema(minimum = 0)]
    #[ts(optional = nullable)]
    pub input: Option<f64>,
    /// Output tokens.
    #[schema(minimum = 0)]
    #[ts(optional = nullable)]
    pub output: Option<f64>,
    /// Input tokens read from cache.
    #[schema(minimum = 0)]
    #[ts(optional = nullable)]
    pub cached_input: Option<f64>,
    /// Input tokens written to cache.
    #[schema(minimum = 0)]
    #[ts(optional = nullable)]
    pub cache_write: Option<f64>,
    /// Long-prompt prices.
    #[ts(optional = nullable)]
    pub long_context: Option<PriceTier>,
}

/// Body of `PATCH /api/models/{id}`: the fields given replace the model's; a given
/// `pricing`, `capabilities` or `timeouts` replaces the whole object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateModel {
    /// Base URL (`http(s)://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(pattern = r"^\s*https?://")]
    pub endpoint: Option<String>,
    /// The provider key or `env:NAME`; blank removes the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(pattern = r"^(?!\s*env:\s*$)")]
    pub api_key: Option<String>,
    /// The provider's own model name (not blank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(pattern = r"\S")]
    pub upstream_model: Option<String>,
    /// Prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub pricing: Option<Pricing>,
    /// Context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub context_window: Option<u64>,
    /// Capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub capabilities: Option<Capabilities>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub timeouts: Option<TimeoutOverrides>,
    /// Azure OpenAI's `api-version`; blank removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub api_version: Option<String>,
}

/// `GET /api/models/{id}/key`: the one answer that carries a model's key in clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ModelKey {
    /// The key, an `env:NAME` reference as it is (never its value), or `null` when there is
    /// none.
    pub api_key: Option<String>,
    /// Where the key is kept; `null` when there is none.
    pub source: Option<KeySource>,
}

/// Where a model's key is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// In the service's environment, named by an `env:NAME` reference.
    Env,
    /// Encrypted under the master key in the config.
    Encrypted,
}

/// `GET /api/catalogue`: the providers and models Routerly knows, with their prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Catalogue {
    /// When the prices were taken from the providers' price lists.
    pub prices_as_of: String,
    /// A word on what the prices mean.
    pub note: String,
    /// Every provider, in the order the CLI and dashboard list them.
    pub providers: Vec<CatalogueProvider>,
}

/// One provider of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct CatalogueProvider {
    /// The provider's name in configs, the API and the CLI.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The wire format of its chat endpoint (`openai_chat`, `anthropic_messages`, …).
    pub format: String,
    /// Its base URL as its official SDK takes it; `null` when each user has their own.
    pub default_endpoint: Option<String>,
    /// Another provider whose model list prices this one's (Azure deploys OpenAI's models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub prices_like: Option<String>,
    /// Models it is known to serve.
    pub models: Vec<CatalogueModel>,
}

/// One known model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct CatalogueModel {
    /// The provider's own model name.
    pub id: String,
    /// Prices in USD per million tokens.
    pub pricing: Pricing,
    /// Context window in tokens.
    #[ts(type = "number | null")]
    pub context_window: Option<u64>,
    /// What it can do.
    pub capabilities: Capabilities,
}

impl From<core::Pricing> for Pricing {
    fn from(pricing: core::Pricing) -> Self {
        Pricing {
            input: pricing.input,
            output: pricing.output,
            cached_input: pricing.cached_input,
            cache_write: pricing.cache_write,
            long_context: pricing.long_context.map(PriceTier::from),
        }
    }
}

impl From<Pricing> for core::Pricing {
    fn from(pricing: Pricing) -> Self {
        core::Pricing {
            input: pricing.input,
            output: pricing.output,
            cached_input: pricing.cached_input,
            cache_write: pricing.cache_write,
            long_context: pricing.long_context.map(core::PriceTier::from),
        }
    }
}

impl From<core::PriceTier> for PriceTier {
    fn from(tier: core::PriceTier) -> Self {
        PriceTier {
            above_input_tokens: tier.above_input_tokens,
            input: tier.input,
            output: tier.output,
            cached_input: tier.cached_input,
            cache_write: tier.cache_write,
        }
    }
}

impl From<PriceTier> for core::PriceTier {
    fn from(tier: PriceTier) -> Self {
        core::PriceTier {
            above_input_tokens: tier.above_input_tokens,
            input: tier.input,
            output: tier.output,
            cached_input: tier.cached_input,
            cache_write: tier.cache_write,
        }
    }
}

impl From<core::Capabilities> for Capabilities {
    fn from(capabilities: core::Capabilities) -> Self {
        let core::Capabilities {
            vision,
            tools,
            json,
            thinking,
            embedding,
        } = capabilities;
        Capabilities {
            vision,
            tools,
            json,
            thinking,
            embedding,
        }
    }
}

impl From<Capabilities> for core::Capabilities {
    fn from(capabilities: Capabilities) -> Self {
        let Capabilities {
            vision,
            tools,
            json,
            thinking,
            embedding,
        } = capabilities;
        core::Capabilities {
            vision,
            tools,
            json,
            thinking,
            embedding,
        }
    }
}

impl From<core::TimeoutOverrides> for TimeoutOverrides {
    fn from(timeouts: core::TimeoutOverrides) -> Self {
        TimeoutOverrides {
            connect_ms: timeouts.connect_ms,
            first_token_ms: timeouts.first_token_ms,
            idle_ms: timeouts.idle_ms,
        }
    }
}

impl From<TimeoutOverrides> for core::TimeoutOverrides {
    fn from(timeouts: TimeoutOverrides) -> Self {
        core::TimeoutOverrides {
            connect_ms: timeouts.connect_ms,
            first_token_ms: timeouts.first_token_ms,
            idle_ms: timeouts.idle_ms,
        }
    }
}

impl From<&core_catalogue::Catalogue> for Catalogue {
    fn from(catalogue: &core_catalogue::Catalogue) -> Self {
        Catalogue {
            prices_as_of: catalogue.prices_as_of.clone(),
            note: catalogue.note.clone(),
            providers: catalogue
                .providers
                .iter()
                .map(|provider| CatalogueProvider {
                    id: provider.id.as_str().to_owned(),
                    name: provider.name.clone(),
                    format: wire_format_name(provider.format),
                    default_endpoint: provider.default_endpoint.clone(),
                    prices_like: provider.prices_like.map(|like| like.as_str().to_owned()),
                    models: provider
                        .models
                        .iter()
                        .map(|model| CatalogueModel {
                            id: model.id.clone(),
                            pricing: model.pricing.into(),
                            context_window: model.context_window,
                            capabilities: model.capabilities.into(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A wire format's name as configs and the API spell it (its serde name).
fn wire_format_name(format: routerly_core::wire::WireFormat) -> String {
    match serde_json::to_value(format) {
        Ok(serde_json::Value::String(name)) => name,
        _ => unreachable!("a wire format serializes as its name"),
    }
}
