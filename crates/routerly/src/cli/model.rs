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
    /// Register a model; prices, context window and capabilities come from the catalogue
    /// when Routerly knows the model.
    #[command(
        after_help = "Examples:\n  routerly model add --id llama-3.3-70b-versatile --provider groq --api-key env:GROQ_API_KEY\n  routerly model add --id gemini-2.5-flash --provider gemini --api-key env:GEMINI_API_KEY\n  routerly model add --id llama3.2 --provider ollama\n  routerly model add --id gpt-4o --provider azure --endpoint https://acme.openai.azure.com --upstream-model my-deployment --api-key env:AZURE_OPENAI_API_KEY"
    )]
    Add(ModelAdd),
    /// List models (keys masked).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a model: endpoint, key, upstream name, prices, context window, capabilities.
    #[command(
        after_help = "Examples:\n  routerly model edit gpt-4o --input-price 2.5 --output-price 10\n  routerly model edit claude --api-key env:ANTHROPIC_API_KEY"
    )]
    Edit(ModelEdit),
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
    /// The provider: openai, anthropic, gemini, mistral, ollama, azure, custom (any
    /// OpenAI-compatible endpoint), or a catalogue preset: groq, deepseek, xai, together,
    /// openrouter, perplexity, fireworks, vllm, lmstudio.
    #[arg(long)]
    provider: String,
    /// Base URL as the provider's official SDK takes it (default: the provider's).
    #[arg(long)]
    endpoint: Option<String>,
    /// The provider API key, or `env:NAME` to read it from the service's environment.
    #[arg(long)]
    api_key: Option<String>,
    /// The provider's own model name (default: the id); Azure's deployment name.
    #[arg(long)]
    upstream_model: Option<String>,
    /// Azure OpenAI's api-version (default: the newest GA version Routerly knows).
    #[arg(long)]
    api_version: Option<String>,
    /// USD per million input tokens (default: the catalogue's price, else 0).
    #[arg(long)]
    input_price: Option<f64>,
    /// USD per million output tokens (default: the catalogue's price, else 0).
    #[arg(long)]
    output_price: Option<f64>,
    /// USD per million cached input tokens.
    #[arg(long)]
    cached_price: Option<f64>,
    /// USD per million cache-write tokens.
    #[arg(long)]
    cache_write_price: Option<f64>,
    /// Context window in tokens (default: the catalogue's).
    #[arg(long)]
    context_window: Option<u64>,
    /// Capabilities, comma-separated: vision,tools,json,thinking,embedding (added to the
    /// catalogue's).
    #[arg(long, value_delimiter = ',')]
    capabilities: Vec<String>,
    /// Print the model as JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `routerly model edit`: only the given fields change.
#[derive(Debug, clap::Args)]
pub struct ModelEdit {
    /// The model's id.
    id: String,
    /// Base URL as the provider's official SDK takes it.
    #[arg(long)]
    endpoint: Option<String>,
    /// The provider API key, or `env:NAME`.
    #[arg(long)]
    api_key: Option<String>,
    /// The provider's own model name.
    #[arg(long)]
    upstream_model: Option<String>,
    /// USD per million input tokens.
    #[arg(long)]
    input_price: Option<f64>,
    /// USD per million output tokens.
    #[arg(long)]
    output_price: Option<f64>,
    /// USD per million cached input tokens.
    #[arg(long)]
    cached_price: Option<f64>,
    /// USD per million cache-write tokens.
    #[arg(long)]
    cache_write_price: Option<f64>,
    /// Context window in tokens.
    #[arg(long)]
    context_window: Option<u64>,
    /// Capabilities, comma-separated (replacing the old ones): vision,tools,json,thinking,embedding.
    #[arg(long, value_delimiter = ',')]
    capabilities: Option<Vec<String>>,
    /// Print the model as JSON.
    #[arg(long)]
    json: bool,
}

fn capabilities_body(capabilities: &[String]) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut body = serde_json::Map::new();
    for capability in capabilities
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
    {
        if !["vision", "tools", "json", "thinking", "embedding"].contains(&capability) {
            bail!(
                "unknown capability `{capability}`; use vision, tools, json, thinking or embedding"
            );
        }
        body.insert(capability.to_owned(), Value::Bool(true));
    }
    Ok(body)
}

async fn edit(edit: ModelEdit, client: &mut Client) -> anyhow::Result<()> {
    let path = format!("/api/models/{}", segment(&edit.id));
    let mut body = serde_json::Map::new();
    if let Some(endpoint) = edit.endpoint {
        body.insert("endpoint".into(), Value::String(endpoint));
    }
    if let Some(api_key) = edit.api_key {
        body.insert("api_key".into(), Value::String(api_key));
    }
    if let Some(upstream_model) = edit.upstream_model {
        body.insert("upstream_model".into(), Value::String(upstream_model));
    }
    if edit.input_price.is_some()
        || edit.output_price.is_some()
        || edit.cached_price.is_some()
        || edit.cache_write_price.is_some()
    {
        let current = client.request(Method::GET, &path, None).await?;
        let mut pricing = current["pricing"].clone();
        if !pricing.is_object() {
            pricing = json!({});
        }
        if let Some(price) = edit.input_price {
            pricing["input"] = json!(price);
        }
        if let Some(price) = edit.output_price {
            pricing["output"] = json!(price);
        }
        if let Some(price) = edit.cached_price {
            pricing["cached_input"] = json!(price);
        }
        if let Some(price) = edit.cache_write_price {
            pricing["cache_write"] = json!(price);
        }
        body.insert("pricing".into(), pricing);
    }
    if let Some(context_window) = edit.context_window {
        body.insert("context_window".into(), json!(context_window));
    }
    if let Some(capabilities) = &edit.capabilities {
        body.insert(
            "capabilities".into(),
            Value::Object(capabilities_body(capabilities)?),
        );
    }
    if body.is_empty() {
        bail!("nothing to change: give at least one option (see `routerly model edit --help`)");
    }
    let model = client
        .request(Method::PATCH, &path, Some(&Value::Object(body)))
        .await?;
    if edit.json {
        return print_json(&model);
    }
    println!(
        "Updated model {} ({} at {}, key {}).",
        text(&model, "/id"),
        text(&model, "/provider"),
        text(&model, "/endpoint"),
        text(&model, "/api_key")
    );
    Ok(())
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
                "api_version": add.api_version,
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
        ModelCommand::Edit(options) => edit(options, &mut client).await?,
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
