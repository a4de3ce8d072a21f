//! Usage records in PostgreSQL: shipped in batches by [`UsageShipper`], read back by
//! [`PgUsageHistory`].
//!
//! The usage writer still appends every record to the local log first (fsynced), then
//! hands each batch to the shipper, so nothing here runs on the request path. The shipper
//! keeps records in memory up to a bound while PostgreSQL is unreachable, then in a spool
//! file under `data/` up to a second bound, and sends them in their order when it returns;
//! each record's primary key (`id`, `at`) makes a batch re-sent after an unanswered commit
//! harmless. Only when both bounds are full does [`UsageShipper::is_full`] turn true (the
//! proxy then answers 503); `/ready` says which state it is in.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use futures_util::StreamExt;
use routerly_core::usage::UsageRecord;
use tokio_postgres::Client;
use tokio_postgres::types::{Json, ToSql, Type};

use super::{Database, DbError};
use crate::store::history::{Page, Report, UsageHistory};
use crate::store::rollup::{
    Aggregator, Dimension, Filter, GroupBy, Groups, HOUR, Rollups, Sketch, Totals, outcome_index,
    time_key,
};

/// Records per transaction, at most: what gathers in [`LINGER`] under load (about 1,800 at
/// 18,000 calls a second) goes as one batch rather than split at 1,000. Larger batches cost
/// PostgreSQL less per record, a commit, the rollup upserts and the statements being shared
/// by more calls (in `bench/replicas.py` at concurrency 16, gathering for 20 ms instead of
/// 100 raised PostgreSQL's CPU per call from 9.8 to 12.3 µs, 250 ms with up to 4,000 a
/// batch lowered it to 7.9; 250 ms would leave `/ready` unaware of an outage that long).
const SHIP_BATCH: usize = 4000;
/// Serializes the creation of partitions among replicas.
const PARTITION_LOCK: i64 = 0x7573_6167_6570_6172;
/// How long the shipper waits before retrying an unreachable database.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// How long records handed over gather before they are sent, unless a whole batch waits:
/// one transaction for the calls of those milliseconds rather than one per call at low
/// load (each costs PostgreSQL its commit and its rollup upserts). The records are in the
/// local usage log meanwhile, so a replica killed in between re-sends them at its start.
const LINGER: Duration = Duration::from_millis(100);

/// How much the shipper holds while PostgreSQL is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// Records kept in memory.
    pub memory_records: usize,
    /// Bytes kept in the spool file beyond them.
    pub spool_bytes: u64,
}

impl Default for BufferLimits {
    fn default() -> Self {
        BufferLimits {
            memory_records: 100_000,
            spool_bytes: 1 << 30,
        }
    }
}

impl BufferLimits {
    /// The defaults, overridden by `ROUTERLY_PG_BUFFER_RECORDS` and
    /// `ROUTERLY_PG_SPOOL_BYTES`.
    pub fn from_env() -> BufferLimits {
        let mut limits = BufferLimits::default();
        if let Some(records) = env_number("ROUTERLY_PG_BUFFER_RECORDS") {
            limits.memory_records = records as usize;
        }
        if let Some(bytes) = env_number("ROUTERLY_PG_SPOOL_BYTES") {
            limits.spool_bytes = bytes;
        }
        limits
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(number) => Some(number),
        Err(_) => {
            tracing::warn!(%name, %value, "not a whole number; using the default");
            None
        }
    }
}

/// The records waiting for PostgreSQL, oldest first: the memory queue, then the spool.
#[derive(Debug, Default)]
struct Buffer {
    /// Shared with the batch in flight, which takes them off once PostgreSQL has them.
    memory: VecDeque<Arc<Waiting>>,
    /// Records in the spool file not yet shipped, and its bytes.
    spool_records: u64,
    spool_bytes: u64,
    /// Where the unshipped part of the spool file begins.
    spool_read: u64,
}

/// A record waiting in memory: its line as logged and, while few wait, the record the
/// usage writer serialized it from, so that it is not parsed back (a line read from the
/// spool, or held while PostgreSQL is away, is parsed when it is sent).
#[derive(Debug)]
struct Waiting {
    line: Box<str>,
    record: Option<UsageRecord>,
}

/// Records waiting beyond which their lines alone are kept: past two batches the database
/// is behind or away, and memory matters more than parsing.
const KEEP_RECORDS_UP_TO: usize = 2 * SHIP_BATCH;

/// Where the shipper stands, for `/ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipperState {
    /// Connected, nothing waiting beyond the current batch.
    Ok,
    /// PostgreSQL unreachable; records held in memory.
    BufferingInMemory,
    /// PostgreSQL unreachable; records held in memory and the spool file.
    BufferingOnDisk,
    /// Memory full and the spool within its headroom of its bound: new calls are refused.
    Full,
}

impl ShipperState {
    /// The name `/ready` shows.
    pub fn name(self) -> &'static str {
        match self {
            ShipperState::Ok => "ok",
            ShipperState::BufferingInMemory => "buffering_in_memory",
            ShipperState::BufferingOnDisk => "buffering_on_disk",
            ShipperState::Full => "full",
        }
    }
}

/// Sends usage records to PostgreSQL off the request path.
#[derive(Debug)]
pub struct UsageShipper {
    database: Arc<Database>,
    /// Its own connection: each batch is one transaction (records and rollups).
    connection: tokio::sync::Mutex<super::OwnConnection>,
    limits: BufferLimits,
    spool_path: PathBuf,
    buffer: Mutex<Buffer>,
    wake: tokio::sync::Notify,
    connected: AtomicBool,
    full: AtomicBool,
    shipped: AtomicU64,
    dropped: AtomicU64,
    /// Times the database was found unreachable (each logged once).
    outages: AtomicU64,
}

