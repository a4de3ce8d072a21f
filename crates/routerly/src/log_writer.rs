//! Standard error for the service's log, with the per-request lines batched.
//!
//! Every proxied call logs one line. Writing each with its own `write(2)` cost a system call
//! (and, into a file, the filesystem's write path) per request: measurable at thousands of
//! requests a second on one core. Lines at `info` and below are appended to a buffer that a
//! background thread writes out at most [`DELAY`] after the first line arrives, with one
//! write per batch; warnings and errors are written at once, with anything buffered before
//! them, so a problem is never late nor out of order. [`BufferedStderr::flush`] writes what
//! is left at shutdown; a crash loses at most the last [`DELAY`] of info lines.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

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
}

impl BufferedStderr {
    /// The writer and its background thread.
    pub fn start() -> io::Result<Self> {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::new()),
            filled: Condvar::new(),
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
        // Holding the lock while writing keeps batches in order with an urgent line.
        let mut stderr = io::stderr().lock();
        drop(buffer);
        let _ = stderr.write_all(&lines);
        let _ = stderr.flush();
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
    fn line(&self, urgent: bool) -> Line<'_> {
        Line {
            shared: &self.shared,
            urgent,
            wrote: false,
            was_empty: false,
        }
    }
}
