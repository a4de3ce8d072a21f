//! `/api/audit`: the audit trail of changes made through the API, newest first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;
use utoipa::{IntoParams, ToSchema};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum AuditActor {
    /// A user logged in (the dashboard or the CLI).
    Session {
        /// The user's id.
        user_id: String,
        /// The user's email.
        email: String,
    },
    /// An admin API key.
    ApiKey {
        /// The key's id (`ak_…`).
        api_key: String,
        /// The key's name.
        name: String,
    },
    /// The first-admin setup, before anyone could log in.
    Setup,
}

/// One entity of a config file that a change added, changed or removed, secrets redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct AuditChange {
    /// The config file (`models.json`, `projects.json`, `settings.json`, …).
    pub file: String,
    /// The entity's id; `null` for the settings, which are one entity.
    pub id: Option<String>,
    /// The entity before the change; `null` when the change added it.
    #[schema(value_type = Option<Object>)]
    #[ts(type = "unknown")]
    pub before: Value,
    /// The entity after the change; `null` when the change removed it.
    #[schema(value_type = Option<Object>)]
    #[ts(type = "unknown")]
    pub after: Value,
}

/// One change made through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct AuditEntry {
    /// Its id (a UUIDv7, so ids sort by time).
    pub id: String,
    /// When the change was made.
    #[ts(type = "string")]
    pub at: DateTime<Utc>,
    /// Who made it.
    pub actor: AuditActor,
    /// The client's address (behind `trusted_proxies`, the forwarded one); absent in
    /// entries written before addresses were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub address: Option<String>,
    /// The route, such as `PATCH /api/models/{id}`.
    pub action: String,
    /// The path called, such as `/api/models/m1`.
    pub path: String,
    /// The answer's HTTP status.
    pub status: u16,
    /// The config entities the change touched.
    pub changes: Vec<AuditChange>,
    /// What a change outside the config files adds (an API key created, a key rotated);
    /// never a secret; `null` for a change to the config files.
    #[schema(value_type = Option<Object>)]
    #[ts(type = "unknown")]
    #[serde(default)]
    pub detail: Value,
}

/// Query of `GET /api/audit`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries per page: 1 to 1000 (default 50; larger values are lowered to 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Entries to skip from the newest (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

/// `GET /api/audit`: a page of entries, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct AuditPage {
    /// The entries of this page.
    pub entries: Vec<AuditEntry>,
    /// Entries in the whole log.
    pub total: usize,
    /// The page size applied.
    pub limit: usize,
    /// The entries skipped.
    pub offset: usize,
}
