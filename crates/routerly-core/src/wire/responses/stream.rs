//! Streamed answers: OpenAI's Responses events to canonical [`StreamEvent`]s, and
//! canonical events to the full Responses event sequence, each with its `sequence_number`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::Echo;
use super::response::{
    decode_output_item, decode_usage, final_status, function_call_item, item_id, message_item,
    new_response_id, reasoning_item, response_object, stop_reason_of, url_citation,
    web_search_call_item,
};
use crate::canonical::{ContentPart, DecodeError, StopReason, StreamEvent, Usage};
use crate::wire::SseFrame;

/// Turns the events of OpenAI's Responses stream into canonical events.
///
/// Output items are blocks, numbered in order of appearance; text arrives by
/// `response.output_text.delta`, reasoning by `response.reasoning_summary_text.delta`, and
/// tool-call arguments by `response.function_call_arguments.delta`. Usage and the stop
/// reason come with `response.completed` (or `response.incomplete`).
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    next_block: usize,
    /// OpenAI's `output_index` → our block index, and whether arguments/text arrived.
    blocks: HashMap<u64, (usize, bool)>,
    open: Vec<usize>,
    saw_tool_call: bool,
    done: bool,
}

impl StreamDecoder {
    /// A decoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one SSE event (`event` is its name; the payload's `type` is read too).
    pub fn decode(
        &mut self,
        event: Option<&str>,
        data: &str,
    ) -> Result<Vec<StreamEvent>, DecodeError> {
        let mut events = Vec::new();
        if data.trim() == "[DONE]" {
            if !self.done {
                self.close_all(&mut events);
                events.push(StreamEvent::End);
                self.done = true;
            }
            return Ok(events);
        }
        let payload: Value = serde_json::from_str(data).map_err(|error| {
            DecodeError::new(format!(
                "The provider sent a stream event that is not JSON: {error}"
            ))
        })?;
        let event_type = payload
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or("");
        let output_index = payload.get("output_index").and_then(Value::as_u64);
        match event_type {
            "response.created" | "response.in_progress" if !self.started => {
                self.started = true;
                let response = payload.get("response");
                let field = |key: &str| {
                    response
                        .and_then(|response| response.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                events.push(StreamEvent::Start {
                    id: field("id"),
                    model: field("model"),
                    usage: Usage::default(),
                });
            }
            "response.output_item.added" => {
                let item = payload.get("item").cloned().unwrap_or(Value::Null);
                let index = self.next_block;
                self.next_block += 1;
                self.blocks
                    .insert(output_index.unwrap_or(index as u64), (index, false));
                self.open.push(index);
                match item.get("type").and_then(Value::as_str) {
                    Some("function_call") => {
                        self.saw_tool_call = true;
                        events.push(StreamEvent::ToolCallStart {
                            index,
                            id: item
                                .get("call_id")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            name: item
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                        });
                    }
                    Some("reasoning") => events.push(StreamEvent::ThinkingStart { index }),
                    Some("message") => events.push(StreamEvent::TextStart { index }),
                    // Other items (hosted tool calls) carry nothing canonical.
                    _ => {
                        self.open.retain(|open| *open != index);
                    }
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(index) = self.block_for(output_index, true) {
                    events.push(StreamEvent::TextDelta {
                        index,
                        text: delta(&payload),
                    });
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(index) = self.block_for(output_index, true) {
                    events.push(StreamEvent::ThinkingDelta {
                        index,
                        text: delta(&payload),
                    });
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(index) = self.block_for(output_index, true) {
                    events.push(StreamEvent::ToolCallDelta {
                        index,
                        arguments: delta(&payload),
                    });
                }
            }
            "response.output_item.done" => {
                let seen = output_index
                    .and_then(|output_index| self.blocks.get(&output_index))
                    .copied();
                if let Some((index, saw_delta)) = seen
                    && self.open.contains(&index)
                {
                    // An item whose content came only whole, in this event.
                    if !saw_delta && let Some(item) = payload.get("item") {
                        let mut parts = Vec::new();
                        decode_output_item(item, &mut parts);
                        for part in parts {
                            match part {
                                ContentPart::Text { text } => {
                                    events.push(StreamEvent::TextDelta { index, text })
                                }
                                ContentPart::ToolCall { arguments, .. } => {
                                    events.push(StreamEvent::ToolCallDelta { index, arguments })
                                }
                                ContentPart::Thinking { text, .. } => {
                                    events.push(StreamEvent::ThinkingDelta { index, text })
                                }
                                _ => {}
                            }
                        }
                    }
                    self.open.retain(|open| *open != index);
                    events.push(StreamEvent::BlockStop { index });
                }
            }
            "response.completed" | "response.incomplete" => {
                self.close_all(&mut events);
                let response_map = payload
                    .get("response")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if let Some(usage) = response_map.get("usage").and_then(Value::as_object) {
                    events.push(StreamEvent::Usage {
                        usage: decode_usage(usage),
                    });
                }
                let marker = if self.saw_tool_call {
                    vec![ContentPart::ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    }]
                } else {
                    Vec::new()
                };
                events.push(StreamEvent::Finish {
                    stop_reason: stop_reason_of(&response_map, &marker),
                    stop_sequence: None,
                });
                events.push(StreamEvent::End);
                self.done = true;
            }
            "response.failed" | "error" => {
                let message = payload
                    .pointer("/response/error/message")
                    .or_else(|| payload.get("message"))
                    .or_else(|| payload.pointer("/error/message"))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                return Err(DecodeError::new(format!(
                    "The provider reported an error mid-stream: {message}"
                )));
            }
            _ => {}
        }
        Ok(events)
    }

    fn block_for(&mut self, output_index: Option<u64>, mark: bool) -> Option<usize> {
        let entry = self.blocks.get_mut(&output_index?)?;
        if mark {
            entry.1 = true;
        }
        Some(entry.0)
    }

    fn close_all(&mut self, events: &mut Vec<StreamEvent>) {
        for index in std::mem::take(&mut self.open) {
            events.push(StreamEvent::BlockStop { index });
        }
    }
}

fn delta(payload: &Value) -> String {
    payload
        .get("delta")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The kind of an output item being streamed.
#[derive(Debug, Clone)]
enum OpenItem {
    Message {
        text: String,
    },
    Reasoning {
        text: String,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug, Clone)]
struct ItemState {
    output_index: usize,
    id: String,
    kind: OpenItem,
    /// Where a message's text starts, in characters of the answer's texts joined.
    text_start: usize,
    /// A message's `url_citation` annotations so far.
    annotations: Vec<Value>,
}

/// Turns canonical events into the Responses event sequence a client reads:
/// `response.created`, `response.in_progress`, per output item `response.output_item.added`
/// (`response.content_part.added`, `response.output_text.delta`…/`.done`,
/// `response.content_part.done` for messages; `response.reasoning_summary_part.added`,
/// `response.reasoning_summary_text.delta`…/`.done`, `response.reasoning_summary_part.done`
/// for reasoning; `response.function_call_arguments.delta`…/`.done` for calls),
/// `response.output_item.done`, then `response.completed` (or `response.incomplete`), every
/// event numbered by `sequence_number` from 0.
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    created_at: i64,
    sequence: u64,
    started: bool,
    /// Block index → the item it streams into.
    items: HashMap<usize, ItemState>,
    /// Finished items, in output order.
    output: Vec<(usize, Value)>,
    next_output_index: usize,
    usage: Usage,
    stop_reason: Option<StopReason>,
    done: bool,
    /// What the `response` objects repeat of the request.
    echo: Echo,
    /// Characters of text streamed so far, where citations point.
    text_chars: usize,
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
            id: new_response_id(),
            model: String::new(),
            created_at: chrono::Utc::now().timestamp(),
            sequence: 0,
            started: false,
            items: HashMap::new(),
            output: Vec::new(),
            next_output_index: 0,
            usage: Usage::default(),
            stop_reason: None,
            done: false,
            echo: Echo::default(),
            text_chars: 0,
        }
    }

    /// Makes the stream's `response` objects (in `response.created`, `response.in_progress`
    /// and `response.completed`) repeat the request as `echo` describes, and its calls of
    /// namespaced tools carry their namespace.
    pub fn set_echo(&mut self, echo: Echo) {
        self.echo = echo;
    }

    /// The id of the response this stream describes.
    pub fn response_id(&self) -> &str {
        &self.id
    }

    /// Encodes one event as zero or more frames.
    pub fn encode(&mut self, event: &StreamEvent) -> Vec<SseFrame> {
        let mut frames = Vec::new();
        if self.done {
            return frames;
        }
        if !self.started && !matches!(event, StreamEvent::Start { .. }) {
            self.start(&mut frames);
        }
        match event {
            StreamEvent::Start { id, model, usage } => {
                if id.starts_with("resp_") {
                    self.id.clone_from(id);
                }
                self.model.clone_from(model);
                self.usage.merge(usage);
                if !self.started {
                    self.start(&mut frames);
                }
            }
            StreamEvent::TextStart { index } => {
                self.open_item(
                    *index,
                    OpenItem::Message {
                        text: String::new(),
                    },
                    &mut frames,
                );
            }
            StreamEvent::ThinkingStart { index } => {
                self.open_item(
                    *index,
                    OpenItem::Reasoning {
                        text: String::new(),
                    },
                    &mut frames,
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.open_item(
                    *index,
                    OpenItem::FunctionCall {
                        call_id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                    },
                    &mut frames,
                );
            }
            StreamEvent::TextDelta { index, text } if !text.is_empty() => {
                if !self.items.contains_key(index) {
                    self.open_item(
                        *index,
                        OpenItem::Message {
                            text: String::new(),
                        },
                        &mut frames,
                    );
                }
                let item = self.items.get_mut(index).expect("opened above");
                if let OpenItem::Message { text: all } = &mut item.kind {
                    all.push_str(text);
                    self.text_chars += text.chars().count();
                    let payload = json!({
                        "item_id": item.id,
                        "output_index": item.output_index,
                        "content_index": 0,
                        "delta": text,
                        "logprobs": [],
                    });
                    self.push(&mut frames, "response.output_text.delta", payload);
                }
            }
            StreamEvent::ThinkingDelta { index, text } if !text.is_empty() => {
                if !self.items.contains_key(index) {
                    self.open_item(
                        *index,
                        OpenItem::Reasoning {
                            text: String::new(),
                        },
                        &mut frames,
                    );
                }
                let item = self.items.get_mut(index).expect("opened above");
                if let OpenItem::Reasoning { text: all } = &mut item.kind {
                    all.push_str(text);
                    let payload = json!({
                        "item_id": item.id,
                        "output_index": item.output_index,
                        "summary_index": 0,
                        "delta": text,
                    });
                    self.push(
                        &mut frames,
                        "response.reasoning_summary_text.delta",
                        payload,
                    );
                }
            }
            StreamEvent::ToolCallDelta { index, arguments } if !arguments.is_empty() => {
                if let Some(item) = self.items.get_mut(index)
                    && let OpenItem::FunctionCall { arguments: all, .. } = &mut item.kind
                {
                    all.push_str(arguments);
                    let payload = json!({
                        "item_id": item.id,
                        "output_index": item.output_index,
                        "delta": arguments,
                    });
                    self.push(
                        &mut frames,
                        "response.function_call_arguments.delta",
                        payload,
                    );
                }
            }
            StreamEvent::BlockStop { index } => self.close_item(*index, &mut frames),
            StreamEvent::WebSearch { search } => {
                let output_index = self.next_output_index;
                self.next_output_index += 1;
                let item = web_search_call_item(&item_id("ws", &self.id, output_index), search);
                let mut added = item.clone();
                added["status"] = Value::from("in_progress");
                self.push(
                    &mut frames,
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": added}),
                );
                for phase in [
                    "response.web_search_call.in_progress",
                    "response.web_search_call.searching",
                    "response.web_search_call.completed",
                ] {
                    self.push(
                        &mut frames,
                        phase,
                        json!({"output_index": output_index, "item_id": item["id"]}),
                    );
                }
                self.push(
                    &mut frames,
                    "response.output_item.done",
                    json!({"output_index": output_index, "item": item}),
                );
                self.output.push((output_index, item));
            }
            StreamEvent::Citation { citation } => {
                // The message streaming the cited text: the last one started before it.
                let message = (self.items.values_mut())
                    .filter(|item| matches!(item.kind, OpenItem::Message { .. }))
                    .filter(|item| item.text_start <= citation.start)
                    .max_by_key(|item| item.text_start);
                if let Some(item) = message {
                    let annotation = url_citation(citation, item.text_start);
                    let payload = json!({
                        "item_id": item.id,
                        "output_index": item.output_index,
                        "content_index": 0,
                        "annotation_index": item.annotations.len(),
                        "annotation": annotation,
                    });
                    item.annotations.push(annotation);
                    self.push(
                        &mut frames,
                        "response.output_text.annotation.added",
                        payload,
                    );
                }
            }
            StreamEvent::Usage { usage } => self.usage.merge(usage),
            StreamEvent::Finish { stop_reason, .. } => self.stop_reason = Some(stop_reason.clone()),
            StreamEvent::End => {
                let mut open: Vec<usize> = self.items.keys().copied().collect();
                open.sort_by_key(|index| self.items[index].output_index);
                for index in open {
                    self.close_item(index, &mut frames);
                }
                let (status, incomplete_details) = final_status(self.stop_reason.as_ref());
                let mut output = std::mem::take(&mut self.output);
                output.sort_by_key(|(output_index, _)| *output_index);
                let mut response = response_object(
                    &self.id,
                    &self.model,
                    self.created_at,
                    status,
                    incomplete_details,
                    output.into_iter().map(|(_, item)| item).collect(),
                    Some(&self.usage),
                );
                self.echo.apply(&mut response);
                let name = if status == "completed" {
                    "response.completed"
                } else {
                    "response.incomplete"
                };
                self.push(&mut frames, name, json!({ "response": response }));
                self.done = true;
            }
            StreamEvent::TextDelta { .. }
            | StreamEvent::ThinkingDelta { .. }
            | StreamEvent::ThinkingSignature { .. }
            | StreamEvent::ToolCallDelta { .. } => {}
        }
        frames
    }

    fn start(&mut self, frames: &mut Vec<SseFrame>) {
        self.started = true;
        let mut response = response_object(
            &self.id,
            &self.model,
            self.created_at,
            "in_progress",
            Value::Null,
            Vec::new(),
            None,
        );
        self.echo.apply(&mut response);
        self.push(frames, "response.created", json!({ "response": response }));
        self.push(
            frames,
            "response.in_progress",
            json!({ "response": response }),
        );
    }

    fn open_item(&mut self, index: usize, kind: OpenItem, frames: &mut Vec<SseFrame>) {
        if self.items.contains_key(&index) {
            return;
        }
        let output_index = self.next_output_index;
        self.next_output_index += 1;
        let (prefix, item) = match &kind {
            OpenItem::Message { .. } => ("msg", None),
            OpenItem::Reasoning { .. } => ("rs", None),
            OpenItem::FunctionCall { call_id, name, .. } => {
                ("fc", Some((call_id.clone(), name.clone())))
            }
        };
        let id = item_id(prefix, &self.id, output_index);
        let added = match (&kind, item) {
            (OpenItem::Message { .. }, _) => message_item(&id, "in_progress", None),
            (OpenItem::Reasoning { .. }, _) => reasoning_item(&id, None),
            (_, Some((call_id, name))) => {
                function_call_item(&id, "in_progress", &call_id, &name, "", &self.echo)
            }
            (_, None) => unreachable!("a function call has its call id"),
        };
        self.push(
            frames,
            "response.output_item.added",
            json!({"output_index": output_index, "item": added}),
        );
        match &kind {
            OpenItem::Message { .. } => self.push(
                frames,
                "response.content_part.added",
                json!({
                    "item_id": id,
                    "output_index": output_index,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                }),
            ),
            OpenItem::Reasoning { .. } => self.push(
                frames,
                "response.reasoning_summary_part.added",
                json!({
                    "item_id": id,
                    "output_index": output_index,
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""},
                }),
            ),
            OpenItem::FunctionCall { .. } => {}
        }
        self.items.insert(
            index,
            ItemState {
                output_index,
                id,
                kind,
                text_start: self.text_chars,
                annotations: Vec::new(),
            },
        );
    }

    fn close_item(&mut self, index: usize, frames: &mut Vec<SseFrame>) {
        let Some(item) = self.items.remove(&index) else {
            return;
        };
        let (id, output_index) = (item.id.as_str(), item.output_index);
        let done_item = match &item.kind {
            OpenItem::Message { text } => {
                self.push(
                    frames,
                    "response.output_text.done",
                    json!({
                        "item_id": id,
                        "output_index": output_index,
                        "content_index": 0,
                        "text": text,
                        "logprobs": [],
                    }),
                );
                self.push(
                    frames,
                    "response.content_part.done",
                    json!({
                        "item_id": id,
                        "output_index": output_index,
                        "content_index": 0,
                        "part": {"type": "output_text", "text": text, "annotations": item.annotations, "logprobs": []},
                    }),
                );
                let mut message = message_item(id, "completed", Some(text));
                message["content"][0]["annotations"] = Value::from(item.annotations.clone());
                message
            }
            OpenItem::Reasoning { text } => {
                self.push(
                    frames,
                    "response.reasoning_summary_text.done",
                    json!({
                        "item_id": id,
                        "output_index": output_index,
                        "summary_index": 0,
                        "text": text,
                    }),
                );
                self.push(
                    frames,
                    "response.reasoning_summary_part.done",
                    json!({
                        "item_id": id,
                        "output_index": output_index,
                        "summary_index": 0,
                        "part": {"type": "summary_text", "text": text},
                    }),
                );
                reasoning_item(id, Some(text))
            }
            OpenItem::FunctionCall {
                call_id,
                name,
                arguments,
            } => {
                let done_name = self.echo.call_name(name).1.to_owned();
                self.push(
                    frames,
                    "response.function_call_arguments.done",
                    json!({
                        "item_id": id,
                        "output_index": output_index,
                        "name": done_name,
                        "arguments": arguments,
                    }),
                );
                function_call_item(id, "completed", call_id, name, arguments, &self.echo)
            }
        };
        self.push(
            frames,
            "response.output_item.done",
            json!({"output_index": output_index, "item": done_item}),
        );
        self.output.push((output_index, done_item));
    }

    fn push(&mut self, frames: &mut Vec<SseFrame>, name: &'static str, payload: Value) {
        let mut map = Map::new();
        map.insert("type".into(), Value::from(name));
        map.insert("sequence_number".into(), Value::from(self.sequence));
        if let Value::Object(fields) = payload {
            map.extend(fields);
        }
        self.sequence += 1;
        frames.push(SseFrame {
            event: Some(name),
            data: Value::Object(map).to_string(),
        });
    }
}
