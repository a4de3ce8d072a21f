//! How long to wait before retrying a model: exponential backoff with jitter, never less
//! than the provider's `retry-after`, and never past the request's deadline.

use std::time::Duration;

/// The first backoff step.
pub const BASE_DELAY: Duration = Duration::from_millis(200);
/// The longest backoff step (a provider's `retry-after` may ask for more).
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// The wait before retry number `retry` (0 for the first), or `None` when waiting would pass
/// `remaining` (the time left before the request's deadline).
///
/// The backoff is `BASE_DELAY · 2^retry` capped at `MAX_DELAY`, with "equal jitter": half of
/// it fixed, half scaled by `unit_random` in [0, 1). A `retry-after` longer than that is
/// honoured as it is.
pub fn retry_delay(
    retry: u32,
    retry_after: Option<Duration>,
    unit_random: f64,
    remaining: Duration,
) -> Option<Duration> {
    let step = BASE_DELAY
        .saturating_mul(1u32 << retry.min(16))
        .min(MAX_DELAY);
    let jitter = step.mul_f64(unit_random.clamp(0.0, 1.0) / 2.0);
    let backoff = step / 2 + jitter;
    let delay = retry_after.map_or(backoff, |after| after.max(backoff));
    (delay < remaining).then_some(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after_within_the_deadline() {
        let plenty = Duration::from_secs(60);
        // retry 0: step 200 ms → between 100 and 200 ms.
        assert_eq!(
            retry_delay(0, None, 0.0, plenty),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            retry_delay(0, None, 1.0, plenty),
            Some(Duration::from_millis(200))
        );
        // retry 2: step 800 ms → 400 ms + half of 800 ms × 0.5 = 600 ms.
        assert_eq!(
            retry_delay(2, None, 0.5, plenty),
            Some(Duration::from_millis(600))
        );
        // Capped at 10 s.
        assert_eq!(retry_delay(12, None, 1.0, plenty), Some(MAX_DELAY));
        // retry-after 1 s beats a 100 ms backoff.
        assert_eq!(
            retry_delay(0, Some(Duration::from_secs(1)), 0.0, plenty),
            Some(Duration::from_secs(1))
        );
        // A wait that would pass the deadline is not taken.
        assert_eq!(
            retry_delay(0, Some(Duration::from_secs(5)), 0.0, Duration::from_secs(2)),
            None
        );
    }
}
