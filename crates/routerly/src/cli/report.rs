//! `routerly report calls|summary|usage`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;

use super::{print_json, print_table, segment, text};
use crate::client::Client;

/// Filters shared by the usage reports (the API's query parameters).
#[derive(Debug, Clone, Default, Args)]
pub struct UsageFilters {
    /// Only this project.
    #[arg(long)]
    project: Option<String>,
    /// Only this model (`(none)`: calls where no model was tried).
    #[arg(long)]
    model: Option<String>,
    /// Only this project token (its id).
    #[arg(long)]
    token: Option<String>,
    /// Only calls with this `user` field.
    #[arg(long)]
    user: Option<String>,
    /// Only calls carrying this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only this outcome: success, error, timeout, budget_exceeded or cancelled.
    #[arg(long)]
    outcome: Option<String>,
    /// From this time (RFC 3339, such as 2026-01-31T00:00:00Z), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// Until this time (RFC 3339), exclusive.
    #[arg(long)]
    to: Option<String>,
}

impl UsageFilters {
    /// The filters as query parameters, each `&name=value`.
    fn query(&self) -> String {
        let mut query = String::new();
        for (name, value) in [
            ("project", &self.project),
            ("model", &self.model),
            ("token", &self.token),
            ("user", &self.user),
            ("tag", &self.tag),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(value) = value {
                query.push_str(&format!("&{name}={}", segment(value)));
            }
        }
        query
    }
}

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON usage record per line.
    Jsonl,
}

/// What `report summary` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryBy {
    /// One line of totals.
    Total,
    /// Per project.
    Project,
    /// Per model.
    Model,
    /// Per project token.
    Token,
    /// Per `user` field.
    User,
    /// Per tag.
    Tag,
}

/// `routerly report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Recent calls with tokens, cost and outcome; with `--export`, every matching call
    /// (oldest first) streamed to a file.
    Calls {
        /// How many (default 20).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        filters: UsageFilters,
        /// Write every matching call to this file (`-`: standard output) instead of
        /// listing the latest.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// Format of the export (default: from the file's extension, else CSV).
        #[arg(long, value_enum)]
        format: Option<ExportFormat>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Totals (calls, errors, tokens, cost, p50/p95 latency) from the usage rollups.
    Summary {
        /// Group by.
        #[arg(long, value_enum, default_value_t = SummaryBy::Total)]
        by: SummaryBy,
        #[command(flatten)]
        filters: UsageFilters,
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
    match command {
        ReportCommand::Calls {
            export: Some(file),
            format,
            filters,
            ..
        } => export(&mut client, &filters, &file, format).await,
        ReportCommand::Calls {
            limit,
            filters,
            json,
            ..
        } => calls(&mut client, limit, &filters, json).await,
        ReportCommand::Summary { by, filters, json } => {
            summary(&mut client, by, &filters, json).await
        }
        ReportCommand::Usage { scope, json } => {
            let answer: routerly_api::limits::LimitList = client
                .call(
                    Method::GET,
                    &super::limit::scoped("/api/usage/limits", scope.as_deref()),
                    None::<&()>,
                )
                .await?;
            if json {
                return print_json(&serde_json::to_value(&answer.limits)?);
            }
            super::limit::print_limits(&answer.limits);
            Ok(())
        }
    }
}

async fn calls(
    client: &mut Client,
    limit: usize,
    filters: &UsageFilters,
    json: bool,
) -> anyhow::Result<()> {
    let path = format!("/api/usage?limit={limit}{}", filters.query());
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

async fn summary(
    client: &mut Client,
    by: SummaryBy,
    filters: &UsageFilters,
    json: bool,
) -> anyhow::Result<()> {
    let (path, list, key) = match by {
        SummaryBy::Total => ("/api/usage/summary", None, "total"),
        SummaryBy::Project => ("/api/usage/by-project", Some("projects"), "project_id"),
        SummaryBy::Model => ("/api/usage/by-model", Some("models"), "model_id"),
        SummaryBy::Token => ("/api/usage/by-token", Some("tokens"), "token_id"),
        SummaryBy::User => ("/api/usage/by-user", Some("users"), "user"),
        SummaryBy::Tag => ("/api/usage/by-user", Some("tags"), "tag"),
    };
    let query = filters.query();
    let path = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", &query[1..])
    };
    let answer = client.request(Method::GET, &path, None).await?;
    let rows: Vec<serde_json::Value> = match list {
        Some(list) => answer[list].as_array().cloned().unwrap_or_default(),
        None => vec![answer],
    };
    if json {
        return print_json(&serde_json::Value::Array(rows));
    }
    let number = |row: &serde_json::Value, field: &str, digits: usize| {
        row[field]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |value| format!("{value:.digits$}"))
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                if list.is_some() {
                    text(row, &format!("/{key}"))
                } else {
                    "total".to_owned()
                },
                text(row, "/calls"),
                text(row, "/errors"),
                text(row, "/input_tokens"),
                text(row, "/output_tokens"),
                number(row, "cost_usd", 6),
                number(row, "p50_latency_ms", 0),
                number(row, "p95_latency_ms", 0),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME", "CALLS", "ERRORS", "IN", "OUT", "COST USD", "P50 MS", "P95 MS",
        ],
        &table,
    );
    Ok(())
}

