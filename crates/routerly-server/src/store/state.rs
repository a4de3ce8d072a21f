//! The state traits under their former paths: each now has its own module
//! ([`super::sessions`], [`super::counters`], [`super::responses`]).

pub use super::StoreFuture;
pub use super::counters::{
    Check, CheckFailed, CounterKey, CounterReading, CounterStore, MemoryCounterStore, ReservationId,
};
pub use super::responses::{ResponseStore, StoredResponse};
pub use super::sessions::{FileSessionStore, SessionError, SessionInfo, SessionStore, TokenHash};
