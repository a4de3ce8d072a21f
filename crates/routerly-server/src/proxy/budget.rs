//! The budget pre-check (PRODUCT.md, "The life of a request", steps 3 and 4): before any
//! provider is called, drop candidates whose own limits have no room, reserve the call's
//! estimate against every applicable limit, or refuse it in the client's error format:
//! 503 `budget_exceeded`, or 429 `rate_limit_exceeded` for a calls limit over at most an
//! hour, naming the limit, its level and when it resets (also as `retry-after`).

use routerly_core::canonical::{ErrorBody, ErrorKind};
use routerly_core::config::ModelConfig;
use routerly_core::estimate;
use routerly_core::wire::WireFormat;

use super::Call;
use super::error::ProxyError;
use crate::budgets::{AdmitError, BudgetRefusal, CallEstimate};
use crate::store::counters::CounterError;

/// Error code of a call refused by a budget.
pub const BUDGET_EXCEEDED: &str = "budget_exceeded";
/// Error code of a call refused because the shared budget counters cannot be reached
/// (fail-closed).
pub const BUDGET_UNAVAILABLE: &str = "budget_unavailable";
/// Error code of a call refused by a rate limit.
pub const RATE_LIMIT_EXCEEDED: &str = "rate_limit_exceeded";

/// Whether `error` is a refusal by a limit (recorded with outcome `budget_exceeded`).
pub fn is_budget_refusal(error: &ProxyError) -> bool {
    matches!(
        error.body.code.as_deref(),
        Some(BUDGET_EXCEEDED | RATE_LIMIT_EXCEEDED)
    )
}

/// The candidates with room for the call's request, their reservation held by the call's
/// record until its usage is recorded; or the refusal.
pub(super) async fn admit<'s>(
    call: &mut Call<'_>,
    candidates: Vec<&'s ModelConfig>,
) -> Result<Vec<&'s ModelConfig>, ProxyError> {
    let request = &call.request;
    let estimate = CallEstimate {
        input_tokens: estimate::prompt_tokens(request),
        output_tokens: request
            .max_tokens
            .map(u64::from)
            .unwrap_or(call.snapshot.settings.budget_default_output_tokens),
    };
    let format = call.format;
    let admission = call
        .app
        .budgets
        .admit(
            call.snapshot,
            &call.caller.project.id,
            &call.caller.token.id,
            candidates,
            estimate,
        )
        .await
        .map_err(|error| match error {
            AdmitError::Refused(refusal) => refusal_error(format, &refusal),
            AdmitError::Unavailable(error) => unavailable_error(format, &error),
        })?;
    if let Some(guard) = admission.guard {
        call.record.hold_budget(guard);
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

fn unavailable_error(format: WireFormat, error: &CounterError) -> ProxyError {
    tracing::error!(%error, "call refused: the shared budget counters are unreachable (fail-closed)");
    ProxyError::from_body(
        format,
        ErrorBody::new(
            ErrorKind::Unavailable,
            "Budget counters are unavailable, so limits cannot be checked; try again shortly.",
        )
        .with_code(BUDGET_UNAVAILABLE),
    )
    .with_retry_after(Some(std::time::Duration::from_secs(1)))
}
