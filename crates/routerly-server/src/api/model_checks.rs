//! How routing sees each model now (`GET /api/routing/health`: circuit breaker, recent
//! calls and failures, health score, mean latency) and a model's connection test
//! (`POST /api/models/{id}/test`: one minimal call to its provider, see
//! [`crate::proxy::probe`]).

use axum::extract::{Path, State};
use chrono::{DateTime, SecondsFormat, Utc};
use routerly_api::model_checks::{CircuitState, ConnectionTest, ModelHealth, RoutingHealth};
use routerly_core::routing::policy::HealthConfig;

use super::ApiError;
use super::auth::{AuthUser, Permission};
use crate::proxy::probe;
use crate::routing::stats::now_seconds;
use crate::state::App;

/// `GET /api/routing/health`: every configured model's circuit breaker and recent calls,
/// over the `health` policy's default window. Reading it moves no circuit.
#[utoipa::path(get, path = "/api/routing/health", operation_id = "routing_health", tag = "models",
    responses((status = 200, body = RoutingHealth)))]
pub async fn health(
    State(app): State<App>,
    user: AuthUser,
) -> Result<axum::Json<RoutingHealth>, ApiError> {
    user.require(Permission::ModelRead)?;
    let snapshot = app.store.snapshot();
    let config = HealthConfig::default();
    let now = now_seconds();
    let models = snapshot
        .models
        .models
        .iter()
        .map(|model| {
            let report = app.routing.stats.report(&model.id, &config, now);
            ModelHealth {
                model_id: model.id.clone(),
                circuit: match report.circuit {
                    "open" => CircuitState::Open,
                    "half_open" => CircuitState::HalfOpen,
                    _ => CircuitState::Closed,
                },
                circuit_since: report.circuit_since.and_then(|seconds| {
                    DateTime::<Utc>::from_timestamp_micros((seconds * 1e6) as i64)
                        .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
                }),
                calls: report.calls,
                failures: report.failures,
                score: report.score,
                mean_latency_ms: report.mean_latency_ms,
            }
        })
        .collect();
    Ok(axum::Json(RoutingHealth {
        window_minutes: config.window_minutes,
        models,
    }))
}

/// `POST /api/models/{id}/test`: one minimal call to the model's provider, as routing
/// would send it (needs `model:write`: the call spends the provider key). The answer says
/// whether the provider answered, its status and the time taken; never the provider's
/// answer or the key. An endpoint on a link-local address (cloud metadata) is refused.
#[utoipa::path(post, path = "/api/models/{id}/test", operation_id = "test_model_connection", tag = "models",
    params(("id" = String, Path, description = "The model's id.")),
    responses((status = 200, body = ConnectionTest)))]
pub async fn test_connection(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<ConnectionTest>, ApiError> {
    user.require(Permission::ModelWrite)?;
    let snapshot = app.store.snapshot();
    let model = snapshot
        .model(&id)
        .ok_or_else(|| ApiError::not_found(format!("no model `{id}`")))?;
    let found = probe::probe(&app, &snapshot, model)
        .await
        .map_err(|message| ApiError::invalid("endpoint", message))?;
    Ok(axum::Json(ConnectionTest {
        ok: found.ok,
        status: found.status,
        latency_ms: found.elapsed.as_secs_f64() * 1000.0,
        message: found.message,
    }))
}
