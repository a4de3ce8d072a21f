//! How routing sees each model now (`GET /api/routing/health`), and a model's connection
//! test (`POST /api/models/{id}/test`).

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// `GET /api/routing/health`: every configured model as routing sees it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct RoutingHealth {
    /// The window the counts cover, in minutes (the `health` policy's default).
    pub window_minutes: f64,
    /// One entry per configured model, in configuration order.
    pub models: Vec<ModelHealth>,
}

/// One model's circuit breaker and recent calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ModelHealth {
    /// The model's id.
    pub model_id: String,
    /// Its circuit breaker now.
    pub circuit: CircuitState,
    /// When the circuit last changed state (RFC 3339); `null` when it never opened.
    pub circuit_since: Option<String>,
    /// Provider attempts in the window (since the circuit last closed).
    #[ts(type = "number")]
    pub calls: u64,
    /// Of which failed: connection errors, timeouts, 401/403/404/408/409/425/429 and 5xx.
    #[ts(type = "number")]
    pub failures: u64,
    /// The `health` policy's score from 0 to 1 (1: no recent failure).
    pub score: f64,
    /// Mean latency of the successful calls in the window, in milliseconds.
    pub mean_latency_ms: Option<f64>,
}

/// A model's circuit breaker (the same type the model list shows).
pub use crate::models::CircuitState;

/// `POST /api/models/{id}/test`: the outcome of one minimal call to the model's provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ConnectionTest {
    /// Whether the provider answered the call successfully.
    pub ok: bool,
    /// The provider's HTTP status, when it answered.
    pub status: Option<u16>,
    /// How long the call took, in milliseconds.
    pub latency_ms: f64,
    /// What happened, in words (never the provider's answer or the key).
    pub message: String,
}
