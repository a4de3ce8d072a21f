//! The usage log, `data/usage.jsonl`: one JSON record per line, append-only.
//!
//! The request path hands records to a bounded channel ([`UsageSink::record`]); one
//! background task serializes them and appends what has gathered with one write and one
//! `fdatasync`: at once after a quiet spell, at most once per `MIN_WRITE_INTERVAL` under
//! load, taking the records queued meanwhile just before each write (and a retry every [`FLUSH_INTERVAL`] while the disk
//! fails). A record is never dropped: a failed batch stays in memory, the file is cut back
//! to the last complete batch, and the batch is written again; while it fails the channel
//! fills up and callers wait.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use routerly_core::usage::UsageRecord;
use tokio::sync::{mpsc, oneshot};

use super::history::FileUsageHistory;
use tokio::task::JoinHandle;

/// The longest a pending record waits before the writer tries (again) to put it on disk.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest time between the starts of two writes: under load the records of this
/// interval share one write and one `fdatasync` (at most 100 a second) instead of waking
/// the blocking pool for every few records; a record after a quiet spell goes at once.
const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(10);
/// Most records written in one batch.
const MAX_BATCH: usize = 4096;
/// Records serialized between two yields to the runtime when a write gathers its batch.
const GATHER_STEP: usize = 64;
/// How many failed attempts a shutdown makes before giving up on the remaining records.
const SHUTDOWN_ATTEMPTS: u32 = 20;

/// State shared by the sink, the handle and the writer task.
#[derive(Debug)]
struct Shared {
    healthy: AtomicBool,
    records_written: AtomicU64,
}

/// Marks the writer unhealthy when its task ends, by return or by panic.
struct MarkStopped(Arc<Shared>);

impl Drop for MarkStopped {
    fn drop(&mut self) {
        self.0.healthy.store(false, Ordering::Relaxed);
    }
}

/// Sees every record the moment it is emitted (metrics, the per-request log line).
pub type UsageObserver = Arc<dyn Fn(&UsageRecord) + Send + Sync>;

/// The request path's end of the usage log; cheap to clone.
#[derive(Clone)]
pub struct UsageSink {
    sender: mpsc::Sender<UsageRecord>,
    shared: Arc<Shared>,
    observer: Option<UsageObserver>,
}

impl std::fmt::Debug for UsageSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageSink")
            .field("shared", &self.shared)
            .field("observed", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// The writer has shut down, so this record could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the usage writer has stopped; usage record `{record_id}` was not recorded")]
pub struct UsageWriterClosed {
    /// The id of the record that was refused.
    pub record_id: String,
}

impl UsageSink {
    /// This sink, calling `observer` with each record as it is emitted: the one place every
    /// call's record passes, so whatever is derived from records (metrics, the request log)
    /// cannot miss or double-count a call.
    /// Observers added one after the other are all called, in the order they were added.
    pub fn observed_by(mut self, observer: UsageObserver) -> Self {
        self.observer = Some(match self.observer.take() {
            None => observer,
            Some(first) => Arc::new(move |record: &UsageRecord| {
                first(record);
                observer(record);
            }),
        });
        self
    }

    /// Records waiting in the queue for the writer.
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Queues `record` for the log, waiting while the queue is full (never dropping it).
    /// After [`UsageWriterHandle::shutdown`] the record is refused with an error log; use
    /// [`UsageSink::try_record`] to handle that case.
    pub async fn record(&self, record: UsageRecord) {
        let _ = self.try_record(record).await;
    }

    /// [`UsageSink::record`], reporting a record refused because the writer has stopped.
    pub async fn try_record(&self, record: UsageRecord) -> Result<(), UsageWriterClosed> {
        if let Some(observer) = &self.observer {
            observer(&record);
        }
        // The queue nearly always has room: then no wait is set up.
        let record = match self.sender.try_send(record) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(record)) => return Err(closed(record)),
            Err(mpsc::error::TrySendError::Full(record)) => record,
        };
        self.sender
            .send(record)
            .await
            .map_err(|error| closed(error.0))
    }

    /// Queues `record` without waiting, for code that cannot await (such as `Drop`): sent
    /// at once when the queue has room, else by a spawned task that waits for room.
    pub fn record_detached(&self, record: UsageRecord) {
        if let Some(observer) = &self.observer {
            observer(&record);
        }
        match self.sender.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(record)) => {
                closed(record);
            }
            Err(mpsc::error::TrySendError::Full(record)) => {
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        // The observer has seen this record already: send it as it is.
                        let sender = self.sender.clone();
                        runtime.spawn(async move {
                            if let Err(error) = sender.send(record).await {
                                closed(error.0);
                            }
                        });
                    }
                    Err(_) => {
                        tracing::error!(record_id = %record.id, "usage queue full outside the runtime; record not recorded");
                    }
                }
            }
        }
    }

    /// Whether the last write succeeded and the writer is running (for `/ready`).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// How many records are on disk (written and fsynced) since the writer started.
    pub fn records_written(&self) -> u64 {
        self.shared.records_written.load(Ordering::Relaxed)
    }
}

