//! Streamed answers: a provider's `chat.completion.chunk` payloads to canonical
//! [`StreamEvent`]s, and canonical events to chunks a client reads.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::response::{
    decode_usage, encode_usage, generated_call_id, stop_reason_from_name, stop_reason_name,
    url_citation,
};
use crate::canonical::{DecodeError, StreamEvent, Usage};
use crate::wire::SseFrame;

/// The kind of the content block that is open while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text(usize),
    Thinking(usize),
    ToolCall(usize),
}

impl OpenBlock {
    fn index(self) -> usize {
        match self {
            OpenBlock::Text(index) | OpenBlock::Thinking(index) | OpenBlock::ToolCall(index) => {
                index
            }
        }
    }
}

/// Turns the `data:` payloads of an OpenAI stream into canonical events, one payload
/// at a time.
///
/// Blocks are numbered in order of appearance. One block is open at a time, which is
/// what Anthropic-style consumers need: a new block (text, thinking or tool call)
/// closes the open one.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    next_block_index: usize,
    open_block: Option<OpenBlock>,
    /// OpenAI's tool-call index → our block index.
    tool_blocks: HashMap<u64, usize>,
}

impl StreamDecoder {
    /// A decoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one SSE data payload: a chunk's JSON, or `[DONE]` (which yields `End`).
    pub fn decode(&mut self, data: &str) -> Result<Vec<StreamEvent>, DecodeError> {
        let mut events = Vec::new();
        if data.trim() == "[DONE]" {
            // A stream cut short of its finish chunk still closes its blocks.
            self.close_open_block(&mut events);
            events.push(StreamEvent::End);
            return Ok(events);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|error| {
            DecodeError::new(format!(
                "The provider sent a stream chunk that is not JSON: {error}"
            ))
        })?;
        let chunk_map = chunk.as_object().ok_or_else(|| {
            DecodeError::new("The provider sent a stream chunk that is not a JSON object.")
        })?;
        if let Some(error_value) = chunk_map.get("error") {
            let message = error_value
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error_value.as_str())
                .unwrap_or("unknown error");
            return Err(DecodeError::new(format!(
                "The provider reported an error mid-stream: {message}"
            )));
        }

        if !self.started {
            self.started = true;
            events.push(StreamEvent::Start {
                id: string_field(chunk_map, "id"),
                model: string_field(chunk_map, "model"),
                usage: Usage::default(),
            });
        }

        let first_choice = chunk_map
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|choices| {
                choices
                    .iter()
                    .find(|choice| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            })
            .and_then(Value::as_object);
        if let Some(choice_map) = first_choice {
            if let Some(delta_map) = choice_map.get("delta").and_then(Value::as_object) {
                self.decode_delta(delta_map, &mut events);
            }
            if let Some(finish_reason) = choice_map.get("finish_reason").and_then(Value::as_str) {
                self.close_open_block(&mut events);
                events.push(StreamEvent::Finish {
                    stop_reason: stop_reason_from_name(finish_reason),
                    stop_sequence: None,
                });
            }
        }

        if let Some(usage_map) = chunk_map.get("usage").and_then(Value::as_object) {
            events.push(StreamEvent::Usage {
                usage: decode_usage(usage_map),
            });
        }
        Ok(events)
    }

    fn decode_delta(&mut self, delta_map: &Map<String, Value>, events: &mut Vec<StreamEvent>) {
        let reasoning = ["reasoning_content", "reasoning"].iter().find_map(|key| {
            delta_map
                .get(*key)
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
        });
        if let Some(text) = reasoning {
            let index = match self.open_block {
                Some(OpenBlock::Thinking(index)) => index,
                _ => {
                    let index = self.open_new_block(OpenBlock::Thinking, events);
                    events.push(StreamEvent::ThinkingStart { index });
                    index
                }
            };
            events.push(StreamEvent::ThinkingDelta {
                index,
                text: text.to_owned(),
            });
        }

        if let Some(text) = delta_map
            .get("content")
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
        {
            let index = match self.open_block {
                Some(OpenBlock::Text(index)) => index,
                _ => {
                    let index = self.open_new_block(OpenBlock::Text, events);
                    events.push(StreamEvent::TextStart { index });
                    index
                }
            };
            events.push(StreamEvent::TextDelta {
                index,
                text: text.to_owned(),
            });
        }

        if let Some(tool_call_values) = delta_map.get("tool_calls").and_then(Value::as_array) {
            for (position, tool_call_value) in tool_call_values.iter().enumerate() {
                self.decode_tool_call_delta(tool_call_value, position, events);
            }
        }
    }

    fn decode_tool_call_delta(
        &mut self,
        tool_call_value: &Value,
        position: usize,
        events: &mut Vec<StreamEvent>,
    ) {
        let openai_index = tool_call_value
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let function_value = tool_call_value.get("function");
        let block_index = match self.tool_blocks.get(&openai_index) {
            Some(&block_index) => block_index,
            None => {
                let block_index = self.open_new_block(OpenBlock::ToolCall, events);
                self.tool_blocks.insert(openai_index, block_index);
                events.push(StreamEvent::ToolCallStart {
                    index: block_index,
                    id: tool_call_value
                        .get("id")
                        .and_then(Value::as_str)
                        .map_or_else(generated_call_id, str::to_owned),
                    name: function_value
                        .and_then(|function| function.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                });
                block_index
            }
        };
        let arguments = function_value
            .and_then(|function| function.get("arguments"))
            .and_then(Value::as_str)
            .filter(|arguments| !arguments.is_empty());
        if let Some(arguments) = arguments {
            events.push(StreamEvent::ToolCallDelta {
                index: block_index,
                arguments: arguments.to_owned(),
            });
        }
    }

    /// Closes the open block and opens a new one of `kind`, returning its index.
    fn open_new_block(
        &mut self,
        kind: fn(usize) -> OpenBlock,
        events: &mut Vec<StreamEvent>,
    ) -> usize {
        self.close_open_block(events);
        let index = self.next_block_index;
        self.next_block_index += 1;
        self.open_block = Some(kind(index));
        index
    }

    fn close_open_block(&mut self, events: &mut Vec<StreamEvent>) {
        if let Some(open_block) = self.open_block.take() {
            events.push(StreamEvent::BlockStop {
                index: open_block.index(),
            });
        }
    }
}

