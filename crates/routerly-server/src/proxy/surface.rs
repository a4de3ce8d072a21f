//! What each `/v1` surface adds to the common path, behind one trait: how its body is
//! decoded, which models may serve it, what each provider is sent and how the answer comes
//! back. [`super::serve`] is the attempt loop over these and nothing else. The plain
//! surfaces (chat completions and messages) are [`Plain`]; the Responses API is
//! [`super::responses::Conversation`]; embeddings are [`super::embeddings::Embeddings`].

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use routerly_core::canonical::{ChatRequest, ChatResponse, Usage};
use routerly_core::config::ModelConfig;
use routerly_core::wire::{self, WireFormat};
use routerly_providers::{Operation, UpstreamError};
use serde_json::{Value, json};

use super::error::ProxyError;
use super::relay::{self, OnComplete};
use super::{Call, Caller, members};
use crate::state::AppState;

/// What a re-encoded stream of a surface carries besides the answer.
#[derive(Default)]
pub(super) struct StreamHooks {
    /// The response id the client sees when the stream is re-encoded; `None` keeps the
    /// provider's.
    pub response_id: Option<String>,
    /// What a re-encoded Responses stream repeats of its request.
    pub echo: Option<wire::responses::Echo>,
    /// Run with the whole answer when the stream ends successfully.
    pub on_complete: Option<OnComplete>,
}

/// One surface's part of a call (its state, built by [`SurfaceCall::decode`]).
pub(super) trait SurfaceCall: Sized + Send + Sync {
    /// Whether the client's own text is kept to be sent on with only `model` replaced (a
    /// surface that rewrites its request sends the tree instead).
    const SENDS_ORIGINAL: bool = false;

    /// The canonical request of the parsed body `raw` (which a surface may rewrite, as the
    /// Responses API resolves stored turns into it) and the surface's state.
    fn decode(
        app: &AppState,
        caller: &Caller<'_>,
        format: WireFormat,
        raw: &mut Value,
    ) -> impl Future<Output = Result<(ChatRequest, Self), ProxyError>> + Send;

    /// The canonical request and the surface's state read straight from the body's text,
    /// when the surface can and the body has the shape that allows it
    /// ([`wire::decode_simple_request`]); `None` has the body parsed and [`Self::decode`]d.
    fn decode_text(_format: WireFormat, _text: &[u8]) -> Option<(wire::SimpleRequest, Self)> {
        None
    }

    /// The candidates that may serve this surface, in order.
    fn candidates<'s>(
        &self,
        candidates: Vec<&'s ModelConfig>,
        _requested: &str,
    ) -> Result<Vec<&'s ModelConfig>, ProxyError> {
        Ok(candidates)
    }

    /// The format `model` is spoken to in (for a surface whose bodies are converted
    /// elsewhere, the format of the provider's errors).
    fn provider_format(&self, model: &ModelConfig) -> WireFormat {
        model.provider.wire_format()
    }

    /// The provider operation of a call in `provider_format`.
    fn operation(&self, provider_format: WireFormat) -> Operation {
        if wire::is_responses(provider_format) {
            Operation::Responses
        } else {
            Operation::Chat
        }
    }

    /// Whether a call in `provider_format` is translated from the client's (then what the
    /// target has no slot for is dropped, and the client's query string stays behind).
    fn translates(&self, call: &Call<'_>, provider_format: WireFormat) -> bool {
        provider_format != call.format
    }

    /// A refusal of `model` before anything is sent: what the request holds that only the
    /// client's own format can serve.
    fn refusal(
        &self,
        _call: &Call<'_>,
        _model: &ModelConfig,
        _provider_format: WireFormat,
    ) -> Option<ProxyError> {
        None
    }

    /// The body to send to `model`'s provider.
    fn upstream_body(
        &self,
        call: &mut Call<'_>,
        model: &ModelConfig,
        provider_format: WireFormat,
    ) -> Result<Vec<u8>, ProxyError>;

    /// The client's answer to the provider's whole JSON `body`, and its usage.
    fn answer(
        &self,
        call: &Call<'_>,
        model: &ModelConfig,
        provider_format: WireFormat,
        body: &[u8],
    ) -> impl Future<Output = Result<(Response, Usage), UpstreamError>> + Send;

    /// What a relayed stream of this surface carries besides the answer.
    fn stream_hooks(&self, _call: &Call<'_>) -> StreamHooks {
        StreamHooks::default()
    }
}

