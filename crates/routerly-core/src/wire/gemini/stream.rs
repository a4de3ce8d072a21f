//! Streamed answers: the `data:` payloads of `streamGenerateContent?alt=sse` to canonical
//! [`StreamEvent`]s, and canonical events to the chunks a Gemini client reads.
//!
//! Gemini sends whole `GenerateContentResponse` objects: text arrives in pieces, a
//! function call arrives whole in one part, and the last chunk carries `finishReason`
//! and the final `usageMetadata`. There is no `[DONE]`: the finish reason ends the stream.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::json::get;
use super::response::{
    candidate_parts, decode_part, encode_part, first_candidate, grounding_sources, usage_metadata,
};
use super::{stop_reason_from_name, stop_reason_name, usage_from_gemini};
use crate::canonical::{Citation, ContentPart, DecodeError, StopReason, StreamEvent, Usage};
use crate::wire::SseFrame;
use crate::wire::blocks::{BlockTracker, OpenBlock};

/// Turns the chunks of a Gemini stream into canonical events, one chunk at a time.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    finished: bool,
    blocks: BlockTracker,
    called_tools: bool,
    usage: Usage,
    /// The answer's text so far (not thoughts): what grounding offsets count in.
    text: String,
    /// Grounding searches and citations already sent (Gemini may repeat its metadata).
    searches_sent: usize,
    citations_sent: Vec<Citation>,
}

impl StreamDecoder {
    /// A decoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one chunk; the chunk with a `finishReason` also yields `Usage`, `Finish`
    /// and `End`.
    pub fn decode(&mut self, data: &str) -> Result<Vec<StreamEvent>, DecodeError> {
        let mut events = Vec::new();
        if self.finished {
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
                .unwrap_or("unknown error");
            return Err(DecodeError::new(format!(
                "The provider reported an error mid-stream: {message}"
            )));
        }
        if let Some(usage_map) = get(chunk_map, "usageMetadata").and_then(Value::as_object) {
            self.usage = usage_from_gemini(usage_map);
        }
        if !self.started {
            self.started = true;
            events.push(StreamEvent::Start {
                id: get(chunk_map, "responseId")
                    .and_then(Value::as_str)
                    .map_or_else(
                        || format!("gemini-{}", uuid::Uuid::new_v4().simple()),
                        str::to_owned,
                    ),
                model: get(chunk_map, "modelVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                usage: Usage {
                    input_tokens: self.usage.input_tokens,
                    cached_input_tokens: self.usage.cached_input_tokens,
                    ..Usage::default()
                },
            });
        }

        let candidate = first_candidate(chunk_map);
        if let Some(candidate) = candidate {
            for part in candidate_parts(candidate) {
                match decode_part(part) {
                    Some(ContentPart::Text { text }) if !text.is_empty() => {
                        let index = self.blocks.ensure(OpenBlock::Text, &mut events);
                        self.text.push_str(&text);
                        events.push(StreamEvent::TextDelta { index, text });
                    }
                    Some(ContentPart::Thinking { text, signature }) => {
                        let index = self.blocks.ensure(OpenBlock::Thinking, &mut events);
                        if !text.is_empty() {
                            events.push(StreamEvent::ThinkingDelta { index, text });
                        }
                        if let Some(signature) = signature {
                            events.push(StreamEvent::ThinkingSignature { index, signature });
                        }
                    }
                    Some(ContentPart::ToolCall {
                        id,
                        name,
                        arguments,
                    }) => {
                        self.blocks.close(&mut events);
                        let index = self.blocks.next_index();
                        self.called_tools = true;
                        events.push(StreamEvent::ToolCallStart { index, id, name });
                        events.push(StreamEvent::ToolCallDelta { index, arguments });
                        events.push(StreamEvent::BlockStop { index });
                    }
                    _ => {}
                }
            }
        }

        if let Some(metadata) = candidate
            .and_then(|candidate| get(candidate, "groundingMetadata"))
            .and_then(Value::as_object)
        {
            self.grounding(metadata, &mut events);
        }

        let finish_reason = candidate
            .and_then(|candidate| get(candidate, "finishReason"))
            .and_then(Value::as_str);
        let blocked = candidate.is_none() && get(chunk_map, "promptFeedback").is_some();
        if finish_reason.is_some() || blocked {
            self.finished = true;
            self.blocks.close(&mut events);
            let stop_reason = match finish_reason {
                Some(name) => stop_reason_from_name(name, self.called_tools),
                None => StopReason::ContentFilter,
            };
            events.push(StreamEvent::Usage { usage: self.usage });
            events.push(StreamEvent::Finish {
                stop_reason,
                stop_sequence: None,
            });
            events.push(StreamEvent::End);
        }
        Ok(events)
    }
}

