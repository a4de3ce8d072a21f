//! Routing traces: for each call that reached routing, the candidates, each policy's scores
//! and exclusions, the final ranking and every attempt with its outcome and timing.
//!
//! A [`LiveTrace`] travels with the call's record (also into a stream relay) and is handed
//! to the [`TraceStore`] when the last copy is dropped, that is when the call is over. The
//! store writes it as its JSON line at once, keeps recent lines in memory and appends them,
//! off the request path, to hourly files `data/traces/traces-YYYYMMDDHH.jsonl`, bounded in
//! age and total size. A trace id is a UUIDv7, whose timestamp names the file to look in, so
//! reading one never scans more than two files. With PostgreSQL the writer sends them to
//! its `traces` table instead (by id, kept as long), so any replica finds any replica's
//! trace; a batch the database refuses goes to the files, where this replica still finds it.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use routerly_core::json_text;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::store::pg::{Database, DbError};

/// Traces kept in memory for `GET /api/traces/{id}` without touching the disk.
///
/// They are kept as their JSON lines, one allocation each, not as [`Trace`]s. A trace is a
/// dozen small allocations; two thousand of them, each freed two thousand calls after it
/// was made, handed every call's own small allocations memory gone cold from the caches,
/// and calls were about a tenth slower for it (requests per second at concurrency 64
/// against the same build keeping 16).
const MEMORY_CAPACITY: usize = 2048;
/// Traces queued for the writer; beyond this the newest are kept in memory only.
const QUEUE_CAPACITY: usize = 8192;
/// Trace files older than this are deleted.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The trace directory is kept under this size, oldest files deleted first.
const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// One routing decision and what came of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The call's trace id (the usage record's `trace_id`, the `x-routerly-trace-id` header).
    pub id: String,
    /// The project.
    pub project_id: String,
    /// When the call arrived.
    pub created_at: DateTime<Utc>,
    /// The model name the client asked for.
    pub requested_model: String,
    /// Candidates after the token's models and the model-level budgets, in configured order.
    pub candidates: Vec<String>,
    /// Candidates dropped before the policies because their own limits had no room.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_by_budget: Vec<String>,
    /// Each enabled policy, in order.
    pub policies: Vec<PolicyTrace>,
    /// The final order (the fallback order), best first, with the weighted mean.
    pub ranking: Vec<RankedModel>,
    /// Whether the order is an even shuffle (every policy left out).
    pub shuffled: bool,
    /// Microseconds spent choosing.
    pub routing_us: u64,
    /// Every attempt, retries included.
    pub attempts: Vec<AttemptTrace>,
    /// The model that served, if any.
    pub served_by: Option<String>,
    /// How the call ended (`success`, `error`, `timeout`, …), once it has.
    pub outcome: Option<Cow<'static, str>>,
    /// The status returned to the client.
    pub status: Option<u16>,
}

/// One policy's part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyTrace {
    /// The policy type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `weighted`, `uniform` (left out of the mean), or `failed` (skipped).
    pub status: String,
    /// Its weight in the mean when it counted.
    pub weight: Option<u32>,
    /// Score per candidate.
    pub scores: Vec<ModelScore>,
    /// Why it failed, or what it decided (the intent, the routing model's reasons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Microseconds it took.
    pub duration_us: u64,
}

/// A candidate's score from one policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScore {
    /// The model.
    pub model: String,
    /// Its score.
    pub score: f64,
    /// Why the policy excluded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
}

/// A place in the final ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedModel {
    /// The model.
    pub model: String,
    /// The weighted mean, when any policy counted.
    pub score: Option<f64>,
}

