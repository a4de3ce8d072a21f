//! The routing engine's stateful part (the scoring itself is `routerly_core::routing`).
//!
//! - [`route`]: runs a project's enabled policies over the candidates, ranks them (the
//!   fallback order) and writes the decision into the call's trace. A policy that fails is
//!   skipped and noted in the trace; it never fails the request.
//! - [`stats`]: latency, time to first token, error rate and calls per window per model,
//!   in memory, fed by every usage record and rebuilt from the usage log at start-up; the
//!   circuit breaker.
//! - [`trace`]: traces, kept in memory and under `data/traces/` by a background writer.
//! - [`calls`]: the `llm` and `semantic-intent` policies' own model calls.
//! - [`AttemptPlan`]: the attempt loop's order: retries of one model with backoff and
//!   jitter (honouring `retry-after`, within the request's deadline), then the next model.
//!
//! **Invariant:** with no enabled policy, [`route`] returns the candidates untouched without
//! reading the statistics; no policy reads the disk.

pub mod calls;
pub mod stats;
pub mod trace;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::HeaderMap;
use rand::Rng;
use routerly_core::canonical::ChatRequest;
use routerly_core::config::{ModelConfig, Project};
use routerly_core::estimate;
use routerly_core::routing::rank::{Participation, PolicyOutcome};
use routerly_core::routing::score::{self, PolicyResult, RequestNeeds};
use routerly_core::routing::{Policy, retry};
use routerly_core::usage::UsageRecord;
use routerly_providers::{Disposition, UpstreamError};

use crate::metrics::{Exposition, Kind, Value};
use crate::state::AppState;
use crate::store::config::Snapshot;
use crate::store::home::Home;
use calls::{CallCaches, CallContext};
use trace::{ModelScore, PolicyTrace, RankedModel, TraceStore};

/// Header naming a conversation, for the `llm` policy's memory.
pub const CONVERSATION_HEADER: &str = "x-routerly-conversation-id";

/// The routing engine's state, shared by every request.
pub struct Routing {
    /// Per-model statistics and circuit breakers.
    pub stats: stats::Stats,
    /// Traces.
    pub traces: Arc<TraceStore>,
    /// Centroids and conversation memory.
    pub caches: CallCaches,
    attempts: AtomicU64,
    retries: AtomicU64,
    fallbacks: AtomicU64,
}