impl UsageShipper {
    /// A shipper to `database`, spooling to `spool_path` (whose records, left by an
    /// earlier run, are shipped first).
    pub fn open(
        database: Arc<Database>,
        spool_path: PathBuf,
        limits: BufferLimits,
    ) -> io::Result<Arc<UsageShipper>> {
        let mut buffer = Buffer::default();
        match std::fs::read(&spool_path) {
            Ok(bytes) => {
                buffer.spool_bytes = bytes.len() as u64;
                buffer.spool_records = bytes.iter().filter(|b| **b == b'\n').count() as u64;
                if buffer.spool_records > 0 {
                    tracing::info!(
                        records = buffer.spool_records,
                        "usage records spooled by an earlier run will be sent to PostgreSQL"
                    );
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        Ok(Arc::new(UsageShipper {
            connection: tokio::sync::Mutex::new(super::OwnConnection::lazy(&database.url)),
            database,
            limits,
            spool_path,
            buffer: Mutex::new(buffer),
            wake: tokio::sync::Notify::new(),
            connected: AtomicBool::new(true),
            full: AtomicBool::new(false),
            shipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        }))
    }

    fn buffer(&self) -> MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .expect("the shipper's lock is never poisoned")
    }

    /// Takes a batch the usage writer has just made durable: `bytes` holds the records'
    /// lines, each ending in a newline.
    pub fn hand(&self, bytes: &[u8]) {
        self.hand_records(bytes, Vec::new());
    }

    /// [`UsageShipper::hand`], with the records the lines were written from (`records`
    /// holds one per line, in order, with the line's length, or is empty).
    pub fn hand_records(&self, bytes: &[u8], records: Vec<(UsageRecord, u64)>) {
        // Cut at the records' lengths when they are given, else at each newline: scanning a
        // batch for newlines a byte at a time once cost more than the rest of the hand-over.
        let mut lines: Vec<(&[u8], Option<UsageRecord>)> = Vec::with_capacity(records.len());
        if records.iter().map(|(_, len)| *len).sum::<u64>() == bytes.len() as u64 {
            let mut start = 0;
            for (record, len) in records {
                let end = start + len as usize;
                lines.push((&bytes[start..end], Some(record)));
                start = end;
            }
        } else {
            let mut rest = bytes;
            while !rest.is_empty() {
                let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |at| at + 1);
                let (line, after) = rest.split_at(end);
                lines.push((line, None));
                rest = after;
            }
        }
        let mut buffer = self.buffer();
        let mut spool: Option<File> = None;
        for (line, record) in lines {
            let Ok(text) = std::str::from_utf8(line.strip_suffix(b"\n").unwrap_or(line)) else {
                continue;
            };
            if buffer.spool_records == 0 && buffer.memory.len() < self.limits.memory_records {
                let record = record.filter(|_| buffer.memory.len() < KEEP_RECORDS_UP_TO);
                buffer.memory.push_back(Arc::new(Waiting {
                    line: Box::from(text),
                    record,
                }));
                continue;
            }
            if buffer.spool_bytes + line.len() as u64 <= self.limits.spool_bytes {
                let appended = match spool.as_mut() {
                    Some(file) => file.write_all(line),
                    None => open_spool(&self.spool_path).and_then(|mut file| {
                        let written = file.write_all(line);
                        spool = Some(file);
                        written
                    }),
                };
                match appended {
                    Ok(()) => {
                        buffer.spool_records += 1;
                        buffer.spool_bytes += line.len() as u64;
                        continue;
                    }
                    Err(error) => {
                        tracing::error!(%error, path = %self.spool_path.display(), "cannot spool a usage record for PostgreSQL");
                    }
                }
            }
            // Still in the local usage log, but not in PostgreSQL: more calls were under
            // way when refusals began than the headroom holds.
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                "a usage record found no room in the PostgreSQL buffers; it is only in the local usage log"
            );
        }
        if self.nearly_full(&buffer) && !self.full.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "PostgreSQL unreachable and the usage buffers are nearly full: refusing calls until it returns"
            );
        }
        if let Some(file) = spool
            && let Err(error) = file.sync_data()
        {
            tracing::error!(%error, "cannot sync the PostgreSQL usage spool");
        }
        drop(buffer);
        self.wake.notify_one();
    }

    /// Spool bytes kept free for the calls already under way when refusals begin: an
    /// eighth of the spool, at most 8 MiB (thousands of records).
    fn headroom(&self) -> u64 {
        (self.limits.spool_bytes / 8).min(8 << 20)
    }

    /// Whether memory is full and the spool within [`UsageShipper::headroom`] of its bound.
    fn nearly_full(&self, buffer: &Buffer) -> bool {
        buffer.memory.len() >= self.limits.memory_records
            && buffer.spool_bytes + self.headroom() >= self.limits.spool_bytes
    }
    /// Hands again the records at the end of the active usage log `log` that PostgreSQL
    /// does not hold: what this replica logged but had not shipped when it was killed. At
    /// most the memory buffer's records can be in that state (beyond them records are
    /// spooled to disk, and the spool is replayed), and records are shipped in order, so the
    /// missing ones are those after the newest stored one among the log's last
    /// `memory_records` (read from at most its last 64 MiB). Returns how many were handed.
    pub async fn resend_unshipped(&self, log: &std::path::Path) -> Result<usize, DbError> {
        const TAIL_BYTES: u64 = 64 * 1024 * 1024;
        let path = log.to_owned();
        let keep = self.limits.memory_records;
        let lines = tokio::task::spawn_blocking(move || -> io::Result<Vec<String>> {
            use std::io::{Read, Seek, SeekFrom};
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(error) => return Err(error),
            };
            let start = file.metadata()?.len().saturating_sub(TAIL_BYTES);
            file.seek(SeekFrom::Start(start))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let text = String::from_utf8_lossy(&bytes);
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            if start > 0 && !lines.is_empty() {
                lines.remove(0); // begun before the tail
            }
            lines.retain(|line| line.ends_with('\n') && line.len() > 1); // a torn last line
            let from = lines.len().saturating_sub(keep);
            Ok(lines[from..]
                .iter()
                .map(|line| line.trim_end().to_owned())
                .collect())
        })
        .await
        .expect("reading the log's tail does not panic")
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read the usage log to resend what was not shipped");
            Vec::new()
        });
        let ids: Vec<String> = lines
            .iter()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|record| record.get("id")?.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let client = self.database.client().await?;
        let stored: std::collections::HashSet<String> = client
            .query("SELECT id FROM usage_records WHERE id = ANY($1)", &[&ids])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let after = ids
            .iter()
            .rposition(|id| stored.contains(id))
            .map_or(0, |newest| newest + 1);
        let missing = &lines[after..];
        if !missing.is_empty() {
            let mut bytes = missing.join("\n");
            bytes.push('\n');
            self.hand(bytes.as_bytes());
            tracing::warn!(
                records = missing.len(),
                "usage records logged but not shipped before this replica stopped are sent to PostgreSQL now"
            );
        }
        Ok(missing.len())
    }

    /// Whether both buffers are (nearly) full: new calls are then refused, so that the
    /// records of the calls under way still find room.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Times a batch failed because PostgreSQL was unreachable (a lost lock race with
    /// another replica is retried, not counted).
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Records sent since start.
    pub fn shipped(&self) -> u64 {
        self.shipped.load(Ordering::Relaxed)
    }

    /// Records that found no room in either buffer.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Where the shipper stands.
    pub fn state(&self) -> ShipperState {
        if self.is_full() {
            return ShipperState::Full;
        }
        let buffer = self.buffer();
        if buffer.spool_records > 0 {
            ShipperState::BufferingOnDisk
        } else if !self.connected.load(Ordering::Relaxed) {
            ShipperState::BufferingInMemory
        } else {
            ShipperState::Ok
        }
    }

    /// Records waiting (memory, spool).
    pub fn waiting(&self) -> (usize, u64) {
        let buffer = self.buffer();
        (buffer.memory.len(), buffer.spool_records)
    }

    /// Sends what waits, in order, until `stop` turns true; then one last attempt.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut partitions_for = None;
        loop {
            let month = month_start(Utc::now());
            if partitions_for != Some(month) {
                match self.database.client().await {
                    Ok(client) => match ensure_partitions(&client, Utc::now()).await {
                        Ok(()) => partitions_for = Some(month),
                        Err(error) => tracing::warn!(%error, "cannot create usage partitions"),
                    },
                    Err(error) => tracing::debug!(%error, "PostgreSQL unreachable"),
                }
            }
            let drained = self.ship_waiting().await;
            let stopping = *stop.borrow();
            if stopping {
                break;
            }
            let pause = if drained {
                Duration::from_secs(3600)
            } else {
                RETRY_INTERVAL
            };
            tokio::select! {
                _ = self.wake.notified() => {
                    if self.waiting().0 < SHIP_BATCH {
                        tokio::select! {
                            _ = tokio::time::sleep(LINGER) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        self.ship_waiting().await;
        if let Err(error) = self.persist() {
            tracing::error!(%error, "cannot spool the usage records PostgreSQL did not take");
        }
    }

    /// Ships batches until nothing waits (`true`) or a batch fails (`false`).
    async fn ship_waiting(&self) -> bool {
        let mut lock_races = 0u32;
        loop {
            let (lines, from_memory, next_read) = {
                let buffer = self.buffer();
                if !buffer.memory.is_empty() {
                    let lines: Vec<Arc<Waiting>> =
                        buffer.memory.iter().take(SHIP_BATCH).cloned().collect();
                    (lines, true, 0)
                } else if buffer.spool_records > 0 {
                    match read_spool(&self.spool_path, buffer.spool_read, SHIP_BATCH) {
                        Ok((lines, next)) => {
                            let waiting = lines.into_iter().map(|line| {
                                Arc::new(Waiting {
                                    line: line.into_boxed_str(),
                                    record: None,
                                })
                            });
                            (waiting.collect(), false, next)
                        }
                        Err(error) => {
                            tracing::error!(%error, "cannot read the PostgreSQL usage spool");
                            return false;
                        }
                    }
                } else {
                    self.connected.store(true, Ordering::Relaxed);
                    return true;
                }
            };
            let sent = {
                let mut connection = self.connection.lock().await;
                match connection.client().await {
                    Ok(client) => {
                        let batch = lines
                            .iter()
                            .map(|waiting| (&*waiting.line, waiting.record.as_ref()));
                        insert_batch(client, batch).await
                    }
                    Err(error) => Err(error),
                }
            };
            if let Err(error) = sent {
                // Another replica's transaction held a cell this one needed: nothing is
                // wrong with the database; the batch is sent again at once (a few times).
                if is_lock_race(&error) && lock_races < LOCK_RACE_RETRIES {
                    lock_races += 1;
                    tracing::warn!(%error, attempt = lock_races, "usage batch lost a lock race with another replica; retrying");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(lock_races))).await;
                    continue;
                }
                if is_lock_race(&error) {
                    tracing::warn!(%error, "usage batch kept losing lock races; retrying later");
                    return false;
                }
                self.outages.fetch_add(1, Ordering::Relaxed);
                if self.connected.swap(false, Ordering::Relaxed) {
                    tracing::error!(%error, "PostgreSQL unreachable: buffering usage records");
                }
                return false;
            }
            if !self.connected.swap(true, Ordering::Relaxed) {
                tracing::info!("PostgreSQL reachable again: sending the buffered usage records");
            }
            let mut buffer = self.buffer();
            if from_memory {
                buffer.memory.drain(..lines.len());
            } else {
                buffer.spool_records -= lines.len() as u64;
                buffer.spool_read = next_read;
                if buffer.spool_records == 0 {
                    if let Err(error) = File::create(&self.spool_path) {
                        tracing::error!(%error, "cannot empty the PostgreSQL usage spool");
                    }
                    buffer.spool_bytes = 0;
                    buffer.spool_read = 0;
                }
            }
            if !self.nearly_full(&buffer) && self.full.swap(false, Ordering::Relaxed) {
                tracing::info!("usage buffers have room again: accepting calls");
            }
            drop(buffer);
            // Counted once the buffers say so too: a reader that sees the count sees the
            // room it made (the replay test waits on the count, then reads the state).
            self.shipped
                .fetch_add(lines.len() as u64, Ordering::Relaxed);
        }
    }

    /// Writes what is still waiting to the spool (memory first), for the next start.
    fn persist(&self) -> io::Result<()> {
        let mut buffer = self.buffer();
        if buffer.memory.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for waiting in buffer.memory.drain(..) {
            text.push_str(&waiting.line);
            text.push('\n');
        }
        if buffer.spool_records > 0 {
            let mut file = File::open(&self.spool_path)?;
            file.seek(SeekFrom::Start(buffer.spool_read))?;
            io::Read::read_to_string(&mut file, &mut text)?;
        }
        crate::store::files::write_atomic(&self.spool_path, text.as_bytes())?;
        tracing::warn!(
            records = text.lines().count(),
            "PostgreSQL did not take every usage record before shutdown: spooled for the next start"
        );
        Ok(())
    }
}

fn open_spool(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Up to `count` complete lines of the spool from `offset`, and the offset after them.
fn read_spool(path: &std::path::Path, offset: u64, count: usize) -> io::Result<(Vec<String>, u64)> {
    let mut reader = BufReader::new(File::open(path)?);
    reader.seek(SeekFrom::Start(offset))?;
    let mut lines = Vec::new();
    let mut next = offset;
    let mut line = String::new();
    while lines.len() < count {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        next += read as u64;
        lines.push(line.trim_end_matches('\n').to_owned());
    }
    Ok((lines, next))
}

/// How many times in a row a batch is re-sent at once after losing a lock race.
const LOCK_RACE_RETRIES: u32 = 5;

/// Whether `error` is a transaction PostgreSQL aborted for another's sake (deadlock,
/// serialization failure): the database is up and the same batch can be sent again.
pub(crate) fn is_lock_race(error: &DbError) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(error, DbError::Postgres(error)
        if [&SqlState::T_R_DEADLOCK_DETECTED, &SqlState::T_R_SERIALIZATION_FAILURE]
            .iter()
            .any(|code| error.code() == Some(*code)))
}

/// A batch of records copied in, in the order written.
const COPY_RECORDS: &str = "COPY usage_records
     (id, at, project_id, token_id, model_id, user_field, outcome, trace_id, tags, line)
     FROM STDIN BINARY";

/// The column types of [`COPY_RECORDS`].
const COPY_TYPES: [Type; 10] = [
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
];

/// A batch of records, in the order given: the insert for a batch holding records already
/// stored (with `ON CONFLICT DO NOTHING RETURNING id`), which [`COPY_RECORDS`] refuses.
const INSERT_RECORDS: &str = "INSERT INTO usage_records
         (id, at, project_id, token_id, model_id, user_field, outcome, trace_id, tags, line)
     SELECT id, at, project_id, token_id, model_id, user_field, outcome, trace_id, tags, line
     FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                 $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::text[])
          WITH ORDINALITY
          AS batch(id, at, project_id, token_id, model_id, user_field, outcome, trace_id, tags, line, n)
     ORDER BY n";

