//! `/api/api-keys`: long-lived admin API keys for scripts and CI, each carrying one global
//! role. The key itself is in the creation answer only; the service keeps its hash.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// An API key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ApiKeyView {
    /// Stable id (`ak_…`).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The global role whose permissions it carries.
    pub role: String,
    /// A short visible part of the key, such as `rly-ak-AbCd…wXyZ`.
    pub snippet: String,
    /// Who created it (user id).
    pub created_by: String,
    /// When it was created.
    #[ts(type = "string")]
    pub created_at: DateTime<Utc>,
    /// When it was revoked (a revoked key is refused at once); `null` while it is live.
    #[ts(type = "string | null")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `GET /api/api-keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ApiKeyList {
    /// Every key, revoked ones included, oldest first.
    pub api_keys: Vec<ApiKeyView>,
}

/// Body of `POST /api/api-keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What it is for (not blank, one line, at most 128 characters).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 128
    )]
    pub name: String,
    /// The global role it carries: a built-in or custom role the caller holds every
    /// permission of. Absent: `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub role: Option<String>,
}

/// `POST /api/api-keys`: the only answer that carries the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct CreatedApiKey {
    /// The key as it will be listed.
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The key, for `Authorization: Bearer` (or `ROUTERLY_API_KEY`); shown this once.
    pub key: String,
}
