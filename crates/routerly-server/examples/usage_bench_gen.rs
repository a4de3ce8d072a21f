//! Writes N synthetic usage records into a fresh `$ROUTERLY_HOME` for `bench/usage.sh`:
//! rotated segments of about 256 MB (`data/usage-STAMP-0000.jsonl`, no indexes: the first
//! start builds them) and the active `data/usage.jsonl`, timestamps spread evenly over the
//! last DAYS days, and `config/projects.json` naming the PROJECTS projects the records belong
//! to (so a report may filter on one). Prints a JSON line with what the benchmark queries for.
//!
//! `cargo run --release -p routerly-server --example usage_bench_gen -- HOME N DAYS`

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use chrono::{Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use routerly_core::usage::{CallType, Outcome, Surface, UsageRecord};

const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
const PROJECTS: usize = 20;
const MODELS: [&str; 8] = [
    "gpt-4o-mini",
    "gpt-4o",
    "claude-sonnet",
    "claude-haiku",
    "gemini-flash",
    "gemini-pro",
    "mistral-large",
    "llama-70b",
];

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let home = PathBuf::from(args.next().expect("usage: usage_bench_gen HOME N DAYS"));
    let count: u64 = args.next().and_then(|n| n.parse().ok()).expect("N");
    let days: i64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(30);
    let data = home.join("data");
    std::fs::create_dir_all(&data)?;
    write_projects(&home)?;
    let mut rng = StdRng::seed_from_u64(1);
    let now = Utc::now();
    let start = now - Duration::days(days);
    let span_ms = days * 86_400_000;
    let mut segment = 0u32;
    let mut written: u64 = 0;
    let open = |segment: u32| -> std::io::Result<(PathBuf, BufWriter<std::fs::File>)> {
        let path = data.join(format!("segment-{segment:04}.tmp"));
        Ok((
            path.clone(),
            BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?),
        ))
    };
    let (mut path, mut out) = open(segment)?;
    let mut sample_trace = String::new();
    let mut middle_trace = String::new();
    for index in 0..count {
        let at = start + Duration::milliseconds(span_ms * index as i64 / count as i64);
        let project = rng.gen_range(0..PROJECTS);
        let model = MODELS[rng.gen_range(0..MODELS.len())];
        // Log-normal latency around 800 ms.
        let normal: f64 = (0..12).map(|_| rng.r#gen::<f64>()).sum::<f64>() - 6.0;
        let latency_ms = 800.0 * (0.8 * normal).exp();
        let outcome = match rng.gen_range(0..1000) {
            0..940 => Outcome::Success,
            940..980 => Outcome::Error,
            980..990 => Outcome::Timeout,
            990..995 => Outcome::Cancelled,
            _ => Outcome::BudgetExceeded,
        };
        let stream = rng.gen_bool(0.5);
        let input_tokens = rng.gen_range(50..4000);
        let output_tokens = rng.gen_range(10..1500);
        let started = at - Duration::milliseconds(latency_ms as i64);
        let trace_id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            started.timestamp() as u64,
            started.timestamp_subsec_nanos(),
        ))
        .to_string();
        let mut tags = vec![format!("team-{}", rng.gen_range(0..10))];
        if rng.gen_bool(0.3) {
            tags.push("batch".to_owned());
        }
        let record = UsageRecord {
            requested_model: None,
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: at,
            project_id: format!("project-{project:02}"),
            token_id: format!("token-{project:02}-{}", rng.gen_range(0..3)),
            model_id: Some(model.to_owned()),
            provider: Some("openai".to_owned()),
            surface: Surface::ChatCompletions,
            call_type: CallType::Completion,
            stream,
            input_tokens,
            output_tokens,
            cached_input_tokens: input_tokens / 4,
            cache_write_tokens: 0,
            cost_usd: (input_tokens as f64 * 0.15 + output_tokens as f64 * 0.6) / 1e6,
            input_cost_usd: input_tokens as f64 * 0.15 / 1e6,
            output_cost_usd: output_tokens as f64 * 0.6 / 1e6,
            latency_ms,
            ttft_ms: stream.then_some(latency_ms * 0.3),
            overhead_ms: 0.2,
            outcome,
            status: if outcome == Outcome::Success {
                200
            } else {
                500
            },
            error: (outcome != Outcome::Success).then(|| "upstream said no".to_owned()),
            trace_id: trace_id.clone(),
            user: Some(format!("user-{project:02}-{}", rng.gen_range(0..10))),
            tags,
            attempts: Vec::new(),
        };
        if index == count / 2 {
            middle_trace = trace_id.clone();
        }
        if index + 1 == count {
            sample_trace = trace_id;
        }
        let line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        written += line.len() as u64 + 1;
        if written >= SEGMENT_BYTES && index + 1 < count {
            out.flush()?;
            // Named as the writer names it: rotated just after its last record.
            let stamp = (at + Duration::seconds(1)).format("%Y%m%dT%H%M%SZ");
            std::fs::rename(&path, data.join(format!("usage-{stamp}-0000.jsonl")))?;
            segment += 1;
            written = 0;
            (path, out) = open(segment)?;
        }
    }
    out.flush()?;
    drop(out);
    // The last segment is the active log.
    std::fs::rename(&path, data.join("usage.jsonl"))?;
    println!(
        "{}",
        serde_json::json!({
            "records": count,
            "segments": segment + 1,
            "newest_trace": sample_trace,
            "middle_trace": middle_trace,
            "model": MODELS[0],
            "project": "project-03",
            "token": "token-03-1",
            "day_from": (now - Duration::days(days / 2)).format("%Y-%m-%dT00:00:00Z").to_string(),
            "day_to": (now - Duration::days(days / 2 - 1)).format("%Y-%m-%dT00:00:00Z").to_string(),
        })
    );
    Ok(())
}

/// `config/projects.json` with the projects the records name (no models or tokens: the
/// benchmark only reads their usage), checked against the format the server reads.
fn write_projects(home: &std::path::Path) -> std::io::Result<()> {
    let projects: Vec<_> = (0..PROJECTS)
        .map(|project| {
            serde_json::json!({
                "id": format!("project-{project:02}"),
                "name": format!("Project {project:02}"),
                "slug": format!("project-{project:02}"),
            })
        })
        .collect();
    let file = serde_json::json!({ "projects": projects });
    serde_json::from_value::<routerly_core::config::ProjectsFile>(file.clone())
        .map_err(std::io::Error::other)?;
    let config = home.join("config");
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&config)?;
    std::fs::write(
        config.join("projects.json"),
        serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?,
    )
}
