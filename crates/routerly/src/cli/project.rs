//! `routerly project …`: projects, their models and tokens.

use clap::Subcommand;
use reqwest::Method;
use routerly_api::members::{AddMember, MemberList, UpdateMember};
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
    /// Show one project: models, tokens, members.
    Show {
        /// The project's id, slug or name.
        project: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rename a project.
    Edit {
        /// The project's id, slug or name.
        project: String,
        /// Its new name.
        #[arg(long)]
        name: Option<String>,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a project with its tokens (they stop working at once).
    Remove {
        /// The project's id, slug or name.
        project: String,
    },
    /// A project's models.
    #[command(subcommand)]
    Model(ProjectModelCommand),
    /// A project's tokens.
    #[command(subcommand)]
    Token(ProjectTokenCommand),
    /// A project's members and their roles.
    #[command(subcommand)]
    Member(ProjectMemberCommand),
    /// A project's routing: policies and retries.
    #[command(subcommand)]
    Routing(super::routing::ProjectRoutingCommand),
}

/// `routerly project member …`.
#[derive(Debug, Subcommand)]
pub enum ProjectMemberCommand {
    /// List a project's members.
    List {
        /// The project's id, slug or name.
        project: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a user to a project with a role.
    #[command(
        after_help = "Example:\n  routerly project member add shop --email dev@example.com --role editor"
    )]
    Add {
        /// The project's id, slug or name.
        project: String,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// viewer, editor or admin.
        #[arg(long)]
        role: String,
    },
    /// Change a member's role.
    SetRole {
        /// The project's id, slug or name.
        project: String,
        /// The member's email.
        email: String,
        /// viewer, editor or admin.
        #[arg(long)]
        role: String,
    },
    /// Remove a member from a project.
    Remove {
        /// The project's id, slug or name.
        project: String,
        /// The member's email.
        email: String,
    },
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
    /// Remove a model from a project.
    Remove {
        /// The project's id, slug or name.
        project: String,
        /// The model's id.
        model_id: String,
    },
    /// Set (or with "" clear) a project model's routing prompt.
    SetPrompt {
        /// The project's id, slug or name.
        project: String,
        /// The model's id.
        model_id: String,
        /// What this model is good at, for the `llm` routing policy.
        prompt: String,
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
    /// Change a token's labels, models or expiry.
    Edit {
        /// The project's id, slug or name.
        project: String,
        /// The token's id.
        token_id: String,
        /// New labels, comma-separated.
        #[arg(long, value_delimiter = ',')]
        labels: Option<Vec<String>>,
        /// Models it may use, comma-separated (empty: all of the project's).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// New expiry (RFC 3339).
        #[arg(long, conflicts_with = "no_expiry")]
        expires: Option<String>,
        /// Remove the expiry.
        #[arg(long)]
        no_expiry: bool,
        /// Print it as JSON.
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
        ProjectCommand::Show { project, json } => {
            let shown = client
                .request(
                    Method::GET,
                    &format!("/api/projects/{}", segment(&project)),
                    None,
                )
                .await?;
            if json {
                return print_json(&shown);
            }
            print_project(&shown);
        }
        ProjectCommand::Edit {
            project,
            name,
            json,
        } => {
            let Some(name) = name else {
                anyhow::bail!("nothing to change: give --name");
            };
            let updated = client
                .request(
                    Method::PATCH,
                    &format!("/api/projects/{}", segment(&project)),
                    Some(&json!({ "name": name })),
                )
                .await?;
            if json {
                return print_json(&updated);
            }
            println!(
                "Updated project {} (slug {}).",
                text(&updated, "/name"),
                text(&updated, "/slug")
            );
        }
        ProjectCommand::Remove { project } => {
            client
                .request(
                    Method::DELETE,
                    &format!("/api/projects/{}", segment(&project)),
                    None,
                )
                .await?;
            println!("Removed project {project}.");
        }
        ProjectCommand::Model(ProjectModelCommand::Remove { project, model_id }) => {
            client
                .request(
                    Method::DELETE,
                    &format!(
                        "/api/projects/{}/models/{}",
                        segment(&project),
                        segment(&model_id)
                    ),
                    None,
                )
                .await?;
            println!("Removed model {model_id} from project {project}.");
        }
        ProjectCommand::Model(ProjectModelCommand::SetPrompt {
            project,
            model_id,
            prompt,
        }) => {
            client
                .request(
                    Method::PATCH,
                    &format!(
                        "/api/projects/{}/models/{}",
                        segment(&project),
                        segment(&model_id)
                    ),
                    Some(&json!({ "routing_prompt": prompt })),
                )
                .await?;
            if prompt.trim().is_empty() {
                println!("Cleared the routing prompt of {model_id} in project {project}.");
            } else {
                println!("Set the routing prompt of {model_id} in project {project}.");
            }
        }
        ProjectCommand::Member(command) => member(command, &mut client).await?,
        ProjectCommand::Routing(command) => super::routing::run(command, &mut client).await?,
        ProjectCommand::Token(ProjectTokenCommand::Edit {
            project,
            token_id,
            labels,
            models,
            expires,
            no_expiry,
            json,
        }) => {
            let mut body = serde_json::Map::new();
            if let Some(labels) = labels {
                body.insert("labels".into(), json!(labels));
            }
            if let Some(models) = models {
                let models: Vec<String> = models.into_iter().filter(|m| !m.is_empty()).collect();
                body.insert("models".into(), json!(models));
            }
            if let Some(expires) = expires {
                body.insert("expires_at".into(), Value::String(expires));
            }
            if no_expiry {
                body.insert("expires_at".into(), Value::Null);
            }
            if body.is_empty() {
                anyhow::bail!(
                    "nothing to change: give --labels, --models, --expires or --no-expiry"
                );
            }
            let token = client
                .request(
                    Method::PATCH,
                    &format!(
                        "/api/projects/{}/tokens/{}",
                        segment(&project),
                        segment(&token_id)
                    ),
                    Some(&Value::Object(body)),
                )
                .await?;
            if json {
                return print_json(&token);
            }
            println!("Updated token {token_id}.");
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

fn strings(value: &Value) -> String {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn print_project(project: &Value) {
    println!("name:     {}", text(project, "/name"));
    println!("id:       {}", text(project, "/id"));
    println!("slug:     {}", text(project, "/slug"));
    println!("created:  {}", text(project, "/created_at"));
    println!();
    let models: Vec<Vec<String>> = project["models"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|model| {
            vec![
                text(model, "/model_id"),
                strings(&model["aliases"]),
                text(model, "/routing_prompt"),
            ]
        })
        .collect();
    print_table(&["MODEL", "ALIASES", "ROUTING PROMPT"], &models);
    println!();
    let tokens: Vec<Vec<String>> = project["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|token| {
            vec![
                text(token, "/id"),
                text(token, "/snippet"),
                if token["revoked_at"].is_null() {
                    "active"
                } else {
                    "revoked"
                }
                .to_owned(),
                strings(&token["labels"]),
            ]
        })
        .collect();
    print_table(&["TOKEN", "SNIPPET", "STATUS", "LABELS"], &tokens);
    println!();
    let members: Vec<Vec<String>> = project["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|member| vec![text(member, "/user_id"), text(member, "/role")])
        .collect();
    print_table(&["MEMBER", "ROLE"], &members);
}

async fn member(command: ProjectMemberCommand, client: &mut Client) -> anyhow::Result<()> {
    match command {
        ProjectMemberCommand::List { project, json } => {
            let answer: MemberList = client
                .call(
                    Method::GET,
                    &format!("/api/projects/{}/members", segment(&project)),
                    None::<&()>,
                )
                .await?;
            if json {
                return print_json(&answer.members);
            }
            let rows: Vec<Vec<String>> = answer
                .members
                .into_iter()
                .map(|member| {
                    vec![
                        member.email.unwrap_or_default(),
                        member.role,
                        member.user_id,
                    ]
                })
                .collect();
            print_table(&["EMAIL", "ROLE", "USER ID"], &rows);
        }
        ProjectMemberCommand::Add {
            project,
            email,
            role,
        } => {
            let body = AddMember {
                email: email.clone(),
                role: role.clone(),
            };
            let _: MemberList = client
                .call(
                    Method::POST,
                    &format!("/api/projects/{}/members", segment(&project)),
                    Some(&body),
                )
                .await?;
            println!("Added {email} to project {project} as {role}.");
        }
        ProjectMemberCommand::SetRole {
            project,
            email,
            role,
        } => {
            let body = UpdateMember { role: role.clone() };
            let _: MemberList = client
                .call(
                    Method::PATCH,
                    &format!(
                        "/api/projects/{}/members/{}",
                        segment(&project),
                        segment(&email)
                    ),
                    Some(&body),
                )
                .await?;
            println!("{email} is now {role} of project {project}.");
        }
        ProjectMemberCommand::Remove { project, email } => {
            client
                .request(
                    Method::DELETE,
                    &format!(
                        "/api/projects/{}/members/{}",
                        segment(&project),
                        segment(&email)
                    ),
                    None,
                )
                .await?;
            println!("Removed {email} from project {project}.");
        }
    }
    Ok(())
}