/// One try of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptTrace {
    /// The model.
    pub model: String,
    /// 0 for the first try of this model, 1 for its first retry, …
    pub retry: u32,
    /// Backoff waited before this try, in milliseconds.
    pub waited_ms: f64,
    /// When it began, in milliseconds after the call arrived.
    pub started_ms: f64,
    /// How long it took until an answer or a failure, in milliseconds.
    pub duration_ms: Option<f64>,
    /// `success`, `failed`, or `rejected` (the provider refused the request itself); one of
    /// a few names, so a live trace borrows it rather than allocating it for every call.
    pub outcome: Cow<'static, str>,
    /// The provider's status, when it answered.
    pub status: Option<u16>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the translation for this model left out (the `x-routerly-dropped` header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

impl Trace {
    /// The trace of a call that arrived at `created_at`.
    pub fn new(id: &str, project_id: &str, requested_model: &str) -> Self {
        Trace {
            id: id.to_owned(),
            project_id: project_id.to_owned(),
            created_at: Utc::now(),
            requested_model: requested_model.to_owned(),
            candidates: Vec::new(),
            dropped_by_budget: Vec::new(),
            policies: Vec::new(),
            ranking: Vec::new(),
            shuffled: false,
            routing_us: 0,
            attempts: Vec::new(),
            served_by: None,
            outcome: None,
            status: None,
        }
    }
}

impl Trace {
    /// Appends the trace's JSON to `out`: the bytes its `Serialize` writes (a test compares
    /// them), with member names written as they are rather than escaped for every trace and
    /// attempt (the trace writer's serialization was most of a call's trace cost).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        text(out, b"{\"id\":", &self.id);
        text(out, b",\"project_id\":", &self.project_id);
        out.extend_from_slice(b",\"created_at\":");
        json_text::timestamp(out, &self.created_at);
        text(out, b",\"requested_model\":", &self.requested_model);
        strings(out, b",\"candidates\":", &self.candidates);
        if !self.dropped_by_budget.is_empty() {
            strings(out, b",\"dropped_by_budget\":", &self.dropped_by_budget);
        }
        list(out, b",\"policies\":", &self.policies);
        list(out, b",\"ranking\":", &self.ranking);
        member(out, b",\"shuffled\":", &self.shuffled);
        member(out, b",\"routing_us\":", &self.routing_us);
        out.extend_from_slice(b",\"attempts\":[");
        for (index, attempt) in self.attempts.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            text(out, b"{\"model\":", &attempt.model);
            member(out, b",\"retry\":", &attempt.retry);
            member(out, b",\"waited_ms\":", &attempt.waited_ms);
            member(out, b",\"started_ms\":", &attempt.started_ms);
            member(out, b",\"duration_ms\":", &attempt.duration_ms);
            text(out, b",\"outcome\":", &attempt.outcome);
            member(out, b",\"status\":", &attempt.status);
            if let Some(error) = &attempt.error {
                text(out, b",\"error\":", error);
            }
            if !attempt.dropped.is_empty() {
                strings(out, b",\"dropped\":", &attempt.dropped);
            }
            out.push(b'}');
        }
        out.push(b']');
        out.extend_from_slice(b",\"served_by\":");
        json_text::optional_string(out, self.served_by.as_deref());
        out.extend_from_slice(b",\"outcome\":");
        json_text::optional_string(out, self.outcome.as_deref());
        member(out, b",\"status\":", &self.status);
        out.push(b'}');
    }
}

/// Appends `name` and `values` as JSON: `[]` without serde when empty (a call no policy
/// ranked).
fn list<T: Serialize>(out: &mut Vec<u8>, name: &[u8], values: &[T]) {
    if values.is_empty() {
        out.extend_from_slice(name);
        out.extend_from_slice(b"[]");
    } else {
        member(out, name, values);
    }
}

/// Appends `name` and `values` as a JSON array of strings.
fn strings(out: &mut Vec<u8>, name: &[u8], values: &[String]) {
    out.extend_from_slice(name);
    out.push(b'[');
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        json_text::string(out, value);
    }
    out.push(b']');
}

/// Appends `name` (the member's name, quoted, with its colon) and `value` as JSON.
fn member<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &[u8], value: &T) {
    out.extend_from_slice(name);
    serde_json::to_writer(&mut *out, value).expect("a trace's values serialize");
}

/// Appends `name` and the string `value` (see `json_text`).
fn text(out: &mut Vec<u8>, name: &[u8], value: &str) {
    out.extend_from_slice(name);
    json_text::string(out, value);
}

/// A trace being written by a call; shared by the call's record and its stream relay.
pub struct LiveTrace {
    started: Instant,
    trace: Mutex<Trace>,
    pending_wait: Mutex<Duration>,
    store: Arc<TraceStore>,
}

impl std::fmt::Debug for LiveTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTrace").finish_non_exhaustive()
    }
}

impl LiveTrace {
    /// Starts `trace` for a call that arrived at `started`, to be kept by `store`.
    pub fn new(trace: Trace, started: Instant, store: Arc<TraceStore>) -> Self {
        LiveTrace {
            started,
            trace: Mutex::new(trace),
            pending_wait: Mutex::new(Duration::ZERO),
            store,
        }
    }

    /// Edits the trace.
    pub fn edit<T>(&self, edit: impl FnOnce(&mut Trace) -> T) -> T {
        edit(&mut self.trace.lock().expect("trace lock is never poisoned"))
    }

    /// Notes the backoff waited before the next attempt.
    pub fn waited(&self, delay: Duration) {
        *self
            .pending_wait
            .lock()
            .expect("trace lock is never poisoned") = delay;
    }

