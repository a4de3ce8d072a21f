//! The command tree and what each command does, over the management API.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Client, SessionsFile, post_anonymous, session_from_login};

/// Routerly: a self-hosted LLM API gateway.
#[derive(Debug, Parser)]
#[command(name = "routerly", version, about)]
pub struct Args {
    /// Use this saved session instead of the current one.
    #[arg(long, global = true, env = "ROUTERLY_SERVER")]
    pub server: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service in the foreground.
    Serve(ServeOptions),
    /// Create the first admin on a fresh install and log in.
    Setup {
        /// The server's URL.
        #[arg(long)]
        url: String,
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// The admin's password (at least 8 characters).
        #[arg(long)]
        password: String,
        /// The one-time setup token (needed from another machine than the server).
        #[arg(long)]
        setup_token: Option<String>,
        /// Save the session under this alias.
        #[arg(long, default_value = "default")]
        alias: String,
    },
    /// Log in and out.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Registered models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Projects, their models and tokens.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Usage reports.
    #[command(subcommand)]
    Report(ReportCommand),
}

/// Options of `routerly serve`.
#[derive(Debug, clap::Args)]
pub struct ServeOptions {
    /// Address to listen on (default from settings, then `ROUTERLY_HOST`).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on (default from settings, then `ROUTERLY_PORT`).
    #[arg(long)]
    pub port: Option<u16>,
}

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

/// `routerly model …`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Register a model.
    Add(ModelAdd),
    /// List models (keys masked).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a model.
    Remove {
        /// The model's id.
        id: String,
    },
}

/// Options of `routerly model add`.
#[derive(Debug, clap::Args)]
pub struct ModelAdd {
    /// Routerly's id for the model.
    #[arg(long)]
    id: String,
    /// The provider: openai, anthropic or custom.
    #[arg(long)]
    provider: String,
    /// Base URL as the provider's official SDK takes it (default: the provider's).
    #[arg(long)]
    endpoint: Option<String>,
    /// The provider API key, or `env:NAME` to read it from the service's environment.
    #[arg(long)]
    api_key: Option<String>,
    /// The provider's own model name (default: the id).
    #[arg(long)]
    upstream_model: Option<String>,
    /// USD per million input tokens.
    #[arg(long, default_value_t = 0.0)]
    input_price: f64,
    /// USD per million output tokens.
    #[arg(long, default_value_t = 0.0)]
    output_price: f64,
    /// USD per million cached input tokens.
    #[arg(long)]
    cached_price: Option<f64>,
    /// USD per million cache-write tokens.
    #[arg(long)]
    cache_write_price: Option<f64>,
    /// Context window in tokens.
    #[arg(long)]
    context_window: Option<u64>,
    /// Capabilities, comma-separated: vision,tools,json,thinking,embedding.
    #[arg(long, value_delimiter = ',')]
    capabilities: Vec<String>,
    /// Print the model as JSON.
    #[arg(long)]
    json: bool,
}

/// `routerly project …`.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List projects.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A project's models.
    #[command(subcommand)]
    Model(ProjectModelCommand),
    /// A project's tokens.
    #[command(subcommand)]
    Token(ProjectTokenCommand),
}

