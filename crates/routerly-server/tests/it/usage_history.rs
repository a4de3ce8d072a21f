//! The usage history end to end: records go through the real writer into rotated,
//! indexed segments and rollups; every report, page, trace look-up and export answers the
//! same after a restart, after a crash that lost the rollups' last checkpoint, after a torn
//! last line, after old segments are compressed, and (for what the expired segments did not
//! hold) after they are deleted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use routerly_core::usage::{CallType, Outcome, Surface, UsageRecord};
use routerly_server::budgets::rebuild;
use routerly_server::store::history::{FileUsageHistory, Retention, RollupMode, UsageHistory};
use routerly_server::store::rollup::{
    DAY, Dimension, Filter, GroupBy, Groups, HOUR, OUTCOMES, Rollups,
};
use routerly_server::store::segments;
use routerly_server::store::usage_log::{
    read_usage_all, spawn_rotating_usage_writer, usage_log_files,
};

const RECORDS: usize = 3000;

fn records(now: DateTime<Utc>) -> Vec<UsageRecord> {
    let mut rng = StdRng::seed_from_u64(14);
    let start = now.timestamp() - 40 * DAY;
    (0..RECORDS)
        .map(|index| {
            // In log order: time goes forward, 40 days over the whole set.
            let at_ms = (start + (40 * DAY) * index as i64 / RECORDS as i64) * 1000
                + rng.gen_range(0..1000);
            let timestamp = Utc.timestamp_millis_opt(at_ms).unwrap();
            let trace = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                (at_ms / 1000) as u64 - 2,
                0,
            ));
            let pick =
                |rng: &mut StdRng, names: &[&str]| names[rng.gen_range(0..names.len())].to_owned();
            UsageRecord {
                requested_model: None,
                id: format!("r{index:05}"),
                timestamp,
                project_id: pick(&mut rng, &["p1", "p2", "p3"]),
                token_id: pick(&mut rng, &["t1", "t2", "t3"]),
                model_id: Some(pick(&mut rng, &["m1", "m2"])),
                provider: Some("openai".to_owned()),
                surface: Surface::ChatCompletions,
                call_type: CallType::Completion,
                stream: false,
                input_tokens: rng.gen_range(1..1000),
                output_tokens: rng.gen_range(1..1000),
                cached_input_tokens: 0,
                cache_write_tokens: 0,
                cost_usd: rng.gen_range(0.0..0.01),
                input_cost_usd: 0.0,
                output_cost_usd: 0.0,
                latency_ms: rng.gen_range(10.0..5000.0),
                ttft_ms: None,
                overhead_ms: 0.1,
                outcome: OUTCOMES[rng.gen_range(0..3)],
                status: 200,
                error: None,
                trace_id: trace.to_string(),
                user: Some(pick(&mut rng, &["u1", "u2"])),
                tags: vec![pick(&mut rng, &["a", "b"])],
                attempts: Vec::new(),
            }
        })
        .collect()
}

fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let data = dir.join("data");
    (
        data.join("usage.jsonl"),
        data.join("checkpoints").join("usage.bin"),
        data.join("checkpoints").join("counters.json"),
    )
}

/// Opens the history as `Service::open` does in file mode: one replay pass driven by the
/// budget rebuild.
fn open(dir: &Path) -> Arc<FileUsageHistory> {
    open_as(dir, RollupMode::Kept)
}

/// Opens the history as `Service::open` does with `rollups` (`Skipped` on PostgreSQL).
fn open_as(dir: &Path, rollups: RollupMode) -> Arc<FileUsageHistory> {
    let (log, checkpoint, counters) = paths(dir);
    let files = usage_log_files(&log).expect("list the log");
    let (history, start) =
        FileUsageHistory::open(&log, &checkpoint, &files, rollups).expect("open");
    let mut replay = history.replay(start);
    rebuild::rebuild(&files, &counters, &[], Utc::now(), &mut replay).expect("replay");
    let history = replay.finish();
    compact(&history);
    history
}

/// Hours older than a week merged into days, as the service's upkeep does at start.
fn compact(history: &FileUsageHistory) {
    let keep_all = Retention {
        keep_days: None,
        compress_after_days: None,
        hourly_days: 7,
    };
    let done = history.maintain(Utc::now(), keep_all).expect("compact");
    assert_eq!((done.compressed, done.deleted), (0, 0));
}

/// Everything the history answers to a fixed set of questions.
#[derive(Debug, Clone, PartialEq)]
struct Answers {
    reports: Vec<Vec<(String, u64, u64, i64)>>,
    /// Which reports the rollups answered (the others aggregate raw records).
    from_rollups: Vec<bool>,
    pages: Vec<Vec<String>>,
    traces: Vec<Vec<String>>,
    exports: Vec<Vec<String>>,
}