/// What the writer did over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageWriterStats {
    /// Records written and fsynced.
    pub records_written: u64,
    /// Batches written (one write and one fsync each).
    pub batches: u64,
    /// Failed write attempts (each retried).
    pub write_errors: u64,
    /// Records still unwritten when shutdown gave up on a failing disk (logged).
    pub records_lost: u64,
}

fn closed(record: UsageRecord) -> UsageWriterClosed {
    tracing::error!(record_id = %record.id, "usage record after the usage writer stopped");
    UsageWriterClosed {
        record_id: record.id,
    }
}

/// Owner's end of the writer: shuts it down and reports.
#[derive(Debug)]
pub struct UsageWriterHandle {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<UsageWriterStats>,
    shared: Arc<Shared>,
}

impl UsageWriterHandle {
    /// Stops accepting records, writes and fsyncs every record already queued, and returns
    /// the writer's statistics.
    pub async fn shutdown(self) -> UsageWriterStats {
        // The task may already have ended (every sink dropped); then there is nothing to signal.
        let _ = self.shutdown.send(());
        match self.task.await {
            Ok(stats) => stats,
            Err(error) => {
                tracing::error!(%error, "the usage writer task failed");
                UsageWriterStats {
                    records_written: self.shared.records_written.load(Ordering::Relaxed),
                    ..UsageWriterStats::default()
                }
            }
        }
    }

    /// Whether the last write succeeded and the writer is running.
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// How many records are on disk since the writer started.
    pub fn records_written(&self) -> u64 {
        self.shared.records_written.load(Ordering::Relaxed)
    }
}

/// Starts the writer task appending to `path` (created with its directory when missing),
/// with a queue of `capacity` records. Must be called inside a Tokio runtime.
pub fn spawn_usage_writer(path: PathBuf, capacity: usize) -> (UsageSink, UsageWriterHandle) {
    spawn_rotating_usage_writer(path, capacity, DEFAULT_ROTATE_BYTES, None)
}

/// [`spawn_usage_writer`], rotating the log when it would grow past `rotate_bytes` and when
/// a record is appended in a later calendar month (UTC) than the log's first record: the
/// log is renamed `usage-YYYYMMDDTHHMMSSZ-NNNN.jsonl` (the time of rotation and a sequence
/// number within that second) beside it and a new
/// one begins. Rotated files keep their inode, which checkpoints use to find their place.
/// Each batch on disk is handed to `history` (rollups and the active segment's index), and
/// each rotation too (the segment's sidecar index).
pub fn spawn_rotating_usage_writer(
    path: PathBuf,
    capacity: usize,
    rotate_bytes: u64,
    history: Option<Arc<FileUsageHistory>>,
) -> (UsageSink, UsageWriterHandle) {
    spawn_shipping_usage_writer(path, capacity, rotate_bytes, history, None)
}

