//! Mock LLM providers on loopback, for Routerly's tests and benchmarks: OpenAI, Anthropic,
//! Google Gemini, Mistral, Ollama and Azure OpenAI.
//!
//! Layout: this file holds the public API ([`spawn`], [`MockServer`], [`MockOptions`]), the
//! shared server state (recorded requests, injected failures), the axum router, and the one
//! error type whose body takes each provider's native shape. `openai.rs` (which also serves
//! Azure's deployment URLs), `anthropic.rs`, `gemini.rs`, `mistral.rs` and `ollama.rs` each
//! hold one provider in the same order: validation, the conversation view, the response, the
//! stream. `common.rs` holds what all share: directives, the answer rules, the token rule.
//!
//! The mocks reject what the real APIs reject (with the same status, error shape and, where
//! known, message), because Routerly is judged by them. They never touch the network beyond
//! their own listener.
//!
//! # Deterministic answers
//!
//! The first matching rule answers:
//! 0. The last user message's first line is a JSON object with `candidates` (`[{model,
//!    description}]`) and `message`, as Routerly's `llm` routing policy sends: answer
//!    `{"routing":[{"model","point","reason"}]}` where each point is the share of the
//!    candidate's description words (three letters or more, case-insensitive) that the message
//!    contains, to two decimals. Directives quoted in such a message are not applied (they are
//!    for the client's model); `[mock:routing_invalid]` in it makes a one-line first ask get
//!    plain text, so the repair ask (more lines) is what succeeds.
//! 1. The request has tools, `tool_choice` is not `none`, and the last message is a plain user
//!    message (no tool results): call the tool `[mock:tool=NAME]` names (no call, so the later
//!    rules answer, when the request does not offer it), else the tool `tool_choice` names,
//!    else the first tool (every tool with `[mock:parallel]`). Arguments are the
//!    `[mock:arg.KEY=VALUE]` directives (string values, in order) when there are any, else
//!    come from the tool's schema: each property is
//!    `"Paris"` for string, `1` for number/integer, `true` for boolean, else `null`. The tool
//!    and argument directives let a test drive a real agent, which offers its own many tools
//!    and builds its own prompts, through one deterministic tool round trip. Ids are
//!    `call_<n>` (OpenAI and Azure, finish_reason `tool_calls`), `toolu_<n>` (Anthropic,
//!    stop_reason `tool_use`) or `mock<n, 5 digits>` (Mistral, whose ids are 9 letters and
//!    digits), `n` counting from 1 per server (reset by `/_mock/reset`). Gemini and Ollama
//!    calls carry no id, as the real APIs send none.
//! 2. JSON output was asked for (OpenAI `response_format` json_object/json_schema, Anthropic
//!    `output_format` or `output_config.format`): `{"answer":"mock"}`.
//! 3. The last message carries tool results: `Tool result: <result texts joined by "; ">`.
//! 4. The last user message has images: `I see <n> image(s).`
//! 5. Otherwise `Hello from mock <provider> <model>! You said: <text>` (provider `openai`,
//!    `anthropic`, `gemini`, `mistral`, `ollama` or `azure`; Azure's model is the deployment),
//!    where text is the
//!    last user message's text with directives removed, whitespace collapsed to single spaces,
//!    cut to its first 60 characters. `model` in every answer echoes the request's model.
//!
//! With Anthropic extended thinking enabled, a thinking block `Mock thinking.` (signature
//! `mock-signature`) comes before the answer.
//!
//! Before rule 1, on Anthropic: `[mock:web_search=QUERY]` in a plain user turn of a request
//! offering a `web_search_*` server tool makes the answer a search (`server_tool_use` and a
//! `web_search_tool_result` with one page, `https://search.example/<QUERY, non-alphanumerics
//! as ->`, titled `Mock result for QUERY`) followed by the text `What the web says about
//! QUERY.`, which cites that page (`web_search_result_location`), plain and streamed. On
//! Gemini, the same directive in a request offering `googleSearch` answers
//! `Searched: café — 東京. What the web says about QUERY.` grounded on that page: the
//! finishing candidate's `groundingMetadata` holds the query, the page as a grounding chunk
//! and a support of the last sentence in UTF-8 byte offsets, as Gemini gives them.
//!
//! # Usage (the token rule)
//!
//! Input tokens = ceil(counted bytes / 4). Counted bytes are: the text of every message (string
//! contents and `text` parts or blocks; images count 0), the system prompt (Anthropic `system`;
//! OpenAI system/developer messages are messages), tool-call payloads (OpenAI `arguments`
//! strings, Anthropic `tool_use.input` as compact JSON), tool-result texts, and the compact JSON
//! of the request's `tools` array. `/v1/messages/count_tokens` uses the same function.
//! Output tokens = whitespace-separated words of the answer (tool calls: 10), plus the words
//! of the thinking text when thinking is enabled.
//! Gemini counts the same bytes of `contents` and `systemInstruction` (function-call `args` and
//! function-response `response` as compact JSON) and of its `tools` array; Ollama and Mistral
//! count like OpenAI (Ollama's tool `arguments` objects as compact JSON). Usage fields are each
//! provider's own: Gemini `usageMetadata`, Ollama `prompt_eval_count`/`eval_count`.
//! `[mock:cached=N]` reports N cached input tokens (OpenAI `prompt_tokens_details.cached_tokens`,
//! inside `prompt_tokens`; Anthropic `cache_read_input_tokens`; Gemini
//! `cachedContentTokenCount`), `[mock:cache_write=N]` reports
//! Anthropic `cache_creation_input_tokens`. Anthropic's `input_tokens` excludes both, as the
//! real API does: it is the estimate minus cached minus cache-write tokens (never below 0).
//!
//! # Directives
//!
//! Read from the caller's last turn (OpenAI: the last `user` or `tool` message; Anthropic: the
//! last `user` message, its text and tool-result blocks):
//! `[mock:status=NNN]` answers that status with the provider's error body (429 adds
//! `retry-after: 1` where the provider sends that header, and Gemini's `RetryInfo` detail with
//! `retryDelay: "1s"` instead; Anthropic 529 is `overloaded_error`), `[mock:delay_ms=N]` waits before the
//! response head, `[mock:chunk_delay_ms=N]` waits between stream events, `[mock:die_after=N]`
//! sends N stream events then drops the connection (no `[DONE]`/`message_stop`),
//! `[mock:garbage]` answers 200 with a body that is not JSON (garbage SSE when streaming),
//! `[mock:parallel]`, `[mock:tool=NAME]`, `[mock:arg.KEY=VALUE]`, `[mock:cached=N]`,
//! `[mock:cache_write=N]` as above.
//!
//! # Control endpoints
//!
//! Each mock also serves, without authentication: `POST /_mock/fail {"count":N,"status":S}`
//! (like [`MockServer::fail_next`]), `GET /_mock/requests` (the recorded requests as a JSON
//! array), `POST /_mock/reset` (forget recorded requests and pending failures, restart ids).

