//! The policies that call models themselves: `llm` asks a routing model to score the
//! candidates; `semantic-intent` embeds the last user message (and, once per configuration,
//! each intent's examples). Every such call leaves a usage record of call type `routing`,
//! priced at the called model's prices, so budgets and reports charge it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::HeaderMap;
use routerly_core::canonical::{ChatRequest, ContentPart, Message, Role, Usage};
use routerly_core::config::ModelConfig;
use routerly_core::routing::llm::{self, RoutingCandidate};
use routerly_core::routing::policy::{LlmConfig, SemanticIntentConfig};
use routerly_core::routing::score::{self, PolicyResult};
use routerly_core::usage::{self, CallType, Outcome, Surface, UsageRecord};
use routerly_core::wire;
use routerly_providers::{Operation, UpstreamResponse};
use serde_json::{Value, json};

use crate::proxy::target_for;
use crate::state::AppState;
use crate::store::config::Snapshot;

/// Who a routing call is made for, to attribute its usage record.
pub struct CallContext<'a> {
    /// The project.
    pub project_id: &'a str,
    /// The token.
    pub token_id: &'a str,
    /// The client call's trace id, which the routing call's record shares.
    pub trace_id: &'a str,
    /// The client call's surface.
    pub surface: Surface,
}

/// Conversations remembered by the `llm` policy.
const MEMORY_CONVERSATIONS: usize = 10_000;

/// What the `llm` and `semantic-intent` policies keep between requests.
#[derive(Default)]
pub struct CallCaches {
    /// Intent centroids by (embedding model, intent name, examples).
    centroids: Mutex<HashMap<CentroidKey, Arc<Vec<f32>>>>,
    /// The last choices per (project, conversation id).
    memory: Mutex<Memory>,
}

type CentroidKey = (String, String, Vec<String>);

#[derive(Default)]
struct Memory {
    choices: HashMap<(String, String), VecDeque<String>>,
    order: VecDeque<(String, String)>,
}

/// The text of the last user message (its text parts, joined).
pub fn last_user_text(request: &ChatRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == Role::User)
        .map(|message| {
            message
                .content
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The `llm` policy: scores for `candidates` from the routing model (or its fallbacks), and
/// what it said, for the trace. `Err` when every routing model failed: the policy is skipped.
#[expect(
    clippy::too_many_arguments,
    reason = "the policy's inputs, each used once"
)]
pub async fn llm_scores(
    app: &AppState,
    snapshot: &Snapshot,
    context: &CallContext<'_>,
    config: &LlmConfig,
    candidates: &[&ModelConfig],
    routing_prompts: &[&str],
    request: &ChatRequest,
    conversation_id: Option<&str>,
) -> Result<(PolicyResult, String), String> {
    let routing_candidates: Vec<RoutingCandidate<'_>> = candidates
        .iter()
        .zip(routing_prompts)
        .map(|(model, prompt)| RoutingCandidate {
            model: &model.id,
            description: prompt,
        })
        .collect();
    let memory_key = conversation_id
        .filter(|_| config.memory)
        .map(|id| (context.project_id.to_owned(), id.to_owned()));
    let recent: Vec<String> = memory_key
        .as_ref()
        .and_then(|key| {
            app.routing
                .caches
                .memory
                .lock()
                .expect("memory lock is never poisoned")
                .choices
                .get(key)
                .map(|choices| choices.iter().cloned().collect())
        })
        .unwrap_or_default();
    let user = llm::user_prompt(
        &routing_candidates,
        &last_user_text(request),
        config.max_user_message_chars,
        &recent,
    );
    let system = llm::system_prompt(config.include_reason);
    let ids: Vec<&str> = candidates.iter().map(|model| model.id.as_str()).collect();
    let mut failures = Vec::new();
    for routing_model_id in
        std::iter::once(&config.routing_model_id).chain(&config.fallback_model_ids)
    {
        let Some(routing_model) = snapshot.model(routing_model_id) else {
            failures.push(format!("`{routing_model_id}` is not registered"));
            continue;
        };
        let mut prompt = user.clone();
        // One repair attempt after an unusable answer.
        for attempt in 0..2 {
            let answer = chat(
                app,
                snapshot,
                context,
                routing_model,
                &system,
                &prompt,
                config.max_completion_tokens,
            )
            .await;
            match answer
                .and_then(|text| llm::parse_answer(&text).map_err(|problem| (problem, Some(text))))
            {
                Ok(choices) => {
                    let scores = llm::scores(&ids, &choices);
                    if let Some(key) = memory_key
                        && let Some(best) = ids
                            .iter()
                            .zip(&scores)
                            .max_by(|a, b| a.1.total_cmp(b.1))
                            .map(|(id, _)| (*id).to_owned())
                    {
                        remember(&app.routing.caches.memory, key, best, config.memory_count);
                    }
                    let detail =
                        format!("routing model `{}`{}", routing_model.id, reasons(&choices));
                    return Ok((PolicyResult::scores(scores), detail));
                }
                Err((problem, Some(_))) if attempt == 0 => {
                    prompt = llm::repair_prompt(&user, &problem);
                }
                Err((problem, _)) => {
                    failures.push(format!("`{}`: {problem}", routing_model.id));
                    break;
                }
            }
        }
    }
    Err(format!(
        "every routing model failed: {}",
        failures.join("; ")
    ))
}

