//! Talking to LLM providers over HTTP.
//!
//! [`Upstream`] owns the pooled HTTP clients: Routerly's own HTTP/1.1 client over rustls
//! for direct connections (`http1.rs`: a call and its body are read in the caller's task,
//! where hyper's pooled client handed every body chunk over from a connection task, and
//! reqwest's redirect and retry layers and its re-parsing of every URL were an eighth of a
//! proxied request's instructions), and reqwest for a provider the environment routes
//! through an outbound proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`), which it supports in full. [`Upstream::send`] posts a body that the
//! caller has already put in the provider's wire format (see `routerly_core::wire`) to
//! the provider's URL with its credentials, and returns either the whole JSON answer or
//! a stream of server-sent events. Every failure is classified once, here, into an
//! [`UpstreamError`] whose [`UpstreamError::disposition`] drives retries and fallback.
//!
//! This crate knows URLs, headers, timeouts and stream framing (SSE, and Ollama's
//! newline-delimited JSON, both read as a sequence of [`SseEvent`]s); it knows nothing
//! about projects, routing or the canonical model. Per-provider addressing lives in
//! `endpoints.rs`.

mod deadline;
mod endpoints;
mod http1;
mod ndjson;
mod sse;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::BodyDataStream;
use hyper_util::client::proxy::matcher::Matcher;
use routerly_core::config::{ProviderKind, Timeouts};

pub use deadline::Deadline;

pub(crate) use endpoints::ProviderHeaders;
pub use endpoints::{ANTHROPIC_VERSION, Framing, url_for};
pub use ndjson::NdjsonParser;
pub use sse::{SseEvent, SseParser};

/// Largest non-streamed answer accepted from a provider.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// The largest stream event accepted: a provider sending more without ending the event (an
/// image's base64 in one event is a few MiB) would make Routerly buffer it without end.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Which provider endpoint to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Chat (`/chat/completions` or `/v1/messages`).
    Chat,
    /// Anthropic's `/v1/messages/count_tokens` (Gemini's `countTokens`).
    CountTokens,
    /// OpenAI's `/responses`.
    Responses,
    /// Embeddings (`/embeddings`, or the provider's native embeddings method).
    Embeddings,
}

/// Everything needed to reach one model's provider.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The provider's protocol.
    pub provider: ProviderKind,
    /// Base URL as the provider's SDK takes it.
    pub endpoint: &'a str,
    /// The provider's own model name (Gemini and Azure put it in the URL).
    pub upstream_model: &'a str,
    /// Azure's `api-version`; the default when `None`. Other providers ignore it.
    pub api_version: Option<&'a str>,
    /// The provider API key, already decrypted.
    pub api_key: Option<&'a str>,
    /// Timeouts for this call.
    pub timeouts: Timeouts,
    /// The client's query string (`beta=true`), added to the URL of a call in the client's
    /// own format.
    pub query: Option<&'a str>,
}

/// A successful answer's head and body.
pub enum UpstreamResponse {
    /// A whole JSON body (non-streamed).
    Json(Bytes),
    /// A stream of events.
    Stream(EventStream),
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Worth retrying, here or on another model (connect error, timeout, 429, 5xx).
    Retry,
    /// This model cannot serve (bad provider key, unknown upstream model): try the next.
    NextModel,
    /// The request itself is at fault: give the provider's answer to the client.
    Client,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The connection could not be established.
    #[error("could not connect to the provider: {0}")]
    Connect(String),
    /// A timeout expired.
    #[error("the provider timed out ({0})")]
    Timeout(TimeoutPhase),
    /// The provider answered with an error status.
    #[error("the provider answered HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The error body, truncated.
        body: Bytes,
        /// The provider's `retry-after`, when given.
        retry_after: Option<Duration>,
    },
    /// The provider's answer could not be read or made no sense.
    #[error("the provider sent an invalid answer: {0}")]
    Protocol(String),
}

