//! `routerly project routing …`: a project's routing policies and retry count.
//!
//! Every command reads the project's routing with `GET /api/projects/{project}/policies`,
//! edits the list and writes it back whole with `PUT`; the service validates it, so an
//! unknown policy type or a bad parameter is refused with a message naming it.

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

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
            let routing = read(client, &project).await?;
            if json {
                return print_json(&without_types(routing));
            }
            println!("Retries per model: {}", routing["retries"]);
            print_policies(&routing);
        }
        ProjectRoutingCommand::SetRetries { project, retries } => {
            let mut routing = read(client, &project).await?;
            routing["retries"] = json!(retries);
            write(client, &project, &routing).await?;
            println!("Project {project} now retries a failing model {retries} time(s).");
        }
        ProjectRoutingCommand::Policy(PolicyCommand::List { project, json }) => {
            let routing = read(client, &project).await?;
            if json {
                return print_json(&routing["policies"]);
            }
            print_policies(&routing);
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
            let policies = policies_mut(&mut routing)?;
            match policies
                .iter_mut()
                .find(|policy| policy["type"] == kind.as_str())
            {
                Some(policy) => {
                    policy["enabled"] = json!(true);
                    if let Some(config) = config {
                        policy["config"] = config;
                    }
                }
                None => policies.push(json!({
                    "type": kind,
                    "enabled": true,
                    "config": config.unwrap_or_else(|| json!({})),
                })),
            }
            write(client, &project, &routing).await?;
            println!("Enabled policy {kind} in project {project}.");
        }
        ProjectRoutingCommand::Policy(PolicyCommand::Disable { project, kind }) => {
            let mut routing = read(client, &project).await?;
            known_type(&routing, &kind)?;
            let policies = policies_mut(&mut routing)?;
            let Some(policy) = policies
                .iter_mut()
                .find(|policy| policy["type"] == kind.as_str())
            else {
                bail!("policy `{kind}` is not in project {project}'s list; nothing to disable");
            };
            policy["enabled"] = json!(false);
            write(client, &project, &routing).await?;
            println!("Disabled policy {kind} in project {project}.");
        }
        ProjectRoutingCommand::Policy(PolicyCommand::Reorder { project, order }) => {
            let mut routing = read(client, &project).await?;
            let wanted: Vec<String> = order
                .split(',')
                .map(|kind| kind.trim().to_owned())
                .filter(|kind| !kind.is_empty())
                .collect();
            if wanted.is_empty() {
                bail!("give the policy types in order, such as `health,cheapest`");
            }
            for kind in &wanted {
                known_type(&routing, kind)?;
            }
            let policies = policies_mut(&mut routing)?;
            let mut ordered = Vec::with_capacity(policies.len());
            for kind in &wanted {
                let Some(at) = policies
                    .iter()
                    .position(|policy| policy["type"] == kind.as_str())
                else {
                    bail!("policy `{kind}` is not in project {project}'s list; enable it first");
                };
                ordered.push(policies.remove(at));
            }
            ordered.append(policies);
            *policies = ordered;
            write(client, &project, &routing).await?;
            let names: Vec<String> = routing["policies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|policy| policy["type"].as_str().unwrap_or("?").to_owned())
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

async fn read(client: &mut Client, project: &str) -> anyhow::Result<Value> {
    client.request(Method::GET, &path(project), None).await
}

async fn write(client: &mut Client, project: &str, routing: &Value) -> anyhow::Result<Value> {
    let body = without_types(routing.clone());
    client
        .request(Method::PUT, &path(project), Some(&body))
        .await
}

/// The routing object without the list of known types the service adds.
fn without_types(mut routing: Value) -> Value {
    if let Some(object) = routing.as_object_mut() {
        object.remove("types");
    }
    routing
}

fn policies_mut(routing: &mut Value) -> anyhow::Result<&mut Vec<Value>> {
    routing["policies"]
        .as_array_mut()
        .context("the service's answer has no `policies` list")
}

/// Refuses a type the service does not know, naming the known ones.
fn known_type(routing: &Value, kind: &str) -> anyhow::Result<()> {
    let types: Vec<&str> = routing["types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !types.is_empty() && !types.contains(&kind) {
        bail!(
            "unknown policy type `{kind}`; known types: {}",
            types.join(", ")
        );
    }
    Ok(())
}

fn print_policies(routing: &Value) {
    let rows: Vec<Vec<String>> = routing["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, policy)| {
            vec![
                (index + 1).to_string(),
                policy["type"].as_str().unwrap_or("?").to_owned(),
                if policy["enabled"] == json!(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
                policy["config"].to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("No routing policies: candidates are tried in the project's model order.");
        return;
    }
    print_table(&["#", "TYPE", "ENABLED", "CONFIG"], &rows);
}
