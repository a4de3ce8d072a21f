//! `/api/settings`: the service's settings (`config/settings.json`). Notification channels
//! have their own routes (`/api/channels`); the metrics token is write-only. The listen
//! address, port, log level and format, and `connections` apply at the next start.

use routerly_core::config as core;
use serde::{Deserialize, Deserializer, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Upstream timeouts in milliseconds (1 ms to 1 hour each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct UpstreamTimeouts {
    /// Establishing the connection.
    pub connect_ms: u64,
    /// From sending the request to the response head and first event.
    pub first_token_ms: u64,
    /// Silence allowed between two stream events (or while reading a whole body).
    pub idle_ms: u64,
}

/// How connections and request bodies are bounded (README, "Floods and connections").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
pub struct ConnectionLimits {
    /// Time a connection may take to send a whole request head, counted from the moment it
    /// waits for one (also the idle keep-alive timeout); 100 ms to 1 hour.
    pub header_timeout_ms: u64,
    /// Longest silence while a request body arrives; 100 ms to 1 hour.
    pub body_timeout_ms: u64,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Bytes of request bodies held in memory at once; at least `max_body_bytes`.
    pub body_memory_bytes: usize,
    /// Password hashes computed at once (1 to 256).
    pub password_hashing_concurrency: usize,
    /// Password checks that may wait for a hashing slot (0 to 100,000).
    pub password_hashing_queue: usize,
}

/// The settings as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct SettingsView {
    /// The address to listen on.
    pub host: String,
    /// The port to listen on.
    pub port: u16,
    /// Whether `/dashboard` is served.
    pub dashboard: bool,
    /// The log filter (`info`, `debug`, `routerly=debug,info`, …).
    pub log_level: String,
    /// The shape of log lines.
    pub log_format: LogFormat,
    /// The address people reach Routerly at, for links in alerts.
    pub public_url: Option<String>,
    /// The largest request body on `/v1` (1 KiB to 1 GiB).
    pub max_body_bytes: usize,
    /// Upstream timeouts, unless a model or project overrides them.
    pub timeouts: UpstreamTimeouts,
    /// Seconds live requests get to finish on SIGTERM (0 to 3600).
    pub shutdown_grace_seconds: u64,
    /// Percentages of a limit that send an alert (at most 32, each 1 to 1000).
    pub alert_thresholds: Vec<u32>,
    /// Whether `/metrics` needs a bearer token (the token is never shown).
    pub metrics_token_set: bool,
    /// The time zone of daily, weekly and monthly budget windows (an IANA name).
    pub budget_time_zone: String,
    /// Output tokens assumed for a budget reservation when a call names no limit.
    pub budget_default_output_tokens: u64,
    /// Whether webhooks may target loopback, private and link-local addresses.
    pub allow_private_webhooks: bool,
    /// Size at which the usage log is rotated into a segment.
    pub usage_log_rotate_bytes: u64,
    /// Patterns of environment variable names that `env:NAME` secrets may read.
    pub env_allow_list: Vec<String>,
    /// Days raw usage records are kept; `null`: for ever.
    pub usage_retention_days: Option<u32>,
    /// Days after which rotated usage segments are compressed; `null`: never.
    pub usage_compress_after_days: Option<u32>,
    /// Days of hourly usage rollups before they are kept by day only.
    pub usage_hourly_rollup_days: u32,
    /// How connections and request bodies are bounded.
    pub connections: ConnectionLimits,
    /// Proxies (addresses or CIDR blocks) whose forwarding headers are believed.
    pub trusted_proxies: Vec<String>,
}

impl From<&core::Settings> for SettingsView {
    fn from(settings: &core::Settings) -> Self {
        let (timeouts, connections) = (settings.timeouts, settings.connections);
        SettingsView {
            host: settings.host.clone(),
            port: settings.port,
            dashboard: settings.dashboard,
            log_level: settings.log_level.clone(),
            log_format: match settings.log_format {
                core::LogFormat::Text => LogFormat::Text,
                core::LogFormat::Json => LogFormat::Json,
            },
            public_url: settings.public_url.clone(),
            max_body_bytes: settings.max_body_bytes,
            timeouts: UpstreamTimeouts {
                connect_ms: timeouts.connect_ms,
                first_token_ms: timeouts.first_token_ms,
                idle_ms: timeouts.idle_ms,
            },
            shutdown_grace_seconds: settings.shutdown_grace_seconds,
            alert_thresholds: settings.alert_thresholds.clone(),
            metrics_token_set: settings.metrics_token.is_some(),
            budget_time_zone: settings.budget_time_zone.clone(),
            budget_default_output_tokens: settings.budget_default_output_tokens,
            allow_private_webhooks: settings.allow_private_webhooks,
            usage_log_rotate_bytes: settings.usage_log_rotate_bytes,
            env_allow_list: settings.env_allow_list.clone(),
            usage_retention_days: settings.usage_retention_days,
            usage_compress_after_days: settings.usage_compress_after_days,
            usage_hourly_rollup_days: settings.usage_hourly_rollup_days,
            connections: ConnectionLimits {
                header_timeout_ms: connections.header_timeout_ms,
                body_timeout_ms: connections.body_timeout_ms,
                max_connections: connections.max_connections,
                body_memory_bytes: connections.body_memory_bytes,
                password_hashing_concurrency: connections.password_hashing_concurrency,
                password_hashing_queue: connections.password_hashing_queue,
            },
            trusted_proxies: settings
                .trusted_proxies
                .iter()
                .map(|proxy| {
                    serde_json::to_value(proxy)
                        .ok()
                        .and_then(|value| value.as_str().map(str::to_owned))
                        .unwrap_or_default()
                })
                .collect(),
        }
    }
}

/// A member that may be set to `null`: absent is `None`, `null` is `Some(None)`.
pub(crate) fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A change to upstream timeouts: what is absent is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTimeoutsChange {
    /// Establishing the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub connect_ms: Option<u64>,
    /// From sending the request to the response head and first event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub first_token_ms: Option<u64>,
    /// Silence allowed between two stream events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub idle_ms: Option<u64>,
}

/// A change to the connection limits: what is absent is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimitsChange {
    /// See [`ConnectionLimits::header_timeout_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub header_timeout_ms: Option<u64>,
    /// See [`ConnectionLimits::body_timeout_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub body_timeout_ms: Option<u64>,
    /// See [`ConnectionLimits::max_connections`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub max_connections: Option<usize>,
    /// See [`ConnectionLimits::body_memory_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub body_memory_bytes: Option<usize>,
    /// See [`ConnectionLimits::password_hashing_concurrency`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub password_hashing_concurrency: Option<usize>,
    /// See [`ConnectionLimits::password_hashing_queue`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub password_hashing_queue: Option<usize>,
}

