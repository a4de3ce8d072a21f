//! Streamed answers: the lines of an Ollama NDJSON stream to canonical [`StreamEvent`]s,
//! and canonical events to the lines an Ollama client reads.
//!
//! Each line is a chat object with a piece of the message; tool calls arrive whole; the
//! last line has `done: true`, the `done_reason` and the token counts.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::json::get;
use super::response::{created_at, decode_message_parts};
use super::{args_object, stop_reason_from_name, stop_reason_name, usage_from_ollama};
use crate::canonical::{ContentPart, DecodeError, StopReason, StreamEvent, Usage};
use crate::wire::SseFrame;
use crate::wire::blocks::{BlockTracker, OpenBlock};

/// Turns the lines of an Ollama stream into canonical events, one line at a time.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    finished: bool,
    blocks: BlockTracker,
    called_tools: bool,
}

impl StreamDecoder {
    /// A decoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one line; the `done: true` line also yields `Usage`, `Finish` and `End`.
    pub fn decode(&mut self, data: &str) -> Result<Vec<StreamEvent>, DecodeError> {
        let mut events = Vec::new();
        if self.finished || data.trim().is_empty() {
            return Ok(events);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|error| {
            DecodeError::new(format!(
                "The provider sent a stream line that is not JSON: {error}"
            ))
        })?;
        let chunk_map = chunk.as_object().ok_or_else(|| {
            DecodeError::new("The provider sent a stream line that is not a JSON object.")
        })?;
        if let Some(error_value) = get(chunk_map, "error") {
            let message = error_value.as_str().unwrap_or("unknown error");
            return Err(DecodeError::new(format!(
                "The provider reported an error mid-stream: {message}"
            )));
        }
        if !self.started {
            self.started = true;
            events.push(StreamEvent::Start {
                id: format!("ollama-{}", uuid::Uuid::new_v4().simple()),
                model: get(chunk_map, "model")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                usage: Usage::default(),
            });
        }
        if let Some(message_map) = get(chunk_map, "message").and_then(Value::as_object) {
            for part in decode_message_parts(message_map) {
                match part {
                    ContentPart::Text { text } => {
                        let index = self.blocks.ensure(OpenBlock::Text, &mut events);
                        events.push(StreamEvent::TextDelta { index, text });
                    }
                    ContentPart::Thinking { text, .. } => {
                        let index = self.blocks.ensure(OpenBlock::Thinking, &mut events);
                        events.push(StreamEvent::ThinkingDelta { index, text });
                    }
                    ContentPart::ToolCall {
                        id,
                        name,
                        arguments,
                    } => {
                        self.blocks.close(&mut events);
                        let index = self.blocks.next_index();
                        self.called_tools = true;
                        events.push(StreamEvent::ToolCallStart { index, id, name });
                        events.push(StreamEvent::ToolCallDelta { index, arguments });
                        events.push(StreamEvent::BlockStop { index });
                    }
                    ContentPart::Image { .. }
                    | ContentPart::ToolResult { .. }
                    | ContentPart::Document { .. }
                    | ContentPart::Opaque { .. } => {}
                }
            }
        }
        if get(chunk_map, "done").and_then(Value::as_bool) == Some(true) {
            self.finished = true;
            self.blocks.close(&mut events);
            events.push(StreamEvent::Usage {
                usage: usage_from_ollama(chunk_map),
            });
            events.push(StreamEvent::Finish {
                stop_reason: stop_reason_from_name(
                    get(chunk_map, "done_reason").and_then(Value::as_str),
                    self.called_tools,
                ),
                stop_sequence: None,
            });
            events.push(StreamEvent::End);
        }
        Ok(events)
    }
}

/// Turns canonical events into the lines an Ollama client reads. Each frame's `data` is
/// one line of JSON; an NDJSON surface writes it followed by a newline.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    model: String,
    created: i64,
    usage: Usage,
    stop_reason: Option<StopReason>,
    tool_calls: HashMap<usize, (String, String)>,
    done: bool,
}

impl StreamEncoder {
    /// An encoder for a new stream.
    pub fn new() -> Self {
        StreamEncoder {
            created: chrono::Utc::now().timestamp(),
            ..Self::default()
        }
    }

    /// Encodes one event as zero or more lines.
    pub fn encode(&mut self, event: &StreamEvent) -> Vec<SseFrame> {
        if self.done {
            return Vec::new();
        }
        match event {
            StreamEvent::Start { model, usage, .. } => {
                self.model.clone_from(model);
                self.usage.merge(usage);
                Vec::new()
            }
            StreamEvent::TextDelta { text, .. } if !text.is_empty() => {
                vec![self.line(json!({"role": "assistant", "content": text}))]
            }
            StreamEvent::ThinkingDelta { text, .. } if !text.is_empty() => {
                vec![self.line(json!({"role": "assistant", "content": "", "thinking": text}))]
            }
            StreamEvent::ToolCallStart { index, name, .. } => {
                self.tool_calls.insert(*index, (name.clone(), String::new()));
                Vec::new()
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if let Some((_, so_far)) = self.tool_calls.get_mut(index) {
                    so_far.push_str(arguments);
                }
                Vec::new()
            }
            StreamEvent::BlockStop { index } => match self.tool_calls.remove(index) {
                Some((name, arguments)) => vec![self.line(json!({
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": name, "arguments": args_object(&arguments)}}],
                }))],
                None => Vec::new(),
            },
            StreamEvent::Usage { usage } => {
                self.usage.merge(usage);
                Vec::new()
            }
            StreamEvent::Finish { stop_reason, .. } => {
                self.stop_reason = Some(stop_reason.clone());
                Vec::new()
            }
            StreamEvent::End => {
                self.done = true;
                let stop_reason = self.stop_reason.as_ref().unwrap_or(&StopReason::EndTurn);
                let last = json!({
                    "model": self.model,
                    "created_at": created_at(self.created),
                    "message": {"role": "assistant", "content": ""},
                    "done": true,
                    "done_reason": stop_reason_name(stop_reason),
                    "prompt_eval_count": self.usage.input_tokens,
                    "eval_count": self.usage.output_tokens,
                });
                vec![SseFrame {
                    event: None,
                    data: last.to_string(),
                }]
            }
            StreamEvent::TextStart { .. }
            | StreamEvent::TextDelta { .. }
            | StreamEvent::ThinkingStart { .. }
            | StreamEvent::ThinkingDelta { .. }
            | StreamEvent::ThinkingSignature { .. }
            | StreamEvent::WebSearch { .. }
            | StreamEvent::Citation { .. } => Vec::new(),
        }
    }

    fn line(&self, message: Value) -> SseFrame {
        let chunk = json!({
            "model": self.model,
            "created_at": created_at(self.created),
            "message": message,
            "done": false,
        });
        SseFrame {
            event: None,
            data: chunk.to_string(),
        }
    }
}
