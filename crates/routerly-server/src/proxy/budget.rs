//! The budget pre-check (PRODUCT.md, "The life of a request", steps 3 and 4): before any
//! provider is called, drop candidates whose own limits have no room, reserve the call's
//! estimate against every applicable limit, or refuse it in the client's error format:
//! 503 `budget_exceeded`, or 429 `rate_limit_exceeded` for a calls limit over at most an
//! hour, naming the limit, its level and when it resets (also as `retry-after`).

use routerly_core::canonical::{ChatRequest, ErrorBody, ErrorKind};
use routerly_core::config::ModelConfig;
use routerly_core::estimate;
use routerly_core::wire::WireFormat;

use super::Caller;
use super::error::ProxyError;
use super::record::CallRecord;
use crate::budgets::{BudgetRefusal, CallEstimate};
use crate::state::AppState;
use crate::store::config::Snapshot;

/// Error code of a call refused by a budget.
pub const BUDGET_EXCEEDED: &str = "budget_exceeded";
/// Error code of a call refused by a rate limit.
pub const RATE_LIMIT_EXCEEDED: &str = "rate_limit_exceeded";

/// Whether `error` is a refusal by a limit (recorded with outcome `budget_exceeded`).
pub fn is_budget_refusal(error: &ProxyError) -> bool {
    matches!(
        error.body.code.as_deref(),
        Some(BUDGET_EXCEEDED | RATE_LIMIT_EXCEEDED)
    )
}

/// The candidates with room for `request`, their reservation held by `record` until the
/// call's usage is recorded; or the refusal.
pub(super) fn admit<'s>(
    app: &AppState,
    snapshot: &Snapshot,
    caller: &Caller<'_>,
    request: &ChatRequest,
    candidates: Vec<&'s ModelConfig>,
    record: &mut CallRecord,
    format: WireFormat,
) -> Result<Vec<&'s ModelConfig>, ProxyError> {
    let estimate = CallEstimate {
        input_tokens: estimate::prompt_tokens(request),
        output_tokens: request
            .max_tokens
            .map(u64::from)
            .unwrap_or(snapshot.settings.budget_default_output_tokens),
    };
    let admission = app
        .budgets
        .admit(
            snapshot,
            &caller.project.id,
            &caller.token.id,
            candidates,
            estimate,
        )
        .map_err(|refusal| refusal_error(format, &refusal))?;
    if let Some(guard) = admission.guard {
        record.hold_budget(guard);
    }
    Ok(admission.candidates)
}

fn refusal_error(format: WireFormat, refusal: &BudgetRefusal) -> ProxyError {
    let (kind, code) = if refusal.is_rate_limit() {
        (ErrorKind::RateLimit, RATE_LIMIT_EXCEEDED)
    } else {
        (ErrorKind::Unavailable, BUDGET_EXCEEDED)
    };
    ProxyError::from_body(
        format,
        ErrorBody::new(kind, refusal.message()).with_code(code),
    )
    .with_retry_after(Some(refusal.retry_after()))
}
