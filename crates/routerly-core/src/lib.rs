//! Routerly's pure core, with no IO.
//!
//! - [`canonical`]: the one internal chat model (request, response, stream events, errors).
//! - [`wire`]: the client and provider wire formats, each converting to and from it.
//! - [`config`]: the schema of the JSON files under `$ROUTERLY_HOME/config`.
//! - [`usage`]: usage records and cost.
//! - [`estimate`]: cheap token estimates.

pub mod canonical;
pub mod config;
pub mod estimate;
pub mod usage;
pub mod wire;
