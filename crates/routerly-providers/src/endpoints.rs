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

/// The URL of `operation` at `target`, before any query string. A fixed path after the base
/// is joined with `concat` (through `format!` it cost about 500 instructions a call).
fn operation_url(target: &Target<'_>, operation: Operation, stream: bool) -> String {
    let base = target.endpoint.trim_end_matches('/');
    match (target.provider, operation) {
        (_, Operation::Embeddings) => return embeddings_url(target, base),
        (ProviderKind::OpenAi, Operation::Responses) => return [base, "/responses"].concat(),
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
        ) => [base, "/v1/messages"].concat(),
        (ProviderKind::Anthropic, Operation::CountTokens) => {
            [base, "/v1/messages/count_tokens"].concat()
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
        (ProviderKind::Ollama, _) => [base, "/api/chat"].concat(),
        // Mistral's SDK takes `https://api.mistral.ai` and adds the version itself.
        (ProviderKind::Mistral, _) => [base, "/v1/chat/completions"].concat(),
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
        ) => [base, "/chat/completions"].concat(),
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
        ProviderKind::Mistral | ProviderKind::Anthropic => [base, "/v1/embeddings"].concat(),
        ProviderKind::Ollama => [base, "/api/embed"].concat(),
        ProviderKind::Gemini => {
            let model = target
                .upstream_model
                .strip_prefix("models/")
                .unwrap_or(target.upstream_model);
            format!("{base}/v1beta/models/{model}:batchEmbedContents")
        }
        _ => [base, "/embeddings"].concat(),
    }
}

/// The headers Routerly sends a provider with a call, in the order they are written: the
/// provider's version and credential, the body's type, the client's name, the caller's
/// headers passed on, and what a stream accepts. The direct client writes them straight into
/// the request's head (no header map, no `Bearer` text built per call); the proxied client
/// takes them as a map ([`ProviderHeaders::header_map`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProviderHeaders<'a> {
    version: Option<(&'static str, &'static str)>,
    /// Header name, the value's prefix, the key: left out when the key is not a valid
    /// header value (a line break in a configured key must not end the header).
    credential: Option<(&'static str, &'static str, &'a str)>,
    accept: Option<&'static str>,
    passed: &'a HeaderMap,
}

impl<'a> ProviderHeaders<'a> {
    /// The headers of a call to `target`, asking for `accept` (a stream's framing) when
    /// given, with the caller's `passed` headers (`anthropic-beta`).
    pub(crate) fn new(
        target: &Target<'a>,
        accept: Option<&'static str>,
        passed: &'a HeaderMap,
    ) -> Self {
        let (version, name, prefix) = match target.provider {
            ProviderKind::Anthropic => (
                Some(("anthropic-version", ANTHROPIC_VERSION)),
                "x-api-key",
                "",
            ),
            ProviderKind::Gemini => (None, "x-goog-api-key", ""),
            ProviderKind::Azure => (None, "api-key", ""),
            _ => (None, "authorization", "Bearer "),
        };
        let credential = target
            .api_key
            .filter(|key| key.bytes().all(header_value_byte))
            .map(|key| (name, prefix, key));
        ProviderHeaders {
            version,
            credential,
            accept,
            passed,
        }
    }

    /// The fixed headers and `passed`, without a credential, a version or `accept` (for
    /// tests of the client).
    #[cfg(test)]
    pub(crate) fn passing(passed: &'a HeaderMap) -> Self {
        ProviderHeaders {
            version: None,
            credential: None,
            accept: None,
            passed,
        }
    }

    /// Calls `visit` with each header's name, its value's prefix and the rest of its value,
    /// in order; `secret` is true for the credential.
    fn each(&self, mut visit: impl FnMut(&str, &str, &[u8], bool)) {
        if let Some((name, value)) = self.version {
            visit(name, "", value.as_bytes(), false);
        }
        if let Some((name, prefix, key)) = self.credential {
            visit(name, prefix, key.as_bytes(), true);
        }
        visit("content-type", "", b"application/json", false);
        visit("user-agent", "", crate::USER_AGENT.as_bytes(), false);
        for (name, value) in self.passed {
            visit(name.as_str(), "", value.as_bytes(), false);
        }
        if let Some(accept) = self.accept {
            visit("accept", "", accept.as_bytes(), false);
        }
    }

