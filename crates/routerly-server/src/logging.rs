//! Standard error for the service's log, with the per-request lines batched, and the
//! per-request line itself.
//!
//! Every proxied call logs one line. Writing each with its own `write(2)` cost a system call
//! (and, into a file, the filesystem's write path) per request: measurable at thousands of
//! requests a second on one core. Lines at `info` and below are appended to a buffer that a
//! background thread writes out at most [`DELAY`] after the first line arrives, with one
//! write per batch; warnings and errors are written at once, with anything buffered before
//! them, so a problem is never late nor out of order. [`BufferedStderr::flush`] writes what
//! is left at shutdown; a crash loses at most the last [`DELAY`] of info lines.
//!
//! The request line ([`log_request`]) is written here directly, in the same text or JSON
//! layout as `tracing_subscriber::fmt` writes every other line: formatting its sixteen
//! fields through `tracing`'s visitors was a tenth of a proxied request's instructions.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::Timelike;
use routerly_core::json_text;
use routerly_core::usage::UsageRecord;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The longest an info line waits in the buffer.
const DELAY: Duration = Duration::from_millis(20);
/// A buffer this large is written at once rather than waiting for the thread.
const MAX_BUFFERED: usize = 256 * 1024;

/// The writer handed to `tracing_subscriber::fmt`; cheap to clone.
#[derive(Clone)]
pub struct BufferedStderr {
    shared: Arc<Shared>,
}

struct Shared {
    buffer: Mutex<Vec<u8>>,
    filled: Condvar,
    /// Where batches go: standard error in the service. Its lock keeps batches in order.
    out: Mutex<Box<dyn Write + Send>>,
}

impl BufferedStderr {
    /// The writer and its background thread.
    pub fn start() -> io::Result<Self> {
        Self::start_with(Box::new(io::stderr()))
    }

    /// The writer and its background thread, writing batches to `out`.
    fn start_with(out: Box<dyn Write + Send>) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::new()),
            filled: Condvar::new(),
            out: Mutex::new(out),
        });
        let background = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("routerly-log".to_owned())
            .spawn(move || background.run())?;
        Ok(BufferedStderr { shared })
    }

    /// Writes every buffered line now.
    pub fn flush(&self) {
        self.shared.write_out(self.shared.lock());
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves plain bytes behind: keep using them.
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the buffer's lines and writes them outside the lock, in one write.
    fn write_out(&self, mut buffer: MutexGuard<'_, Vec<u8>>) {
        if buffer.is_empty() {
            return;
        }
        let mut lines = std::mem::take(&mut *buffer);
        // Taking the output before giving the buffer back keeps batches in order with an
        // urgent line.
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(buffer);
        let _ = out.write_all(&lines);
        let _ = out.flush();
        // The output is released before the buffer is taken again: a line being logged
        // takes them in the other order (buffer, then output), and holding both here
        // deadlocked two threads logging warnings at once (a flood of refused logins).
        drop(out);
        lines.clear();
        let mut buffer = self.lock();
        if buffer.is_empty() && buffer.capacity() < lines.capacity() {
            // Keep the larger allocation for the next batch.
            std::mem::swap(&mut *buffer, &mut lines);
        }
    }

    /// The background thread: waits for a first line, lets [`DELAY`] pass, writes the batch.
    fn run(&self) {
        loop {
            let mut buffer = self.lock();
            while buffer.is_empty() {
                buffer = self
                    .filled
                    .wait(buffer)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            drop(buffer);
            std::thread::sleep(DELAY);
            self.write_out(self.lock());
        }
    }
}

/// One log line on its way into the buffer (`tracing_subscriber::fmt` writes each line
/// with one `write_all`, so lines never interleave).
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
    wrote: bool,
    was_empty: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buffer = self.shared.lock();
        if !self.wrote {
            self.wrote = true;
            self.was_empty = buffer.is_empty();
        }
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.wrote {
            return;
        }
        let buffer = self.shared.lock();
        if self.urgent || buffer.len() >= MAX_BUFFERED {
            self.shared.write_out(buffer);
        } else if self.was_empty {
            drop(buffer);
            self.shared.filled.notify_one();
        }
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        self.line(true)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        self.line(*meta.level() <= Level::WARN)
    }
}

impl BufferedStderr {
    /// Writes a batched line straight into the buffer: one lock, no copy. `write` runs
    /// under the buffer's lock, so it only formats.
    fn append_line(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut buffer = self.shared.lock();
        let was_empty = buffer.is_empty();
        write(&mut buffer);
        if buffer.len() >= MAX_BUFFERED {
            self.shared.write_out(buffer);
        } else if was_empty {
            drop(buffer);
            self.shared.filled.notify_one();
        }
    }