    /// Notes that an attempt on `model_id` began at `at`.
    pub fn begin_attempt(&self, model_id: &str, at: Instant) {
        let waited = std::mem::take(
            &mut *self
                .pending_wait
                .lock()
                .expect("trace lock is never poisoned"),
        );
        let started_ms = millis(at.saturating_duration_since(self.started));
        self.edit(|trace| {
            let retry = trace
                .attempts
                .iter()
                .rev()
                .take_while(|attempt| attempt.model == model_id)
                .count() as u32;
            trace.attempts.push(AttemptTrace {
                model: model_id.to_owned(),
                retry,
                waited_ms: millis(waited),
                started_ms,
                duration_ms: None,
                outcome: Cow::Borrowed("pending"),
                status: None,
                error: None,
                dropped: Vec::new(),
            });
        });
    }

    /// Notes what the translation for the attempt in flight left out.
    pub fn dropped(&self, dropped: &[String]) {
        self.edit(|trace| {
            if let Some(attempt) = trace
                .attempts
                .iter_mut()
                .rev()
                .find(|attempt| attempt.outcome == "pending")
            {
                attempt.dropped = dropped.to_vec();
            }
        });
    }

    /// Ends the attempt in flight with `outcome`.
    pub fn end_attempt(&self, outcome: &'static str, status: Option<u16>, error: Option<String>) {
        let now_ms = millis(self.started.elapsed());
        self.edit(|trace| {
            if let Some(attempt) = trace
                .attempts
                .iter_mut()
                .rev()
                .find(|attempt| attempt.outcome == "pending")
            {
                attempt.duration_ms = Some(now_ms - attempt.started_ms);
                attempt.outcome = Cow::Borrowed(outcome);
                attempt.status = status;
                attempt.error = error;
            }
        });
    }

    /// Notes how the call ended.
    pub fn finish(&self, outcome: &'static str, status: u16, served_by: Option<&str>) {
        self.edit(|trace| {
            if let Some(served_by) = served_by
                && outcome == "success"
                && let Some(attempt) = trace
                    .attempts
                    .iter_mut()
                    .rev()
                    .find(|attempt| attempt.outcome == "pending" && attempt.model == served_by)
            {
                attempt.outcome = Cow::Borrowed("success");
                attempt.status = Some(200);
            }
            for attempt in &mut trace.attempts {
                if attempt.outcome == "pending" {
                    attempt.outcome = Cow::Borrowed(outcome);
                }
            }
            trace.served_by = (outcome == "success")
                .then(|| served_by.map(str::to_owned))
                .flatten();
            trace.outcome = Some(Cow::Borrowed(outcome));
            trace.status = Some(status);
        });
    }
}

impl Drop for LiveTrace {
    fn drop(&mut self) {
        let trace = std::mem::take(&mut *self.trace.lock().expect("trace lock is never poisoned"));
        self.store.keep(trace);
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Recent traces in memory and on disk (or in PostgreSQL).
pub struct TraceStore {
    dir: PathBuf,
    database: Option<Arc<Database>>,
    recent: Mutex<Recent>,
    sender: Option<mpsc::Sender<Arc<Kept>>>,
}

/// The newest traces by id (a UUID's 128 bits), and their ids oldest first.
#[derive(Default)]
struct Recent {
    by_id: HashMap<u128, Arc<Kept>, BuildHasherDefault<IdHasher>>,
    order: VecDeque<u128>,
}

/// A finished trace as the store keeps it and the writer writes it: its id, its project's
/// id and its JSON line, in one allocation (two with its `Arc`, where a [`Trace`] is a dozen).
struct Kept {
    text: Box<[u8]>,
    /// Where the id ends and the project's id ends in `text`; the line follows.
    id_end: usize,
    project_end: usize,
}

impl Kept {
    fn new(trace: &Trace) -> Kept {
        thread_local! {
            /// Where a trace is written before it is copied to an allocation of its size.
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let text = SCRATCH.with_borrow_mut(|text| {
            text.clear();
            text.extend_from_slice(trace.id.as_bytes());
            text.extend_from_slice(trace.project_id.as_bytes());
            trace.write_json(text);
            let kept = Box::from(text.as_slice());
            if text.capacity() > 64 * 1024 {
                // A rare large trace does not keep its room for the thread's life.
                *text = Vec::new();
            }
            kept
        });
        Kept {
            text,
            id_end: trace.id.len(),
            project_end: trace.id.len() + trace.project_id.len(),
        }
    }

    fn id(&self) -> &[u8] {
        &self.text[..self.id_end]
    }

    fn project_id(&self) -> &[u8] {
        &self.text[self.id_end..self.project_end]
    }

    fn line(&self) -> &[u8] {
        &self.text[self.project_end..]
    }

    /// The trace, read back from its line (as from a file).
    fn trace(&self) -> Option<Arc<Trace>> {
        serde_json::from_slice(self.line()).ok().map(Arc::new)
    }
}

/// The hash of a trace id: its low 64 bits, which in a UUIDv7 are random (a keyed hash of
/// them would add nothing but instructions on every call).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = id as u64;
    }
}

/// The key of trace `id` in memory; `None` for an id that is not a UUID.
fn memory_key(id: &str) -> Option<u128> {
    uuid::Uuid::try_parse(id).ok().map(|uuid| uuid.as_u128())
}

impl TraceStore {
    /// A store under `dir` whose writer runs on the current runtime (none outside one:
    /// traces then stay in memory only).
    pub fn open(dir: PathBuf) -> Arc<Self> {
        TraceStore::open_shared(dir, None)
    }

