//! Wire formats: one module per client/provider protocol, each converting between its
//! JSON bodies and SSE events and the canonical model of [`crate::canonical`].
//!
//! Every module offers the same functions, in the same order:
//! `decode_request`, `encode_request`, `decode_response`, `encode_response`,
//! `StreamDecoder`, `StreamEncoder`, `decode_error`, `encode_error`.
//!
//! The functions of this module dispatch on [`WireFormat`], so the server never matches
//! on formats itself: adding a format means a module here and an arm in each match below.

pub mod anthropic;
mod blocks;
mod call_names;
pub mod embeddings;
pub mod gemini;
mod json;
pub mod media;
pub mod mistral;
pub mod ollama;
pub mod openai;
mod passthrough;
pub mod responses;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use passthrough::{EventRewrite, StreamPassthrough};

use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, DecodeError, DocumentSource, ErrorBody, PDF_MEDIA_TYPE,
    StreamEvent, Usage,
};

/// A wire protocol for chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// OpenAI Chat Completions.
    #[serde(rename = "openai_chat")]
    OpenAiChat,
    /// Anthropic Messages.
    AnthropicMessages,
    /// Google Gemini `generateContent`.
    GeminiGenerateContent,
    /// Mistral chat (OpenAI's shape with Mistral's differences; see [`mistral`]).
    MistralChat,
    /// Ollama's native `/api/chat` (newline-delimited JSON streams).
    OllamaChat,
    /// OpenAI Responses (`/v1/responses`): a client surface, and OpenAI's own format for
    /// requests that arrive on it.
    #[serde(rename = "openai_responses")]
    OpenAiResponses,
}

/// One server-sent event to write: an optional `event:` name and its `data:` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    /// The `event:` line, when the format names events (Anthropic does, OpenAI does not).
    pub event: Option<&'static str>,
    /// The `data:` payload (one line of JSON, or `[DONE]`).
    pub data: String,
}

impl SseFrame {
    /// Writes the frame in SSE syntax, ready to send in one write.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 32);
        if let Some(event) = self.event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(event.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.data.as_bytes());
        out.extend_from_slice(b"\n\n");
        out
    }
}

/// The header naming the beta features a client of `format` asks for, lower-case.
pub fn beta_header(format: WireFormat) -> Option<&'static str> {
    match format {
        WireFormat::AnthropicMessages => Some("anthropic-beta"),
        WireFormat::OpenAiChat | WireFormat::OpenAiResponses => Some("openai-beta"),
        WireFormat::GeminiGenerateContent | WireFormat::MistralChat | WireFormat::OllamaChat => {
            None
        }
    }
}

/// Whether a provider speaking `format` is called through OpenAI's Responses operation.
pub fn is_responses(format: WireFormat) -> bool {
    matches!(format, WireFormat::OpenAiResponses)
}

/// Whether a provider speaking `format` counts tokens itself (Anthropic's `count_tokens`).
pub fn counts_tokens_upstream(format: WireFormat) -> bool {
    matches!(format, WireFormat::AnthropicMessages)
}

/// Whether a streamed request in `format` must ask for usage to receive it (OpenAI Chat's
/// `stream_options.include_usage`).
pub fn asks_for_stream_usage(format: WireFormat) -> bool {
    matches!(format, WireFormat::OpenAiChat)
}

/// How a stream event (`event:` name and `data:`) of `format` passes through to a client
/// of the same format.
pub fn stream_passthrough(
    format: WireFormat,
    event: Option<&str>,
    data: &str,
) -> StreamPassthrough {
    match format {
        WireFormat::AnthropicMessages => passthrough::anthropic_event(event),
        WireFormat::OpenAiChat => passthrough::openai_chat_event(data),
        WireFormat::GeminiGenerateContent
        | WireFormat::MistralChat
        | WireFormat::OllamaChat
        | WireFormat::OpenAiResponses => StreamPassthrough::Decode,
    }
}

/// A stream event of `format` passed through to a client of the same format, with the
/// model replaced by `model_id` (and, for OpenAI Chat, the usage Routerly asked for kept
/// from a client that did not ask).
pub fn rewrite_event(
    format: WireFormat,
    event: Option<&str>,
    data: &str,
    model_id: &str,
    client_wants_usage: bool,
) -> EventRewrite {
    match format {
        WireFormat::OpenAiChat => {
            passthrough::openai_chat_rewrite(data, model_id, client_wants_usage)
        }
        WireFormat::OpenAiResponses => passthrough::responses_rewrite(data, model_id),
        WireFormat::AnthropicMessages => passthrough::anthropic_rewrite(event, data, model_id),
        WireFormat::GeminiGenerateContent | WireFormat::MistralChat | WireFormat::OllamaChat => {
            EventRewrite::Unchanged
        }
    }
}

/// The member every whole answer of `format` has (`choices`, `content`), for the formats
/// whose answers pass through without decoding; `None` for the others.
pub fn answer_required_member(format: WireFormat) -> Option<&'static str> {
    match format {
        WireFormat::OpenAiChat => Some("choices"),
        WireFormat::AnthropicMessages => Some("content"),
        WireFormat::GeminiGenerateContent
        | WireFormat::MistralChat
        | WireFormat::OllamaChat
        | WireFormat::OpenAiResponses => None,
    }
}

/// The SSE frame that ends a stream of `format` which broke off, carrying `error` (the
/// body [`encode_error`] gives).
pub fn stream_error_frame(format: WireFormat, error: &Value) -> String {
    match format {
        WireFormat::AnthropicMessages => passthrough::anthropic_error_frame(error),
        WireFormat::OpenAiResponses => passthrough::responses_error_frame(error),
        WireFormat::OpenAiChat
        | WireFormat::GeminiGenerateContent
        | WireFormat::MistralChat
        | WireFormat::OllamaChat => passthrough::data_error_frame(error),
    }
}

