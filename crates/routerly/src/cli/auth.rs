//! `routerly auth login|logout|whoami|switch|ps|passwd|api-key`.

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use routerly_api::api_keys::{ApiKeyList, CreateApiKey, CreatedApiKey};
use routerly_api::auth::{ChangePassword, Login, Me, RefreshToken, Session as Granted};
use serde::Serialize;

use super::{print_json, print_table, segment};
use crate::client::{Client, SessionsFile, post_anonymous, session_from_login};

/// `routerly auth …`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Log in and save the session (under an alias, so several servers can be used).
    #[command(
        after_help = "Example:\n  routerly auth login --url http://localhost:3000 --email admin@example.com --password '…' --alias prod"
    )]
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
    /// End the session (the current one, or `--server ALIAS`) and forget it.
    Logout,
    /// Show who is logged in where.
    Whoami {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a saved session the current one.
    Switch {
        /// The session's alias.
        alias: String,
    },
    /// List saved sessions.
    Ps {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change your password (every other session of yours ends).
    Passwd {
        /// Your current password.
        #[arg(long)]
        current: String,
        /// The new password (at least 8 characters).
        #[arg(long)]
        new: String,
    },
    /// Admin API keys for scripts and CI (use one with ROUTERLY_API_KEY and ROUTERLY_URL).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
}

/// `routerly auth api-key …`.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once.
    #[command(
        after_help = "Example:\n  routerly auth api-key create --name ci --role operator --json"
    )]
    Create {
        /// What it is for.
        #[arg(long)]
        name: String,
        /// The global role it carries (default admin).
        #[arg(long, default_value = "admin")]
        role: String,
        /// Print JSON with `id` and `key`.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once.
    Revoke {
        /// The key's id.
        id: String,
    },
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
            let answer: Granted = super::with_spinner(
                "Checking the password…",
                post_anonymous(
                    &url,
                    "/api/auth/login",
                    &Login {
                        email: email.clone(),
                        password,
                    },
                ),
            )
            .await?;
            SessionsFile::remember(&alias, session_from_login(&url, answer))?;
            println!("Logged in to {url} as {email} (session `{alias}`).");
        }
        AuthCommand::Logout => {
            let mut sessions = SessionsFile::load()?;
            let alias = server
                .or(sessions.current.clone())
                .context("not logged in")?;
            let Some(session) = sessions.servers.remove(&alias) else {
                bail!("no saved session `{alias}`");
            };
            // Best effort: the local session is forgotten even if the server is gone.
            let _ = post_anonymous::<serde::de::IgnoredAny>(
                &session.url,
                "/api/auth/logout",
                &RefreshToken {
                    refresh_token: session.refresh_token,
                },
            )
            .await;
            if sessions.current.as_deref() == Some(alias.as_str()) {
                sessions.current = sessions.servers.keys().next().cloned();
            }
            sessions.save()?;
            println!("Logged out of `{alias}`.");
        }
        AuthCommand::Whoami { json } => {
            let mut client = Client::open(server.as_deref())?;
            let me: Me = client.call(Method::GET, "/api/me", None::<&()>).await?;
            if json {
                /// `whoami --json`: the caller as `GET /api/me` says, and where.
                #[derive(Serialize)]
                struct Whoami<'a> {
                    #[serde(flatten)]
                    me: &'a Me,
                    url: &'a str,
                    alias: &'a str,
                }
                return print_json(&Whoami {
                    me: &me,
                    url: &client.session().url,
                    alias: client.alias(),
                });
            }
            let projects: Vec<String> = me
                .projects
                .iter()
                .map(|project| format!("{} ({})", project.slug, project.role))
                .collect();
            println!(
                "{} ({}) at {} [session `{}`]",
                me.email,
                me.role,
                client.session().url,
                client.alias()
            );
            if !projects.is_empty() {
                println!("projects: {}", projects.join(", "));
            }
        }
        AuthCommand::Switch { alias } => {
            let mut sessions = SessionsFile::load()?;
            if !sessions.servers.contains_key(&alias) {
                let known: Vec<&str> = sessions.servers.keys().map(String::as_str).collect();
                bail!(
                    "no saved session `{alias}`; saved: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            }
            sessions.current = Some(alias.clone());
            sessions.save()?;
            println!("Now using session `{alias}`.");
        }
        AuthCommand::Ps { json } => {
            let sessions = SessionsFile::load()?;
            /// One saved session, as `auth ps` lists it (never its tokens).
            #[derive(Serialize)]
            struct Saved<'a> {
                alias: &'a str,
                url: &'a str,
                email: &'a str,
                current: bool,
            }
            let rows: Vec<Saved> = sessions
                .servers
                .iter()
                .map(|(alias, session)| Saved {
                    alias,
                    url: &session.url,
                    email: &session.email,
                    current: sessions.current.as_deref() == Some(alias.as_str()),
                })
                .collect();
            if json {
                return print_json(&rows);
            }
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    vec![
                        if row.current { "*" } else { "" }.to_owned(),
                        row.alias.to_owned(),
                        row.url.to_owned(),
                        row.email.to_owned(),
                    ]
                })
                .collect();
            print_table(&["", "ALIAS", "URL", "EMAIL"], &table);
        }
        AuthCommand::Passwd { current, new } => {
            let mut client = Client::open(server.as_deref())?;
            let answer: Granted = client
                .call(
                    Method::PUT,
                    "/api/me",
                    Some(&ChangePassword {
                        current_password: current,
                        new_password: new,
                    }),
                )
                .await?;
            client.adopt_session(answer)?;
            println!("Password changed; your other sessions have ended.");
        }
        AuthCommand::ApiKey(command) => {
            let mut client = Client::open(server.as_deref())?;
            match command {
                ApiKeyCommand::Create { name, role, json } => {
                    let key: CreatedApiKey = client
                        .call(
                            Method::POST,
                            "/api/api-keys",
                            Some(&CreateApiKey {
                                name,
                                role: Some(role),
                            }),
                        )
                        .await?;
                    if json {
                        return print_json(&serde_json::to_value(&key)?);
                    }
                    println!(
                        "API key {} ({}) created. Copy it now; it is not shown again:",
                        key.view.id, key.view.role
                    );
                    println!("{}", key.key);
                }
                ApiKeyCommand::List { json } => {
                    let answer: ApiKeyList = client
                        .call(Method::GET, "/api/api-keys", None::<&()>)
                        .await?;
                    if json {
                        return print_json(&serde_json::to_value(&answer.api_keys)?);
                    }
                    let rows: Vec<Vec<String>> = answer
                        .api_keys
                        .into_iter()
                        .map(|key| {
                            vec![
                                key.id,
                                key.name,
                                key.role,
                                key.snippet,
                                if key.revoked_at.is_none() {
                                    "active"
                                } else {
                                    "revoked"
                                }
                                .to_owned(),
                                key.created_at.to_rfc3339(),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "NAME", "ROLE", "KEY", "STATUS", "CREATED"], &rows);
                }
                ApiKeyCommand::Revoke { id } => {
                    client
                        .delete(&format!("/api/api-keys/{}", segment(&id)))
                        .await?;
                    println!("Revoked API key {id}.");
                }
            }
        }
    }
    Ok(())
}
