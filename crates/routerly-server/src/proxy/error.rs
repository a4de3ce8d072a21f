//! Errors of the proxy surfaces, rendered in each client's native error shape.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use routerly_core::canonical::{ErrorBody, ErrorKind};
use routerly_core::wire::{self, WireFormat};

/// An error answered to a proxy client, in the client's own format.
#[derive(Debug)]
pub struct ProxyError {
    /// The client's wire format, which decides the body's shape.
    pub format: WireFormat,
    /// What went wrong (boxed to keep `Result<_, ProxyError>` small).
    pub body: Box<ErrorBody>,
    /// The HTTP status; from `body.kind` unless a provider's own status is passed on.
    pub status: u16,
    /// Seconds after which a retry may succeed.
    pub retry_after: Option<Duration>,
    /// The request's trace id, added to 5xx messages so logs can be matched.
    pub trace_id: Option<String>,
}

impl ProxyError {
    /// An error of `kind` with `message`.
    pub fn new(format: WireFormat, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::from_body(format, ErrorBody::new(kind, message))
    }

    /// An error from a canonical body; the status follows its kind.
    pub fn from_body(format: WireFormat, body: ErrorBody) -> Self {
        ProxyError {
            format,
            status: body.kind.status(),
            body: Box::new(body),
            retry_after: None,
            trace_id: None,
        }
    }

    /// Sets the `retry-after` header.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The JSON body in the client's shape.
    pub fn json(&self) -> serde_json::Value {
        let mut body = (*self.body).clone();
        if self.status >= 500
            && let Some(trace_id) = &self.trace_id
        {
            body.message = format!("{} (trace id {trace_id})", body.message);
        }
        wire::encode_error(self.format, &body)
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut response = (status, axum::Json(self.json())).into_response();
        if let Some(retry_after) = self.retry_after {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(trace_id) = &self.trace_id
            && let Ok(value) = HeaderValue::from_str(trace_id)
        {
            response
                .headers_mut()
                .insert(crate::proxy::TRACE_ID_HEADER, value);
        }
        response
    }
}
