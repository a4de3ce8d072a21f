//! `routerly limit add|list|remove` and `routerly report usage`: budgets and rate limits at
//! every level, with their use and reset time.

use clap::Subcommand;
use reqwest::Method;
use routerly_api::limits::{CreateLimit, LimitList, LimitMetric, LimitMode, LimitUse};

use super::{print_json, print_table, segment};
use crate::client::Client;

/// `routerly limit …`.
#[derive(Debug, Subcommand)]
pub enum LimitCommand {
    /// Add a limit.
    Add(LimitAdd),
    /// List limits with their current use and reset time.
    List {
        /// Only limits with this scope.
        #[arg(long)]
        scope: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a limit.
    Remove {
        /// The limit's id.
        id: String,
    },
}

/// Options of `routerly limit add`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("window").required(true).args(["period", "rolling"])))]
pub struct LimitAdd {
    /// global, model:ID, project:P, project:P/model:ID, token:TOKEN_ID or token:TOKEN_ID/model:ID.
    #[arg(long)]
    scope: String,
    /// cost (USD), calls, input_tokens, output_tokens or total_tokens.
    #[arg(long, value_parser = parse_metric)]
    metric: LimitMetric,
    /// A calendar window: hourly, daily, weekly (from Monday), monthly or yearly.
    #[arg(long)]
    period: Option<String>,
    /// A rolling window: 30s, 15m, 1h, 7d.
    #[arg(long)]
    rolling: Option<String>,
    /// The most allowed per window.
    #[arg(long)]
    value: f64,
    /// How it combines with the levels above: extend (default), replace or disable.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<LimitMode>,
    /// IANA time zone of a calendar window (default: the service's budget time zone).
    #[arg(long)]
    time_zone: Option<String>,
    /// A chosen id (default: generated).
    #[arg(long)]
    id: Option<String>,
    /// Print the limit as JSON.
    #[arg(long)]
    json: bool,
}

/// A value of an API enum spelled as on the wire (`total_tokens`, `replace`).
fn wire_enum<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("`{text}` is not one of the values listed in --help"))
}

fn parse_metric(text: &str) -> Result<LimitMetric, String> {
    wire_enum(text)
}

fn parse_mode(text: &str) -> Result<LimitMode, String> {
    wire_enum(text)
}

/// The wire form of an API value that is a string (an enum value, a time).
fn wire_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Prints limits with their use as an aligned table.
pub(crate) fn print_limits(limits: &[LimitUse]) {
    let rows: Vec<Vec<String>> = limits
        .iter()
        .map(|limit| {
            vec![
                limit.id.clone(),
                limit.scope.clone(),
                limit.level.clone(),
                wire_name(&limit.metric),
                limit.window.clone(),
                wire_name(&limit.mode),
                number(limit.used),
                number(limit.value),
                format!("{:.1}%", limit.percent),
                wire_name(&limit.resets_at),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "SCOPE",
            "LEVEL",
            "METRIC",
            "WINDOW",
            "MODE",
            "USED",
            "LIMIT",
            "USE",
            "RESETS AT",
        ],
        &rows,
    );
}

fn number(number: f64) -> String {
    let text = format!("{number:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `path` with `?scope=…` when a scope is given.
pub(crate) fn scoped(path: &str, scope: Option<&str>) -> String {
    match scope {
        Some(scope) => format!("{path}?scope={}", segment(scope)),
        None => path.to_owned(),
    }
}

/// Runs `routerly limit …`.
pub async fn run(command: LimitCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        LimitCommand::Add(add) => {
            let body = CreateLimit {
                id: add.id,
                scope: add.scope,
                metric: add.metric,
                window: None,
                period: add.period,
                rolling: add.rolling,
                value: add.value,
                mode: add.mode,
                time_zone: add.time_zone,
            };
            let limit: LimitUse = client
                .call(Method::POST, "/api/limits", Some(&body))
                .await?;
            if add.json {
                return print_json(&serde_json::to_value(&limit)?);
            }
            println!(
                "Added limit {}: {} {} per {} window on {} (resets at {}).",
                limit.id,
                wire_name(&limit.metric),
                number(limit.value),
                limit.window,
                limit.scope,
                wire_name(&limit.resets_at),
            );
        }
        LimitCommand::List { scope, json } => {
            let answer: LimitList = client
                .call(
                    Method::GET,
                    &scoped("/api/limits", scope.as_deref()),
                    None::<&()>,
                )
                .await?;
            if json {
                return print_json(&serde_json::to_value(&answer.limits)?);
            }
            print_limits(&answer.limits);
        }
        LimitCommand::Remove { id } => {
            client
                .delete(&format!("/api/limits/{}", segment(&id)))
                .await?;
            println!("Removed limit {id}.");
        }
    }
    Ok(())
}
