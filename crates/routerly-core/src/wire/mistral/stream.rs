//! Streamed answers: Mistral's chunks, normalized and decoded as OpenAI's. Mistral puts
//! usage on the chunk that carries the finish reason, then sends `data: [DONE]`.

use serde_json::Value;

use super::response::normalize_choice;
use crate::canonical::{DecodeError, StreamEvent};
use crate::wire::{SseFrame, openai};

/// Turns Mistral's `data:` payloads into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    openai: openai::StreamDecoder,
}

impl StreamDecoder {
    /// A decoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one payload: a chunk's JSON, or `[DONE]`.
    pub fn decode(&mut self, data: &str) -> Result<Vec<StreamEvent>, DecodeError> {
        // Only chunked content (a `"text"` or `"thinking"` key outside any string: inside
        // one, quotes are escaped) and `model_length` need rewriting; nearly every chunk is
        // decoded as it is.
        let needs_normalizing = data.contains("model_length")
            || data.contains("\"thinking\"")
            || data.contains("\"text\"");
        if !needs_normalizing {
            return self.openai.decode(data);
        }
        let mut chunk: Value = serde_json::from_str(data).map_err(|error| {
            DecodeError::new(format!(
                "The provider sent a stream chunk that is not JSON: {error}"
            ))
        })?;
        if let Some(Value::Array(choices)) = chunk.get_mut("choices") {
            for choice in choices {
                normalize_choice(choice, "delta");
            }
        }
        self.openai.decode(&chunk.to_string())
    }
}

/// Turns canonical events into the chunks a Mistral client reads: OpenAI's chunks, with
/// usage on the last one, as Mistral sends it.
#[derive(Debug)]
pub struct StreamEncoder {
    openai: openai::StreamEncoder,
}

impl Default for StreamEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamEncoder {
    /// An encoder for a new stream.
    pub fn new() -> Self {
        StreamEncoder {
            openai: openai::StreamEncoder::new(true),
        }
    }

    /// Encodes one event as zero or more frames.
    pub fn encode(&mut self, event: &StreamEvent) -> Vec<SseFrame> {
        self.openai.encode(event)
    }
}
