//! Email alerts over SMTP with `lettre` (Tokio, rustls): TLS `none` (plain), `starttls`
//! (required, never silently plain) or `tls` (implicit TLS), trusting the public roots plus
//! an optional CA file, so a relay with a private or self-signed certificate can be used.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use routerly_core::alerts::{AlertEvent, SmtpChannel, SmtpTls};

use super::DeliveryError;

/// How long one SMTP conversation may take, from resolving the host to the last reply.
const TIMEOUT: Duration = Duration::from_secs(20);

fn smtp_error(error: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::Smtp(error.to_string())
}

/// The email for `event`: a subject naming the event and limit, and a plain-text body.
pub fn message_for(
    channel: &SmtpChannel,
    event: &AlertEvent,
    public_url: Option<&str>,
) -> Result<Message, DeliveryError> {
    let from: Mailbox = channel
        .from
        .parse()
        .map_err(|error| smtp_error(format!("from `{}`: {error}", channel.from)))?;
    let mut builder = Message::builder().from(from).subject(format!(
        "[Routerly] {}: {}",
        event.event.as_str(),
        event.message
    ));
    for to in &channel.to {
        let mailbox: Mailbox = to
            .parse()
            .map_err(|error| smtp_error(format!("to `{to}`: {error}")))?;
        builder = builder.to(mailbox);
    }
    let mut body = format!(
        "{}\n\nEvent: {}\nTime: {}\n",
        event.message,
        event.event.as_str(),
        event.timestamp.to_rfc3339()
    );
    if let Some(limit) = &event.limit {
        body.push_str(&format!(
            "Limit: {} ({} level)\nScope: {}\nMetric: {}\nWindow: {} (from {} to {})\nUsed: {:.6} of {}\n",
            limit.id,
            limit.level,
            limit.scope,
            limit.metric,
            limit.window,
            limit.window_start.to_rfc3339(),
            limit.resets_at.to_rfc3339(),
            limit.used,
            limit.value,
        ));
    }
    if let Some(percent) = event.threshold_percent {
        body.push_str(&format!("Threshold: {percent}%\n"));
    }
    if let Some(url) = public_url {
        body.push_str(&format!(
            "\nDashboard: {}/dashboard\n",
            url.trim_end_matches('/')
        ));
    }
    body.push_str(&format!("\nEvent id: {}\n", event.id));
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(smtp_error)
}

/// Sends `event` through `channel`, within [`TIMEOUT`] in all (lettre's own timeout bounds
/// each read and write, not a server that accepts and never speaks).
pub async fn send(
    channel: &SmtpChannel,
    password: Option<&str>,
    event: &AlertEvent,
    public_url: Option<&str>,
) -> Result<(), DeliveryError> {
    tokio::time::timeout(
        TIMEOUT,
        send_unbounded(channel, password, event, public_url),
    )
    .await
    .unwrap_or_else(|_| {
        Err(smtp_error(format!(
            "{}:{} did not complete the conversation within {} s",
            channel.host,
            channel.port,
            TIMEOUT.as_secs()
        )))
    })
}

async fn send_unbounded(
    channel: &SmtpChannel,
    password: Option<&str>,
    event: &AlertEvent,
    public_url: Option<&str>,
) -> Result<(), DeliveryError> {
    let message = message_for(channel, event, public_url)?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(channel.host.clone())
        .port(channel.port)
        .timeout(Some(TIMEOUT));
    if channel.tls != SmtpTls::None {
        let mut parameters = TlsParameters::builder(channel.host.clone());
        if let Some(ca_file) = &channel.ca_file {
            let pem = tokio::fs::read(ca_file)
                .await
                .map_err(|error| smtp_error(format!("ca_file `{ca_file}`: {error}")))?;
            let certificate = Certificate::from_pem(&pem)
                .map_err(|error| smtp_error(format!("ca_file `{ca_file}`: {error}")))?;
            parameters = parameters.add_root_certificate(certificate);
        }
        let parameters = parameters.build_rustls().map_err(smtp_error)?;
        builder = builder.tls(match channel.tls {
            SmtpTls::Tls => Tls::Wrapper(parameters),
            _ => Tls::Required(parameters),
        });
    }
    if let (Some(username), Some(password)) = (&channel.username, password) {
        builder = builder.credentials(Credentials::new(username.clone(), password.to_owned()));
    }
    let transport = builder.build();
    transport.send(message).await.map_err(smtp_error)?;
    Ok(())
}
