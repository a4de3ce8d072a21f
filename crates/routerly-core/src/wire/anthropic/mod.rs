//! Anthropic Messages wire format: `POST /v1/messages` and `/v1/messages/count_tokens`,
//! both as a client surface (decode requests, encode answers) and as a provider (encode
//! requests, decode answers).
//!
//! Choices where Anthropic's shape and the canonical model do not line up one to one:
//! - `redacted_thinking` blocks are dropped when decoding: their encrypted `data` means
//!   nothing to another provider, and [`ContentPart::Thinking`] has no place for it.
//!   Anthropic-to-Anthropic traffic passes through untouched, so nothing is lost there.
//! - `cache_control` and `citations` are not modelled and are dropped.
//! - Tool `strict` is neither decoded nor encoded, so Anthropic's structured-output beta
//!   is not implied for providers that reject the field.
//! - Usage: canonical `input_tokens` counts every prompt token, so decoding adds
//!   `cache_read_input_tokens` and `cache_creation_input_tokens` to Anthropic's
//!   `input_tokens`, and encoding subtracts them again.
//! - Unknown stop reasons (the API adds some over time) decode as
//!   [`StopReason::EndTurn`], except `model_context_window_exceeded`, which is a
//!   [`StopReason::MaxTokens`].
//!
//! [`ContentPart::Thinking`]: crate::canonical::ContentPart::Thinking

mod error;
use super::json;
mod request;
mod response;
mod stream;

pub use error::{decode_error, encode_error};
pub use request::{
    count_tokens_request, decode_request, decode_simple_request, encode_request, web_search,
};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

use serde_json::{Value, json};

use crate::canonical::{StopReason, Usage};

/// `max_tokens` sent upstream when the canonical request has none: Anthropic requires the
/// field while OpenAI clients usually omit it. 4096 fits every current Claude model's
/// output limit and is enough for ordinary chat answers.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Anthropic's name for a stop reason.
pub fn stop_reason_name(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::ContentFilter => "refusal",
        StopReason::PauseTurn => "pause_turn",
    }
}

/// The stop reason that Anthropic's name stands for; see the module doc for unknown names.
fn stop_reason_from_name(name: &str) -> StopReason {
    match name {
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::ContentFilter,
        "pause_turn" => StopReason::PauseTurn,
        _ => StopReason::EndTurn,
    }
}

/// Canonical usage from an Anthropic `usage` object; absent counters count as 0.
fn usage_from_anthropic(usage: &json::Object) -> Usage {
    let cache_read = json::lenient_u64(usage, "cache_read_input_tokens");
    let cache_creation = json::lenient_u64(usage, "cache_creation_input_tokens");
    Usage {
        input_tokens: json::lenient_u64(usage, "input_tokens") + cache_read + cache_creation,
        output_tokens: json::lenient_u64(usage, "output_tokens"),
        cached_input_tokens: cache_read,
        cache_write_tokens: cache_creation,
        reasoning_tokens: 0,
    }
}

/// [`usage_from_anthropic`] straight from the usage object's text, reading only its
/// counters; `None` when the text does not have that shape.
pub fn usage_from_text(text: &str) -> Option<Usage> {
    #[derive(serde::Deserialize)]
    struct Counters {
        #[serde(default)]
        input_tokens: Value,
        #[serde(default)]
        output_tokens: Value,
        #[serde(default)]
        cache_read_input_tokens: Value,
        #[serde(default)]
        cache_creation_input_tokens: Value,
    }
    // serde would also take the fields as an array.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let counters: Counters = serde_json::from_str(text).ok()?;
    let count = |value: &Value| value.as_u64().unwrap_or(0);
    let cache_read = count(&counters.cache_read_input_tokens);
    let cache_creation = count(&counters.cache_creation_input_tokens);
    Some(Usage {
        input_tokens: count(&counters.input_tokens) + cache_read + cache_creation,
        output_tokens: count(&counters.output_tokens),
        cached_input_tokens: cache_read,
        cache_write_tokens: cache_creation,
        reasoning_tokens: 0,
    })
}

/// Anthropic's `usage` object for canonical usage, with the cache counters taken back out
/// of `input_tokens`.
fn usage_to_anthropic(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.uncached_input_tokens(),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
    })
}

/// The tool input object for a tool call's argument text; arguments that are not a JSON
/// object become `{}`, because an answer already produced must still reach the client.
fn tool_input_or_empty(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(input @ Value::Object(_)) => input,
        _ => json!({}),
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn the_usage_read_from_text_is_the_usage_read_from_the_object() {
        for text in [
            r#"{"input_tokens":10,"output_tokens":2}"#,
            r#"{"input_tokens":10,"output_tokens":2,"cache_read_input_tokens":5,"cache_creation_input_tokens":3,"cache_creation":{"ephemeral_5m_input_tokens":3},"service_tier":"standard"}"#,
            r#"{"input_tokens":null,"output_tokens":-1}"#,
        ] {
            let object: json::Object = serde_json::from_str(text).unwrap();
            assert_eq!(
                usage_from_text(text),
                Some(usage_from_anthropic(&object)),
                "{text}"
            );
        }
        assert_eq!(usage_from_text("[]"), None);
    }
}
