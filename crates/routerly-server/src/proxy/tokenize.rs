//! Token counts for `/v1/messages/count_tokens` on OpenAI models, with OpenAI's own
//! tokenizers (`o200k_base`, `cl100k_base`) from `tiktoken-rs`, whose vocabularies are
//! compiled into the binary (nothing is downloaded). Each vocabulary is built on first use,
//! by this endpoint only; nothing on the completion path touches it.
//!
//! The count is the tokens of every text the model reads (system, messages, tool calls and
//! results, tool definitions as JSON) plus OpenAI's documented framing of 3 tokens per
//! message and 3 to prime the reply; images count [`estimate::IMAGE_TOKENS`] each. Tool
//! definitions are framed by OpenAI in an undocumented way, so a request with tools can
//! differ from the provider's count by a few tokens.

use routerly_core::canonical::{ChatRequest, ContentPart, DocumentSource};
use routerly_core::config::{ModelConfig, ProviderKind};
use routerly_core::estimate;
use tiktoken_rs::CoreBPE;

/// OpenAI's framing tokens per message, and for priming the reply.
const FRAMING_TOKENS: u64 = 3;

/// The tokenizer of `model`, when it is an OpenAI model whose tokenizer ships with Routerly.
pub fn tokenizer_for(model: &ModelConfig) -> Option<fn() -> &'static CoreBPE> {
    if !matches!(model.provider, ProviderKind::OpenAi | ProviderKind::Azure) {
        return None;
    }
    let name = model.upstream_model.to_ascii_lowercase();
    let cl100k =
        name.starts_with("gpt-4") && !name.starts_with("gpt-4o") && !name.starts_with("gpt-4.")
            || name.starts_with("gpt-3.5")
            || name.starts_with("text-embedding");
    Some(if cl100k {
        tiktoken_rs::cl100k_base_singleton
    } else {
        tiktoken_rs::o200k_base_singleton
    })
}

/// The prompt tokens of `request` under `bpe`.
pub fn count(bpe: &CoreBPE, request: &ChatRequest) -> u64 {
    let mut tokens = FRAMING_TOKENS;
    let mut text = |text: &str| bpe.encode_ordinary(text).len() as u64;
    if !request.system.is_empty() {
        tokens += FRAMING_TOKENS;
        for part in &request.system {
            tokens += part_tokens(part, &mut text);
        }
    }
    for message in &request.messages {
        tokens += FRAMING_TOKENS;
        for part in &message.content {
            tokens += part_tokens(part, &mut text);
        }
    }
    for tool in &request.tools {
        tokens += text(&tool.name)
            + tool.description.as_deref().map_or(0, &mut text)
            + text(&tool.parameters.to_string());
    }
    tokens
}

fn part_tokens(part: &ContentPart, text: &mut impl FnMut(&str) -> u64) -> u64 {
    match part {
        ContentPart::Text { text: value } | ContentPart::Thinking { text: value, .. } => {
            text(value)
        }
        ContentPart::Image { .. } => estimate::IMAGE_TOKENS,
        ContentPart::ToolCall {
            name, arguments, ..
        } => text(name) + text(arguments),
        ContentPart::ToolResult { content, .. } => {
            content.iter().map(|part| part_tokens(part, text)).sum()
        }
        ContentPart::Document {
            source: DocumentSource::Text { text: value },
            ..
        } => text(value),
        ContentPart::Document { source, .. } => {
            (estimate::document_bytes(source) as u64).div_ceil(4)
        }
        // Its text is not at hand; the documented estimate of its characters.
        ContentPart::Opaque { chars, .. } => (*chars as u64).div_ceil(4),
    }
}

#[cfg(test)]
mod tests {
    use routerly_core::canonical::{Message, Role};

    use super::*;

    #[test]
    fn counts_with_openais_vocabulary() {
        let request = ChatRequest {
            messages: vec![Message {
                role: Role::User,
                content: vec![ContentPart::text("hello world")],
            }],
            ..ChatRequest::default()
        };
        // "hello world" is 2 tokens in o200k_base; 3 framing for the message, 3 for the reply.
        assert_eq!(count(tiktoken_rs::o200k_base_singleton(), &request), 8);
        assert_eq!(count(tiktoken_rs::cl100k_base_singleton(), &request), 8);
    }
}
