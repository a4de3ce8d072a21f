//! `routerly report calls|summary|usage`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use routerly_api::usage::{
    UsageByModel, UsageByProject, UsageByToken, UsageByUser, UsagePage, UsageQuery, UsageSummary,
    UsageTotals,
};

use super::{print_json, print_table, segment};
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
    /// The filters as the API's query.
    fn query(&self) -> anyhow::Result<UsageQuery> {
        let time = |option: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|value| {
                    chrono::DateTime::parse_from_rfc3339(value)
                        .map(|time| time.to_utc())
                        .with_context(|| {
                            format!("--{option} `{value}` is not an RFC 3339 time (such as 2026-01-31T00:00:00Z)")
                        })
                })
                .transpose()
        };
        Ok(UsageQuery {
            project: self.project.clone(),
            model: self.model.clone(),
            token: self.token.clone(),
            user: self.user.clone(),
            tag: self.tag.clone(),
            outcome: self.outcome.clone(),
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            ..UsageQuery::default()
        })
    }
}

/// `path` with `query` as its query string.
fn with_query(path: &str, query: &UsageQuery) -> anyhow::Result<String> {
    let serde_json::Value::Object(parameters) = serde_json::to_value(query)? else {
        unreachable!("a query serializes as an object")
    };
    let mut path = path.to_owned();
    for (index, (name, value)) in parameters.into_iter().enumerate() {
        let value = match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        path.push(if index == 0 { '?' } else { '&' });
        path.push_str(&format!("{name}={}", segment(&value)));
    }
    Ok(path)
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
    let query = UsageQuery {
        limit: Some(limit as u64),
        ..filters.query()?
    };
    let page: UsagePage = client
        .call(Method::GET, &with_query("/api/usage", &query)?, None::<&()>)
        .await?;
    if json {
        return print_json(&page.records);
    }
    let rows: Vec<Vec<String>> = page
        .records
        .into_iter()
        .map(|record| {
            vec![
                record
                    .timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                record.model_id.unwrap_or_else(|| "-".to_owned()),
                name_of(&record.surface),
                name_of(&record.outcome),
                record.input_tokens.to_string(),
                record.output_tokens.to_string(),
                format!("{:.6}", record.cost_usd),
                format!("{:.0}", record.latency_ms),
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

/// A value's name as the API spells it (a unit enum's serde name).
fn name_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "-".to_owned(),
    }
}

async fn summary(
    client: &mut Client,
    by: SummaryBy,
    filters: &UsageFilters,
    json: bool,
) -> anyhow::Result<()> {
    let query = filters.query()?;
    let mut get = async |path: &str| -> anyhow::Result<serde_json::Value> {
        client
            .call(Method::GET, &with_query(path, &query)?, None::<&()>)
            .await
    };
    // Each report's rows as (name, totals), and as the API answered them for `--json`.
    let (rows, answer): (Vec<(String, UsageTotals)>, serde_json::Value) = match by {
        SummaryBy::Total => {
            let answer = get("/api/usage/summary").await?;
            let summary: UsageSummary = serde_json::from_value(answer.clone())?;
            (
                vec![("total".to_owned(), summary.totals)],
                serde_json::Value::Array(vec![answer]),
            )
        }
        SummaryBy::Project => {
            let answer: UsageByProject =
                serde_json::from_value(get("/api/usage/by-project").await?)?;
            let json = serde_json::to_value(&answer.projects)?;
            let rows = answer
                .projects
                .into_iter()
                .map(|row| (row.project_id, row.totals));
            (rows.collect(), json)
        }
        SummaryBy::Model => {
            let answer: UsageByModel = serde_json::from_value(get("/api/usage/by-model").await?)?;
            let json = serde_json::to_value(&answer.models)?;
            let rows = answer
                .models
                .into_iter()
                .map(|row| (row.model_id, row.totals));
            (rows.collect(), json)
        }
        SummaryBy::Token => {
            let answer: UsageByToken = serde_json::from_value(get("/api/usage/by-token").await?)?;
            let json = serde_json::to_value(&answer.tokens)?;
            let rows = answer
                .tokens
                .into_iter()
                .map(|row| (row.token_id, row.totals));
            (rows.collect(), json)
        }
        SummaryBy::User => {
            let answer: UsageByUser = serde_json::from_value(get("/api/usage/by-user").await?)?;
            let json = serde_json::to_value(&answer.users)?;
            let rows = answer.users.into_iter().map(|row| (row.user, row.totals));
            (rows.collect(), json)
        }
        SummaryBy::Tag => {
            let answer: UsageByUser = serde_json::from_value(get("/api/usage/by-user").await?)?;
            let json = serde_json::to_value(&answer.tags)?;
            let rows = answer.tags.into_iter().map(|row| (row.tag, row.totals));
            (rows.collect(), json)
        }
    };
    if json {
        return print_json(&answer);
    }
    let number = |value: Option<f64>, digits: usize| {
        value.map_or_else(|| "-".to_owned(), |value| format!("{value:.digits$}"))
    };
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, totals)| {
            vec![
                name,
                totals.calls.to_string(),
                totals.errors.to_string(),
                totals.input_tokens.to_string(),
                totals.output_tokens.to_string(),
                number(Some(totals.cost_usd), 6),
                number(totals.p50_latency_ms, 0),
                number(totals.p95_latency_ms, 0),
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

/// Counts the records of an export as its bytes arrive: one a line, but in CSV a line break
/// inside a quoted field (an error message may hold one) does not end a record, and the
/// first line is the header.
struct RecordCounter {
    csv: bool,
    quoted: bool,
    lines: u64,
}

impl RecordCounter {
    fn new(format: ExportFormat) -> Self {
        Self {
            csv: format == ExportFormat::Csv,
            quoted: false,
            lines: 0,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if !self.csv {
            self.lines += bytes.iter().filter(|byte| **byte == b'\n').count() as u64;
            return;
        }
        for byte in bytes {
            match byte {
                // A doubled quote inside a quoted field toggles twice: still quoted.
                b'"' => self.quoted = !self.quoted,
                b'\n' if !self.quoted => self.lines += 1,
                _ => {}
            }
        }
    }

    fn records(&self) -> u64 {
        if self.csv {
            self.lines.saturating_sub(1)
        } else {
            self.lines
        }
    }
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
    let query = filters.query()?;
    // How many calls to expect, from the rollups (an estimate when a time bound falls
    // inside an hour).
    let summary: UsageSummary = client
        .call(
            Method::GET,
            &with_query("/api/usage/summary", &query)?,
            None::<&()>,
        )
        .await?;
    let expected = summary.totals.calls;
    let format_name = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Jsonl => "jsonl",
    };
    let query = UsageQuery {
        format: Some(format_name.to_owned()),
        ..query
    };
    let mut response = client
        .download(&with_query("/api/usage/export", &query)?)
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
    let mut records = RecordCounter::new(format);
    let mut bytes: u64 = 0;
    let result: anyhow::Result<()> = async {
        while let Some(chunk) = response.chunk().await.context("the export was cut short")? {
            out.write_all(&chunk)?;
            records.feed(&chunk);
            bytes += chunk.len() as u64;
            let records = records.records();
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
    let records = records.records();
    if !to_stdout {
        std::fs::rename(&part, file).with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!(
            "exported {records} calls ({bytes} bytes) to {}",
            file.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(format: ExportFormat, chunks: &[&[u8]]) -> u64 {
        let mut counter = RecordCounter::new(format);
        for chunk in chunks {
            counter.feed(chunk);
        }
        counter.records()
    }

    #[test]
    fn csv_records_are_counted_by_the_line_breaks_outside_quoted_fields() {
        let csv: &[u8] = b"id,error,tags\n1,\"upstream said:\nbad \"\"gateway\"\"\",a;b\n2,,\n";
        assert_eq!(count(ExportFormat::Csv, &[csv]), 2);
        // However the bytes are cut into chunks, inside a quote or between two.
        for cut in 0..csv.len() {
            assert_eq!(
                count(ExportFormat::Csv, &[&csv[..cut], &csv[cut..]]),
                2,
                "cut at {cut}"
            );
        }
        assert_eq!(count(ExportFormat::Csv, &[b"id,error\n"]), 0);
        assert_eq!(count(ExportFormat::Csv, &[]), 0);
    }

    #[test]
    fn json_lines_are_one_record_a_line() {
        // A line break inside a record is escaped in JSON, so every one ends a record.
        let jsonl: &[u8] = b"{\"error\":\"a\\nb\"}\n{\"error\":null}\n";
        assert_eq!(count(ExportFormat::Jsonl, &[&jsonl[..5], &jsonl[5..]]), 2);
    }
}
