//! `routerly model add|list|remove`.

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{print_json, print_table, segment, text};
use crate::client::Client;

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

/// Runs `routerly model …`.
pub async fn run(command: ModelCommand, mut client: Client) -> anyhow::Result<()> {
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