/// Stores `lines` (serialized records) with one `COPY` (or, for a batch holding records
/// already there, an insert that skips them, so they are not counted again), and adds the
/// records it stored to the rollups in the same transaction.
pub(crate) async fn insert(client: &mut Client, lines: &[impl AsRef<str>]) -> Result<(), DbError> {
    insert_batch(client, lines.iter().map(|line| (line.as_ref(), None))).await
}

/// [`insert`] for lines each with the record it holds, where known (the others are parsed).
async fn insert_batch<'a>(
    client: &mut Client,
    batch: impl ExactSizeIterator<Item = (&'a str, Option<&'a UsageRecord>)>,
) -> Result<(), DbError> {
    let mut kept = Vec::with_capacity(batch.len());
    let mut parsed: Vec<Cow<'a, UsageRecord>> = Vec::with_capacity(batch.len());
    for (line, record) in batch {
        let record = match record {
            Some(record) => Cow::Borrowed(record),
            None => match serde_json::from_str::<UsageRecord>(line) {
                Ok(record) => Cow::Owned(record),
                Err(error) => {
                    tracing::error!(%error, "an unreadable usage record was not sent to PostgreSQL");
                    continue;
                }
            },
        };
        kept.push(line);
        parsed.push(record);
    }
    let records: Vec<&UsageRecord> = parsed.iter().map(Cow::as_ref).collect();
    let derived: Vec<Derived> = records.iter().map(|record| Derived::of(record)).collect();
    // Nearly every batch is new: its rows are copied in (binary COPY: no statement to plan,
    // no arrays to unpack and sort back into order), the primary key checking each id as it
    // goes in. A batch re-sent after an unanswered commit, or joined to the one it repeats,
    // breaks the key; it goes again as an INSERT that skips the records stored.
    let transaction = client.transaction().await?;
    match copy_records(&transaction, &records, &derived, &kept).await {
        Ok(()) => {
            add_to_rollups(&transaction, records.iter().copied()).await?;
            transaction.commit().await?;
            return Ok(());
        }
        Err(DbError::Postgres(error)) if error.code().is_some() => {
            if error.code() != Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                tracing::warn!(error = %DbError::from(error), "copying usage records failed; inserting them instead");
            }
            transaction.rollback().await?;
        }
        Err(error) => return Err(error),
    }
    // The same columns as the copy's, as arrays.
    let column = |of: fn(&UsageRecord) -> &str| {
        records
            .iter()
            .map(|record| of(record))
            .collect::<Vec<&str>>()
    };
    let ids = column(|record| &record.id);
    let projects = column(|record| &record.project_id);
    let tokens = column(|record| &record.token_id);
    let traces = column(|record| &record.trace_id);
    let ats: Vec<DateTime<Utc>> = records.iter().map(|record| record.timestamp).collect();
    let models: Vec<&str> = derived.iter().map(|row| row.model).collect();
    let users: Vec<&Cow<str>> = derived.iter().map(|row| &row.user).collect();
    let outcomes: Vec<&str> = derived.iter().map(|row| row.outcome).collect();
    let tags: Vec<&Json<&Vec<String>>> = derived.iter().map(|row| &row.tags).collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
        &ids, &ats, &projects, &tokens, &models, &users, &outcomes, &traces, &tags, &kept,
    ];
    let transaction = client.transaction().await?;
    let stored = transaction
        .query(
            &format!("{INSERT_RECORDS} ON CONFLICT DO NOTHING RETURNING id"),
            &params,
        )
        .await?;
    // Each stored id counts once: a batch can hold one record twice (a re-sent batch
    // joined to the one it repeats), which the insert stores once and returns once.
    let mut stored: HashSet<&str> = stored.iter().map(|row| row.get(0)).collect();
    let new = records
        .iter()
        .copied()
        .filter(|record| stored.remove(record.id.as_str()));
    add_to_rollups(&transaction, new).await?;
    transaction.commit().await?;
    Ok(())
}

/// The columns of a record's row that are not fields of the record as they are, the same
/// for the copy and the insert.
struct Derived<'a> {
    model: &'a str,
    user: Cow<'a, str>,
    outcome: &'static str,
    tags: Json<&'a Vec<String>>,
}

impl<'a> Derived<'a> {
    fn of(record: &'a UsageRecord) -> Self {
        Derived {
            model: record.model_id.as_deref().unwrap_or_default(),
            user: super::storable(record.user.as_deref().unwrap_or_default()),
            outcome: record.outcome.name(),
            tags: Json(&record.tags),
        }
    }
}

/// Copies `records` (serialized as `lines`) into `usage_records` in `transaction`.
async fn copy_records(
    transaction: &tokio_postgres::Transaction<'_>,
    records: &[&UsageRecord],
    derived: &[Derived<'_>],
    lines: &[&str],
) -> Result<(), DbError> {
    let rows = records.iter().zip(lines).zip(derived).map(
        |((record, line), derived)| -> [&(dyn ToSql + Sync); 10] {
            [
                &record.id,
                &record.timestamp,
                &record.project_id,
                &record.token_id,
                &derived.model,
                &derived.user,
                &derived.outcome,
                &record.trace_id,
                &derived.tags,
                line,
            ]
        },
    );
    let data = super::binary_copy(&COPY_TYPES, rows)?;
    super::copy_in(transaction.client(), COPY_RECORDS, data).await?;
    Ok(())
}

/// The dimensions a call is counted under, as stored in `usage_rollups.dimension`.
const ROLLUP_DIMENSIONS: [Dimension; 5] = [
    Dimension::All,
    Dimension::Model,
    Dimension::Token,
    Dimension::User,
    Dimension::Tag,
];

fn dimension_code(dimension: Dimension) -> i16 {
    ROLLUP_DIMENSIONS
        .iter()
        .position(|known| *known == dimension)
        .expect("every dimension has a code") as i16
}

/// Whether a dimension keeps latency sketches (as the file mode's rollups do).
fn keeps_sketches(dimension: Dimension) -> bool {
    matches!(dimension, Dimension::All | Dimension::Model)
}

/// A sketch's (bucket, count) pairs.
type SketchBins = Vec<(i16, u32)>;

/// A rollup cell: (hour, dimension, project, value, outcome); the value as stored (see
/// [`super::storable`]), so that values stored alike are one cell.
type CellKey<'a> = (i64, i16, &'a str, Cow<'a, str>, i16);

/// The rollup cells `records` add to, each with its sums.
fn rollup_cells<'a>(
    records: impl Iterator<Item = &'a UsageRecord>,
) -> BTreeMap<CellKey<'a>, Totals> {
    let mut cells: BTreeMap<CellKey<'a>, Totals> = BTreeMap::new();
    for record in records {
        let at = record.timestamp.timestamp();
        let hour = at - at.rem_euclid(HOUR);
        let outcome = i16::from(outcome_index(record.outcome));
        let values = [
            (Dimension::All, ""),
            (Dimension::Model, record.model_id.as_deref().unwrap_or("")),
            (Dimension::Token, record.token_id.as_str()),
            (Dimension::User, record.user.as_deref().unwrap_or("")),
        ];
        // A call counts once per distinct tag.
        let tags = record.tags.iter().enumerate().filter_map(|(index, tag)| {
            (!record.tags[..index].contains(tag)).then_some((Dimension::Tag, tag.as_str()))
        });
        for (dimension, value) in values.into_iter().chain(tags) {
            let key = (
                hour,
                dimension_code(dimension),
                record.project_id.as_str(),
                super::storable(value),
                outcome,
            );
            cells
                .entry(key)
                .or_default()
                .add(record, keeps_sketches(dimension));
        }
    }
    cells
}

