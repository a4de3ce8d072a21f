//! What the fuzz targets share: how an input's first byte picks a wire format or a config
//! file, so one target covers every format and the fuzzer explores them all.

use routerly_core::wire::WireFormat;

/// Every chat wire format, in the order an input's selector byte picks them.
pub const FORMATS: [WireFormat; 6] = [
    WireFormat::OpenAiChat,
    WireFormat::AnthropicMessages,
    WireFormat::GeminiGenerateContent,
    WireFormat::MistralChat,
    WireFormat::OllamaChat,
    WireFormat::OpenAiResponses,
];

/// The format an input's selector byte picks.
pub fn format_of(selector: u8) -> WireFormat {
    FORMATS[usize::from(selector) % FORMATS.len()]
}

/// The selector byte that picks `format` (what the seed corpus starts with).
pub fn selector_of(format: WireFormat) -> u8 {
    let position = FORMATS
        .iter()
        .position(|candidate| *candidate == format)
        .expect("every format is listed");
    u8::try_from(position).expect("six formats")
}

/// The input split into its selector byte and the rest; `None` when it is empty.
pub fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(selector, rest)| (*selector, rest))
}

use routerly_core::canonical::{ChatRequest, ChatResponse, ContentPart};

/// Gives tool-call ids the names `call-0`, `call-1`, … in order of first appearance (calls
/// and the results that answer them alike), for comparing two values that differ only in
/// the ids a decoder generated (Gemini and Ollama carry none, so each decode makes new ones).
fn rename_call_ids<'p>(parts: impl Iterator<Item = &'p mut ContentPart>, names: &mut Vec<String>) {
    let mut rename = |id: &mut String| {
        let position = match names.iter().position(|seen| seen == id) {
            Some(position) => position,
            None => {
                names.push(id.clone());
                names.len() - 1
            }
        };
        *id = format!("call-{position}");
    };
    for part in parts {
        match part {
            ContentPart::ToolCall { id, .. } => rename(id),
            ContentPart::ToolResult { tool_call_id, .. } => rename(tool_call_id),
            _ => {}
        }
    }
}

/// `request` with its tool-call ids renamed (see [`rename_call_ids`]).
pub fn without_generated_ids(mut request: ChatRequest) -> ChatRequest {
    let mut names = Vec::new();
    let parts = request
        .messages
        .iter_mut()
        .flat_map(|message| message.content.iter_mut());
    rename_call_ids(parts, &mut names);
    request
}

/// `response` with its tool-call ids renamed and its id cleared (formats without an answer
/// id get a fresh one at each decode).
pub fn response_without_generated_ids(mut response: ChatResponse) -> ChatResponse {
    let mut names = Vec::new();
    rename_call_ids(response.content.iter_mut(), &mut names);
    response.id.clear();
    response
}