/// Streams an export to `file` (through `FILE.part`, renamed when complete) or to standard
/// output, in constant memory, with a progress bar on a terminal.
async fn export(
    client: &mut Client,
    filters: &UsageFilters,
    file: &std::path::Path,
    format: Option<ExportFormat>,
) -> anyhow::Result<()> {
    let format = format.unwrap_or_else(|| match file.extension().and_then(|ext| ext.to_str()) {
        Some("jsonl" | "ndjson") => ExportFormat::Jsonl,
        _ => ExportFormat::Csv,
    });
    let query = filters.query();
    // How many calls to expect, from the rollups (an estimate when a time bound falls
    // inside an hour).
    let summary_path = if query.is_empty() {
        "/api/usage/summary".to_owned()
    } else {
        format!("/api/usage/summary?{}", &query[1..])
    };
    let expected = client
        .request(Method::GET, &summary_path, None)
        .await?
        .get("calls")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let format_name = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Jsonl => "jsonl",
    };
    let mut response = client
        .download(&format!("/api/usage/export?format={format_name}{query}"))
        .await?;
    let to_stdout = file.as_os_str() == "-";
    let progress = if to_stdout {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(expected)
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} calls, {msg}, {elapsed} elapsed, {eta} left",
        )
        .expect("the progress template is valid"),
    );
    let part = PathBuf::from(format!("{}.part", file.display()));
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&part)
                .with_context(|| format!("cannot create {}", part.display()))?,
        ))
    };
    let mut lines: u64 = 0;
    let mut bytes: u64 = 0;
    let result: anyhow::Result<()> = async {
        while let Some(chunk) = response.chunk().await.context("the export was cut short")? {
            out.write_all(&chunk)?;
            lines += chunk.iter().filter(|byte| **byte == b'\n').count() as u64;
            bytes += chunk.len() as u64;
            let records = if format == ExportFormat::Csv {
                lines.saturating_sub(1)
            } else {
                lines
            };
            progress.set_length(expected.max(records));
            progress.set_position(records);
            progress.set_message(indicatif::HumanBytes(bytes).to_string());
        }
        out.flush()?;
        Ok(())
    }
    .await;
    progress.finish_and_clear();
    drop(out);
    if let Err(error) = result {
        if !to_stdout {
            let _ = std::fs::remove_file(&part);
        }
        return Err(error);
    }
    let records = if format == ExportFormat::Csv {
        lines.saturating_sub(1)
    } else {
        lines
    };
    if !to_stdout {
        std::fs::rename(&part, file).with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!(
            "exported {records} calls ({bytes} bytes) to {}",
            file.display()
        );
    }
    Ok(())
}
