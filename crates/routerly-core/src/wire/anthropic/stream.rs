//! Streams: Anthropic's SSE events to canonical stream events, and canonical events to
//! the SSE events an Anthropic client expects.

use serde_json::{Value, json};

use super::json::{Object, as_object, get, lenient_u64, optional_str, require, require_str};
use super::response::{cited_page, message_id, search_call};
use super::{stop_reason_from_name, stop_reason_name, usage_from_anthropic, usage_to_anthropic};
use crate::canonical::{Citation, DecodeError, StopReason, StreamEvent, Usage, WebPage};
use crate::wire::SseFrame;

// ---------------------------------------------------------------------------------------
// Decoding Anthropic's stream
// ---------------------------------------------------------------------------------------

/// Turns Anthropic's SSE events into canonical stream events, one event at a time.
///
/// Canonical block indexes are dense: blocks that are dropped (`redacted_thinking`,
/// server-tool blocks) get none, so the blocks after them move up.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// Anthropic's block index → canonical index, `None` for a dropped block.
    blocks: Vec<(u64, Option<usize>)>,
    next_index: usize,
    /// Web searches started (`server_tool_use` of `web_search`): Anthropic's block index,
    /// the call id and its input JSON so far.
    searches: Vec<(u64, String, String)>,
    /// Characters of text streamed so far.
    text_chars: usize,
    /// Text blocks with citations: canonical index, where the block's text starts, and
    /// the pages it cites (sent when the block stops).
    cited: Vec<(usize, usize, Vec<WebPage>)>,
}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one SSE event: its `event:` name (when given) and its `data:` payload.
    /// Unknown event types are ignored, since Anthropic adds some over time; an `error`
    /// event is returned as an error carrying the provider's message.
    pub fn decode(
        &mut self,
        event: Option<&str>,
        data: &str,
    ) -> Result<Vec<StreamEvent>, DecodeError> {
        if data.trim().is_empty() {
            // Only a `ping` may come without a payload.
            return Ok(Vec::new());
        }
        let payload: Value = serde_json::from_str(data).map_err(|error| {
            DecodeError::new(format!(
                "the provider sent a stream event that is not JSON: {error}"
            ))
        })?;
        let payload = as_object(&payload, "event")?;
        let event_type = payload
            .get("type")
            .and_then(Value::as_str)
            .or(event)
            .unwrap_or_default();
        match event_type {
            "message_start" => {
                let message = as_object(require(payload, "message", "")?, "message")?;
                let usage = match get(message, "usage") {
                    Some(usage_value) => {
                        usage_from_anthropic(as_object(usage_value, "message.usage")?)
                    }
                    None => Usage::default(),
                };
                Ok(vec![StreamEvent::Start {
                    id: require_str(message, "id", "message")?.to_owned(),
                    model: optional_str(message, "model", "message")?
                        .unwrap_or_default()
                        .to_owned(),
                    usage,
                }])
            }
            "content_block_start" => self.decode_block_start(payload),
            "content_block_delta" => self.decode_block_delta(payload),
            "content_block_stop" => {
                let Some(index) = self.known_block(payload)? else {
                    return Ok(Vec::new());
                };
                // A text block's citations cover its whole text, complete now.
                let mut events = Vec::with_capacity(1);
                if let Some(position) = self.cited.iter().position(|(cited, ..)| *cited == index) {
                    let (_, start, pages) = self.cited.swap_remove(position);
                    events.extend(pages.into_iter().map(|page| StreamEvent::Citation {
                        citation: Citation {
                            page,
                            start,
                            end: self.text_chars,
                        },
                    }));
                }
                events.push(StreamEvent::BlockStop { index });
                Ok(events)
            }
            "message_delta" => Ok(decode_message_delta(payload)),
            "message_stop" => Ok(vec![StreamEvent::End]),
            "error" => {
                let error = payload.get("error");
                let field = |key: &str| {
                    error
                        .and_then(|error| error.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                };
                Err(DecodeError::new(format!(
                    "the provider's stream failed: {} ({})",
                    field("message"),
                    field("type")
                )))
            }
            _ => Ok(Vec::new()),
        }
    }

    fn decode_block_start(&mut self, payload: &Object) -> Result<Vec<StreamEvent>, DecodeError> {
        let anthropic_index = block_index(payload)?;
        let block = as_object(require(payload, "content_block", "")?, "content_block")?;
        let block_type = require_str(block, "type", "content_block")?;
        if !matches!(block_type, "text" | "thinking" | "tool_use") {
            self.blocks.push((anthropic_index, None));
            return Ok(self.web_search_block(anthropic_index, block_type, block));
        }
        let index = self.next_index;
        self.next_index += 1;
        self.blocks.push((anthropic_index, Some(index)));
        // Anthropic starts every block empty; content in the start event is kept anyway.
        let mut events = Vec::with_capacity(1);
        match block_type {
            "text" => {
                events.push(StreamEvent::TextStart { index });
                let pages: Vec<WebPage> = (block.get("citations").and_then(Value::as_array))
                    .into_iter()
                    .flatten()
                    .filter_map(cited_page)
                    .collect();
                self.cited.push((index, self.text_chars, pages));
                if let Some(text) =
                    optional_str(block, "text", "content_block")?.filter(|text| !text.is_empty())
                {
                    self.text_chars += text.chars().count();
                    events.push(StreamEvent::TextDelta {
                        index,
                        text: text.to_owned(),
                    });
                }
            }
            "thinking" => {
                events.push(StreamEvent::ThinkingStart { index });
                if let Some(text) = optional_str(block, "thinking", "content_block")?
                    .filter(|text| !text.is_empty())
                {
                    events.push(StreamEvent::ThinkingDelta {
                        index,
                        text: text.to_owned(),
                    });
                }
                if let Some(signature) = optional_str(block, "signature", "content_block")?
                    .filter(|signature| !signature.is_empty())
                {
                    events.push(StreamEvent::ThinkingSignature {
                        index,
                        signature: signature.to_owned(),
                    });
                }
            }
            _ => {
                events.push(StreamEvent::ToolCallStart {
                    index,
                    id: require_str(block, "id", "content_block")?.to_owned(),
                    name: require_str(block, "name", "content_block")?.to_owned(),
                });
                if let Some(input) = block
                    .get("input")
                    .and_then(Value::as_object)
                    .filter(|input| !input.is_empty())
                {
                    events.push(StreamEvent::ToolCallDelta {
                        index,
                        arguments: Value::Object(input.clone()).to_string(),
                    });
                }
            }
        }
        Ok(events)
    }

    /// What a block Routerly does not stream says about a web search: a search's start
    /// is noted, and its result becomes a [`StreamEvent::WebSearch`].
    fn web_search_block(
        &mut self,
        anthropic_index: u64,
        block_type: &str,
        block: &Object,
    ) -> Vec<StreamEvent> {
        let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default();
        match block_type {
            "server_tool_use" if text("name") == "web_search" => {
                let input = block
                    .get("input")
                    .filter(|input| input.as_object().is_some_and(|input| !input.is_empty()));
                let input = input.map(Value::to_string).unwrap_or_default();
                self.searches
                    .push((anthropic_index, text("id").to_owned(), input));
                Vec::new()
            }
            "web_search_tool_result" => {
                let id = text("tool_use_id");
                let inputs: Vec<(&str, Value)> = (self.searches.iter())
                    .map(|(_, id, input)| {
                        (id.as_str(), serde_json::from_str(input).unwrap_or_default())
                    })
                    .collect();
                let queries: Vec<(&str, &str)> = (inputs.iter())
                    .map(|(id, input)| (*id, input["query"].as_str().unwrap_or_default()))
                    .collect();
                let content = block.get("content").unwrap_or(&Value::Null);
                vec![StreamEvent::WebSearch {
                    search: search_call(id, &queries, content),
                }]
            }
            _ => Vec::new(),
        }
    }

    fn decode_block_delta(&mut self, payload: &Object) -> Result<Vec<StreamEvent>, DecodeError> {
        let delta = as_object(require(payload, "delta", "")?, "delta")?;
        let Some(index) = self.known_block(payload)? else {
            // A web search's query streams as its input.
            let anthropic_index = block_index(payload)?;
            if let Some((_, _, input)) = (self.searches.iter_mut())
                .find(|(search_index, ..)| *search_index == anthropic_index)
                && let Some(partial) = delta.get("partial_json").and_then(Value::as_str)
            {
                input.push_str(partial);
            }
            return Ok(Vec::new());
        };
        let text_field = |key: &str| require_str(delta, key, "delta").map(str::to_owned);
        let event = match require_str(delta, "type", "delta")? {
            "text_delta" => {
                let text = text_field("text")?;
                self.text_chars += text.chars().count();
                StreamEvent::TextDelta { index, text }
            }
            "citations_delta" => {
                let page = delta.get("citation").and_then(cited_page);
                if let (Some(page), Some((_, _, pages))) = (
                    page,
                    self.cited.iter_mut().find(|(cited, ..)| *cited == index),
                ) {
                    pages.push(page);
                }
                return Ok(Vec::new());
            }
            "thinking_delta" => StreamEvent::ThinkingDelta {
                index,
                text: text_field("thinking")?,
            },
            "signature_delta" => StreamEvent::ThinkingSignature {
                index,
                signature: text_field("signature")?,
            },
            "input_json_delta" => {
                let arguments = text_field("partial_json")?;
                if arguments.is_empty() {
                    return Ok(Vec::new());
                }
                StreamEvent::ToolCallDelta { index, arguments }
            }
            // Delta types added later carry nothing we model.
            _ => return Ok(Vec::new()),
        };
        Ok(vec![event])
    }

    /// The canonical index of the block an event refers to; `None` for a dropped block,
    /// an error for a block that never started.
    fn known_block(&self, payload: &Object) -> Result<Option<usize>, DecodeError> {
        let anthropic_index = block_index(payload)?;
        self.blocks
            .iter()
            .rev()
            .find(|(known_index, _)| *known_index == anthropic_index)
            .map(|(_, index)| *index)
            .ok_or_else(|| {
                DecodeError::at(
                    "index",
                    format!("the provider's stream refers to content block {anthropic_index}, which never started"),
                )
            })
    }
}

