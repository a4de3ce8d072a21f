//! One minimal call to a model's provider: the dashboard's "test connection"
//! (`POST /api/models/{id}/test`). The call goes the way routing sends it (same URL, key,
//! headers and timeouts) with the smallest request the model takes: a chat of one word
//! answered in at most one token, or the embedding of one word. It is not a client call:
//! no usage record, no budget, and the routing statistics do not count it.
//!
//! The caller learns whether the provider answered, its status and how long it took, never
//! the provider's answer: the test cannot be used to read what an address serves.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use routerly_core::config::ModelConfig;
use routerly_core::wire::{self, WireFormat};
use routerly_providers::{Operation, Target, UpstreamError, UpstreamResponse};
use serde_json::json;

use crate::state::App;
use crate::store::config::Snapshot;

/// The longest a test may take, whatever the model's timeouts.
const LIMIT: Duration = Duration::from_secs(20);

/// What a test found.
pub struct Probe {
    /// Whether the provider answered the call successfully.
    pub ok: bool,
    /// The provider's status, when it answered.
    pub status: Option<u16>,
    /// How long the call took.
    pub elapsed: Duration,
    /// What happened, in words.
    pub message: String,
}

/// Whether `ip` is link-local (`169.254.0.0/16`, `fe80::/10`, also inside an IPv4-mapped
/// IPv6 address): where cloud instances serve their metadata and credentials, and where no
/// LLM provider lives. Loopback and private addresses stay allowed: local models (Ollama's
/// documented endpoint is `http://localhost:11434`) and in-house servers live there.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// Why a model may not have `endpoint`, checked wherever a model's endpoint is created or
/// changed (`POST /api/models`, `PATCH /api/models/{id}`) and again before a test call: it
/// must be an http(s) URL with a host, and that host may not be a link-local address in any
/// form a URL parser accepts (`169.254.169.254`, `0xa9fea9fe`, `[fe80::1]`,
/// `[::ffff:169.254.169.254]`). Names are resolved only when the endpoint is tested
/// ([`probe`]), so a write never waits on DNS.
pub fn endpoint_refusal(endpoint: &str) -> Option<String> {
    let Ok(parsed) = reqwest::Url::parse(endpoint) else {
        return Some(format!("`{endpoint}` is not an http(s) URL"));
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Some(format!("`{endpoint}` is not an http(s) URL"));
    }
    let Some(host) = parsed.host_str().filter(|host| !host.is_empty()) else {
        return Some(format!("`{endpoint}` has no host"));
    };
    // The parser writes every IPv4 form in dotted decimal and IPv6 in brackets; a host
    // that does not read as an address is a name.
    let address = literal_address(host)?;
    is_link_local(address).then(|| link_local_refusal(&parsed, address))
}

