//! The storage layer: everything Routerly keeps under `$ROUTERLY_HOME`.
//!
//! - [`home`]: the directory layout, first-start initialisation, the master key and the
//!   one-time setup token.
//! - [`secrets`]: the master key, `enc:v1:` encryption of secrets at rest, `env:` references.
//! - [`files`]: reading config files with `file:line:column` errors, atomic writes.
//! - [`config`]: the in-memory configuration ([`config::Snapshot`] behind an `ArcSwap`),
//!   serialized writes that never overwrite a hand edit, and a watcher that reloads hand edits.
//! - [`usage_log`]: the batched, fsynced append-only usage log and its reader.
//! - [`segments`], [`rollup`], [`history`]: the log's segments and sidecar indexes, the
//!   rollups kept as records are written, and the reports and look-ups over them.
//! - [`rotate`]: master-key rotation, all or nothing, with recovery at start.
//! - [`api_keys`]: admin API keys, stored hashed.
//! - [`audit`]: the append-only audit log of changes made through the API.
//! - [`sessions`], [`counters`], [`responses`]: state that several replicas share, each behind
//!   an async trait ([`sessions::SessionStore`], [`counters::CounterStore`],
//!   [`responses::ResponseStore`]) with a single-machine implementation; [`state`] re-exports
//!   them under their former paths.
//!
//! Architecture invariant: nothing here is called on the request path except
//! [`config::ConfigStore::snapshot`] (a lock-free pointer load), the snapshot's lookups,
//! [`usage_log::UsageSink::record`] (a channel send) and the in-memory [`counters::CounterStore`].

pub mod api_keys;
pub mod audit;
pub(crate) mod budget_config;
pub mod config;
pub mod counters;
pub mod files;
pub mod history;
pub mod home;
pub mod pg;
pub mod redis_counters;
pub mod redis_shared;
pub mod responses;
pub mod rollup;
pub mod rotate;
pub mod secrets;
pub mod segments;
pub mod sessions;
pub mod usage_log;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

pub use config::{ConfigStore, Draft, Snapshot, UpdateError, ValidationError};
pub use files::ConfigFileError;
pub use home::{ConfigKind, Home, InitReport};
pub use secrets::{MasterKey, SecretError, mask};
pub use usage_log::{UsageSink, UsageWriterHandle, spawn_usage_writer};

/// A boxed future, so the state traits stay usable as `dyn` objects.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the store could not start or finish an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A config file has a syntax or schema error.
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    /// The config files parse but do not agree with each other.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The master key is missing, malformed or not private.
    #[error("master key: {0}")]
    MasterKey(String),
    /// A setting (or its environment variable) is invalid.
    #[error("{0}")]
    Settings(String),
    /// PostgreSQL could not be used (the message never holds the connection string).
    #[error("{0}")]
    Database(String),
    /// Neither `ROUTERLY_HOME` nor `HOME` is set.
    #[error("cannot find the Routerly home: set ROUTERLY_HOME (or HOME)")]
    NoHome,
}

impl From<pg::DbError> for StoreError {
    fn from(error: pg::DbError) -> Self {
        StoreError::Database(error.to_string())
    }
}

impl StoreError {
    /// An IO error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}
