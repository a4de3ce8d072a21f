//! How long start-up takes to rebuild budget counters from a long usage log.
//!
//! Writes a usage log of N records (default 1,000,000; first argument) spread over the last
//! 20 days across 20 projects, 100 tokens and 4 models, then times the start-up rebuild for
//! six counters (global, model, project, project-model, token, token-model; calendar and
//! rolling windows): once from the log alone (no checkpoint: the worst case) and once from
//! a checkpoint with 10,000 records after it (the usual case). Run it with
//! `cargo run --release -p routerly-server --example rebuild_bench` (or `bench/rebuild.sh`).

use std::io::{BufWriter, Write};
use std::time::Instant;

use chrono::{Duration, Utc};
use routerly_core::limits::{Scope, Window};
use routerly_core::usage::{CallType, Outcome, Surface, UsageRecord};
use routerly_server::budgets::rebuild;
use routerly_server::store::counters::CounterKey;
use routerly_server::store::history::Replays;
use routerly_server::store::usage_log::usage_log_files;

fn record(index: u64, at: chrono::DateTime<Utc>) -> UsageRecord {
    UsageRecord {
        requested_model: None,
        id: format!("{:032x}", index),
        timestamp: at,
        project_id: format!("project-{}", index % 20),
        token_id: format!("token-{}", index % 100),
        model_id: Some(format!("model-{}", index % 4)),
        provider: Some("openai".to_owned()),
        surface: Surface::ChatCompletions,
        call_type: CallType::Completion,
        stream: index.is_multiple_of(2),
        input_tokens: 100 + index % 900,
        output_tokens: 50 + index % 450,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
        cost_usd: 0.000_35,
        input_cost_usd: 0.000_1,
        output_cost_usd: 0.000_25,
        latency_ms: 412.5,
        ttft_ms: Some(120.25),
        overhead_ms: 0.21,
        outcome: Outcome::Success,
        status: 200,
        error: None,
        trace_id: format!("{:032x}", index + 1),
        user: Some("user-42".to_owned()),
        tags: vec!["team:search".to_owned()],
        attempts: vec![],
    }
}

fn main() -> std::io::Result<()> {
    let count: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("the record count is a number"))
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("usage.jsonl");
    let checkpoint = dir.path().join("checkpoints").join("counters.json");
    let now = Utc::now();
    let span = Duration::days(20).num_seconds();
    let started = Instant::now();
    {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&log)?);
        for index in 0..count {
            let at = now - Duration::seconds(span - span * index as i64 / count.max(1) as i64);
            serde_json::to_writer(&mut out, &record(index, at))?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    let bytes = std::fs::metadata(&log)?.len();
    println!(
        "wrote {count} usage records ({:.0} MB) in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let key = |scope: &str, window: &str| CounterKey {
        scope: Scope::parse(scope).expect("scope"),
        window: Window::parse(window).expect("window"),
        zone: chrono_tz::Tz::UTC,
    };
    let keys = vec![
        key("global", "monthly"),
        key("model:model-1", "yearly"),
        key("project:project-3", "daily"),
        key("project:project-3/model:model-3", "weekly"),
        key("token:token-7", "rolling:7d"),
        key("token:token-7/model:model-3", "rolling:1h"),
    ];

    let (counters, stats) = rebuild::rebuild(
        &usage_log_files(&log)?,
        &checkpoint,
        &keys,
        Utc::now(),
        &mut Replays(Vec::new()),
    )?;
    println!(
        "rebuild from the log alone: {} records, {} counters in {} ms ({:.2} s)",
        stats.records,
        counters.len(),
        stats.millis,
        stats.millis as f64 / 1000.0
    );

    let position = rebuild::current_position(&log)?;
    rebuild::write_checkpoint(&checkpoint, position, counters, Vec::new())?;
    {
        let mut out = BufWriter::new(std::fs::OpenOptions::new().append(true).open(&log)?);
        for index in count..count + 10_000 {
            serde_json::to_writer(&mut out, &record(index, Utc::now()))?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    let (_, stats) = rebuild::rebuild(
        &usage_log_files(&log)?,
        &checkpoint,
        &keys,
        Utc::now(),
        &mut Replays(Vec::new()),
    )?;
    println!(
        "rebuild from a checkpoint: {} records after it, in {} ms (checkpoint used: {})",
        stats.records, stats.millis, stats.from_checkpoint
    );
    Ok(())
}
