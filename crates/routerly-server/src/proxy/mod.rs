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
//! The path has one shape for every surface: [`Call::decode`] builds the call's context
//! once (snapshot, caller, the parsed body and its decoded view, the usage record, the
//! client's format), [`Call::candidates`] resolves, admits and ranks the models, and
//! [`serve`] is the attempt loop. What differs per surface sits behind
//! [`surface::SurfaceCall`]; where a call goes and its timeouts come from [`target`].
//!
//! The Responses surface adds conversation state (see [`responses`]): `previous_response_id`
//! is resolved from Routerly's store before the attempts, and each answer is stored after.
//! OpenAI models get the Responses body itself; others the canonical request. Embeddings
//! (see [`embeddings`]) go to embedding-capable models in OpenAI's shape or converted to the
//! provider's own embeddings API.

mod auth;
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
mod surface;
mod target;
mod tokenize;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use routerly_core::canonical::{ChatRequest, ErrorBody, ErrorKind};
use routerly_core::config::ModelConfig;
use routerly_core::estimate;
use routerly_core::usage::{Outcome, Surface};
use routerly_core::wire::{self, WireFormat};
use routerly_providers::{Disposition, Operation, UpstreamError, UpstreamResponse};
use serde_json::{Value, json};

use crate::admission::BodyPermit;
use crate::state::App;
use crate::store::config::Snapshot;

use auth::{Caller, authenticate};
pub use error::ProxyError;
use record::{CallRecord, PendingCall};
use surface::{Plain, SurfaceCall};
pub(crate) use target::target_for;

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
    call(Surface::ChatCompletions, app, request).await
}

/// `POST /v1/messages`.
pub async fn messages(State(app): State<App>, request: Request) -> Response {
    call(Surface::Messages, app, request).await
}

/// `POST /v1/responses`.
pub async fn responses(State(app): State<App>, request: Request) -> Response {
    call(Surface::Responses, app, request).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(app): State<App>, request: Request) -> Response {
    call(Surface::Embeddings, app, request).await
}

/// The surface a `POST` to `path` calls: exactly the paths the router gives the handlers
/// above. [`crate::net`]'s own HTTP/1.1 path serves these without the router.
pub(crate) fn surface_of(path: &str) -> Option<Surface> {
    Some(match path {
        "/v1/chat/completions" => Surface::ChatCompletions,
        "/v1/messages" => Surface::Messages,
        "/v1/responses" => Surface::Responses,
        "/v1/embeddings" => Surface::Embeddings,
        _ => return None,
    })
}

/// A call to `surface`, served. [`crate::net`]'s own path awaits it in the connection's
/// task, unboxed (axum boxes a handler's future, copying it whole, twice).
pub(crate) async fn call(surface: Surface, app: App, request: Request) -> Response {
    match surface {
        Surface::ChatCompletions | Surface::Messages => {
            complete::<Plain>(app, surface, request).await
        }
        Surface::Responses => complete::<responses::Conversation>(app, surface, request).await,
        Surface::Embeddings => complete::<embeddings::Embeddings>(app, surface, request).await,
    }
}

/// The wire format of a client surface (embeddings answer errors in OpenAI's shape).
pub(crate) fn surface_format(surface: Surface) -> WireFormat {
    match surface {
        Surface::ChatCompletions | Surface::Embeddings => WireFormat::OpenAiChat,
        Surface::Messages => WireFormat::AnthropicMessages,
        Surface::Responses => WireFormat::OpenAiResponses,
    }
}

/// A method a `/v1` route does not take: 405 in the surface's own error shape, naming the
/// method and the path (axum adds `Allow` with the route's methods).
pub fn method_not_allowed(
    format: WireFormat,
) -> impl Fn(http::Method, http::Uri) -> std::future::Ready<Response> + Clone + Send + Sync + 'static
{
    move |method, uri| {
        let mut error = ProxyError::from_body(
            format,
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!(
                    "{} does not take {method}; the Allow header lists the methods it takes",
                    uri.path()
                ),
            )
            .with_code("method_not_allowed"),
        );
        error.status = StatusCode::METHOD_NOT_ALLOWED.as_u16();
        std::future::ready(error.into_response())
    }
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

