//! Step 4's last part: the routing engine ranks the admitted candidates (the fallback
//! order), and the decision starts the call's trace.

use routerly_core::canonical::{ErrorBody, ErrorKind};
use routerly_core::config::ModelConfig;
use routerly_core::usage::Surface;

use super::Call;
use super::error::ProxyError;
use crate::routing::{self, RouteRequest, trace::Trace};

/// Error code of a request every candidate was excluded for.
pub const NO_CANDIDATE: &str = "no_candidate";

/// Starts the trace and ranks `admitted` (what the budgets left of `resolved`) by the
/// project's policies. The Embeddings surface keeps the configured order: chat policies
/// do not apply to it.
pub(super) async fn rank<'s>(
    call: &mut Call<'_>,
    resolved: &[&str],
    admitted: Vec<&'s ModelConfig>,
) -> Result<Vec<&'s ModelConfig>, ProxyError> {
    let caller = call.caller;
    let request = &call.request;
    let mut trace = Trace::new(call.record.trace_id(), &caller.project.id, &request.model);
    trace.candidates = admitted.iter().map(|model| model.id.clone()).collect();
    trace.dropped_by_budget = resolved
        .iter()
        .filter(|id| !admitted.iter().any(|model| model.id == **id))
        .map(|id| (*id).to_owned())
        .collect();
    let surface = call.record.surface();
    let trace_id = call.record.trace_id().to_owned();
    let live = call
        .record
        .start_trace(trace, std::sync::Arc::clone(&call.app.routing.traces));
    if surface == Surface::Embeddings {
        return Ok(admitted);
    }
    let route_request = RouteRequest {
        project: caller.project,
        token_id: &caller.token.id,
        headers: call.headers,
        request,
        trace: live,
        trace_id: &trace_id,
        surface,
    };
    let format = call.format;
    routing::route(call.app, call.snapshot, &route_request, admitted)
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