#![warn(missing_docs)]

mod anthropic;
mod common;
mod gemini;
mod mistral;
mod ollama;
mod openai;
mod responses;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Which provider a mock imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockKind {
    /// The OpenAI API (`/v1/chat/completions`, `/v1/responses`, `/v1/models`, `/v1/embeddings`).
    OpenAi,
    /// The Anthropic Messages API (`/v1/messages`, `/v1/messages/count_tokens`, `/v1/models`).
    Anthropic,
    /// The Gemini API (`/v1beta/models/{model}:generateContent`, `:streamGenerateContent`,
    /// `:countTokens`, `:batchEmbedContents`, `/v1beta/models`).
    Gemini,
    /// Mistral's API (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`).
    Mistral,
    /// Ollama's native API (`/api/chat`, `/api/embed`, `/api/tags`, `/api/version`).
    Ollama,
    /// Azure OpenAI (`/openai/deployments/{deployment}/chat/completions?api-version=…` and
    /// `…/embeddings`).
    Azure,
}

impl MockKind {
    /// Every kind, in the order the binary starts them.
    pub const ALL: [MockKind; 6] = [
        MockKind::OpenAi,
        MockKind::Anthropic,
        MockKind::Gemini,
        MockKind::Mistral,
        MockKind::Ollama,
        MockKind::Azure,
    ];

    /// The provider's lowercase name, as it appears in answers.
    pub fn name(self) -> &'static str {
        match self {
            MockKind::OpenAi => "openai",
            MockKind::Anthropic => "anthropic",
            MockKind::Gemini => "gemini",
            MockKind::Mistral => "mistral",
            MockKind::Ollama => "ollama",
            MockKind::Azure => "azure",
        }
    }
}

