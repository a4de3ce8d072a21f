//! Wire formats: one module per client/provider protocol, each converting between its
//! JSON bodies and SSE events and the canonical model of [`crate::canonical`].
//!
//! Every module offers the same functions, in the same order:
//! `decode_request`, `encode_request`, `decode_response`, `encode_response`,
//! `StreamDecoder`, `StreamEncoder`, `decode_error`, `encode_error`.

pub mod anthropic;
pub mod openai;

use serde::{Deserialize, Serialize};

/// A wire protocol for chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// OpenAI Chat Completions.
    OpenAiChat,
    /// Anthropic Messages.
    AnthropicMessages,
}

/// One server-sent event to write: an optional `event:` name and its `data:` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    /// The `event:` line, when the format names events (Anthropic does, OpenAI does not).
    pub event: Option<&'static str>,
    /// The `data:` payload (one line of JSON, or `[DONE]`).
    pub data: String,
}

impl SseFrame {
    /// Writes the frame in SSE syntax, ready to send in one write.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 32);
        if let Some(event) = self.event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(event.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.data.as_bytes());
        out.extend_from_slice(b"\n\n");
        out
    }
}