fn block_index(payload: &Object) -> Result<u64, DecodeError> {
    require(payload, "index", "")?
        .as_u64()
        .ok_or_else(|| DecodeError::at("index", "`index` must be a non-negative integer"))
}

/// `message_delta`: usage first (output tokens, and input and cache counters when newer
/// API versions repeat them), then the stop reason.
fn decode_message_delta(payload: &Object) -> Vec<StreamEvent> {
    let mut events = Vec::with_capacity(2);
    if let Some(usage) = payload.get("usage").and_then(Value::as_object) {
        let mut delta_usage = Usage {
            output_tokens: lenient_u64(usage, "output_tokens"),
            ..Usage::default()
        };
        if get(usage, "input_tokens").is_some() {
            delta_usage = Usage {
                output_tokens: delta_usage.output_tokens,
                ..usage_from_anthropic(usage)
            };
        } else {
            delta_usage.cached_input_tokens = lenient_u64(usage, "cache_read_input_tokens");
            delta_usage.cache_write_tokens = lenient_u64(usage, "cache_creation_input_tokens");
        }
        events.push(StreamEvent::Usage { usage: delta_usage });
    }
    let delta = payload.get("delta");
    let field = |key: &str| {
        delta
            .and_then(|delta| delta.get(key))
            .and_then(Value::as_str)
    };
    if let Some(stop_reason) = field("stop_reason") {
        events.push(StreamEvent::Finish {
            stop_reason: stop_reason_from_name(stop_reason),
            stop_sequence: field("stop_sequence").map(str::to_owned),
        });
    }
    events
}