/// Which timeout expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Connecting.
    Connect,
    /// Waiting for the response head or first event.
    FirstToken,
    /// Silence between events, or while reading the body.
    Idle,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstToken => "first token",
            TimeoutPhase::Idle => "idle between events",
        })
    }
}

impl UpstreamError {
    /// How the caller should react, decided in one place for every provider.
    pub fn disposition(&self) -> Disposition {
        match self {
            UpstreamError::Connect(_) | UpstreamError::Timeout(_) | UpstreamError::Protocol(_) => {
                Disposition::Retry
            }
            UpstreamError::Status { status, .. } => match status {
                408 | 409 | 425 | 429 | 500..=599 => Disposition::Retry,
                401 | 403 | 404 => Disposition::NextModel,
                _ => Disposition::Client,
            },
        }
    }

    /// Whether this failure is a timeout (recorded as outcome `timeout`).
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Timeout(_))
    }

    /// The provider's status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Pooled HTTP clients: Routerly's own for direct connections, reqwest's (one per connect
/// timeout in use) through a proxy.
pub struct Upstream {
    direct: http1::Client,
    proxied: RwLock<HashMap<u64, reqwest::Client>>,
    /// Which URLs the environment sends through a proxy.
    proxies: Matcher,
    /// Provider URLs already parsed (a model's URL is the same on every call). Cleared when
    /// it grows large.
    /// Keyed by a randomly seeded foldhash: a caller's query string is part of the URL.
    uris: RwLock<HashMap<String, Arc<http1::Destination>, foldhash::fast::RandomState>>,
}

/// An answer's body, however the provider was reached: read from Routerly's own HTTP/1
/// connection, or through the proxy's client as a stream of its pieces.
enum AnswerBody {
    Direct(http1::Body),
    Proxied(Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>),
}

impl AnswerBody {
    /// A body with nothing (more) in it.
    fn empty() -> Self {
        AnswerBody::Proxied(Box::pin(futures_util::stream::empty()))
    }

    /// Appends the body's next bytes to `out`: `Ok(true)` once some were appended,
    /// `Ok(false)` at the body's end.
    fn poll_read_into(
        &mut self,
        context: &mut std::task::Context<'_>,
        out: &mut Vec<u8>,
    ) -> std::task::Poll<Result<bool, BoxError>> {
        use std::task::Poll;
        match self {
            AnswerBody::Direct(body) => body.poll_read_into(context, out),
            // Empty pieces are skipped: `Ok(true)` means bytes were appended.
            AnswerBody::Proxied(pieces) => loop {
                match std::task::ready!(pieces.poll_next_unpin(context)) {
                    None => return Poll::Ready(Ok(false)),
                    Some(Err(error)) => return Poll::Ready(Err(error)),
                    Some(Ok(piece)) if !piece.is_empty() => {
                        out.extend_from_slice(&piece);
                        return Poll::Ready(Ok(true));
                    }
                    Some(Ok(_)) => {}
                }
            },
        }
    }
}
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most distinct provider URLs kept parsed.
const MAX_PARSED_URLS: usize = 1024;
/// The `user-agent` Routerly sends providers.
const USER_AGENT: &str = concat!("routerly/", env!("CARGO_PKG_VERSION"));

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}

impl Upstream {
    /// A pool with no connections yet.
    pub fn new() -> Self {
        Upstream {
            direct: http1::Client::new(),
            proxied: RwLock::new(HashMap::new()),
            proxies: Matcher::from_system(),
            uris: RwLock::default(),
        }
    }

    fn proxied_client(&self, connect_ms: u64) -> reqwest::Client {
        if let Some(client) = self
            .proxied
            .read()
            .expect("client map lock")
            .get(&connect_ms)
        {
            return client.clone();
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(connect_ms))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client configuration is valid");
        self.proxied
            .write()
            .expect("client map lock")
            .entry(connect_ms)
            .or_insert(client)
            .clone()
    }

