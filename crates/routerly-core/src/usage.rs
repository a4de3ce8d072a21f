//! Usage records (one line each in `data/usage.jsonl`) and their cost.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::canonical::Usage;
use crate::config::Pricing;
use crate::json_text;

/// Which client surface a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/embeddings`.
    Embeddings,
}

/// What the call was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallType {
    /// A client's completion.
    Completion,
    /// A routing model's call.
    Routing,
    /// An embedding.
    Embedding,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The client got its answer.
    Success,
    /// It failed (provider error, bad request, no candidate).
    Error,
    /// A provider timed out.
    Timeout,
    /// A budget stopped it before any provider was called.
    BudgetExceeded,
    /// The client hung up before the answer was complete.
    Cancelled,
}

impl Surface {
    /// The name records, metrics and logs use (what serde writes).
    pub fn name(self) -> &'static str {
        match self {
            Surface::ChatCompletions => "chat_completions",
            Surface::Messages => "messages",
            Surface::Responses => "responses",
            Surface::Embeddings => "embeddings",
        }
    }
}

impl CallType {
    /// The name records use (what serde writes).
    pub fn name(self) -> &'static str {
        match self {
            CallType::Completion => "completion",
            CallType::Routing => "routing",
            CallType::Embedding => "embedding",
        }
    }
}

impl Outcome {
    /// The name records, metrics and logs use (what serde writes).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::BudgetExceeded => "budget_exceeded",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Cost in USD, with its parts.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cost {
    /// Input side: uncached, cached and cache-write tokens.
    pub input_usd: f64,
    /// Output tokens.
    pub output_usd: f64,
    /// The sum.
    pub total_usd: f64,
}

/// The cost of `usage` at `pricing` (USD per million tokens); cached and cache-write
/// tokens use their own prices, falling back to the input price.
///
/// A long-context tier, when the prompt exceeds its threshold, replaces every price.
pub fn cost(pricing: &Pricing, usage: &Usage) -> Cost {
    const PER: f64 = 1_000_000.0;
    let (input_price, output_price, cached_price, cache_write_price) = match pricing.long_context {
        Some(tier) if usage.input_tokens > tier.above_input_tokens => (
            tier.input,
            tier.output,
            tier.cached_input.unwrap_or(tier.input),
            tier.cache_write.unwrap_or(tier.input),
        ),
        _ => (
            pricing.input,
            pricing.output,
            pricing.cached_input.unwrap_or(pricing.input),
            pricing.cache_write.unwrap_or(pricing.input),
        ),
    };
    let input_usd = bounded_usd(
        (usage.uncached_input_tokens() as f64 * input_price
            + usage.cached_input_tokens as f64 * cached_price
            + usage.cache_write_tokens as f64 * cache_write_price)
            / PER,
    );
    let output_usd = bounded_usd(usage.output_tokens as f64 * output_price / PER);
    Cost {
        input_usd,
        output_usd,
        total_usd: input_usd + output_usd,
    }
}

/// Tags kept from one call's `x-routerly-tags` header; the rest are dropped.
pub const MAX_TAGS: usize = 32;
/// Characters kept of one tag.
pub const MAX_TAG_CHARS: usize = 64;
/// Characters kept of a request's `user` field.
pub const MAX_USER_CHARS: usize = 256;
/// Characters kept of an error text in a record or trace.
pub const MAX_ERROR_CHARS: usize = 1024;
/// Characters of a client-given name (a model name) echoed in an error message.
pub const MAX_ECHOED_NAME_CHARS: usize = 200;

/// `text` cut to at most `max_chars` characters, with `…` marking a cut: what a client
/// sends is bounded before it reaches a response, a record or a log line.
pub fn clip(text: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => {
            let keep = text[..cut]
                .char_indices()
                .nth(max_chars.saturating_sub(1))
                .map_or(cut, |(index, _)| index);
            std::borrow::Cow::Owned(format!("{}…", &text[..keep]))
        }
    }
}

/// The tags of a call, bounded: at most [`MAX_TAGS`], each at most [`MAX_TAG_CHARS`].
pub fn bounded_tags(mut tags: Vec<String>) -> Vec<String> {
    tags.truncate(MAX_TAGS);
    for tag in &mut tags {
        if let std::borrow::Cow::Owned(clipped) = clip(tag, MAX_TAG_CHARS) {
            *tag = clipped;
        }
    }
    tags
}

/// The most one call can cost, in USD. Validated prices (at most
/// [`crate::ranges::MAX_PRICE_PER_MILLION`]) times any `u64` token count stay far below it; the
/// bound only guarantees that a cost is always a finite number (JSON has no infinity, and a
/// record whose cost were `null` would drop out of every reader and budget).
pub const MAX_CALL_COST_USD: f64 = 1e18;