/// Decodes a client's request body in `format`.
pub fn decode_request(format: WireFormat, body: &Value) -> Result<ChatRequest, DecodeError> {
    match format {
        WireFormat::OpenAiChat => openai::decode_request(body),
        WireFormat::AnthropicMessages => anthropic::decode_request(body),
        WireFormat::GeminiGenerateContent => gemini::decode_request(body),
        WireFormat::MistralChat => mistral::decode_request(body),
        WireFormat::OllamaChat => ollama::decode_request(body),
        WireFormat::OpenAiResponses => responses::decode_request(body),
    }
}

/// A client's request body in `format` read straight from its text, when it has the common
/// shape that format's simple reader knows (Chat Completions'
/// [`openai::decode_simple_request`], Messages' [`anthropic::decode_simple_request`]);
/// `None` for any other body, which [`decode_request`]
/// then reads from its JSON tree. Where both read a body they give the same request.
///
/// The text is checked as UTF-8 once, by vector (`simdutf8`), so that serde reads its
/// strings without checking each again (about 1,500 instructions of a small body's read).
/// Text that is not UTF-8 goes to the full decoder, which words the refusal.
pub fn decode_simple_request(format: WireFormat, text: &[u8]) -> Option<SimpleRequest> {
    let text = crate::json_text::utf8(text)?;
    match format {
        WireFormat::OpenAiChat => openai::decode_simple_request(text),
        WireFormat::AnthropicMessages => anthropic::decode_simple_request(text),
        WireFormat::GeminiGenerateContent
        | WireFormat::MistralChat
        | WireFormat::OllamaChat
        | WireFormat::OpenAiResponses => None,
    }
}

/// A body a simple reader read: the canonical request, and where the members a call in
/// the same format rewrites lie in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct SimpleRequest {
    pub request: ChatRequest,
    pub places: TextPlaces,
}

/// Where the members a call in the same format rewrites lie in a body's text
/// ([`TextPlaces::rewrite`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPlaces {
    /// The model's string in the text, between its quotes; `None` when it has an escape.
    pub model: Option<std::ops::Range<usize>>,
    /// Whether the body has a `stream_options` member (`null` included).
    pub stream_options: bool,
}

impl TextPlaces {
    /// The body `text` (the one read) with the model set to `model_json` and, with
    /// `stream_usage`, `"stream_options":{"include_usage":true}` added after the last
    /// member: byte for byte what [`crate::members::with_members`] writes, without scanning
    /// the text again. `None` when it cannot (an escaped model, a `stream_options` member
    /// to replace); the caller then splices by the member scan.
    pub fn rewrite(&self, text: &[u8], model_json: &str, stream_usage: bool) -> Option<Vec<u8>> {
        let model = self.model.clone()?;
        if stream_usage && self.stream_options {
            return None;
        }
        // The model's quotes go with it.
        let (start, end) = (model.start.checked_sub(1)?, model.end + 1);
        if text.get(start) != Some(&b'"') || text.get(end - 1) != Some(&b'"') {
            return None;
        }
        let added = br#","stream_options":{"include_usage":true}"#;
        let mut out = Vec::with_capacity(text.len() + model_json.len() + added.len());
        out.extend_from_slice(&text[..start]);
        out.extend_from_slice(model_json.as_bytes());
        if stream_usage {
            // After the last member's value: before the white space that precedes the
            // object's closing brace.
            let close = text.iter().rposition(|&byte| byte == b'}')?;
            let last = text[..close]
                .iter()
                .rposition(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))?
                + 1;
            out.extend_from_slice(text.get(end..last)?);
            out.extend_from_slice(added);
            out.extend_from_slice(&text[last..]);
        } else {
            out.extend_from_slice(&text[end..]);
        }
        Some(out)
    }
}

/// Encodes a canonical request for a provider speaking `format`.
pub fn encode_request(
    format: WireFormat,
    request: &ChatRequest,
    upstream_model: &str,
) -> Result<Value, DecodeError> {
    // What the canonical model holds only by name cannot be sent in another format; the
    // encoders below skip such parts.
    if let Some((kind, path)) = request.first_opaque() {
        return Err(DecodeError::untranslatable(kind, path));
    }
    if let Some((path, reason)) = request.first_unreadable_document(|source, in_tool_result| {
        document_refusal(format, source, in_tool_result)
    }) {
        return Err(DecodeError::at(&path, format!("`{path}`: {reason}")));
    }
    match format {
        WireFormat::OpenAiChat => openai::encode_request(request, upstream_model),
        WireFormat::AnthropicMessages => anthropic::encode_request(request, upstream_model),
        WireFormat::GeminiGenerateContent => gemini::encode_request(request, upstream_model),
        WireFormat::MistralChat => mistral::encode_request(request, upstream_model),
        WireFormat::OllamaChat => ollama::encode_request(request, upstream_model),
        WireFormat::OpenAiResponses => responses::encode_request(request, upstream_model),
    }
}

