//! Counters from the usage log: the start-up rebuild, checkpoints, and back-fills of limits
//! added while running.
//!
//! A checkpoint (`data/checkpoints/counters.json`) holds every counter's totals, the
//! position the usage log had reached when it was taken (the active file's inode, which a
//! rotation keeps, and its length), and the ids of records observed in the seconds before.
//! The position is read before the counters are exported, so every record before it is in
//! the counters; a record after it is in the counters only if it was observed before the
//! export, and then its id is in the recent list. At start-up the counters in the
//! checkpoint are therefore completed exactly by the records after its position whose ids
//! are not in that list. Counters the checkpoint lacks (a limit added while the service was
//! down, or no checkpoint) are counted from every log file that can hold records of their
//! current window; rotated files are named by their rotation time, so older ones are
//! skipped without being opened.
//!
//! The start-up rebuild is the one read of the log at start-up: it also hands every record
//! it reads to a [`Replay`] (the usage history's rollups and index, and routing
//! statistics), starting early enough for all of them.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use routerly_core::limits::{Amounts, CallScope, WindowTotals};
use routerly_core::usage::{Outcome, UsageRecord};
use serde::{Deserialize, Serialize};

use crate::store::counters::CounterKey;
use crate::store::files;
use crate::store::history::Replay;
use crate::store::usage_log::usage_log_files;

/// Format version of the checkpoint file.
const CHECKPOINT_VERSION: u32 = 1;
/// Records this close to a back-fill's start are matched by id against the live count.
const BACKFILL_OVERLAP: chrono::Duration = chrono::Duration::seconds(5);

/// What `record` adds to counters, or `None` when it counts nothing (refused, or no model
/// was tried).
fn counted(record: &UsageRecord) -> Option<(CallScope<'_>, Amounts)> {
    if record.outcome == Outcome::BudgetExceeded {
        return None;
    }
    let model_id = record.model_id.as_deref()?;
    Some((
        CallScope {
            project_id: &record.project_id,
            token_id: &record.token_id,
            model_id: Some(model_id),
        },
        Amounts {
            cost_usd: record.cost_usd,
            calls: 1.0,
            input_tokens: record.input_tokens as f64,
            output_tokens: record.output_tokens as f64,
        },
    ))
}

/// Where the usage log had got to: the active file's inode and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    /// Inode of the file (kept across rotation, which renames it).
    pub inode: u64,
    /// Bytes of it that held complete records.
    pub offset: u64,
}

/// `data/checkpoints/counters.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// The log's position before the counters were read; `None` when unknown.
    pub position: Option<LogPosition>,
    /// Ids of records observed shortly before the counters were read.
    pub recent_ids: Vec<String>,
    /// Every counter (`CounterKey` as text) and its totals.
    pub counters: Vec<(String, WindowTotals)>,
}

/// What a rebuild read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildStats {
    /// Log files opened.
    pub files: usize,
    /// Records parsed.
    pub records: u64,
    /// Lines that did not parse (torn or foreign), skipped.
    pub skipped: u64,
    /// Whether a checkpoint was used.
    pub from_checkpoint: bool,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// The inode of `path`, on systems that have inodes.
pub fn inode_of(path: &Path) -> io::Result<Option<u64>> {
    let metadata = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(Some(metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        Ok(None)
    }
}

/// The usage log's current position; `None` when the log does not exist yet or inodes are
/// unknown.
pub fn current_position(usage_log: &Path) -> io::Result<Option<LogPosition>> {
    match std::fs::metadata(usage_log) {
        Ok(metadata) => Ok(inode_of(usage_log)?.map(|inode| LogPosition {
            inode,
            offset: metadata.len(),
        })),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// When a rotated file was rotated (from its name, `usage-YYYYMMDDTHHMMSSZ[-n].jsonl`); its
/// records are all older. `None` for the active file.
fn rotated_at(path: &Path) -> Option<DateTime<Utc>> {
    let name = path.file_name()?.to_str()?;
    let stamp = name.strip_prefix("usage-")?.get(..16)?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|naive| naive.and_utc())
}

/// Reads `path` from byte `start` (a compressed segment is inflated from its start and
/// the lines before `start` skipped), calling `visit` with each record, its byte offset and
/// its length.
fn read_records(
    path: &Path,
    start: u64,
    stats: &mut RebuildStats,
    mut visit: impl FnMut(&UsageRecord, u64, u64),
) -> io::Result<()> {
    let compressed = path.extension().is_some_and(|ext| ext == "gz");
    let mut reader = match crate::store::segments::open_text(path) {
        Ok(reader) => reader,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    stats.files += 1;
    let mut skip_until = 0;
    if start > 0 {
        if compressed {
            skip_until = start;
        } else {
            let file = File::open(path)?;
            let mut file = BufReader::with_capacity(1 << 20, file);
            io::Seek::seek(&mut file, io::SeekFrom::Start(start))?;
            reader = Box::new(file);
        }
    }
    let first = if compressed { 0 } else { start };
    crate::store::segments::for_each_line(&mut *reader, first, |line, at, len| {
        if at < skip_until || line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match serde_json::from_slice::<UsageRecord>(line) {
            Ok(record) => {
                stats.records += 1;
                visit(&record, at, len);
            }
            Err(_) => stats.skipped += 1,
        }
    })?;
    Ok(())
}

/// The oldest record time any of `keys` can still count at `now` (with a minute of slack
/// for records written after their timestamp).
fn oldest_needed<'k>(
    keys: impl Iterator<Item = &'k CounterKey>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    keys.map(|key| {
        routerly_core::limits::shift_seconds(
            now,
            -routerly_core::limits::signed_seconds(key.window.max_seconds()).saturating_add(60),
        )
    })
    .min()
}