/// Chat completions and messages: nothing beyond the common path.
pub(super) struct Plain;

impl SurfaceCall for Plain {
    // Plain calls send the client's own text on.
    const SENDS_ORIGINAL: bool = true;

    async fn decode(
        _app: &AppState,
        _caller: &Caller<'_>,
        format: WireFormat,
        raw: &mut Value,
    ) -> Result<(ChatRequest, Self), ProxyError> {
        Ok((super::decode_request(format, raw)?, Plain))
    }

    fn decode_text(format: WireFormat, text: &[u8]) -> Option<(wire::SimpleRequest, Self)> {
        wire::decode_simple_request(format, text).map(|simple| (simple, Plain))
    }

    fn upstream_body(
        &self,
        call: &mut Call<'_>,
        model: &ModelConfig,
        provider_format: WireFormat,
    ) -> Result<Vec<u8>, ProxyError> {
        upstream_body(call, model, provider_format)
    }

    /// Relayed in one pass when the client speaks the provider's format (building the
    /// answer's tree, decoding it and writing it back was a fifth of a non-streamed
    /// request's time), else through [`answer_json`].
    async fn answer(
        &self,
        call: &Call<'_>,
        model: &ModelConfig,
        provider_format: WireFormat,
        body: &[u8],
    ) -> Result<(Response, Usage), UpstreamError> {
        if call.format == provider_format
            && let Some((bytes, usage)) =
                relay::passthrough_answer(provider_format, body, &model.id)
        {
            return Ok((json_response(bytes), usage));
        }
        answer_json(call.format, provider_format, model, body, None)
            .map(|(response, canonical)| (response, canonical.usage))
    }
}

/// The body to send to `model`'s provider: the client's own body with the model replaced
/// when formats match (rewritten from the client's original text when the call kept it,
/// without serializing the tree again), the canonical request encoded otherwise.
pub(super) fn upstream_body(
    call: &mut Call<'_>,
    model: &ModelConfig,
    provider_format: WireFormat,
) -> Result<Vec<u8>, ProxyError> {
    let client_format = call.format;
    let request = &call.request;
    if provider_format == client_format {
        let usage_in_stream = wire::asks_for_stream_usage(client_format) && request.stream;
        if let Some(original) = &call.original {
            let model_name = routerly_core::json_text::string_text(&model.upstream_model);
            // Where the simple reader found the model, it is replaced there, without
            // scanning the body's members again.
            if let Some(body) = call
                .places
                .as_ref()
                .and_then(|places| places.rewrite(original, &model_name, usage_in_stream))
            {
                return Ok(body);
            }
            let mut members = vec![("model", model_name.as_str())];
            if usage_in_stream {
                members.push(("stream_options", r#"{"include_usage":true}"#));
            }
            if let Some(body) = members::with_members(original, &members) {
                return Ok(body);
            }
        }
        let raw = call.tree()?;
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

/// A JSON answer of `bytes`.
pub(super) fn json_response(bytes: Vec<u8>) -> Response {
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
pub(super) fn answer_json(
    client_format: WireFormat,
    provider_format: WireFormat,
    model: &ModelConfig,
    body: &[u8],
    conversation: Option<(&str, &wire::responses::Echo)>,
) -> Result<(Response, ChatResponse), UpstreamError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|error| UpstreamError::Protocol(format!("the answer is not JSON: {error}")))?;
    let mut canonical = wire::decode_response(provider_format, &value).map_err(|error| {
        UpstreamError::Protocol(format!("the answer is malformed: {}", error.message))
    })?;
    if client_format == provider_format {
        // The provider's own text with the model replaced, in one pass (re-serializing the
        // tree was a tenth of a non-streamed request's instructions).
        let bytes = members::with_members(
            body,
            &[("model", &routerly_core::json_text::string_text(&model.id))],
        )
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
            wire::responses::encode_response_echoing(&canonical, echo)
        }
        None => wire::encode_response(client_format, &canonical),
    };
    Ok((axum::Json(client_body).into_response(), canonical))
}