    /// `url` parsed, from the cache when it was parsed before; `None` when it is not an
    /// absolute http(s) URL.
    fn parsed_uri(&self, url: &str) -> Option<Arc<http1::Destination>> {
        if let Some(parsed) = self.uris.read().expect("url map lock").get(url) {
            return Some(Arc::clone(parsed));
        }
        let parsed: Uri = url.parse().ok()?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return None;
        }
        let proxied = self.proxies.intercept(&parsed).is_some();
        let parsed = Arc::new(http1::Destination::new(parsed, proxied));
        let mut uris = self.uris.write().expect("url map lock");
        if uris.len() >= MAX_PARSED_URLS {
            uris.clear();
        }
        uris.insert(url.to_owned(), Arc::clone(&parsed));
        Some(parsed)
    }

    /// Posts `body` (already in the provider's wire format) and returns the answer.
    ///
    /// `extra_headers` are passed through as they are (`anthropic-beta`). For a stream,
    /// this returns once the response head has arrived; the caller reads the first event
    /// through [`EventStream`] before committing to the client. Redirects are not followed:
    /// a provider's API answers where it is addressed.
    pub async fn send(
        &self,
        target: &Target<'_>,
        operation: Operation,
        body: Vec<u8>,
        stream: bool,
        extra_headers: &HeaderMap,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let url = url_for(target, operation, stream);
        let framing = Framing::of(target.provider);
        let destination = self.parsed_uri(&url).ok_or_else(|| {
            UpstreamError::Connect("the model's endpoint is not a valid http(s) URL".to_owned())
        })?;
        let headers = ProviderHeaders::new(target, stream.then(|| framing.accept()), extra_headers);
        let connect_ms = target.timeouts.connect_ms;
        // The answer's head is due within the first-token timeout. The direct client
        // keeps that deadline on the pooled connection's own timer (no timer per call).
        let first_token = Duration::from_millis(target.timeouts.first_token_ms);
        let first_token_due = tokio::time::Instant::now() + first_token;
        let (status, response_headers, answer): (StatusCode, HeaderMap, AnswerBody) =
            if destination.proxied {
                let sent = self
                    .proxied_client(connect_ms)
                    .post(url.as_str())
                    .headers(headers.header_map())
                    .body(body)
                    .send();
                let response = match tokio::time::timeout_at(first_token_due, sent).await {
                    Err(_) => return Err(UpstreamError::Timeout(TimeoutPhase::FirstToken)),
                    Ok(response) => response.map_err(|error| classify_reqwest(&error))?,
                };
                let response = http::Response::from(response);
                let (head, body) = response.into_parts();
                let pieces =
                    Box::pin(BodyDataStream::new(body).map(|chunk| chunk.map_err(BoxError::from)));
                (head.status, head.headers, AnswerBody::Proxied(pieces))
            } else {
                let answer = self
                    .direct
                    .post(
                        &destination,
                        &headers,
                        &body,
                        Duration::from_millis(connect_ms),
                        first_token_due,
                    )
                    .await?;
                (
                    answer.status,
                    answer.headers,
                    AnswerBody::Direct(answer.body),
                )
            };
        let status = status.as_u16();
        let idle = Duration::from_millis(target.timeouts.idle_ms);
        if !(200..300).contains(&status) {
            let header_retry_after = retry_after(&response_headers);
            let body = read_body(answer, idle, 16 * 1024).await.unwrap_or_default();
            let retry_after = header_retry_after.or_else(|| retry_delay_in_body(&body));
            return Err(UpstreamError::Status {
                status: classified_status(target.provider, status, &body),
                body,
                retry_after,
            });
        }
        if stream {
            let content_type_matches = response_headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|value| framing.matches_content_type(value));
            if !content_type_matches {
                return Err(UpstreamError::Protocol(
                    "expected an event stream, got another content type".to_owned(),
                ));
            }
            return Ok(UpstreamResponse::Stream(EventStream::new(
                answer,
                framing,
                first_token,
                idle,
            )));
        }
        let body = read_body(answer, idle, MAX_RESPONSE_BYTES).await?;
        Ok(UpstreamResponse::Json(body))
    }
}

