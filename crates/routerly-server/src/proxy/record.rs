//! Building the one usage record every authenticated call leaves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use routerly_core::canonical::{ChatRequest, Usage};
use routerly_core::config::{ModelConfig, Pricing, Project, ProjectToken, ProviderKind};
use routerly_core::usage::{self, Attempt, CallType, Outcome, Surface, UsageRecord};
use routerly_providers::UpstreamError;

use crate::budgets::BudgetGuard;
use crate::routing::trace::{LiveTrace, Trace, TraceStore};
use crate::store::usage_log::UsageSink;

/// The model a record is charged to.
#[derive(Debug, Clone)]
pub struct ServedBy {
    /// Routerly's model id.
    pub model_id: String,
    /// Its provider.
    pub provider: ProviderKind,
    /// Its prices.
    pub pricing: Pricing,
}

impl ServedBy {
    /// The record's view of `model`.
    pub fn of(model: &ModelConfig) -> Self {
        ServedBy {
            model_id: model.id.clone(),
            provider: model.provider,
            pricing: model.pricing,
        }
    }
}

/// A call's record while its handler runs. When the handler is dropped before the call
/// settles (the client hung up before any answer reached it), the drop writes the record
/// as `cancelled`, so every authenticated call still leaves one record.
pub struct PendingCall {
    record: Option<CallRecord>,
    usage: UsageSink,
}

impl PendingCall {
    /// Watches `record`, writing it to `usage` if the call is abandoned.
    pub fn new(record: CallRecord, usage: UsageSink) -> Self {
        PendingCall {
            record: Some(record),
            usage,
        }
    }

    /// The record, to update while the call runs.
    pub fn record(&mut self) -> &mut CallRecord {
        self.record
            .as_mut()
            .expect("the record is only taken by `settle`, which consumes the guard")
    }

    /// The call has settled (its record is written or handed on): stop watching.
    pub fn settle(mut self) -> CallRecord {
        self.record
            .take()
            .expect("the record is only taken by `settle`, which consumes the guard")
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        if let Some(started) = record.attempt_in_flight {
            record.add_upstream_time(started.elapsed());
        }
        let usage_record = record.finish(
            Outcome::Cancelled,
            CLIENT_CLOSED_REQUEST,
            record.last_tried.clone(),
            Usage::default(),
            None,
            Some("the client closed the connection before the answer".to_owned()),
        );
        self.usage.record_detached(usage_record);
    }
}

/// The status recorded for a call the client abandoned before any answer (nginx's 499,
/// "client closed request"); nothing was sent.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// What is known about a call while it runs.
#[derive(Debug, Clone)]
pub struct CallRecord {
    started: Instant,
    trace_id: String,
    surface: Surface,
    project_id: String,
    token_id: String,
    tags: Vec<String>,
    user: Option<String>,
    requested_model: Option<String>,
    stream: bool,
    attempts: Vec<Attempt>,
    last_tried: Option<ServedBy>,
    upstream_time: Duration,
    /// When the attempt now waiting on a provider began.
    attempt_in_flight: Option<Instant>,
    /// The call's budget reservation, shared with the stream relay's copy: it is given back
    /// when the last copy is dropped, which is after the call's usage record was emitted.
    budget: Option<Arc<BudgetGuard>>,
    /// The routing trace, shared with the stream relay's copy: it is kept when the last copy
    /// is dropped, that is when the call is over.
    trace: Option<Arc<LiveTrace>>,
}

impl CallRecord {
    /// Starts the record of a call that arrived at `started`.
    pub fn begin(
        started: Instant,
        surface: Surface,
        project: &Project,
        token: &ProjectToken,
        tags: Vec<String>,
    ) -> Self {
        CallRecord {
            started,
            trace_id: new_id(),
            surface,
            project_id: project.id.clone(),
            token_id: token.id.clone(),
            tags: usage::bounded_tags(tags),
            user: None,
            requested_model: None,
            stream: false,
            attempts: Vec::new(),
            last_tried: None,
            upstream_time: Duration::ZERO,
            attempt_in_flight: None,
            budget: None,
            trace: None,
        }
    }

    /// Starts the call's routing trace, kept by `store` when the call is over.
    pub fn start_trace(&mut self, trace: Trace, store: Arc<TraceStore>) -> &LiveTrace {
        self.trace
            .insert(Arc::new(LiveTrace::new(trace, self.started, store)))
    }

    /// The routing trace, once routing began.
    pub fn trace(&self) -> Option<&LiveTrace> {
        self.trace.as_deref()
    }

    /// Holds the call's budget reservation until every copy of this record is dropped.
    pub fn hold_budget(&mut self, guard: BudgetGuard) {
        self.budget = Some(Arc::new(guard));
    }

    /// The trace id, also sent as `x-routerly-trace-id`.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The surface the call came in on.
    pub fn surface(&self) -> Surface {
        self.surface
    }

