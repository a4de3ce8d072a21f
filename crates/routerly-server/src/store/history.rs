//! Usage history: the reports and record look-ups over the usage log, without scanning it.
//!
//! [`UsageHistory`] is what the management API and the CLI read; [`FileUsageHistory`] is
//! its implementation over the files of `$ROUTERLY_HOME` (a shared database would be
//! another). It holds the [`Rollups`] and the active segment's [`SegmentIndex`], both
//! advanced by the usage writer after each batch is on disk (so they describe exactly the
//! bytes written), and the rotated segments' sidecar indexes.
//!
//! `data/checkpoints/usage.bin` saves the rollups and the active index with the log
//! position they reached, in a binary form with a version, a length and a CRC-32 (a torn,
//! truncated or altered checkpoint is refused and rebuilt from the log, never trusted; the
//! version 1 `usage.json` is read once, to upgrade); at start-up the records after that position are replayed in the
//! same single read of the log that rebuilds budget counters and routing statistics
//! ([`crate::budgets::rebuild::rebuild`] drives it and calls [`Replay`]). A record on disk
//! whose checkpoint was lost (SIGKILL) is therefore counted at the next start, once.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};
use routerly_core::usage::UsageRecord;
use serde::{Deserialize, Serialize};

use super::rollup::{Aggregator, Corrupt, Filter, GroupBy, Groups, Reader, Rollups, RollupsFile};
use super::segments::{self, Segment, SegmentIndex};
use crate::budgets::rebuild::{LogPosition, inode_of};

/// Format version of the JSON usage checkpoint (`usage.json`, read only to upgrade).
const CHECKPOINT_VERSION: u32 = 1;
/// Format version of the binary usage checkpoint.
const BINARY_VERSION: u32 = 2;
/// The first bytes of a binary usage checkpoint.
const MAGIC: &[u8; 8] = b"RLYUSAGE";
/// How far past a trace's start (its UUIDv7 time) its usage record is looked for.
const TRACE_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The answer to a report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The filter as answered: its time range widened to whole buckets.
    pub filter: Filter,
    /// The groups.
    pub groups: Groups,
    /// Whether the rollups answered (else raw records were aggregated).
    pub from_rollups: bool,
}

/// A page of records, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The records.
    pub records: Vec<UsageRecord>,
    /// Whether more match after them.
    pub has_more: bool,
}

/// Reports and look-ups over the usage history. Calls may block on IO: call them off the
/// async workers.
pub trait UsageHistory: Send + Sync {
    /// Totals of the calls matching `filter`, grouped by `group`.
    fn report(&self, filter: Filter, group: GroupBy) -> io::Result<Report>;
    /// The `limit` records matching `filter` after the first `offset`, newest first.
    fn page(&self, filter: &Filter, offset: usize, limit: usize) -> io::Result<Page>;
    /// The records of trace `trace_id`.
    fn find_trace(&self, trace_id: &str) -> io::Result<Vec<UsageRecord>>;
    /// Calls `each` with every record matching `filter` and its line as the log holds it
    /// (without the newline), oldest first, until it returns `false`; returns how many it
    /// was given.
    fn export(
        &self,
        filter: &Filter,
        each: &mut dyn FnMut(&UsageRecord, &[u8]) -> bool,
    ) -> io::Result<u64>;
}

/// What the writer and replay keep current.
#[derive(Debug, Default)]
struct Live {
    rollups: Rollups,
    /// The active file's index.
    active: SegmentIndex,
    /// The active file's inode, and bytes written.
    position: Option<LogPosition>,
    /// Records added since the last checkpoint.
    unsaved: u64,
}

/// `data/checkpoints/usage.json`, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    taken_at: DateTime<Utc>,
    position: Option<LogPosition>,
    active: SegmentIndex,
    rollups: RollupsFile,
}

/// Retention, compression and rollup horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Rotated segments whose newest record is older than this many days are deleted
    /// (`None`: kept forever).
    pub keep_days: Option<u32>,
    /// Rotated segments whose newest record is older than this many days are compressed
    /// (`None`: never).
    pub compress_after_days: Option<u32>,
    /// Hour buckets older than this many days are merged into days.
    pub hourly_days: u32,
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Segments compressed.
    pub compressed: usize,
    /// Segments deleted.
    pub deleted: usize,
}

