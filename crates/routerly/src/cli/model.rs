//! `routerly model add|list|remove`.

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use routerly_api::models::{
    Capabilities, CreateModel, Model, ModelList, PricingOverride, TimeoutOverrides, UpdateModel,
};

use super::{print_json, print_table, segment};
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

/// The capability flags named in `--capabilities`, each set to `true`.
fn capabilities_given(names: &[String]) -> anyhow::Result<Capabilities> {
    let mut capabilities = Capabilities::default();
    for name in names
        .iter()
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
    {
        let flag = match name {
            "vision" => &mut capabilities.vision,
            "tools" => &mut capabilities.tools,
            "json" => &mut capabilities.json,
            "thinking" => &mut capabilities.thinking,
            "embedding" => &mut capabilities.embedding,
            _ => {
                bail!("unknown capability `{name}`; use vision, tools, json, thinking or embedding")
            }
        };
        *flag = Some(true);
    }
    Ok(capabilities)
}

async fn edit(edit: ModelEdit, client: &mut Client) -> anyhow::Result<()> {
    let path = format!("/api/models/{}", segment(&edit.id));
    let mut body = UpdateModel {
        endpoint: edit.endpoint,
        api_key: edit.api_key,
        upstream_model: edit.upstream_model,
        context_window: edit.context_window,
        capabilities: edit
            .capabilities
            .as_deref()
            .map(capabilities_given)
            .transpose()?,
        ..UpdateModel::default()
    };
    if edit.input_price.is_some()
        || edit.output_price.is_some()
        || edit.cached_price.is_some()
        || edit.cache_write_price.is_some()
    {
        // A given `pricing` replaces the model's: start from its current prices.
        let current: Model = client.call(Method::GET, &path, None::<&()>).await?;
        let mut pricing = current.pricing;
        pricing.input = edit.input_price.unwrap_or(pricing.input);
        pricing.output = edit.output_price.unwrap_or(pricing.output);
        pricing.cached_input = edit.cached_price.or(pricing.cached_input);
        pricing.cache_write = edit.cache_write_price.or(pricing.cache_write);
        body.pricing = Some(pricing);
    }
    if body == UpdateModel::default() {
        bail!("nothing to change: give at least one option (see `routerly model edit --help`)");
    }
    let model: Model = client.call(Method::PATCH, &path, Some(&body)).await?;
    if edit.json {
        return print_json(&model);
    }
    println!(
        "Updated model {} ({} at {}, key {}).",
        model.id,
        model.provider,
        model.endpoint,
        model.api_key.as_deref().unwrap_or("-")
    );
    Ok(())
}

/// A price for the table: `-` when there is none.
fn price(price: Option<f64>) -> String {
    price.map_or_else(|| "-".to_owned(), |price| price.to_string())
}

/// Runs `routerly model …`.
pub async fn run(command: ModelCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        ModelCommand::Add(add) => {
            let body = CreateModel {
                id: add.id,
                provider: add.provider,
                endpoint: add.endpoint,
                api_key: add.api_key,
                upstream_model: add.upstream_model,
                api_version: add.api_version,
                pricing: PricingOverride {
                    input: add.input_price,
                    output: add.output_price,
                    cached_input: add.cached_price,
                    cache_write: add.cache_write_price,
                    long_context: None,
                },
                context_window: add.context_window,
                capabilities: capabilities_given(&add.capabilities)?,
                timeouts: TimeoutOverrides::default(),
            };
            let model: Model = client
                .call(Method::POST, "/api/models", Some(&body))
                .await?;
            if add.json {
                print_json(&model)?;
            } else {
                println!(
                    "Added model {} ({} at {}).",
                    model.id, model.provider, model.endpoint
                );
            }
        }
        ModelCommand::List { json } => {
            let answer: ModelList = client.call(Method::GET, "/api/models", None::<&()>).await?;
            if json {
                return print_json(&answer.models);
            }
            let rows: Vec<Vec<String>> = answer
                .models
                .into_iter()
                .map(|model| {
                    vec![
                        model.id,
                        model.provider,
                        model.upstream_model,
                        model.endpoint,
                        model.api_key.unwrap_or_else(|| "-".to_owned()),
                        format!(
                            "{}/{}",
                            price(Some(model.pricing.input)),
                            price(Some(model.pricing.output))
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
                .delete(&format!("/api/models/{}", segment(&id)))
                .await?;
            println!("Removed model {id}.");
        }
    }
    Ok(())
}
