//! `routerly status`: is the server up, and who am I on it.

use reqwest::Method;
use routerly_api::auth::Me;
use routerly_api::system::Health;
use serde::Serialize;

use super::print_json;
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
    let health: Health = get_anonymous(&url, "/health").await?;
    let me: Option<Me> = match client {
        Some(mut client) if client.session().url == url => {
            client.call(Method::GET, "/api/me", None::<&()>).await.ok()
        }
        _ => None,
    };
    if options.json {
        /// `status --json`.
        #[derive(Serialize)]
        struct Status<'a> {
            url: &'a str,
            health: &'a Health,
            me: Option<&'a Me>,
        }
        return print_json(&Status {
            url: &url,
            health: &health,
            me: me.as_ref(),
        });
    }
    println!(
        "{url}: {} (version {}, up {} s)",
        health.status, health.version, health.uptime
    );
    match me {
        Some(me) => println!("logged in as {} ({})", me.email, me.role),
        None => println!("not logged in to this server"),
    }
    Ok(())
}