fn reasons(choices: &[llm::RoutingChoice]) -> String {
    let given: Vec<String> = choices
        .iter()
        .filter_map(|choice| {
            choice
                .reason
                .as_ref()
                .map(|reason| format!("{}: {reason}", choice.model))
        })
        .collect();
    if given.is_empty() {
        String::new()
    } else {
        format!(" ({})", given.join("; "))
    }
}

fn remember(memory: &Mutex<Memory>, key: (String, String), choice: String, count: usize) {
    let mut memory = memory.lock().expect("memory lock is never poisoned");
    if !memory.choices.contains_key(&key) {
        memory.order.push_back(key.clone());
        while memory.order.len() > MEMORY_CONVERSATIONS {
            if let Some(oldest) = memory.order.pop_front() {
                memory.choices.remove(&oldest);
            }
        }
    }
    let choices = memory.choices.entry(key).or_default();
    choices.push_back(choice);
    while choices.len() > count {
        choices.pop_front();
    }
}

/// One non-streamed chat call to `model`, recorded as a routing call; its answer's text, or
/// why it failed (with the unusable text when there was one).
async fn chat(
    app: &AppState,
    snapshot: &Snapshot,
    context: &CallContext<'_>,
    model: &ModelConfig,
    system: &str,
    user: &str,
    max_tokens: u32,
) -> Result<String, (String, Option<String>)> {
    let request = ChatRequest {
        model: model.id.clone(),
        system: vec![ContentPart::Text {
            text: system.to_owned(),
        }],
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentPart::Text {
                text: user.to_owned(),
            }],
        }],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..ChatRequest::default()
    };
    let format = model.provider.wire_format();
    let body = wire::encode_request(format, &request, &model.upstream_model).map_err(|error| {
        (
            format!("cannot encode the routing request: {}", error.message),
            None,
        )
    })?;
    let started = Instant::now();
    let sent = app
        .upstream
        .send(
            &target_for(snapshot, model, None, None),
            Operation::Chat,
            serde_json::to_vec(&body).expect("a JSON value serializes"),
            false,
            &HeaderMap::new(),
        )
        .await;
    let answer = match sent {
        Ok(UpstreamResponse::Json(bytes)) => serde_json::from_slice::<Value>(&bytes)
            .map_err(|error| format!("the answer is not JSON: {error}"))
            .and_then(|value| wire::decode_response(format, &value).map_err(|error| error.message)),
        Ok(UpstreamResponse::Stream(_)) => {
            Err("the routing model answered with a stream".to_owned())
        }
        Err(error) => Err(error.to_string()),
    };
    match answer {
        Ok(response) => {
            record(
                app,
                context,
                model,
                response.usage,
                started,
                Outcome::Success,
                None,
            )
            .await;
            let text: String = response
                .content
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            Ok(text)
        }
        Err(problem) => {
            record(
                app,
                context,
                model,
                Usage::default(),
                started,
                Outcome::Error,
                Some(problem.clone()),
            )
            .await;
            Err((problem, None))
        }
    }
}

/// Leaves the usage record of a routing call.
async fn record(
    app: &AppState,
    context: &CallContext<'_>,
    model: &ModelConfig,
    usage: Usage,
    started: Instant,
    outcome: Outcome,
    error: Option<String>,
) {
    let cost = usage::cost(&model.pricing, &usage);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let record = UsageRecord {
        requested_model: None,
        id: uuid::Uuid::now_v7().to_string(),
        timestamp: chrono::Utc::now(),
        project_id: context.project_id.to_owned(),
        token_id: context.token_id.to_owned(),
        model_id: Some(model.id.clone()),
        provider: Some(model.provider.as_str().to_owned()),
        surface: context.surface,
        call_type: CallType::Routing,
        stream: false,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cached_input_tokens: usage.cached_input_tokens,
        cache_write_tokens: usage.cache_write_tokens,
        cost_usd: cost.total_usd,
        input_cost_usd: cost.input_usd,
        output_cost_usd: cost.output_usd,
        latency_ms,
        ttft_ms: None,
        overhead_ms: 0.0,
        outcome,
        status: if outcome == Outcome::Success {
            200
        } else {
            502
        },
        error: error.clone(),
        trace_id: context.trace_id.to_owned(),
        user: None,
        tags: Vec::new(),
        attempts: match error {
            Some(error) => vec![usage::Attempt {
                model_id: model.id.clone(),
                error,
                status: None,
            }],
            None => Vec::new(),
        },
    };
    app.usage.record(record).await;
}