/// A sketch as stored: `{"bucket": count}`.
fn bins_json(sketch: &Sketch) -> String {
    let bins: serde_json::Map<String, serde_json::Value> = sketch
        .bins()
        .iter()
        .map(|(bucket, count)| (bucket.to_string(), (*count).into()))
        .collect();
    serde_json::Value::Object(bins).to_string()
}

/// Adds `records` to `usage_rollups`, cells in key order (the `BTreeMap`'s, kept by the
/// statement's `ORDER BY n`), so every replica's shipper locks shared cells in one order
/// and two of them cannot deadlock. A cell's sketches are merged only when the batch adds
/// to them (the token, user and tag cells keep none, a plain call has no time to first
/// token), since the merge is a SQL function run per cell.
async fn add_to_rollups(
    transaction: &tokio_postgres::Transaction<'_>,
    records: impl Iterator<Item = &UsageRecord>,
) -> Result<(), DbError> {
    let cells = rollup_cells(records);
    if cells.is_empty() {
        return Ok(());
    }
    let count = cells.len();
    let mut buckets = Vec::with_capacity(count);
    let mut dimensions = Vec::with_capacity(count);
    let mut projects = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    let mut outcomes = Vec::with_capacity(count);
    let mut integers: [Vec<i64>; 6] = Default::default();
    let mut reals: [Vec<f64>; 5] = Default::default();
    let mut latencies = Vec::with_capacity(count);
    let mut ttfts = Vec::with_capacity(count);
    for ((hour, dimension, project, value, outcome), totals) in cells {
        buckets.push(Utc.timestamp_opt(hour, 0).single().unwrap_or_default());
        dimensions.push(dimension);
        projects.push(project);
        values.push(value);
        outcomes.push(outcome);
        for (column, number) in integers.iter_mut().zip([
            totals.calls,
            totals.input_tokens,
            totals.output_tokens,
            totals.cached_input_tokens,
            totals.cache_write_tokens,
            totals.ttft_calls,
        ]) {
            column.push(i64::try_from(number).unwrap_or(i64::MAX));
        }
        for (column, number) in reals.iter_mut().zip([
            totals.cost_usd,
            totals.input_cost_usd,
            totals.output_cost_usd,
            totals.latency_ms_sum,
            totals.ttft_ms_sum,
        ]) {
            column.push(number);
        }
        latencies.push(bins_json(&totals.latency));
        ttfts.push(bins_json(&totals.ttft));
    }
    let [
        calls,
        input_tokens,
        output_tokens,
        cached,
        cache_write,
        ttft_calls,
    ] = &integers;
    let [cost, input_cost, output_cost, latency_sum, ttft_sum] = &reals;
    transaction
        .execute(
            "INSERT INTO usage_rollups AS r
                 (bucket, dimension, project_id, value, outcome, calls, input_tokens, output_tokens,
                  cached_input_tokens, cache_write_tokens, ttft_calls, cost_usd, input_cost_usd,
                  output_cost_usd, latency_ms_sum, ttft_ms_sum, latency, ttft)
             SELECT bucket, dimension, project_id, value, outcome, calls, input_tokens, output_tokens,
                  cached_input_tokens, cache_write_tokens, ttft_calls, cost_usd, input_cost_usd,
                  output_cost_usd, latency_ms_sum, ttft_ms_sum, latency::jsonb, ttft::jsonb
             FROM unnest($1::timestamptz[], $2::int2[], $3::text[], $4::text[], $5::int2[],
                         $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[],
                         $12::float8[], $13::float8[], $14::float8[], $15::float8[], $16::float8[],
                         $17::text[], $18::text[])
                  WITH ORDINALITY
                  AS cell(bucket, dimension, project_id, value, outcome, calls, input_tokens,
                          output_tokens, cached_input_tokens, cache_write_tokens, ttft_calls,
                          cost_usd, input_cost_usd, output_cost_usd, latency_ms_sum, ttft_ms_sum,
                          latency, ttft, n)
             ORDER BY n
             ON CONFLICT (dimension, bucket, project_id, value, outcome) DO UPDATE SET
                 calls = r.calls + EXCLUDED.calls,
                 input_tokens = r.input_tokens + EXCLUDED.input_tokens,
                 output_tokens = r.output_tokens + EXCLUDED.output_tokens,
                 cached_input_tokens = r.cached_input_tokens + EXCLUDED.cached_input_tokens,
                 cache_write_tokens = r.cache_write_tokens + EXCLUDED.cache_write_tokens,
                 ttft_calls = r.ttft_calls + EXCLUDED.ttft_calls,
                 cost_usd = r.cost_usd + EXCLUDED.cost_usd,
                 input_cost_usd = r.input_cost_usd + EXCLUDED.input_cost_usd,
                 output_cost_usd = r.output_cost_usd + EXCLUDED.output_cost_usd,
                 latency_ms_sum = r.latency_ms_sum + EXCLUDED.latency_ms_sum,
                 ttft_ms_sum = r.ttft_ms_sum + EXCLUDED.ttft_ms_sum,
                 latency = CASE WHEN EXCLUDED.latency = '{}' THEN r.latency
                                ELSE routerly_merge_bins(r.latency, EXCLUDED.latency) END,
                 ttft = CASE WHEN EXCLUDED.ttft = '{}' THEN r.ttft
                             ELSE routerly_merge_bins(r.ttft, EXCLUDED.ttft) END",
            &[
                &buckets, &dimensions, &projects, &values, &outcomes, calls, input_tokens,
                output_tokens, cached, cache_write, ttft_calls, cost, input_cost, output_cost,
                latency_sum, ttft_sum, &latencies, &ttfts,
            ],
        )
        .await?;
    Ok(())
}

fn month_start(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .expect("the first of a month at midnight UTC exists")
}

fn next_month(at: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .expect("the first of a month at midnight UTC exists")
}

/// Creates the monthly partitions of `usage_records` from the month before `now` to two
/// months after it (those that exist are left alone), under a lock so replicas doing it
/// at once do not collide.
pub async fn ensure_partitions(client: &Client, now: DateTime<Utc>) -> Result<(), DbError> {
    let this_month = month_start(now);
    let mut start = month_start(this_month - chrono::Duration::days(1));
    let mut body = format!("PERFORM pg_advisory_xact_lock({PARTITION_LOCK});");
    for _ in 0..4 {
        let end = next_month(start);
        let name = format!("usage_records_{}", start.format("y%Ym%m"));
        body.push_str(&format!(
            "IF to_regclass('{name}') IS NULL THEN \
             CREATE TABLE {name} PARTITION OF usage_records \
             FOR VALUES FROM ('{}') TO ('{}'); END IF;",
            start.to_rfc3339(),
            end.to_rfc3339()
        ));
        start = end;
    }
    client
        .batch_execute(&format!("DO $$ BEGIN {body} END $$"))
        .await?;
    Ok(())
}