/// Why a provider speaking `format` cannot read a document from `source` (inside a tool
/// result when `in_tool_result`); `None` when it can. Plain text becomes a text part
/// anywhere; an inline PDF goes to every format with a document slot (Anthropic
/// `document`, OpenAI `file`, Responses `input_file`, Gemini `inlineData`); Gemini also
/// takes other inline types; a URL only Anthropic and Responses fetch. Inside a tool
/// result a document stays in the result for Anthropic and Responses (whose function call
/// outputs take files), follows the function response for Gemini and the `tool` message
/// (in a user message) for Chat Completions; Ollama's tool messages carry text only.
fn document_refusal(
    format: WireFormat,
    source: &DocumentSource,
    in_tool_result: bool,
) -> Option<String> {
    let reads_inline = |media_type: &str| match format {
        WireFormat::GeminiGenerateContent => true,
        WireFormat::AnthropicMessages | WireFormat::OpenAiChat | WireFormat::OpenAiResponses => {
            media_type.eq_ignore_ascii_case(PDF_MEDIA_TYPE)
        }
        WireFormat::MistralChat | WireFormat::OllamaChat => false,
    };
    let has_documents = !matches!(format, WireFormat::MistralChat | WireFormat::OllamaChat);
    match source {
        _ if !has_documents && !matches!(source, DocumentSource::Text { .. }) => {
            Some("documents have no equivalent in the target format".to_owned())
        }
        _ if in_tool_result && format == WireFormat::OllamaChat => {
            Some(
                "a document inside a tool result has no equivalent in the target format"
                    .to_owned(),
            )
        }
        DocumentSource::Text { .. } => None,
        DocumentSource::Base64 { media_type, .. } if !reads_inline(media_type) => Some(format!(
            "a `{media_type}` document has no equivalent in the target format (it reads inline documents as {PDF_MEDIA_TYPE} only)"
        )),
        DocumentSource::Base64 { .. } => None,
        DocumentSource::Url { .. }
            if matches!(
                format,
                WireFormat::AnthropicMessages | WireFormat::OpenAiResponses
            ) =>
        {
            None
        }
        DocumentSource::Url { .. } => Some(
            "a document given by URL has no equivalent in the target format (send it inline, base64-encoded)"
                .to_owned(),
        ),
    }
}

/// What a translation for a provider speaking `format` leaves out of `request`: the
/// sampling parameters the format has no slot for, then the tools the canonical model
/// carries only by name ([`ChatRequest::hosted_tools`]: code execution, custom tools…, and
/// a web search the target has no search tool for; Anthropic runs one as
/// `web_search_20250305`, Gemini as Google Search grounding), each named as the client wrote it (`seed`, `tools[2] (web_search)`). Empty when
/// nothing is lost. Content whose loss would change the request's meaning is not in this
/// list: [`encode_request`] refuses it.
pub fn dropped(format: WireFormat, request: &ChatRequest) -> Vec<String> {
    let lacks: &[&str] = match format {
        WireFormat::AnthropicMessages => &["seed", "frequency_penalty", "presence_penalty"],
        WireFormat::OpenAiChat => &["top_k"],
        WireFormat::GeminiGenerateContent | WireFormat::MistralChat | WireFormat::OllamaChat => &[],
        WireFormat::OpenAiResponses => &[
            "top_k",
            "stop",
            "seed",
            "frequency_penalty",
            "presence_penalty",
        ],
    };
    let mut dropped: Vec<String> = lacks
        .iter()
        .filter(|param| request.has_param(param))
        .map(|param| (*param).to_owned())
        .collect();
    // What a document says besides its content, where the target has no slot for it.
    for document in request.documents() {
        let ContentPart::Document {
            source,
            name,
            context,
            citations,
            path,
        } = document
        else {
            continue;
        };
        let slots = document_slots(format, source);
        for (present, carried, attribute) in [
            (name.is_some(), slots.title, "document title"),
            (context.is_some(), slots.context, "document context"),
            (*citations, slots.citations, "document citations"),
        ] {
            if present && !carried {
                dropped.push(format!("{path} ({attribute})"));
            }
        }
    }
    // Hosted web search goes to the target's own search tool where it has one.
    let carried = match format {
        WireFormat::AnthropicMessages => anthropic::web_search(request),
        WireFormat::GeminiGenerateContent => gemini::web_search(request),
        WireFormat::OpenAiChat
        | WireFormat::MistralChat
        | WireFormat::OllamaChat
        | WireFormat::OpenAiResponses => None,
    };
    dropped.extend(
        request
            .hosted_tools
            .iter()
            .filter(|tool| !carried.is_some_and(|carried| std::ptr::eq(*tool, carried)))
            .map(|tool| format!("{} ({})", tool.path, tool.kind)),
    );
    dropped
}

/// Which of a document's attributes a target carries.
struct DocumentSlots {
    /// Its name (Anthropic's `title`, the `filename` of OpenAI's `file` and Responses'
    /// `input_file`).
    title: bool,
    /// Anthropic's `context`.
    context: bool,
    /// Anthropic's `citations`.
    citations: bool,
}

/// What `format` carries of a document from `source` besides its content: Anthropic all of
/// it; OpenAI chat and Responses the name of an inline file (a plain-text document becomes
/// text, a URL a `file_url`, both without a name); Gemini, Mistral and Ollama nothing
/// (`inlineData` has no name; text documents become text).
fn document_slots(format: WireFormat, source: &DocumentSource) -> DocumentSlots {
    let inline = matches!(source, DocumentSource::Base64 { .. });
    match format {
        WireFormat::AnthropicMessages => DocumentSlots {
            title: true,
            context: true,
            citations: true,
        },
        WireFormat::OpenAiChat | WireFormat::OpenAiResponses => DocumentSlots {
            title: inline,
            context: false,
            citations: false,
        },
        WireFormat::GeminiGenerateContent | WireFormat::MistralChat | WireFormat::OllamaChat => {
            DocumentSlots {
                title: false,
                context: false,
                citations: false,
            }
        }
    }
}

