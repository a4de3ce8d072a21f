//! Collecting a stream's canonical events back into one [`ChatResponse`], for what needs
//! the whole answer after streaming it (the Responses API's stored conversations).

use std::collections::BTreeMap;

use crate::canonical::{ChatResponse, ContentPart, StreamEvent, Usage, WebSources};

/// Feeds on [`StreamEvent`]s and yields the answer they describe.
#[derive(Debug, Default)]
pub struct Accumulator {
    id: String,
    model: String,
    blocks: BTreeMap<usize, ContentPart>,
    usage: Usage,
    stop_reason: Option<crate::canonical::StopReason>,
    web_sources: WebSources,
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event into account.
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Start { id, model, usage } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.usage.merge(usage);
            }
            StreamEvent::TextStart { index } => {
                self.blocks.entry(*index).or_insert(ContentPart::text(""));
            }
            StreamEvent::TextDelta { index, text } => {
                if let ContentPart::Text { text: all } =
                    self.blocks.entry(*index).or_insert(ContentPart::text(""))
                {
                    all.push_str(text);
                }
            }
            StreamEvent::ThinkingStart { index } => {
                self.blocks.entry(*index).or_insert(ContentPart::Thinking {
                    text: String::new(),
                    signature: None,
                });
            }
            StreamEvent::ThinkingDelta { index, text } => {
                if let Some(ContentPart::Thinking { text: all, .. }) = self.blocks.get_mut(index) {
                    all.push_str(text);
                }
            }
            StreamEvent::ThinkingSignature { index, signature } => {
                if let Some(ContentPart::Thinking {
                    signature: slot, ..
                }) = self.blocks.get_mut(index)
                {
                    *slot = Some(signature.clone());
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.blocks.insert(
                    *index,
                    ContentPart::ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                    },
                );
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if let Some(ContentPart::ToolCall { arguments: all, .. }) =
                    self.blocks.get_mut(index)
                {
                    all.push_str(arguments);
                }
            }
            StreamEvent::Usage { usage } => self.usage.merge(usage),
            StreamEvent::Finish { stop_reason, .. } => self.stop_reason = Some(stop_reason.clone()),
            StreamEvent::WebSearch { search } => self.web_sources.searches.push(search.clone()),
            StreamEvent::Citation { citation } => {
                self.web_sources.citations.push(citation.clone());
            }
            StreamEvent::BlockStop { .. } | StreamEvent::End => {}
        }
    }

    /// The answer so far, blocks in index order.
    pub fn response(&self) -> ChatResponse {
        ChatResponse {
            id: self.id.clone(),
            model: self.model.clone(),
            content: self
                .blocks
                .values()
                .filter(|part| !matches!(part, ContentPart::Text { text } if text.is_empty()))
                .cloned()
                .collect(),
            stop_reason: self.stop_reason.clone(),
            stop_sequence: None,
            usage: self.usage,
            created: chrono::Utc::now().timestamp(),
            web_sources: self.web_sources.clone(),
        }
    }
}
