//! Admission of expensive work, so that a flood costs its sender and not the service.
//!
//! - [`PasswordHashing`]: argon2 (19 MiB and tens of milliseconds of one core per hash) runs
//!   on at most `password_hashing_concurrency` threads, with at most
//!   `password_hashing_queue` callers waiting; beyond that a caller is refused at once.
//! - [`BodyBudget`]: the bytes of request bodies held in memory at once, across all
//!   requests and every surface (`/v1` and `/api`); a body that does not fit is refused
//!   before it is read. [`read_body`] is the one reader of request bodies that uses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use tokio::sync::Semaphore;

/// The hashing pool is full: the caller should come back shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Work for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// How long a hashing thread waits without work before it frees its argon2 memory.
pub const HASHING_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The concurrency cap and short queue in front of password hashing.
///
/// Hashes run on `concurrency` threads of their own, not on Tokio's blocking pool, and reuse
/// their argon2 memories while hashing is busy (see `api::auth::hash_password`):
/// glibc gives each allocating thread its own arena and kept freed 19 MiB blocks scattered
/// over them, so a flood of ~650 logins left 367 MB resident with the blocking pool, 238 MB
/// with two threads allocating per hash, and leaves 67 MB now. A thread that has had no
/// hash to compute for [`HASHING_IDLE`] frees the kept memories (`on_idle`), which go back to
/// the system (each is its own mapping, see `api::auth::argon2_into`): the dummy hash
/// computed at start made every idle process 19 MiB larger, and the last login's hash did
/// too. Freeing after every hash instead (when none was waiting) let a flood's gaps scatter
/// the blocks again (peak 188 MB where reuse keeps 72 MB).
#[derive(Debug)]
pub struct PasswordHashing {
    /// Callers running or waiting: `concurrency + queue` permits.
    admitted: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<Job>,
    /// Hashes computed (verifications and new hashes), for `/metrics`.
    computed: Arc<AtomicU64>,
    /// Callers refused because the pool was full, for `/metrics`.
    refused: AtomicU64,
}

impl PasswordHashing {
    /// A pool that runs `concurrency` hashes at once and lets `queue` more wait; a thread
    /// calls `on_idle` when it has had nothing to do for [`HASHING_IDLE`] (to free what it
    /// keeps for the next hash).
    pub fn new(concurrency: usize, queue: usize, on_idle: fn()) -> Self {
        let concurrency = concurrency.max(1);
        let (jobs, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        for index in 0..concurrency {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("password-hashing-{index}"))
                .spawn(move || {
                    loop {
                        // One thread waits on the channel at a time, the others on the lock;
                        // the waiting one times out when hashing is idle.
                        let job = receiver
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv_timeout(HASHING_IDLE);
                        match job {
                            Ok(job) => job(),
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => on_idle(),
                            // The pool is gone (every sender dropped): the thread ends.
                            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                })
                .expect("a hashing thread starts");
        }
        PasswordHashing {
            admitted: Arc::new(Semaphore::new(concurrency.saturating_add(queue))),
            jobs,
            computed: Arc::new(AtomicU64::new(0)),
            refused: AtomicU64::new(0),
        }
    }

    /// Runs `work` (a hash or a verification) on a hashing thread once one is free, or
    /// refuses at once when the queue is full. A caller that goes away while waiting gives
    /// its place up; one that goes away while hashing keeps its slot until the hash ends,
    /// so the memory in use never exceeds the cap.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let Ok(admitted) = Arc::clone(&self.admitted).try_acquire_owned() else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Busy);
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let computed = Arc::clone(&self.computed);
        let job: Job = Box::new(move || {
            let _admitted = admitted;
            if answer.is_closed() {
                return;
            }
            computed.fetch_add(1, Ordering::Relaxed);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = answer.send(result);
        });
        self.jobs
            .send(job)
            .expect("the hashing threads outlive the pool");
        match answered.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // Not reached: a job that runs answers, and only an absent caller skips one.
            Err(_) => Err(Busy),
        }
    }