/// Called with each batch once it is on disk: its lines, each ending in a newline, and the
/// records they were written from, in the same order (with each line's length), so that
/// the receiver need not read back what was just serialized.
pub type BatchHook = Arc<dyn Fn(&[u8], Vec<(UsageRecord, u64)>) + Send + Sync>;

/// [`spawn_rotating_usage_writer`], handing each batch on disk to `ship` as well (the
/// PostgreSQL shipper, [`crate::store::pg::usage::UsageShipper::hand`]).
pub fn spawn_shipping_usage_writer(
    path: PathBuf,
    capacity: usize,
    rotate_bytes: u64,
    history: Option<Arc<FileUsageHistory>>,
    ship: Option<BatchHook>,
) -> (UsageSink, UsageWriterHandle) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let (shutdown_sender, shutdown_receiver) = oneshot::channel();
    let shared = Arc::new(Shared {
        healthy: AtomicBool::new(true),
        records_written: AtomicU64::new(0),
    });
    let writer = UsageWriter {
        path,
        receiver,
        shared: Arc::clone(&shared),
        log: LogFile {
            rotate_bytes: rotate_bytes.max(1),
            ..LogFile::default()
        },
        pending: Vec::new(),
        pending_records: 0,
        pending_list: Vec::new(),
        history,
        ship,
        stats: UsageWriterStats::default(),
    };
    let task = tokio::spawn(writer.run(shutdown_receiver));
    (
        UsageSink {
            sender,
            shared: Arc::clone(&shared),
            observer: None,
        },
        UsageWriterHandle {
            shutdown: shutdown_sender,
            task,
            shared,
        },
    )
}

/// The background task: receives records, appends them in batches.
struct UsageWriter {
    path: PathBuf,
    receiver: mpsc::Receiver<UsageRecord>,
    shared: Arc<Shared>,
    log: LogFile,
    /// Serialized lines not yet on disk.
    pending: Vec<u8>,
    pending_records: u64,
    /// The records of `pending` with their line lengths, for the history and the shipper.
    pending_list: Vec<(UsageRecord, u64)>,
    history: Option<Arc<FileUsageHistory>>,
    ship: Option<BatchHook>,
    stats: UsageWriterStats,
}

impl UsageWriter {
    async fn run(mut self, mut shutdown: oneshot::Receiver<()>) -> UsageWriterStats {
        // However the task ends (a panic included), `/ready` then says the writer is not
        // running, so a load balancer stops sending calls whose usage would not be recorded.
        let _stopped = MarkStopped(Arc::clone(&self.shared));
        let mut shutdown_open = true;
        // Whether the channel can still deliver records (closed at shutdown, then drained).
        let mut open = true;
        let mut failed_attempts_while_closing = 0;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut next_write = tokio::time::Instant::now();
        // One timer for the writer's life (a fresh sleep per record would insert into and
        // remove from the runtime's timer wheel each time).
        let mut write_due = routerly_providers::Deadline::new(next_write);
        loop {
            if self.pending_records > 0 && (!open || tokio::time::Instant::now() >= next_write) {
                if open {
                    self.gather().await;
                }
                if self.flush().await.is_ok() {
                    next_write = tokio::time::Instant::now() + MIN_WRITE_INTERVAL;
                    continue;
                }
                next_write = tokio::time::Instant::now() + FLUSH_INTERVAL;
                if !open {
                    failed_attempts_while_closing += 1;
                    if failed_attempts_while_closing >= SHUTDOWN_ATTEMPTS {
                        break;
                    }
                    tokio::time::sleep(FLUSH_INTERVAL).await;
                }
                continue;
            }
            if !open {
                break;
            }
            // Idle, the writer waits for a record, which is written at once. With records
            // pending it waits only for the write, and then takes what queued meanwhile
            // (`gather`): under load a call's record wakes no task, and the writer wakes once
            // per write instead of once per few records. While writes fail, at most
            // MAX_BATCH records wait here; then the channel fills and callers wait, so a
            // failing disk pushes back instead of growing memory.
            let idle = self.pending_records == 0;
            write_due.set(next_write);
            tokio::select! {
                result = &mut shutdown, if shutdown_open => {
                    shutdown_open = false;
                    // A dropped handle is not a shutdown: keep serving the sinks.
                    if result.is_ok() {
                        self.receiver.close();
                    }
                }
                received = self.receiver.recv_many(&mut batch, MAX_BATCH), if idle => {
                    if received == 0 {
                        open = false;
                    }
                    for record in batch.drain(..) {
                        self.push(record);
                    }
                }
                () = write_due.expired(), if self.pending_records > 0 => {}
            }
        }

        self.stats.records_lost = self.pending_records;
        if self.pending_records > 0 {
            tracing::error!(
                records = self.pending_records,
                path = %self.path.display(),
                "usage writer stopped with records it could not write"
            );
        }
        self.shared.healthy.store(false, Ordering::Relaxed);
        self.stats
    }

