//! `routerly report calls`.

use clap::Subcommand;
use reqwest::Method;

use super::{print_json, print_table, segment, text};
use crate::client::Client;

/// `routerly report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Recent calls with tokens, cost and outcome.
    Calls {
        /// How many (default 20).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Spend against each budget and rate limit, with its reset time.
    Usage {
        /// Only limits with this scope (such as `project:demo`).
        #[arg(long)]
        scope: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `routerly report …`.
pub async fn run(command: ReportCommand, mut client: Client) -> anyhow::Result<()> {
    let (limit, project, json) = match command {
        ReportCommand::Calls {
            limit,
            project,
            json,
        } => (limit, project, json),
        ReportCommand::Usage { scope, json } => {
            let path = match &scope {
                Some(scope) => format!("/api/usage/limits?scope={}", segment(scope)),
                None => "/api/usage/limits".to_owned(),
            };
            let answer = client.request(Method::GET, &path, None).await?;
            if json {
                return print_json(&answer["limits"]);
            }
            super::limit::print_limits(&answer["limits"]);
            return Ok(());
        }
    };
    let mut path = format!("/api/usage?limit={limit}");
    if let Some(project) = &project {
        path.push_str(&format!("&project={}", segment(project)));
    }
    let answer = client.request(Method::GET, &path, None).await?;
    if json {
        return print_json(&answer["records"]);
    }
    let rows: Vec<Vec<String>> = answer["records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|record| {
            vec![
                text(record, "/timestamp"),
                text(record, "/model_id"),
                text(record, "/surface"),
                text(record, "/outcome"),
                text(record, "/input_tokens"),
                text(record, "/output_tokens"),
                format!("{:.6}", record["cost_usd"].as_f64().unwrap_or(0.0)),
                format!("{:.0}", record["latency_ms"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    print_table(
        &[
            "TIME", "MODEL", "SURFACE", "OUTCOME", "IN", "OUT", "COST USD", "MS",
        ],
        &rows,
    );
    Ok(())
}