/// The status a failure is classified by. Gemini answers an invalid API key with 400
/// `API_KEY_INVALID`; it is the model's credential that is wrong, not the request, so it
/// counts as the 401 it means and the next model is tried.
fn classified_status(provider: ProviderKind, status: u16, body: &[u8]) -> u16 {
    let invalid_key = provider == ProviderKind::Gemini
        && status == 400
        && body
            .windows(b"API_KEY_INVALID".len())
            .any(|window| window == b"API_KEY_INVALID");
    if invalid_key { 401 } else { status }
}

/// The retry delay a provider put in its error body instead of a header: Google's
/// `RetryInfo` detail (`"retryDelay": "37s"`), as Gemini sends with a 429.
fn retry_delay_in_body(body: &[u8]) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = match &value {
        serde_json::Value::Array(items) => items.first()?.get("error")?,
        other => other.get("error")?,
    };
    let delay = error
        .get("details")?
        .as_array()?
        .iter()
        .find_map(|detail| detail.get("retryDelay")?.as_str())?;
    let seconds: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

fn classify_reqwest(error: &reqwest::Error) -> UpstreamError {
    if error.is_timeout() {
        return UpstreamError::Timeout(if error.is_connect() {
            TimeoutPhase::Connect
        } else {
            TimeoutPhase::FirstToken
        });
    }
    if error.is_connect() {
        return UpstreamError::Connect(describe(error));
    }
    UpstreamError::Protocol(describe(error))
}

/// The error and its causes in one line; client errors never carry request headers.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `tokio::time::timeout`, with the timer made only when `future` has to wait: a body or a
/// frame already read is taken without one (creating and dropping a timer that never runs
/// costs a few hundred instructions, several times a call).
pub async fn timeout<F: Future>(
    limit: Duration,
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut future = std::pin::pin!(future);
    if let Some(output) = future.as_mut().now_or_never() {
        return Ok(output);
    }
    tokio::time::timeout(limit, future).await
}

/// The whole body of `answer`, up to `limit` bytes: cut there for an error body (`limit`
/// below the largest answer), refused beyond it otherwise.
async fn read_body(
    mut answer: AnswerBody,
    idle: Duration,
    limit: usize,
) -> Result<Bytes, UpstreamError> {
    let mut body = Vec::new();
    loop {
        let read = std::future::poll_fn(|context| answer.poll_read_into(context, &mut body));
        match timeout(idle, read).await {
            Err(_) => return Err(UpstreamError::Timeout(TimeoutPhase::Idle)),
            Ok(Err(error)) => return Err(UpstreamError::Protocol(describe(&*error))),
            Ok(Ok(false)) => return Ok(Bytes::from(body)),
            Ok(Ok(true)) => {}
        }
        if body.len() > limit {
            if limit < MAX_RESPONSE_BYTES {
                body.truncate(limit);
                return Ok(Bytes::from(body));
            }
            return Err(UpstreamError::Protocol(
                "the answer is larger than Routerly accepts".to_owned(),
            ));
        }
    }
}

