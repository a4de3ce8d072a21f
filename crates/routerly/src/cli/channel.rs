//! `routerly channel add|list|test|remove`: where budget alerts go.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::{print_json, print_table, segment, text};
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
                    json!({ "type": "webhook", "url": url, "secret": secret, "id": id }),
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
                    json!({
                        "type": "smtp", "host": host, "port": port,
                        "tls": tls.unwrap_or_else(|| "starttls".to_owned()),
                        "ca_file": ca_file, "username": username, "password": password,
                        "from": from, "to": to, "id": id,
                    }),
                    json,
                ),
            };
            let channel = client
                .request(Method::POST, "/api/channels", Some(&body))
                .await?;
            if json_output {
                return print_json(&channel);
            }
            println!(
                "Added {} channel {}.",
                text(&channel, "/type"),
                text(&channel, "/id")
            );
        }
        ChannelCommand::List { json } => {
            let answer = client.request(Method::GET, "/api/channels", None).await?;
            if json {
                return print_json(&answer["channels"]);
            }
            let rows: Vec<Vec<String>> = answer["channels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|channel| {
                    let target = if channel["type"] == "smtp" {
                        format!(
                            "{}:{} ({}) → {}",
                            text(channel, "/host"),
                            text(channel, "/port"),
                            text(channel, "/tls"),
                            channel["to"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|to| to.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else {
                        text(channel, "/url")
                    };
                    vec![text(channel, "/id"), text(channel, "/type"), target]
                })
                .collect();
            print_table(&["ID", "TYPE", "TARGET"], &rows);
        }
        ChannelCommand::Test { id } => {
            client
                .request(
                    Method::POST,
                    &format!("/api/channels/{}/test", segment(&id)),
                    None,
                )
                .await?;
            println!("Test alert delivered through {id}.");
        }
        ChannelCommand::Remove { id } => {
            client
                .request(
                    Method::DELETE,
                    &format!("/api/channels/{}", segment(&id)),
                    None,
                )
                .await?;
            println!("Removed channel {id}.");
        }
    }
    Ok(())
}
