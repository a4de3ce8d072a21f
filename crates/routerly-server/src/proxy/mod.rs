//! The proxy surfaces: `/v1/chat/completions`, `/v1/messages`, `/v1/responses`,
//! `/v1/embeddings`, `/v1/messages/count_tokens` and `/v1/models`.
//!
//! One path serves both client formats: authenticate the project token, decode the body
//! into the canonical model, list the candidate models, then try them in order. Each
//! attempt sends the client's own body (model replaced) when the provider speaks the
//! client's format, and the canonical request encoded for the provider otherwise. The
//! answer comes back the same way: passed through with the model replaced, or decoded
//! and re-encoded. Every call that passed authentication leaves one usage record.
//!
//! The Responses surface adds conversation state (see [`responses`]): `previous_response_id`
//! is resolved from Routerly's store before the attempts, and each answer is stored after.
//! OpenAI models get the Responses body itself; others the canonical request. Embeddings
//! (see [`embeddings`]) go to embedding-capable models in OpenAI's shape or converted to the
//! provider's own embeddings API.

mod budget;
mod candidates;
mod embeddings;
mod error;
#[cfg(not(feature = "fuzzing"))]
use routerly_core::members;
/// The one-pass member scan, public here for the fuzz targets (`fuzz/`).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use routerly_core::members;
pub(crate) mod probe;
mod record;
mod relay;
pub(crate) mod responses;
mod route;
mod tokenize;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use routerly_core::canonical::{ChatRequest, ErrorBody, ErrorKind};
use routerly_core::config::{ModelConfig, Project, ProjectToken, ProviderKind};
use routerly_core::estimate;
use routerly_core::usage::{Outcome, Surface};
use routerly_core::wire::{self, WireFormat};
use routerly_providers::{Disposition, Operation, Target, UpstreamError, UpstreamResponse};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::state::App;
use crate::store::config::Snapshot;

pub use error::ProxyError;
use record::{CallRecord, PendingCall};

/// Header naming the model that served.
pub const MODEL_HEADER: HeaderName = HeaderName::from_static("x-routerly-model");
/// Header carrying the request's trace id.
pub const TRACE_ID_HEADER: HeaderName = HeaderName::from_static("x-routerly-trace-id");
/// Header with the time spent in Routerly (excluding the provider), in milliseconds, on
/// non-streamed answers; the usage record's `overhead_ms`.
pub const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-routerly-overhead-ms");
/// Header saying how `count_tokens` counted: `provider` (the provider counted), `tokenizer`
/// (the model's own tokenizer, in Routerly) or `estimate` (the documented estimate of
/// `routerly_core::estimate`).
pub const TOKEN_COUNT_HEADER: HeaderName = HeaderName::from_static("x-routerly-token-count");
/// Header naming what a translated call left out of the provider's request (parameters the
/// target format has no slot for, tools it cannot run), comma-separated; absent when
/// nothing was.
pub const DROPPED_HEADER: HeaderName = HeaderName::from_static("x-routerly-dropped");
/// The longest `x-routerly-dropped` value; a longer list is cut and ends with `...`.
const MAX_DROPPED_HEADER: usize = 2048;
/// Header with comma-separated tags for spend attribution.
pub const TAGS_HEADER: &str = "x-routerly-tags";

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(app): State<App>, request: Request) -> Response {
    complete(app, Surface::ChatCompletions, request).await
}

/// `POST /v1/messages`.
pub async fn messages(State(app): State<App>, request: Request) -> Response {
    complete(app, Surface::Messages, request).await
}

/// `POST /v1/responses`.
pub async fn responses(State(app): State<App>, request: Request) -> Response {
    complete(app, Surface::Responses, request).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(app): State<App>, request: Request) -> Response {
    complete(app, Surface::Embeddings, request).await
}

/// The wire format of a client surface (embeddings answer errors in OpenAI's shape).
fn surface_format(surface: Surface) -> WireFormat {
    match surface {
        Surface::ChatCompletions | Surface::Embeddings => WireFormat::OpenAiChat,
        Surface::Messages => WireFormat::AnthropicMessages,
        Surface::Responses => WireFormat::OpenAiResponses,
    }
}

