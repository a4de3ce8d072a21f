//! Notification channels (as stored in `config/settings.json`) and the budget events sent
//! through them. Pure data: the server's notifier delivers them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A place alerts are sent to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Channel {
    /// Email over SMTP.
    Smtp(SmtpChannel),
    /// A signed HTTP POST.
    Webhook(WebhookChannel),
}

impl Channel {
    /// The channel's id.
    pub fn id(&self) -> &str {
        match self {
            Channel::Smtp(smtp) => &smtp.id,
            Channel::Webhook(webhook) => &webhook.id,
        }
    }

    /// `smtp` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Smtp(_) => "smtp",
            Channel::Webhook(_) => "webhook",
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text (for a relay on loopback or a trusted network).
    None,
    /// Plain connection upgraded with STARTTLS, which must succeed.
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

impl SmtpTls {
    /// The name used in files, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }
}

/// An SMTP channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpChannel {
    /// Stable id.
    pub id: String,
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Transport security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// PEM file of extra certificate authorities to trust (for a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Login name, if the server wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password: `enc:v1:…` (encrypted under the master key) or `env:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
}

/// A webhook channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    /// Stable id.
    pub id: String,
    /// Where to POST.
    pub url: String,
    /// HMAC-SHA256 key for `X-Routerly-Signature`: `enc:v1:…` or `env:NAME`; unsigned
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Kinds of alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A configured percentage of a limit was crossed.
    #[serde(rename = "budget.threshold")]
    Threshold,
    /// A limit is used up (a call was refused or usage reached it).
    #[serde(rename = "budget.exhausted")]
    Exhausted,
    /// A new window began for a limit that was exhausted in the last one.
    #[serde(rename = "budget.reset")]
    Reset,
    /// Sent by `routerly channel test`.
    #[serde(rename = "test")]
    Test,
}

impl EventKind {
    /// The event's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Threshold => "budget.threshold",
            EventKind::Exhausted => "budget.exhausted",
            EventKind::Reset => "budget.reset",
            EventKind::Test => "test",
        }
    }
}

/// One alert, as webhooks receive it (the JSON body) and emails describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Unique id of this delivery's event.
    pub id: String,
    /// `budget.threshold`, `budget.exhausted`, `budget.reset` or `test`.
    pub event: EventKind,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The limit concerned (absent for `test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<AlertLimit>,
    /// The crossed percentage (`budget.threshold` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_percent: Option<u32>,
    /// A sentence for people.
    pub message: String,
}

/// The limit an alert is about, with its use when the alert fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertLimit {
    /// The limit's id.
    pub id: String,
    /// Its scope, such as `project:p1`.
    pub scope: String,
    /// Its level, such as `project`.
    pub level: String,
    /// Its metric.
    pub metric: String,
    /// Its window, such as `daily` or `rolling:1h`.
    pub window: String,
    /// Its value.
    pub value: f64,
    /// Used in the window when the alert fired.
    pub used: f64,
    /// Start of the window.
    pub window_start: DateTime<Utc>,
    /// When the window resets.
    pub resets_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_tagged_and_refuse_unknown_fields() {
        let channel: Channel = serde_json::from_str(
            r#"{"type": "smtp", "id": "c1", "host": "127.0.0.1", "port": 25, "tls": "none",
                "from": "a@b.c", "to": ["d@e.f"]}"#,
        )
        .expect("smtp channel");
        assert_eq!(channel.kind(), "smtp");
        let back = serde_json::to_value(&channel).expect("json");
        assert_eq!(back["type"], "smtp");
        assert_eq!(back["tls"], "none");
        let error = serde_json::from_str::<Channel>(
            r#"{"type": "webhook", "id": "w", "url": "https://x", "secrit": "s"}"#,
        )
        .expect_err("typo refused");
        assert!(error.to_string().contains("secrit"), "{error}");
    }
}