/// Body of `PATCH /api/settings`: what is absent is kept, nested objects included; members
/// documented as nullable are cleared by `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// See [`SettingsView::host`] (not blank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub host: Option<String>,
    /// See [`SettingsView::port`] (1 to 65535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub port: Option<u16>,
    /// See [`SettingsView::dashboard`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub dashboard: Option<bool>,
    /// See [`SettingsView::log_level`] (not blank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub log_level: Option<String>,
    /// See [`SettingsView::log_format`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub log_format: Option<LogFormat>,
    /// An `http(s)://` URL; `null` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional, type = "string | null")]
    #[schema(value_type = Option<String>)]
    pub public_url: Option<Option<String>>,
    /// See [`SettingsView::max_body_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub max_body_bytes: Option<usize>,
    /// See [`SettingsView::timeouts`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub timeouts: Option<UpstreamTimeoutsChange>,
    /// See [`SettingsView::shutdown_grace_seconds`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub shutdown_grace_seconds: Option<u64>,
    /// See [`SettingsView::alert_thresholds`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub alert_thresholds: Option<Vec<u32>>,
    /// The bearer token `/metrics` requires (stored sealed, never shown); `null` opens
    /// `/metrics` again.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional, type = "string | null")]
    #[schema(value_type = Option<String>)]
    pub metrics_token: Option<Option<String>>,
    /// See [`SettingsView::budget_time_zone`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub budget_time_zone: Option<String>,
    /// See [`SettingsView::budget_default_output_tokens`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub budget_default_output_tokens: Option<u64>,
    /// See [`SettingsView::allow_private_webhooks`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub allow_private_webhooks: Option<bool>,
    /// See [`SettingsView::usage_log_rotate_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub usage_log_rotate_bytes: Option<u64>,
    /// See [`SettingsView::env_allow_list`] (admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub env_allow_list: Option<Vec<String>>,
    /// Days raw usage records are kept; `null`: for ever.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional, type = "number | null")]
    #[schema(value_type = Option<u32>)]
    pub usage_retention_days: Option<Option<u32>>,
    /// Days after which rotated segments are compressed; `null`: never.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional, type = "number | null")]
    #[schema(value_type = Option<u32>)]
    pub usage_compress_after_days: Option<Option<u32>>,
    /// See [`SettingsView::usage_hourly_rollup_days`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub usage_hourly_rollup_days: Option<u32>,
    /// See [`SettingsView::connections`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub connections: Option<ConnectionLimitsChange>,
    /// See [`SettingsView::trusted_proxies`]: addresses or CIDR blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub trusted_proxies: Option<Vec<String>>,
}