/// The format `model` is spoken to in for a call on `surface`: OpenAI takes the Responses
/// format itself, else the provider's chat format (for embeddings, whose bodies
/// [`embeddings`] converts, this is the format of the provider's errors).
fn provider_format_for(surface: Surface, model: &ModelConfig) -> WireFormat {
    match surface {
        Surface::Responses if model.provider == ProviderKind::OpenAi => WireFormat::OpenAiResponses,
        _ => model.provider.wire_format(),
    }
}

/// The provider operation of a call on `surface` in `provider_format`.
fn operation_for(surface: Surface, provider_format: WireFormat) -> Operation {
    match surface {
        Surface::Embeddings => Operation::Embeddings,
        _ if routerly_core::wire::is_responses(provider_format) => Operation::Responses,
        _ => Operation::Chat,
    }
}

/// What a surface adds to the common path.
enum SurfaceCall {
    /// Chat completions and messages: nothing.
    Plain,
    /// The Responses API's conversation.
    Responses(responses::Conversation),
    /// Embeddings.
    Embeddings,
}

/// Any other `/v1/…` path: an OpenAI-shaped 404.
pub async fn unknown_route(uri: http::Uri) -> Response {
    ProxyError::from_body(
        WireFormat::OpenAiChat,
        ErrorBody::new(
            ErrorKind::NotFound,
            format!(
                "Unknown request URL: {}. Please check the URL and method.",
                uri.path()
            ),
        )
        .with_code("unknown_url"),
    )
    .into_response()
}

/// A project token that passed authentication.
struct Caller<'s> {
    project: &'s Project,
    token: &'s ProjectToken,
}

fn authenticate<'s>(
    snapshot: &'s Snapshot,
    headers: &HeaderMap,
    format: WireFormat,
) -> Result<Caller<'s>, ProxyError> {
    let unauthorized = |message: &str| ProxyError::new(format, ErrorKind::Authentication, message);
    let presented = bearer_token(headers).ok_or_else(|| {
        unauthorized(
            "Missing API key: send your Routerly project token as `Authorization: Bearer sk-lr-…` or in `x-api-key`.",
        )
    })?;
    let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let (project, token) = snapshot
        .token_by_hash(&hash)
        .ok_or_else(|| unauthorized("Invalid API key: this token is not known to Routerly."))?;
    if token.revoked_at.is_some() {
        return Err(unauthorized("This token has been revoked."));
    }
    if let Some(expires_at) = token.expires_at
        && expires_at <= chrono::Utc::now()
    {
        return Err(unauthorized(&format!(
            "This token expired at {}.",
            expires_at.to_rfc3339()
        )));
    }
    Ok(Caller { project, token })
}

/// The token from `Authorization: Bearer …` or `x-api-key`.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    {
        let value = value.trim();
        if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
            return Some(value[7..].trim());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The error code of a call refused because its usage could not be recorded.
pub const USAGE_UNAVAILABLE: &str = "usage_unavailable";

/// The refusal while PostgreSQL is unreachable and the usage buffers are full.
fn usage_unavailable(format: WireFormat) -> ProxyError {
    ProxyError::from_body(
        format,
        ErrorBody::new(
            ErrorKind::Unavailable,
            "Usage cannot be recorded right now (the usage database is unreachable and the local buffers are full); try again shortly.",
        )
        .with_code(USAGE_UNAVAILABLE),
    )
    .with_retry_after(Some(Duration::from_secs(5)))
}

/// Reads a request body of at most `limit` bytes through the shared
/// [`BodyBudget`](crate::admission::BodyBudget) ([`crate::admission::read_body`]), holding
/// its bytes for as long as the returned permit lives; a refusal in the client's format
/// (413, 503 with `retry-after`, 408 after `body_timeout_ms` of silence, 400).
async fn read_body(
    app: &crate::state::AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    format: WireFormat,
) -> Result<(Bytes, crate::admission::BodyPermit), ProxyError> {
    use crate::admission::BodyError;
    let idle = Duration::from_millis(app.store.snapshot().settings.connections.body_timeout_ms);
    crate::admission::read_body(&app.body_budget, headers, body, limit, idle)
        .await
        .map_err(|error| {
            let (kind, status, retry_after) = match error {
                BodyError::TooLarge(_) => (ErrorKind::RequestTooLarge, None, None),
                BodyError::OverBudget => (
                    ErrorKind::Unavailable,
                    None,
                    Some(crate::admission::OVER_BUDGET_RETRY_AFTER),
                ),
                BodyError::Stalled(_) => (ErrorKind::InvalidRequest, Some(408), None),
                BodyError::Unreadable => (ErrorKind::InvalidRequest, None, None),
            };
            let mut refusal =
                ProxyError::new(format, kind, error.message()).with_retry_after(retry_after);
            if let Some(status) = status {
                refusal.status = status;
            }
            refusal
        })
}

