//! Step 4's last part: the routing engine ranks the admitted candidates (the fallback
//! order), and the decision starts the call's trace.

use http::HeaderMap;
use routerly_core::canonical::{ChatRequest, ErrorBody, ErrorKind};
use routerly_core::config::ModelConfig;
use routerly_core::usage::Surface;
use routerly_core::wire::WireFormat;

use super::Caller;
use super::error::ProxyError;
use super::record::CallRecord;
use crate::routing::{self, RouteRequest, trace::Trace};
use crate::state::AppState;
use crate::store::config::Snapshot;

/// Error code of a request every candidate was excluded for.
pub const NO_CANDIDATE: &str = "no_candidate";

/// Starts the trace and ranks `admitted` (what the budgets left of `resolved`) by the
/// project's policies. The Embeddings surface keeps the configured order: chat policies
/// do not apply to it.
#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, each used once"
)]
pub(super) async fn rank<'s>(
    app: &AppState,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    headers: &HeaderMap,
    request: &ChatRequest,
    resolved: &[&str],
    admitted: Vec<&'s ModelConfig>,
    record: &mut CallRecord,
    format: WireFormat,
) -> Result<Vec<&'s ModelConfig>, ProxyError> {
    let mut trace = Trace::new(record.trace_id(), &caller.project.id, &request.model);
    trace.candidates = admitted.iter().map(|model| model.id.clone()).collect();
    trace.dropped_by_budget = resolved
        .iter()
        .filter(|id| !admitted.iter().any(|model| model.id == **id))
        .map(|id| (*id).to_owned())
        .collect();
    let surface = record.surface();
    let trace_id = record.trace_id().to_owned();
    let live = record.start_trace(trace, std::sync::Arc::clone(&app.routing.traces));
    if surface == Surface::Embeddings {
        return Ok(admitted);
    }
    let call = RouteRequest {
        project: caller.project,
        token_id: &caller.token.id,
        headers,
        request,
        trace: live,
        trace_id: &trace_id,
        surface,
    };
    routing::route(app, snapshot, &call, admitted)
        .await
        .map_err(|refusal| {
            let kind = if refusal.request_fault {
                ErrorKind::InvalidRequest
            } else {
                ErrorKind::Unavailable
            };
            ProxyError::from_body(
                format,
                ErrorBody::new(kind, refusal.message).with_code(NO_CANDIDATE),
            )
        })
}
