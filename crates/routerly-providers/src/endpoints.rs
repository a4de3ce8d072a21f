//! Where each provider listens and how it wants to be addressed: the URL of each
//! operation, the credential header, and how its streams are framed.

use http::{HeaderMap, HeaderName, HeaderValue};
use routerly_core::config::{AZURE_DEFAULT_API_VERSION, ProviderKind};

use crate::{Operation, Target};

/// The `anthropic-version` Routerly's Anthropic adapter is written against.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How a provider frames a streamed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events (`data:` lines and blank-line separators).
    Sse,
    /// One JSON object per line (Ollama).
    Ndjson,
}

impl Framing {
    /// The framing `provider` streams with.
    pub fn of(provider: ProviderKind) -> Self {
        match provider {
            ProviderKind::Ollama => Framing::Ndjson,
            _ => Framing::Sse,
        }
    }

    /// The `accept` header value asking for this framing.
    pub(crate) fn accept(self) -> &'static str {
        match self {
            Framing::Sse => "text/event-stream",
            Framing::Ndjson => "application/x-ndjson",
        }
    }

    /// Whether a response's content type is this framing.
    pub(crate) fn matches_content_type(self, content_type: &str) -> bool {
        match self {
            Framing::Sse => content_type.starts_with("text/event-stream"),
            Framing::Ndjson => {
                content_type.starts_with("application/x-ndjson")
                    || content_type.starts_with("application/json")
                    || content_type.starts_with("application/jsonl")
            }
        }
    }
}

/// The provider URL for `operation`, from the target's base URL as the provider's SDK
/// takes it. Gemini names the model and the streaming mode in the URL; Azure names the
/// deployment (the upstream model) and the `api-version`.
pub fn url_for(target: &Target<'_>, operation: Operation, stream: bool) -> String {
    let mut url = operation_url(target, operation, stream);
    if let Some(query) = target.query.filter(|query| !query.is_empty())
        && operation != Operation::Embeddings
    {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    url
}

fn operation_url(target: &Target<'_>, operation: Operation, stream: bool) -> String {
    let base = target.endpoint.trim_end_matches('/');
    match (target.provider, operation) {
        (_, Operation::Embeddings) => return embeddings_url(target, base),
        (ProviderKind::OpenAi, Operation::Responses) => return format!("{base}/responses"),
        _ => {}
    }
    // Only OpenAI serves the Responses format; other providers chat.
    let operation = match operation {
        Operation::Responses => Operation::Chat,
        other => other,
    };
    match (target.provider, operation) {
        (
            ProviderKind::Anthropic,
            Operation::Chat | Operation::Responses | Operation::Embeddings,
        ) => {
            format!("{base}/v1/messages")
        }
        (ProviderKind::Anthropic, Operation::CountTokens) => {
            format!("{base}/v1/messages/count_tokens")
        }
        (ProviderKind::Gemini, operation) => {
            let model = target
                .upstream_model
                .strip_prefix("models/")
                .unwrap_or(target.upstream_model);
            let method = match (operation, stream) {
                (Operation::CountTokens, _) => "countTokens",
                (_, false) => "generateContent",
                (_, true) => "streamGenerateContent?alt=sse",
            };
            format!("{base}/v1beta/models/{model}:{method}")
        }
        (ProviderKind::Ollama, _) => format!("{base}/api/chat"),
        // Mistral's SDK takes `https://api.mistral.ai` and adds the version itself.
        (ProviderKind::Mistral, _) => format!("{base}/v1/chat/completions"),
        (ProviderKind::Azure, _) => format!(
            "{base}/openai/deployments/{}/chat/completions?api-version={}",
            target.upstream_model,
            target.api_version.unwrap_or(AZURE_DEFAULT_API_VERSION)
        ),
        (
            ProviderKind::OpenAi
            | ProviderKind::Custom
            | ProviderKind::Groq
            | ProviderKind::DeepSeek
            | ProviderKind::XAi
            | ProviderKind::Together
            | ProviderKind::OpenRouter
            | ProviderKind::Perplexity
            | ProviderKind::Fireworks
            | ProviderKind::Vllm
            | ProviderKind::LmStudio,
            _,
        ) => format!("{base}/chat/completions"),
    }
}

/// Where a provider serves embeddings: `/embeddings` under an OpenAI-style base, Azure's
/// deployment URL, Mistral's `/v1/embeddings` (its base has no `/v1`), Gemini's native
/// `models/{m}:batchEmbedContents` and Ollama's native `/api/embed` (the bodies are converted
/// by `routerly_core::wire::embeddings`). Anthropic has no embeddings; the server never
/// sends it any (its URL here is the 404 it would get).
fn embeddings_url(target: &Target<'_>, base: &str) -> String {
    match target.provider {
        ProviderKind::Azure => format!(
            "{base}/openai/deployments/{}/embeddings?api-version={}",
            target.upstream_model,
            target.api_version.unwrap_or(AZURE_DEFAULT_API_VERSION)
        ),
        ProviderKind::Mistral | ProviderKind::Anthropic => format!("{base}/v1/embeddings"),
        ProviderKind::Ollama => format!("{base}/api/embed"),
        ProviderKind::Gemini => {
            let model = target
                .upstream_model
                .strip_prefix("models/")
                .unwrap_or(target.upstream_model);
            format!("{base}/v1beta/models/{model}:batchEmbedContents")
        }
        _ => format!("{base}/embeddings"),
    }
}

/// The credential (and version) headers `target`'s provider expects.
pub(crate) fn auth_headers(target: &Target<'_>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let key_header = match target.provider {
        ProviderKind::Anthropic => {
            headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
            Some(HeaderName::from_static("x-api-key"))
        }
        ProviderKind::Gemini => Some(HeaderName::from_static("x-goog-api-key")),
        ProviderKind::Azure => Some(HeaderName::from_static("api-key")),
        _ => None,
    };
    let Some(key) = target.api_key else {
        return headers;
    };
    let (name, value) = match key_header {
        Some(name) => (name, HeaderValue::from_str(key)),
        None => (
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}")),
        ),
    };
    if let Ok(mut value) = value {
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    headers
}