/// Parses the body as a JSON object.
fn parse_json_object(bytes: &[u8], format: WireFormat) -> Result<Value, ProxyError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        ProxyError::new(
            format,
            ErrorKind::InvalidRequest,
            format!("The request body is not valid JSON: {error}."),
        )
    })?;
    if !value.is_object() {
        return Err(ProxyError::new(
            format,
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        ));
    }
    Ok(value)
}

fn decode_request(format: WireFormat, body: &Value) -> Result<ChatRequest, ProxyError> {
    wire::decode_request(format, body)
        .map_err(|error| ProxyError::from_body(format, error.to_error_body()))
}

/// The body to send to `model`'s provider: the client's own body with the model
/// replaced when formats match (rewritten from the client's `original` text when it is
/// given, without serializing the tree again), the canonical request encoded otherwise.
fn upstream_body(
    client_format: WireFormat,
    provider_format: WireFormat,
    raw: &mut Value,
    original: Option<&[u8]>,
    request: &ChatRequest,
    model: &ModelConfig,
) -> Result<Vec<u8>, ProxyError> {
    if provider_format == client_format {
        let usage_in_stream =
            routerly_core::wire::asks_for_stream_usage(client_format) && request.stream;
        if let Some(original) = original {
            let model_name = members::json_string(&model.upstream_model);
            let mut members = vec![("model", model_name.as_str())];
            if usage_in_stream {
                members.push(("stream_options", r#"{"include_usage":true}"#));
            }
            if let Some(body) = members::with_members(original, &members) {
                return Ok(body);
            }
        }
        raw["model"] = Value::String(model.upstream_model.clone());
        if usage_in_stream {
            // Ask for usage in the stream; the relay strips it if the client did not.
            raw["stream_options"] = json!({ "include_usage": true });
        }
        return Ok(serde_json::to_vec(raw).expect("a JSON value serializes"));
    }
    let body =
        wire::encode_request(provider_format, request, &model.upstream_model).map_err(|error| {
            let mut body = error.to_error_body();
            body.message = format!(
                "{} (model `{}`, {})",
                body.message,
                model.id,
                model.provider.as_str()
            );
            ProxyError::from_body(client_format, body)
        })?;
    Ok(serde_json::to_vec(&body).expect("a JSON value serializes"))
}

/// Headers of the client's request that go on to the provider: the client format's beta
/// header (`anthropic-beta`, `OpenAI-Beta`) when the provider speaks that format.
fn passthrough_headers(
    headers: &HeaderMap,
    client_format: WireFormat,
    provider_format: WireFormat,
) -> HeaderMap {
    let mut forwarded = HeaderMap::new();
    if let Some(name) = wire::beta_header(client_format)
        && wire::beta_header(provider_format) == Some(name)
    {
        for value in headers.get_all(name) {
            forwarded.append(HeaderName::from_static(name), value.clone());
        }
    }
    forwarded
}

/// Where and how a call to `model` goes: the one place its URL, key and timeouts (settings,
/// then the model's, then the project's) are put together.
fn target_for<'s>(
    snapshot: &'s Snapshot,
    project: &Project,
    model: &'s ModelConfig,
    query: Option<&'s str>,
) -> Target<'s> {
    Target {
        provider: model.provider,
        endpoint: &model.endpoint,
        upstream_model: &model.upstream_model,
        api_version: model.api_version.as_deref(),
        api_key: snapshot.model_api_key(&model.id),
        timeouts: project
            .timeouts
            .apply(model.timeouts.apply(snapshot.settings.timeouts)),
        query,
    }
}

/// A provider's error for a request it rejected, in the client's format, with the
/// provider's status: passed through when formats match, translated otherwise.
fn provider_client_error(
    client_format: WireFormat,
    provider_format: WireFormat,
    error: &UpstreamError,
) -> Response {
    let UpstreamError::Status { status, body, .. } = error else {
        unreachable!("only status errors are the client's fault");
    };
    let status_code = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
    if client_format == provider_format && serde_json::from_slice::<Value>(body).is_ok() {
        let mut response = Response::new(Body::from(body.clone()));
        *response.status_mut() = status_code;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    }
    let canonical = wire::decode_error(provider_format, *status, body);
    let mut proxy_error = ProxyError::from_body(client_format, canonical);
    proxy_error.status = *status;
    proxy_error.into_response()
}

