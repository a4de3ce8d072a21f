//! `routerly auth login|logout|whoami`.

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::text;
use crate::client::{Client, SessionsFile, post_anonymous, session_from_login};

/// `routerly auth …`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Log in and save the session.
    Login {
        /// The server's URL.
        #[arg(long)]
        url: String,
        /// Your email.
        #[arg(long)]
        email: String,
        /// Your password.
        #[arg(long)]
        password: String,
        /// Save the session under this alias.
        #[arg(long, default_value = "default")]
        alias: String,
    },
    /// End the session and forget it.
    Logout,
    /// Show who is logged in where.
    Whoami,
}

/// Runs `routerly auth …`.
pub async fn run(command: AuthCommand, server: Option<String>) -> anyhow::Result<()> {
    match command {
        AuthCommand::Login {
            url,
            email,
            password,
            alias,
        } => {
            let answer = post_anonymous(
                &url,
                "/api/auth/login",
                &json!({ "email": email, "password": password }),
            )
            .await?;
            SessionsFile::remember(&alias, session_from_login(&url, &answer)?)?;
            println!("Logged in to {url} as {email} (session `{alias}`).");
        }
        AuthCommand::Logout => {
            let mut sessions = SessionsFile::load()?;
            let alias = server
                .or(sessions.current.clone())
                .context("not logged in")?;
            if let Some(session) = sessions.servers.remove(&alias) {
                // Best effort: the local session is forgotten even if the server is gone.
                let _ = post_anonymous(
                    &session.url,
                    "/api/auth/logout",
                    &json!({ "refresh_token": session.refresh_token }),
                )
                .await;
            }
            if sessions.current.as_deref() == Some(alias.as_str()) {
                sessions.current = sessions.servers.keys().next().cloned();
            }
            sessions.save()?;
            println!("Logged out of `{alias}`.");
        }
        AuthCommand::Whoami => {
            let mut client = Client::open(server.as_deref())?;
            let me = client.request(Method::GET, "/api/me", None).await?;
            println!(
                "{} ({}) at {}",
                text(&me, "/email"),
                text(&me, "/role"),
                client.session().url
            );
        }
    }
    Ok(())
}
