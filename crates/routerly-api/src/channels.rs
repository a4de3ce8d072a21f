//! `/api/channels`: where budget alerts go (email over SMTP, signed webhooks), and a test
//! delivery. Passwords and webhook secrets are write-only: listings say whether one is set.

use routerly_core::alerts as core;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text (for a relay on loopback or a trusted network).
    None,
    /// A plain connection upgraded with STARTTLS, which must succeed.
    #[default]
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

impl From<core::SmtpTls> for SmtpTls {
    fn from(tls: core::SmtpTls) -> Self {
        match tls {
            core::SmtpTls::None => SmtpTls::None,
            core::SmtpTls::Starttls => SmtpTls::Starttls,
            core::SmtpTls::Tls => SmtpTls::Tls,
        }
    }
}

impl From<SmtpTls> for core::SmtpTls {
    fn from(tls: SmtpTls) -> Self {
        match tls {
            SmtpTls::None => core::SmtpTls::None,
            SmtpTls::Starttls => core::SmtpTls::Starttls,
            SmtpTls::Tls => core::SmtpTls::Tls,
        }
    }
}

/// A channel as listed: secrets replaced by whether one is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelView {
    /// Email over SMTP.
    Smtp {
        /// Stable id.
        id: String,
        /// Server host name or address.
        host: String,
        /// Server port.
        port: u16,
        /// Transport security.
        tls: SmtpTls,
        /// PEM file (on the server) of extra certificate authorities to trust.
        ca_file: Option<String>,
        /// Login name, if the server wants one.
        username: Option<String>,
        /// Whether a password is set (it is never shown).
        password_set: bool,
        /// Sender address.
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
    /// A signed JSON POST.
    Webhook {
        /// Stable id.
        id: String,
        /// Where to POST.
        url: String,
        /// Whether deliveries are signed (the secret is never shown).
        secret_set: bool,
    },
}

impl From<&core::Channel> for ChannelView {
    fn from(channel: &core::Channel) -> Self {
        match channel {
            core::Channel::Smtp(smtp) => ChannelView::Smtp {
                id: smtp.id.clone(),
                host: smtp.host.clone(),
                port: smtp.port,
                tls: smtp.tls.into(),
                ca_file: smtp.ca_file.clone(),
                username: smtp.username.clone(),
                password_set: smtp.password.is_some(),
                from: smtp.from.clone(),
                to: smtp.to.clone(),
            },
            core::Channel::Webhook(webhook) => ChannelView::Webhook {
                id: webhook.id.clone(),
                url: webhook.url.clone(),
                secret_set: webhook.secret.is_some(),
            },
        }
    }
}

impl ChannelView {
    /// The channel's id.
    pub fn id(&self) -> &str {
        match self {
            ChannelView::Smtp { id, .. } | ChannelView::Webhook { id, .. } => id,
        }
    }
}

/// `GET /api/channels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ChannelList {
    /// Every channel, in the order they were added.
    pub channels: Vec<ChannelView>,
}

/// Body of `POST /api/channels`, by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CreateChannel {
    /// Email over SMTP.
    Smtp(CreateSmtpChannel),
    /// A signed JSON POST.
    Webhook(CreateWebhookChannel),
}

/// `POST /api/channels` with `"type": "smtp"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateSmtpChannel {
    /// A chosen id (default: generated, `ch-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub id: Option<String>,
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Transport security (default `starttls`).
    #[serde(default)]
    pub tls: SmtpTls,
    /// PEM file (readable on the server) of extra certificate authorities to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub ca_file: Option<String>,
    /// Login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub username: Option<String>,
    /// Password, or `env:NAME` (admins only, names in `env_allow_list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub password: Option<String>,
    /// Sender address.
    pub from: String,
    /// Recipients (each entry may hold several, comma-separated); at least one.
    pub to: Vec<String>,
}

/// `POST /api/channels` with `"type": "webhook"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookChannel {
    /// A chosen id (default: generated, `ch-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub id: Option<String>,
    /// Where to POST: `http(s)://`; loopback, private and link-local hosts are refused
    /// unless `allow_private_webhooks` is set.
    pub url: String,
    /// HMAC-SHA256 key of `X-Routerly-Signature`, or `env:NAME`; unsigned when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub secret: Option<String>,
}

/// `POST /api/channels/{id}/test`: the test alert was delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ChannelTested {
    /// Always `true` (a failed delivery is an error answer).
    pub delivered: bool,
    /// The channel's id.
    pub channel: String,
    /// The id of the `test` event sent.
    pub event_id: String,
}