impl Routing {
    /// The engine for `home`: traces under `data/traces/` (or in `database`), statistics rebuilt from the
    /// recent part of the usage log (policies with longer windows than two hours keep that
    /// much from start-up on).
    pub fn open(
        home: &Home,
        snapshot: &Snapshot,
        database: Option<Arc<crate::store::pg::Database>>,
    ) -> Arc<Routing> {
        let stats = stats::Stats::default();
        for project in &snapshot.projects.projects {
            for policy in project.routing.enabled() {
                if let Some(window) = window_minutes(policy) {
                    stats.retain_at_least(window);
                }
            }
        }
        Arc::new(Routing {
            stats,
            traces: TraceStore::open_shared(home.data_dir().join("traces"), database),
            caches: CallCaches::default(),
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// Its part of the start-up pass over the usage log, which reads `files`: the records
    /// recent enough for the statistics' retention.
    ///
    /// `offset_since(file, time)` is where in file `file` records from `time` on can begin
    /// (the usage history knows from its index; `0` when it does not), so the replay skips
    /// the older part of the file the retention starts in.
    pub fn replay(
        self: &Arc<Self>,
        files: &[std::path::PathBuf],
        offset_since: &dyn Fn(usize, chrono::DateTime<chrono::Utc>) -> u64,
    ) -> Box<dyn crate::store::history::Replay + Send> {
        let since = self.stats.keeps_since();
        let oldest = chrono::DateTime::<chrono::Utc>::from_timestamp(since.floor() as i64, 0)
            .unwrap_or_default();
        let first_file = crate::budgets::rebuild::files_since(files, oldest);
        Box::new(StatsReplay {
            routing: Arc::clone(self),
            since: oldest,
            first_file,
            first_offset: offset_since(first_file, oldest),
        })
    }

    /// Shares circuit openings and the statistics' counts through `shared` every half
    /// second (see [`stats`]) until the engine is dropped; `replica` tells this replica's
    /// counts from the others' in the stream (its own, past ones included, are already
    /// here from its usage log). At first it learns the other replicas' counts over the
    /// statistics' retention. When Redis cannot be reached, circuits and statistics stay
    /// this replica's own (with a warning) until it is back; what was opened and counted
    /// meanwhile is told then.
    pub fn share(
        self: &Arc<Self>,
        shared: Arc<crate::store::redis_shared::SharedRedis>,
        replica: String,
    ) {
        use crate::store::redis_shared::{RoutingNews, STATS_PAGE};
        self.stats.share();
        let routing = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut unsent: Vec<(String, f64)> = Vec::new();
            let mut untold = stats::Deltas::default();
            let mut read_from: Option<String> = None;
            let mut reachable = true;
            loop {
                tick.tick().await;
                let Some(routing) = routing.upgrade() else {
                    return;
                };
                unsent.extend(routing.stats.take_opened());
                untold.merge(routing.stats.take_deltas());
                let counts = (!untold.is_empty())
                    .then(|| serde_json::to_string(&untold).expect("counts serialise"));
                let keep_since_ms = (routing.stats.keeps_since() * 1000.0).max(0.0) as u64;
                let from = read_from
                    .clone()
                    .unwrap_or_else(|| keep_since_ms.to_string());
                let news = RoutingNews {
                    opened: &unsent,
                    counts: counts.as_deref().map(|counts| (replica.as_str(), counts)),
                    keep_since_ms,
                    read_from: &from,
                };
                let mut entries = match shared.exchange_routing(&news).await {
                    Ok((opened, entries)) => {
                        unsent.clear();
                        untold = stats::Deltas::default();
                        routing.stats.learn_opened(opened);
                        reachable = true;
                        entries
                    }
                    Err(error) => {
                        if reachable {
                            tracing::warn!(%error, "Redis cannot be reached: circuit breakers and routing statistics are this replica's own until it is back");
                        }
                        reachable = false;
                        continue;
                    }
                };
                loop {
                    let full = entries.len() == STATS_PAGE;
                    for (id, fields) in entries {
                        learn_entry(&routing.stats, &replica, &fields);
                        read_from = Some(format!("({id}"));
                    }
                    let Some(after) = read_from.as_deref().filter(|_| full) else {
                        break;
                    };
                    match shared.read_stats(&after[1..]).await {
                        Ok(more) => entries = more,
                        Err(_) => break, // Read again at the next tick.
                    }
                }
            }
        });
    }

    /// The usage sink's observer: every record updates the statistics.
    pub fn observe(&self, record: &UsageRecord) {
        self.stats.observe(record);
    }

    /// Routing figures for `/metrics`: attempts, retries, fallbacks, and each model's
    /// circuit state.
    pub fn add_metrics(&self, exposition: &mut Exposition) {
        for (name, help, counter) in [
            (
                "routerly_routing_attempts_total",
                "Provider attempts, retries included.",
                &self.attempts,
            ),
            (
                "routerly_routing_retries_total",
                "Retries of the same model after a retryable failure.",
                &self.retries,
            ),
            (
                "routerly_routing_fallbacks_total",
                "Moves to the next candidate after a model failed.",
                &self.fallbacks,
            ),
        ] {
            exposition.single(
                name,
                help,
                Kind::Counter,
                Value::Integer(counter.load(Ordering::Relaxed)),
            );
        }
        let family = exposition.family(
            "routerly_routing_circuit_state",
            "Circuit breaker state per model (1 for the current state).",
            Kind::Gauge,
        );
        for (model, state) in self.stats.circuits() {
            for candidate in ["closed", "open", "half_open"] {
                family.sample(
                    vec![
                        ("model", model.to_string()),
                        ("state", candidate.to_owned()),
                    ],
                    Value::Integer(u64::from(candidate == state)),
                );
            }
        }
    }
}

/// The statistics window a policy reads, when it reads one.
pub fn window_minutes(policy: &Policy) -> Option<f64> {
    match policy {
        Policy::Health(config) => Some(config.window_minutes),
        Policy::Performance(config) => Some(config.window_minutes),
        Policy::RateLimit(config) => Some(config.window_minutes),
        Policy::Fairness(config) => Some(config.window_minutes),
        _ => None,
    }
}

/// Why routing left no candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct NoCandidate {
    /// Every exclusion, in words.
    pub message: String,
    /// Whether the request itself is at fault (only `capability` and `context` excluded).
    pub request_fault: bool,
}

/// The request a routing decision is for.
pub struct RouteRequest<'a> {
    /// The project.
    pub project: &'a Project,
    /// The token's id.
    pub token_id: &'a str,
    /// The client's headers (conversation id).
    pub headers: &'a HeaderMap,
    /// The decoded request.
    pub request: &'a ChatRequest,
    /// Its trace.
    pub trace: &'a trace::LiveTrace,
    /// Its trace id (shared by the routing calls' records).
    pub trace_id: &'a str,
    /// The client surface.
    pub surface: routerly_core::usage::Surface,
}

