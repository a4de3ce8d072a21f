//! `routerly channel add|list|test|remove`: where budget alerts go.

use clap::Subcommand;
use reqwest::Method;
use routerly_api::channels::{
    ChannelList, ChannelTested, ChannelView, CreateChannel, CreateSmtpChannel,
    CreateWebhookChannel, SmtpTls,
};

use super::{print_json, print_table, segment};
use crate::client::Client;

/// `routerly channel …`.
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Add a notification channel.
    #[command(subcommand)]
    Add(ChannelAdd),
    /// List channels (secrets never shown).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a test alert through a channel now.
    Test {
        /// The channel's id.
        id: String,
    },
    /// Remove a channel.
    Remove {
        /// The channel's id.
        id: String,
    },
}

/// `routerly channel add …`.
#[derive(Debug, Subcommand)]
pub enum ChannelAdd {
    /// A signed JSON POST to a URL.
    Webhook {
        /// Where to POST.
        #[arg(long)]
        url: String,
        /// Key of the `X-Routerly-Signature` HMAC (or `env:NAME`).
        #[arg(long)]
        secret: Option<String>,
        /// A chosen id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Print the channel as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Email over SMTP.
    Smtp {
        /// SMTP server.
        #[arg(long)]
        host: String,
        /// SMTP port.
        #[arg(long)]
        port: u16,
        /// none, starttls (default) or tls.
        #[arg(long)]
        tls: Option<String>,
        /// PEM file (on the server) of a CA to trust, for a private or self-signed certificate.
        #[arg(long)]
        ca_file: Option<String>,
        /// Login name.
        #[arg(long, requires = "password")]
        username: Option<String>,
        /// Password (or `env:NAME`).
        #[arg(long, requires = "username")]
        password: Option<String>,
        /// Sender address.
        #[arg(long)]
        from: String,
        /// Recipients, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// A chosen id (default: generated).
        #[arg(long)]
        id: Option<String>,
        /// Print the channel as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The `--tls` value.
fn tls_mode(tls: Option<&str>) -> anyhow::Result<SmtpTls> {
    match tls {
        None | Some("starttls") => Ok(SmtpTls::Starttls),
        Some("tls") => Ok(SmtpTls::Tls),
        Some("none") => Ok(SmtpTls::None),
        Some(other) => anyhow::bail!("--tls {other}: use none, starttls or tls"),
    }
}

fn tls_name(tls: SmtpTls) -> &'static str {
    match tls {
        SmtpTls::None => "none",
        SmtpTls::Starttls => "starttls",
        SmtpTls::Tls => "tls",
    }
}

/// Runs `routerly channel …`.
pub async fn run(command: ChannelCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        ChannelCommand::Add(add) => {
            let (body, json_output) = match add {
                ChannelAdd::Webhook {
                    url,
                    secret,
                    id,
                    json,
                } => (
                    CreateChannel::Webhook(CreateWebhookChannel { id, url, secret }),
                    json,
                ),
                ChannelAdd::Smtp {
                    host,
                    port,
                    tls,
                    ca_file,
                    username,
                    password,
                    from,
                    to,
                    id,
                    json,
                } => (
                    CreateChannel::Smtp(CreateSmtpChannel {
                        id,
                        host,
                        port,
                        tls: tls_mode(tls.as_deref())?,
                        ca_file,
                        username,
                        password,
                        from,
                        to,
                    }),
                    json,
                ),
            };
            let channel: ChannelView = client
                .call(Method::POST, "/api/channels", Some(&body))
                .await?;
            if json_output {
                return print_json(&channel);
            }
            let kind = match channel {
                ChannelView::Smtp { .. } => "smtp",
                ChannelView::Webhook { .. } => "webhook",
            };
            println!("Added {kind} channel {}.", channel.id());
        }
        ChannelCommand::List { json } => {
            let answer: ChannelList = client
                .call(Method::GET, "/api/channels", None::<&()>)
                .await?;
            if json {
                return print_json(&answer.channels);
            }
            let rows: Vec<Vec<String>> = answer
                .channels
                .into_iter()
                .map(|channel| match channel {
                    ChannelView::Smtp {
                        id,
                        host,
                        port,
                        tls,
                        to,
                        ..
                    } => vec![
                        id,
                        "smtp".to_owned(),
                        format!("{host}:{port} ({}) → {}", tls_name(tls), to.join(", ")),
                    ],
                    ChannelView::Webhook { id, url, .. } => vec![id, "webhook".to_owned(), url],
                })
                .collect();
            print_table(&["ID", "TYPE", "TARGET"], &rows);
        }
        ChannelCommand::Test { id } => {
            let path = format!("/api/channels/{}/test", segment(&id));
            let _: ChannelTested = super::with_spinner(
                &format!("Sending a test alert through {id}…"),
                client.call(Method::POST, &path, None::<&()>),
            )
            .await?;
            println!("Test alert delivered through {id}.");
        }
        ChannelCommand::Remove { id } => {
            client
                .delete(&format!("/api/channels/{}", segment(&id)))
                .await?;
            println!("Removed channel {id}.");
        }
    }
    Ok(())
}