/// The usage history kept in `$ROUTERLY_HOME`.
#[derive(Debug)]
pub struct FileUsageHistory {
    active_path: PathBuf,
    checkpoint_path: PathBuf,
    live: Mutex<Live>,
    /// Rotated segments, oldest first.
    rotated: Mutex<Vec<Arc<Segment>>>,
    /// Held (shared) by readers while they read segment files, and (exclusive) by
    /// maintenance while it replaces or removes them.
    files: RwLock<()>,
    /// Whether records go into the rollups. A replica on PostgreSQL answers reports from the
    /// database's rollups, so its own would be work no report reads (about 3,400
    /// instructions per call); it keeps only the segment indexes.
    rollups: RollupMode,
}

/// Whether a [`FileUsageHistory`] keeps rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupMode {
    /// Rolled up: reports are answered from this history (file mode).
    Kept,
    /// Not rolled up: reports come from elsewhere (PostgreSQL mode).
    Skipped,
}

/// Where the start-up replay must begin for the history, and what it continues.
#[derive(Debug)]
pub struct ReplayStart {
    /// (file index, offset) from which records go into the rollups.
    rollups_from: (usize, u64),
    /// Index of the active file among the files, and the offset its index covers.
    active_from: (usize, u64),
}

/// A reader of the start-up pass over the log: the budget rebuild calls it with every
/// record it reads.
pub trait Replay {
    /// The first (file index, offset) this replay needs, among `files`.
    fn start(&self) -> (usize, u64);
    /// One record of file `file_index` at `offset`, `len` bytes long.
    fn visit(&mut self, record: &UsageRecord, file_index: usize, offset: u64, len: u64);
}

