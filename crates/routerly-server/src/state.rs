//! The state every handler shares.

use std::sync::Arc;
use std::time::Instant;

use routerly_providers::Upstream;

use crate::api::auth::{LoginLimiter, SessionKeys};
use crate::budgets::Budgets;
use crate::metrics::Metrics;
use crate::routing::Routing;
use crate::store::api_keys::ApiKeyStore;
use crate::store::audit::AuditLog;
use crate::store::config::ConfigStore;
use crate::store::home::Home;
use crate::store::usage_log::UsageSink;
use crate::store::{responses::ResponseStore, sessions::SessionStore};

/// Shared application state, behind an [`Arc`].
pub struct AppState {
    /// Where state lives on disk.
    pub home: Home,
    /// The configuration, as an atomically swapped snapshot.
    pub store: Arc<ConfigStore>,
    /// Where usage records go.
    pub usage: UsageSink,
    /// Reports and look-ups over the usage written so far.
    pub usage_history: Arc<crate::store::history::FileUsageHistory>,
    /// What reports and look-ups read: the file history, or PostgreSQL's when shared.
    pub usage_reads: Arc<dyn crate::store::history::UsageHistory>,
    /// The PostgreSQL usage shipper, when `ROUTERLY_DATABASE_URL` is set.
    pub usage_shipper: Option<Arc<crate::store::pg::usage::UsageShipper>>,
    /// Pooled provider clients.
    pub upstream: Upstream,
    /// Signing keys for management sessions.
    pub session_keys: SessionKeys,
    /// Refresh-token families.
    pub sessions: Arc<dyn SessionStore>,
    /// Admin API keys.
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// Failed logins per account and address.
    pub login_limiter: LoginLimiter,
    /// The concurrency cap and queue in front of password hashing.
    pub password_hashing: crate::admission::PasswordHashing,
    /// The shared memory budget of request bodies.
    pub body_budget: crate::admission::BodyBudget,
    /// `data/audit.jsonl`.
    pub audit: AuditLog,
    /// When the service started.
    pub started_at: Instant,
    /// The address the service really listens on (flags and `ROUTERLY_HOST`/`_PORT` may
    /// override the settings); unset until it serves.
    pub listening_on: std::sync::OnceLock<std::net::SocketAddr>,
    /// Counters and histograms for `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Budget counters, reservations and alerts.
    pub budgets: Arc<Budgets>,
    /// Responses-API conversation state (`previous_response_id`).
    pub responses: Arc<dyn ResponseStore>,
    /// The routing engine: statistics, traces, policy caches.
    pub routing: Arc<Routing>,
}

/// The handle handlers receive.
pub type App = Arc<AppState>;