/// Ranks `candidates` by the project's enabled policies and records the decision in the
/// trace; the ranking is the fallback order. With no enabled policy the candidates come
/// back as they are.
pub async fn route<'s>(
    app: &AppState,
    snapshot: &Snapshot,
    call: &RouteRequest<'_>,
    candidates: Vec<&'s ModelConfig>,
) -> Result<Vec<&'s ModelConfig>, NoCandidate> {
    if !call.project.routing.any_enabled() {
        return Ok(candidates);
    }
    // On the heap: the policies' state and model calls are several kilobytes that every
    // call's future would carry (and copy on each move) if they were awaited in place.
    Box::pin(route_by_policies(app, snapshot, call, candidates)).await
}

/// [`route`] for a project with policies enabled.
async fn route_by_policies<'s>(
    app: &AppState,
    snapshot: &Snapshot,
    call: &RouteRequest<'_>,
    candidates: Vec<&'s ModelConfig>,
) -> Result<Vec<&'s ModelConfig>, NoCandidate> {
    let routing = &call.project.routing;
    let started = Instant::now();
    let request = call.request;
    let ids: Vec<&str> = candidates.iter().map(|model| model.id.as_str()).collect();
    let count = candidates.len();
    let now = stats::now_seconds();
    let policies: Vec<&Policy> = routing.enabled().collect();
    let mut outcomes: Vec<Option<PolicyOutcome>> = Vec::with_capacity(policies.len());
    let mut details: Vec<Option<String>> = vec![None; policies.len()];
    let mut durations = vec![0u64; policies.len()];

    // Policies that read memory first; their exclusions spare the model calls below.
    for (position, policy) in policies.iter().enumerate() {
        let policy_started = Instant::now();
        let outcome = match policy {
            Policy::Cheapest(_) => {
                let prices: Vec<_> = candidates.iter().map(|model| model.pricing).collect();
                Some(score::cheapest(&prices))
            }
            Policy::Health(config) => {
                let (result, notes) = app.routing.stats.health(&ids, config, now);
                if !notes.is_empty() {
                    details[position] = Some(notes.join("; "));
                }
                Some(result)
            }
            Policy::Performance(config) => Some(app.routing.stats.performance(&ids, config, now)),
            Policy::Capability(_) => {
                let capabilities: Vec<_> =
                    candidates.iter().map(|model| model.capabilities).collect();
                Some(score::capability(RequestNeeds::of(request), &capabilities))
            }
            Policy::Context(_) => {
                let windows: Vec<_> = candidates
                    .iter()
                    .map(|model| model.context_window)
                    .collect();
                let output = request.max_tokens.map_or(0, u64::from);
                Some(score::context(
                    estimate::prompt_tokens(request),
                    output,
                    &windows,
                ))
            }
            Policy::RateLimit(config) => {
                let calls = app.routing.stats.calls(&ids, config.window_minutes, now);
                Some(score::rate_limit(&calls, config.max_calls_per_window))
            }
            Policy::Fairness(config) => {
                let (successes, total) =
                    app.routing
                        .stats
                        .successes(&call.project.id, &ids, config.window_minutes, now);
                Some(score::fairness(&successes, total))
            }
            Policy::BudgetRemaining(_) => {
                let fractions = app.budgets.remaining_fractions(
                    snapshot,
                    &call.project.id,
                    call.token_id,
                    &ids,
                );
                Some(score::budget_remaining(&fractions))
            }
            Policy::Llm(_) | Policy::SemanticIntent(_) => None,
        };
        durations[position] = policy_started.elapsed().as_micros() as u64;
        outcomes.push(outcome.map(PolicyOutcome::Scored));
    }
    let mut alive = vec![true; count];
    for outcome in outcomes.iter().flatten() {
        if let PolicyOutcome::Scored(result) = outcome {
            for (index, reason) in result.exclusions.iter().enumerate() {
                if reason.is_some() {
                    alive[index] = false;
                }
            }
        }
    }

    // Policies that call models, over the survivors only.
    let context = CallContext {
        project_id: &call.project.id,
        token_id: call.token_id,
        trace_id: call.trace_id,
        surface: call.surface,
    };
    let survivors: Vec<usize> = (0..count).filter(|&index| alive[index]).collect();
    for (position, policy) in policies.iter().enumerate() {
        if outcomes[position].is_some() {
            continue;
        }
        let policy_started = Instant::now();
        let evaluated = if survivors.len() < 2 {
            details[position] = Some("fewer than two candidates left: not asked".to_owned());
            Ok((PolicyResult::neutral(survivors.len()), None))
        } else {
            let surviving_models: Vec<&ModelConfig> =
                survivors.iter().map(|&index| candidates[index]).collect();
            let surviving_ids: Vec<&str> = survivors.iter().map(|&index| ids[index]).collect();
            match policy {
                Policy::Llm(config) => {
                    let prompts: Vec<&str> = surviving_models
                        .iter()
                        .map(|model| {
                            call.project
                                .models
                                .iter()
                                .find(|project_model| project_model.model_id == model.id)
                                .and_then(|project_model| project_model.routing_prompt.as_deref())
                                .unwrap_or("A general-purpose model.")
                        })
                        .collect();
                    let conversation = call
                        .headers
                        .get(CONVERSATION_HEADER)
                        .and_then(|value| value.to_str().ok());
                    calls::llm_scores(
                        app,
                        snapshot,
                        &context,
                        config,
                        &surviving_models,
                        &prompts,
                        request,
                        conversation,
                    )
                    .await
                    .map(|(result, detail)| (result, Some(detail)))
                }
                Policy::SemanticIntent(config) => {
                    calls::semantic_scores(app, snapshot, &context, config, &surviving_ids, request)
                        .await
                        .map(|(result, detail)| (result, Some(detail)))
                }
                _ => unreachable!("only the model-calling policies are left"),
            }
        };
        durations[position] = policy_started.elapsed().as_micros() as u64;
        outcomes[position] = Some(match evaluated {
            Ok((result, detail)) => {
                details[position] = detail.or(details[position].take());
                // Back to every candidate: the excluded ones score 0 and stay excluded.
                let mut full = PolicyResult {
                    scores: vec![0.0; count],
                    exclusions: vec![None; count],
                };
                for (slot, &index) in survivors.iter().enumerate() {
                    full.scores[index] = result.scores.get(slot).copied().unwrap_or(1.0);
                    full.exclusions[index] = result.exclusions.get(slot).cloned().flatten();
                }
                PolicyOutcome::Scored(full)
            }
            Err(error) => {
                tracing::warn!(policy = policy.kind().as_str(), %error, "routing policy failed; skipped");
                PolicyOutcome::Failed(error)
            }
        });
    }
    let outcomes: Vec<PolicyOutcome> = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every policy ran"))
        .collect();

    let pinned = pinned_index(call.project, &request.model, &candidates);
    let mut rng = rand::thread_rng();
    let ranking = routerly_core::routing::rank(count, &outcomes, pinned, &mut |below| {
        rng.gen_range(0..below)
    });

    call.trace.edit(|trace| {
        trace.policies = policies
            .iter()
            .enumerate()
            .map(|(position, policy)| {
                let (status, weight) = match ranking.participation[position] {
                    Participation::Weighted(weight) => ("weighted", Some(weight)),
                    Participation::Uniform => ("uniform", None),
                    Participation::Failed => ("failed", None),
                };
                let (scores, detail) = match &outcomes[position] {
                    PolicyOutcome::Scored(result) => (
                        ids.iter()
                            .enumerate()
                            .map(|(index, id)| ModelScore {
                                model: (*id).to_owned(),
                                score: result.scores.get(index).copied().unwrap_or(0.0),
                                excluded: result.exclusions.get(index).cloned().flatten(),
                            })
                            .collect(),
                        details[position].clone(),
                    ),
                    PolicyOutcome::Failed(error) => (Vec::new(), Some(error.clone())),
                };
                PolicyTrace {
                    kind: policy.kind().as_str().to_owned(),
                    status: status.to_owned(),
                    weight,
                    scores,
                    detail,
                    duration_us: durations[position],
                }
            })
            .collect();
        trace.ranking = ranking
            .order
            .iter()
            .map(|&index| RankedModel {
                model: ids[index].to_owned(),
                score: ranking.combined[index],
            })
            .collect();
        trace.shuffled = ranking.shuffled;
        trace.routing_us = started.elapsed().as_micros() as u64;
    });

    if ranking.order.is_empty() {
        let mut message = String::from("No model can serve this request: ");
        let mut request_fault = true;
        let reasons: Vec<String> = ranking
            .excluded
            .iter()
            .map(|(candidate, position, reason)| {
                let kind = policies[*position].kind();
                if !matches!(
                    kind,
                    routerly_core::routing::PolicyKind::Capability
                        | routerly_core::routing::PolicyKind::Context
                ) {
                    request_fault = false;
                }
                format!(
                    "`{}` excluded by `{}` ({reason})",
                    ids[*candidate],
                    kind.as_str()
                )
            })
            .collect();
        message.push_str(&reasons.join("; "));
        message.push('.');
        return Err(NoCandidate {
            message,
            request_fault,
        });
    }
    Ok(ranking
        .order
        .iter()
        .map(|&index| candidates[index])
        .collect())
}