/// A provider's event stream, with the first-token and idle timeouts applied per event.
///
/// [`EventStream::next_event`] is cancel-safe: the deadline runs from the last event (or
/// the start), not from the call, so a caller may race it against a keep-alive timer.
pub struct EventStream {
    body: AnswerBody,
    parser: Parser,
    first_token: Duration,
    idle: Duration,
    received_any: bool,
    finished: bool,
    last_event_at: tokio::time::Instant,
    /// When the last bytes arrived: the time of every event they complete (one clock read
    /// per read from the connection, not one per event).
    last_bytes_at: tokio::time::Instant,
    /// The wait's timer, re-armed lazily: when it fires before the deadline (events came
    /// meanwhile) or is set later than it, not once per event (a timer per event was a
    /// tenth of a stream's instructions).
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl EventStream {
    fn new(body: AnswerBody, framing: Framing, first_token: Duration, idle: Duration) -> Self {
        let parser = match framing {
            Framing::Sse => Parser::Sse(SseParser::new()),
            Framing::Ndjson => Parser::Ndjson(NdjsonParser::new()),
        };
        let now = tokio::time::Instant::now();
        EventStream {
            body,
            parser,
            first_token,
            idle,
            received_any: false,
            finished: false,
            last_event_at: now,
            last_bytes_at: now,
            timer: Box::pin(tokio::time::sleep_until(now + first_token)),
        }
    }

    /// The next event; `Ok(None)` when the provider closed the stream cleanly. With
    /// NDJSON framing each line is an event with no name.
    pub async fn next_event(&mut self) -> Result<Option<SseEvent>, UpstreamError> {
        loop {
            if let Some(event) = self.parser.next_event() {
                self.received_any = true;
                self.last_event_at = self.last_bytes_at;
                return Ok(Some(event));
            }
            if self.finished {
                return Ok(None);
            }
            if self.parser.pending_len() > MAX_EVENT_BYTES {
                self.finished = true;
                return Err(UpstreamError::Protocol(
                    "the provider sent an event larger than Routerly accepts".to_owned(),
                ));
            }
            let (wait, phase) = if self.received_any {
                (self.idle, TimeoutPhase::Idle)
            } else {
                (self.first_token, TimeoutPhase::FirstToken)
            };
            let deadline = self.last_event_at + wait;
            match std::future::poll_fn(|cx| self.poll_bytes_until(cx, deadline)).await {
                Err(Elapsed) => return Err(UpstreamError::Timeout(phase)),
                Ok(Ok(false)) => {
                    self.finished = true;
                    if self.parser.pending_len() > 0 {
                        // A last event without its blank line (or newline): accept it.
                        self.parser.push(b"\n\n");
                    }
                }
                Ok(Err(error)) => {
                    self.finished = true;
                    return Err(UpstreamError::Protocol(format!(
                        "the stream broke: {}",
                        describe(&*error)
                    )));
                }
                Ok(Ok(true)) => self.last_bytes_at = tokio::time::Instant::now(),
            }
        }
    }

    /// The body's next bytes read into the parser (`false` at its end), or [`Elapsed`] once
    /// `deadline` has passed without any.
    fn poll_bytes_until(
        &mut self,
        cx: &mut std::task::Context<'_>,
        deadline: tokio::time::Instant,
    ) -> std::task::Poll<Result<Result<bool, BoxError>, Elapsed>> {
        use std::task::Poll;
        let body = &mut self.body;
        if let Poll::Ready(read) = self.parser.append(|buffer| body.poll_read_into(cx, buffer)) {
            return Poll::Ready(Ok(read));
        }
        loop {
            if self.timer.deadline() > deadline {
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if tokio::time::Instant::now() >= deadline => {
                    return Poll::Ready(Err(Elapsed));
                }
                // Armed for an earlier deadline: events have come since.
                Poll::Ready(()) => self.timer.as_mut().reset(deadline),
            }
        }
    }

    /// Takes back an event once its reader is done with it, so that the next event's data
    /// reuses its allocation (one allocation per stream instead of one per event).
    pub fn recycle(&mut self, event: SseEvent) {
        if let Parser::Sse(parser) = &mut self.parser {
            parser.recycle(event);
        }
    }

    /// Bytes received and not yet read as events: about what the events that have already
    /// arrived take.
    pub fn buffered_len(&self) -> usize {
        self.parser.pending_len()
    }

    /// [`EventStream::next_event`] if the event has already arrived (parsed, or in bytes the
    /// connection has received), else `None` without waiting: lets a relay send everything
    /// the provider delivered together in one write instead of one write per event.
    pub fn ready_event(&mut self) -> Option<Result<Option<SseEvent>, UpstreamError>> {
        self.next_event().now_or_never()
    }

    /// Called once the stream's last event (its end marker) has been read: reads the rest
    /// of the body (a chunked body's terminator) so that its connection can serve another
    /// call. What has arrived is read at once; the rest is awaited in a task of its own, for
    /// a second and 64 KiB at most. A stream dropped without this (the client hung up)
    /// closes its connection at once, which tells the provider to stop generating.
    pub fn release(&mut self) {
        let mut body = std::mem::replace(&mut self.body, AnswerBody::empty());
        let mut rest = Vec::new();
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(Ok(false) | Err(_)) =
            body.poll_read_into(&mut context, &mut rest)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drained = async {
                let mut read = rest.len();
                while read <= 64 * 1024 {
                    rest.clear();
                    let more = std::future::poll_fn(|cx| body.poll_read_into(cx, &mut rest));
                    if !matches!(more.await, Ok(true)) {
                        break;
                    }
                    read += rest.len();
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
        });
    }
}

/// A stream's wait for its next bytes outlasted its deadline.
struct Elapsed;

/// The reader of one stream's framing.
enum Parser {
    Sse(SseParser),
    Ndjson(NdjsonParser),
}

impl Parser {
    /// Lets `read` append bytes from the wire to the parser's buffer.
    fn append<R>(&mut self, read: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        match self {
            Parser::Sse(parser) => parser.append(read),
            Parser::Ndjson(parser) => parser.append(read),
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        match self {
            Parser::Sse(parser) => parser.push(chunk),
            Parser::Ndjson(parser) => parser.push(chunk),
        }
    }

    fn pending_len(&self) -> usize {
        match self {
            Parser::Sse(parser) => parser.pending_len(),
            Parser::Ndjson(parser) => parser.pending_len(),
        }
    }

    fn next_event(&mut self) -> Option<SseEvent> {
        match self {
            Parser::Sse(parser) => parser.next_event(),
            Parser::Ndjson(parser) => parser.next_line().map(|data| SseEvent::new(None, data)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint: &str) -> Target<'_> {
        Target {
            provider: ProviderKind::OpenAi,
            endpoint,
            upstream_model: "gpt-4o-mini",
            api_version: None,
            api_key: Some("sk-test"),
            timeouts: Timeouts {
                connect_ms: 2_000,
                first_token_ms: 5_000,
                idle_ms: 5_000,
            },
            query: None,
        }
    }

    async fn send(upstream: &Upstream, endpoint: &str) -> UpstreamError {
        match upstream
            .send(
                &target(endpoint),
                Operation::Chat,
                b"{}".to_vec(),
                false,
                &HeaderMap::new(),
            )
            .await
        {
            Ok(_) => panic!("{endpoint} cannot answer"),
            Err(error) => error,
        }
    }

    #[tokio::test]
    async fn a_tls_handshake_that_fails_is_a_connect_failure_worth_another_model() {
        // A listener that answers TLS with plain text: rustls (with its crypto provider and
        // the web's roots) starts the handshake and fails it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let upstream = Upstream::new();
        let error = send(&upstream, &format!("https://127.0.0.1:{port}/v1")).await;
        assert!(matches!(error, UpstreamError::Connect(_)), "{error:?}");
        assert_eq!(error.disposition(), Disposition::Retry);
    }

    #[tokio::test]
    async fn refused_connections_and_bad_endpoints_are_connect_failures() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let upstream = Upstream::new();
        let refused = send(&upstream, &format!("http://127.0.0.1:{port}/v1")).await;
        assert!(matches!(refused, UpstreamError::Connect(_)), "{refused:?}");
        let invalid = send(&upstream, "not a url").await;
        assert!(matches!(invalid, UpstreamError::Connect(_)), "{invalid:?}");
    }

    /// A provider that answers each request with an SSE stream whose chunked terminator
    /// comes 50 ms after its last event, counting the connections it accepts.
    async fn late_terminator_provider() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let events: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
            transfer-encoding: chunked\r\n\r\n\
            f\r\ndata: {\"n\":1}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n";
        let (port, accepted) =
            http1::tests::loopback_provider(vec![(events, 50), (b"0\r\n\r\n", 0)], false).await;
        (format!("http://127.0.0.1:{port}/v1"), accepted)
    }

    #[tokio::test]
    async fn an_event_larger_than_accepted_ends_the_stream_without_waiting_for_more() {
        // One event that never ends, on an answer that says more is coming: refused once
        // it is over the bound, not buffered until the idle timeout (or without end).
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\ndata: ",
            MAX_EVENT_BYTES * 2
        )
        .into_bytes();
        answer.resize(answer.len() + MAX_EVENT_BYTES, b'x');
        let answer: &'static [u8] = Box::leak(answer.into_boxed_slice());
        let (port, _) = http1::tests::loopback_provider(vec![(answer, 60_000)], false).await;
        let endpoint = format!("http://127.0.0.1:{port}/v1");
        let started = std::time::Instant::now();
        let Ok(UpstreamResponse::Stream(mut events)) = Upstream::new()
            .send(
                &target(&endpoint),
                Operation::Chat,
                b"{}".to_vec(),
                true,
                &HeaderMap::new(),
            )
            .await
        else {
            panic!("a stream");
        };
        let error = events.next_event().await.expect_err("refused");
        assert!(
            matches!(&error, UpstreamError::Protocol(message) if message.contains("larger")),
            "{error:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "before the idle timeout"
        );
        assert!(matches!(events.next_event().await, Ok(None)));
    }