fn bounded_usd(usd: f64) -> f64 {
    if usd.is_nan() {
        0.0
    } else {
        usd.clamp(0.0, MAX_CALL_COST_USD)
    }
}

/// One call, as appended to `data/usage.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Unique id of the record.
    pub id: String,
    /// When the call finished.
    pub timestamp: DateTime<Utc>,
    /// The project's id.
    pub project_id: String,
    /// The token's id.
    pub token_id: String,
    /// The model that served (or last failed); `None` when none was tried.
    pub model_id: Option<String>,
    /// That model's provider.
    pub provider: Option<String>,
    /// The client surface.
    pub surface: Surface,
    /// What the call was for.
    pub call_type: CallType,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to cache.
    pub cache_write_tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Input part of the cost.
    pub input_cost_usd: f64,
    /// Output part of the cost.
    pub output_cost_usd: f64,
    /// From receiving the request to the last byte sent, in milliseconds.
    pub latency_ms: f64,
    /// From receiving the request to the first byte of the answer, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Time spent in Routerly itself (latency minus upstream time), in milliseconds.
    pub overhead_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status returned to the client.
    pub status: u16,
    /// What went wrong, without secrets.
    pub error: Option<String>,
    /// The routing trace's id, also sent as `x-routerly-trace-id`.
    pub trace_id: String,
    /// The request's `user` field.
    pub user: Option<String>,
    /// Tags from the `x-routerly-tags` header.
    pub tags: Vec<String>,
    /// Every model tried before the one that served, with why it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// The model name the client asked for (a model id, an alias or `auto`), so a call
    /// served by another model than the one named shows both; `None` in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_model: Option<String>,
}

/// One failed try of a candidate model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// The model tried.
    pub model_id: String,
    /// What went wrong.
    pub error: String,
    /// The provider's status, when it answered.
    pub status: Option<u16>,
}