impl FileUsageHistory {
    /// Opens the history of the log `active_path` with its checkpoint at
    /// `checkpoint_path`: loads (or rebuilds) the rotated segments' indexes and the
    /// checkpoint, and says where the start-up replay must begin among `files` (the rotated
    /// segments, oldest first, then the active file).
    pub fn open(
        active_path: &Path,
        checkpoint_path: &Path,
        files: &[PathBuf],
        rollups: RollupMode,
    ) -> io::Result<(Arc<FileUsageHistory>, ReplayStart)> {
        let started = std::time::Instant::now();
        let mut rotated = Vec::new();
        for path in files.iter().filter(|path| path.as_path() != active_path) {
            let compressed = path.extension().is_some_and(|ext| ext == "gz");
            let index = match segments::read_sidecar(path) {
                Some(index) if !compressed || index.blocks.iter().all(|b| b.gz_len.is_some()) => {
                    index
                }
                _ if compressed => {
                    tracing::warn!(segment = %path.display(), "a compressed usage segment lost its index; reading it whole");
                    let index = segments::build_compressed_index(path)?;
                    if let Err(error) = segments::write_sidecar(path, &index) {
                        tracing::warn!(%error, segment = %path.display(), "cannot write a segment index");
                    }
                    index
                }
                _ => {
                    tracing::info!(segment = %path.display(), "indexing a usage segment");
                    let index = segments::build_index(path)?;
                    if let Err(error) = segments::write_sidecar(path, &index) {
                        tracing::warn!(%error, segment = %path.display(), "cannot write a segment index");
                    }
                    index
                }
            };
            rotated.push(Arc::new(Segment {
                path: path.clone(),
                compressed,
                index,
            }));
        }
        let active_index = files.len().saturating_sub(1);
        let active_exists = files.last().is_some_and(|path| path == active_path);
        let active_inode = if active_exists {
            inode_of(active_path)?
        } else {
            None
        };
        let mut live = Live::default();
        let mut start = ReplayStart {
            rollups_from: (0, 0),
            active_from: (
                if active_exists {
                    active_index
                } else {
                    files.len()
                },
                0,
            ),
        };
        let indexes_ms = started.elapsed().as_millis() as u64;
        let checkpoint = load_checkpoint(checkpoint_path);
        let checkpoint_ms = started.elapsed().as_millis() as u64 - indexes_ms;
        tracing::info!(
            segments = rotated.len(),
            indexes_ms,
            checkpoint_ms,
            "usage history opened: segment indexes and the rollup checkpoint read"
        );
        if let Some(checkpoint) = checkpoint {
            tracing::debug!(taken_at = %checkpoint.taken_at, "usage checkpoint loaded");
            // A version 1 checkpoint is replaced by the binary form at the next checkpoint.
            live.unsaved = u64::from(checkpoint.upgraded);
            let found = checkpoint.position.and_then(|position| {
                files
                    .iter()
                    .position(|path| {
                        inode_of(path).ok().flatten() == Some(position.inode)
                            && std::fs::metadata(path).is_ok_and(|m| m.len() >= position.offset)
                    })
                    .map(|index| (index, position))
            });
            match (found, checkpoint.position) {
                (Some((file_index, position)), _) => {
                    match (rollups, checkpoint.rollups_kept) {
                        (RollupMode::Kept, true) => {
                            live.rollups = checkpoint.rollups;
                            start.rollups_from = (file_index, position.offset);
                        }
                        (RollupMode::Kept, false) => tracing::info!(
                            "the usage checkpoint was taken without rollups (PostgreSQL mode); rebuilding them from the whole log"
                        ),
                        (RollupMode::Skipped, _) => {}
                    }
                    if Some(position.inode) == active_inode && file_index == active_index {
                        start.active_from = (active_index, checkpoint.active.bytes);
                        live.active = checkpoint.active;
                    }
                }
                (None, None) => {
                    // Taken before any record was written: every file is newer.
                    if rollups == RollupMode::Kept {
                        live.rollups = checkpoint.rollups;
                    }
                }
                (None, Some(_)) => {
                    tracing::warn!(
                        "the usage checkpoint does not match the usage log; rebuilding rollups from the whole log"
                    );
                }
            }
        }
        live.position = active_inode.map(|inode| LogPosition {
            inode,
            offset: start.active_from.1,
        });
        if rollups == RollupMode::Skipped {
            // The replay adds nothing to the (empty) rollups.
            start.rollups_from = (usize::MAX, 0);
        }
        Ok((
            Arc::new(FileUsageHistory {
                active_path: active_path.to_path_buf(),
                checkpoint_path: checkpoint_path.to_path_buf(),
                live: Mutex::new(live),
                rotated: Mutex::new(rotated),
                files: RwLock::new(()),
                rollups,
            }),
            start,
        ))
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live
            .lock()
            .expect("the usage history lock is never poisoned")
    }

    /// The segments, oldest first, the active one last (with its index so far).
    fn segments(&self) -> Vec<Arc<Segment>> {
        // Both under the live lock (then the list's, the order `rotated` takes them in), so a
        // rotation is seen whole or not at all.
        let live = self.live();
        let mut all = self
            .rotated
            .lock()
            .expect("the segment list lock is never poisoned")
            .clone();
        let active = live.active.clone();
        drop(live);
        all.push(Arc::new(Segment {
            path: self.active_path.clone(),
            compressed: false,
            index: active,
        }));
        all
    }

    /// The writer appended `records` (each with its line length) at `offset` of the active
    /// file `inode`: they join the rollups and the active index.
    pub fn appended(&self, inode: Option<u64>, offset: u64, records: &[(UsageRecord, u64)]) {
        let mut live = self.live();
        let mut at = offset;
        let roll_up = self.rollups == RollupMode::Kept;
        for (record, len) in records {
            if roll_up {
                live.rollups.add(record);
            }
            live.active.add(record, at, *len);
            at += len;
        }
        live.position = inode.map(|inode| LogPosition { inode, offset: at });
        live.unsaved += records.len() as u64;
    }

