//! The error body every `/api` route answers with.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// Kinds of management API error; the HTTP status follows from the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body or a parameter is invalid (400).
    #[serde(rename = "invalid_request")]
    Invalid,
    /// No or bad credentials (401).
    Unauthenticated,
    /// The caller lacks the permission (403).
    Forbidden,
    /// The resource does not exist (404).
    NotFound,
    /// It conflicts with existing state: duplicate id, in use (409).
    Conflict,
    /// The method is not one the route has (405).
    MethodNotAllowed,
    /// The body is larger than the service accepts (413).
    PayloadTooLarge,
    /// The body stopped arriving for longer than the body timeout (408).
    RequestTimeout,
    /// Too many attempts (429).
    RateLimited,
    /// Something Routerly called on the caller's behalf (a notification channel) failed (502).
    DeliveryFailed,
    /// Something broke inside; details are in the log (500).
    #[serde(rename = "internal_error")]
    Internal,
    /// The service cannot do it now: a config file on disk is broken (retry once fixed), or
    /// request bodies in flight use up their memory budget (retry after `retry-after`), or
    /// the shared login limits in Redis cannot be reached and the failure mode is
    /// fail-closed (503).
    Unavailable,
}

/// `{"error": {...}}`: the body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ErrorDetail {
    /// The kind of error.
    pub code: ErrorCode,
    /// In words, for a person.
    pub message: String,
    /// The path of the value at fault (`pricing.input`), when one is.
    pub field: Option<String>,
}