/// Decodes a provider's whole answer in `format`.
pub fn decode_response(format: WireFormat, body: &Value) -> Result<ChatResponse, DecodeError> {
    match format {
        WireFormat::OpenAiChat => openai::decode_response(body),
        WireFormat::AnthropicMessages => anthropic::decode_response(body),
        WireFormat::GeminiGenerateContent => gemini::decode_response(body),
        WireFormat::MistralChat => mistral::decode_response(body),
        WireFormat::OllamaChat => ollama::decode_response(body),
        WireFormat::OpenAiResponses => responses::decode_response(body),
    }
}

/// The usage object of an answer or stream chunk in `format`, from its JSON text, for a
/// caller that relays the answer as it is and reads nothing else of it; `None` when the
/// text is not such an object, or for a format whose usage is not one top-level `usage`
/// object of this kind.
pub fn decode_usage(format: WireFormat, usage: &str) -> Option<Usage> {
    match format {
        WireFormat::OpenAiChat => openai::decode_usage_text(usage),
        WireFormat::AnthropicMessages => anthropic::usage_from_text(usage),
        WireFormat::GeminiGenerateContent
        | WireFormat::MistralChat
        | WireFormat::OllamaChat
        | WireFormat::OpenAiResponses => None,
    }
}

/// Encodes a canonical answer for a client speaking `format`.
pub fn encode_response(format: WireFormat, response: &ChatResponse) -> Value {
    match format {
        WireFormat::OpenAiChat => openai::encode_response(response),
        WireFormat::AnthropicMessages => anthropic::encode_response(response),
        WireFormat::GeminiGenerateContent => gemini::encode_response(response),
        WireFormat::MistralChat => mistral::encode_response(response),
        WireFormat::OllamaChat => ollama::encode_response(response),
        WireFormat::OpenAiResponses => responses::encode_response(response),
    }
}

/// Decodes a provider's error body in `format`.
pub fn decode_error(format: WireFormat, status: u16, body: &[u8]) -> ErrorBody {
    match format {
        WireFormat::OpenAiChat => openai::decode_error(status, body),
        WireFormat::AnthropicMessages => anthropic::decode_error(status, body),
        WireFormat::GeminiGenerateContent => gemini::decode_error(status, body),
        WireFormat::MistralChat => mistral::decode_error(status, body),
        WireFormat::OllamaChat => ollama::decode_error(status, body),
        WireFormat::OpenAiResponses => responses::decode_error(status, body),
    }
}

/// Encodes an error for a client speaking `format`.
pub fn encode_error(format: WireFormat, error: &ErrorBody) -> Value {
    match format {
        WireFormat::OpenAiChat => openai::encode_error(error),
        WireFormat::AnthropicMessages => anthropic::encode_error(error),
        WireFormat::GeminiGenerateContent => gemini::encode_error(error),
        WireFormat::MistralChat => mistral::encode_error(error),
        WireFormat::OllamaChat => ollama::encode_error(error),
        WireFormat::OpenAiResponses => responses::encode_error(error),
    }
}

/// Decodes a provider's stream events, whatever its format.
pub enum StreamDecoder {
    /// OpenAI chunks.
    OpenAi(openai::StreamDecoder),
    /// Anthropic events.
    Anthropic(anthropic::StreamDecoder),
    /// Gemini chunks.
    Gemini(gemini::StreamDecoder),
    /// Mistral chunks.
    Mistral(mistral::StreamDecoder),
    /// Ollama lines.
    Ollama(ollama::StreamDecoder),
    /// Responses events.
    Responses(responses::StreamDecoder),
}

impl StreamDecoder {
    /// A decoder for a provider speaking `format`.
    pub fn new(format: WireFormat) -> Self {
        match format {
            WireFormat::OpenAiChat => StreamDecoder::OpenAi(openai::StreamDecoder::new()),
            WireFormat::AnthropicMessages => {
                StreamDecoder::Anthropic(anthropic::StreamDecoder::new())
            }
            WireFormat::GeminiGenerateContent => {
                StreamDecoder::Gemini(gemini::StreamDecoder::new())
            }
            WireFormat::MistralChat => StreamDecoder::Mistral(mistral::StreamDecoder::new()),
            WireFormat::OllamaChat => StreamDecoder::Ollama(ollama::StreamDecoder::new()),
            WireFormat::OpenAiResponses => {
                StreamDecoder::Responses(responses::StreamDecoder::new())
            }
        }
    }

    /// The canonical events of one upstream event (`event` is the SSE event name, if any).
    pub fn decode(
        &mut self,
        event: Option<&str>,
        data: &str,
    ) -> Result<Vec<StreamEvent>, DecodeError> {
        match self {
            StreamDecoder::OpenAi(decoder) => decoder.decode(data),
            StreamDecoder::Anthropic(decoder) => decoder.decode(event, data),
            StreamDecoder::Gemini(decoder) => decoder.decode(data),
            StreamDecoder::Mistral(decoder) => decoder.decode(data),
            StreamDecoder::Ollama(decoder) => decoder.decode(data),
            StreamDecoder::Responses(decoder) => decoder.decode(event, data),
        }
    }
}

/// Encodes canonical stream events for a client, whatever its format.
pub enum StreamEncoder {
    /// OpenAI chunks.
    OpenAi(openai::StreamEncoder),
    /// Anthropic events.
    Anthropic(anthropic::StreamEncoder),
    /// Gemini chunks.
    Gemini(gemini::StreamEncoder),
    /// Mistral chunks.
    Mistral(mistral::StreamEncoder),
    /// Ollama lines.
    Ollama(ollama::StreamEncoder),
    /// Responses events.
    Responses(responses::StreamEncoder),
}