impl UpdateSettings {
    /// Applies the change to `settings`; `Err((field, why))` for a value that cannot be
    /// read (a proxy that is not an address or CIDR block). Ranges are checked where the
    /// configuration is validated.
    pub fn apply(self, settings: &mut core::Settings) -> Result<(), (String, String)> {
        fn set<T>(target: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *target = value;
            }
        }
        set(&mut settings.host, self.host);
        set(&mut settings.port, self.port);
        set(&mut settings.dashboard, self.dashboard);
        set(&mut settings.log_level, self.log_level);
        set(
            &mut settings.log_format,
            self.log_format.map(|format| match format {
                LogFormat::Text => core::LogFormat::Text,
                LogFormat::Json => core::LogFormat::Json,
            }),
        );
        set(&mut settings.public_url, self.public_url);
        set(&mut settings.max_body_bytes, self.max_body_bytes);
        if let Some(change) = self.timeouts {
            let timeouts = &mut settings.timeouts;
            set(&mut timeouts.connect_ms, change.connect_ms);
            set(&mut timeouts.first_token_ms, change.first_token_ms);
            set(&mut timeouts.idle_ms, change.idle_ms);
        }
        set(
            &mut settings.shutdown_grace_seconds,
            self.shutdown_grace_seconds,
        );
        set(&mut settings.alert_thresholds, self.alert_thresholds);
        set(&mut settings.metrics_token, self.metrics_token);
        set(&mut settings.budget_time_zone, self.budget_time_zone);
        set(
            &mut settings.budget_default_output_tokens,
            self.budget_default_output_tokens,
        );
        set(
            &mut settings.allow_private_webhooks,
            self.allow_private_webhooks,
        );
        set(
            &mut settings.usage_log_rotate_bytes,
            self.usage_log_rotate_bytes,
        );
        set(&mut settings.env_allow_list, self.env_allow_list);
        set(
            &mut settings.usage_retention_days,
            self.usage_retention_days,
        );
        set(
            &mut settings.usage_compress_after_days,
            self.usage_compress_after_days,
        );
        set(
            &mut settings.usage_hourly_rollup_days,
            self.usage_hourly_rollup_days,
        );
        if let Some(change) = self.connections {
            let connections = &mut settings.connections;
            set(&mut connections.header_timeout_ms, change.header_timeout_ms);
            set(&mut connections.body_timeout_ms, change.body_timeout_ms);
            set(&mut connections.max_connections, change.max_connections);
            set(&mut connections.body_memory_bytes, change.body_memory_bytes);
            set(
                &mut connections.password_hashing_concurrency,
                change.password_hashing_concurrency,
            );
            set(
                &mut connections.password_hashing_queue,
                change.password_hashing_queue,
            );
        }
        if let Some(proxies) = self.trusted_proxies {
            settings.trusted_proxies = proxies
                .iter()
                .enumerate()
                .map(|(index, proxy)| {
                    proxy
                        .parse()
                        .map_err(|why| (format!("trusted_proxies[{index}]"), why))
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }
}