    fn line(&self, urgent: bool) -> Line<'_> {
        Line {
            shared: &self.shared,
            urgent,
            wrote: false,
            was_empty: false,
        }
    }
}

/// Where request lines go once `routerly serve` has set up logging.
struct RequestLog {
    writer: BufferedStderr,
    json: bool,
}

static REQUEST_LOG: OnceLock<RequestLog> = OnceLock::new();

/// Sends request lines to `writer`, as JSON objects when `json`, else in `fmt`'s text layout.
pub fn install_request_log(writer: BufferedStderr, json: bool) {
    let _ = REQUEST_LOG.set(RequestLog { writer, json });
}

/// The one log line of a finished call (target `routerly::request`, level info): its
/// request id (the trace id), project, token id, model, provider, surface, outcome, timings,
/// tokens and cost. Never the token itself nor any text of the call.
pub fn log_request(record: &UsageRecord) {
    if !tracing::enabled!(target: "routerly::request", Level::INFO) {
        return;
    }
    // Without `routerly serve`'s logging (a service embedded in a test) there is no line.
    let Some(log) = REQUEST_LOG.get() else {
        return;
    };
    log.writer
        .append_line(|out| request_line(out, record, log.json));
}

/// A field's name as each layout writes it before the value.
struct Name {
    /// ` name=`
    text: &'static str,
    /// `,"name":`
    json: &'static str,
}

macro_rules! name {
    ($name:literal) => {
        Name {
            text: concat!(" ", $name, "="),
            json: concat!(",\"", $name, "\":"),
        }
    };
}