fn filters(now: DateTime<Utc>) -> Vec<Filter> {
    let day = now.timestamp() - now.timestamp().rem_euclid(DAY);
    vec![
        Filter::default(),
        Filter {
            projects: Some(["p2".to_owned()].into_iter().collect()),
            ..Filter::default()
        },
        Filter {
            model: Some("m1".to_owned()),
            outcome: Some(Outcome::Error),
            ..Filter::default()
        },
        Filter {
            from: Some(day - 10 * DAY),
            to: Some(day - 2 * DAY + 5 * HOUR),
            token: Some("t3".to_owned()),
            ..Filter::default()
        },
        Filter {
            from: Some(day - 35 * DAY),
            to: Some(day - 30 * DAY),
            ..Filter::default()
        },
    ]
}

fn summary(groups: &Groups) -> Vec<(String, u64, u64, i64)> {
    groups
        .iter()
        .map(|(key, group)| {
            let total = group.total();
            // Cost to the nano-dollar: sums in another order differ in the last bits only.
            (
                key.clone(),
                total.calls,
                total.input_tokens + total.output_tokens,
                (total.cost_usd * 1e9).round() as i64,
            )
        })
        .collect()
}

fn ask(history: &dyn UsageHistory, records: &[UsageRecord], now: DateTime<Utc>) -> Answers {
    let mut answers = Answers {
        reports: Vec::new(),
        from_rollups: Vec::new(),
        pages: Vec::new(),
        traces: Vec::new(),
        exports: Vec::new(),
    };
    let groups = [
        GroupBy::Nothing,
        GroupBy::Project,
        GroupBy::Dimension(Dimension::Model),
        GroupBy::Dimension(Dimension::Tag),
        GroupBy::Dimension(Dimension::Token),
        GroupBy::Dimension(Dimension::User),
        GroupBy::Time {
            seconds: DAY,
            zone: chrono_tz::Europe::Berlin,
        },
        GroupBy::Time {
            seconds: DAY,
            zone: chrono_tz::America::New_York,
        },
        GroupBy::Time {
            seconds: HOUR,
            zone: chrono_tz::Tz::UTC,
        },
    ];
    for filter in filters(now) {
        for group in groups {
            let report = history.report(filter.clone(), group).expect("report");
            answers.reports.push(summary(&report.groups));
            answers.from_rollups.push(report.from_rollups);
        }
        for (offset, limit) in [(0, 50), (120, 7)] {
            let page = history.page(&filter, offset, limit).expect("page");
            answers
                .pages
                .push(page.records.iter().map(|r| r.id.clone()).collect());
        }
        let mut exported = Vec::new();
        history
            .export(&filter, &mut |record, _| {
                exported.push(record.id.clone());
                true
            })
            .expect("export");
        answers.exports.push(exported);
    }
    for index in [0, 1, RECORDS / 2, RECORDS - 1] {
        let found = history.find_trace(&records[index].trace_id).expect("trace");
        answers
            .traces
            .push(found.iter().map(|r| r.id.clone()).collect());
    }
    answers
}

/// The answers computed from `present` (the records the segments still hold) without the
/// history, for pages, traces and exports.
fn expected_raw(
    present: &[UsageRecord],
    all: &[UsageRecord],
    now: DateTime<Utc>,
    answers: &Answers,
) {
    let mut page_index = 0;
    for (filter_index, filter) in filters(now).into_iter().enumerate() {
        let matching: Vec<&UsageRecord> = present
            .iter()
            .filter(|r| filter.matches_in_time(r))
            .collect();
        for (offset, limit) in [(0, 50), (120, 7)] {
            let expected: Vec<String> = matching
                .iter()
                .rev()
                .skip(offset)
                .take(limit)
                .map(|r| r.id.clone())
                .collect();
            assert_eq!(
                answers.pages[page_index], expected,
                "page {offset}+{limit} of filter {filter_index}"
            );
            page_index += 1;
        }
        let expected: Vec<String> = matching.iter().map(|r| r.id.clone()).collect();
        assert_eq!(
            answers.exports[filter_index], expected,
            "export of filter {filter_index}"
        );
    }
    let ids: HashSet<&str> = present.iter().map(|r| r.id.as_str()).collect();
    for (at, index) in [0, 1, RECORDS / 2, RECORDS - 1].into_iter().enumerate() {
        let expected: Vec<String> = ids
            .contains(all[index].id.as_str())
            .then(|| all[index].id.clone())
            .into_iter()
            .collect();
        assert_eq!(answers.traces[at], expected, "trace of record {index}");
    }
}