/// The error answered when every candidate failed, from the last failure.
fn exhausted_error(format: WireFormat, last: &UpstreamError, tried: usize) -> ProxyError {
    let which = if tried == 1 {
        "The provider"
    } else {
        "Every candidate provider"
    };
    match last {
        UpstreamError::Timeout(phase) => ProxyError::new(
            format,
            ErrorKind::Timeout,
            format!("{which} timed out ({phase})."),
        ),
        UpstreamError::Status {
            status: 429,
            retry_after,
            ..
        } => ProxyError::new(
            format,
            ErrorKind::RateLimit,
            format!("{which} is rate limited; try again later."),
        )
        .with_retry_after(*retry_after),
        UpstreamError::Status {
            status: 529,
            retry_after,
            ..
        } => ProxyError::new(
            format,
            ErrorKind::Overloaded,
            format!("{which} is overloaded; try again later."),
        )
        .with_retry_after(*retry_after),
        UpstreamError::Status { status, .. } => ProxyError::new(
            format,
            ErrorKind::BadGateway,
            format!("{which} failed (last answer: HTTP {status})."),
        ),
        UpstreamError::Connect(_) => ProxyError::new(
            format,
            ErrorKind::BadGateway,
            format!("{which} could not be reached."),
        ),
        UpstreamError::Protocol(_) => ProxyError::new(
            format,
            ErrorKind::BadGateway,
            format!("{which} sent an answer Routerly could not read."),
        ),
    }
}