    /// Appends the headers as head lines, less any `skip` names (the ones the client frames
    /// itself).
    pub(crate) fn write(&self, out: &mut Vec<u8>, skip: impl Fn(&str) -> bool) {
        self.each(|name, prefix, value, _| {
            if skip(name) {
                return;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        });
    }

    /// The headers as a map, the credential marked sensitive.
    pub(crate) fn header_map(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        self.each(|name, prefix, value, secret| {
            let mut bytes = Vec::with_capacity(prefix.len() + value.len());
            bytes.extend_from_slice(prefix.as_bytes());
            bytes.extend_from_slice(value);
            let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(&bytes),
            ) else {
                return;
            };
            value.set_sensitive(secret);
            headers.append(name, value);
        });
        headers
    }

    /// The number of headers (room to reserve in a head).
    pub(crate) fn len(&self) -> usize {
        4 + self.passed.len()
    }
}

/// A byte `HeaderValue::from_str` takes: visible ASCII, a space, a tab or a byte of
/// obs-text (never a line break).
fn header_value_byte(byte: u8) -> bool {
    byte >= 0x20 && byte != 0x7f || byte == b'\t'
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
    fn the_head_lines_are_the_headers_the_map_holds_in_order() {
        let mut passed = HeaderMap::new();
        passed.append("anthropic-beta", HeaderValue::from_static("a"));
        passed.append("anthropic-beta", HeaderValue::from_static("b"));
        for provider in [
            ProviderKind::Anthropic,
            ProviderKind::OpenAi,
            ProviderKind::Azure,
        ] {
            for accept in [None, Some("text/event-stream")] {
                let headers = ProviderHeaders::new(&target(provider, "http://x"), accept, &passed);
                let mut lines = Vec::new();
                headers.write(&mut lines, |_| false);
                let from_map: String = headers
                    .header_map()
                    .iter()
                    .map(|(name, value)| format!("{name}: {}\r\n", value.to_str().unwrap()))
                    .collect();
                assert_eq!(String::from_utf8(lines).unwrap(), from_map, "{provider:?}");
                let map = headers.header_map();
                assert_eq!(map["content-type"], "application/json");
                assert_eq!(map.get("accept").map(|v| v.to_str().unwrap()), accept);
                assert!(map.get_all("anthropic-beta").iter().eq(["a", "b"].iter()));
            }
        }
        let anthropic =
            ProviderHeaders::new(&target(ProviderKind::Anthropic, "http://x"), None, &passed);
        assert_eq!(
            anthropic.header_map()["anthropic-version"],
            ANTHROPIC_VERSION
        );
        assert!(anthropic.header_map()["x-api-key"].is_sensitive());
    }

    #[test]
    fn a_key_that_is_no_header_value_is_left_out_instead_of_ending_the_header() {
        let passed = HeaderMap::new();
        for key in ["sk-a\r\nx-injected: 1", "sk-\n", "sk-\u{7f}", "sk-\0"] {
            let target = Target {
                api_key: Some(key),
                ..target(ProviderKind::OpenAi, "http://x")
            };
            let headers = ProviderHeaders::new(&target, None, &passed);
            let mut lines = Vec::new();
            headers.write(&mut lines, |_| false);
            let lines = String::from_utf8(lines).unwrap();
            assert!(
                !lines.contains("authorization") && !lines.contains("injected"),
                "{lines}"
            );
            assert!(!headers.header_map().contains_key("authorization"));
        }
        // A tab and obs-text are header-value bytes, as `HeaderValue::from_str` takes them.
        let target = Target {
            api_key: Some("sk-\tkey-é"),
            ..target(ProviderKind::OpenAi, "http://x")
        };
        let map = ProviderHeaders::new(&target, None, &passed).header_map();
        assert_eq!(
            map["authorization"].as_bytes(),
            "Bearer sk-\tkey-é".as_bytes()
        );
    }

    #[test]
    fn each_provider_gets_its_credential_header() {
        let header = |provider| {
            let passed = HeaderMap::new();
            let headers =
                ProviderHeaders::new(&target(provider, "http://x"), None, &passed).header_map();
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
