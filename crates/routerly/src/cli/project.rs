//! `routerly project …`: projects, their models and tokens.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{print_json, print_table, segment, text};
use crate::client::Client;

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

/// Runs `routerly project …`.
pub async fn run(command: ProjectCommand, mut client: Client) -> anyhow::Result<()> {
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