/// Milliseconds to the microsecond (`0.182`), as a header value. Written with
/// `json_text::digits`: `format!("{:.3}")` of the float was over a thousand instructions of
/// a plain call.
fn millis_value(ms: f64) -> HeaderValue {
    // A duration's milliseconds: finite and not negative (`as` saturates anything else;
    // whole milliseconds beyond u32, 49 days, are not a call's overhead).
    let micros = (ms * 1000.0).round() as u64;
    let whole = u32::try_from(micros / 1000).unwrap_or(u32::MAX);
    let width = whole.checked_ilog10().map_or(1, |log| log as usize + 1);
    let mut text = Vec::with_capacity(width + 4);
    routerly_core::json_text::digits(&mut text, whole, width);
    text.push(b'.');
    routerly_core::json_text::digits(&mut text, (micros % 1000) as u32, 3);
    HeaderValue::from_maybe_shared(Bytes::from(text))
        .expect("digits and a point are a header value")
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

/// One call's context, built once its body is decoded: what every step after reads.
struct Call<'c> {
    app: &'c App,
    snapshot: &'c Snapshot,
    caller: Caller<'c>,
    /// The client's format.
    format: WireFormat,
    headers: &'c HeaderMap,
    /// The client's query string (sent on with a call in the client's own format).
    query: Option<&'c str>,
    /// The client's body, parsed: a same-format call's body is made from it. `None` when
    /// the surface read the text itself ([`SurfaceCall::decode_text`]); [`Call::tree`]
    /// parses it then, if it is ever needed.
    raw: Option<Value>,
    /// The client's own text, kept when the surface sends it on
    /// ([`SurfaceCall::SENDS_ORIGINAL`]).
    original: Option<Bytes>,
    /// The decoded view: what estimates, budgets, routing and translation read.
    request: ChatRequest,
    /// Where the members a same-format call rewrites lie in `original`, when the surface
    /// read the text itself.
    places: Option<wire::TextPlaces>,
    /// The usage record, finished by whoever answers.
    record: &'c mut CallRecord,
    /// Holds the body's bytes against the shared body budget until the call ends.
    _body_permit: BodyPermit,
}

impl<'c> Call<'c> {
    /// Reads and decodes the body of a call on surface `S`: the context, and the surface's
    /// part of it.
    async fn decode<S: SurfaceCall>(
        app: &'c App,
        snapshot: &'c Snapshot,
        caller: Caller<'c>,
        query: Option<&'c str>,
        headers: &'c HeaderMap,
        body: Body,
        record: &'c mut CallRecord,
    ) -> Result<(Self, S), ProxyError> {
        let format = surface_format(record.surface());
        let (bytes, body_permit) =
            read_body(app, headers, body, snapshot.settings.max_body_bytes, format).await?;
        let (request, places, raw, surface_call) = match S::decode_text(format, &bytes) {
            Some((wire::SimpleRequest { request, places }, surface_call)) => {
                (request, Some(places), None, surface_call)
            }
            None => {
                let mut raw = parse_json_object(&bytes, format)?;
                let (request, surface_call) = S::decode(app, &caller, format, &mut raw).await?;
                (request, None, Some(raw), surface_call)
            }
        };
        let original = S::SENDS_ORIGINAL.then_some(bytes);
        record.set_request(&request);
        let call = Call {
            app,
            snapshot,
            caller,
            format,
            headers,
            query,
            raw,
            original,
            request,
            places,
            record,
            _body_permit: body_permit,
        };
        Ok((call, surface_call))
    }

    /// The client's parsed body, for a surface that decodes from it (one without
    /// [`SurfaceCall::decode_text`], whose calls always hold the tree).
    fn parsed(&self) -> &Value {
        self.raw
            .as_ref()
            .expect("a surface that reads the tree was decoded from it")
    }

    /// The client's body, parsed (now, from its text, if the surface read the text itself).
    fn tree(&mut self) -> Result<&mut Value, ProxyError> {
        match self.raw {
            Some(ref mut raw) => Ok(raw),
            None => {
                let text = self.original.as_deref().unwrap_or_default();
                let tree = parse_json_object(text, self.format)?;
                Ok(self.raw.insert(tree))
            }
        }
    }