    /// Takes the records queued since the writer last looked, up to [`MAX_BATCH`] pending,
    /// serializing them a few dozen at a time between the other tasks of its core.
    async fn gather(&mut self) {
        let mut taken = 0;
        while self.pending_records < MAX_BATCH as u64 {
            let Ok(record) = self.receiver.try_recv() else {
                // Empty, or closed: then the next wait for a record says so.
                return;
            };
            self.push(record);
            taken += 1;
            if taken % GATHER_STEP == 0 {
                tokio::task::yield_now().await;
            }
        }
    }

    fn push(&mut self, record: UsageRecord) {
        let start = self.pending.len();
        record.write_json(&mut self.pending);
        self.pending.push(b'\n');
        self.pending_records += 1;
        if self.history.is_some() || self.ship.is_some() {
            let len = (self.pending.len() - start) as u64;
            self.pending_list.push((record, len));
        }
    }

    /// Writes the pending lines with one write and one fdatasync, off the async workers.
    async fn flush(&mut self) -> io::Result<()> {
        let bytes = std::mem::take(&mut self.pending);
        let list = std::mem::take(&mut self.pending_list);
        let mut log = std::mem::take(&mut self.log);
        let path = self.path.clone();
        let history = self.history.clone();
        let (log, bytes, list, result) = tokio::task::spawn_blocking(move || {
            let result = log.append(&path, &bytes, history.as_deref(), &list);
            (log, bytes, list, result)
        })
        .await
        .expect("the usage write task does not panic");
        self.log = log;
        match result {
            Ok(()) => {
                self.stats.batches += 1;
                self.stats.records_written += self.pending_records;
                self.shared
                    .records_written
                    .fetch_add(self.pending_records, Ordering::Relaxed);
                self.pending_records = 0;
                if let Some(ship) = &self.ship {
                    ship(&bytes, list);
                }
                let mut bytes = bytes;
                bytes.clear();
                self.pending = bytes;
                if !self.shared.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(path = %self.path.display(), "usage log writable again");
                }
                Ok(())
            }
            Err(error) => {
                self.pending = bytes;
                self.pending_list = list;
                self.stats.write_errors += 1;
                self.shared.healthy.store(false, Ordering::Relaxed);
                tracing::error!(
                    %error,
                    path = %self.path.display(),
                    records = self.pending_records,
                    "cannot write usage records; keeping them and retrying"
                );
                Err(error)
            }
        }
    }
}

/// The open log file and the length up to which it holds only complete batches.
#[derive(Default)]
struct LogFile {
    file: Option<File>,
    /// The open file's inode.
    inode: Option<u64>,
    committed_len: u64,
    opened_before: bool,
    rotate_bytes: u64,
    /// (year, month) of the file's first record.
    first_month: Option<(i32, u32)>,
}

/// Default size at which the log rotates.
pub const DEFAULT_ROTATE_BYTES: u64 = 256 * 1024 * 1024;