    /// [`TraceStore::open`], writing to `database` when there is one (`dir` then holds
    /// only what the database refused).
    pub fn open_shared(dir: PathBuf, database: Option<Arc<Database>>) -> Arc<Self> {
        let sender = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            runtime.spawn(write_traces(dir.clone(), database.clone(), receiver));
            sender
        });
        Arc::new(TraceStore {
            dir,
            database,
            recent: Mutex::new(Recent::default()),
            sender,
        })
    }

    /// Keeps a finished trace: in memory at once, on disk soon.
    pub fn keep(&self, trace: Trace) {
        if trace.id.is_empty() {
            return;
        }
        let key = memory_key(&trace.id);
        let trace = Arc::new(Kept::new(&trace));
        if let Some(key) = key {
            let mut recent = self
                .recent
                .lock()
                .expect("trace store lock is never poisoned");
            if recent.by_id.insert(key, Arc::clone(&trace)).is_none() {
                recent.order.push_back(key);
            }
            while recent.order.len() > MEMORY_CAPACITY {
                if let Some(oldest) = recent.order.pop_front() {
                    recent.by_id.remove(&oldest);
                }
            }
        }
        if let Some(sender) = &self.sender
            && sender.try_send(trace).is_err()
        {
            tracing::warn!("the trace queue is full; a trace is kept in memory only");
        }
    }

    /// The trace `id`, from memory or, off the request path, from its file.
    pub async fn get(&self, id: &str) -> Option<Arc<Trace>> {
        let kept = memory_key(id).and_then(|key| {
            self.recent
                .lock()
                .expect("trace store lock is never poisoned")
                .by_id
                .get(&key)
                .cloned()
        });
        if let Some(trace) = kept.and_then(|kept| kept.trace()) {
            return Some(trace);
        }
        if let Some(database) = &self.database
            && let Some(trace) = read_shared(database, id).await
        {
            return Some(Arc::new(trace));
        }
        let created = uuid_time(id)?;
        let dir = self.dir.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || {
            // Written when the call ended: the hour it began, or the next.
            [created, created + chrono::Duration::hours(1)]
                .into_iter()
                .find_map(|hour| find_in(&dir.join(file_name(hour)), &id))
        })
        .await
        .ok()
        .flatten()
        .map(Arc::new)
    }

    /// The newest traces of `project_id` in memory, newest first.
    pub fn recent_of(&self, project_id: &str, limit: usize) -> Vec<Arc<Trace>> {
        let kept: Vec<Arc<Kept>> = {
            let recent = self
                .recent
                .lock()
                .expect("trace store lock is never poisoned");
            recent
                .order
                .iter()
                .rev()
                .filter_map(|id| recent.by_id.get(id))
                .filter(|kept| kept.project_id() == project_id.as_bytes())
                .take(limit)
                .cloned()
                .collect()
        };
        // Read back outside the lock, which calls take.
        kept.iter().filter_map(|kept| kept.trace()).collect()
    }
}

/// The trace `id` in PostgreSQL.
async fn read_shared(database: &Database, id: &str) -> Option<Trace> {
    let client = database.client().await.ok()?;
    let row = client
        .query_opt("SELECT line FROM traces WHERE id = $1", &[&id])
        .await
        .map_err(|error| tracing::warn!(error = %DbError::from(error), "cannot read a trace from PostgreSQL"))
        .ok()??;
    serde_json::from_str(row.get::<_, &str>(0)).ok()
}