impl StreamEncoder {
    /// An encoder for a client speaking `format`; `include_usage` is OpenAI's
    /// `stream_options.include_usage` (other formats always carry usage).
    pub fn new(format: WireFormat, include_usage: bool) -> Self {
        match format {
            WireFormat::OpenAiChat => {
                StreamEncoder::OpenAi(openai::StreamEncoder::new(include_usage))
            }
            WireFormat::AnthropicMessages => {
                StreamEncoder::Anthropic(anthropic::StreamEncoder::new())
            }
            WireFormat::GeminiGenerateContent => {
                StreamEncoder::Gemini(gemini::StreamEncoder::new())
            }
            WireFormat::MistralChat => StreamEncoder::Mistral(mistral::StreamEncoder::new()),
            WireFormat::OllamaChat => StreamEncoder::Ollama(ollama::StreamEncoder::new()),
            WireFormat::OpenAiResponses => {
                StreamEncoder::Responses(responses::StreamEncoder::new())
            }
        }
    }

    /// Makes a Responses stream repeat its request as `echo` describes (see
    /// [`responses::Echo`]); other formats repeat nothing.
    pub fn set_echo(&mut self, echo: responses::Echo) {
        if let StreamEncoder::Responses(encoder) = self {
            encoder.set_echo(echo);
        }
    }