fn string_field(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Turns canonical events into the `chat.completion.chunk` frames an OpenAI client
/// reads, ending with `data: [DONE]`.
#[derive(Debug)]
pub struct StreamEncoder {
    include_usage: bool,
    id: String,
    model: String,
    created: i64,
    usage: Usage,
    finish_sent: bool,
    done: bool,
    /// Our block index → OpenAI's own 0-based tool-call index.
    tool_indexes: HashMap<usize, usize>,
}

impl StreamEncoder {
    /// An encoder for a new stream; `include_usage` is the client's
    /// `stream_options.include_usage`.
    pub fn new(include_usage: bool) -> Self {
        StreamEncoder {
            include_usage,
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            model: String::new(),
            created: chrono::Utc::now().timestamp(),
            usage: Usage::default(),
            finish_sent: false,
            done: false,
            tool_indexes: HashMap::new(),
        }
    }

    /// Encodes one event as zero or more frames.
    pub fn encode(&mut self, event: &StreamEvent) -> Vec<SseFrame> {
        if self.done {
            return Vec::new();
        }
        match event {
            StreamEvent::Start { id, model, usage } => {
                if !id.is_empty() {
                    self.id.clone_from(id);
                }
                self.model.clone_from(model);
                self.usage.merge(usage);
                vec![self.delta_frame(json!({"role": "assistant", "content": ""}), None)]
            }
            StreamEvent::TextDelta { text, .. } if !text.is_empty() => {
                vec![self.delta_frame(json!({"content": text}), None)]
            }
            StreamEvent::ThinkingDelta { text, .. } if !text.is_empty() => {
                vec![self.delta_frame(json!({"reasoning_content": text}), None)]
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                let tool_index = self.tool_index(*index);
                vec![self.delta_frame(
                    json!({"tool_calls": [{
                        "index": tool_index,
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }]}),
                    None,
                )]
            }
            StreamEvent::ToolCallDelta { index, arguments } if !arguments.is_empty() => {
                let tool_index = self.tool_index(*index);
                vec![self.delta_frame(
                    json!({"tool_calls": [{"index": tool_index, "function": {"arguments": arguments}}]}),
                    None,
                )]
            }
            StreamEvent::Finish { stop_reason, .. } if !self.finish_sent => {
                self.finish_sent = true;
                vec![self.delta_frame(json!({}), Some(stop_reason_name(stop_reason)))]
            }
            StreamEvent::Usage { usage } => {
                self.usage.merge(usage);
                Vec::new()
            }
            StreamEvent::Citation { citation } => {
                vec![self.delta_frame(json!({"annotations": [url_citation(citation)]}), None)]
            }
            StreamEvent::End => {
                self.done = true;
                let mut frames = Vec::with_capacity(2);
                if self.include_usage {
                    let mut chunk = self.chunk_header();
                    chunk.insert("choices".into(), json!([]));
                    chunk.insert("usage".into(), encode_usage(&self.usage));
                    frames.push(json_frame(&Value::Object(chunk)));
                }
                frames.push(SseFrame {
                    event: None,
                    data: "[DONE]".to_owned(),
                });
                frames
            }
            StreamEvent::TextStart { .. }
            | StreamEvent::TextDelta { .. }
            | StreamEvent::ThinkingStart { .. }
            | StreamEvent::ThinkingDelta { .. }
            | StreamEvent::ThinkingSignature { .. }
            | StreamEvent::ToolCallDelta { .. }
            | StreamEvent::BlockStop { .. }
            | StreamEvent::WebSearch { .. }
            | StreamEvent::Finish { .. } => Vec::new(),
        }
    }

    /// OpenAI's tool-call index for a block, assigned on first sight so a delta whose
    /// start was never seen still gets one.
    fn tool_index(&mut self, block_index: usize) -> usize {
        let next_tool_index = self.tool_indexes.len();
        *self
            .tool_indexes
            .entry(block_index)
            .or_insert(next_tool_index)
    }

    fn chunk_header(&self) -> Map<String, Value> {
        let mut chunk = Map::new();
        chunk.insert("id".into(), Value::from(self.id.as_str()));
        chunk.insert("object".into(), Value::from("chat.completion.chunk"));
        chunk.insert("created".into(), Value::from(self.created));
        chunk.insert("model".into(), Value::from(self.model.as_str()));
        chunk
    }

    fn delta_frame(&self, delta: Value, finish_reason: Option<&str>) -> SseFrame {
        let mut chunk = self.chunk_header();
        chunk.insert(
            "choices".into(),
            json!([{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }]),
        );
        if self.include_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        json_frame(&Value::Object(chunk))
    }
}

fn json_frame(chunk: &Value) -> SseFrame {
    SseFrame {
        event: None,
        data: chunk.to_string(),
    }
}