/// Sends serialized traces (`ids[i]` is the trace on line `i` of `lines`) in one statement;
/// every week's end is pruned on `prune`.
async fn write_shared(
    database: &Database,
    ids: &[String],
    lines: &[u8],
    prune: bool,
) -> Result<(), DbError> {
    let lines: Vec<&str> = std::str::from_utf8(lines)
        .map_err(|error| DbError::Document {
            version: 0,
            message: error.to_string(),
        })?
        .lines()
        .collect();
    let client = database.client().await?;
    // Copied in (binary COPY, the key checking each id as it goes in) unless the batch was
    // sent before, when the look-up before each row that ON CONFLICT makes is needed.
    match copy_traces(&client, ids, &lines).await {
        Err(DbError::Postgres(error)) if error.code().is_some() => {
            client
                .execute(
                    "INSERT INTO traces (id, line) SELECT * FROM unnest($1::text[], $2::text[])
                     ON CONFLICT (id) DO NOTHING",
                    &[&ids, &lines],
                )
                .await?;
        }
        sent => {
            sent?;
        }
    }
    if prune {
        let oldest = Utc::now() - chrono::Duration::from_std(MAX_AGE).expect("a week fits");
        client
            .execute("DELETE FROM traces WHERE id < $1", &[&first_id_at(oldest)])
            .await?;
    }
    Ok(())
}

/// Copies the traces `lines` (with their `ids`) into `traces`: one statement, all or none.
async fn copy_traces(
    client: &tokio_postgres::Client,
    ids: &[String],
    lines: &[&str],
) -> Result<(), DbError> {
    use tokio_postgres::types::{ToSql, Type};
    let rows = ids
        .iter()
        .zip(lines)
        .map(|(id, line)| -> [&(dyn ToSql + Sync); 2] { [id, line] });
    let data = crate::store::pg::binary_copy(&[Type::TEXT, Type::TEXT], rows)?;
    crate::store::pg::copy_in(client, "COPY traces (id, line) FROM STDIN BINARY", data).await?;
    Ok(())
}

/// The least UUIDv7, as text, of the millisecond `at`: trace ids are UUIDv7s, whose text
/// sorts by time under the "C" collation of `traces.id`, so the key finds those older.
fn first_id_at(at: DateTime<Utc>) -> String {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        millis >> 16,
        millis & 0xffff
    )
}

/// The time in a UUIDv7.
fn uuid_time(id: &str) -> Option<DateTime<Utc>> {
    let uuid = uuid::Uuid::parse_str(id).ok()?;
    let (seconds, nanos) = uuid.get_timestamp()?.to_unix();
    Utc.timestamp_opt(seconds as i64, nanos).single()
}

fn file_name(time: DateTime<Utc>) -> String {
    format!("traces-{}.jsonl", time.format("%Y%m%d%H"))
}

fn find_in(path: &Path, id: &str) -> Option<Trace> {
    let file = std::fs::File::open(path).ok()?;
    let needle = format!("{{\"id\":\"{id}\"");
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|line| line.starts_with(&needle))
        .find_map(|line| serde_json::from_str(&line).ok())
}

/// The shortest time between two writes of the trace writer: under load one write carries
/// the traces of this interval (the newest are in memory meanwhile).
const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(100);
/// Serialized traces beyond this wait in the channel (and then stay in memory only).
const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;

/// How often a writer with traces pending takes those queued meanwhile: the queue holds
/// this interval's traces, not a whole write's.
const GATHER_INTERVAL: Duration = Duration::from_millis(10);
/// Traces gathered between two yields to the runtime.
const GATHER_STEP: usize = 64;