/// The usage history in PostgreSQL: every replica's records.
#[derive(Debug)]
pub struct PgUsageHistory {
    database: Arc<Database>,
    runtime: tokio::runtime::Handle,
    rollups_complete: AtomicBool,
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// `filter` as a WHERE clause and its parameters.
/// Rows of a page or an export taken from PostgreSQL's answer at a time.
const ROWS_PER_BATCH: usize = 256;

fn conditions(filter: &Filter) -> (String, Params) {
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Params = Vec::new();
    let mut add = |clause: &str, param: Box<dyn ToSql + Sync + Send>| {
        params.push(param);
        clauses.push(clause.replace("$$", &format!("${}", params.len())));
    };
    if let Some(projects) = &filter.projects {
        add(
            "project_id = ANY($$)",
            Box::new(projects.iter().cloned().collect::<Vec<String>>()),
        );
    }
    if let Some(model) = &filter.model {
        add("model_id = $$", Box::new(model.clone()));
    }
    if let Some(token) = &filter.token {
        add("token_id = $$", Box::new(token.clone()));
    }
    if let Some(user) = &filter.user {
        add("user_field = $$", Box::new(user.clone()));
    }
    if let Some(tag) = &filter.tag {
        add("tags ? $$", Box::new(tag.clone()));
    }
    if let Some(outcome) = filter.outcome {
        add("outcome = $$", Box::new(outcome.name().to_owned()));
    }
    if let Some(from) = filter.from {
        add(
            "at >= $$",
            Box::new(Utc.timestamp_opt(from, 0).single().unwrap_or_default()),
        );
    }
    if let Some(to) = filter.to {
        add(
            "at < $$",
            Box::new(Utc.timestamp_opt(to, 0).single().unwrap_or_default()),
        );
    }
    if clauses.is_empty() {
        (String::from("TRUE"), params)
    } else {
        (clauses.join(" AND "), params)
    }
}

fn to_io(error: impl Into<DbError>) -> io::Error {
    io::Error::other(error.into().to_string())
}

impl PgUsageHistory {
    /// The history over `database`; its calls block on `runtime` (call them off the async
    /// workers, as the trait says).
    pub fn new(database: Arc<Database>, runtime: tokio::runtime::Handle) -> PgUsageHistory {
        PgUsageHistory {
            database,
            runtime,
            rollups_complete: AtomicBool::new(false),
        }
    }