// ---------------------------------------------------------------------------------------
// Encoding a stream for an Anthropic client
// ---------------------------------------------------------------------------------------

/// What kind of content block is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    ToolCall,
}

/// A block the encoder has started: the incoming canonical index and kind, and the index
/// given to the client.
#[derive(Debug, Clone, Copy)]
struct EncodedBlock {
    incoming_index: usize,
    kind: BlockKind,
    client_index: usize,
}

/// Turns canonical stream events into Anthropic's SSE events.
///
/// The events may come from any provider, so the encoder does not trust them to be
/// well formed: blocks are renumbered densely in order of appearance; a delta for a
/// block that never started starts it (a tool call then gets a made-up id and an empty
/// name); a new block closes the open one; `End` closes what is open, and without a
/// `Finish` the stop reason is `tool_use` if a tool was called, else `end_turn`; events
/// before `Start` make one up, and events after `End` are ignored. A delta for a block
/// that was already closed goes to that block's index again, which the SDKs (they
/// accumulate by index) apply.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    started: bool,
    ended: bool,
    usage: Usage,
    finish: Option<(StopReason, Option<String>)>,
    blocks: Vec<EncodedBlock>,
    open_block: Option<EncodedBlock>,
    called_tool: bool,
}

impl StreamEncoder {
    /// An encoder for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes one canonical event as zero or more SSE frames, in order.
    pub fn encode(&mut self, event: &StreamEvent) -> Vec<SseFrame> {
        let mut frames = Vec::new();
        if self.ended {
            return frames;
        }
        if let StreamEvent::Start { id, model, usage } = event {
            if !self.started {
                self.usage.merge(usage);
                self.start(id, model, &mut frames);
            } else {
                self.usage.merge(usage);
            }
            return frames;
        }
        if !self.started {
            self.start("", "", &mut frames);
        }
        match event {
            StreamEvent::Start { .. } => {}
            StreamEvent::TextStart { index } => {
                self.ensure_block(*index, BlockKind::Text, None, &mut frames);
            }
            StreamEvent::ThinkingStart { index } => {
                self.ensure_block(*index, BlockKind::Thinking, None, &mut frames);
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_block(*index, BlockKind::ToolCall, Some((id, name)), &mut frames);
            }
            StreamEvent::TextDelta { index, text } => {
                let client_index = self.ensure_block(*index, BlockKind::Text, None, &mut frames);
                frames.push(block_delta(
                    client_index,
                    json!({"type": "text_delta", "text": text}),
                ));
            }
            StreamEvent::ThinkingDelta { index, text } => {
                let client_index =
                    self.ensure_block(*index, BlockKind::Thinking, None, &mut frames);
                frames.push(block_delta(
                    client_index,
                    json!({"type": "thinking_delta", "thinking": text}),
                ));
            }
            StreamEvent::ThinkingSignature { index, signature } => {
                let client_index =
                    self.ensure_block(*index, BlockKind::Thinking, None, &mut frames);
                frames.push(block_delta(
                    client_index,
                    json!({"type": "signature_delta", "signature": signature}),
                ));
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                let client_index =
                    self.ensure_block(*index, BlockKind::ToolCall, None, &mut frames);
                frames.push(block_delta(
                    client_index,
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                ));
            }
            StreamEvent::BlockStop { index } => {
                if self
                    .open_block
                    .is_some_and(|open| open.incoming_index == *index)
                {
                    self.close_open_block(&mut frames);
                }
            }
            StreamEvent::Usage { usage } => self.usage.merge(usage),
            StreamEvent::Finish {
                stop_reason,
                stop_sequence,
            } => self.finish = Some((stop_reason.clone(), stop_sequence.clone())),
            StreamEvent::End => self.end(&mut frames),
            // Only an Anthropic provider sends these, and its stream reaches an Anthropic
            // client as it came.
            StreamEvent::WebSearch { .. } | StreamEvent::Citation { .. } => {}
        }
        frames
    }