/// `routerly project model …`.
#[derive(Debug, Subcommand)]
pub enum ProjectModelCommand {
    /// Add a model to a project.
    Add {
        /// The project's id, slug or name.
        project: String,
        /// The model's id.
        model_id: String,
        /// The routing prompt: what this model is good at.
        #[arg(long)]
        prompt: Option<String>,
        /// Another name clients may use for it (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
    /// List a project's models.
    List {
        /// The project's id, slug or name.
        project: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `routerly project token …`.
#[derive(Debug, Subcommand)]
pub enum ProjectTokenCommand {
    /// Create a token; it is printed once.
    Create {
        /// The project's id, slug or name.
        project: String,
        /// Labels, comma-separated.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// Models it may use, comma-separated (default: all of the project's).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// When it expires (RFC 3339, e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
        /// Print JSON with `id` and `token`.
        #[arg(long)]
        json: bool,
    },
    /// List a project's tokens (never the tokens themselves).
    List {
        /// The project's id, slug or name.
        project: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once.
    Remove {
        /// The project's id, slug or name.
        project: String,
        /// The token's id.
        token_id: String,
    },
}

/// `routerly report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Recent calls with tokens, cost and outcome.
    Calls {
        /// How many (default 20).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Percent-encodes a path segment.
fn segment(value: &str) -> String {
    let mut encoded = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows as an aligned table.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|header| header.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
    if rows.is_empty() {
        println!("(none)");
    }
}

fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// Runs a command other than `serve`.
pub async fn run(command: Command, server: Option<String>) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => unreachable!("serve is run by main"),
        Command::Setup {
            url,
            email,
            password,
            setup_token,
            alias,
        } => {
            let answer = post_anonymous(
                &url,
                "/api/setup/first-admin",
                &json!({ "email": email, "password": password, "setup_token": setup_token }),
            )
            .await?;
            SessionsFile::remember(&alias, session_from_login(&url, &answer)?)?;
            println!("Created the first admin {email} and logged in (session `{alias}`).");
            Ok(())
        }
        Command::Auth(command) => auth(command, server).await,
        Command::Model(command) => model(command, Client::open(server.as_deref())?).await,
        Command::Project(command) => project(command, Client::open(server.as_deref())?).await,
        Command::Report(command) => report(command, Client::open(server.as_deref())?).await,
    }
}

async fn auth(command: AuthCommand, server: Option<String>) -> anyhow::Result<()> {
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

async fn model(command: ModelCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        ModelCommand::Add(add) => {
            let mut capabilities = serde_json::Map::new();
            for capability in add
                .capabilities
                .iter()
                .map(|c| c.trim())
                .filter(|c| !c.is_empty())
            {
                if !["vision", "tools", "json", "thinking", "embedding"].contains(&capability) {
                    bail!(
                        "unknown capability `{capability}`; use vision, tools, json, thinking or embedding"
                    );
                }
                capabilities.insert(capability.to_owned(), Value::Bool(true));
            }
            let body = json!({
                "id": add.id,
                "provider": add.provider,
                "endpoint": add.endpoint,
                "api_key": add.api_key,
                "upstream_model": add.upstream_model,
                "pricing": {
                    "input": add.input_price,
                    "output": add.output_price,
                    "cached_input": add.cached_price,
                    "cache_write": add.cache_write_price,
                },
                "context_window": add.context_window,
                "capabilities": capabilities,
            });
            let model = client
                .request(Method::POST, "/api/models", Some(&body))
                .await?;
            if add.json {
                print_json(&model)?;
            } else {
                println!(
                    "Added model {} ({} at {}).",
                    text(&model, "/id"),
                    text(&model, "/provider"),
                    text(&model, "/endpoint")
                );
            }
        }
        ModelCommand::List { json } => {
            let answer = client.request(Method::GET, "/api/models", None).await?;
            if json {
                return print_json(&answer["models"]);
            }
            let rows: Vec<Vec<String>> = answer["models"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|model| {
                    vec![
                        text(model, "/id"),
                        text(model, "/provider"),
                        text(model, "/upstream_model"),
                        text(model, "/endpoint"),
                        text(model, "/api_key"),
                        format!(
                            "{}/{}",
                            text(model, "/pricing/input"),
                            text(model, "/pricing/output")
                        ),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "PROVIDER",
                    "UPSTREAM",
                    "ENDPOINT",
                    "KEY",
                    "USD/M IN/OUT",
                ],
                &rows,
            );
        }
        ModelCommand::Remove { id } => {
            client
                .request(
                    Method::DELETE,
                    &format!("/api/models/{}", segment(&id)),
                    None,
                )
                .await?;
            println!("Removed model {id}.");
        }
    }
    Ok(())
}

async fn project(command: ProjectCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { name, json } => {
            let project = client
                .request(
                    Method::POST,
                    "/api/projects",
                    Some(&json!({ "name": name })),
                )
                .await?;
            if json {
                print_json(&project)?;
            } else {
                println!(
                    "Created project {} (id {}, slug {}).",
                    text(&project, "/name"),
                    text(&project, "/id"),
                    text(&project, "/slug")
                );
            }
        }
        ProjectCommand::List { json } => {
            let answer = client.request(Method::GET, "/api/projects", None).await?;
            if json {
                return print_json(&answer["projects"]);
            }
            let rows: Vec<Vec<String>> = answer["projects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|project| {
                    let models: Vec<String> = project["models"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|model| text(model, "/model_id"))
                        .collect();
                    vec![
                        text(project, "/id"),
                        text(project, "/slug"),
                        text(project, "/name"),
                        models.join(","),
                        project["tokens"].as_array().map_or(0, Vec::len).to_string(),
                    ]
                })
                .collect();
            print_table(&["ID", "SLUG", "NAME", "MODELS", "TOKENS"], &rows);
        }
        ProjectCommand::Model(ProjectModelCommand::Add {
            project,
            model_id,
            prompt,
            aliases,
        }) => {
            let body =
                json!({ "model_id": model_id, "aliases": aliases, "routing_prompt": prompt });
            client
                .request(
                    Method::POST,
                    &format!("/api/projects/{}/models", segment(&project)),
                    Some(&body),
                )
                .await?;
            println!("Added model {model_id} to project {project}.");
        }
        ProjectCommand::Model(ProjectModelCommand::List { project, json }) => {
            let answer = client
                .request(
                    Method::GET,
                    &format!("/api/projects/{}/models", segment(&project)),
                    None,
                )
                .await?;
            if json {
                return print_json(&answer["models"]);
            }
            let rows: Vec<Vec<String>> = answer["models"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|model| {
                    let aliases: Vec<String> = model["aliases"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                    vec![
                        text(model, "/model_id"),
                        aliases.join(","),
                        text(model, "/routing_prompt"),
                    ]
                })
                .collect();
            print_table(&["MODEL", "ALIASES", "ROUTING PROMPT"], &rows);
        }
        ProjectCommand::Token(ProjectTokenCommand::Create {
            project,
            labels,
            models,
            expires,
            json,
        }) => {
            let body = json!({ "labels": labels, "models": models, "expires_at": expires });
            let token = client
                .request(
                    Method::POST,
                    &format!("/api/projects/{}/tokens", segment(&project)),
                    Some(&body),
                )
                .await?;
            if json {
                print_json(&token)?;
            } else {
                println!(
                    "Token {} created. Copy it now; it is not shown again:",
                    text(&token, "/id")
                );
                println!("{}", text(&token, "/token"));
            }
        }
        ProjectCommand::Token(ProjectTokenCommand::List { project, json }) => {
            let answer = client
                .request(
                    Method::GET,
                    &format!("/api/projects/{}/tokens", segment(&project)),
                    None,
                )
                .await?;
            if json {
                return print_json(&answer["tokens"]);
            }
            let rows: Vec<Vec<String>> = answer["tokens"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|token| {
                    let status = if !token["revoked_at"].is_null() {
                        "revoked"
                    } else {
                        "active"
                    };
                    vec![
                        text(token, "/id"),
                        text(token, "/snippet"),
                        status.to_owned(),
                        text(token, "/expires_at"),
                        token["labels"]
                            .as_array()
                            .map(|labels| {
                                labels
                                    .iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(&["ID", "TOKEN", "STATUS", "EXPIRES", "LABELS"], &rows);
        }
        ProjectCommand::Token(ProjectTokenCommand::Remove { project, token_id }) => {
            client
                .request(
                    Method::DELETE,
                    &format!(
                        "/api/projects/{}/tokens/{}",
                        segment(&project),
                        segment(&token_id)
                    ),
                    None,
                )
                .await?;
            println!("Revoked token {token_id}.");
        }
    }
    Ok(())
}

async fn report(command: ReportCommand, mut client: Client) -> anyhow::Result<()> {
    let ReportCommand::Calls {
        limit,
        project,
        json,
    } = command;
    let mut path = format!("/api/usage?limit={limit}");
    if let Some(project) = &project {
        path.push_str(&format!("&project={}", segment(project)));
    }
    let answer = client.request(Method::GET, &path, None).await?;
    if json {
        return print_json(&answer["records"]);
    }
    let rows: Vec<Vec<String>> = answer["records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|record| {
            vec![
                text(record, "/timestamp"),
                text(record, "/model_id"),
                text(record, "/surface"),
                text(record, "/outcome"),
                text(record, "/input_tokens"),
                text(record, "/output_tokens"),
                format!("{:.6}", record["cost_usd"].as_f64().unwrap_or(0.0)),
                format!("{:.0}", record["latency_ms"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    print_table(
        &[
            "TIME", "MODEL", "SURFACE", "OUTCOME", "IN", "OUT", "COST USD", "MS",
        ],
        &rows,
    );
    Ok(())
}