/// How a mock is started.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// The credential every API request must carry; `None` accepts any (or none).
    pub api_key: Option<String>,
    /// Address to bind; loopback by default.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Model ids listed by `GET /v1/models`; empty lists a default set for the provider.
    pub models: Vec<String>,
    /// How many recent requests are kept for [`MockServer::requests`]; 0 records nothing.
    pub record_limit: usize,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            api_key: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            models: Vec::new(),
            record_limit: 1000,
        }
    }
}

/// One request the mock received, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The query string, if any (e.g. `beta=true`).
    pub query: Option<String>,
    /// Headers by lowercase name; repeated headers are joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON; `null` when empty, a JSON string holding the raw text when not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The value of header `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A running mock; dropping it stops accepting connections.
pub struct MockServer {
    /// The bound address.
    pub addr: SocketAddr,
    state: Arc<MockState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl MockServer {
    /// The base URL as the provider's official SDK takes it: `http://HOST:PORT/v1` for OpenAI,
    /// `http://HOST:PORT` for the others (Anthropic, Gemini, Mistral's `server_url`, Ollama's
    /// host, Azure's endpoint).
    pub fn base_url(&self) -> String {
        match self.state.kind {
            MockKind::OpenAi => format!("http://{}/v1", self.addr),
            MockKind::Anthropic
            | MockKind::Gemini
            | MockKind::Mistral
            | MockKind::Ollama
            | MockKind::Azure => format!("http://{}", self.addr),
        }
    }

    /// Which provider this mock imitates.
    pub fn kind(&self) -> MockKind {
        self.state.kind
    }

    /// The recorded requests, oldest first (control requests are not recorded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorded_requests()
    }

    /// The next `count` chat requests answer `status` with the provider's error body
    /// (429 adds `retry-after: 1`), before any validation.
    pub fn fail_next(&self, count: usize, status: u16) {
        self.state.fail_next(count, status);
    }

    /// Forgets recorded requests and pending failures and restarts tool-call ids.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops accepting connections and lets open ones finish.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a mock on `options.host:options.port` (127.0.0.1:0 by default).
///
/// # Panics
/// When the address cannot be bound; use [`try_spawn`] to handle that.
pub async fn spawn(kind: MockKind, options: MockOptions) -> MockServer {
    try_spawn(kind, options)
        .await
        .expect("bind the mock provider's listener")
}

/// Starts a mock, returning the bind error instead of panicking.
pub async fn try_spawn(kind: MockKind, options: MockOptions) -> std::io::Result<MockServer> {
    let listener = tokio::net::TcpListener::bind((options.host, options.port)).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(MockState::new(kind, options));
    let (shutdown, shutdown_signal) = oneshot::channel::<()>();
    // Nagle's algorithm meeting delayed ACKs would add ~40 ms to every streamed event.
    let listener = listener.tap_io(|tcp_stream| {
        let _ = tcp_stream.set_nodelay(true);
    });
    let app = router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown_signal.await;
            })
            .await;
    });
    Ok(MockServer {
        addr,
        state,
        shutdown: Some(shutdown),
    })
}

pub(crate) struct MockState {
    pub(crate) kind: MockKind,
    api_key: Option<String>,
    pub(crate) models: Vec<String>,
    record_limit: usize,
    records: Mutex<VecDeque<Record>>,
    fail_count: AtomicUsize,
    fail_status: AtomicU16,
    next_call_id: AtomicU64,
    next_response_id: AtomicU64,
}

/// A recorded request as kept on the hot path: cheap to store, converted when asked for.
struct Record {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Arc<Value>,
}

impl MockState {
    fn new(kind: MockKind, options: MockOptions) -> Self {
        let models = if options.models.is_empty() {
            let defaults: &[&str] = match kind {
                MockKind::OpenAi => &["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"],
                MockKind::Anthropic => {
                    &["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-7"]
                }
                MockKind::Gemini => &["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"],
                MockKind::Mistral => &[
                    "mistral-small-latest",
                    "mistral-large-latest",
                    "magistral-medium-latest",
                ],
                MockKind::Ollama => &["llama3.2", "qwen3", "gemma3"],
                MockKind::Azure => &["gpt-4o", "gpt-4o-mini"],
            };
            defaults.iter().map(|model| (*model).to_owned()).collect()
        } else {
            options.models
        };
        MockState {
            kind,
            api_key: options.api_key,
            models,
            record_limit: options.record_limit,
            records: Mutex::new(VecDeque::new()),
            fail_count: AtomicUsize::new(0),
            fail_status: AtomicU16::new(500),
            next_call_id: AtomicU64::new(1),
            next_response_id: AtomicU64::new(1),
        }
    }