    fn start(&mut self, id: &str, model: &str, frames: &mut Vec<SseFrame>) {
        self.started = true;
        frames.push(frame(
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": message_id(id),
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": model,
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": usage_to_anthropic(&self.usage),
                },
            }),
        ));
        // The real API pings right after `message_start`; some clients wait for it.
        frames.push(frame("ping", json!({"type": "ping"})));
    }

    /// The client index of the block for `incoming_index` and `kind`, starting it (and
    /// closing the open one) when it is not the open block.
    fn ensure_block(
        &mut self,
        incoming_index: usize,
        kind: BlockKind,
        tool: Option<(&String, &String)>,
        frames: &mut Vec<SseFrame>,
    ) -> usize {
        let matches =
            |block: &EncodedBlock| block.incoming_index == incoming_index && block.kind == kind;
        if let Some(open) = self.open_block.filter(matches) {
            return open.client_index;
        }
        if let Some(earlier) = self.blocks.iter().find(|block| matches(block)).copied() {
            // A block reopened after its stop: keep writing to its index rather than
            // start a second block (a tool call must not appear twice).
            if tool.is_some() {
                return earlier.client_index;
            }
            self.close_open_block(frames);
            return earlier.client_index;
        }
        self.close_open_block(frames);
        let client_index = self.blocks.len();
        let content_block = match kind {
            BlockKind::Text => json!({"type": "text", "text": ""}),
            BlockKind::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
            BlockKind::ToolCall => {
                self.called_tool = true;
                let (id, name) = match tool {
                    Some((id, name)) => (id.clone(), name.clone()),
                    None => (
                        format!("toolu_{}", uuid::Uuid::new_v4().simple()),
                        String::new(),
                    ),
                };
                json!({"type": "tool_use", "id": id, "name": name, "input": {}})
            }
        };
        frames.push(frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": client_index, "content_block": content_block}),
        ));
        let block = EncodedBlock {
            incoming_index,
            kind,
            client_index,
        };
        self.blocks.push(block);
        self.open_block = Some(block);
        client_index
    }

    fn close_open_block(&mut self, frames: &mut Vec<SseFrame>) {
        if let Some(open) = self.open_block.take() {
            frames.push(frame(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": open.client_index}),
            ));
        }
    }

    fn end(&mut self, frames: &mut Vec<SseFrame>) {
        self.close_open_block(frames);
        self.ended = true;
        let (stop_reason, stop_sequence) = self.finish.take().unwrap_or_else(|| {
            let stop_reason = if self.called_tool {
                StopReason::ToolUse
            } else {
                StopReason::EndTurn
            };
            (stop_reason, None)
        });
        let usage = usage_to_anthropic(&self.usage);
        frames.push(frame(
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason_name(&stop_reason),
                    "stop_sequence": stop_sequence,
                },
                "usage": {
                    "output_tokens": usage["output_tokens"],
                    "input_tokens": usage["input_tokens"],
                    "cache_read_input_tokens": usage["cache_read_input_tokens"],
                    "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                },
            }),
        ));
        frames.push(frame("message_stop", json!({"type": "message_stop"})));
    }
}

fn frame(event: &'static str, data: Value) -> SseFrame {
    SseFrame {
        event: Some(event),
        data: data.to_string(),
    }
}

fn block_delta(client_index: usize, delta: Value) -> SseFrame {
    frame(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": client_index, "delta": delta}),
    )
}
