//! `routerly limit add|list|remove` and `routerly report usage`: budgets and rate limits at
//! every level, with their use and reset time.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{print_json, print_table, segment, text};
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
    #[arg(long)]
    metric: String,
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
    #[arg(long)]
    mode: Option<String>,
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

/// Prints limits with their use as an aligned table.
pub(crate) fn print_limits(limits: &Value) {
    let rows: Vec<Vec<String>> = limits
        .as_array()
        .into_iter()
        .flatten()
        .map(|limit| {
            vec![
                text(limit, "/id"),
                text(limit, "/scope"),
                text(limit, "/level"),
                text(limit, "/metric"),
                text(limit, "/window"),
                text(limit, "/mode"),
                number(&limit["used"]),
                number(&limit["value"]),
                format!("{:.1}%", limit["percent"].as_f64().unwrap_or(0.0)),
                text(limit, "/resets_at"),
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

fn number(value: &Value) -> String {
    let number = value.as_f64().unwrap_or(0.0);
    let text = format!("{number:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Runs `routerly limit …`.
pub async fn run(command: LimitCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        LimitCommand::Add(add) => {
            let mut body = json!({
                "scope": add.scope,
                "metric": add.metric,
                "value": add.value,
            });
            if let Some(period) = add.period {
                body["period"] = json!(period);
            }
            if let Some(rolling) = add.rolling {
                body["rolling"] = json!(rolling);
            }
            if let Some(mode) = add.mode {
                body["mode"] = json!(mode);
            }
            if let Some(time_zone) = add.time_zone {
                body["time_zone"] = json!(time_zone);
            }
            if let Some(id) = add.id {
                body["id"] = json!(id);
            }
            let limit = client
                .request(Method::POST, "/api/limits", Some(&body))
                .await?;
            if add.json {
                return print_json(&limit);
            }
            println!(
                "Added limit {}: {} {} per {} window on {} (resets at {}).",
                text(&limit, "/id"),
                text(&limit, "/metric"),
                number(&limit["value"]),
                text(&limit, "/window"),
                text(&limit, "/scope"),
                text(&limit, "/resets_at"),
            );
        }
        LimitCommand::List { scope, json } => {
            let path = match &scope {
                Some(scope) => format!("/api/limits?scope={}", segment(scope)),
                None => "/api/limits".to_owned(),
            };
            let answer = client.request(Method::GET, &path, None).await?;
            if json {
                return print_json(&answer["limits"]);
            }
            print_limits(&answer["limits"]);
        }
        LimitCommand::Remove { id } => {
            client
                .request(
                    Method::DELETE,
                    &format!("/api/limits/{}", segment(&id)),
                    None,
                )
                .await?;
            println!("Removed limit {id}.");
        }
    }
    Ok(())
}