    fn record(&self, record: Record) {
        if self.record_limit == 0 {
            return;
        }
        let mut records = self.records.lock().expect("records lock is never poisoned");
        if records.len() >= self.record_limit {
            records.pop_front();
        }
        records.push_back(record);
    }

    fn recorded_requests(&self) -> Vec<RecordedRequest> {
        let records = self.records.lock().expect("records lock is never poisoned");
        records
            .iter()
            .map(|record| {
                let mut headers: BTreeMap<String, String> = BTreeMap::new();
                for (name, value) in &record.headers {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    headers
                        .entry(name.as_str().to_owned())
                        .and_modify(|joined| {
                            joined.push_str(", ");
                            joined.push_str(&value);
                        })
                        .or_insert(value);
                }
                RecordedRequest {
                    method: record.method.to_string(),
                    path: record.uri.path().to_owned(),
                    query: record.uri.query().map(str::to_owned),
                    headers,
                    body: (*record.body).clone(),
                }
            })
            .collect()
    }

    fn fail_next(&self, count: usize, status: u16) {
        self.fail_status.store(status, Ordering::SeqCst);
        self.fail_count.store(count, Ordering::SeqCst);
    }

    /// Takes one pending injected failure, if any.
    pub(crate) fn take_failure(&self) -> Option<u16> {
        let mut remaining = self.fail_count.load(Ordering::SeqCst);
        while remaining > 0 {
            match self.fail_count.compare_exchange_weak(
                remaining,
                remaining - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Some(self.fail_status.load(Ordering::SeqCst)),
                Err(actual) => remaining = actual,
            }
        }
        None
    }

    fn reset(&self) {
        self.records
            .lock()
            .expect("records lock is never poisoned")
            .clear();
        self.fail_count.store(0, Ordering::SeqCst);
        self.next_call_id.store(1, Ordering::SeqCst);
    }

    /// The next response number of this server, for message and completion ids.
    pub(crate) fn next_response_number(&self) -> u64 {
        self.next_response_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The next tool-call number of this server.
    pub(crate) fn next_call_number(&self) -> u64 {
        self.next_call_id.fetch_add(1, Ordering::Relaxed)
    }
}

fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/_mock/fail", post(control_fail))
        .route("/_mock/requests", get(control_requests))
        .route("/_mock/reset", post(control_reset))
        .fallback(handle_api)
        // Base64 images make large bodies; the real APIs accept tens of megabytes.
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(state)
}

#[derive(Deserialize)]
struct FailRequest {
    count: usize,
    status: u16,
}

async fn control_fail(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FailRequest>(&body) {
        Ok(fail) => {
            state.fail_next(fail.count, fail.status);
            json_response(StatusCode::OK, &json!({"ok": true}))
        }
        Err(error) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("expected {{\"count\":N,\"status\":S}}: {error}")}),
        ),
    }
}

async fn control_requests(State(state): State<Arc<MockState>>) -> Response {
    json_response(StatusCode::OK, &json!(state.recorded_requests()))
}

async fn control_reset(State(state): State<Arc<MockState>>) -> Response {
    state.reset();
    json_response(StatusCode::OK, &json!({"ok": true}))
}

/// What the API handlers need from the request headers, read before the headers are recorded.
pub(crate) struct RequestHead {
    pub authorized: bool,
    /// Some credential was sent, right or wrong (Gemini answers the two cases differently).
    pub credential_sent: bool,
    pub has_version: bool,
    pub beta: String,
}

fn read_head(state: &MockState, headers: &HeaderMap, uri: &Uri) -> RequestHead {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let header_value = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let x_api_key = header_value("x-api-key");
    // Gemini takes its key in a header or in the `key` query parameter.
    let goog_key = header_value("x-goog-api-key").or_else(|| {
        uri.query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("key="))
    });
    let azure_key = header_value("api-key");
    let presented = match state.kind {
        MockKind::OpenAi | MockKind::Mistral | MockKind::Ollama => bearer,
        MockKind::Anthropic => x_api_key.or(bearer),
        MockKind::Gemini => goog_key,
        MockKind::Azure => azure_key,
    };
    let authorized = match &state.api_key {
        None => true,
        Some(expected) => presented == Some(expected.as_str()),
    };
    let beta = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    RequestHead {
        authorized,
        credential_sent: presented.is_some(),
        has_version: headers.contains_key("anthropic-version"),
        beta,
    }
}

