//! `/api/channels`: notification channels (kept in `config/settings.json`), and
//! `POST /api/channels/{id}/test`, which sends a `test` event at once and reports the result.
//!
//! Passwords and webhook secrets are sealed under the master key before they are stored
//! (an `env:NAME` reference is kept as it is) and never shown again. A webhook URL whose
//! host is loopback, private or link-local is refused at creation unless
//! `allow_private_webhooks` is set; deliveries check again after DNS resolution.

use axum::extract::{Path, State};
use routerly_core::alerts::{Channel, SmtpChannel, SmtpTls, WebhookChannel};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AuthUser;
use super::{ApiError, ApiJson, ErrorCode};
use crate::notify::{self, DeliveryError, webhook};
use crate::state::App;

/// A channel as listings show it: secrets replaced by whether one is set.
fn channel_view(channel: &Channel) -> Value {
    match channel {
        Channel::Smtp(smtp) => json!({
            "id": smtp.id,
            "type": "smtp",
            "host": smtp.host,
            "port": smtp.port,
            "tls": smtp.tls,
            "ca_file": smtp.ca_file,
            "username": smtp.username,
            "password_set": smtp.password.is_some(),
            "from": smtp.from,
            "to": smtp.to,
        }),
        Channel::Webhook(webhook) => json!({
            "id": webhook.id,
            "type": "webhook",
            "url": webhook.url,
            "secret_set": webhook.secret.is_some(),
        }),
    }
}

/// `GET /api/channels`.
pub async fn list(State(app): State<App>) -> axum::Json<Value> {
    let snapshot = app.store.snapshot();
    let channels: Vec<Value> = snapshot
        .settings
        .notification_channels
        .iter()
        .map(channel_view)
        .collect();
    axum::Json(json!({ "channels": channels }))
}

/// `GET /api/channels/{id}`.
pub async fn show(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let snapshot = app.store.snapshot();
    snapshot
        .settings
        .notification_channels
        .iter()
        .find(|channel| channel.id() == id)
        .map(|channel| axum::Json(channel_view(channel)))
        .ok_or_else(|| ApiError::not_found(format!("no channel `{id}`")))
}

/// Body of `POST /api/channels`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CreateChannel {
    /// Email.
    Smtp {
        #[serde(default)]
        id: Option<String>,
        host: String,
        port: u16,
        #[serde(default)]
        tls: SmtpTls,
        #[serde(default)]
        ca_file: Option<String>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        from: String,
        to: Vec<String>,
    },
    /// A signed POST.
    Webhook {
        #[serde(default)]
        id: Option<String>,
        url: String,
        #[serde(default)]
        secret: Option<String>,
    },
}

fn new_id(given: Option<String>) -> String {
    given.unwrap_or_else(|| format!("ch-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
}

/// `POST /api/channels`.
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateChannel>,
) -> Result<(http::StatusCode, axum::Json<Value>), ApiError> {
    let key = app.store.master_key();
    let seal = |secret: Option<String>| secret.filter(|s| !s.is_empty()).map(|s| key.seal(&s));
    let channel = match body {
        CreateChannel::Smtp {
            id,
            host,
            port,
            tls,
            ca_file,
            username,
            password,
            from,
            to,
        } => {
            let to: Vec<String> = to
                .iter()
                .flat_map(|list| list.split(','))
                .map(str::trim)
                .filter(|address| !address.is_empty())
                .map(str::to_owned)
                .collect();
            for (field, address) in
                std::iter::once(("from", &from)).chain(to.iter().map(|a| ("to", a)))
            {
                address
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|error| ApiError::invalid(field, format!("`{address}`: {error}")))?;
            }
            if to.is_empty() {
                return Err(ApiError::invalid("to", "at least one recipient is needed"));
            }
            if let Some(ca_file) = &ca_file
                && !std::path::Path::new(ca_file).is_file()
            {
                return Err(ApiError::invalid(
                    "ca_file",
                    format!("`{ca_file}` is not a readable file on the server"),
                ));
            }
            Channel::Smtp(SmtpChannel {
                id: new_id(id),
                host,
                port,
                tls,
                ca_file,
                username,
                password: seal(password),
                from,
                to,
            })
        }
        CreateChannel::Webhook { id, url, secret } => {
            let allow_private = app.store.snapshot().settings.allow_private_webhooks;
            webhook::check_url(&url, allow_private)
                .await
                .map_err(|error| ApiError::invalid("url", error.to_string()))?;
            Channel::Webhook(WebhookChannel {
                id: new_id(id),
                url,
                secret: seal(secret),
            })
        }
    };
    let view = channel_view(&channel);
    super::grants::update(&app, &user, move |draft| {
        if draft
            .settings
            .notification_channels
            .iter()
            .any(|existing| existing.id() == channel.id())
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("a channel `{}` exists already", channel.id()),
            ));
        }
        draft.settings.notification_channels.push(channel);
        Ok(())
    })
    .await?;
    Ok((http::StatusCode::CREATED, axum::Json(view)))
}

/// `DELETE /api/channels/{id}`.
pub async fn remove(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<http::StatusCode, ApiError> {
    super::grants::update(&app, &user, move |draft| {
        let before = draft.settings.notification_channels.len();
        draft
            .settings
            .notification_channels
            .retain(|channel| channel.id() != id);
        if draft.settings.notification_channels.len() == before {
            return Err(ApiError::not_found(format!("no channel `{id}`")));
        }
        Ok(())
    })
    .await?;
    Ok(http::StatusCode::NO_CONTENT)
}

/// `POST /api/channels/{id}/test`: one delivery of a `test` event, now.
pub async fn test(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let snapshot = app.store.snapshot();
    let channel = snapshot
        .settings
        .notification_channels
        .iter()
        .find(|channel| channel.id() == id)
        .ok_or_else(|| ApiError::not_found(format!("no channel `{id}`")))?;
    let event = notify::test_event();
    match notify::deliver(&app.store, channel, &event).await {
        Ok(()) => Ok(axum::Json(
            json!({ "delivered": true, "channel": id, "event_id": event.id }),
        )),
        Err(DeliveryError::Refused(message)) => Err(ApiError::invalid("url", message)),
        Err(error) => Err(ApiError::new(
            ErrorCode::DeliveryFailed,
            format!("the test alert could not be delivered: {error}"),
        )),
    }
}