impl LogFile {
    fn append(
        &mut self,
        path: &Path,
        bytes: &[u8],
        history: Option<&FileUsageHistory>,
        list: &[(UsageRecord, u64)],
    ) -> io::Result<()> {
        if self.file.is_none() {
            self.open(path)?;
        }
        let this_month = current_month();
        let too_big = self.committed_len + bytes.len() as u64 > self.rotate_bytes;
        let new_month = self.first_month.is_some_and(|month| month != this_month);
        if self.committed_len > 0 && (too_big || new_month) {
            let rotated = self.rotate(path)?;
            if let Some(history) = history {
                history.rotated(&rotated);
            }
            self.open(path)?;
        }
        if self.committed_len == 0 {
            self.first_month = Some(this_month);
        }
        let file = self.file.as_mut().expect("opened just above");
        match file.write_all(bytes).and_then(|()| file.sync_data()) {
            Ok(()) => {
                if let Some(history) = history {
                    history.appended(self.inode, self.committed_len, list);
                }
                self.committed_len += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                // Reopening cuts off whatever part of this batch reached the file.
                self.file = None;
                Err(error)
            }
        }
    }

    /// Renames the log aside; the next [`LogFile::open`] starts a fresh one.
    fn rotate(&mut self, path: &Path) -> io::Result<PathBuf> {
        self.file = None;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let dir = path.parent().unwrap_or(Path::new("."));
        // A sequence number keeps names unique and in order within one second.
        let mut suffix = 0;
        let mut rotated = dir.join(format!("usage-{stamp}-{suffix:04}.jsonl"));
        while rotated.exists()
            || dir
                .join(format!("usage-{stamp}-{suffix:04}.jsonl.gz"))
                .exists()
        {
            suffix += 1;
            rotated = dir.join(format!("usage-{stamp}-{suffix:04}.jsonl"));
        }
        fs::rename(path, &rotated)?;
        if let Ok(dir_handle) = File::open(dir) {
            let _ = dir_handle.sync_all();
        }
        tracing::info!(rotated = %rotated.display(), "usage log rotated");
        self.committed_len = 0;
        self.opened_before = false;
        self.first_month = None;
        Ok(rotated)
    }

    fn open(&mut self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            super::files::create_private_dir_all(dir)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        let metadata = file.metadata()?;
        let len = metadata.len();
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            self.inode = Some(metadata.ino());
        }
        if !self.opened_before || len < self.committed_len {
            if self.opened_before {
                tracing::warn!(path = %path.display(), "usage log shrank while open (rotated or truncated?)");
            }
            self.committed_len = len;
        } else if len > self.committed_len {
            // The tail is a batch of ours that failed part-way; it is about to be rewritten.
            file.set_len(self.committed_len)?;
        }
        if self.committed_len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(self.committed_len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                // A crash cut the last line; end it so our records start on a line of their own.
                tracing::warn!(path = %path.display(), "usage log ends with a torn line; closing it");
                file.write_all(b"\n")?;
                file.sync_data()?;
                self.committed_len += 1;
            }
        }
        if self.committed_len > 0 && self.first_month.is_none() {
            self.first_month = first_record_month(&mut file);
        }
        self.file = Some(file);
        self.opened_before = true;
        Ok(())
    }
}

fn current_month() -> (i32, u32) {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    (now.year(), now.month())
}

/// The (year, month) of the first record's timestamp, read from the file's first line.
fn first_record_month(file: &mut File) -> Option<(i32, u32)> {
    let mut head = vec![0u8; 4096];
    file.seek(SeekFrom::Start(0)).ok()?;
    let read = file.read(&mut head).ok()?;
    let head = std::str::from_utf8(&head[..read]).ok()?;
    let at = head.find("\"timestamp\":\"")? + "\"timestamp\":\"".len();
    let year = head.get(at..at + 4)?.parse().ok()?;
    let month = head.get(at + 5..at + 7)?.parse().ok()?;
    Some((year, month))
}