fn tags(headers: &HeaderMap) -> Vec<String> {
    headers
        .get(TAGS_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(',')
                .map(str::trim)
                .filter(|tag| !tag.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn with_routing_headers(
    mut response: Response,
    model_id: Option<&str>,
    trace_id: &str,
) -> Response {
    let headers = response.headers_mut();
    if let Some(model_id) = model_id
        && let Ok(value) = HeaderValue::from_str(model_id)
    {
        headers.insert(MODEL_HEADER, value);
    }
    // `count_tokens` has no trace; an empty header would name none.
    if !trace_id.is_empty()
        && let Ok(value) = HeaderValue::from_str(trace_id)
    {
        headers.insert(TRACE_ID_HEADER, value);
    }
    response
}

/// Names `dropped` in the `x-routerly-dropped` header: printable ASCII only (a tool type
/// is the client's text), at most [`MAX_DROPPED_HEADER`] bytes (cut with `...`).
fn with_dropped_header(response: &mut Response, dropped: &[String]) {
    if dropped.is_empty() {
        return;
    }
    let mut value: String = dropped
        .join(", ")
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if value.len() > MAX_DROPPED_HEADER {
        value.truncate(MAX_DROPPED_HEADER - 3);
        value.push_str("...");
    }
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(DROPPED_HEADER, value);
    }
}

/// Serves one completion request on `surface`.
async fn complete(app: App, surface: Surface, request: Request) -> Response {
    let started = Instant::now();
    // The request's own parts: extracting the headers and the query would copy them.
    let (parts, body) = request.into_parts();
    let query = parts.uri.query();
    let headers = &parts.headers;
    let format = surface_format(surface);
    let snapshot = app.store.snapshot();
    let caller = match authenticate(&snapshot, headers, format) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    // Shared mode with PostgreSQL away and both of its usage buffers full: a call now could
    // not be accounted for every replica to see, so none is made (one atomic load).
    if app
        .usage_shipper
        .as_ref()
        .is_some_and(|shipper| shipper.is_full())
    {
        return usage_unavailable(format).into_response();
    }
    app.metrics.call_started();
    let record = CallRecord::begin(
        started,
        surface,
        caller.project,
        caller.token,
        tags(headers),
    );
    let trace_id = record.trace_id().to_owned();
    // If the client hangs up while this waits, the guard records the call as cancelled.
    let mut pending = PendingCall::new(record, app.usage.clone());
    let served = serve(
        &app,
        &snapshot,
        &caller,
        query,
        headers,
        body,
        pending.record(),
    )
    .await;
    let record = pending.settle();
    match served {
        Ok(response) => response,
        Err(mut error) => {
            error.trace_id = Some(trace_id.clone());
            let outcome = if budget::is_budget_refusal(&error) {
                Outcome::BudgetExceeded
            } else if error.body.kind == ErrorKind::Timeout {
                Outcome::Timeout
            } else {
                Outcome::Error
            };
            let usage_record = record.finish_error(outcome, error.status, &error.body.message);
            app.usage.record(usage_record).await;
            with_routing_headers(error.into_response(), None, &trace_id)
        }
    }
}

/// Decodes, picks candidates and dispatches; every early return is an error to record.
async fn serve(
    app: &Arc<crate::state::AppState>,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    record: &mut CallRecord,
) -> Result<Response, ProxyError> {
    let surface = record.surface();
    let format = surface_format(surface);
    let (bytes, _body_permit) =
        read_body(app, headers, body, snapshot.settings.max_body_bytes, format).await?;
    let mut raw = parse_json_object(&bytes, format)?;
    // Plain calls send the client's own text on (Responses calls rewrite the request).
    let original = matches!(surface, Surface::ChatCompletions | Surface::Messages).then_some(bytes);
    let (request, surface_call) = match surface {
        Surface::Embeddings => (embeddings::decode(&raw)?, SurfaceCall::Embeddings),
        Surface::Responses => {
            let mut request = decode_request(format, &raw)?;
            let conversation =
                responses::prepare(app, caller, &mut raw, &mut request, format).await?;
            (request, SurfaceCall::Responses(conversation))
        }
        Surface::ChatCompletions | Surface::Messages => {
            (decode_request(format, &raw)?, SurfaceCall::Plain)
        }
    };
    record.set_request(&request);
    let mut candidates =
        candidates::resolve(snapshot, caller.project, caller.token, &request.model)
            .map_err(|error| ProxyError::from_body(format, error))?;
    if let SurfaceCall::Embeddings = surface_call {
        candidates = embeddings::candidates(candidates, &request.model)?;
    }
    let resolved: Vec<&str> = candidates.iter().map(|model| model.id.as_str()).collect();
    let candidates =
        budget::admit(app, snapshot, caller, &request, candidates, record, format).await?;
    let candidates = route::rank(
        app, snapshot, caller, headers, &request, &resolved, candidates, record, format,
    )
    .await?;

    let mut last_error = None;
    let mut pending_store = None;
    let deadline = record.started()
        + std::time::Duration::from_millis(
            caller
                .project
                .timeouts
                .apply(snapshot.settings.timeouts)
                .first_token_ms,
        );
    let mut plan = crate::routing::AttemptPlan::new(
        &app.routing,
        &candidates,
        caller.project.routing.retries,
        deadline,
    );
    while let Some(model) = plan.next() {
        let provider_format = provider_format_for(surface, model);
        if let SurfaceCall::Responses(_) = surface_call
            && provider_format != format
            && let Some(feature) = routerly_core::wire::responses::openai_only_feature(&raw)
        {
            let error = ProxyError::from_body(
                format,
                ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "The model `{}` ({}) cannot serve {feature}; only OpenAI models can.",
                        model.id,
                        model.provider.as_str()
                    ),
                )
                .with_code("unsupported_feature"),
            );
            record.begin_attempt(model, Instant::now());
            record.add_upstream_time(std::time::Duration::ZERO);
            return Err(error);
        }
        let translated =
            !matches!(surface_call, SurfaceCall::Embeddings) && provider_format != format;
        let dropped = if translated {
            wire::dropped(provider_format, &request)
        } else {
            Vec::new()
        };
        if !dropped.is_empty() && caller.project.strict_translation {
            record.begin_attempt(model, Instant::now());
            record.add_upstream_time(std::time::Duration::ZERO);
            return Err(ProxyError::from_body(
                format,
                ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "The model `{}` ({}) has no equivalent for: {}; this project refuses translations that leave them out (strict_translation).",
                        model.id,
                        model.provider.as_str(),
                        dropped.join(", ")
                    ),
                )
                .with_code("unsupported_feature"),
            ));
        }
        let upstream_body = match surface_call {
            SurfaceCall::Embeddings => embeddings::upstream_body(model, &raw)?,
            _ => upstream_body(
                format,
                provider_format,
                &mut raw,
                original.as_deref(),
                &request,
                model,
            )?,
        };
        // The client's query string and beta headers describe the client's format.
        let target = target_for(
            snapshot,
            caller.project,
            model,
            (!translated).then_some(query).flatten(),
        );
        let extra_headers = passthrough_headers(headers, format, provider_format);
        let attempt_started = Instant::now();
        record.begin_attempt(model, attempt_started);
        if !dropped.is_empty()
            && let Some(trace) = record.trace()
        {
            trace.dropped(&dropped);
        }
        let sent = app
            .upstream
            .send(
                &target,
                operation_for(surface, provider_format),
                upstream_body,
                request.stream,
                &extra_headers,
            )
            .await;
        // Translating the answer below is Routerly's time, not the provider's.
        let mut upstream_elapsed = attempt_started.elapsed();
        let error = match sent {
            Ok(UpstreamResponse::Json(body)) => {
                let answered = match &surface_call {
                    SurfaceCall::Embeddings => embeddings::answer(model, &raw, &body),
                    SurfaceCall::Plain => answer_plain(format, provider_format, model, &body),
                    SurfaceCall::Responses(conversation) => answer_json(
                        format,
                        provider_format,
                        model,
                        &body,
                        Some((&conversation.response_id, &conversation.echo)),
                    )
                    .map(|(response, canonical)| {
                        let usage = canonical.usage;
                        pending_store = conversation.store_future(app, caller, canonical);
                        (response, usage)
                    }),
                };
                match answered {
                    Ok((mut response, usage)) => {
                        if let Some(storing) = pending_store.take() {
                            storing.await;
                        }
                        record.add_upstream_time(upstream_elapsed);
                        let usage_record = record.finish_success(model, usage, None);
                        if let Ok(value) =
                            HeaderValue::from_str(&format!("{:.3}", usage_record.overhead_ms))
                        {
                            response.headers_mut().insert(OVERHEAD_HEADER, value);
                        }
                        app.usage.record(usage_record).await;
                        with_dropped_header(&mut response, &dropped);
                        return Ok(with_routing_headers(
                            response,
                            Some(&model.id),
                            record.trace_id(),
                        ));
                    }
                    Err(error) => error,
                }
            }
            Ok(UpstreamResponse::Stream(mut events)) => {
                let first = events.next_event().await;
                upstream_elapsed = attempt_started.elapsed();
                match first {
                    Ok(Some(first_event)) => {
                        let parts = relay::RelayParts {
                            app: app.clone(),
                            events,
                            first_event,
                            client_format: format,
                            provider_format,
                            model_id: model.id.clone(),
                            pricing: model.pricing,
                            provider: model.provider,
                            client_wants_usage: request.stream_include_usage,
                            attempt_started,
                            response_id: match &surface_call {
                                SurfaceCall::Responses(conversation) => {
                                    Some(conversation.response_id.clone())
                                }
                                _ => None,
                            },
                            echo: match &surface_call {
                                SurfaceCall::Responses(conversation) => {
                                    Some(conversation.echo.clone())
                                }
                                _ => None,
                            },
                            on_complete: match &surface_call {
                                SurfaceCall::Responses(conversation) => {
                                    conversation.on_complete(app, caller)
                                }
                                _ => None,
                            },
                        };
                        match relay::Relay::start(parts, record.take()) {
                            Ok(relay) => {
                                let mut response = relay.into_response();
                                with_dropped_header(&mut response, &dropped);
                                return Ok(with_routing_headers(
                                    response,
                                    Some(&model.id),
                                    record.trace_id(),
                                ));
                            }
                            Err(message) => UpstreamError::Protocol(format!(
                                "the provider's first event is unreadable: {message}"
                            )),
                        }
                    }
                    Ok(None) => UpstreamError::Protocol(
                        "the provider closed the stream before its first event".to_owned(),
                    ),
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        record.add_upstream_time(upstream_elapsed);
        tracing::warn!(
            model = %model.id,
            trace_id = record.trace_id(),
            error = %error,
            "provider attempt failed"
        );
        record.add_attempt(model, &error);
        if error.disposition() == Disposition::Client {
            let response = provider_client_error(format, provider_format, &error);
            let message = error.to_string();
            let usage_record =
                record.finish_error(Outcome::Error, response.status().as_u16(), &message);
            app.usage.record(usage_record).await;
            return Ok(with_routing_headers(
                response,
                Some(&model.id),
                record.trace_id(),
            ));
        }
        let backoff = plan.failed(&error);
        last_error = Some(error);
        if let Some(delay) = backoff {
            if let Some(trace) = record.trace() {
                trace.waited(delay);
            }
            tokio::time::sleep(delay).await;
        }
    }
    let last_error = last_error.expect("candidates are never empty");
    Err(exhausted_error(format, &last_error, candidates.len()))
}

/// The client's answer to a plain call and its usage: relayed in one pass when the client
/// speaks the provider's format (building the answer's tree, decoding it and writing it
/// back was a fifth of a non-streamed request's time), else through [`answer_json`].
fn answer_plain(
    client_format: WireFormat,
    provider_format: WireFormat,
    model: &ModelConfig,
    body: &[u8],
) -> Result<(Response, routerly_core::canonical::Usage), UpstreamError> {
    if client_format == provider_format
        && let Some((bytes, usage)) = relay::passthrough_answer(provider_format, body, &model.id)
    {
        return Ok((json_response(bytes), usage));
    }
    answer_json(client_format, provider_format, model, body, None)
        .map(|(response, canonical)| (response, canonical.usage))
}

/// A JSON answer of `bytes`.
fn json_response(bytes: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bytes));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Turns a provider's whole JSON answer into the client's answer and the canonical answer
/// (for its usage, and the Responses API's stored conversation). A re-encoded Responses
/// answer takes the conversation's response id and echoes its request fields.
fn answer_json(
    client_format: WireFormat,
    provider_format: WireFormat,
    model: &ModelConfig,
    body: &[u8],
    conversation: Option<(&str, &routerly_core::wire::responses::Echo)>,
) -> Result<(Response, routerly_core::canonical::ChatResponse), UpstreamError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|error| UpstreamError::Protocol(format!("the answer is not JSON: {error}")))?;
    let mut canonical = wire::decode_response(provider_format, &value).map_err(|error| {
        UpstreamError::Protocol(format!("the answer is malformed: {}", error.message))
    })?;
    if client_format == provider_format {
        // The provider's own text with the model replaced, in one pass (re-serializing the
        // tree was a tenth of a non-streamed request's instructions).
        let bytes = members::with_members(body, &[("model", &members::json_string(&model.id))])
            .unwrap_or_else(|| {
                value["model"] = Value::String(model.id.clone());
                serde_json::to_vec(&value).expect("a JSON value serializes")
            });
        return Ok((json_response(bytes), canonical));
    }
    canonical.model = model.id.clone();
    let client_body = match conversation {
        Some((response_id, echo)) => {
            canonical.id = response_id.to_owned();
            routerly_core::wire::responses::encode_response_echoing(&canonical, echo)
        }
        None => wire::encode_response(client_format, &canonical),
    };
    Ok((axum::Json(client_body).into_response(), canonical))
}