    /// The models that may serve this call, in the order they are tried: resolved from the
    /// requested model, narrowed by the surface, admitted by the budgets (which reserve the
    /// call's estimate), ranked by the project's routing policies.
    async fn candidates<S: SurfaceCall>(
        &mut self,
        surface_call: &S,
    ) -> Result<Vec<&'c ModelConfig>, ProxyError> {
        let snapshot: &'c Snapshot = self.snapshot;
        let candidates = candidates::resolve(
            snapshot,
            self.caller.project,
            self.caller.token,
            &self.request.model,
        )
        .map_err(|error| ProxyError::from_body(self.format, error))?;
        let candidates = surface_call.candidates(candidates, &self.request.model)?;
        let resolved: Vec<&str> = candidates.iter().map(|model| model.id.as_str()).collect();
        let admitted = budget::admit(self, candidates).await?;
        route::rank(self, &resolved, admitted).await
    }
}

/// Serves one completion request on `surface`, whose own part is `S`.
async fn complete<S: SurfaceCall>(app: App, surface: Surface, request: Request) -> Response {
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
    let served = async {
        let (mut call, surface_call) = Call::decode::<S>(
            &app,
            &snapshot,
            caller,
            query,
            headers,
            body,
            pending.record(),
        )
        .await?;
        let candidates = call.candidates(&surface_call).await?;
        serve(&mut call, &surface_call, &candidates).await
    }
    .await;
    let mut record = pending.settle();
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

/// The attempt loop: each candidate in turn, retried with backoff where the project allows,
/// until one answers or a provider says the request itself is at fault; every early return
/// is an error to record.
async fn serve<S: SurfaceCall>(
    call: &mut Call<'_>,
    surface_call: &S,
    candidates: &[&ModelConfig],
) -> Result<Response, ProxyError> {
    let app: &App = call.app;
    let deadline = call.record.started()
        + Duration::from_millis(
            target::call_timeouts(call.snapshot, None, Some(call.caller.project)).first_token_ms,
        );
    let mut plan = crate::routing::AttemptPlan::new(
        &app.routing,
        candidates,
        call.caller.project.routing.retries,
        deadline,
    );
    let mut last_error = None;
    while let Some(model) = plan.next() {
        let error = match attempt(call, surface_call, model).await? {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        tracing::warn!(
            model = %model.id,
            trace_id = call.record.trace_id(),
            error = %error,
            "provider attempt failed"
        );
        call.record.add_attempt(model, &error);
        if error.disposition() == Disposition::Client {
            let provider_format = surface_call.provider_format(model);
            let response = provider_client_error(call.format, provider_format, &error);
            let message = error.to_string();
            let usage_record =
                call.record
                    .finish_error(Outcome::Error, response.status().as_u16(), &message);
            app.usage.record(usage_record).await;
            return Ok(with_routing_headers(
                response,
                Some(&model.id),
                call.record.trace_id(),
            ));
        }
        let backoff = plan.failed(&error);
        last_error = Some(error);
        if let Some(delay) = backoff {
            if let Some(trace) = call.record.trace() {
                trace.waited(delay);
            }
            tokio::time::sleep(delay).await;
        }
    }
    let last_error = last_error.expect("candidates are never empty");
    Err(exhausted_error(call.format, &last_error, candidates.len()))
}

/// One attempt at `model`: the request checked and built for its provider, sent, and the
/// answer relayed to the client. The inner `Err` is the provider's failure (the attempt's
/// upstream time already recorded), for the loop to classify.
async fn attempt<S: SurfaceCall>(
    call: &mut Call<'_>,
    surface_call: &S,
    model: &ModelConfig,
) -> Result<Result<Response, UpstreamError>, ProxyError> {
    let format = call.format;
    let provider_format = surface_call.provider_format(model);
    if let Some(refusal) = surface_call.refusal(call, model, provider_format) {
        call.record.begin_attempt(model, Instant::now());
        call.record.add_upstream_time(Duration::ZERO);
        return Err(refusal);
    }
    let translated = surface_call.translates(call, provider_format);
    let dropped = if translated {
        wire::dropped(provider_format, &call.request)
    } else {
        Vec::new()
    };
    if !dropped.is_empty() && call.caller.project.strict_translation {
        call.record.begin_attempt(model, Instant::now());
        call.record.add_upstream_time(Duration::ZERO);
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
    let upstream_body = surface_call.upstream_body(call, model, provider_format)?;
    // The client's query string and beta headers describe the client's format.
    let target = target_for(
        call.snapshot,
        model,
        Some(call.caller.project),
        (!translated).then_some(call.query).flatten(),
    );
    let extra_headers = passthrough_headers(call.headers, format, provider_format);
    let attempt_started = Instant::now();
    call.record.begin_attempt(model, attempt_started);
    if !dropped.is_empty()
        && let Some(trace) = call.record.trace()
    {
        trace.dropped(&dropped);
    }
    let sent = call
        .app
        .upstream
        .send(
            &target,
            surface_call.operation(provider_format),
            upstream_body,
            call.request.stream,
            &extra_headers,
        )
        .await;
    // Translating the answer below is Routerly's time, not the provider's.
    let mut upstream_elapsed = attempt_started.elapsed();
    let error = match sent {
        Ok(UpstreamResponse::Json(body)) => {
            match surface_call
                .answer(call, model, provider_format, &body)
                .await
            {
                Ok((mut response, usage)) => {
                    call.record.add_upstream_time(upstream_elapsed);
                    let usage_record = call.record.finish_success(model, usage, None);
                    response
                        .headers_mut()
                        .insert(OVERHEAD_HEADER, millis_value(usage_record.overhead_ms));
                    call.app.usage.record(usage_record).await;
                    with_dropped_header(&mut response, &dropped);
                    return Ok(Ok(with_routing_headers(
                        response,
                        Some(&model.id),
                        call.record.trace_id(),
                    )));
                }
                Err(error) => error,
            }
        }
        Ok(UpstreamResponse::Stream(mut events)) => {
            let first = events.next_event().await;
            upstream_elapsed = attempt_started.elapsed();
            match first {
                Ok(Some(first_event)) => {
                    let hooks = surface_call.stream_hooks(call);
                    let parts = relay::RelayParts {
                        app: call.app.clone(),
                        events,
                        first_event,
                        client_format: format,
                        provider_format,
                        model_id: model.id.clone(),
                        pricing: model.pricing,
                        provider: model.provider,
                        client_wants_usage: call.request.stream_include_usage,
                        attempt_started,
                        response_id: hooks.response_id,
                        echo: hooks.echo,
                        on_complete: hooks.on_complete,
                    };
                    match relay::Relay::start(parts, call.record.take()) {
                        Ok(relay) => {
                            let mut response = relay.into_response();
                            with_dropped_header(&mut response, &dropped);
                            return Ok(Ok(with_routing_headers(
                                response,
                                Some(&model.id),
                                call.record.trace_id(),
                            )));
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
    call.record.add_upstream_time(upstream_elapsed);
    Ok(Err(error))
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
            let model_name = routerly_core::json_text::string_text(&model.upstream_model);
            let body =
                members::with_members(&bytes, &[("model", &model_name)]).unwrap_or_else(|| {
                    let mut body = raw.clone();
                    if let Some(object) = body.as_object_mut() {
                        object.remove("max_tokens");
                    }
                    body["model"] = Value::String(model.upstream_model.clone());
                    serde_json::to_vec(&body).expect("a JSON value serializes")
                });
            let target = target_for(&snapshot, model, Some(caller.project), query.as_deref());
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

#[cfg(test)]
mod tests {
    use super::millis_value;

    #[test]
    fn milliseconds_are_written_to_the_microsecond() {
        for ms in [
            0.0,
            0.0004,
            0.0996,
            0.182,
            1.0,
            12.3456,
            407.25,
            1_234_567.891,
        ] {
            assert_eq!(millis_value(ms).to_str().unwrap(), format!("{ms:.3}"));
        }
    }
}