/// The index of the first of `files` that may hold records at or after `oldest`.
pub(crate) fn files_since(files: &[PathBuf], oldest: DateTime<Utc>) -> usize {
    files
        .iter()
        .position(|path| rotated_at(path).is_none_or(|rotated| rotated >= oldest))
        .unwrap_or(files.len())
}

/// Counters for `keys` from the usage log whose files are `files` (see
/// [`usage_log_files`]) and the checkpoint at `checkpoint_path` (see the module
/// documentation); every record read from `replay`'s start on is also handed to `replay`.
pub fn rebuild(
    files: &[PathBuf],
    checkpoint_path: &Path,
    keys: &[CounterKey],
    now: DateTime<Utc>,
    replay: &mut dyn Replay,
) -> io::Result<(Vec<(CounterKey, WindowTotals)>, RebuildStats)> {
    let started = Instant::now();
    let mut stats = RebuildStats::default();
    let checkpoint = load_checkpoint(checkpoint_path);

    let mut totals: Vec<WindowTotals> = keys
        .iter()
        .map(|key| WindowTotals::new(key.window))
        .collect();
    // Counters the checkpoint continues: (file index, offset) the tail starts at.
    let mut from_checkpoint: Vec<bool> = vec![false; keys.len()];
    let mut tail_start: Option<(usize, u64)> = None;
    let mut recent_ids: HashSet<String> = HashSet::new();
    if let Some(checkpoint) = checkpoint
        && let Some(position) = checkpoint.position
    {
        let file_index = files.iter().position(|path| {
            inode_of(path).ok().flatten() == Some(position.inode)
                && std::fs::metadata(path).is_ok_and(|m| m.len() >= position.offset)
        });
        if let Some(file_index) = file_index {
            let saved: HashMap<String, WindowTotals> = checkpoint.counters.into_iter().collect();
            for (index, key) in keys.iter().enumerate() {
                if let Some(saved_totals) = saved.get(&key.to_string()) {
                    totals[index] = saved_totals.clone();
                    from_checkpoint[index] = true;
                }
            }
            tail_start = Some((file_index, position.offset));
            recent_ids = checkpoint.recent_ids.into_iter().collect();
            stats.from_checkpoint = true;
        } else {
            tracing::warn!(
                "the budget checkpoint does not match the usage log; counting from the log"
            );
        }
    }

    let full_keys: Vec<usize> = (0..keys.len()).filter(|&i| !from_checkpoint[i]).collect();
    let oldest = oldest_needed(full_keys.iter().map(|&i| &keys[i]), now);
    let oldest_per_key: Vec<i64> = keys
        .iter()
        .map(|key| {
            (routerly_core::limits::shift_seconds(
                now,
                -routerly_core::limits::signed_seconds(key.window.max_seconds()).saturating_add(60),
            ))
            .timestamp()
        })
        .collect();
    let budget_start = match (oldest, tail_start) {
        (Some(oldest), Some((tail_file, _))) => (files_since(files, oldest).min(tail_file), 0),
        (Some(oldest), None) => (files_since(files, oldest), 0),
        (None, Some((tail_file, offset))) => (tail_file, offset),
        (None, None) => (files.len(), 0),
    };
    let replay_start = replay.start();
    let first_file = budget_start.0.min(replay_start.0);

    for (file_index, path) in files.iter().enumerate().skip(first_file) {
        let full_scan = oldest.is_some_and(|oldest| rotated_at(path).is_none_or(|r| r >= oldest));
        // Where each reader needs this file from (`u64::MAX`: not at all).
        let budget_need = match tail_start {
            _ if file_index < budget_start.0 => u64::MAX,
            Some((tail_file, offset)) if tail_file == file_index && !full_scan => offset,
            _ => 0,
        };
        let replay_need = match file_index.cmp(&replay_start.0) {
            std::cmp::Ordering::Less => u64::MAX,
            std::cmp::Ordering::Equal => replay_start.1,
            std::cmp::Ordering::Greater => 0,
        };
        let start = budget_need.min(replay_need);
        if start == u64::MAX {
            continue;
        }
        read_records(path, start, &mut stats, |record, offset, len| {
            if (file_index, offset) >= replay_start {
                replay.visit(record, file_index, offset, len);
            }
            let Some((call, amounts)) = counted(record) else {
                return;
            };
            let after_checkpoint = tail_start.is_some_and(|(tail_file, tail_offset)| {
                (file_index, offset) >= (tail_file, tail_offset)
            }) && !recent_ids.contains(record.id.as_str());
            let timestamp = record.timestamp.timestamp();
            for (index, key) in keys.iter().enumerate() {
                let wanted = if from_checkpoint[index] {
                    after_checkpoint
                } else {
                    timestamp >= oldest_per_key[index]
                };
                if wanted && key.scope.covers(&call) {
                    totals[index].add(key.window, key.zone, record.timestamp, &amounts);
                }
            }
        })?;
    }
    stats.millis = started.elapsed().as_millis() as u64;
    Ok((keys.iter().cloned().zip(totals).collect(), stats))
}