    /// Hashes computed since start.
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// Callers refused since start because the pool was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The shared memory budget of request bodies.
#[derive(Debug)]
pub struct BodyBudget {
    available: Arc<AtomicUsize>,
    /// The whole budget.
    pub total: usize,
    /// Requests refused because the budget was used up, for `/metrics`.
    refused: AtomicU64,
}

/// Bytes of the budget held by one request; given back when dropped.
#[derive(Debug)]
pub struct BodyPermit {
    available: Arc<AtomicUsize>,
    held: usize,
}

impl BodyBudget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        BodyBudget {
            available: Arc::new(AtomicUsize::new(total)),
            total,
            refused: AtomicU64::new(0),
        }
    }

    /// An empty permit, grown with [`BodyPermit::grow`].
    pub fn permit(&self) -> BodyPermit {
        BodyPermit {
            available: Arc::clone(&self.available),
            held: 0,
        }
    }

    /// Counts a refusal.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests refused since start.
    pub fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Bytes held now.
    pub fn in_use(&self) -> usize {
        self.total
            .saturating_sub(self.available.load(Ordering::Relaxed))
    }
}

impl BodyPermit {
    /// Bytes held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Takes `bytes` more from the budget; `false` (and nothing taken) when they do not fit.
    pub fn grow(&mut self, bytes: usize) -> bool {
        let taken = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |available| {
                available.checked_sub(bytes)
            })
            .is_ok();
        if taken {
            self.held += bytes;
        }
        taken
    }
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        if self.held > 0 {
            self.available.fetch_add(self.held, Ordering::AcqRel);
        }
    }
}

/// Why a request body was not read; each surface answers it in its own error format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the surface's limit (or than the whole budget): 413. The limit in bytes.
    TooLarge(usize),
    /// The budget is in use by other bodies: 503 with `retry-after`.
    OverBudget,
    /// No byte for this long between two chunks: 408.
    Stalled(Duration),
    /// The connection failed while the body arrived: 400.
    Unreadable,
}

impl BodyError {
    /// The message for the caller.
    pub fn message(&self) -> String {
        match self {
            BodyError::TooLarge(limit) => {
                format!("The request body is larger than the limit of {limit} bytes.")
            }
            BodyError::OverBudget => {
                "The service is receiving too many request bodies at once; retry shortly."
                    .to_owned()
            }
            BodyError::Stalled(idle) => format!(
                "The request body stalled for more than {} ms.",
                idle.as_millis()
            ),
            BodyError::Unreadable => "The request body could not be read.".to_owned(),
        }
    }
}