/// The `semantic-intent` policy: embeds the last user message with the configured model,
/// compares it with each intent's centroid (embedded once, then cached) and keeps the
/// models of the intent(s) it matches. `Err` on any failure: the policy is skipped.
pub async fn semantic_scores(
    app: &AppState,
    snapshot: &Snapshot,
    context: &CallContext<'_>,
    config: &SemanticIntentConfig,
    model_ids: &[&str],
    request: &ChatRequest,
) -> Result<(PolicyResult, String), String> {
    let message = last_user_text(request);
    if message.trim().is_empty() {
        return Ok((
            PolicyResult::neutral(model_ids.len()),
            "no user text to classify: all kept".to_owned(),
        ));
    }
    let model = snapshot.model(&config.embedding_model_id).ok_or_else(|| {
        format!(
            "embedding model `{}` is not registered",
            config.embedding_model_id
        )
    })?;
    let mut centroids = Vec::with_capacity(config.intents.len());
    let mut missing = Vec::new();
    {
        let cache = app
            .routing
            .caches
            .centroids
            .lock()
            .expect("centroid lock is never poisoned");
        for (name, intent) in &config.intents {
            let key = (model.id.clone(), name.clone(), intent.examples.clone());
            match cache.get(&key) {
                Some(centroid) => centroids.push((name.clone(), Arc::clone(centroid))),
                None => missing.push((key, intent.examples.clone())),
            }
        }
    }
    if !missing.is_empty() {
        let texts: Vec<String> = missing
            .iter()
            .flat_map(|(_, examples)| examples.clone())
            .collect();
        let vectors = embed(app, snapshot, context, model, &texts).await?;
        let mut offset = 0;
        let mut cache = app
            .routing
            .caches
            .centroids
            .lock()
            .expect("centroid lock is never poisoned");
        for (key, examples) in missing {
            let centroid = Arc::new(score::centroid(&vectors[offset..offset + examples.len()]));
            offset += examples.len();
            centroids.push((key.1.clone(), Arc::clone(&centroid)));
            cache.insert(key, centroid);
        }
    }
    let embedded = embed(app, snapshot, context, model, &[message]).await?;
    let similarities: Vec<(String, f64)> = centroids
        .iter()
        .map(|(name, centroid)| (name.clone(), score::cosine(&embedded[0], centroid)))
        .collect();
    let decision = score::intent_decision(&similarities, config);
    let result = score::intent_exclusions(model_ids, &decision, config);
    Ok((result, decision.explanation))
}

/// Embeds `texts` with `model` through its provider's embeddings API (converted by
/// [`wire::embeddings`]), recorded as a routing call.
async fn embed(
    app: &AppState,
    snapshot: &Snapshot,
    context: &CallContext<'_>,
    model: &ModelConfig,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, String> {
    let Some(format) = wire::embeddings::EmbeddingsFormat::of(model.provider) else {
        return Err(format!(
            "`{}` ({}) has no embeddings endpoint",
            model.id,
            model.provider.as_str()
        ));
    };
    let request = json!({ "model": model.upstream_model, "input": texts });
    let body = wire::embeddings::encode_request(format, &request, &model.upstream_model)
        .map_err(|error| error.message)?;
    let started = Instant::now();
    let sent = app
        .upstream
        .send(
            &target_for(snapshot, model, None, None),
            Operation::Embeddings,
            serde_json::to_vec(&body).expect("a JSON value serializes"),
            false,
            &HeaderMap::new(),
        )
        .await;
    let parsed = match sent {
        Ok(UpstreamResponse::Json(bytes)) => serde_json::from_slice::<Value>(&bytes)
            .map_err(|error| format!("not JSON: {error}"))
            .and_then(|answer| {
                wire::embeddings::decode_response(format, &answer, &request, &model.id)
            })
            .and_then(|decoded| parse_embeddings(&decoded.body, texts.len())),
        Ok(UpstreamResponse::Stream(_)) => Err("the embeddings answer is a stream".to_owned()),
        Err(error) => Err(error.to_string()),
    };
    match parsed {
        Ok((vectors, input_tokens)) => {
            let usage = Usage {
                input_tokens,
                ..Usage::default()
            };
            record(app, context, model, usage, started, Outcome::Success, None).await;
            Ok(vectors)
        }
        Err(problem) => {
            record(
                app,
                context,
                model,
                Usage::default(),
                started,
                Outcome::Error,
                Some(problem.clone()),
            )
            .await;
            Err(format!("embedding with `{}` failed: {problem}", model.id))
        }
    }
}

fn parse_embeddings(value: &Value, expected: usize) -> Result<(Vec<Vec<f32>>, u64), String> {
    let data = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or("no `data` array")?;
    let mut vectors: Vec<(u64, Vec<f32>)> = Vec::with_capacity(data.len());
    for (position, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let vector = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or("an item has no `embedding` array (base64 is not asked for)")?
            .iter()
            .map(|number| number.as_f64().map(|number| number as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or("an embedding holds a non-number")?;
        vectors.push((index, vector));
    }
    if vectors.len() != expected {
        return Err(format!(
            "{} embeddings for {expected} inputs",
            vectors.len()
        ));
    }
    vectors.sort_by_key(|(index, _)| *index);
    let tokens = value
        .pointer("/usage/prompt_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok((
        vectors.into_iter().map(|(_, vector)| vector).collect(),
        tokens,
    ))
}
