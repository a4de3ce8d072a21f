//! Google Gemini wire format: `models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, as a provider (encode requests, decode answers) and
//! as a client shape (decode requests, encode answers), for a future Gemini surface.
//!
//! Choices where Gemini's shape and the canonical model do not line up one to one:
//! - Gemini has no tool-call ids on the public API: decoding invents `call_…` ids, and
//!   encoding finds a tool result's function name through the call it answers (Gemini
//!   matches results by name and order, so no id is sent back).
//! - Tool results become `functionResponse.response = {"result": text}` (or `{"error":
//!   text}` when the tool failed); images in a tool result follow as inline data.
//! - Tools and schemas are sent as `parametersJsonSchema` / `responseJsonSchema`, which
//!   take full JSON Schema (OpenAI-style schemas with `additionalProperties` would be
//!   refused by the older OpenAPI-subset `parameters` / `responseSchema`).
//! - Thought summaries (`thought: true` parts) are thinking; their `thoughtSignature` is
//!   kept. Signatures on function-call parts are not modelled, so a function call sent
//!   back carries Google's documented placeholder signature, which Gemini 3 accepts for
//!   history that did not come from it.
//! - Usage: `promptTokenCount` (cached tokens included) is the input; the output counts
//!   `candidatesTokenCount` plus `thoughtsTokenCount`, as canonical output includes
//!   reasoning.
//! - Gemini ends a turn with `STOP` even when it calls functions; an answer with calls
//!   decodes as [`StopReason::ToolUse`].

mod error;
use super::json;
mod request;
mod response;
mod stream;

pub use error::{decode_error, encode_error};
pub use request::{decode_request, encode_request, web_search};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

use serde_json::{Value, json};

use crate::canonical::{StopReason, Usage};

/// The thought signature Google documents for function calls whose history did not come
/// from Gemini (or whose signature was not kept).
pub const PLACEHOLDER_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// Gemini's `finishReason` for a canonical stop reason.
pub fn stop_reason_name(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn
        | StopReason::StopSequence
        | StopReason::ToolUse
        | StopReason::PauseTurn => "STOP",
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ContentFilter => "SAFETY",
    }
}

/// The canonical stop reason of a `finishReason`; `called_tools` turns `STOP` into
/// [`StopReason::ToolUse`].
fn stop_reason_from_name(name: &str, called_tools: bool) -> StopReason {
    match name {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            StopReason::ContentFilter
        }
        _ if called_tools => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

/// Canonical usage from `usageMetadata`.
fn usage_from_gemini(usage: &json::Object) -> Usage {
    let thoughts = json::lenient_u64(usage, "thoughtsTokenCount");
    Usage {
        input_tokens: json::lenient_u64(usage, "promptTokenCount")
            + json::lenient_u64(usage, "toolUsePromptTokenCount"),
        output_tokens: json::lenient_u64(usage, "candidatesTokenCount") + thoughts,
        cached_input_tokens: json::lenient_u64(usage, "cachedContentTokenCount"),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

/// Gemini's `usageMetadata` for canonical usage.
fn usage_to_gemini(usage: &Usage) -> Value {
    let candidates = usage.output_tokens.saturating_sub(usage.reasoning_tokens);
    let mut metadata = json!({
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": usage.total_tokens(),
    });
    if usage.cached_input_tokens > 0 {
        metadata["cachedContentTokenCount"] = Value::from(usage.cached_input_tokens);
    }
    if usage.reasoning_tokens > 0 {
        metadata["thoughtsTokenCount"] = Value::from(usage.reasoning_tokens);
    }
    metadata
}

/// A fresh id for a function call Gemini sent without one.
fn generated_call_id() -> String {
    format!("call_{}", uuid::Uuid::new_v4().simple())
}

/// The arguments object for a tool call's argument text; text that is not a JSON
/// object becomes `{}`, because an answer already produced must still be sent on.
fn args_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(args @ Value::Object(_)) => args,
        _ => json!({}),
    }
}
