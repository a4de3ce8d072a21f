//! Cheap token estimates, used where no provider can count exactly.
//!
//! The estimate is the documented rule of thumb of about four bytes of English text per
//! token, applied to every text the model reads (system, messages, tool definitions and
//! tool calls), plus a fixed allowance per message and per image. It errs on the high
//! side for code and non-Latin scripts, which is the safe side for budgets.

use crate::canonical::{ChatRequest, ContentPart, DocumentSource};

/// Tokens charged for each image, whatever its size (roughly one 512×512 tile).
pub const IMAGE_TOKENS: u64 = 256;
/// Tokens of framing per message (role markers and separators).
pub const MESSAGE_OVERHEAD_TOKENS: u64 = 4;

/// Estimated prompt tokens of `request`.
pub fn prompt_tokens(request: &ChatRequest) -> u64 {
    let mut bytes = 0usize;
    let mut fixed = 0u64;
    for part in &request.system {
        bytes += part_bytes(part, &mut fixed);
    }
    for message in &request.messages {
        fixed += MESSAGE_OVERHEAD_TOKENS;
        for part in &message.content {
            bytes += part_bytes(part, &mut fixed);
        }
    }
    for tool in &request.tools {
        bytes += tool.name.len()
            + tool.description.as_ref().map_or(0, String::len)
            + tool.parameters.to_string().len();
    }
    (bytes as u64).div_ceil(4) + fixed
}

/// What a document weighs in the estimate: its text, or its encoded bytes (the same
/// measure as an opaque part's characters).
pub fn document_bytes(source: &DocumentSource) -> usize {
    match source {
        DocumentSource::Base64 { data, .. } => data.len(),
        DocumentSource::Text { text } => text.len(),
        DocumentSource::Url { url } => url.len(),
    }
}

fn part_bytes(part: &ContentPart, fixed: &mut u64) -> usize {
    match part {
        ContentPart::Text { text } | ContentPart::Thinking { text, .. } => text.len(),
        ContentPart::Image { .. } => {
            *fixed += IMAGE_TOKENS;
            0
        }
        ContentPart::ToolCall {
            name, arguments, ..
        } => name.len() + arguments.len(),
        ContentPart::ToolResult { content, .. } => {
            content.iter().map(|part| part_bytes(part, fixed)).sum()
        }
        ContentPart::Document { source, .. } => document_bytes(source),
        ContentPart::Opaque { chars, .. } => *chars,
    }
}