impl StreamDecoder {
    /// The searches and citations of Google Search grounding not sent yet, before the
    /// text they cite is closed; its offsets count in the whole answer's text so far.
    fn grounding(&mut self, metadata: &super::json::Object, events: &mut Vec<StreamEvent>) {
        let sources = grounding_sources(metadata, &[(0, self.text.as_str())]);
        for search in sources.searches.into_iter().skip(self.searches_sent) {
            self.searches_sent += 1;
            events.push(StreamEvent::WebSearch { search });
        }
        for citation in sources.citations {
            if !self.citations_sent.contains(&citation) {
                self.citations_sent.push(citation.clone());
                events.push(StreamEvent::Citation { citation });
            }
        }
    }
}

/// Turns canonical events into the chunks a Gemini client reads: one chunk per text
/// piece, one per complete function call, and a last one with the finish reason and usage.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    id: String,
    model: String,
    usage: Usage,
    stop_reason: Option<StopReason>,
    /// Tool calls being assembled: block index → (id, name, arguments so far).
    tool_calls: HashMap<usize, (String, String, String)>,
    done: bool,
}

impl StreamEncoder {
    /// An encoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes one event as zero or more frames.
    pub fn encode(&mut self, event: &StreamEvent) -> Vec<SseFrame> {
        if self.done {
            return Vec::new();
        }
        match event {
            StreamEvent::Start { id, model, usage } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.usage.merge(usage);
                Vec::new()
            }
            StreamEvent::TextDelta { text, .. } if !text.is_empty() => {
                vec![self.chunk(json!([{"text": text}]), None)]
            }
            StreamEvent::ThinkingDelta { text, .. } if !text.is_empty() => {
                vec![self.chunk(json!([{"text": text, "thought": true}]), None)]
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.tool_calls
                    .insert(*index, (id.clone(), name.clone(), String::new()));
                Vec::new()
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if let Some((_, _, so_far)) = self.tool_calls.get_mut(index) {
                    so_far.push_str(arguments);
                }
                Vec::new()
            }
            StreamEvent::BlockStop { index } => match self.tool_calls.remove(index) {
                Some((id, name, arguments)) => {
                    let part = encode_part(&ContentPart::ToolCall {
                        id,
                        name,
                        arguments,
                    });
                    vec![self.chunk(Value::Array(part.into_iter().collect()), None)]
                }
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
                let finish_reason =
                    stop_reason_name(self.stop_reason.as_ref().unwrap_or(&StopReason::EndTurn));
                let mut last = self.chunk_value(json!([{"text": ""}]), Some(finish_reason));
                last["usageMetadata"] = usage_metadata(&self.usage);
                vec![frame(&last)]
            }
            StreamEvent::WebSearch { .. }
            | StreamEvent::Citation { .. }
            | StreamEvent::TextStart { .. }
            | StreamEvent::TextDelta { .. }
            | StreamEvent::ThinkingStart { .. }
            | StreamEvent::ThinkingDelta { .. }
            | StreamEvent::ThinkingSignature { .. } => Vec::new(),
        }
    }

    fn chunk(&self, parts: Value, finish_reason: Option<&str>) -> SseFrame {
        frame(&self.chunk_value(parts, finish_reason))
    }

    fn chunk_value(&self, parts: Value, finish_reason: Option<&str>) -> Value {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(finish_reason) = finish_reason {
            candidate["finishReason"] = Value::from(finish_reason);
        }
        json!({
            "candidates": [candidate],
            "modelVersion": self.model,
            "responseId": self.id,
        })
    }
}

fn frame(chunk: &Value) -> SseFrame {
    SseFrame {
        event: None,
        data: chunk.to_string(),
    }
}