async fn handle_api(
    State(state): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let head = read_head(&state, &headers, &uri);
    let (body_value, body_is_json) = if body.is_empty() {
        (Value::Null, false)
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => (value, true),
            Err(_) => (
                Value::String(String::from_utf8_lossy(&body).into_owned()),
                false,
            ),
        }
    };
    let body_value = Arc::new(body_value);
    state.record(Record {
        method: method.clone(),
        uri: uri.clone(),
        headers,
        body: body_value.clone(),
    });
    let kind = state.kind;
    if !head.authorized {
        return unauthorized(kind, &head);
    }
    if kind == MockKind::Anthropic && !head.has_version {
        return ApiError::invalid("anthropic-version: header is required").into_response(kind);
    }
    let body = if body_is_json {
        Some(&*body_value)
    } else {
        None
    };
    let path = uri.path();
    match kind {
        MockKind::Gemini => return gemini::handle(&state, &method, path, uri.query(), body).await,
        MockKind::Mistral => return mistral::handle(&state, &method, path, body).await,
        MockKind::Ollama => return ollama::handle(&state, &method, path, body).await,
        MockKind::Azure => return openai::azure(&state, &method, path, uri.query(), body).await,
        MockKind::OpenAi | MockKind::Anthropic => {}
    }
    match (kind, &method, path) {
        (_, &Method::GET, "/v1/models") => list_models(&state),
        (_, &Method::GET, _) if path.starts_with("/v1/models/") => {
            get_model(&state, &path["/v1/models/".len()..])
        }
        (MockKind::OpenAi, &Method::POST, "/v1/chat/completions") => {
            openai::chat_completions(&state, body).await
        }
        (MockKind::OpenAi, &Method::POST, "/v1/embeddings") => openai::embeddings(body),
        (MockKind::OpenAi, &Method::POST, "/v1/responses") => responses::create(&state, body).await,
        (MockKind::Anthropic, &Method::POST, "/v1/messages") => {
            anthropic::messages(&state, &head, body).await
        }
        (MockKind::Anthropic, &Method::POST, "/v1/messages/count_tokens") => {
            anthropic::count_tokens(&head, body)
        }
        _ => not_found(kind, &method, path),
    }
}

fn list_models(state: &MockState) -> Response {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|id| model_object(state.kind, id))
        .collect();
    let body = match state.kind {
        MockKind::OpenAi => json!({"object": "list", "data": data}),
        _ => json!({
            "data": data,
            "has_more": false,
            "first_id": state.models.first(),
            "last_id": state.models.last(),
        }),
    };
    json_response(StatusCode::OK, &body)
}

fn get_model(state: &MockState, id: &str) -> Response {
    if state.models.iter().any(|model| model == id) {
        return json_response(StatusCode::OK, &model_object(state.kind, id));
    }
    let message = match state.kind {
        MockKind::OpenAi => format!("The model '{id}' does not exist"),
        _ => format!("model: {id}"),
    };
    let mut error = ApiError::new(404, message);
    if state.kind == MockKind::OpenAi {
        error = error.with_param("model").with_code("model_not_found");
    }
    error.into_response(state.kind)
}

fn model_object(kind: MockKind, id: &str) -> Value {
    match kind {
        MockKind::OpenAi => {
            json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "routerly-mock"})
        }
        _ => json!({
            "type": "model",
            "id": id,
            "display_name": id,
            "created_at": "2025-01-01T00:00:00Z",
        }),
    }
}

fn not_found(kind: MockKind, method: &Method, path: &str) -> Response {
    let message = match kind {
        MockKind::OpenAi => format!("Invalid URL ({method} {path})"),
        MockKind::Gemini => format!("Method not found: {method} {path}"),
        MockKind::Ollama => "404 page not found".to_owned(),
        MockKind::Anthropic | MockKind::Mistral | MockKind::Azure => "Not Found".to_owned(),
    };
    ApiError::new(404, message).into_response(kind)
}