    /// When the call arrived.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Notes what the decoded request says about attribution.
    pub fn set_request(&mut self, request: &ChatRequest) {
        self.user = request
            .user
            .as_deref()
            .map(|user| usage::clip(user, usage::MAX_USER_CHARS).into_owned());
        self.stream = request.stream;
        self.requested_model =
            Some(usage::clip(&request.model, usage::MAX_USER_CHARS).into_owned());
    }

    /// Notes that an attempt on `model` began at `started`, so that a call cancelled while
    /// it waits is charged to that model.
    pub fn begin_attempt(&mut self, model: &ModelConfig, started: Instant) {
        self.last_tried = Some(ServedBy::of(model));
        self.attempt_in_flight = Some(started);
        if let Some(trace) = &self.trace {
            trace.begin_attempt(&model.id, started);
        }
    }

    /// Adds time spent waiting for providers (not Routerly's overhead); the attempt in
    /// flight, if any, is over.
    pub fn add_upstream_time(&mut self, elapsed: Duration) {
        self.upstream_time += elapsed;
        self.attempt_in_flight = None;
    }

    /// Notes a failed attempt on `model`.
    pub fn add_attempt(&mut self, model: &ModelConfig, error: &UpstreamError) {
        let text = usage::clip(&error.to_string(), usage::MAX_ERROR_CHARS).into_owned();
        self.attempts.push(Attempt {
            model_id: model.id.clone(),
            error: text.clone(),
            status: error.status(),
        });
        self.last_tried = Some(ServedBy::of(model));
        if let Some(trace) = &self.trace {
            let outcome = if error.disposition() == routerly_providers::Disposition::Client {
                "rejected"
            } else {
                "failed"
            };
            trace.end_attempt(outcome, error.status(), Some(text));
        }
    }

    /// A copy to hand to a stream relay, which finishes it.
    pub fn take(&self) -> CallRecord {
        self.clone()
    }

    /// The record of a call `model` answered.
    pub fn finish_success(
        &mut self,
        model: &ModelConfig,
        usage: Usage,
        ttft: Option<Duration>,
    ) -> UsageRecord {
        self.finish(
            Outcome::Success,
            200,
            Some(ServedBy::of(model)),
            usage,
            ttft,
            None,
        )
    }

    /// The record of a call that failed before any answer reached the client.
    pub fn finish_error(&mut self, outcome: Outcome, status: u16, message: &str) -> UsageRecord {
        self.finish(
            outcome,
            status,
            self.last_tried.clone(),
            Usage::default(),
            None,
            Some(message.to_owned()),
        )
    }

    /// The record of any call, priced at the serving model's prices. A call is finished
    /// once: its attribution (project, token, tags, user, requested model, attempts) moves
    /// into the record; the trace id stays, for the answer's headers.
    pub fn finish(
        &mut self,
        outcome: Outcome,
        status: u16,
        served_by: Option<ServedBy>,
        usage: Usage,
        ttft: Option<Duration>,
        error: Option<String>,
    ) -> UsageRecord {
        let error = error.map(|text| match usage::clip(&text, usage::MAX_ERROR_CHARS) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(clipped) => clipped,
        });
        debug_assert!(
            !self.project_id.is_empty(),
            "a call record is finished once"
        );
        let latency = self.started.elapsed();
        if let Some(trace) = &self.trace {
            trace.finish(
                outcome.name(),
                status,
                served_by
                    .as_ref()
                    .map(|served_by| served_by.model_id.as_str()),
            );
        }
        let cost = served_by
            .as_ref()
            .map(|served_by| usage::cost(&served_by.pricing, &usage))
            .unwrap_or_default();
        UsageRecord {
            id: new_id(),
            timestamp: chrono::Utc::now(),
            project_id: std::mem::take(&mut self.project_id),
            token_id: std::mem::take(&mut self.token_id),
            model_id: served_by
                .as_ref()
                .map(|served_by| served_by.model_id.clone()),
            provider: served_by
                .as_ref()
                .map(|served_by| served_by.provider.as_str().to_owned()),
            surface: self.surface,
            call_type: if self.surface == Surface::Embeddings {
                CallType::Embedding
            } else {
                CallType::Completion
            },
            stream: self.stream,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            cost_usd: cost.total_usd,
            input_cost_usd: cost.input_usd,
            output_cost_usd: cost.output_usd,
            latency_ms: millis(latency),
            ttft_ms: ttft.map(millis),
            overhead_ms: millis(latency.saturating_sub(self.upstream_time)),
            outcome,
            status,
            error,
            trace_id: self.trace_id.clone(),
            user: self.user.take(),
            tags: std::mem::take(&mut self.tags),
            attempts: std::mem::take(&mut self.attempts),
            requested_model: self.requested_model.take(),
        }
    }
}

/// A new UUIDv7 in its hyphenated text, written directly (`to_string` goes through the
/// formatting machinery).
fn new_id() -> String {
    uuid::Uuid::now_v7()
        .hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