/// Every file of the usage log whose active file is `active`: the rotated segments
/// (`usage-*.jsonl`, `usage-*.jsonl.gz` beside it) oldest first, then the active one (when
/// it exists).
pub fn usage_log_files(active: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = super::segments::rotated_segments(active)?;
    if active.exists() {
        files.push(active.to_path_buf());
    }
    Ok(files)
}

/// Every record of the usage log, rotated files included, oldest file first.
pub fn read_usage_all(active: &Path) -> io::Result<Vec<UsageRecord>> {
    let mut records = Vec::new();
    for path in usage_log_files(active)? {
        records.extend(read_usage(&path)?);
    }
    Ok(records)
}

/// Reads every record of the usage log (none when it does not exist), skipping with a
/// warning any line that does not parse, such as a torn last line left by a crash.
pub fn read_usage(path: &Path) -> io::Result<Vec<UsageRecord>> {
    read_usage_lines(path).map(|(records, _skipped)| records)
}

/// [`read_usage`], also returning the 1-based numbers of the lines skipped.
pub fn read_usage_lines(path: &Path) -> io::Result<(Vec<UsageRecord>, Vec<usize>)> {
    let mut reader = match super::segments::open_text(path) {
        Ok(reader) => reader,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok((Vec::new(), Vec::new()));
        }
        Err(error) => return Err(error),
    };
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    let mut line = Vec::new();
    let mut line_number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        line_number += 1;
        let complete = line.last() == Some(&b'\n');
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<UsageRecord>(&line) {
            Ok(record) => records.push(record),
            Err(error) => {
                if complete {
                    tracing::warn!(path = %path.display(), line = line_number, %error, "skipping an unreadable usage record");
                } else {
                    tracing::warn!(path = %path.display(), line = line_number, "skipping a torn last line of the usage log");
                }
                skipped.push(line_number);
            }
        }
    }
    Ok((records, skipped))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use routerly_core::usage::{CallType, Outcome, Surface};

    fn record(id: &str) -> UsageRecord {
        UsageRecord {
            requested_model: None,
            id: id.to_owned(),
            timestamp: chrono::Utc::now(),
            project_id: "p1".to_owned(),
            token_id: "t1".to_owned(),
            model_id: Some("gpt".to_owned()),
            provider: Some("openai".to_owned()),
            surface: Surface::ChatCompletions,
            call_type: CallType::Completion,
            stream: false,
            input_tokens: 10,
            output_tokens: 20,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: 0.001,
            input_cost_usd: 0.0004,
            output_cost_usd: 0.0006,
            latency_ms: 12.5,
            ttft_ms: None,
            overhead_ms: 0.2,
            outcome: Outcome::Success,
            status: 200,
            error: None,
            trace_id: format!("trace-{id}"),
            user: None,
            tags: vec![],
            attempts: vec![],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn records_from_many_tasks_land_exactly_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data").join("usage.jsonl");
        let (sink, handle) = spawn_usage_writer(path.clone(), 64);
        let mut tasks = Vec::new();
        for task in 0..50 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..200 {
                    sink.try_record(record(&format!("{task}-{i}")))
                        .await
                        .expect("writer running");
                }
            }));
        }
        for task in tasks {
            task.await.expect("sender task");
        }
        let stats = handle.shutdown().await;
        assert_eq!(stats.records_written, 10_000);
        assert_eq!(stats.records_lost, 0);
        assert_eq!(sink.records_written(), 10_000);
        assert!(stats.batches < 10_000, "records must be batched: {stats:?}");

        let (records, skipped) = read_usage_lines(&path).expect("read log");
        assert!(skipped.is_empty(), "every line parses: {skipped:?}");
        assert_eq!(records.len(), 10_000);
        let ids: HashSet<String> = records.into_iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), 10_000, "no duplicates");
        assert!(ids.contains("0-0") && ids.contains("49-199"));
        let error = sink
            .try_record(record("late"))
            .await
            .expect_err("writer stopped");
        assert_eq!(error.record_id, "late");
        assert!(!sink.is_healthy());
    }

    #[tokio::test]
    async fn records_reach_the_disk_without_shutdown_and_shutdown_flushes_the_rest() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("usage.jsonl");
        let (sink, handle) = spawn_usage_writer(path.clone(), 1024);
        sink.record(record("early")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            read_usage(&path).expect("read").len(),
            1,
            "flushed within 100 ms"
        );
        assert!(handle.is_healthy());

        for i in 0..500 {
            sink.record(record(&format!("r{i}"))).await;
        }
        let stats = handle.shutdown().await;
        assert_eq!(stats.records_written, 501);
        assert_eq!(read_usage(&path).expect("read").len(), 501);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("usage.jsonl");
        let mut text = String::new();
        for id in ["a", "b"] {
            text.push_str(&serde_json::to_string(&record(id)).expect("json"));
            text.push('\n');
        }
        let third = serde_json::to_string(&record("c")).expect("json");
        text.push_str(&third[..third.len() / 2]);
        fs::write(&path, text).expect("write log");
        let (records, skipped) = read_usage_lines(&path).expect("read");
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(skipped, vec![3]);
        assert!(
            read_usage(&dir.path().join("missing.jsonl"))
                .expect("missing")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn appending_after_a_torn_line_keeps_new_records_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("usage.jsonl");
        let whole = serde_json::to_string(&record("a")).expect("json");
        fs::write(&path, format!("{whole}\n{}", &whole[..20])).expect("write log");
        let (sink, handle) = spawn_usage_writer(path.clone(), 8);
        sink.record_detached(record("b"));
        handle.shutdown().await;
        let (records, skipped) = read_usage_lines(&path).expect("read");
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(skipped, vec![2]);
    }

    #[tokio::test]
    async fn the_log_rotates_by_size_and_readers_see_every_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("usage.jsonl");
        let line_len = serde_json::to_vec(&record("r00")).expect("json").len() as u64 + 1;
        let (sink, handle) = spawn_rotating_usage_writer(path.clone(), 1, line_len * 3, None);
        for i in 0..10 {
            // One record per batch, so rotation is checked before each.
            sink.record(record(&format!("r{i:02}"))).await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while sink.records_written() < i + 1 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "record {i} not written"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Rotated names carry the second of rotation; keep them distinct and ordered.
            if i % 3 == 2 {
                tokio::time::sleep(Duration::from_millis(1100)).await;
            }
        }
        handle.shutdown().await;
        let files = usage_log_files(&path).expect("list");
        assert_eq!(files.len(), 4, "3 + 3 + 3 rotated, 1 active: {files:?}");
        assert_eq!(files.last(), Some(&path), "the active file comes last");
        let ids: Vec<String> = read_usage_all(&path)
            .expect("read")
            .into_iter()
            .map(|r| r.id)
            .collect();
        let expected: Vec<String> = (0..10).map(|i| format!("r{i:02}")).collect();
        assert_eq!(ids, expected, "every record once, in order");
        assert_eq!(read_usage(&path).expect("read").len(), 1);
    }

    #[tokio::test]
    async fn write_errors_are_retried_and_reported_unhealthy() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A file where the log's directory should be makes every open fail.
        let blocker = dir.path().join("data");
        fs::write(&blocker, b"not a directory").expect("blocker");
        let path = blocker.join("usage.jsonl");
        let (sink, handle) = spawn_usage_writer(path.clone(), 8);
        for i in 0..3 {
            sink.record(record(&format!("r{i}"))).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!sink.is_healthy(), "failing writes must show on /ready");
        assert_eq!(sink.records_written(), 0);

        fs::remove_file(&blocker).expect("remove blocker");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while sink.records_written() < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "retry never succeeded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(sink.is_healthy());
        let stats = handle.shutdown().await;
        assert!(stats.write_errors > 0, "{stats:?}");
        let ids: Vec<String> = read_usage(&path)
            .expect("read")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec!["r0", "r1", "r2"]);
    }
}