impl UsageRecord {
    /// Appends the record's JSON to `out`: the bytes its `Serialize` writes (same members,
    /// order and values; a test compares them), with each member's name written as it is
    /// rather than escaped on every record (serde's key escaping and per-member calls were
    /// about half of the usage writer's instructions per call).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        fn member<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &[u8], value: &T) {
            out.extend_from_slice(name);
            serde_json::to_writer(&mut *out, value).expect("a usage record's values serialize");
        }
        // Strings and the time written without serde (see `json_text`).
        fn text(out: &mut Vec<u8>, name: &[u8], value: Option<&str>) {
            out.extend_from_slice(name);
            json_text::optional_string(out, value);
        }
        text(out, b"{\"id\":", Some(&self.id));
        out.extend_from_slice(b",\"timestamp\":");
        json_text::timestamp(out, &self.timestamp);
        text(out, b",\"project_id\":", Some(&self.project_id));
        text(out, b",\"token_id\":", Some(&self.token_id));
        text(out, b",\"model_id\":", self.model_id.as_deref());
        text(out, b",\"provider\":", self.provider.as_deref());
        // The names need no escape.
        fn name(out: &mut Vec<u8>, member: &[u8], name: &str) {
            out.extend_from_slice(member);
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.push(b'"');
        }
        name(out, b",\"surface\":", self.surface.name());
        name(out, b",\"call_type\":", self.call_type.name());
        member(out, b",\"stream\":", &self.stream);
        member(out, b",\"input_tokens\":", &self.input_tokens);
        member(out, b",\"output_tokens\":", &self.output_tokens);
        member(out, b",\"cached_input_tokens\":", &self.cached_input_tokens);
        member(out, b",\"cache_write_tokens\":", &self.cache_write_tokens);
        member(out, b",\"cost_usd\":", &self.cost_usd);
        member(out, b",\"input_cost_usd\":", &self.input_cost_usd);
        member(out, b",\"output_cost_usd\":", &self.output_cost_usd);
        member(out, b",\"latency_ms\":", &self.latency_ms);
        member(out, b",\"ttft_ms\":", &self.ttft_ms);
        member(out, b",\"overhead_ms\":", &self.overhead_ms);
        name(out, b",\"outcome\":", self.outcome.name());
        member(out, b",\"status\":", &self.status);
        text(out, b",\"error\":", self.error.as_deref());
        text(out, b",\"trace_id\":", Some(&self.trace_id));
        text(out, b",\"user\":", self.user.as_deref());
        member(out, b",\"tags\":", &self.tags);
        if !self.attempts.is_empty() {
            member(out, b",\"attempts\":", &self.attempts);
        }
        if let Some(requested_model) = &self.requested_model {
            text(out, b",\"requested_model\":", Some(requested_model));
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_serde_writes() {
        for surface in [
            Surface::ChatCompletions,
            Surface::Messages,
            Surface::Responses,
            Surface::Embeddings,
        ] {
            assert_eq!(
                serde_json::to_value(surface).expect("serializes"),
                surface.name()
            );
        }
        for call_type in [CallType::Completion, CallType::Routing, CallType::Embedding] {
            assert_eq!(
                serde_json::to_value(call_type).expect("serializes"),
                call_type.name()
            );
        }
        for outcome in [
            Outcome::Success,
            Outcome::Error,
            Outcome::Timeout,
            Outcome::BudgetExceeded,
            Outcome::Cancelled,
        ] {
            assert_eq!(
                serde_json::to_value(outcome).expect("serializes"),
                outcome.name()
            );
        }
    }

    #[test]
    fn a_record_written_by_hand_is_what_serde_writes() {
        let full = UsageRecord {
            id: "0190-a".to_owned(),
            timestamp: "2026-12-04T17:06:14.123456789Z".parse().expect("a time"),
            project_id: "p\"1".to_owned(),
            token_id: "t\\1".to_owned(),
            model_id: Some("m\u{1}é".to_owned()),
            provider: Some("openai".to_owned()),
            surface: Surface::Messages,
            call_type: CallType::Embedding,
            stream: true,
            input_tokens: u64::MAX,
            output_tokens: 3,
            cached_input_tokens: 4,
            cache_write_tokens: 5,
            cost_usd: 0.1 + 0.2,
            input_cost_usd: 1e-12,
            output_cost_usd: MAX_CALL_COST_USD,
            latency_ms: 12.5,
            ttft_ms: Some(f64::NAN),
            overhead_ms: 0.0,
            outcome: Outcome::BudgetExceeded,
            status: 503,
            error: Some("line\nbreak 💡".to_owned()),
            trace_id: "0190-b".to_owned(),
            user: Some("u".to_owned()),
            tags: vec!["a".to_owned(), "\"b\"".to_owned()],
            attempts: vec![Attempt {
                model_id: "x".to_owned(),
                error: "e".to_owned(),
                status: None,
            }],
            requested_model: Some("auto".to_owned()),
        };
        let bare = UsageRecord {
            model_id: None,
            provider: None,
            ttft_ms: None,
            error: None,
            user: None,
            tags: Vec::new(),
            attempts: Vec::new(),
            requested_model: None,
            ..full.clone()
        };
        for record in [full, bare] {
            let mut written = Vec::new();
            record.write_json(&mut written);
            let serde = serde_json::to_vec(&record).expect("a record serializes");
            assert_eq!(
                String::from_utf8(written).expect("UTF-8"),
                String::from_utf8(serde).expect("UTF-8")
            );
        }
    }

    #[test]
    fn cached_and_cache_write_tokens_use_their_own_prices() {
        let pricing = Pricing {
            input: 3.0,
            output: 15.0,
            cached_input: Some(0.3),
            cache_write: Some(3.75),
            long_context: None,
        };
        let usage = Usage {
            input_tokens: 1_000_000 + 2_000_000 + 4_000_000,
            output_tokens: 1_000_000,
            cached_input_tokens: 2_000_000,
            cache_write_tokens: 4_000_000,
            reasoning_tokens: 0,
        };
        let cost = cost(&pricing, &usage);
        assert!(
            (cost.input_usd - (3.0 + 0.6 + 15.0)).abs() < 1e-9,
            "{cost:?}"
        );
        assert!((cost.output_usd - 15.0).abs() < 1e-9, "{cost:?}");
        assert!((cost.total_usd - 33.6).abs() < 1e-9, "{cost:?}");
    }

    #[test]
    fn missing_cache_prices_fall_back_to_the_input_price() {
        let pricing = Pricing {
            input: 2.0,
            output: 8.0,
            cached_input: None,
            cache_write: None,
            long_context: None,
        };
        let usage = Usage {
            input_tokens: 500_000,
            cached_input_tokens: 250_000,
            ..Usage::default()
        };
        assert!((cost(&pricing, &usage).input_usd - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_long_prompt_is_billed_at_the_long_context_tier() {
        let pricing = Pricing {
            input: 1.25,
            output: 10.0,
            cached_input: None,
            cache_write: None,
            long_context: Some(crate::config::PriceTier {
                above_input_tokens: 200_000,
                input: 2.5,
                output: 15.0,
                cached_input: None,
                cache_write: None,
            }),
        };
        let short = Usage {
            input_tokens: 200_000,
            output_tokens: 100_000,
            ..Usage::default()
        };
        let long = Usage {
            input_tokens: 400_000,
            output_tokens: 100_000,
            ..Usage::default()
        };
        assert!((cost(&pricing, &short).total_usd - (0.25 + 1.0)).abs() < 1e-9);
        assert!((cost(&pricing, &long).total_usd - (1.0 + 1.5)).abs() < 1e-9);
    }
}