/// A counted record close to a back-fill's start, matched by id against the live count.
#[derive(Debug, Clone)]
pub struct RecentRecord {
    /// The record's id.
    pub id: String,
    /// When the call finished.
    pub timestamp: DateTime<Utc>,
    /// Indexes (into [`Backfilled::keys`]) of the counters it counts toward.
    pub keys: Vec<usize>,
    /// What it adds.
    pub amounts: Amounts,
}

/// What a back-fill found.
#[derive(Debug, Clone)]
pub struct Backfilled {
    /// The counters back-filled.
    pub keys: Vec<CounterKey>,
    /// Per key, the totals of records well before the back-fill began.
    pub older: Vec<WindowTotals>,
    /// Records near or after the back-fill's start.
    pub recent: Vec<RecentRecord>,
}

/// Counts the usage log for counters registered at `registered_at` (see
/// [`super::Budgets`]); records from [`BACKFILL_OVERLAP`] before that are returned one by
/// one so the caller can skip those it already counted live.
pub fn scan_for_backfill(
    usage_log: &Path,
    keys: &[CounterKey],
    registered_at: DateTime<Utc>,
) -> io::Result<Backfilled> {
    let mut stats = RebuildStats::default();
    let files = usage_log_files(usage_log)?;
    let mut older: Vec<WindowTotals> = keys
        .iter()
        .map(|key| WindowTotals::new(key.window))
        .collect();
    let mut recent = Vec::new();
    let Some(oldest) = oldest_needed(keys.iter(), registered_at) else {
        return Ok(Backfilled {
            keys: Vec::new(),
            older,
            recent,
        });
    };
    let overlap_from = registered_at - BACKFILL_OVERLAP;
    for path in &files[files_since(&files, oldest)..] {
        read_records(path, 0, &mut stats, |record, _, _| {
            if record.timestamp < oldest {
                return;
            }
            let Some((call, amounts)) = counted(record) else {
                return;
            };
            let covering: Vec<usize> = keys
                .iter()
                .enumerate()
                .filter(|(_, key)| key.scope.covers(&call))
                .map(|(index, _)| index)
                .collect();
            if covering.is_empty() {
                return;
            }
            if record.timestamp < overlap_from {
                for index in covering {
                    older[index].add(
                        keys[index].window,
                        keys[index].zone,
                        record.timestamp,
                        &amounts,
                    );
                }
            } else {
                recent.push(RecentRecord {
                    id: record.id.to_string(),
                    timestamp: record.timestamp,
                    keys: covering,
                    amounts,
                });
            }
        })?;
    }
    Ok(Backfilled {
        keys: keys.to_vec(),
        older,
        recent,
    })
}

/// The checkpoint at `path`, or `None` (with a warning when it exists but is unusable).
pub fn load_checkpoint(path: &Path) -> Option<Checkpoint> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot read the budget checkpoint");
            return None;
        }
    };
    match serde_json::from_slice::<Checkpoint>(&bytes) {
        Ok(checkpoint) if checkpoint.version == CHECKPOINT_VERSION => Some(checkpoint),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "ignoring an unreadable budget checkpoint");
            None
        }
    }
}

/// Writes a checkpoint atomically.
pub fn write_checkpoint(
    path: &Path,
    position: Option<LogPosition>,
    counters: Vec<(CounterKey, WindowTotals)>,
    recent_ids: Vec<String>,
) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::store::files::create_private_dir_all(dir)?;
    }
    let checkpoint = Checkpoint {
        version: CHECKPOINT_VERSION,
        taken_at: Utc::now(),
        position,
        recent_ids,
        counters: counters
            .into_iter()
            .map(|(key, totals)| (key.to_string(), totals))
            .collect(),
    };
    files::write_json_atomic(path, &checkpoint).map(drop)
}

/// How often the checkpoint task runs.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
