//! `/api/system`: what the service is and how it is doing, and master-key rotation.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// `GET /api/system`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct SystemInfo {
    /// Routerly's version.
    pub version: String,
    /// Seconds since the service started.
    #[ts(type = "number")]
    pub uptime_seconds: u64,
    /// The home directory (`ROUTERLY_HOME`).
    pub home: String,
    /// The address the service is really listening on (`host:port`); the configured one
    /// until the listener is bound.
    pub listen: String,
    /// `host:port` from the settings (differs from `listen` when `--host`/`--port` or the
    /// environment override them, or when port 0 picked a free port).
    pub configured_listen: String,
    /// How many models are configured.
    pub models: u32,
    /// How many projects exist.
    pub projects: u32,
    /// How many users exist.
    pub users: u32,
    /// Whether usage records are being written.
    pub usage_writer: UsageWriter,
    /// Why the last reload of a hand-edited config file failed, if it did.
    pub config_error: Option<String>,
    /// Where the master key comes from.
    pub master_key_source: MasterKeySource,
}

/// Whether usage records are being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum UsageWriter {
    /// Records are written.
    Ok,
    /// Writing records fails; see the service log.
    Failing,
}

/// Where the master key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum MasterKeySource {
    /// `ROUTERLY_SECRET_KEY`; Routerly cannot rotate it.
    Environment,
    /// `config/secret`.
    File,
}

/// `GET /health` (outside `/api`, unauthenticated): the process answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// Routerly's version.
    pub version: String,
    /// Seconds since the service started.
    #[ts(type = "number")]
    pub uptime: u64,
}

/// `POST /api/system/rotate-key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct KeyRotated {
    /// Always true: the rotation is all or nothing.
    pub rotated: bool,
    /// How many secrets in the config files were re-encrypted under the new key.
    #[ts(type = "number")]
    pub secrets_reencrypted: u64,
}