/// The writer task: gathers the traces' lines (idle, the first at once; then those queued every
/// [`GATHER_INTERVAL`], a few dozen at a time between the other tasks of its core, so a
/// call's trace wakes no task under load), appends them to the hourly file at most once
/// per [`MIN_WRITE_INTERVAL`], and prunes old files.
async fn write_traces(
    dir: PathBuf,
    database: Option<Arc<Database>>,
    mut receiver: mpsc::Receiver<Arc<Kept>>,
) {
    let mut batch = Vec::new();
    let mut pending = Vec::new();
    let mut pending_ids = Vec::new();
    let mut file = HourFile::default();
    let mut last_prune = Instant::now() - Duration::from_secs(3600);
    let mut next_write = tokio::time::Instant::now();
    let mut next_gather = next_write;
    // One timer for the writer's life (as the usage writer's).
    let mut wake = routerly_providers::Deadline::new(next_write);
    let mut open = true;
    let keep = |trace: Arc<Kept>, pending: &mut Vec<u8>, pending_ids: &mut Vec<String>| {
        pending.extend_from_slice(trace.line());
        pending.push(b'\n');
        if database.is_some() {
            pending_ids.push(String::from_utf8_lossy(trace.id()).into_owned());
        }
    };
    loop {
        if !pending.is_empty() && (!open || tokio::time::Instant::now() >= next_write) {
            next_write = tokio::time::Instant::now() + MIN_WRITE_INTERVAL;
            let prune = last_prune.elapsed() > Duration::from_secs(60);
            if prune {
                last_prune = Instant::now();
            }
            if let Some(database) = &database {
                let ids = std::mem::take(&mut pending_ids);
                match write_shared(database, &ids, &pending, prune).await {
                    Ok(()) => {
                        pending.clear();
                        continue;
                    }
                    // Kept in the files instead, where this replica still finds them.
                    Err(error) => {
                        tracing::warn!(%error, "cannot send routing traces to PostgreSQL; writing them to data/traces")
                    }
                }
            }
            let dir_for_write = dir.clone();
            let mut hour_file = std::mem::take(&mut file);
            let bytes = std::mem::take(&mut pending);
            let written = tokio::task::spawn_blocking(move || {
                let mut result = hour_file.append(&dir_for_write, &bytes);
                if prune && result.is_ok() {
                    result = prune_dir(&dir_for_write, MAX_AGE, MAX_BYTES);
                }
                (hour_file, bytes, result)
            })
            .await;
            match written {
                Ok((hour_file, mut bytes, result)) => {
                    file = hour_file;
                    if let Err(error) = result {
                        tracing::error!(%error, dir = %dir.display(), "cannot write routing traces");
                    }
                    bytes.clear();
                    pending = bytes;
                }
                Err(error) => tracing::error!(%error, "the trace writer task failed"),
            }
            continue;
        }
        if !open {
            break;
        }
        wake.set(next_write.min(next_gather));
        tokio::select! {
            received = receiver.recv_many(&mut batch, GATHER_STEP), if pending.is_empty() => {
                if received == 0 {
                    open = false;
                }
                for trace in batch.drain(..) {
                    keep(trace, &mut pending, &mut pending_ids);
                }
                next_gather = tokio::time::Instant::now() + GATHER_INTERVAL;
            }
            () = wake.expired(), if !pending.is_empty() => {
                let mut taken = 0;
                while pending.len() < MAX_PENDING_BYTES {
                    match receiver.try_recv() {
                        Ok(trace) => keep(trace, &mut pending, &mut pending_ids),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                    taken += 1;
                    if taken % GATHER_STEP == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                next_gather = tokio::time::Instant::now() + GATHER_INTERVAL;
            }
        }
    }
}

/// The hourly trace file the writer appends to, kept open between writes.
#[derive(Default)]
struct HourFile {
    open: Option<(String, std::fs::File)>,
}

impl HourFile {
    /// Appends `bytes` (whole lines) to the file of the current hour.
    fn append(&mut self, dir: &Path, bytes: &[u8]) -> io::Result<()> {
        let name = file_name(Utc::now());
        let file = match &mut self.open {
            Some((open_name, file)) if *open_name == name && dir.join(&name).exists() => file,
            _ => {
                let file = crate::store::files::open_private_append(&dir.join(&name))?;
                &mut self.open.insert((name, file)).1
            }
        };
        let written = file.write_all(bytes);
        if written.is_err() {
            self.open = None;
        }
        written
    }
}

/// Deletes trace files older than `max_age`, then the oldest until the rest fit `max_bytes`.
pub fn prune_dir(dir: &Path, max_age: Duration, max_bytes: u64) -> io::Result<()> {
    let mut files: Vec<(String, u64, std::time::SystemTime)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("traces-") && name.ends_with(".jsonl")) {
            continue;
        }
        let metadata = entry.metadata()?;
        files.push((name, metadata.len(), metadata.modified()?));
    }
    files.sort();
    let now = std::time::SystemTime::now();
    let mut total: u64 = files.iter().map(|(_, size, _)| size).sum();
    for (name, size, modified) in &files {
        let too_old = now.duration_since(*modified).unwrap_or_default() > max_age;
        if too_old || total > max_bytes {
            std::fs::remove_file(dir.join(name))?;
            total -= size;
        }
    }
    Ok(())
}