/// The provider's answer to a missing or wrong credential. Gemini tells the two apart: no key
/// is 403 `PERMISSION_DENIED`, a wrong one 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`.
fn unauthorized(kind: MockKind, head: &RequestHead) -> Response {
    match kind {
        MockKind::Gemini if head.credential_sent => {
            ApiError::new(400, "API key not valid. Please pass a valid API key.")
                .with_code("API_KEY_INVALID")
                .into_response(kind)
        }
        MockKind::Gemini => ApiError::new(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        )
        .into_response(kind),
        _ => ApiError::for_status(kind, 401).into_response(kind),
    }
}

/// A streaming response of newline-delimited JSON (Ollama).
pub(crate) fn ndjson_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        body,
    )
        .into_response()
}

/// A response with a JSON body, written in one piece.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).expect("a JSON value always serializes");
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// A streaming response of server-sent events.
pub(crate) fn sse_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// An API error, rendered in the provider's native shape by [`ApiError::into_response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// A 400 for a request the API rejects.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    pub(crate) fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The provider's usual error for `status`, as injected failures answer.
    pub(crate) fn for_status(kind: MockKind, status: u16) -> Self {
        match (kind, status) {
            (MockKind::OpenAi, 401) => ApiError::new(
                401,
                "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            )
            .with_code("invalid_api_key"),
            (MockKind::OpenAi, 404) => ApiError::new(404, "The model does not exist or you do not have access to it.")
                .with_code("model_not_found"),
            (MockKind::OpenAi, 429) => ApiError::new(
                429,
                "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.",
            )
            .with_code("rate_limit_exceeded"),
            (MockKind::OpenAi, 500) => ApiError::new(
                500,
                "The server had an error while processing your request. Sorry about that!",
            ),
            (MockKind::OpenAi, 503) => ApiError::new(503, "The server is overloaded or not ready yet."),
            (MockKind::Anthropic, 401) => ApiError::new(401, "invalid x-api-key"),
            (MockKind::Anthropic, 403) => {
                ApiError::new(403, "Your API key does not have permission to use the specified resource.")
            }
            (MockKind::Anthropic, 404) => ApiError::new(404, "The requested resource could not be found."),
            (MockKind::Anthropic, 429) => ApiError::new(
                429,
                "This request would exceed the rate limit for your organization of 50 requests per minute.",
            ),
            (MockKind::Anthropic, 500) => ApiError::new(500, "Internal server error"),
            (MockKind::Anthropic, 529) => ApiError::new(529, "Overloaded"),
            (MockKind::Gemini, 429) => ApiError::new(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
            ),
            (MockKind::Gemini, 500) => ApiError::new(
                500,
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
            ),
            (MockKind::Gemini, 503) => ApiError::new(503, "The model is overloaded. Please try again later."),
            (MockKind::Mistral, 401) => ApiError::new(401, "Unauthorized"),
            (MockKind::Mistral, 429) => ApiError::new(429, "Requests rate limit exceeded"),
            (MockKind::Ollama, 401) => ApiError::new(401, "unauthorized"),
            (MockKind::Azure, 401) => ApiError::new(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
            ),
            (MockKind::Azure, 429) => ApiError::new(
                429,
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second.",
            ),
            (_, status) => ApiError::new(status, format!("Mock error with status {status}")),
        }
    }

    /// The `type` of the error body, one match per provider (Gemini's `status` name).
    fn error_type(&self, kind: MockKind) -> &'static str {
        match (kind, self.status) {
            (MockKind::OpenAi | MockKind::Azure, 429) => "requests",
            (MockKind::OpenAi | MockKind::Azure, 500..) => "server_error",
            (MockKind::OpenAi | MockKind::Azure, _) => "invalid_request_error",
            (MockKind::Gemini, 400) => "INVALID_ARGUMENT",
            (MockKind::Gemini, 401) => "UNAUTHENTICATED",
            (MockKind::Gemini, 403) => "PERMISSION_DENIED",
            (MockKind::Gemini, 404) => "NOT_FOUND",
            (MockKind::Gemini, 429) => "RESOURCE_EXHAUSTED",
            (MockKind::Gemini, 503) => "UNAVAILABLE",
            (MockKind::Gemini, 504) => "DEADLINE_EXCEEDED",
            (MockKind::Gemini, 500..) => "INTERNAL",
            (MockKind::Gemini, _) => "FAILED_PRECONDITION",
            (MockKind::Mistral, 429) => "rate_limited",
            (MockKind::Mistral, 500..) => "internal_server_error",
            (MockKind::Mistral, _) => "invalid_request_message_error",
            (MockKind::Ollama, _) => "",
            (MockKind::Anthropic, 401) => "authentication_error",
            (MockKind::Anthropic, 402) => "billing_error",
            (MockKind::Anthropic, 403) => "permission_error",
            (MockKind::Anthropic, 404) => "not_found_error",
            (MockKind::Anthropic, 413) => "request_too_large",
            (MockKind::Anthropic, 429) => "rate_limit_error",
            (MockKind::Anthropic, 504) => "timeout_error",
            (MockKind::Anthropic, 529) => "overloaded_error",
            (MockKind::Anthropic, 500..) => "api_error",
            (MockKind::Anthropic, _) => "invalid_request_error",
        }
    }

    /// The provider's native error response.
    pub(crate) fn into_response(self, kind: MockKind) -> Response {
        let error_type = self.error_type(kind);
        let body = match kind {
            MockKind::OpenAi => json!({"error": {
                "message": self.message,
                "type": error_type,
                "param": self.param,
                "code": self.code,
            }}),
            MockKind::Anthropic => json!({
                "type": "error",
                "error": {"type": error_type, "message": self.message},
                "request_id": "req_mock",
            }),
            MockKind::Gemini => {
                let mut details = Vec::new();
                if let Some(reason) = self.code {
                    details.push(json!({
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": reason,
                        "domain": "googleapis.com",
                    }));
                }
                if self.status == 429 {
                    details.push(json!({
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": "1s",
                    }));
                }
                let mut error =
                    json!({"code": self.status, "message": self.message, "status": error_type});
                if !details.is_empty() {
                    error["details"] = Value::Array(details);
                }
                json!({"error": error})
            }
            // Mistral's gateway answers auth and rate limits with a bare message.
            MockKind::Mistral if matches!(self.status, 401 | 429) => {
                json!({"message": self.message, "request_id": "mock"})
            }
            MockKind::Mistral => json!({
                "object": "error",
                "message": self.message,
                "type": error_type,
                "param": self.param,
                "code": self.code,
            }),
            MockKind::Ollama => json!({"error": self.message}),
            // Azure answers its own failures in its resource shape; request errors are OpenAI's.
            MockKind::Azure if self.status != 400 => json!({"error": {
                "code": self.code.map_or_else(|| self.status.to_string(), str::to_owned),
                "message": self.message,
            }}),
            MockKind::Azure => json!({"error": {
                "message": self.message,
                "type": error_type,
                "param": self.param,
                "code": self.code,
            }}),
        };
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, &body);
        // Gemini and Ollama send no retry-after header (Gemini's delay is in the body).
        if self.status == 429
            && matches!(
                kind,
                MockKind::OpenAi | MockKind::Anthropic | MockKind::Azure
            )
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if kind == MockKind::Anthropic {
            response.headers_mut().insert(
                "x-should-retry",
                HeaderValue::from_static(should_retry(self.status)),
            );
        }
        response
    }
}

fn should_retry(status: u16) -> &'static str {
    if status == 408 || status == 409 || status == 429 || status >= 500 {
        "true"
    } else {
        "false"
    }
}

/// The stream of prepared events: optional pauses between them, and an abrupt end after
/// `die_after` events (the body errors, so the server drops the connection mid-stream).
pub(crate) fn event_body(
    events: Vec<Bytes>,
    chunk_delay_ms: u64,
    die_after: Option<usize>,
) -> Body {
    use futures_util::StreamExt;
    let (events, dies) = match die_after {
        Some(count) => {
            let keep = count.min(events.len().saturating_sub(1));
            (events.into_iter().take(keep).collect::<Vec<_>>(), true)
        }
        None => (events, false),
    };
    let delay = std::time::Duration::from_millis(chunk_delay_ms);
    let events = futures_util::stream::iter(events.into_iter().enumerate()).then(
        move |(index, event)| async move {
            if index > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<Bytes, std::io::Error>(event)
        },
    );
    if !dies {
        return Body::from_stream(events);
    }
    let death = futures_util::stream::once(async {
        // Let the server flush what was sent before the connection is dropped.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "routerly-mock: die_after",
        ))
    });
    Body::from_stream(events.chain(death))
}
