//! The routing engine's pure part (PRODUCT.md, "Routing policies").
//!
//! - [`policy`]: a project's `{type, enabled, config}` list and retry count, each policy's
//!   keys and defaults, validation whose errors name the type or key at fault.
//! - [`score`]: each policy's scoring and exclusion as a function of what it reads.
//! - [`rank`]: the weighted mean (weight n − i), the "all equal within 1e-4" rule and the
//!   even shuffle, giving the fallback order.
//! - [`llm`]: the routing model's prompt and the answer it must give.
//! - [`retry`]: exponential backoff with jitter, honouring `retry-after` within a deadline.
//!
//! Statistics, traces and the calls of the `llm` and `semantic-intent` policies are the
//! server's; this module only computes.

pub mod llm;
pub mod policy;
pub mod rank;
pub mod retry;
pub mod score;

pub use policy::{Policy, PolicyEntry, PolicyKind, RoutingConfig};
pub use rank::{Participation, PolicyOutcome, Ranking, rank};
pub use score::PolicyResult;

#[cfg(test)]
mod tests;