/// The index of the model the client named, when it leads the candidates.
fn pinned_index(project: &Project, requested: &str, candidates: &[&ModelConfig]) -> Option<usize> {
    if requested.is_empty() || requested == "auto" {
        return None;
    }
    let named = project.models.iter().find(|model| {
        model.model_id == requested || model.aliases.iter().any(|alias| alias == requested)
    })?;
    (candidates.first()?.id == named.model_id).then_some(0)
}

/// The order of attempts: each candidate, retried after a retryable failure up to the
/// project's count, with backoff, while the request's deadline allows.
pub struct AttemptPlan<'a, 's> {
    candidates: &'a [&'s ModelConfig],
    retries: u32,
    deadline: Instant,
    next_index: usize,
    retry: u32,
    repeat: bool,
    routing: &'a Routing,
}

impl<'a, 's> AttemptPlan<'a, 's> {
    /// A plan over `candidates` (the ranking), retrying each up to `retries` times before
    /// `deadline`.
    pub fn new(
        routing: &'a Routing,
        candidates: &'a [&'s ModelConfig],
        retries: u32,
        deadline: Instant,
    ) -> Self {
        AttemptPlan {
            candidates,
            retries,
            deadline,
            next_index: 0,
            retry: 0,
            repeat: false,
            routing,
        }
    }

    /// The model to try next, or `None` when the candidates are exhausted.
    #[expect(
        clippy::should_implement_trait,
        reason = "advanced by `failed` between calls, not a plain iterator"
    )]
    pub fn next(&mut self) -> Option<&'s ModelConfig> {
        let model = if self.repeat {
            self.repeat = false;
            self.retries_counter().fetch_add(1, Ordering::Relaxed);
            self.candidates.get(self.next_index - 1).copied()
        } else {
            self.retry = 0;
            if self.next_index > 0 && self.next_index < self.candidates.len() {
                self.routing.fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            let model = self.candidates.get(self.next_index).copied();
            self.next_index += 1;
            model
        };
        if model.is_some() {
            self.routing.attempts.fetch_add(1, Ordering::Relaxed);
        }
        model
    }

    fn retries_counter(&self) -> &AtomicU64 {
        &self.routing.retries
    }

    /// After a failed attempt: the backoff to wait before retrying the same model, or
    /// `None` to move on (not retryable, retries used up, or the wait would pass the
    /// deadline).
    pub fn failed(&mut self, error: &UpstreamError) -> Option<Duration> {
        if error.disposition() != Disposition::Retry || self.retry >= self.retries {
            return None;
        }
        let retry_after = match error {
            UpstreamError::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let delay = retry::retry_delay(self.retry, retry_after, rand::random::<f64>(), remaining)?;
        self.retry += 1;
        self.repeat = true;
        Some(delay)
    }
}

/// Routing statistics' part of the start-up pass.
struct StatsReplay {
    routing: Arc<Routing>,
    since: chrono::DateTime<chrono::Utc>,
    first_file: usize,
    first_offset: u64,
}

impl crate::store::history::Replay for StatsReplay {
    fn start(&self) -> (usize, u64) {
        (self.first_file, self.first_offset)
    }

    fn visit(&mut self, record: &UsageRecord, _file_index: usize, _offset: u64, _len: u64) {
        if record.timestamp >= self.since {
            self.routing.stats.observe(record);
        }
    }
}

/// Adds the counts of one statistics-stream entry (fields `r`, `d`) to `stats` unless
/// `replica` wrote it; an entry that does not parse is skipped.
fn learn_entry(stats: &stats::Stats, replica: &str, fields: &[String]) {
    let field = |name: &str| {
        fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str())
    };
    if field("r") == Some(replica) {
        return;
    }
    match field("d").map(serde_json::from_str::<stats::Deltas>) {
        Some(Ok(deltas)) => stats.learn_deltas(deltas),
        _ => tracing::debug!("a routing-statistics entry in Redis that does not parse is skipped"),
    }
}