    /// Calls `each` with the lines matching `filter` in `order`, after `offset`, at most
    /// `limit`, until it returns false.
    fn lines(
        &self,
        filter: &Filter,
        order: &str,
        offset: usize,
        limit: Option<usize>,
        each: &mut dyn FnMut(UsageRecord, &str) -> bool,
    ) -> io::Result<()> {
        let (clause, mut params) = conditions(filter);
        let mut sql = format!(
            "SELECT line FROM usage_records WHERE {clause} ORDER BY at {order}, id {order}"
        );
        params.push(Box::new(offset as i64));
        sql.push_str(&format!(" OFFSET ${}", params.len()));
        if let Some(limit) = limit {
            params.push(Box::new(limit as i64));
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        let mut rows = self.runtime.block_on(async {
            let client = self.database.client().await.map_err(to_io)?;
            let rows = client
                .query_raw(
                    &sql,
                    params
                        .iter()
                        .map(|param| param.as_ref() as &(dyn ToSql + Sync)),
                )
                .await
                .map_err(to_io)?;
            Ok::<_, io::Error>(Box::pin(rows))
        })?;
        // `each` runs outside the runtime, as the file history calls it: an export's callback
        // waits for a slow client with a blocking send, which panics inside a runtime (every
        // export past its first 64 KB chunk once ended there, as an empty or cut-short 200).
        // Rows are taken from the stream in small batches, so memory stays bounded.
        let mut batch = Vec::with_capacity(ROWS_PER_BATCH);
        let mut done = false;
        while !done {
            self.runtime.block_on(async {
                while batch.len() < ROWS_PER_BATCH {
                    match rows.next().await {
                        Some(row) => batch.push(row.map_err(to_io)?),
                        None => {
                            done = true;
                            break;
                        }
                    }
                }
                Ok::<_, io::Error>(())
            })?;
            for row in batch.drain(..) {
                let line: &str = row.get(0);
                let record: UsageRecord = serde_json::from_str(line).map_err(io::Error::other)?;
                if !each(record, line) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl PgUsageHistory {
    /// Whether `usage_rollups` covers every stored record (once true, for good).
    fn rollups_complete(&self) -> io::Result<bool> {
        if self.rollups_complete.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let complete: bool = self.runtime.block_on(async {
            let client = self.database.client().await.map_err(to_io)?;
            let row = client
                .query_one("SELECT complete FROM usage_rollups_state", &[])
                .await
                .map_err(to_io)?;
            Ok::<_, io::Error>(row.get(0))
        })?;
        self.rollups_complete.store(complete, Ordering::Relaxed);
        Ok(complete)
    }

    /// A report of one dimension (`filter` already widened to whole hours) from the hour
    /// cells of `usage_rollups`: PostgreSQL sums the cells of each group and outcome, so the
    /// cost follows the number of cells, not of calls.
    fn report_from_rollups(
        &self,
        filter: &Filter,
        group: GroupBy,
        dimension: Dimension,
        hourly_from: i64,
    ) -> io::Result<Groups> {
        let mut clauses = vec!["dimension = $1".to_owned()];
        let mut params: Params = vec![Box::new(dimension_code(dimension))];
        let mut add = |clause: &str, param: Box<dyn ToSql + Sync + Send>| {
            params.push(param);
            clauses.push(clause.replace("$$", &format!("${}", params.len())));
        };
        if let Some(projects) = &filter.projects {
            add(
                "project_id = ANY($$)",
                Box::new(projects.iter().cloned().collect::<Vec<String>>()),
            );
        }
        let value = match dimension {
            Dimension::All => None,
            Dimension::Model => filter.model.clone(),
            Dimension::Token => filter.token.clone(),
            Dimension::User => filter.user.clone(),
            Dimension::Tag => filter.tag.clone(),
        };
        if let Some(value) = value {
            add("value = $$", Box::new(value));
        }
        if let Some(outcome) = filter.outcome {
            add("outcome = $$", Box::new(i16::from(outcome_index(outcome))));
        }
        if let Some(from) = filter.from {
            add(
                "bucket >= $$",
                Box::new(Utc.timestamp_opt(from, 0).single().unwrap_or_default()),
            );
        }
        if let Some(to) = filter.to {
            add(
                "bucket < $$",
                Box::new(Utc.timestamp_opt(to, 0).single().unwrap_or_default()),
            );
        }
        let key = match group {
            GroupBy::Nothing | GroupBy::Dimension(Dimension::All) => "''",
            GroupBy::Project => "project_id",
            GroupBy::Dimension(_) => "value",
            GroupBy::Time { .. } => "extract(epoch FROM bucket)::int8::text",
        };
        let conditions = clauses.join(" AND ");
        let sums = format!(
            "SELECT {key}, outcome, sum(calls)::int8, sum(input_tokens)::int8,
                    sum(output_tokens)::int8, sum(cached_input_tokens)::int8,
                    sum(cache_write_tokens)::int8, sum(ttft_calls)::int8, sum(cost_usd),
                    sum(input_cost_usd), sum(output_cost_usd), sum(latency_ms_sum),
                    sum(ttft_ms_sum)
             FROM usage_rollups WHERE {conditions} GROUP BY 1, 2"
        );
        // The sketches' bins summed per group, outcome and bin: one row per bin, so merging
        // costs what the bins are, set-based.
        let bins = format!(
            "SELECT {key}, outcome, 0::int2, bin::int2, sum(count::int8)::int8
             FROM usage_rollups, jsonb_each_text(latency) AS sketch(bin, count)
             WHERE {conditions} GROUP BY 1, 2, 4
             UNION ALL
             SELECT {key}, outcome, 1::int2, bin::int2, sum(count::int8)::int8
             FROM usage_rollups, jsonb_each_text(ttft) AS sketch(bin, count)
             WHERE {conditions} GROUP BY 1, 2, 4"
        );
        let (rows, bin_rows) = self.runtime.block_on(async {
            let client = self.database.client().await.map_err(to_io)?;
            let params: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|param| param.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = client.query(&sums, &params).await.map_err(to_io)?;
            let bin_rows = if keeps_sketches(dimension) {
                client.query(&bins, &params).await.map_err(to_io)?
            } else {
                Vec::new()
            };
            Ok::<_, io::Error>((rows, bin_rows))
        })?;
        let group_key = |key: String| match group {
            GroupBy::Time { seconds, zone } => {
                let stored: i64 = key.parse().unwrap_or_default();
                time_key(stored, seconds, zone, hourly_from).to_string()
            }
            _ => key,
        };
        // (group key, outcome) → the latency and time-to-first-token bins.
        let mut sketches: BTreeMap<(String, i16), [SketchBins; 2]> = BTreeMap::new();
        for row in bin_rows {
            let (key, outcome, which): (String, i16, i16) = (row.get(0), row.get(1), row.get(2));
            let (bin, count): (i16, i64) = (row.get(3), row.get(4));
            sketches.entry((key, outcome)).or_default()[usize::from(which == 1)]
                .push((bin, u32::try_from(count).unwrap_or(u32::MAX)));
        }
        let mut groups = Groups::new();
        for row in rows {
            let key: String = row.get(0);
            let outcome: i16 = row.get(1);
            let [latency, ttft] = sketches.remove(&(key.clone(), outcome)).unwrap_or_default();
            let key = group_key(key);
            let whole = |index: usize| u64::try_from(row.get::<_, i64>(index)).unwrap_or(0);
            let totals = Totals {
                calls: whole(2),
                input_tokens: whole(3),
                output_tokens: whole(4),
                cached_input_tokens: whole(5),
                cache_write_tokens: whole(6),
                ttft_calls: whole(7),
                cost_usd: row.get(8),
                input_cost_usd: row.get(9),
                output_cost_usd: row.get(10),
                latency_ms_sum: row.get(11),
                ttft_ms_sum: row.get(12),
                latency: Sketch::from_bins(latency),
                ttft: Sketch::from_bins(ttft),
            };
            groups
                .entry(key)
                .or_default()
                .add(usize::try_from(outcome).unwrap_or(0), &totals);
        }
        Ok(groups)
    }
}

impl UsageHistory for PgUsageHistory {
    fn report(&self, filter: Filter, group: GroupBy) -> io::Result<Report> {
        // Hour buckets throughout, as the file mode's rollups within their horizon.
        let rollups = Rollups::default();
        let filter = rollups.widen(filter);
        let dimensions = filter.dimensions(group);
        if dimensions.len() <= 1 && self.rollups_complete()? {
            let dimension = dimensions.first().copied().unwrap_or(Dimension::All);
            let groups =
                self.report_from_rollups(&filter, group, dimension, rollups.hourly_from())?;
            return Ok(Report {
                filter,
                groups,
                from_rollups: true,
            });
        }
        let mut aggregator = Aggregator::new(filter.clone(), group, rollups.hourly_from());
        self.lines(&filter, "ASC", 0, None, &mut |record, _| {
            aggregator.add(&record);
            true
        })?;
        // Every record of the (widened) range was read: the answer is as exact as the
        // file mode's rollups, which is what `from_rollups` tells callers.
        Ok(Report {
            filter,
            groups: aggregator.groups,
            from_rollups: true,
        })
    }

    fn page(&self, filter: &Filter, offset: usize, limit: usize) -> io::Result<Page> {
        let mut records = Vec::with_capacity(limit.min(1000));
        self.lines(filter, "DESC", offset, Some(limit + 1), &mut |record, _| {
            records.push(record);
            true
        })?;
        let has_more = records.len() > limit;
        records.truncate(limit);
        Ok(Page { records, has_more })
    }

    fn find_trace(&self, trace_id: &str) -> io::Result<Vec<UsageRecord>> {
        self.runtime.block_on(async {
            let client = self.database.client().await.map_err(to_io)?;
            let rows = client
                .query(
                    "SELECT line FROM usage_records WHERE trace_id = $1 ORDER BY at, id",
                    &[&trace_id],
                )
                .await
                .map_err(to_io)?;
            rows.iter()
                .map(|row| serde_json::from_str(row.get::<_, &str>(0)).map_err(io::Error::other))
                .collect()
        })
    }

    fn export(
        &self,
        filter: &Filter,
        each: &mut dyn FnMut(&UsageRecord, &[u8]) -> bool,
    ) -> io::Result<u64> {
        let mut given = 0;
        self.lines(filter, "ASC", 0, None, &mut |record, line| {
            given += 1;
            each(&record, line.as_bytes())
        })?;
        Ok(given)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::AtomicBool;

    use routerly_core::usage::{CallType, Outcome, Surface};
    use tokio::net::{TcpListener, TcpStream};

    use super::super::testdb::TestDb;
    use super::*;
    use crate::store::rollup::Dimension;

    fn record(index: usize) -> UsageRecord {
        UsageRecord {
            id: format!("r{index}"),
            // Every 7 hours from 2026-01-01: several months, hence several partitions.
            timestamp: Utc
                .timestamp_opt(1_767_225_600 + index as i64 * 7 * 3600, 0)
                .unwrap(),
            project_id: ["p\"1", "p2", "p3"][index % 3].to_owned(),
            token_id: format!("t/{}", index % 4),
            model_id: [Some("m1"), Some("modèle/ü"), None][(index / 2) % 3].map(str::to_owned),
            requested_model: index.is_multiple_of(5).then(|| "alias".to_owned()),
            provider: None,
            surface: Surface::Messages,
            call_type: CallType::Completion,
            stream: false,
            input_tokens: index as u64,
            output_tokens: 2,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: index as f64 / 100.0,
            input_cost_usd: 0.0,
            output_cost_usd: 0.0,
            latency_ms: 10.0 + index as f64,
            ttft_ms: None,
            overhead_ms: 0.0,
            outcome: if index.is_multiple_of(5) {
                Outcome::Error
            } else {
                Outcome::Success
            },
            status: 200,
            error: None,
            trace_id: format!("trace-{}", index / 2),
            user: index.is_multiple_of(2).then(|| format!("u{}", index % 3)),
            tags: vec![format!("tag{}", index % 2), "all".to_owned()],
            attempts: Vec::new(),
        }
    }

    /// `value` with every float rounded to 9 significant digits.
    fn rounded(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Number(number) if number.is_f64() => {
                let float = number.as_f64().unwrap_or_default();
                serde_json::json!(format!("{float:.9e}"))
            }
            serde_json::Value::Array(items) => items.into_iter().map(rounded).collect(),
            serde_json::Value::Object(map) => map
                .into_iter()
                .map(|(key, value)| (key, rounded(value)))
                .collect(),
            other => other,
        }
    }

    fn lines(records: &[UsageRecord]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for record in records {
            serde_json::to_writer(&mut bytes, record).unwrap();
            bytes.push(b'\n');
        }
        bytes
    }

    async fn shipped_count(database: &Database) -> i64 {
        database
            .client()
            .await
            .unwrap()
            .query_one("SELECT count(*) FROM usage_records", &[])
            .await
            .unwrap()
            .get(0)
    }

    async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_shippers_on_the_same_cells_neither_deadlock_nor_lose_a_sum() {
        let db = TestDb::create().await;
        let dir = tempfile::tempdir().unwrap();
        let mut shippers = Vec::new();
        for name in ["a", "b"] {
            let database = Database::open(&db.url).await.unwrap();
            shippers.push(
                UsageShipper::open(
                    database,
                    dir.path().join(format!("{name}.jsonl")),
                    BufferLimits::default(),
                )
                .unwrap(),
            );
        }
        // Each replica's records fall in the same hours, projects, models, tokens and tags
        // (ids apart), handed in batches that reach PostgreSQL at the same time: both
        // transactions upsert the same rollup cells, each in its own order of arrival.
        let records: Vec<UsageRecord> = (0..2_000)
            .map(|index| {
                let mut one = record(index % 40);
                one.id = format!("race-{index}");
                one
            })
            .collect();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for (index, shipper) in shippers.iter().enumerate() {
            let mut mine: Vec<UsageRecord> =
                records.iter().skip(index).step_by(2).cloned().collect();
            if index == 1 {
                mine.reverse();
            }
            for chunk in mine.chunks(100) {
                shipper.hand(&lines(chunk));
            }
            tasks.push(tokio::spawn(Arc::clone(shipper).run(stopped.clone())));
        }
        wait_until("both shipped", async || {
            shippers
                .iter()
                .map(|shipper| shipper.shipped())
                .sum::<u64>()
                == 2_000
        })
        .await;
        assert_eq!(
            shippers
                .iter()
                .map(|shipper| shipper.outages())
                .sum::<u64>(),
            0
        );
        let client = Database::open(&db.url)
            .await
            .unwrap()
            .client()
            .await
            .unwrap();
        let row = client
            .query_one(
                "SELECT sum(calls)::bigint, sum(input_tokens)::bigint, sum(cost_usd) \
                 FROM usage_rollups WHERE dimension = 0",
                &[],
            )
            .await
            .unwrap();
        let (calls, input, cost): (i64, i64, f64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(calls, 2_000);
        assert_eq!(
            input,
            records.iter().map(|r| r.input_tokens as i64).sum::<i64>()
        );
        let expected: f64 = records.iter().map(|r| r.cost_usd).sum();
        assert!((cost - expected).abs() < 1e-6, "{cost} vs {expected}");
        stop.send(true).unwrap();
        for task in tasks {
            task.await.unwrap();
        }
        drop((shippers, client));
        db.drop_now().await;
    }

    #[tokio::test]
    async fn a_deadlock_is_a_lock_race_not_an_outage() {
        let db = TestDb::create().await;
        let (one, two) = (
            Database::open(&db.url).await.unwrap(),
            Database::open(&db.url).await.unwrap(),
        );
        let (mut first, mut second) = (
            super::super::OwnConnection::open(&db.url).await.unwrap(),
            super::super::OwnConnection::open(&db.url).await.unwrap(),
        );
        let setup = one.client().await.unwrap();
        setup
            .batch_execute("CREATE TABLE cells (id int PRIMARY KEY, n int); INSERT INTO cells VALUES (1, 0), (2, 0)")
            .await
            .unwrap();
        // Two transactions taking the same two rows in opposite orders: PostgreSQL aborts one.
        let (a, b) = (
            first.client().await.unwrap().transaction().await.unwrap(),
            second.client().await.unwrap().transaction().await.unwrap(),
        );
        a.execute("UPDATE cells SET n = 1 WHERE id = 1", &[])
            .await
            .unwrap();
        b.execute("UPDATE cells SET n = 1 WHERE id = 2", &[])
            .await
            .unwrap();
        let (left, right) = tokio::join!(
            a.execute("UPDATE cells SET n = 2 WHERE id = 2", &[]),
            b.execute("UPDATE cells SET n = 2 WHERE id = 1", &[])
        );
        let errors: Vec<DbError> = [left, right]
            .into_iter()
            .filter_map(|result| result.err().map(DbError::from))
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(is_lock_race(&errors[0]), "{}", errors[0]);
        let refused = setup
            .execute("SELECT * FROM nowhere", &[])
            .await
            .unwrap_err();
        assert!(!is_lock_race(&DbError::from(refused)));
        drop((a, b));
        drop((first, second, setup, one, two));
        db.drop_now().await;
    }

    /// A shipper with the default limits on a fresh database, running until
    /// [`Shipping::end`].
    struct Shipping {
        db: TestDb,
        database: Arc<Database>,
        _spool_dir: tempfile::TempDir,
        shipper: Arc<UsageShipper>,
        stop: tokio::sync::watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Shipping {
        async fn start() -> Shipping {
            let db = TestDb::create().await;
            let database = Database::open(&db.url).await.unwrap();
            let spool_dir = tempfile::tempdir().unwrap();
            let shipper = UsageShipper::open(
                Arc::clone(&database),
                spool_dir.path().join("spool.jsonl"),
                BufferLimits::default(),
            )
            .unwrap();
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(Arc::clone(&shipper).run(stopped));
            Shipping {
                db,
                database,
                _spool_dir: spool_dir,
                shipper,
                stop,
                task,
            }
        }

        /// Stops the shipper and drops the database.
        async fn end(self) {
            self.stop.send(true).unwrap();
            self.task.await.unwrap();
            drop((self.database, self.shipper));
            self.db.drop_now().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ships_once_and_answers_as_the_records_say() {
        let shipping = Shipping::start().await;
        let (database, shipper) = (
            Arc::clone(&shipping.database),
            Arc::clone(&shipping.shipper),
        );
        let records: Vec<UsageRecord> = (0..600).map(record).collect();
        // Records repeated within one batch (a re-sent batch joined to the one it repeats)
        // and a batch handed twice (a retry after an unanswered commit) count once.
        let mut first = records[..250].to_vec();
        first.extend_from_slice(&records[..10]);
        shipper.hand(&lines(&first));
        // The usage writer hands its records with their lines and the lines' lengths; the
        // rest are parsed. The newer chunk goes first, so the order shipped is not the order
        // of the calls, which pages and exports keep.
        for chunk in records[250..].chunks(250).rev() {
            let with_lengths = chunk
                .iter()
                .map(|record| {
                    (
                        record.clone(),
                        lines(std::slice::from_ref(record)).len() as u64,
                    )
                })
                .collect();
            shipper.hand_records(&lines(chunk), with_lengths);
        }
        shipper.hand(&lines(&records[..10]));
        wait_until("every record shipped", async || shipper.shipped() == 620).await;
        assert_eq!(shipped_count(&database).await, 600);
        // Each row's columns come from the record on its own line.
        let client = database.client().await.unwrap();
        let mismatched: i64 = client
            .query_one(
                "SELECT count(*) FROM usage_records
                 WHERE id <> line::jsonb->>'id' OR project_id <> line::jsonb->>'project_id'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(mismatched, 0);

        let history = PgUsageHistory::new(Arc::clone(&database), tokio::runtime::Handle::current());
        let expected = records.clone();
        tokio::task::spawn_blocking(move || {
            let filters = [
                Filter::default(),
                Filter {
                    projects: Some(HashSet::from(["p\"1".to_owned(), "p3".to_owned()])),
                    ..Filter::default()
                },
                Filter {
                    model: Some(String::new()),
                    outcome: Some(Outcome::Success),
                    ..Filter::default()
                },
                Filter {
                    tag: Some("tag1".to_owned()),
                    user: Some(String::new()),
                    from: Some(1_767_225_600 + 50 * 7 * 3600 + 1800),
                    to: Some(1_767_225_600 + 400 * 7 * 3600),
                    ..Filter::default()
                },
                Filter {
                    model: Some("modèle/ü".to_owned()),
                    token: Some("t/1".to_owned()),
                    ..Filter::default()
                },
            ];
            let groups = [
                GroupBy::Nothing,
                GroupBy::Project,
                GroupBy::Dimension(Dimension::Model),
                GroupBy::Dimension(Dimension::Tag),
                GroupBy::Time {
                    seconds: 86_400,
                    zone: chrono_tz::Europe::Rome,
                },
            ];
            for filter in &filters {
                for group in groups {
                    let report = history.report(filter.clone(), group).unwrap();
                    let mut brute = Aggregator::new(report.filter.clone(), group, 0);
                    for record in &expected {
                        brute.add(record);
                    }
                    // Sums of floats in another order differ in the last bits.
                    assert_eq!(
                        rounded(
                            serde_json::to_value(
                                report
                                    .groups
                                    .iter()
                                    .map(|(k, g)| (k.clone(), g.view()))
                                    .collect::<Vec<_>>()
                            )
                            .unwrap()
                        ),
                        rounded(
                            serde_json::to_value(
                                brute
                                    .groups
                                    .iter()
                                    .map(|(k, g)| (k.clone(), g.view()))
                                    .collect::<Vec<_>>()
                            )
                            .unwrap()
                        ),
                        "{filter:?} by {group:?}"
                    );
                    assert!(!report.groups.is_empty(), "{filter:?} matches something");
                }
                let matching: Vec<&UsageRecord> = expected
                    .iter()
                    .filter(|record| filter.matches_in_time(record))
                    .collect();
                let page = history.page(filter, 3, 7).unwrap();
                let newest_first: Vec<&str> = matching
                    .iter()
                    .rev()
                    .skip(3)
                    .take(7)
                    .map(|r| r.id.as_str())
                    .collect();
                assert_eq!(
                    page.records
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>(),
                    newest_first
                );
                assert_eq!(page.has_more, matching.len() > 10);
                let mut exported = Vec::new();
                let given = history
                    .export(filter, &mut |record, line| {
                        assert_eq!(line, serde_json::to_vec(record).unwrap().as_slice());
                        exported.push(record.id.clone());
                        true
                    })
                    .unwrap();
                assert_eq!(given as usize, matching.len());
                assert_eq!(
                    exported,
                    matching.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
                );
            }
            let trace = history.find_trace("trace-7").unwrap();
            assert_eq!(
                trace.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                ["r14", "r15"]
            );
            assert!(history.find_trace("trace-none").unwrap().is_empty());
        })
        .await
        .unwrap();
        // Reports of one dimension read the rollups, not the records: with the records
        // gone they still answer; a report of two dimensions reads records and finds none.
        let client = database.client().await.unwrap();
        client
            .batch_execute("TRUNCATE usage_records")
            .await
            .unwrap();
        let history = PgUsageHistory::new(Arc::clone(&database), tokio::runtime::Handle::current());
        let (one, two) = tokio::task::spawn_blocking(move || {
            let by_model = history
                .report(Filter::default(), GroupBy::Dimension(Dimension::Model))
                .unwrap();
            let two_dimensions = Filter {
                token: Some("t/1".to_owned()),
                ..Filter::default()
            };
            let by_model_of_token = history
                .report(two_dimensions, GroupBy::Dimension(Dimension::Model))
                .unwrap();
            (by_model, by_model_of_token)
        })
        .await
        .unwrap();
        let calls: u64 = one.groups.values().map(|group| group.total().calls).sum();
        assert_eq!(calls, 600);
        assert!(two.groups.is_empty());
        drop((database, shipper));
        shipping.end().await;
    }

    /// A TCP relay to the machine's PostgreSQL that a test can cut and restore.
    struct Relay {
        port: u16,
        up: Arc<AtomicBool>,
        links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    }

    impl Relay {
        async fn start() -> Relay {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let up = Arc::new(AtomicBool::new(true));
            let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
            let (accept_up, accept_links) = (Arc::clone(&up), Arc::clone(&links));
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !accept_up.load(Ordering::SeqCst) {
                        continue;
                    }
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    accept_links.lock().unwrap().push(link);
                }
            });
            Relay { port, up, links }
        }

        fn cut(&self) {
            self.up.store(false, Ordering::SeqCst);
            for link in self.links.lock().unwrap().drain(..) {
                link.abort();
            }
        }

        fn restore(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffers_in_memory_then_on_disk_and_replays_in_order() {
        let db = TestDb::create().await;
        let relay = Relay::start().await;
        let url = format!(
            "host=127.0.0.1 port={} user=postgres dbname={}",
            relay.port, db.name
        );
        let database = Database::open(&url).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool.jsonl");
        let records: Vec<UsageRecord> = (0..20).map(record).collect();
        let line_len = lines(&records[..1]).len() as u64;
        let limits = BufferLimits {
            memory_records: 5,
            // Room for about ten lines on disk.
            spool_bytes: line_len * 10 + line_len / 2,
        };
        let shipper = UsageShipper::open(Arc::clone(&database), spool.clone(), limits).unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(Arc::clone(&shipper).run(stopped));
        shipper.hand(&lines(&records[..2]));
        wait_until("the first two shipped", async || shipper.shipped() == 2).await;
        assert_eq!(shipper.state(), ShipperState::Ok);

        relay.cut();
        for record in &records[2..6] {
            shipper.hand(&lines(std::slice::from_ref(record)));
        }
        wait_until("the cut noticed", async || {
            shipper.state() == ShipperState::BufferingInMemory
        })
        .await;
        assert_eq!(shipper.waiting(), (4, 0));
        let mut refused_before_any_loss = false;
        for record in &records[6..] {
            shipper.hand(&lines(std::slice::from_ref(record)));
            refused_before_any_loss |= shipper.is_full() && shipper.dropped() == 0;
        }
        assert!(
            refused_before_any_loss,
            "calls are refused while there is still room for those under way"
        );
        // 5 in memory, then about ten spooled, then no room: refused from there.
        let (in_memory, spooled) = shipper.waiting();
        assert_eq!(in_memory, 5);
        assert!((9..=11).contains(&spooled), "{spooled} spooled");
        assert!(shipper.is_full());
        assert_eq!(shipper.state(), ShipperState::Full);
        assert_eq!(shipper.dropped(), 18 - 5 - spooled);
        assert!(std::fs::metadata(&spool).unwrap().len() > 0);

        relay.restore();
        let kept = 2 + 5 + spooled as usize;
        wait_until("the buffers replayed", async || {
            shipper.shipped() == kept as u64
        })
        .await;
        assert!(!shipper.is_full());
        assert_eq!(shipper.state(), ShipperState::Ok);
        assert_eq!(std::fs::metadata(&spool).unwrap().len(), 0);
        let ids: Vec<String> = database
            .client()
            .await
            .unwrap()
            .query("SELECT id FROM usage_records ORDER BY seq", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let expected: Vec<String> = records[..kept].iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, expected, "every kept record, in order");
        stop.send(true).unwrap();
        task.await.unwrap();
        drop(database);
        db.drop_now().await;
    }

    /// Figures for ARCHITECTURE.md: `ROUTERLY_BENCH_RECORDS=1000000 cargo test -p
    /// routerly-server --lib -- --ignored --nocapture reports_over_many_records`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement, minutes long"]
    async fn reports_over_many_records() {
        let count: usize = std::env::var("ROUTERLY_BENCH_RECORDS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(100_000);
        let db = TestDb::create().await;
        let database = Database::open(&db.url).await.unwrap();
        let start = Utc::now().timestamp() - 30 * 86_400;
        let mut connection = super::super::OwnConnection::lazy(&db.url);
        let client = connection.client().await.unwrap();
        let shipping = std::time::Instant::now();
        for batch in 0..count.div_ceil(SHIP_BATCH) {
            let lines: Vec<String> = (batch * SHIP_BATCH..((batch + 1) * SHIP_BATCH).min(count))
                .map(|index| {
                    let mut record = record(index);
                    record.id = format!("bench-{index}");
                    record.timestamp = Utc
                        .timestamp_opt(start + (index as i64 * 30 * 86_400) / count as i64, 0)
                        .unwrap();
                    record.project_id = format!("p{}", index % 20);
                    record.model_id = Some(format!("m{}", index % 8));
                    record.token_id = format!("t{}", index % 60);
                    record.user = Some(format!("u{}", index % 200));
                    record.tags = vec![format!("tag{}", index % 11)];
                    serde_json::to_string(&record).unwrap()
                })
                .collect();
            insert(client, &lines).await.unwrap();
        }
        let shipped = shipping.elapsed();
        let cells: i64 = client
            .query_one("SELECT count(*) FROM usage_rollups", &[])
            .await
            .unwrap()
            .get(0);
        let history = PgUsageHistory::new(Arc::clone(&database), tokio::runtime::Handle::current());
        let timings = tokio::task::spawn_blocking(move || {
            let time = |name: &str, filter: Filter, group: GroupBy| {
                let started = std::time::Instant::now();
                let report = history.report(filter, group).unwrap();
                assert!(!report.groups.is_empty());
                format!("{name}: {:?}", started.elapsed())
            };
            let month = Filter::default();
            let week = Filter {
                from: Some(Utc::now().timestamp() - 7 * 86_400),
                ..Filter::default()
            };
            let mut lines = vec![
                time("summary, 30 days", month.clone(), GroupBy::Nothing),
                time(
                    "by model, 30 days",
                    month.clone(),
                    GroupBy::Dimension(Dimension::Model),
                ),
                time(
                    "by user, 30 days",
                    month.clone(),
                    GroupBy::Dimension(Dimension::User),
                ),
                time(
                    "by tag, 7 days",
                    week.clone(),
                    GroupBy::Dimension(Dimension::Tag),
                ),
                time(
                    "daily timeline (Europe/Rome), 30 days",
                    month.clone(),
                    GroupBy::Time {
                        seconds: 86_400,
                        zone: chrono_tz::Europe::Rome,
                    },
                ),
                time(
                    "by model of one token (two dimensions: raw records), 30 days",
                    Filter {
                        token: Some("t7".to_owned()),
                        ..month.clone()
                    },
                    GroupBy::Dimension(Dimension::Model),
                ),
            ];
            let started = std::time::Instant::now();
            let mut brute = Aggregator::new(month.clone(), GroupBy::Nothing, 0);
            history
                .lines(&month, "ASC", 0, None, &mut |record, _| {
                    brute.add(&record);
                    true
                })
                .unwrap();
            lines.push(format!(
                "summary, 30 days, aggregating every record (before rollups): {:?}",
                started.elapsed()
            ));
            lines
        })
        .await
        .unwrap();
        eprintln!(
            "{count} records shipped in {shipped:?} ({cells} rollup cells)\n{}",
            timings.join("\n")
        );
        drop((database, connection));
        db.drop_now().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_is_left_at_shutdown_is_spooled_for_the_next_start() {
        let db = TestDb::create().await;
        let relay = Relay::start().await;
        let url = format!(
            "host=127.0.0.1 port={} user=postgres dbname={}",
            relay.port, db.name
        );
        let database = Database::open(&url).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool.jsonl");
        let records: Vec<UsageRecord> = (0..8).map(record).collect();
        let limits = BufferLimits {
            memory_records: 3,
            spool_bytes: 1 << 20,
        };
        let shipper = UsageShipper::open(Arc::clone(&database), spool.clone(), limits).unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(Arc::clone(&shipper).run(stopped));
        relay.cut();
        for record in &records {
            shipper.hand(&lines(std::slice::from_ref(record)));
        }
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(shipper.shipped(), 0);
        assert_eq!(std::fs::read(&spool).unwrap(), lines(&records));

        relay.restore();
        let shipper = UsageShipper::open(Arc::clone(&database), spool.clone(), limits).unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(Arc::clone(&shipper).run(stopped));
        wait_until("the spool sent", async || shipper.shipped() == 8).await;
        let ids: Vec<String> = database
            .client()
            .await
            .unwrap()
            .query("SELECT id FROM usage_records ORDER BY seq", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(
            ids,
            records.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
        );
        stop.send(true).unwrap();
        task.await.unwrap();
        drop(database);
        db.drop_now().await;
    }

    /// A caller's `user` field holding NUL (which no PostgreSQL text can) must not make its
    /// batch fail for ever, holding back every record after it: the columns and rollup cells
    /// get U+FFFD, the line keeps the value exactly. Also when the batch goes again as an
    /// INSERT (a record sent twice), and when two values differ only there (one cell).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nul_in_a_user_field_is_stored_without_holding_back_the_batch() {
        let shipping = Shipping::start().await;
        let (database, shipper) = (
            Arc::clone(&shipping.database),
            Arc::clone(&shipping.shipper),
        );
        let mut records: Vec<UsageRecord> = (0..4).map(record).collect();
        records[1].user = Some("a\0b".to_owned());
        records[2].user = Some("a\u{FFFD}b".to_owned());
        records[2].project_id = records[1].project_id.clone();
        records[2].timestamp = records[1].timestamp;
        records[2].outcome = records[1].outcome;
        let with_records = records.iter().map(|record| (record.clone(), 0)).collect();
        shipper.hand_records(&lines(&records), with_records);
        // Sent again: the copy breaks the key and the batch goes as an insert.
        shipper.hand(&lines(&records[1..2]));
        wait_until("every record shipped", async || shipper.shipped() == 5).await;
        let client = database.client().await.unwrap();
        let rows = client
            .query(
                "SELECT user_field, line FROM usage_records WHERE id = ANY($1) ORDER BY seq",
                &[&vec!["r1", "r2"]],
            )
            .await
            .unwrap();
        let stored: Vec<(String, String)> =
            rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        assert_eq!(stored[0].0, "a\u{FFFD}b");
        assert!(
            stored[0].1.contains(r#""user":"a\u0000b""#),
            "{}",
            stored[0].1
        );
        assert_eq!(stored[1].0, "a\u{FFFD}b");
        let calls: i64 = client
            .query_one(
                "SELECT sum(calls)::int8 FROM usage_rollups WHERE dimension = $1 AND value = $2",
                &[&dimension_code(Dimension::User), &"a\u{FFFD}b"],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(calls, 2);
        drop((database, shipper));
        shipping.end().await;
    }
}