    /// The writer renamed the active file to `rotated`: its index becomes that segment's
    /// sidecar, and a new active index begins.
    pub fn rotated(&self, rotated: &Path) {
        let index = self.live().active.clone();
        if let Err(error) = segments::write_sidecar(rotated, &index) {
            // The next start rebuilds it from the segment.
            tracing::warn!(%error, segment = %rotated.display(), "cannot write a segment index");
        }
        // The writer is the only one changing the active index, so it is still `index`.
        let mut live = self.live();
        self.rotated
            .lock()
            .expect("the segment list lock is never poisoned")
            .push(Arc::new(Segment {
                path: rotated.to_path_buf(),
                compressed: false,
                index,
            }));
        live.active = SegmentIndex::default();
        live.position = None;
        live.unsaved += 1;
    }

    /// Where in file `file_index` of `files` records from `since` on can begin: in the
    /// active file, the first block of its index that reaches `since` (every earlier block
    /// holds only older records); elsewhere, or without an index, the start.
    pub fn offset_since(&self, files: &[PathBuf], file_index: usize, since: DateTime<Utc>) -> u64 {
        if files.get(file_index) != Some(&self.active_path) {
            return 0;
        }
        let live = self.live();
        let since_ms = since.timestamp_millis();
        live.active
            .blocks
            .iter()
            .find(|block| block.max_ms >= since_ms)
            .map_or(live.active.bytes, |block| block.offset)
    }

    /// A [`Replay`] that brings this history up to the end of the log from `start`.
    pub fn replay(self: &Arc<Self>, start: ReplayStart) -> HistoryReplay {
        HistoryReplay {
            history: Arc::clone(self),
            start,
            active_inode: inode_of(&self.active_path).ok().flatten(),
        }
    }

