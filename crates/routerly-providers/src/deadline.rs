//! A deadline that a long-lived connection moves once per request without touching the
//! runtime's timer wheel.
//!
//! A fresh `tokio::time::timeout` per request inserts a timer into the wheel and removes it
//! again when the request arrives first, which is nearly always: about a thousand
//! instructions each time, under the driver's lock. [`Deadline`] keeps one timer for its
//! owner's life. Moving the deadline later only stores the new instant; the timer, when it
//! fires at an older instant, is set again to the current one and only then reports
//! expiry. So a connection that receives a request every few seconds re-arms its timer once
//! per timeout period, not once per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::time::{Instant, Sleep};

/// A deadline, moved by [`Deadline::set`] and awaited with [`Deadline::expired`].
#[derive(Debug)]
pub struct Deadline {
    timer: Pin<Box<Sleep>>,
    at: Instant,
}

impl Deadline {
    /// A deadline at `at`.
    pub fn new(at: Instant) -> Self {
        Deadline {
            timer: Box::pin(tokio::time::sleep_until(at)),
            at,
        }
    }

    /// Moves the deadline to `at`. A later instant is only stored; an earlier one re-arms
    /// the timer at once.
    pub fn set(&mut self, at: Instant) {
        self.at = at;
        if at < self.timer.deadline() {
            self.timer.as_mut().reset(at);
        }
    }

    /// The current deadline.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// Ready once the current deadline has passed.
    pub fn poll_expired(&mut self, context: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.timer.as_mut().poll(context));
            if self.timer.deadline() >= self.at {
                return Poll::Ready(());
            }
            // The timer fired at a deadline since moved later: wait for the new one.
            let at = self.at;
            self.timer.as_mut().reset(at);
        }
    }

    /// Waits until the current deadline has passed.
    pub fn expired(&mut self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|context| self.poll_expired(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // Real time (tokio's paused clock needs its `test-util` feature, which would build the
    // test binaries' tokio, and all above it, apart from the binaries'): a timer never fires
    // before its instant, so each lower bound is exact; the upper bounds leave a loaded
    // machine seconds of slack.

    /// Whether the deadline has passed, from one poll.
    fn expired_now(deadline: &mut Deadline) -> bool {
        let waker = std::task::Waker::noop();
        deadline
            .poll_expired(&mut Context::from_waker(waker))
            .is_ready()
    }

    #[tokio::test]
    async fn a_deadline_moved_later_expires_at_the_later_instant() {
        let start = Instant::now();
        let mut deadline = Deadline::new(start + Duration::from_millis(300));
        tokio::time::sleep(Duration::from_millis(200)).await;
        deadline.set(Instant::now() + Duration::from_millis(300));
        deadline.expired().await;
        assert!(Instant::now() - start >= Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_deadline_moved_earlier_expires_at_the_earlier_instant() {
        let start = Instant::now();
        let mut deadline = Deadline::new(start + Duration::from_secs(10));
        deadline.set(start + Duration::from_millis(50));
        deadline.expired().await;
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    #[tokio::test]
    async fn a_deadline_that_passed_unwatched_is_expired_at_once() {
        let mut deadline = Deadline::new(Instant::now() + Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(expired_now(&mut deadline));
        // Moved later after expiring: pending again until the new instant.
        let moved = Instant::now();
        deadline.set(moved + Duration::from_secs(1));
        assert!(!expired_now(&mut deadline));
        deadline.expired().await;
        assert!(Instant::now() - moved >= Duration::from_secs(1));
    }
}
