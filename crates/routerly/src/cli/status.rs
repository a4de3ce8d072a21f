//! `routerly status`: is the server up, and who am I on it.

use reqwest::Method;
use serde_json::json;

use super::{print_json, text};
use crate::client::{Client, SessionsFile, get_anonymous};

/// Options of `routerly status`.
#[derive(Debug, clap::Args)]
pub struct StatusOptions {
    /// The server's URL (default: the current session's).
    #[arg(long)]
    url: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `routerly status`: fails (non-zero exit) when the server cannot be reached.
pub async fn run(options: StatusOptions, server: Option<String>) -> anyhow::Result<()> {
    let client = Client::open(server.as_deref()).ok();
    let url = match (&options.url, &client) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(client)) => client.session().url.clone(),
        (None, None) => {
            let sessions = SessionsFile::load()?;
            anyhow::bail!(
                "no server: give --url or log in first ({} saved session(s))",
                sessions.servers.len()
            );
        }
    };
    let health = get_anonymous(&url, "/health").await?;
    let me = match client {
        Some(mut client) if client.session().url == url => {
            client.request(Method::GET, "/api/me", None).await.ok()
        }
        _ => None,
    };
    if options.json {
        return print_json(&json!({ "url": url, "health": health, "me": me }));
    }
    println!(
        "{url}: {} (version {}, up {} s)",
        text(&health, "/status"),
        text(&health, "/version"),
        text(&health, "/uptime")
    );
    match me {
        Some(me) => println!(
            "logged in as {} ({})",
            text(&me, "/email"),
            text(&me, "/role")
        ),
        None => println!("not logged in to this server"),
    }
    Ok(())
}