/// `POST /v1/messages/count_tokens`: exact from Anthropic for Anthropic models, OpenAI's
/// tokenizer for OpenAI models (see [`tokenize`]), the documented estimate of
/// [`routerly_core::estimate`] otherwise; `x-routerly-token-count` says which.
pub async fn count_tokens(
    State(app): State<App>,
    uri: http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let query = uri.query().map(str::to_owned);
    let format = WireFormat::AnthropicMessages;
    let snapshot = app.store.snapshot();
    let result = async {
        let caller = authenticate(&snapshot, &headers, format)?;
        let (bytes, _body_permit) = read_body(
            &app,
            &headers,
            body,
            snapshot.settings.max_body_bytes,
            format,
        )
        .await?;
        let mut raw = parse_json_object(&bytes, format)?;
        // count_tokens takes no max_tokens; the decoder requires one.
        if raw.get("max_tokens").is_none() {
            raw["max_tokens"] = json!(1);
        }
        let request = decode_request(format, &raw)?;
        let candidates =
            candidates::resolve(&snapshot, caller.project, caller.token, &request.model)
                .map_err(|error| ProxyError::from_body(format, error))?;
        let model = candidates[0];
        if routerly_core::wire::counts_tokens_upstream(model.provider.wire_format()) {
            // The client's own body with the model replaced: whatever it holds is counted.
            let model_name = members::json_string(&model.upstream_model);
            let body =
                members::with_members(&bytes, &[("model", &model_name)]).unwrap_or_else(|| {
                    let mut body = raw.clone();
                    if let Some(object) = body.as_object_mut() {
                        object.remove("max_tokens");
                    }
                    body["model"] = Value::String(model.upstream_model.clone());
                    serde_json::to_vec(&body).expect("a JSON value serializes")
                });
            let target = target_for(&snapshot, caller.project, model, query.as_deref());
            let sent = app
                .upstream
                .send(
                    &target,
                    Operation::CountTokens,
                    body,
                    false,
                    &passthrough_headers(&headers, format, format),
                )
                .await;
            return match sent {
                Ok(UpstreamResponse::Json(answer)) => {
                    let counted: Value = serde_json::from_slice(&answer).map_err(|_| {
                        ProxyError::new(
                            format,
                            ErrorKind::BadGateway,
                            "The provider sent an answer Routerly could not read.",
                        )
                    })?;
                    let mut response = axum::Json(counted).into_response();
                    response
                        .headers_mut()
                        .insert(TOKEN_COUNT_HEADER, HeaderValue::from_static("provider"));
                    Ok(with_routing_headers(response, Some(&model.id), ""))
                }
                Ok(UpstreamResponse::Stream(_)) => unreachable!("count_tokens is not streamed"),
                Err(error) if error.disposition() == Disposition::Client => {
                    Ok(provider_client_error(format, format, &error))
                }
                Err(error) => Err(exhausted_error(format, &error, 1)),
            };
        }
        let (input_tokens, method) = match tokenize::tokenizer_for(model) {
            Some(tokenizer) => {
                let counted =
                    tokio::task::spawn_blocking(move || tokenize::count(tokenizer(), &request))
                        .await
                        .map_err(|_| {
                            ProxyError::new(format, ErrorKind::Internal, "The token count failed.")
                        })?;
                (counted, "tokenizer")
            }
            None => (estimate::prompt_tokens(&request), "estimate"),
        };
        let mut response = axum::Json(json!({ "input_tokens": input_tokens })).into_response();
        response
            .headers_mut()
            .insert(TOKEN_COUNT_HEADER, HeaderValue::from_static(method));
        Ok(with_routing_headers(response, Some(&model.id), ""))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /v1/models`: the project's models, their aliases and `auto`, in OpenAI's shape,
/// or Anthropic's when the client sends `anthropic-version`.
pub async fn list_models(State(app): State<App>, headers: HeaderMap) -> Response {
    let anthropic_client = headers.contains_key("anthropic-version");
    let format = if anthropic_client {
        WireFormat::AnthropicMessages
    } else {
        WireFormat::OpenAiChat
    };
    let snapshot = app.store.snapshot();
    let caller = match authenticate(&snapshot, &headers, format) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let entries = candidates::listed_names(&snapshot, caller.project, caller.token);
    let data: Vec<Value> = entries
        .iter()
        .map(|entry| model_object(entry, anthropic_client))
        .collect();
    if anthropic_client {
        axum::Json(json!({
            "data": data,
            "has_more": false,
            "first_id": entries.first().map(|entry| entry.name.clone()),
            "last_id": entries.last().map(|entry| entry.name.clone()),
        }))
        .into_response()
    } else {
        axum::Json(json!({ "object": "list", "data": data })).into_response()
    }
}

/// `GET /v1/models/{id}`.
pub async fn get_model(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let anthropic_client = headers.contains_key("anthropic-version");
    let format = if anthropic_client {
        WireFormat::AnthropicMessages
    } else {
        WireFormat::OpenAiChat
    };
    let snapshot = app.store.snapshot();
    let caller = match authenticate(&snapshot, &headers, format) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let entries = candidates::listed_names(&snapshot, caller.project, caller.token);
    match entries.iter().find(|entry| entry.name == id) {
        Some(entry) => axum::Json(model_object(entry, anthropic_client)).into_response(),
        None => ProxyError::from_body(format, candidates::model_not_found(&id)).into_response(),
    }
}

fn model_object(entry: &candidates::ListedName, anthropic_client: bool) -> Value {
    if anthropic_client {
        json!({
            "type": "model",
            "id": entry.name,
            "display_name": entry.name,
            "created_at": entry.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    } else {
        json!({
            "id": entry.name,
            "object": "model",
            "created": entry.created_at.timestamp(),
            "owned_by": entry.owned_by,
        })
    }
}
