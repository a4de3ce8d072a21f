//! `/api/channels`: notification channels (kept in `config/settings.json`), and
//! `POST /api/channels/{id}/test`, which sends a `test` event at once and reports the result.
//!
//! Passwords and webhook secrets are sealed under the master key before they are stored
//! (an `env:NAME` reference is kept as it is) and never shown again. A webhook URL whose
//! host is loopback, private or link-local is refused at creation unless
//! `allow_private_webhooks` is set; deliveries check again after DNS resolution.

use axum::extract::{Path, State};
use routerly_api::channels::{
    ChannelList, ChannelTested, ChannelView, CreateChannel, CreateSmtpChannel, CreateWebhookChannel,
};
use routerly_core::alerts::{Channel, SmtpChannel, WebhookChannel};
use serde_json::{Map, Value};

use super::auth::AuthUser;
use super::{ApiError, ApiJson, ErrorCode};
use crate::notify::{self, DeliveryError, webhook};
use crate::state::App;

/// `GET /api/channels`.
#[utoipa::path(get, path = "/api/channels", tag = "channels", operation_id = "list_channels",
    responses((status = 200, body = ChannelList)))]
pub async fn list(State(app): State<App>) -> axum::Json<ChannelList> {
    let snapshot = app.store.snapshot();
    axum::Json(ChannelList {
        channels: snapshot
            .settings
            .notification_channels
            .iter()
            .map(ChannelView::from)
            .collect(),
    })
}

/// `GET /api/channels/{id}`.
#[utoipa::path(get, path = "/api/channels/{id}", tag = "channels", operation_id = "show_channel",
    params(("id" = String, Path, description = "The channel's id.")),
    responses((status = 200, body = ChannelView)))]
pub async fn show(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<axum::Json<ChannelView>, ApiError> {
    let snapshot = app.store.snapshot();
    snapshot
        .settings
        .notification_channels
        .iter()
        .find(|channel| channel.id() == id)
        .map(|channel| axum::Json(ChannelView::from(channel)))
        .ok_or_else(|| ApiError::not_found(format!("no channel `{id}`")))
}

/// A `POST /api/channels` body read by its `type`, so that an error inside it names its
/// field (see [`super::typed_value`]).
fn read_create(mut body: Map<String, Value>) -> Result<CreateChannel, ApiError> {
    match body.remove("type").as_ref().and_then(Value::as_str) {
        Some("smtp") => super::typed_value(Value::Object(body)).map(CreateChannel::Smtp),
        Some("webhook") => super::typed_value(Value::Object(body)).map(CreateChannel::Webhook),
        _ => Err(ApiError::invalid(
            "type",
            "`type` must be `smtp` or `webhook`",
        )),
    }
}

fn new_id(given: Option<String>) -> String {
    given.unwrap_or_else(|| format!("ch-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
}

/// `POST /api/channels`.
#[utoipa::path(post, path = "/api/channels", tag = "channels", operation_id = "create_channel",
    request_body = CreateChannel, responses((status = 201, body = ChannelView)))]
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<(http::StatusCode, axum::Json<ChannelView>), ApiError> {
    let body = read_create(body)?;
    let key = app.store.master_key();
    let seal = |secret: Option<String>| secret.filter(|s| !s.is_empty()).map(|s| key.seal(&s));
    let channel = match body {
        CreateChannel::Smtp(CreateSmtpChannel {
            id,
            host,
            port,
            tls,
            ca_file,
            username,
            password,
            from,
            to,
        }) => {
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
                tls: tls.into(),
                ca_file,
                username,
                password: seal(password),
                from,
                to,
            })
        }
        CreateChannel::Webhook(CreateWebhookChannel { id, url, secret }) => {
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
    let view = ChannelView::from(&channel);
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
#[utoipa::path(delete, path = "/api/channels/{id}", tag = "channels", operation_id = "remove_channel",
    params(("id" = String, Path, description = "The channel's id.")),
    responses((status = 204, description = "The channel is removed.")))]
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

/// `POST /api/channels/{id}/test`: one delivery of a `test` event, now (bounded by the
/// delivery timeouts: 20 s for SMTP, 10 s for a webhook).
#[utoipa::path(post, path = "/api/channels/{id}/test", tag = "channels", operation_id = "test_channel",
    params(("id" = String, Path, description = "The channel's id.")),
    responses((status = 200, body = ChannelTested)))]
pub async fn test(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<axum::Json<ChannelTested>, ApiError> {
    let snapshot = app.store.snapshot();
    let channel = snapshot
        .settings
        .notification_channels
        .iter()
        .find(|channel| channel.id() == id)
        .ok_or_else(|| ApiError::not_found(format!("no channel `{id}`")))?;
    let event = notify::test_event();
    match notify::deliver(&app.store, channel, &event).await {
        Ok(()) => Ok(axum::Json(ChannelTested {
            delivered: true,
            channel: id,
            event_id: event.id,
        })),
        Err(DeliveryError::Refused(message)) => Err(ApiError::invalid("url", message)),
        Err(error) => Err(ApiError::new(
            ErrorCode::DeliveryFailed,
            format!("the test alert could not be delivered: {error}"),
        )),
    }
}