    /// The frames to send for `event`.
    pub fn encode(&mut self, event: &StreamEvent) -> Vec<SseFrame> {
        match self {
            StreamEncoder::OpenAi(encoder) => encoder.encode(event),
            StreamEncoder::Anthropic(encoder) => encoder.encode(event),
            StreamEncoder::Gemini(encoder) => encoder.encode(event),
            StreamEncoder::Mistral(encoder) => encoder.encode(event),
            StreamEncoder::Ollama(encoder) => encoder.encode(event),
            StreamEncoder::Responses(encoder) => encoder.encode(event),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Documents across formats: what each target reads, and the refusal (naming the
    //! client's field) of what it cannot.

    use serde_json::{Value, json};

    use super::*;

    const PDF: &str = "JVBERi0xLjQK";

    fn anthropic_with(document: Value) -> ChatRequest {
        decode_request(
            WireFormat::AnthropicMessages,
            &json!({"model": "m", "max_tokens": 10, "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Summarise"}, document]}
            ]}),
        )
        .expect("decodes")
    }

    fn encoded(format: WireFormat, request: &ChatRequest) -> Value {
        encode_request(format, request, "target").expect("encodes")
    }

    fn refusal(format: WireFormat, request: &ChatRequest) -> DecodeError {
        encode_request(format, request, "target").expect_err("refused")
    }

    #[test]
    fn an_anthropic_pdf_reaches_every_format_with_a_document_slot() {
        let request = anthropic_with(json!({"type": "document", "title": "report.pdf",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}));
        assert_eq!(
            encoded(WireFormat::OpenAiChat, &request)["messages"][0]["content"][1],
            json!({"type": "file", "file": {"filename": "report.pdf",
                "file_data": format!("data:application/pdf;base64,{PDF}")}})
        );
        assert_eq!(
            encoded(WireFormat::OpenAiResponses, &request)["input"][0]["content"][1],
            json!({"type": "input_file", "filename": "report.pdf",
                "file_data": format!("data:application/pdf;base64,{PDF}")})
        );
        assert_eq!(
            encoded(WireFormat::GeminiGenerateContent, &request)["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "application/pdf", "data": PDF}})
        );
        for format in [WireFormat::MistralChat, WireFormat::OllamaChat] {
            let error = refusal(format, &request);
            assert_eq!(error.param.as_deref(), Some("messages[0].content[1]"));
            assert!(
                error.message.contains("documents have no equivalent"),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn a_documents_title_context_and_citations_are_carried_or_named_as_dropped() {
        let request = anthropic_with(json!({"type": "document", "title": "report.pdf",
            "context": "Q3 figures, unaudited.", "citations": {"enabled": true},
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}));
        // Anthropic (reached by translation from a client of another format) keeps all three.
        let block = &encoded(WireFormat::AnthropicMessages, &request)["messages"][0]["content"][1];
        assert_eq!(block["title"], "report.pdf");
        assert_eq!(block["context"], "Q3 figures, unaudited.");
        assert_eq!(block["citations"], json!({"enabled": true}));
        assert!(dropped(WireFormat::AnthropicMessages, &request).is_empty());
        let at = "messages[0].content[1]";
        for format in [WireFormat::OpenAiChat, WireFormat::OpenAiResponses] {
            assert_eq!(
                dropped(format, &request),
                [
                    format!("{at} (document context)"),
                    format!("{at} (document citations)")
                ],
                "{format:?} carries the title as the file's name"
            );
        }
        assert_eq!(
            dropped(WireFormat::GeminiGenerateContent, &request),
            [
                format!("{at} (document title)"),
                format!("{at} (document context)"),
                format!("{at} (document citations)")
            ]
        );
        // A document that says nothing besides its content loses nothing.
        let plain = anthropic_with(json!({"type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}));
        assert!(dropped(WireFormat::GeminiGenerateContent, &plain).is_empty());
        // `citations` must be an object, as Anthropic requires.
        let error = decode_request(
            WireFormat::AnthropicMessages,
            &json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
                {"type": "document", "citations": true,
                 "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]}),
        )
        .expect_err("citations: true is refused");
        assert_eq!(
            error.param.as_deref(),
            Some("messages[0].content[0].citations")
        );
    }

    #[test]
    fn a_text_document_is_text_where_there_is_no_document_slot() {
        let request = anthropic_with(json!({"type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Routerly routes."}}));
        assert_eq!(
            encoded(WireFormat::OpenAiChat, &request)["messages"][0]["content"][1],
            json!({"type": "text", "text": "Routerly routes."})
        );
        assert_eq!(
            encoded(WireFormat::GeminiGenerateContent, &request)["contents"][0]["parts"][1],
            json!({"text": "Routerly routes."})
        );
        assert_eq!(
            encoded(WireFormat::OllamaChat, &request)["messages"][0]["content"],
            json!("Summarise\nRouterly routes.")
        );
    }

    #[test]
    fn a_document_by_url_goes_only_where_the_provider_fetches_it() {
        let url = "https://example.com/report.pdf";
        let request =
            anthropic_with(json!({"type": "document", "source": {"type": "url", "url": url}}));
        assert_eq!(
            encoded(WireFormat::OpenAiResponses, &request)["input"][0]["content"][1],
            json!({"type": "input_file", "file_url": url})
        );
        for format in [WireFormat::OpenAiChat, WireFormat::GeminiGenerateContent] {
            let error = refusal(format, &request);
            assert_eq!(error.param.as_deref(), Some("messages[0].content[1]"));
            assert!(error.message.contains("by URL"), "{}", error.message);
        }
    }

    #[test]
    fn an_openai_file_part_becomes_an_anthropic_document() {
        let request = decode_request(
            WireFormat::OpenAiChat,
            &json!({"model": "m", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "file", "file": {"filename": "a.pdf",
                    "file_data": format!("data:application/pdf;base64,{PDF}")}}]}
            ]}),
        )
        .expect("decodes");
        assert_eq!(
            encoded(WireFormat::AnthropicMessages, &request)["messages"][0]["content"][0],
            json!({"type": "document", "title": "a.pdf",
                "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}})
        );
        // A Files API id only OpenAI can read; a file part with nothing is malformed.
        let by_id = decode_request(
            WireFormat::OpenAiChat,
            &json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-1"}}]}]}),
        )
        .expect("decodes");
        let error = refusal(WireFormat::AnthropicMessages, &by_id);
        assert_eq!(error.param.as_deref(), Some("messages[0].content[0]"));
        assert!(error.message.contains("`file`"), "{}", error.message);
        for (file, param) in [
            (json!({}), "messages[0].content[0].file.file_data"),
            (
                json!({"file_data": "JVBERi0="}),
                "messages[0].content[0].file.file_data",
            ),
            (
                json!({"file_data": "data:application/pdf,;base64,x"}),
                "messages[0].content[0].file.file_data",
            ),
        ] {
            let error = decode_request(
                WireFormat::OpenAiChat,
                &json!({"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "file", "file": file}]}]}),
            )
            .expect_err("malformed file part");
            assert_eq!(error.param.as_deref(), Some(param), "{}", error.message);
        }
    }

    #[test]
    fn only_gemini_reads_inline_documents_other_than_pdf() {
        let request = decode_request(
            WireFormat::OpenAiChat,
            &json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxiCg=="}}]}]}),
        )
        .expect("decodes");
        let error = refusal(WireFormat::AnthropicMessages, &request);
        assert!(error.message.contains("`text/csv`"), "{}", error.message);
        assert_eq!(
            encoded(WireFormat::GeminiGenerateContent, &request)["contents"][0]["parts"][0],
            json!({"inlineData": {"mimeType": "text/csv", "data": "YSxiCg=="}})
        );
    }

    #[test]
    fn responses_input_files_by_data_and_url() {
        let request = decode_request(
            WireFormat::OpenAiResponses,
            &json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_file", "filename": "a.pdf",
                 "file_data": format!("data:application/pdf;base64,{PDF}")},
                {"type": "input_file", "file_url": "https://example.com/b.pdf"}
            ]}]}),
        )
        .expect("decodes");
        let anthropic = encoded(WireFormat::AnthropicMessages, &request);
        assert_eq!(
            anthropic["messages"][0]["content"],
            json!([
                {"type": "document", "title": "a.pdf",
                 "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
                {"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}}
            ])
        );
        let error = refusal(WireFormat::GeminiGenerateContent, &request);
        assert_eq!(error.param.as_deref(), Some("input[0].content[1]"));
        let error = decode_request(
            WireFormat::OpenAiResponses,
            &json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_file", "filename": "a.pdf"}]}]}),
        )
        .expect_err("an input_file needs data, a URL or an id");
        assert_eq!(
            error.param.as_deref(),
            Some("input[0].content[0].file_data")
        );
    }

    #[test]
    fn gemini_inline_data_is_an_image_a_document_or_opaque_by_type() {
        let request = decode_request(
            WireFormat::GeminiGenerateContent,
            &json!({"contents": [{"role": "user", "parts": [
                {"inlineData": {"mimeType": "application/pdf", "data": PDF}},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}}
            ]}]}),
        )
        .expect("decodes");
        let parts = &request.messages[0].content;
        assert!(
            matches!(parts[0], ContentPart::Document { .. }),
            "{parts:?}"
        );
        assert!(matches!(parts[1], ContentPart::Image { .. }), "{parts:?}");
        assert!(matches!(parts[2], ContentPart::Opaque { .. }), "{parts:?}");
        let mut without_audio = request.clone();
        without_audio.messages[0].content.truncate(2);
        assert_eq!(
            encoded(WireFormat::AnthropicMessages, &without_audio)["messages"][0]["content"][0],
            json!({"type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}})
        );
        let error = refusal(WireFormat::AnthropicMessages, &request);
        assert_eq!(error.param.as_deref(), Some("contents[0].parts[2]"));
    }

    #[test]
    fn a_tool_results_pdf_and_image_reach_every_document_reading_format() {
        let request = decode_request(
            WireFormat::AnthropicMessages,
            &json!({"model": "m", "max_tokens": 10, "messages": [
                {"role": "user", "content": "read them"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "read", "input": {}},
                    {"type": "tool_use", "id": "t2", "name": "read", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [
                        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}
                    ]},
                    {"type": "tool_result", "tool_use_id": "t2", "content": [
                        {"type": "text", "text": "a picture"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
                    ]},
                    {"type": "text", "text": "and?"}
                ]}
            ]}),
        )
        .expect("decodes");
        assert_eq!(
            encoded(WireFormat::AnthropicMessages, &request)["messages"][2]["content"][0]["content"]
                [0]["type"],
            "document"
        );
        assert_eq!(
            encoded(WireFormat::GeminiGenerateContent, &request)["contents"][2]["parts"]
                .as_array()
                .expect("parts")[0..2],
            [
                json!({"functionResponse": {"name": "read", "response": {"result": ""}}}),
                json!({"inlineData": {"mimeType": "application/pdf", "data": PDF}})
            ]
        );
        // Chat Completions: both tool messages first (their text only), then one user
        // message with the results' file and image, then the user's own text.
        let messages = encoded(WireFormat::OpenAiChat, &request)["messages"].clone();
        assert_eq!(
            messages.as_array().expect("messages")[2..],
            [
                json!({"role": "tool", "tool_call_id": "t1", "content": ""}),
                json!({"role": "tool", "tool_call_id": "t2", "content": "a picture"}),
                json!({"role": "user", "content": [
                    {"type": "file", "file": {"filename": "document.pdf",
                        "file_data": format!("data:application/pdf;base64,{PDF}")}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    {"type": "text", "text": "and?"}
                ]})
            ]
        );
        // Responses: a function call's output takes files and images itself.
        let input = &encoded(WireFormat::OpenAiResponses, &request)["input"];
        assert_eq!(
            input[3],
            json!({"type": "function_call_output", "call_id": "t1", "output": [
                {"type": "input_file", "filename": "document.pdf",
                    "file_data": format!("data:application/pdf;base64,{PDF}")}
            ]})
        );
        assert_eq!(
            input[4]["output"],
            json!([
                {"type": "input_text", "text": "a picture"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "auto"}
            ])
        );
        // Ollama's tool messages carry text only, and it reads no documents.
        let error = refusal(WireFormat::OllamaChat, &request);
        assert_eq!(
            error.param.as_deref(),
            Some("messages[2].content[0].content[0]")
        );
    }

    #[test]
    fn a_past_web_search_is_left_out_of_a_translation_and_named() {
        // Codex's next request after a search: the search item stands between its question
        // and the answer that used what it found.
        let request = decode_request(
            WireFormat::OpenAiResponses,
            &json!({"model": "m", "tools": [{"type": "web_search"}], "input": [
                {"role": "user", "content": "news?"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed",
                 "action": {"type": "search", "query": "news"}},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Rust shipped.", "annotations": []}]},
                {"role": "user", "content": "more?"}
            ]}),
        )
        .expect("decodes");
        let body = encoded(WireFormat::AnthropicMessages, &request);
        assert_eq!(body["messages"][1]["content"][0]["text"], "Rust shipped.");
        assert_eq!(body["tools"][0]["type"], "web_search_20250305");
        assert_eq!(
            dropped(WireFormat::AnthropicMessages, &request),
            ["input[1] (web_search_call)"]
        );
        assert_eq!(
            dropped(WireFormat::OpenAiChat, &request),
            ["tools[0] (web_search)", "input[1] (web_search_call)"]
        );
    }

    fn responses_with(tools: Value) -> ChatRequest {
        decode_request(
            WireFormat::OpenAiResponses,
            &json!({"model": "m", "input": "news?", "tools": tools}),
        )
        .expect("decodes")
    }

    #[test]
    fn hosted_web_search_becomes_anthropics_server_tool() {
        let request = responses_with(json!([
            {"type": "function", "name": "f", "parameters": {"type": "object"}},
            {"type": "web_search", "filters": {"allowed_domains": ["example.com"]},
             "user_location": {"type": "approximate", "city": "Turin", "country": "IT"}}
        ]));
        let body = encoded(WireFormat::AnthropicMessages, &request);
        assert_eq!(
            body["tools"][1],
            json!({"type": "web_search_20250305", "name": "web_search",
                "allowed_domains": ["example.com"],
                "user_location": {"type": "approximate", "city": "Turin", "country": "IT"}})
        );
        assert!(dropped(WireFormat::AnthropicMessages, &request).is_empty());
        // Elsewhere it is left out, and said so.
        assert_eq!(
            dropped(WireFormat::OpenAiChat, &request),
            ["tools[1] (web_search)"]
        );
        assert!(encoded(WireFormat::OpenAiChat, &request)["tools"][1].is_null());
        // Gemini does not combine grounding with function calling, nor filter domains.
        assert_eq!(
            dropped(WireFormat::GeminiGenerateContent, &request),
            ["tools[1] (web_search)"]
        );
        let body = encoded(WireFormat::GeminiGenerateContent, &request);
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [
            {"name": "f", "parametersJsonSchema": {"type": "object"}}]}])
        );
        let filtered = responses_with(json!([
            {"type": "web_search", "filters": {"allowed_domains": ["example.com"]}}
        ]));
        assert_eq!(
            dropped(WireFormat::GeminiGenerateContent, &filtered),
            ["tools[0] (web_search)"]
        );
    }

    #[test]
    fn hosted_web_search_alone_becomes_gemini_grounding() {
        let request = responses_with(json!([{"type": "web_search_preview"}]));
        assert!(dropped(WireFormat::GeminiGenerateContent, &request).is_empty());
        assert_eq!(
            encoded(WireFormat::GeminiGenerateContent, &request)["tools"],
            json!([{"googleSearch": {}}])
        );
    }

    #[test]
    fn chat_web_search_options_reach_anthropic_with_the_location() {
        let request = decode_request(
            WireFormat::OpenAiChat,
            &json!({"model": "m", "messages": [{"role": "user", "content": "news?"}],
                "web_search_options": {"search_context_size": "low", "user_location":
                    {"type": "approximate", "approximate": {"city": "Turin", "timezone": "Europe/Rome"}}}}),
        )
        .expect("decodes");
        assert_eq!(
            encoded(WireFormat::AnthropicMessages, &request)["tools"],
            json!([{"type": "web_search_20250305", "name": "web_search",
                "user_location": {"type": "approximate", "city": "Turin", "timezone": "Europe/Rome"}}])
        );
        assert!(dropped(WireFormat::AnthropicMessages, &request).is_empty());
        // A function tool already named `web_search` keeps the name: the search is dropped.
        let taken = responses_with(json!([
            {"type": "function", "name": "web_search", "parameters": {"type": "object"}},
            {"type": "web_search"}
        ]));
        assert_eq!(
            dropped(WireFormat::AnthropicMessages, &taken),
            ["tools[1] (web_search)"]
        );
        assert_eq!(
            encoded(WireFormat::AnthropicMessages, &taken)["tools"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        // Malformed filters name the field.
        let error = decode_request(
            WireFormat::OpenAiResponses,
            &json!({"model": "m", "input": "x", "tools": [
                {"type": "web_search", "filters": {"allowed_domains": "example.com"}}]}),
        )
        .expect_err("refused");
        assert_eq!(
            error.param.as_deref(),
            Some("tools[0].filters.allowed_domains")
        );
    }
}

#[cfg(test)]
mod rewrite_tests {
    //! [`TextPlaces::rewrite`] against the member splice it stands in for.

    use proptest::prelude::*;

    use super::*;
    use crate::members;

    const MODEL: &str = r#""up/model-1""#;

    /// The rewrite of `text` in `format`: byte for byte the member splice's, wherever the
    /// reader found the model's place.
    fn check(format: WireFormat, text: &str) -> Result<(), TestCaseError> {
        let simple = decode_simple_request(format, text.as_bytes())
            .ok_or_else(|| TestCaseError::fail(format!("a simple body: {text}")))?
            .places;
        for stream_usage in [false, true] {
            let mut replacements = vec![("model", MODEL)];
            if stream_usage {
                replacements.push(("stream_options", r#"{"include_usage":true}"#));
            }
            let spliced = members::with_members(text.as_bytes(), &replacements);
            match simple.rewrite(text.as_bytes(), MODEL, stream_usage) {
                Some(rewritten) => prop_assert_eq!(
                    String::from_utf8(rewritten).ok(),
                    spliced.map(|bytes| String::from_utf8(bytes).expect("UTF-8")),
                    "{}",
                    text
                ),
                // Only an escaped model, or a `stream_options` to replace, is left to the
                // splice.
                None => prop_assert!(
                    simple.model.is_none() || (stream_usage && simple.stream_options),
                    "{}",
                    text
                ),
            }
        }
        Ok(())
    }

    #[test]
    fn the_rewrite_is_what_the_member_splice_writes() {
        let openai = [
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o"}"#,
            " {\n \"model\" : \"m\" ,\t\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"}\"}] \r\n} \n",
            r#"{"model":"","stream_options":null,"messages":[{"role":"user","content":"q"}]}"#,
            r#"{"model":"m","stream_options":{"include_usage":false},"messages":[{"role":"user","content":"q"}]}"#,
            r#"{"model":"a\"b","messages":[{"role":"user","content":"q"}]}"#,
            r#"{"model":"naïve 💡","messages":[{"role":"user","content":"\"model\":\"x\""}]}"#,
        ];
        for text in openai {
            check(WireFormat::OpenAiChat, text).expect("the rewrite agrees");
        }
        let anthropic = [
            r#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"max_tokens":5,"system":"s","messages":[{"role":"user","content":"hi"}],"model":"c"}"#,
        ];
        for text in anthropic {
            check(WireFormat::AnthropicMessages, text).expect("the rewrite agrees");
        }
        // The escaped model is not in the text: the splice rewrites it.
        let escaped = decode_simple_request(
            WireFormat::OpenAiChat,
            br#"{"model":"gpt\u002d4o","messages":[{"role":"user","content":"q"}]}"#,
        )
        .expect("a simple body");
        assert_eq!(escaped.places.model, None);
    }

    proptest! {
        #[test]
        fn the_rewrite_agrees_whatever_the_spacing_and_order(
            model in "[a-z0-9 ./é\"-]{0,12}",
            content in "[a-z {}\\[\\]\":,\\\\]{0,12}",
            spaces in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("\n\t ")], 8),
            model_last in any::<bool>(),
            stream_options in prop_oneof![Just(None), Just(Some("null")), Just(Some(r#"{"include_usage":true}"#))],
        ) {
            let s = |index: usize| spaces[index];
            let model = serde_json::to_string(&model).expect("a string");
            let content = serde_json::to_string(&content).expect("a string");
            let messages = format!(r#"[{{"role":"user","content":{content}}}]"#);
            let mut members = vec![
                format!(r#""messages"{}:{}{messages}"#, s(0), s(1)),
                format!(r#""stream"{}:{}true"#, s(2), s(3)),
            ];
            if let Some(options) = stream_options {
                members.push(format!(r#""stream_options":{options}"#));
            }
            let model = format!(r#""model"{}:{}{model}"#, s(4), s(5));
            if model_last { members.push(model) } else { members.insert(0, model) }
            let text = format!("{}{{{}{}}}{}", s(6), members.join(","), s(7), s(6));
            check(WireFormat::OpenAiChat, &text)?;
        }
    }
}