    async fn stream_to_its_end(upstream: &Upstream, endpoint: &str) -> EventStream {
        let answer = upstream
            .send(
                &target(endpoint),
                Operation::Chat,
                b"{}".to_vec(),
                true,
                &HeaderMap::new(),
            )
            .await;
        let Ok(UpstreamResponse::Stream(mut events)) = answer else {
            panic!("a stream");
        };
        let mut data = Vec::new();
        while let Some(event) = events.next_event().await.unwrap() {
            data.push(event.data);
            if data.last().is_some_and(|last| last == "[DONE]") {
                break;
            }
        }
        assert_eq!(data, ["{\"n\":1}", "[DONE]"]);
        events
    }

    #[tokio::test]
    async fn a_finished_stream_gives_its_connection_back_and_a_dropped_one_closes_it() {
        use std::sync::atomic::Ordering;
        let (endpoint, accepted) = late_terminator_provider().await;
        let upstream = Upstream::new();
        // Released after its end marker: the terminator is read meanwhile, the connection
        // serves the next stream.
        for _ in 0..3 {
            let mut events = stream_to_its_end(&upstream, &endpoint).await;
            events.release();
            drop(events);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Dropped (a client that hung up): the connection is closed, never reused; the
        // first of these two took the pooled one.
        for _ in 0..2 {
            drop(stream_to_its_end(&upstream, &endpoint).await);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        let mut events = stream_to_its_end(&upstream, &endpoint).await;
        events.release();
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn gemini_retry_info_gives_the_retry_delay() {
        let body = br#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        assert_eq!(retry_delay_in_body(body), Some(Duration::from_secs(37)));
        assert_eq!(
            retry_delay_in_body(b"{\"error\":{\"message\":\"x\"}}"),
            None
        );
        assert_eq!(retry_delay_in_body(b"not json"), None);
    }

    #[test]
    fn a_gemini_invalid_key_counts_as_a_provider_credential_failure() {
        let body = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#;
        assert_eq!(classified_status(ProviderKind::Gemini, 400, body), 401);
        assert_eq!(classified_status(ProviderKind::Gemini, 400, b"{}"), 400);
        assert_eq!(classified_status(ProviderKind::OpenAi, 400, body), 400);
    }
}