/// The address a URL's host names literally, when it is one.
fn literal_address(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn link_local_refusal(url: &reqwest::Url, ip: IpAddr) -> String {
    let host = url.host_str().unwrap_or_default();
    format!(
        "the endpoint's host `{host}` is {ip}, a link-local address (where cloud instances serve their metadata); no provider lives there"
    )
}

/// Refuses an endpoint that [`endpoint_refusal`] refuses, or whose host name resolves to a
/// link-local address.
async fn check_endpoint(endpoint: &str) -> Result<(), String> {
    if let Some(refusal) = endpoint_refusal(endpoint) {
        return Err(refusal);
    }
    let parsed = reqwest::Url::parse(endpoint).expect("checked above");
    let name = parsed.host_str().unwrap_or_default();
    if literal_address(name).is_some() {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    // A name that does not resolve is reported by the call itself.
    let Ok(found) = tokio::net::lookup_host((name, port)).await else {
        return Ok(());
    };
    match found
        .map(|address| address.ip())
        .find(|ip| is_link_local(*ip))
    {
        Some(ip) => Err(link_local_refusal(&parsed, ip)),
        None => Ok(()),
    }
}

/// The smallest request `model` takes, in its provider's format, and its operation.
fn minimal_request(model: &ModelConfig) -> Result<(Vec<u8>, Operation), String> {
    if model.capabilities.embedding == Some(true) {
        let raw = json!({ "model": model.upstream_model, "input": "ping" });
        let body = super::embeddings::upstream_body(model, &raw)
            .map_err(|_| "this model's provider does not take embeddings".to_owned())?;
        return Ok((body, Operation::Embeddings));
    }
    let chat = json!({
        "model": model.upstream_model,
        "messages": [{ "role": "user", "content": "Reply with OK." }],
        "max_tokens": 1,
    });
    let request = wire::decode_request(WireFormat::OpenAiChat, &chat)
        .map_err(|error| error.to_error_body().message)?;
    let format = model.provider.wire_format();
    let body = wire::encode_request(format, &request, &model.upstream_model)
        .map_err(|error| error.to_error_body().message)?;
    let operation = if wire::is_responses(format) {
        Operation::Responses
    } else {
        Operation::Chat
    };
    Ok((
        serde_json::to_vec(&body).expect("a JSON value serializes"),
        operation,
    ))
}

/// Calls `model` once. `Err` when the test was refused before any call (a link-local
/// endpoint, a request the model cannot take); a provider's failure is an `Ok` probe
/// that is not `ok`.
pub async fn probe(app: &App, snapshot: &Snapshot, model: &ModelConfig) -> Result<Probe, String> {
    check_endpoint(&model.endpoint).await?;
    let (body, operation) = minimal_request(model)?;
    let target = Target {
        provider: model.provider,
        endpoint: &model.endpoint,
        upstream_model: &model.upstream_model,
        api_version: model.api_version.as_deref(),
        api_key: snapshot.model_api_key(&model.id),
        timeouts: model.timeouts.apply(snapshot.settings.timeouts),
        query: None,
    };
    let started = Instant::now();
    let sent = tokio::time::timeout(
        LIMIT,
        app.upstream
            .send(&target, operation, body, false, &http::HeaderMap::new()),
    )
    .await;
    let elapsed = started.elapsed();
    let (ok, status, message) = match sent {
        Err(_) => (
            false,
            None,
            format!("no answer within {} s", LIMIT.as_secs()),
        ),
        Ok(Ok(UpstreamResponse::Json(_) | UpstreamResponse::Stream(_))) => {
            (true, Some(200), "the provider answered".to_owned())
        }
        Ok(Err(error)) => {
            let status = error.status();
            let message = match &error {
                UpstreamError::Status { status, .. } => match status {
                    401 | 403 => format!("the provider refused the API key (HTTP {status})"),
                    404 => "the provider does not know this model or path (HTTP 404)".to_owned(),
                    429 => "the provider is rate limiting this key (HTTP 429)".to_owned(),
                    _ => format!("the provider answered HTTP {status}"),
                },
                // The error's own words carry no answer body.
                other => other.to_string(),
            };
            (false, status, message)
        }
    };
    Ok(Probe {
        ok,
        status,
        elapsed,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_addresses_are_recognised() {
        for (text, link_local) in [
            ("169.254.169.254", true),
            ("169.254.0.1", true),
            ("fe80::1", true),
            ("::ffff:169.254.169.254", true),
            ("127.0.0.1", false),
            ("10.0.0.5", false),
            ("::1", false),
            ("93.184.216.34", false),
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            assert_eq!(is_link_local(ip), link_local, "{text}");
        }
    }

    #[tokio::test]
    async fn a_metadata_endpoint_is_refused_before_any_call() {
        let refused = check_endpoint("http://169.254.169.254/latest/meta-data")
            .await
            .expect_err("refused");
        assert!(refused.contains("link-local"), "{refused}");
        assert!(check_endpoint("http://[fe80::1]:8080/v1").await.is_err());
        assert!(check_endpoint("http://127.0.0.1:11434").await.is_ok());
    }

    #[test]
    fn every_written_form_of_a_link_local_host_is_refused() {
        for endpoint in [
            "http://169.254.169.254/latest/meta-data",
            "https://169.254.0.1:8443/v1",
            "http://2852039166/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://[fe80::1]:8080/v1",
            "http://[FE80::a:b]/v1",
            "http://[febf::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://user:pass@169.254.169.254/",
        ] {
            let refusal = endpoint_refusal(endpoint).unwrap_or_else(|| panic!("{endpoint}"));
            assert!(refusal.contains("link-local"), "{endpoint}: {refusal}");
        }
        for endpoint in [
            "https://api.openai.com/v1",
            "http://localhost:11434",
            "http://127.0.0.1:9/v1",
            "http://10.0.0.5/v1",
            "http://[::1]:8080/v1",
            "http://169.253.255.255/",
            "http://[fec0::1]/",
            "http://169.254.169.254.example.com/v1",
        ] {
            assert_eq!(endpoint_refusal(endpoint), None, "{endpoint}");
        }
        for endpoint in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "not a url",
            "http://",
        ] {
            let refusal = endpoint_refusal(endpoint).unwrap_or_else(|| panic!("{endpoint}"));
            assert!(!refusal.contains("link-local"), "{endpoint}: {refusal}");
        }
    }
}
