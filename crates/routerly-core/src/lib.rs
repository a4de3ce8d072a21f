//! Routerly's pure core, with no IO.
//!
//! - [`canonical`]: the one internal chat model (request, response, stream events, errors).
//! - [`wire`]: the client and provider wire formats, each converting to and from it.
//! - [`catalogue`]: the providers and models Routerly knows, with prices (shipped data).
//! - [`config`]: the schema of the JSON files under `$ROUTERLY_HOME/config`.
//! - [`usage`]: usage records and cost.
//! - [`estimate`]: cheap token estimates.
//! - [`accumulate`]: a streamed answer collected back into one [`canonical::ChatResponse`].
//! - [`alerts`]: notification channels and the budget events sent through them.
//! - [`limits`]: budgets and rate limits: levels, modes, calendar and rolling windows.
//! - [`ranges`]: the documented range of every number and duration in the configuration.
//! - [`routing`]: routing policies, their scoring and the ranking that is the fallback order.
//! - [`members`]: a JSON object's top-level members read in one pass, without a tree (the
//!   relays' pass-through, the usage counters of an answer).
//! - [`json_text`]: strings and times written as JSON by hand, as `serde_json` writes them
//!   (the records every call writes).

pub mod accumulate;
pub mod alerts;
pub mod canonical;
pub mod catalogue;
pub mod config;
pub mod estimate;
pub mod json_text;
pub mod limits;
pub mod members;
pub mod ranges;
pub mod routing;
pub mod usage;
pub mod wire;
