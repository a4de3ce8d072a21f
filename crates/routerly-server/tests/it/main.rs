//! The service's integration tests, in one test binary: each module was a test binary of
//! its own, and linking the whole server once per file was most of `cargo test`'s build
//! time. `common` is the proxy tests' harness (a real service on loopback), `management`
//! the management API tests' harness (the router called in process).
//!
//! The modules share one process, so a test here may not change what the process shares:
//! environment variables, the current directory, resource limits, the panic hook or a
//! global tracing subscriber. `tests/accept_backoff.rs`, which lowers the open-file limit
//! and fills every descriptor, stays a binary of its own for that reason.

mod common;
mod management;

mod api_contract;
mod api_models;
mod api_usage;
mod audit_api;
mod budgets;
mod channels_api;
mod client_corpus;
mod dashboard;
mod escalation;
mod http1_server;
mod limits_api;
mod members_api;
mod metrics;
mod model_endpoints;
mod projects_api;
mod proxy_auth;
mod proxy_fallback;
mod proxy_input;
mod proxy_passthrough;
mod proxy_responses;
mod proxy_responses_store;
mod proxy_routing;
mod proxy_streaming;
mod rbac;
mod roles_api;
mod routing;
mod routing_policies;
mod sessions;
mod settings_api;
mod usage_history;
mod users_api;
