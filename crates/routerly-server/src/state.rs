//! The state every handler shares.

use std::sync::Arc;
use std::time::Instant;

use routerly_providers::Upstream;

use crate::api::auth::SessionKeys;
use crate::store::config::ConfigStore;
use crate::store::home::Home;
use crate::store::state::SessionStore;
use crate::store::usage_log::UsageSink;

/// Shared application state, behind an [`Arc`].
pub struct AppState {
    /// Where state lives on disk.
    pub home: Home,
    /// The configuration, as an atomically swapped snapshot.
    pub store: Arc<ConfigStore>,
    /// Where usage records go.
    pub usage: UsageSink,
    /// Pooled provider clients.
    pub upstream: Upstream,
    /// Signing keys for management sessions.
    pub session_keys: SessionKeys,
    /// Refresh-token families.
    pub sessions: Arc<dyn SessionStore>,
    /// When the service started.
    pub started_at: Instant,
}

/// The handle handlers receive.
pub type App = Arc<AppState>;