    /// Writes the checkpoint when records were added since the last one.
    pub fn checkpoint(&self) -> io::Result<bool> {
        let (bytes, unsaved) = {
            let mut live = self.live();
            if live.unsaved == 0 {
                return Ok(false);
            }
            let rollups = (self.rollups == RollupMode::Kept).then_some(&live.rollups);
            let bytes = encode_checkpoint(Utc::now(), live.position, &live.active, rollups)?;
            (bytes, std::mem::take(&mut live.unsaved))
        };
        if let Some(dir) = self.checkpoint_path.parent() {
            super::files::create_private_dir_all(dir)?;
        }
        match super::files::write_atomic(&self.checkpoint_path, &bytes) {
            Ok(()) => {
                // The version 1 checkpoint, if any, was read at start-up; it is now stale.
                let legacy = legacy_path(&self.checkpoint_path);
                if legacy != self.checkpoint_path
                    && let Err(error) = std::fs::remove_file(&legacy)
                    && error.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(%error, "cannot remove the old usage checkpoint");
                }
                Ok(true)
            }
            Err(error) => {
                self.live().unsaved += unsaved;
                Err(error)
            }
        }
    }

    /// Merges hour buckets older than `hourly_days` into days.
    pub fn compact(&self, now: DateTime<Utc>, hourly_days: u32) {
        self.live().rollups.compact(now, i64::from(hourly_days));
    }

    /// Merges old hour buckets into days, compresses and deletes old rotated segments.
    pub fn maintain(&self, now: DateTime<Utc>, retention: Retention) -> io::Result<Maintained> {
        self.live()
            .rollups
            .compact(now, i64::from(retention.hourly_days));
        let mut done = Maintained::default();
        let rotated = self
            .rotated
            .lock()
            .expect("the segment list lock is never poisoned")
            .clone();
        let days_ago = |days: u32| now - chrono::Duration::days(i64::from(days));
        for segment in rotated {
            let Some(last) = segments::last_time(&segment) else {
                continue;
            };
            let replacement = if retention
                .keep_days
                .is_some_and(|days| last < days_ago(days))
            {
                let _guard = self
                    .files
                    .write()
                    .expect("the files lock is never poisoned");
                segments::remove(&segment)?;
                done.deleted += 1;
                tracing::info!(segment = %segment.path.display(), "usage segment expired and deleted");
                None
            } else if !segment.compressed
                && retention
                    .compress_after_days
                    .is_some_and(|days| last < days_ago(days))
            {
                // Compressed to a new file first; only the final swap excludes readers.
                let compressed = {
                    let _guard = self.files.read().expect("the files lock is never poisoned");
                    segments::compress_prepare(&segment)?
                };
                let _guard = self
                    .files
                    .write()
                    .expect("the files lock is never poisoned");
                let compressed = segments::compress_commit(&segment, compressed)?;
                done.compressed += 1;
                Some(Arc::new(compressed))
            } else {
                continue;
            };
            let mut list = self
                .rotated
                .lock()
                .expect("the segment list lock is never poisoned");
            if let Some(at) = list.iter().position(|s| s.path == segment.path) {
                match replacement {
                    Some(new) => list[at] = new,
                    None => {
                        list.remove(at);
                    }
                }
            }
        }
        Ok(done)
    }

    /// Rollup buckets and cells held.
    pub fn rollup_size(&self) -> (usize, usize) {
        let live = self.live();
        (live.rollups.bucket_count(), live.rollups.cell_count())
    }

    /// Visits the records matching `filter` in the blocks that can hold them, oldest first
    /// (or newest first), until `visit` returns `false`.
    fn scan(
        &self,
        filter: &Filter,
        newest_first: bool,
        visit: &mut dyn FnMut(UsageRecord, &[u8]) -> bool,
    ) -> io::Result<()> {
        let _guard = self.files.read().expect("the files lock is never poisoned");
        let needles = segments::needles(filter);
        let mut all = self.segments();
        if newest_first {
            all.reverse();
        }
        for segment in all {
            let mut blocks = segment.index.candidates(filter);
            if newest_first {
                blocks.reverse();
            }
            for number in blocks {
                let text = match segments::read_block(&segment, number) {
                    Ok(text) => text,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => break,
                    Err(error) => return Err(error),
                };
                let mut records = segments::parse_block_matching(&text, &needles);
                if newest_first {
                    records.reverse();
                }
                for (record, line) in records {
                    if filter.matches_in_time(&record) && !visit(record, line) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

impl UsageHistory for FileUsageHistory {
    fn report(&self, filter: Filter, group: GroupBy) -> io::Result<Report> {
        let (filter, answer, hourly_from) = {
            let live = self.live();
            let filter = live.rollups.widen_for(filter, group);
            let answer = match self.rollups {
                RollupMode::Kept => live.rollups.aggregate(&filter, group),
                // Not used for reports in this mode, but right if asked: from the records.
                RollupMode::Skipped => None,
            };
            let horizon = live.rollups.horizon(&filter, group);
            (filter, answer, horizon)
        };
        if let Some(groups) = answer {
            return Ok(Report {
                filter,
                groups,
                from_rollups: true,
            });
        }
        let mut aggregator = Aggregator::new(filter.clone(), group, hourly_from);
        self.scan(&filter, false, &mut |record, _| {
            aggregator.add(&record);
            true
        })?;
        Ok(Report {
            filter,
            groups: aggregator.groups,
            from_rollups: false,
        })
    }

    fn page(&self, filter: &Filter, offset: usize, limit: usize) -> io::Result<Page> {
        let mut skipped = 0;
        let mut records = Vec::with_capacity(limit.min(1000));
        let mut has_more = false;
        self.scan(filter, true, &mut |record, _| {
            if skipped < offset {
                skipped += 1;
                return true;
            }
            if records.len() == limit {
                has_more = true;
                return false;
            }
            records.push(record);
            true
        })?;
        Ok(Page { records, has_more })
    }

    fn find_trace(&self, trace_id: &str) -> io::Result<Vec<UsageRecord>> {
        let started_ms = uuid::Uuid::parse_str(trace_id)
            .ok()
            .and_then(|uuid| uuid.get_timestamp())
            .map(|stamp| {
                let (seconds, nanos) = stamp.to_unix();
                seconds as i64 * 1000 + i64::from(nanos / 1_000_000)
            });
        let needle = serde_json::to_vec(trace_id).map_err(io::Error::other)?;
        let finder = memchr::memmem::Finder::new(&needle);
        let _guard = self.files.read().expect("the files lock is never poisoned");
        let mut found = Vec::new();
        for segment in self.segments() {
            for (number, block) in segment.index.blocks.iter().enumerate() {
                if let Some(started) = started_ms
                    && (block.max_ms < started - 60_000 || block.min_ms > started + TRACE_WINDOW_MS)
                {
                    continue;
                }
                let text = match segments::read_block(&segment, number as u32) {
                    Ok(text) => text,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => break,
                    Err(error) => return Err(error),
                };
                let before = found.len();
                for at in finder.find_iter(&text) {
                    let start = text[..at]
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |p| p + 1);
                    let end = text[at..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(text.len(), |p| at + p);
                    if let Ok(record) = serde_json::from_slice::<UsageRecord>(&text[start..end])
                        && record.trace_id == trace_id
                        && !found.iter().any(|r: &UsageRecord| r.id == record.id)
                    {
                        found.push(record);
                    }
                }
                // A trace's records are written together: stop at the first block after them.
                if !found.is_empty() && found.len() == before {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }

    fn export(
        &self,
        filter: &Filter,
        each: &mut dyn FnMut(&UsageRecord, &[u8]) -> bool,
    ) -> io::Result<u64> {
        let mut given = 0;
        self.scan(filter, false, &mut |record, line| {
            given += 1;
            each(&record, line)
        })?;
        Ok(given)
    }
}

/// Several replays sharing one pass: each sees the records from its own start.
pub struct Replays(pub Vec<Box<dyn Replay + Send>>);

impl Replay for Replays {
    fn start(&self) -> (usize, u64) {
        self.0
            .iter()
            .map(|replay| replay.start())
            .min()
            .unwrap_or((usize::MAX, 0))
    }

    fn visit(&mut self, record: &UsageRecord, file_index: usize, offset: u64, len: u64) {
        for replay in &mut self.0 {
            if (file_index, offset) >= replay.start() {
                replay.visit(record, file_index, offset, len);
            }
        }
    }
}

/// The history's part of the start-up pass.
#[derive(Debug)]
pub struct HistoryReplay {
    history: Arc<FileUsageHistory>,
    start: ReplayStart,
    active_inode: Option<u64>,
}

impl Replay for HistoryReplay {
    fn start(&self) -> (usize, u64) {
        self.start.rollups_from.min(self.start.active_from)
    }

    fn visit(&mut self, record: &UsageRecord, file_index: usize, offset: u64, len: u64) {
        let mut live = self.history.live();
        let mut added = false;
        if (file_index, offset) >= self.start.rollups_from {
            live.rollups.add(record);
            added = true;
        }
        if file_index == self.start.active_from.0 && offset >= self.start.active_from.1 {
            live.active.add(record, offset, len);
            live.position = self.active_inode.map(|inode| LogPosition {
                inode,
                offset: offset + len,
            });
            added = true;
        }
        // What was replayed is saved at the next checkpoint, sparing the next start.
        live.unsaved += u64::from(added);
    }
}

impl HistoryReplay {
    /// Ends the replay; the active index now covers what the writer will append after.
    pub fn finish(self) -> Arc<FileUsageHistory> {
        self.history
    }
}

/// A usage checkpoint as loaded.
#[derive(Debug)]
struct Checkpoint {
    /// Read from the version 1 JSON form.
    upgraded: bool,
    taken_at: DateTime<Utc>,
    position: Option<LogPosition>,
    active: SegmentIndex,
    rollups: Rollups,
    /// Whether `rollups` cover the log up to `position`; a history that skips rollups
    /// checkpoints its position and index with none.
    rollups_kept: bool,
}

/// Where the version 1 (JSON) checkpoint beside the binary one at `path` lives.
fn legacy_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

/// The binary checkpoint: `MAGIC`, version (u32), body length (u64), CRC-32 of the body
/// (u32), then the body: time taken (ms, i64), position (flag, inode, offset), the active
/// index (JSON, length-prefixed), the rollups ([`Rollups::encode`]). The position's flag is
/// 0 for none, 1 for a position the rollups cover, 2 for a position without rollups
/// (`rollups` `None`: encoded empty). An older binary refuses flag 2 as damaged and rebuilds
/// everything from the log, which is right for it too.
fn encode_checkpoint(
    taken_at: DateTime<Utc>,
    position: Option<LogPosition>,
    active: &SegmentIndex,
    rollups: Option<&Rollups>,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    body.extend_from_slice(&taken_at.timestamp_millis().to_le_bytes());
    let with = if rollups.is_some() { 1 } else { 2 };
    let (flag, inode, offset) = position.map_or((0u8, 0, 0), |p| (with, p.inode, p.offset));
    body.push(flag);
    body.extend_from_slice(&inode.to_le_bytes());
    body.extend_from_slice(&offset.to_le_bytes());
    let active = serde_json::to_vec(active).map_err(io::Error::other)?;
    let active_len = u32::try_from(active.len()).map_err(io::Error::other)?;
    body.extend_from_slice(&active_len.to_le_bytes());
    body.extend_from_slice(&active);
    match rollups {
        Some(rollups) => rollups.encode(&mut body),
        None => Rollups::default().encode(&mut body),
    }
    let mut bytes = Vec::with_capacity(body.len() + 24);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&BINARY_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// A binary checkpoint read back; any mismatch (magic, version, length, checksum, a field
/// out of place, bytes left over) refuses it whole.
fn decode_checkpoint(bytes: &[u8]) -> Result<Checkpoint, Corrupt> {
    let mut reader = Reader::new(bytes);
    if reader.take(MAGIC.len())? != MAGIC {
        return Err(Corrupt("not a usage checkpoint"));
    }
    if reader.u32()? != BINARY_VERSION {
        return Err(Corrupt("an unknown version"));
    }
    let len = reader.u64()?;
    let crc = reader.u32()?;
    let body = reader.take(usize::try_from(len).map_err(|_| Corrupt("too long"))?)?;
    if !reader.is_empty() {
        return Err(Corrupt("bytes after the end"));
    }
    if crc32fast::hash(body) != crc {
        return Err(Corrupt("checksum mismatch"));
    }
    let mut reader = Reader::new(body);
    let taken_at = DateTime::from_timestamp_millis(reader.i64()?).ok_or(Corrupt("a bad time"))?;
    let flag = reader.u8()?;
    let (inode, offset) = (reader.u64()?, reader.u64()?);
    let position = match flag {
        0 => None,
        1 | 2 => Some(LogPosition { inode, offset }),
        _ => return Err(Corrupt("a bad position")),
    };
    let active_len = reader.count(1)?;
    let active = serde_json::from_slice(reader.take(active_len)?)
        .map_err(|_| Corrupt("an unreadable segment index"))?;
    let rollups = Rollups::decode(&mut reader)?;
    if !reader.is_empty() {
        return Err(Corrupt("bytes after the rollups"));
    }
    Ok(Checkpoint {
        upgraded: false,
        taken_at,
        position,
        active,
        rollups,
        rollups_kept: flag != 2,
    })
}

fn load_checkpoint(path: &Path) -> Option<Checkpoint> {
    let (bytes, binary) = match std::fs::read(path) {
        Ok(bytes) => (bytes, true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            match std::fs::read(legacy_path(path)) {
                Ok(bytes) => (bytes, false),
                Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the old usage checkpoint");
                    return None;
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot read the usage checkpoint");
            return None;
        }
    };
    if binary {
        return match decode_checkpoint(&bytes) {
            Ok(checkpoint) => Some(checkpoint),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "ignoring a damaged usage checkpoint; rebuilding from the log");
                None
            }
        };
    }
    match serde_json::from_slice::<CheckpointFile>(&bytes) {
        Ok(checkpoint) if checkpoint.version == CHECKPOINT_VERSION => {
            tracing::info!("upgrading the usage checkpoint to the binary form");
            Some(Checkpoint {
                upgraded: true,
                taken_at: checkpoint.taken_at,
                position: checkpoint.position,
                active: checkpoint.active,
                rollups: Rollups::from_file(checkpoint.rollups),
                rollups_kept: true,
            })
        }
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, "ignoring an unreadable old usage checkpoint");
            None
        }
    }
}

/// The projects a report may cover, for [`Filter::projects`].
pub fn project_set(projects: impl IntoIterator<Item = String>) -> Option<HashSet<String>> {
    Some(projects.into_iter().collect())
}