/// How long a caller refused for [`BodyError::OverBudget`] is told to wait.
pub const OVER_BUDGET_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Reads a request body of at most `limit` bytes (and never more than the whole budget) into
/// one buffer, holding its bytes in `budget` for as long as the returned permit lives. A
/// declared length is reserved (and the buffer sized) before anything is read; a body
/// without one is reserved as it arrives. Silence longer than `idle` between two chunks
/// ends the read.
pub async fn read_body(
    budget: &BodyBudget,
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
    idle: Duration,
) -> Result<(Bytes, BodyPermit), BodyError> {
    use http_body_util::BodyExt as _;
    let limit = limit.min(budget.total);
    let over_budget = || {
        budget.refused();
        BodyError::OverBudget
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|declared| declared > limit) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut permit = budget.permit();
    let mut buffer = match declared {
        Some(declared) => {
            if !permit.grow(declared) {
                return Err(over_budget());
            }
            bytes::BytesMut::with_capacity(declared)
        }
        None => bytes::BytesMut::new(),
    };
    let mut body = body;
    loop {
        let frame = match routerly_providers::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled(idle)),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Unreadable),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let length = buffer.len() + data.len();
        if length > limit {
            return Err(BodyError::TooLarge(limit));
        }
        // Undeclared bodies are reserved as they come (hyper refuses more than declared).
        let needed = length.max(declared.unwrap_or(0));
        if needed > permit.held() && !permit.grow(needed - permit.held()) {
            return Err(over_budget());
        }
        if buffer.is_empty() && declared == Some(data.len()) {
            // One chunk is the whole body: keep it without a copy.
            return Ok((data, permit));
        }
        buffer.extend_from_slice(&data);
    }
    Ok((buffer.freeze(), permit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_share_the_budget_and_give_it_back() {
        let budget = BodyBudget::new(100);
        let mut first = budget.permit();
        assert!(first.grow(60));
        let mut second = budget.permit();
        assert!(!second.grow(41), "past the budget");
        assert!(second.grow(40));
        assert_eq!(budget.in_use(), 100);
        drop(first);
        assert_eq!(budget.in_use(), 40);
        drop(second);
        assert_eq!(budget.in_use(), 0);
    }

    fn declared(length: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, length.into());
        headers
    }

    /// A body whose chunks are sent by the returned sender.
    fn streamed() -> (
        tokio::sync::mpsc::Sender<Result<hyper::body::Frame<Bytes>, std::io::Error>>,
        axum::body::Body,
    ) {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let body =
            http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(receiver));
        (sender, axum::body::Body::new(body))
    }

    const IDLE: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn bodies_share_the_budget_and_refuse_what_does_not_fit() {
        let budget = BodyBudget::new(90);
        let (bytes, held) = read_body(&budget, &declared(5), "hello".into(), 80, IDLE)
            .await
            .expect("fits");
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(budget.in_use(), 5, "held while the permit lives");
        // A declared body is reserved before it is read: 80 more do not fit beside 5 + 10.
        let refused = read_body(&budget, &declared(10), "0123456789".into(), 80, IDLE).await;
        let (_, second) = refused.expect("10 fit");
        assert_eq!(budget.in_use(), 15);
        assert_eq!(
            read_body(&budget, &declared(80), axum::body::Body::empty(), 80, IDLE)
                .await
                .map(|_| ()),
            Err(BodyError::OverBudget)
        );
        assert_eq!(budget.refusals(), 1);
        drop((held, second));
        assert_eq!(budget.in_use(), 0, "given back");
        // Larger than the limit, declared or not: 413, nothing held.
        assert_eq!(
            read_body(&budget, &declared(81), axum::body::Body::empty(), 80, IDLE)
                .await
                .map(|_| ()),
            Err(BodyError::TooLarge(80))
        );
        let undeclared = axum::body::Body::from(vec![b'x'; 81]);
        assert_eq!(
            read_body(&budget, &HeaderMap::new(), undeclared, 80, IDLE)
                .await
                .map(|_| ()),
            Err(BodyError::TooLarge(80))
        );
        // A limit above the whole budget is the budget (such a body could never fit).
        assert_eq!(
            read_body(
                &budget,
                &declared(91),
                axum::body::Body::empty(),
                1000,
                IDLE
            )
            .await
            .map(|_| ()),
            Err(BodyError::TooLarge(90))
        );
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn an_undeclared_body_is_reserved_as_it_arrives_and_a_stalled_one_ends() {
        let budget = BodyBudget::new(100);
        let (sender, body) = streamed();
        let reading = tokio::spawn({
            let budget = Arc::new(budget);
            let watched = Arc::clone(&budget);
            async move {
                let result = read_body(&watched, &HeaderMap::new(), body, 80, IDLE)
                    .await
                    .map(|_| ());
                (result, budget.in_use())
            }
        });
        for _ in 0..3 {
            sender
                .send(Ok(hyper::body::Frame::data(Bytes::from_static(
                    b"0123456789",
                ))))
                .await
                .expect("sent");
        }
        let started = std::time::Instant::now();
        let (result, in_use_after) = reading.await.expect("no panic");
        assert_eq!(result, Err(BodyError::Stalled(IDLE)));
        assert!(started.elapsed() < IDLE * 5, "{:?}", started.elapsed());
        assert_eq!(in_use_after, 0, "a refused body gives its share back");
        drop(sender);
    }

    #[tokio::test]
    async fn hashing_beyond_the_queue_is_refused_at_once() {
        let pool = Arc::new(PasswordHashing::new(1, 1, || {}));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let running = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(move || hold.recv().is_ok()).await })
        };
        while pool.computed() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let waiting = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(|| true).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(
            pool.run(|| true).await,
            Err(Busy),
            "running 1 + queued 1 is full"
        );
        assert_eq!(pool.refused(), 1);
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(true));
        assert_eq!(waiting.await.unwrap(), Ok(true));
        assert_eq!(pool.run(|| 7).await, Ok(7));
        assert_eq!(pool.computed(), 3);
    }
}
