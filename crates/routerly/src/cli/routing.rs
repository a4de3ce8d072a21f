//! `routerly project routing …`: a project's routing policies and retry count.
//!
//! Every command reads the project's routing with `GET /api/projects/{project}/policies`,
//! edits the list and writes it back whole with `PUT`; the service validates it, so an
//! unknown policy type or a bad parameter is refused with a message naming it.

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use routerly_api::projects::{PolicyView, ReplaceRouting, RoutingView};
use serde_json::Value;

use super::{print_json, print_table, segment};
use crate::client::Client;

/// `routerly project routing …`.
#[derive(Debug, Subcommand)]
pub enum ProjectRoutingCommand {
    /// Show the project's routing: policies in order and the retry count.
    Show {
        /// The project's id, slug or name.
        project: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set how often a failing model is retried (with backoff) before the next candidate.
    SetRetries {
        /// The project's id, slug or name.
        project: String,
        /// Retries per model (0 moves on at once).
        retries: u32,
    },
    /// The project's policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `routerly project routing policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// List the policies in order of importance.
    List {
        /// The project's id, slug or name.
        project: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enable a policy (adding it last when absent), optionally replacing its configuration.
    #[command(
        after_help = "Examples:\n  routerly project routing policy enable shop cheapest\n  routerly project routing policy enable shop health --config '{\"circuitBreaker\":0.5}'\n  routerly project routing policy enable shop llm --config '{\"routingModelId\":\"gpt-4o-mini\"}'"
    )]
    Enable {
        /// The project's id, slug or name.
        project: String,
        /// The policy type, such as `cheapest` or `semantic-intent`.
        #[arg(value_name = "TYPE")]
        kind: String,
        /// The policy's configuration as a JSON object (its keys, such as `windowMinutes`).
        #[arg(long)]
        config: Option<String>,
    },
    /// Disable a policy (it keeps its place and configuration).
    Disable {
        /// The project's id, slug or name.
        project: String,
        /// The policy type.
        #[arg(value_name = "TYPE")]
        kind: String,
    },
    /// Put policies in order of importance: the ones named come first, in this order.
    Reorder {
        /// The project's id, slug or name.
        project: String,
        /// Policy types, comma-separated, most important first.
        #[arg(value_name = "TYPE,TYPE,…")]
        order: String,
    },
}

/// Runs a `project routing` command.
pub async fn run(command: ProjectRoutingCommand, client: &mut Client) -> anyhow::Result<()> {
    match command {
        ProjectRoutingCommand::Show { project, json } => {
            let mut routing = read(client, &project).await?;
            if json {
                routing.types.clear();
                return print_json(&routing);
            }
            println!("Retries per model: {}", routing.retries);
            print_policies(&routing.policies);
        }
        ProjectRoutingCommand::SetRetries { project, retries } => {
            let mut routing = read(client, &project).await?;
            routing.retries = retries;
            write(client, &project, routing).await?;
            println!("Project {project} now retries a failing model {retries} time(s).");
        }
        ProjectRoutingCommand::Policy(PolicyCommand::List { project, json }) => {
            let routing = read(client, &project).await?;
            if json {
                return print_json(&routing.policies);
            }
            print_policies(&routing.policies);
        }
        ProjectRoutingCommand::Policy(PolicyCommand::Enable {
            project,
            kind,
            config,
        }) => {
            let config: Option<Value> = config
                .map(|text| {
                    serde_json::from_str::<Value>(&text)
                        .with_context(|| format!("--config is not valid JSON: {text}"))
                })
                .transpose()?;
            if let Some(config) = &config
                && !config.is_object()
            {
                bail!("--config must be a JSON object, such as '{{\"windowMinutes\": 10}}'");
            }
            let mut routing = read(client, &project).await?;
            match routing
                .policies
                .iter_mut()
                .find(|policy| policy.kind == kind)
            {
                Some(policy) => {
                    policy.enabled = true;
                    if let Some(config) = config {
                        policy.config = config;
                    }
                }
                None => routing.policies.push(PolicyView {
                    kind: kind.clone(),
                    enabled: true,
                    config: config.unwrap_or_else(|| Value::Object(Default::default())),
                }),
            }
            write(client, &project, routing).await?;
            println!("Enabled policy {kind} in project {project}.");
        }
        ProjectRoutingCommand::Policy(PolicyCommand::Disable { project, kind }) => {
            let mut routing = read(client, &project).await?;
            known_type(&routing, &kind)?;
            let Some(policy) = routing
                .policies
                .iter_mut()
                .find(|policy| policy.kind == kind)
            else {
                bail!("policy `{kind}` is not in project {project}'s list; nothing to disable");
            };
            policy.enabled = false;
            write(client, &project, routing).await?;
            println!("Disabled policy {kind} in project {project}.");
        }
        ProjectRoutingCommand::Policy(PolicyCommand::Reorder { project, order }) => {
            let mut routing = read(client, &project).await?;
            let wanted: Vec<&str> = order
                .split(',')
                .map(str::trim)
                .filter(|kind| !kind.is_empty())
                .collect();
            if wanted.is_empty() {
                bail!("give the policy types in order, such as `health,cheapest`");
            }
            for kind in &wanted {
                known_type(&routing, kind)?;
            }
            let mut rest = std::mem::take(&mut routing.policies);
            for kind in &wanted {
                let Some(at) = rest.iter().position(|policy| policy.kind == *kind) else {
                    bail!("policy `{kind}` is not in project {project}'s list; enable it first");
                };
                routing.policies.push(rest.remove(at));
            }
            routing.policies.append(&mut rest);
            let written = write(client, &project, routing).await?;
            let names: Vec<&str> = written
                .policies
                .iter()
                .map(|policy| policy.kind.as_str())
                .collect();
            println!(
                "Policies of project {project}, most important first: {}.",
                names.join(", ")
            );
        }
    }
    Ok(())
}

fn path(project: &str) -> String {
    format!("/api/projects/{}/policies", segment(project))
}

async fn read(client: &mut Client, project: &str) -> anyhow::Result<RoutingView> {
    client.call(Method::GET, &path(project), None::<&()>).await
}

/// Replaces the project's routing with `routing` (the list of known types is the service's
/// and is not sent back) and returns the routing the service now holds.
async fn write(
    client: &mut Client,
    project: &str,
    routing: RoutingView,
) -> anyhow::Result<RoutingView> {
    let body = ReplaceRouting {
        policies: routing.policies,
        retries: Some(routing.retries),
    };
    client.call(Method::PUT, &path(project), Some(&body)).await
}

/// Refuses a type the service does not know, naming the known ones.
fn known_type(routing: &RoutingView, kind: &str) -> anyhow::Result<()> {
    if !routing.types.is_empty() && !routing.types.iter().any(|known| known == kind) {
        bail!(
            "unknown policy type `{kind}`; known types: {}",
            routing.types.join(", ")
        );
    }
    Ok(())
}

fn print_policies(policies: &[PolicyView]) {
    if policies.is_empty() {
        println!("No routing policies: candidates are tried in the project's model order.");
        return;
    }
    let rows: Vec<Vec<String>> = policies
        .iter()
        .enumerate()
        .map(|(index, policy)| {
            vec![
                (index + 1).to_string(),
                policy.kind.clone(),
                if policy.enabled { "yes" } else { "no" }.to_owned(),
                policy.config.to_string(),
            ]
        })
        .collect();
    print_table(&["#", "TYPE", "ENABLED", "CONFIG"], &rows);
}