/// The fields of a request line: name, value.
fn fields(record: &UsageRecord) -> [(Name, Field<'_>); 16] {
    [
        (name!("request_id"), Field::Id(&record.trace_id)),
        (name!("project"), Field::Id(&record.project_id)),
        (name!("token"), Field::Id(&record.token_id)),
        (
            name!("model"),
            Field::Text(record.model_id.as_deref().unwrap_or("")),
        ),
        (
            name!("provider"),
            Field::Text(record.provider.as_deref().unwrap_or("")),
        ),
        (name!("surface"), Field::Text(record.surface.name())),
        (name!("stream"), Field::Bool(record.stream)),
        (name!("outcome"), Field::Text(record.outcome.name())),
        (name!("status"), Field::Int(u64::from(record.status))),
        (name!("latency_ms"), Field::Millis(Some(record.latency_ms))),
        (name!("ttft_ms"), Field::Millis(record.ttft_ms)),
        (
            name!("overhead_ms"),
            Field::Millis(Some(record.overhead_ms)),
        ),
        (name!("input_tokens"), Field::Int(record.input_tokens)),
        (name!("output_tokens"), Field::Int(record.output_tokens)),
        (name!("cost_usd"), Field::Float(record.cost_usd)),
        (
            name!("attempts"),
            Field::Int((record.attempts.len() + usize::from(record.status == 200)) as u64),
        ),
    ]
}

enum Field<'a> {
    /// An identifier Routerly made (no quotes in the text layout, as `%` fields).
    Id(&'a str),
    /// Any other text (quoted).
    Text(&'a str),
    Bool(bool),
    Int(u64),
    /// Milliseconds, to the microsecond; absent when `None`.
    Millis(Option<f64>),
    Float(f64),
}

impl Field<'_> {
    /// Writes the value as JSON (an id or text as a JSON string); `false` when absent.
    fn write_json(&self, out: &mut Vec<u8>) -> bool {
        let written = match *self {
            Field::Id(text) | Field::Text(text) => {
                json_text::string(out, text);
                Ok(())
            }
            Field::Bool(value) => serde_json::to_writer(&mut *out, &value),
            Field::Int(value) => serde_json::to_writer(&mut *out, &value),
            Field::Millis(None) => return false,
            Field::Millis(Some(ms)) => {
                serde_json::to_writer(&mut *out, &((ms * 1000.0).round() / 1000.0))
            }
            Field::Float(value) => serde_json::to_writer(&mut *out, &value),
        };
        written.is_ok()
    }
}

/// The request line in `fmt`'s layout: as text,
/// `2026-11-26T11:16:32.840629Z  INFO routerly::request: request request_id=… model="…" …`,
/// or with `json`,
/// `{"timestamp":"…","level":"INFO","message":"request","request_id":"…",…,"target":"routerly::request"}`.
fn request_line(out: &mut Vec<u8>, record: &UsageRecord, json: bool) {
    if json {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(out);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
    } else {
        timestamp(out);
        out.extend_from_slice(b"  INFO routerly::request: request");
    }
    for (name, field) in fields(record) {
        let start = out.len();
        out.extend_from_slice(if json { name.json } else { name.text }.as_bytes());
        let present = match field {
            // Ids go bare in the text layout, as `%` fields do.
            Field::Id(text) if !json => {
                out.extend_from_slice(text.as_bytes());
                true
            }
            other => other.write_json(out),
        };
        if !present {
            out.truncate(start);
        }
    }
    out.extend_from_slice(if json {
        b",\"target\":\"routerly::request\"}\n"
    } else {
        b"\n"
    });
}

/// The current time as `fmt` writes it: RFC 3339, UTC, microseconds.
fn timestamp(out: &mut Vec<u8>) {
    let now = chrono::Utc::now();
    out.extend_from_slice(&json_text::second_text(&now));
    out.push(b'.');
    json_text::digits(out, now.nanosecond() % 1_000_000_000 / 1000, 6);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerly_core::usage::{Outcome, Surface};

    fn record() -> UsageRecord {
        let mut record: UsageRecord = serde_json::from_value(serde_json::json!({
            "id": "u1", "timestamp": "2026-11-26T10:00:00Z", "project_id": "p1",
            "token_id": "tok_1", "surface": "chat_completions", "call_type": "completion",
            "model_id": null, "provider": null, "stream": false, "input_tokens": 14,
            "output_tokens": 3, "cached_input_tokens": 0, "cache_write_tokens": 0,
            "cost_usd": 0.0000123, "input_cost_usd": 0.0, "output_cost_usd": 0.0,
            "latency_ms": 1.23456789, "ttft_ms": null, "overhead_ms": 0.0421,
            "outcome": "success", "status": 200, "error": null, "trace_id": "01a2",
            "user": null, "tags": []
        }))
        .expect("a usage record");
        record.model_id = Some("gpt \"4o\"".to_owned());
        record.surface = Surface::ChatCompletions;
        record.outcome = Outcome::Success;
        record
    }

    #[test]
    fn the_json_line_is_one_object_with_the_fields_at_the_top_level() {
        let mut out = Vec::new();
        request_line(&mut out, &record(), true);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&byte| byte == b'\n').count(), 1);
        let line: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "routerly::request");
        assert_eq!(line["request_id"], "01a2");
        assert_eq!(line["model"], "gpt \"4o\"");
        assert_eq!(line["latency_ms"], 1.235);
        assert_eq!(line["attempts"], 1);
        assert!(
            line.get("ttft_ms").is_none(),
            "absent when the call had none"
        );
        let stamp = line["timestamp"].as_str().expect("a timestamp");
        chrono::DateTime::parse_from_rfc3339(stamp).expect("RFC 3339");
        assert_eq!(stamp.len(), "2026-11-26T11:16:32.840629Z".len());
    }

    #[test]
    fn the_text_line_reads_like_every_other_log_line() {
        let mut out = Vec::new();
        request_line(&mut out, &record(), false);
        let line = String::from_utf8(out).expect("UTF-8");
        let (stamp, rest) = line.split_once("  ").expect("timestamp, two spaces");
        chrono::DateTime::parse_from_rfc3339(stamp).expect("RFC 3339");
        assert_eq!(
            rest,
            "INFO routerly::request: request request_id=01a2 project=p1 token=tok_1 \
             model=\"gpt \\\"4o\\\"\" provider=\"\" surface=\"chat_completions\" stream=false \
             outcome=\"success\" status=200 latency_ms=1.235 overhead_ms=0.042 input_tokens=14 \
             output_tokens=3 cost_usd=0.0000123 attempts=1\n"
        );
    }

    /// A shared byte sink standing in for standard error.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn threads_logging_urgent_and_batched_lines_at_once_neither_deadlock_nor_lose_a_line() {
        let sink = Sink::default();
        let writer = BufferedStderr::start_with(Box::new(sink.clone())).expect("log thread");
        const THREADS: usize = 8;
        const LINES: usize = 20_000;
        let (done, finished) = std::sync::mpsc::channel();
        for thread in 0..THREADS {
            let writer = writer.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                for index in 0..LINES {
                    let text = format!("{thread}-{index}\n");
                    if index % 4 == 0 {
                        // A request line, formatted into the buffer.
                        writer.append_line(|out| out.extend_from_slice(text.as_bytes()));
                        continue;
                    }
                    // One line in four is batched, two are warnings: written at once,
                    // past the batch.
                    let mut line = writer.line(index % 4 != 1);
                    // One write per line, as `tracing_subscriber::fmt` writes them.
                    line.write_all(text.as_bytes()).expect("buffered");
                }
                done.send(()).expect("the test waits");
            });
        }
        for _ in 0..THREADS {
            finished
                .recv_timeout(Duration::from_secs(60))
                .expect("no thread is stuck on the log's locks");
        }
        writer.flush();
        let written = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("UTF-8");
        let mut lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), THREADS * LINES);
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), THREADS * LINES, "every line once");
    }
}