/// Compares two sets of answers, naming the first difference (not printing them whole).
fn assert_answers(got: &Answers, expected: &Answers, what: &str) {
    fn first_difference<T: PartialEq + std::fmt::Debug>(
        got: &[Vec<T>],
        expected: &[Vec<T>],
        kind: &str,
        what: &str,
    ) {
        assert_eq!(got.len(), expected.len(), "{what}: number of {kind}");
        for (index, (a, b)) in got.iter().zip(expected).enumerate() {
            if a != b {
                let at = a
                    .iter()
                    .zip(b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                panic!(
                    "{what}: {kind} #{index} differs at item {at} (lengths {} vs {}): {:?} vs {:?}",
                    a.len(),
                    b.len(),
                    a.get(at),
                    b.get(at)
                );
            }
        }
    }
    first_difference(&got.reports, &expected.reports, "reports", what);
    first_difference(&got.pages, &expected.pages, "pages", what);
    first_difference(&got.traces, &expected.traces, "traces", what);
    first_difference(&got.exports, &expected.exports, "exports", what);
}

async fn wait_written(sink: &routerly_server::store::UsageSink, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sink.records_written() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "records not written"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_survives_restarts_crashes_compression_and_expiry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let now = Utc::now();
    let all = records(now);
    let (log, _, _) = paths(dir.path());

    let history = open(dir.path());
    // Small segments (about 150 records each), so there are many rotations.
    let (sink, writer) =
        spawn_rotating_usage_writer(log.clone(), 256, 64 * 1024, Some(Arc::clone(&history)));
    // In batches of 50, so the writer rotates between them.
    for (index, record) in all[..2000].iter().enumerate() {
        sink.record(record.clone()).await;
        if index % 50 == 49 {
            wait_written(&sink, index as u64 + 1).await;
        }
    }
    assert!(
        history.checkpoint().expect("checkpoint"),
        "records were unsaved"
    );
    for (index, record) in all.iter().enumerate().skip(2000) {
        sink.record(record.clone()).await;
        if index % 50 == 49 {
            wait_written(&sink, index as u64 + 1).await;
        }
    }
    wait_written(&sink, RECORDS as u64).await;
    // The writer stops with every record on disk, but the rollups' checkpoint is 1000
    // records behind: what a SIGKILL after the last fsync leaves.
    writer.shutdown().await;
    let files = usage_log_files(&log).expect("list");
    assert!(
        files.len() > 10,
        "the log rotated into segments: {}",
        files.len()
    );
    // A crash in the middle of a write leaves a torn last line.
    let torn = serde_json::to_string(&all[0]).expect("json");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut file| std::io::Write::write_all(&mut file, &torn.as_bytes()[..40]))
        .expect("tear the last line");

    compact(&history);
    let before = ask(&*history, &all, now);
    expected_raw(&all, &all, now, &before);
    // Reports: every group of a report over all records adds up to the records' totals.
    let total_calls: u64 = history
        .report(Filter::default(), GroupBy::Nothing)
        .expect("report")
        .groups[""]
        .total()
        .calls;
    assert_eq!(total_calls, RECORDS as u64);
    drop(history);

    let restarted = open(dir.path());
    assert_answers(
        &ask(&*restarted, &all, now),
        &before,
        "after a restart from a stale checkpoint",
    );
    assert!(
        restarted.checkpoint().expect("checkpoint"),
        "the replayed records are saved"
    );
    drop(restarted);
    let restarted = open(dir.path());
    assert_answers(
        &ask(&*restarted, &all, now),
        &before,
        "after a restart from a fresh checkpoint",
    );

    // The same home run as a PostgreSQL replica: no rollups kept, its checkpoint saying
    // so, and its answers (from the records) still right.
    drop(restarted);
    let (_, checkpoint, _) = paths(dir.path());
    std::fs::remove_file(&checkpoint).expect("remove the checkpoint");
    let replica = open_as(dir.path(), RollupMode::Skipped);
    assert_eq!(replica.rollup_size(), (0, 0), "no rollups are kept");
    assert_answers(
        &ask(&*replica, &all, now),
        &before,
        "as a PostgreSQL replica",
    );
    assert!(
        replica.checkpoint().expect("checkpoint"),
        "the position is saved"
    );
    // Its position's flag (after the header and the time taken) says: no rollups.
    let saved = std::fs::read(&checkpoint).expect("read the checkpoint");
    assert_eq!(saved[32], 2, "a position without rollups");
    // Back to file mode: that checkpoint has no rollups, so they are rebuilt from the log.
    drop(replica);
    let restarted = open(dir.path());
    assert!(restarted.rollup_size().1 > 0, "rollups are rebuilt");
    assert_answers(
        &ask(&*restarted, &all, now),
        &before,
        "in file mode after a PostgreSQL replica's checkpoint",
    );

    // A damaged checkpoint is refused whole, and the rollups are rebuilt from the log.
    drop(restarted);
    let good = std::fs::read(&checkpoint).expect("read the checkpoint");
    assert!(good.starts_with(b"RLYUSAGE"), "a binary checkpoint");
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    for (what, damaged) in [
        ("a flipped bit", flipped),
        ("a truncated checkpoint", good[..good.len() - 7].to_vec()),
        ("an empty checkpoint", Vec::new()),
        (
            "a checkpoint with bytes after its end",
            [&good[..], b"x"].concat(),
        ),
    ] {
        std::fs::write(&checkpoint, &damaged).expect("damage the checkpoint");
        let restarted = open(dir.path());
        assert_answers(
            &ask(&*restarted, &all, now),
            &before,
            &format!("after {what}"),
        );
    }

    // A version 1 (JSON) checkpoint is read once, then replaced by the binary form.
    std::fs::remove_file(&checkpoint).expect("remove the checkpoint");
    let legacy = checkpoint.with_extension("json");
    let mut rollups = Rollups::default();
    for record in &all {
        rollups.add(record);
    }
    let active = segments::build_index(&log).expect("index the active file");
    let v1 = serde_json::json!({
        "version": 1,
        "taken_at": now,
        "position": {
            "inode": rebuild::inode_of(&log).expect("inode").expect("an inode"),
            "offset": active.bytes,
        },
        "active": active,
        "rollups": rollups.to_file(),
    });
    std::fs::write(&legacy, serde_json::to_vec(&v1).expect("json")).expect("write v1");
    let restarted = open(dir.path());
    assert_answers(
        &ask(&*restarted, &all, now),
        &before,
        "after reading a version 1 checkpoint",
    );
    assert!(
        restarted.checkpoint().expect("checkpoint"),
        "the upgrade is saved"
    );
    assert!(!legacy.exists(), "the version 1 checkpoint is removed");
    drop(restarted);
    let restarted = open(dir.path());
    assert_answers(
        &ask(&*restarted, &all, now),
        &before,
        "after the upgrade and a restart",
    );

    let retention = |keep_days, compress_after_days| Retention {
        keep_days,
        compress_after_days,
        hourly_days: 7,
    };
    let done = restarted
        .maintain(now, retention(None, Some(0)))
        .expect("compress");
    assert_eq!(
        done.compressed,
        files.len() - 1,
        "every rotated segment is compressed"
    );
    let plain: Vec<PathBuf> = usage_log_files(&log)
        .expect("list")
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl") && *path != log)
        .collect();
    assert!(
        plain.is_empty(),
        "no plain rotated segment is left: {plain:?}"
    );
    assert_answers(&ask(&*restarted, &all, now), &before, "after compression");
    // Compressed segments stay plain gzip text.
    assert_eq!(read_usage_all(&log).expect("read").len(), RECORDS);
    drop(restarted);
    let restarted = open(dir.path());
    assert_answers(
        &ask(&*restarted, &all, now),
        &before,
        "after compression and a restart",
    );
    // Indexes are derived: lost ones are rebuilt from their segments, compressed or not.
    drop(restarted);
    let segments = usage_log_files(&log).expect("list");
    for segment in &segments[..2] {
        let mut sidecar = segment.as_os_str().to_owned();
        sidecar.push(".idx");
        std::fs::remove_file(&sidecar).expect("remove an index");
    }
    let restarted = open(dir.path());
    assert_answers(
        &ask(&*restarted, &all, now),
        &before,
        "after losing two indexes",
    );

    let done = restarted
        .maintain(now, retention(Some(20), Some(0)))
        .expect("expire");
    assert!(done.deleted > 0, "old segments expired");
    let present = read_usage_all(&log).expect("read");
    assert!(
        present.len() < RECORDS && present.len() > RECORDS / 3,
        "{} left",
        present.len()
    );
    let cutoff = now - chrono::Duration::days(20);
    let kept: HashSet<&str> = present.iter().map(|r| r.id.as_str()).collect();
    for record in all.iter().filter(|r| !kept.contains(r.id.as_str())) {
        assert!(
            record.timestamp < cutoff,
            "{} is newer than the retention but was deleted",
            record.id
        );
    }
    let after = ask(&*restarted, &all, now);
    let rollup_reports = |answers: &Answers| -> Vec<Vec<(String, u64, u64, i64)>> {
        answers
            .reports
            .iter()
            .zip(&answers.from_rollups)
            .filter(|(_, from_rollups)| **from_rollups)
            .map(|(report, _)| report.clone())
            .collect()
    };
    assert!(
        before.from_rollups.iter().filter(|r| **r).count() >= 20,
        "most reports come from rollups"
    );
    assert!(
        rollup_reports(&after) == rollup_reports(&before),
        "rollups outlive the raw records"
    );
    expected_raw(&present, &all, now, &after);
    drop(restarted);
    let restarted = open(dir.path());
    assert_answers(
        &ask(&*restarted, &all, now),
        &after,
        "after expiry and a restart",
    );
}
