//! `routerly project …`: projects, their models and tokens.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use reqwest::Method;
use routerly_api::members::{AddMember, MemberList, UpdateMember};
use routerly_api::projects::{
    AddProjectModel, CreateProject, CreateToken, CreatedToken, ProjectList, ProjectModelList,
    ProjectModelView, ProjectView, TokenList, TokenView, UpdateProject, UpdateProjectModel,
    UpdateToken,
};

use super::{print_json, print_table, segment};
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

/// `text`, or `-` when there is none (as tables show an absent value).
fn or_dash(text: Option<impl ToString>) -> String {
    text.map_or_else(|| "-".to_owned(), |text| text.to_string())
}

/// A time given on the command line (`--expires`), as RFC 3339.
fn rfc3339(flag: &str, text: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| {
            anyhow::anyhow!(
                "{flag} must be an RFC 3339 time such as 2027-01-01T00:00:00Z ({error})"
            )
        })
}

fn token_status(token: &TokenView) -> &'static str {
    if token.revoked_at.is_some() {
        "revoked"
    } else {
        "active"
    }
}

/// Runs `routerly project …`.
pub async fn run(command: ProjectCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { name, json } => {
            let body = CreateProject {
                name,
                ..CreateProject::default()
            };
            let project: ProjectView = client
                .call(Method::POST, "/api/projects", Some(&body))
                .await?;
            if json {
                print_json(&project)?;
            } else {
                println!(
                    "Created project {} (id {}, slug {}).",
                    project.name, project.id, project.slug
                );
            }
        }
        ProjectCommand::List { json } => {
            let answer: ProjectList = client
                .call(Method::GET, "/api/projects", None::<&()>)
                .await?;
            if json {
                return print_json(&answer.projects);
            }
            let rows: Vec<Vec<String>> = answer
                .projects
                .iter()
                .map(|project| {
                    let models: Vec<&str> = project
                        .models
                        .iter()
                        .map(|model| model.model_id.as_str())
                        .collect();
                    vec![
                        project.id.clone(),
                        project.slug.clone(),
                        project.name.clone(),
                        models.join(","),
                        project.tokens.len().to_string(),
                    ]
                })
                .collect();
            print_table(&["ID", "SLUG", "NAME", "MODELS", "TOKENS"], &rows);
        }
        ProjectCommand::Show { project, json } => {
            let shown: ProjectView = client
                .call(
                    Method::GET,
                    &format!("/api/projects/{}", segment(&project)),
                    None::<&()>,
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
            let body = UpdateProject {
                name: Some(name),
                ..UpdateProject::default()
            };
            let updated: ProjectView = client
                .call(
                    Method::PATCH,
                    &format!("/api/projects/{}", segment(&project)),
                    Some(&body),
                )
                .await?;
            if json {
                return print_json(&updated);
            }
            println!("Updated project {} (slug {}).", updated.name, updated.slug);
        }
        ProjectCommand::Remove { project } => {
            client
                .delete(&format!("/api/projects/{}", segment(&project)))
                .await?;
            println!("Removed project {project}.");
        }
        ProjectCommand::Model(ProjectModelCommand::Remove { project, model_id }) => {
            client
                .delete(&format!(
                    "/api/projects/{}/models/{}",
                    segment(&project),
                    segment(&model_id)
                ))
                .await?;
            println!("Removed model {model_id} from project {project}.");
        }
        ProjectCommand::Model(ProjectModelCommand::SetPrompt {
            project,
            model_id,
            prompt,
        }) => {
            let cleared = prompt.trim().is_empty();
            let body = UpdateProjectModel {
                routing_prompt: Some(Some(prompt)),
                ..UpdateProjectModel::default()
            };
            let _: ProjectModelView = client
                .call(
                    Method::PATCH,
                    &format!(
                        "/api/projects/{}/models/{}",
                        segment(&project),
                        segment(&model_id)
                    ),
                    Some(&body),
                )
                .await?;
            if cleared {
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
            let expires_at = match (expires, no_expiry) {
                (_, true) => Some(None),
                (Some(expires), false) => Some(Some(rfc3339("--expires", &expires)?)),
                (None, false) => None,
            };
            let body = UpdateToken {
                labels,
                models: models.map(|models| {
                    models
                        .into_iter()
                        .filter(|model| !model.is_empty())
                        .collect()
                }),
                expires_at,
            };
            if body == UpdateToken::default() {
                anyhow::bail!(
                    "nothing to change: give --labels, --models, --expires or --no-expiry"
                );
            }
            let token: TokenView = client
                .call(
                    Method::PATCH,
                    &format!(
                        "/api/projects/{}/tokens/{}",
                        segment(&project),
                        segment(&token_id)
                    ),
                    Some(&body),
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
            let body = AddProjectModel {
                model_id: model_id.clone(),
                aliases,
                routing_prompt: prompt,
            };
            let _: ProjectModelList = client
                .call(
                    Method::POST,
                    &format!("/api/projects/{}/models", segment(&project)),
                    Some(&body),
                )
                .await?;
            println!("Added model {model_id} to project {project}.");
        }
        ProjectCommand::Model(ProjectModelCommand::List { project, json }) => {
            let answer: ProjectModelList = client
                .call(
                    Method::GET,
                    &format!("/api/projects/{}/models", segment(&project)),
                    None::<&()>,
                )
                .await?;
            if json {
                return print_json(&answer.models);
            }
            print_table(
                &["MODEL", "ALIASES", "ROUTING PROMPT"],
                &model_rows(&answer.models),
            );
        }
        ProjectCommand::Token(ProjectTokenCommand::Create {
            project,
            labels,
            models,
            expires,
            json,
        }) => {
            let body = CreateToken {
                labels,
                models,
                expires_at: expires
                    .map(|expires| rfc3339("--expires", &expires))
                    .transpose()?,
            };
            let token: CreatedToken = client
                .call(
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
                    token.view.id
                );
                println!("{}", token.token);
            }
        }
        ProjectCommand::Token(ProjectTokenCommand::List { project, json }) => {
            let answer: TokenList = client
                .call(
                    Method::GET,
                    &format!("/api/projects/{}/tokens", segment(&project)),
                    None::<&()>,
                )
                .await?;
            if json {
                return print_json(&answer.tokens);
            }
            let rows: Vec<Vec<String>> = answer
                .tokens
                .iter()
                .map(|token| {
                    vec![
                        token.id.clone(),
                        token.snippet.clone(),
                        token_status(token).to_owned(),
                        or_dash(
                            token
                                .expires_at
                                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                        ),
                        token.labels.join(","),
                    ]
                })
                .collect();
            print_table(&["ID", "TOKEN", "STATUS", "EXPIRES", "LABELS"], &rows);
        }
        ProjectCommand::Token(ProjectTokenCommand::Remove { project, token_id }) => {
            client
                .delete(&format!(
                    "/api/projects/{}/tokens/{}",
                    segment(&project),
                    segment(&token_id)
                ))
                .await?;
            println!("Revoked token {token_id}.");
        }
    }
    Ok(())
}

fn model_rows(models: &[ProjectModelView]) -> Vec<Vec<String>> {
    models
        .iter()
        .map(|model| {
            vec![
                model.model_id.clone(),
                model.aliases.join(","),
                or_dash(model.routing_prompt.as_deref()),
            ]
        })
        .collect()
}

fn print_project(project: &ProjectView) {
    println!("name:     {}", project.name);
    println!("id:       {}", project.id);
    println!("slug:     {}", project.slug);
    println!(
        "created:  {}",
        project
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    println!();
    print_table(
        &["MODEL", "ALIASES", "ROUTING PROMPT"],
        &model_rows(&project.models),
    );
    println!();
    let tokens: Vec<Vec<String>> = project
        .tokens
        .iter()
        .map(|token| {
            vec![
                token.id.clone(),
                token.snippet.clone(),
                token_status(token).to_owned(),
                token.labels.join(","),
            ]
        })
        .collect();
    print_table(&["TOKEN", "SNIPPET", "STATUS", "LABELS"], &tokens);
    println!();
    let members: Vec<Vec<String>> = project
        .members
        .iter()
        .map(|member| vec![member.user_id.clone(), member.role.clone()])
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
                .delete(&format!(
                    "/api/projects/{}/members/{}",
                    segment(&project),
                    segment(&email)
                ))
                .await?;
            println!("Removed {email} from project {project}.");
        }
    }
    Ok(())
}
