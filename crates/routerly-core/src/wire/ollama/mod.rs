//! Ollama's native chat API, `POST /api/chat`, as a provider (encode requests, decode
//! answers and newline-delimited JSON streams) and as a client shape.
//!
//! Choices where Ollama's shape and the canonical model do not line up one to one:
//! - Streaming is Ollama's default, so `stream` is always sent explicitly. Each line of
//!   the stream is one JSON object; the providers crate frames the lines as events with
//!   no name, so [`StreamDecoder`] sees them exactly like SSE `data:` payloads.
//! - Tool arguments are JSON objects on the wire (text in the canonical model), tool
//!   calls usually have no ids (decoding invents `call_…` ids) and tool results name the
//!   function (`tool_name`), found through the call they answer.
//! - Images are base64 only: an image URL is refused with a 400 naming the model. Ollama
//!   wants no MIME type; decoding guesses it from the data's first bytes.
//! - Ollama has no `tool_choice`: `none` sends no tools, a named tool sends only that
//!   tool, and `required` sends the tools as they are (Ollama cannot force a call).
//! - Usage: `prompt_eval_count` is the input, `eval_count` the output; Ollama reports no
//!   cached tokens.

mod error;
use super::json;
mod request;
mod response;
mod stream;

pub use error::{decode_error, encode_error};
pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

use serde_json::{Value, json};

use crate::canonical::{StopReason, Usage};

/// Ollama's `done_reason` for a canonical stop reason.
pub fn stop_reason_name(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::MaxTokens => "length",
        _ => "stop",
    }
}

/// The canonical stop reason of a `done_reason`; `called_tools` makes a plain stop a
/// [`StopReason::ToolUse`], since Ollama says `stop` either way.
fn stop_reason_from_name(name: Option<&str>, called_tools: bool) -> StopReason {
    match name {
        Some("length") => StopReason::MaxTokens,
        _ if called_tools => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

/// Canonical usage from a final (`done: true`) object.
fn usage_from_ollama(object: &json::Object) -> Usage {
    Usage {
        input_tokens: json::lenient_u64(object, "prompt_eval_count"),
        output_tokens: json::lenient_u64(object, "eval_count"),
        ..Usage::default()
    }
}

/// A fresh id for a tool call Ollama sent without one.
fn generated_call_id() -> String {
    format!("call_{}", uuid::Uuid::new_v4().simple())
}

/// The arguments object for a tool call's argument text (`{}` when it is not an object).
fn args_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(args @ Value::Object(_)) => args,
        _ => json!({}),
    }
}