/// `trace` as the management API shows it.
pub fn view(trace: &Trace) -> routerly_api::traces::TraceView {
    use routerly_api::traces::{
        AttemptTraceView, ModelScoreView, PolicyTraceView, RankedModelView, TraceView,
    };
    TraceView {
        id: trace.id.clone(),
        project_id: trace.project_id.clone(),
        created_at: trace.created_at,
        requested_model: trace.requested_model.clone(),
        candidates: trace.candidates.clone(),
        dropped_by_budget: trace.dropped_by_budget.clone(),
        policies: trace
            .policies
            .iter()
            .map(|policy| PolicyTraceView {
                kind: policy.kind.clone(),
                status: policy.status.clone(),
                weight: policy.weight,
                scores: policy
                    .scores
                    .iter()
                    .map(|score| ModelScoreView {
                        model: score.model.clone(),
                        score: score.score,
                        excluded: score.excluded.clone(),
                    })
                    .collect(),
                detail: policy.detail.clone(),
                duration_us: policy.duration_us,
            })
            .collect(),
        ranking: trace
            .ranking
            .iter()
            .map(|ranked| RankedModelView {
                model: ranked.model.clone(),
                score: ranked.score,
            })
            .collect(),
        shuffled: trace.shuffled,
        routing_us: trace.routing_us,
        attempts: trace
            .attempts
            .iter()
            .map(|attempt| AttemptTraceView {
                model: attempt.model.clone(),
                retry: attempt.retry,
                waited_ms: attempt.waited_ms,
                started_ms: attempt.started_ms,
                duration_ms: attempt.duration_ms,
                outcome: attempt.outcome.clone().into_owned(),
                status: attempt.status,
                error: attempt.error.clone(),
                dropped: attempt.dropped.clone(),
            })
            .collect(),
        served_by: trace.served_by.clone(),
        outcome: trace.outcome.as_deref().map(str::to_owned),
        status: trace.status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_written_by_hand_is_what_serde_writes() {
        let mut full = Trace::new("0190-\"id", "p\\1", "auto\u{1}");
        full.candidates = vec!["a".to_owned(), "b".to_owned()];
        full.dropped_by_budget = vec!["c".to_owned()];
        full.policies = vec![PolicyTrace {
            kind: "cheapest".to_owned(),
            status: "weighted".to_owned(),
            weight: Some(2),
            scores: vec![ModelScore {
                model: "a".to_owned(),
                score: 0.5,
                excluded: Some("no".to_owned()),
            }],
            detail: None,
            duration_us: 7,
        }];
        full.ranking = vec![RankedModel {
            model: "a".to_owned(),
            score: Some(1.0 / 3.0),
        }];
        full.shuffled = true;
        full.routing_us = 12;
        let attempt = AttemptTrace {
            model: "a".to_owned(),
            retry: 1,
            waited_ms: 1000.25,
            started_ms: 0.001,
            duration_ms: Some(f64::NAN),
            outcome: "failed".into(),
            status: Some(500),
            error: Some("line\nbreak 💡".to_owned()),
            dropped: vec!["web_search".to_owned()],
        };
        full.attempts = vec![
            attempt.clone(),
            AttemptTrace {
                duration_ms: None,
                status: None,
                error: None,
                dropped: Vec::new(),
                ..attempt
            },
        ];
        full.served_by = Some("b".to_owned());
        full.outcome = Some("success".into());
        full.status = Some(200);
        let bare = Trace::new("", "", "");
        for trace in [full, bare] {
            let mut written = Vec::new();
            trace.write_json(&mut written);
            let serde = serde_json::to_vec(&trace).expect("a trace serializes");
            assert_eq!(
                String::from_utf8(written).expect("UTF-8"),
                String::from_utf8(serde).expect("UTF-8")
            );
        }
    }

    #[tokio::test]
    async fn traces_in_postgres_are_found_by_another_replica() {
        let db = crate::store::pg::testdb::TestDb::create().await;
        let dir = tempfile::tempdir().expect("temporary directory");
        let open = async || {
            crate::store::pg::Database::open(&db.url)
                .await
                .expect("opens")
        };
        let writer = TraceStore::open_shared(dir.path().join("a"), Some(open().await));
        let reader = TraceStore::open_shared(dir.path().join("b"), Some(open().await));
        let id = uuid::Uuid::now_v7().to_string();
        drop(LiveTrace::new(
            Trace::new(&id, "p", "auto"),
            Instant::now(),
            Arc::clone(&writer),
        ));
        let mut found = None;
        for _ in 0..250 {
            found = reader.get(&id).await;
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(found.expect("found through the database").project_id, "p");
        assert!(
            !dir.path().join("a").exists(),
            "nothing written to the files while the database takes them"
        );
        drop((writer, reader));
        db.drop_now().await;
    }

    #[tokio::test]
    async fn traces_a_week_old_are_pruned_by_id_and_a_batch_sent_twice_is_kept_once() {
        let db = crate::store::pg::testdb::TestDb::create().await;
        let database = crate::store::pg::Database::open(&db.url)
            .await
            .expect("opens");
        let id_aged = |age: Duration| {
            let at = std::time::SystemTime::now() - age;
            let since = at
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970");
            let stamp =
                uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
            uuid::Uuid::new_v7(stamp).to_string()
        };
        let hour = Duration::from_secs(3600);
        let (old, young) = (id_aged(MAX_AGE + hour), id_aged(MAX_AGE - hour));
        let ids = vec![old.clone(), young.clone()];
        let lines = format!("{{\"id\":\"{old}\"}}\n{{\"id\":\"{young}\"}}\n");
        write_shared(&database, &ids, lines.as_bytes(), false)
            .await
            .expect("written");
        // Sent again (its first answer lost): no error, and each trace once; then pruned.
        write_shared(&database, &ids, lines.as_bytes(), true)
            .await
            .expect("written again and pruned");
        let client = database.client().await.expect("connects");
        let kept: Vec<String> = client
            .query("SELECT id FROM traces", &[])
            .await
            .expect("reads")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(
            kept,
            vec![young],
            "the week-old trace pruned, the other kept once"
        );
        drop((client, database));
        db.drop_now().await;
    }

    #[tokio::test]
    async fn traces_are_kept_in_memory_at_once_and_read_back_from_disk() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = TraceStore::open(dir.path().join("traces"));
        let id = uuid::Uuid::now_v7().to_string();
        {
            let live = LiveTrace::new(
                Trace::new(&id, "p", "auto"),
                Instant::now(),
                Arc::clone(&store),
            );
            live.begin_attempt("m1", Instant::now());
            live.end_attempt("failed", Some(500), Some("HTTP 500".to_owned()));
            live.begin_attempt("m1", Instant::now());
            live.finish("success", 200, Some("m1"));
        }
        let trace = store.get(&id).await.expect("in memory");
        assert_eq!(trace.attempts.len(), 2);
        assert_eq!(trace.attempts[1].retry, 1);
        assert_eq!(trace.attempts[1].outcome, "success");
        assert_eq!(trace.served_by.as_deref(), Some("m1"));
        // A second store over the same directory reads it from the file.
        let mut found = None;
        for _ in 0..250 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let fresh = TraceStore::open(dir.path().join("traces"));
            found = fresh.get(&id).await;
            if found.is_some() {
                break;
            }
        }
        // Memory and the file hold the same line.
        assert_eq!(found, Some(trace));
    }

    #[test]
    fn the_recent_traces_of_a_project_are_read_back_newest_first() {
        // No runtime: the store keeps traces in memory only.
        let store = TraceStore::open(PathBuf::from("/nonexistent"));
        let ids: Vec<String> = (0..4).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        for (id, project) in ids.iter().zip(["p", "q", "p", "p\"\u{e9}"]) {
            let mut trace = Trace::new(id, project, "auto");
            trace.served_by = Some(format!("model-of-{id}"));
            store.keep(trace);
        }
        let of = |project: &str, limit: usize| -> Vec<(String, String, Option<String>)> {
            store
                .recent_of(project, limit)
                .iter()
                .map(|trace| {
                    (
                        trace.id.clone(),
                        trace.project_id.clone(),
                        trace.served_by.clone(),
                    )
                })
                .collect()
        };
        let whole = |at: usize, project: &str| {
            (
                ids[at].clone(),
                project.to_owned(),
                Some(format!("model-of-{}", ids[at])),
            )
        };
        assert_eq!(of("p", 10), vec![whole(2, "p"), whole(0, "p")]);
        assert_eq!(of("p", 1), vec![whole(2, "p")]);
        assert_eq!(of("q", 10), vec![whole(1, "q")]);
        assert_eq!(of("p\"\u{e9}", 10), vec![whole(3, "p\"\u{e9}")]);
        assert!(of("r", 10).is_empty());
    }

    #[test]
    fn pruning_keeps_the_directory_under_its_size() {
        let dir = tempfile::tempdir().expect("temporary directory");
        for hour in ["2024010100", "2024010101", "2024010102"] {
            std::fs::write(
                dir.path().join(format!("traces-{hour}.jsonl")),
                vec![b'x'; 100],
            )
            .expect("write");
        }
        prune_dir(dir.path(), MAX_AGE, 150).expect("prune");
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(left, vec!["traces-2024010102.jsonl".to_owned()]);
    }
}