#[cfg(test)]
mod tests {
    use routerly_core::config::Timeouts;

    use super::*;

    fn target(provider: ProviderKind, endpoint: &'static str) -> Target<'static> {
        Target {
            provider,
            endpoint,
            upstream_model: "gpt-4o",
            api_version: None,
            api_key: Some("sk-test"),
            timeouts: Timeouts::default(),
            query: None,
        }
    }

    #[test]
    fn urls_follow_each_provider() {
        let gemini = Target {
            upstream_model: "models/gemini-2.5-flash",
            ..target(
                ProviderKind::Gemini,
                "https://generativelanguage.googleapis.com/",
            )
        };
        assert_eq!(
            url_for(&gemini, Operation::Chat, true),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            url_for(&gemini, Operation::Chat, false),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        let azure = target(ProviderKind::Azure, "https://acme.openai.azure.com");
        assert_eq!(
            url_for(&azure, Operation::Chat, false),
            "https://acme.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        let azure_pinned = Target {
            api_version: Some("2025-01-01-preview"),
            ..azure
        };
        assert!(
            url_for(&azure_pinned, Operation::Chat, true)
                .ends_with("?api-version=2025-01-01-preview")
        );
        assert_eq!(
            url_for(
                &target(ProviderKind::Ollama, "http://localhost:11434"),
                Operation::Chat,
                true
            ),
            "http://localhost:11434/api/chat"
        );
        assert_eq!(
            url_for(
                &target(ProviderKind::Groq, "https://api.groq.com/openai/v1"),
                Operation::Chat,
                false
            ),
            "https://api.groq.com/openai/v1/chat/completions"
        );
        assert_eq!(
            url_for(
                &target(ProviderKind::Mistral, "https://api.mistral.ai"),
                Operation::Chat,
                false
            ),
            "https://api.mistral.ai/v1/chat/completions"
        );
    }

    #[test]
    fn embeddings_urls_follow_each_provider() {
        let url = |provider, endpoint, model| {
            url_for(
                &Target {
                    upstream_model: model,
                    ..target(provider, endpoint)
                },
                Operation::Embeddings,
                false,
            )
        };
        assert_eq!(
            url(
                ProviderKind::Gemini,
                "https://g.test",
                "models/gemini-embedding-001"
            ),
            "https://g.test/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        assert_eq!(
            url(
                ProviderKind::Ollama,
                "http://localhost:11434",
                "nomic-embed-text"
            ),
            "http://localhost:11434/api/embed"
        );
        assert_eq!(
            url(
                ProviderKind::Mistral,
                "https://api.mistral.ai",
                "mistral-embed"
            ),
            "https://api.mistral.ai/v1/embeddings"
        );
        assert_eq!(
            url(ProviderKind::Azure, "https://a.test", "embed-dep"),
            "https://a.test/openai/deployments/embed-dep/embeddings?api-version=2024-10-21"
        );
        assert_eq!(
            url(ProviderKind::Groq, "https://api.groq.com/openai/v1", "e"),
            "https://api.groq.com/openai/v1/embeddings"
        );
    }

    #[test]
    fn each_provider_gets_its_credential_header() {
        let header = |provider| {
            let headers = auth_headers(&target(provider, "http://x"));
            ["authorization", "x-api-key", "x-goog-api-key", "api-key"]
                .into_iter()
                .find(|name| headers.contains_key(*name))
                .map(|name| (name, headers[name].to_str().expect("ascii").to_owned()))
        };
        assert_eq!(
            header(ProviderKind::Gemini),
            Some(("x-goog-api-key", "sk-test".into()))
        );
        assert_eq!(
            header(ProviderKind::Azure),
            Some(("api-key", "sk-test".into()))
        );
        assert_eq!(
            header(ProviderKind::Anthropic),
            Some(("x-api-key", "sk-test".into()))
        );
        assert_eq!(
            header(ProviderKind::Mistral),
            Some(("authorization", "Bearer sk-test".into()))
        );
        assert_eq!(
            header(ProviderKind::Ollama),
            Some(("authorization", "Bearer sk-test".into()))
        );
    }
}
