//! The provider catalogue: every provider Routerly knows, its default endpoint and wire
//! format, and the models it serves with their prices, context windows and capabilities.
//!
//! The data is `catalogue.json`, compiled into the binary and parsed once on first use.
//! It fills what `model add` leaves out; nothing on the request path reads it.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::config::{Capabilities, Pricing, ProviderKind};
use crate::wire::WireFormat;

/// The catalogue's source, as shipped.
pub const CATALOGUE_JSON: &str = include_str!("catalogue.json");

/// The whole catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// When the prices were taken from the providers' price lists.
    pub prices_as_of: String,
    /// A word on what the prices mean.
    pub note: String,
    /// Every provider, in the order the CLI and dashboard list them.
    pub providers: Vec<CatalogueProvider>,
}

/// One provider of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueProvider {
    /// The provider's name in configs, the API and the CLI.
    pub id: ProviderKind,
    /// Its display name.
    pub name: String,
    /// The wire format of its chat endpoint.
    pub format: WireFormat,
    /// Its base URL as its official SDK takes it; `null` when each user has their own.
    pub default_endpoint: Option<String>,
    /// Another provider whose model list prices this one's (Azure deploys OpenAI's models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prices_like: Option<ProviderKind>,
    /// Models it is known to serve.
    pub models: Vec<CatalogueModel>,
}

/// One known model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueModel {
    /// The provider's own model name.
    pub id: String,
    /// Prices in USD per million tokens.
    pub pricing: Pricing,
    /// Context window in tokens.
    pub context_window: Option<u64>,
    /// What it can do.
    pub capabilities: Capabilities,
}

/// The catalogue shipped in this build.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        serde_json::from_str(CATALOGUE_JSON).expect("the shipped catalogue.json is valid")
    })
}

/// The catalogue entry of `kind`.
pub fn provider(kind: ProviderKind) -> Option<&'static CatalogueProvider> {
    catalogue()
        .providers
        .iter()
        .find(|provider| provider.id == kind)
}

/// What the catalogue knows about `upstream_model` at `kind`: an exact match, else the
/// longest known id that the name extends with a `-` suffix (a dated snapshot such as
/// `claude-sonnet-4-5-20250929` or `gpt-4o-2024-08-06`). A provider with `prices_like`
/// (Azure) looks in that provider's list.
pub fn model(kind: ProviderKind, upstream_model: &str) -> Option<&'static CatalogueModel> {
    let entry = provider(kind)?;
    let entry = match entry.prices_like {
        Some(other) => provider(other)?,
        None => entry,
    };
    let upstream_model = upstream_model
        .strip_prefix("models/")
        .unwrap_or(upstream_model);
    if let Some(exact) = entry.models.iter().find(|model| model.id == upstream_model) {
        return Some(exact);
    }
    entry
        .models
        .iter()
        .filter(|model| {
            upstream_model
                .strip_prefix(model.id.as_str())
                .is_some_and(|suffix| suffix.starts_with('-'))
        })
        .max_by_key(|model| model.id.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_kind_has_one_entry_with_its_wire_format() {
        for kind in ProviderKind::ALL {
            let entries: Vec<_> = catalogue()
                .providers
                .iter()
                .filter(|provider| provider.id == kind)
                .collect();
            assert_eq!(entries.len(), 1, "{} should be listed once", kind.as_str());
            assert_eq!(
                entries[0].format,
                kind.wire_format(),
                "{} lists the wrong format",
                kind.as_str()
            );
        }
        assert_eq!(catalogue().providers.len(), ProviderKind::ALL.len());
    }

    #[test]
    fn only_custom_and_azure_need_an_endpoint() {
        for kind in ProviderKind::ALL {
            let needs_one = matches!(kind, ProviderKind::Custom | ProviderKind::Azure);
            assert_eq!(
                kind.default_endpoint().is_none(),
                needs_one,
                "{}",
                kind.as_str()
            );
        }
        assert_eq!(
            ProviderKind::Gemini.default_endpoint(),
            Some("https://generativelanguage.googleapis.com")
        );
        assert_eq!(
            ProviderKind::Ollama.default_endpoint(),
            Some("http://localhost:11434")
        );
    }

    #[test]
    fn prices_are_sane() {
        for provider in &catalogue().providers {
            for model in &provider.models {
                let pricing = &model.pricing;
                let mut prices = vec![Some(pricing.input), Some(pricing.output)];
                prices.extend([pricing.cached_input, pricing.cache_write]);
                if let Some(tier) = pricing.long_context {
                    prices.extend([Some(tier.input), Some(tier.output), tier.cached_input]);
                }
                assert!(
                    prices
                        .into_iter()
                        .flatten()
                        .all(|price| price.is_finite() && (0.0..1000.0).contains(&price)),
                    "{}/{} has an odd price",
                    provider.name,
                    model.id
                );
            }
        }
    }

    #[test]
    fn models_are_found_exactly_by_snapshot_and_through_prices_like() {
        let groq = model(ProviderKind::Groq, "llama-3.3-70b-versatile").expect("listed");
        assert_eq!(groq.context_window, Some(131_072));
        let snapshot =
            model(ProviderKind::Anthropic, "claude-sonnet-4-5-20250929").expect("listed");
        assert_eq!(snapshot.id, "claude-sonnet-4-5");
        let dated = model(ProviderKind::OpenAi, "gpt-4o-mini-2024-07-18").expect("listed");
        assert_eq!(dated.id, "gpt-4o-mini", "the longest prefix wins");
        let azure = model(ProviderKind::Azure, "gpt-4o").expect("priced like OpenAI");
        assert_eq!(azure.pricing.input, 2.5);
        assert_eq!(
            model(ProviderKind::Gemini, "models/gemini-2.5-flash").map(|m| m.id.as_str()),
            Some("gemini-2.5-flash")
        );
        assert!(model(ProviderKind::Groq, "unknown-model").is_none());
    }
}
