//! The one internal chat model that every wire format converts to and from.
//!
//! N providers need N adapters, not N² translators: a client's request is decoded into
//! [`ChatRequest`], a provider's answer into [`ChatResponse`] or a sequence of
//! [`StreamEvent`]s, and each wire module encodes them back into its own shape.
//!
//! Conventions that every adapter relies on:
//! - The system prompt before the conversation lives in [`ChatRequest::system`]; an
//!   instruction inside the conversation is a [`Role::System`] message in its place.
//! - What the model does not represent is carried by kind and place, never refused on
//!   decoding ([`ContentPart::Opaque`], [`HostedTool`]); same-format calls forward the
//!   client's own body, and translation refuses or names it (see `wire::dropped`).
//! - Tool results are [`ContentPart::ToolResult`] parts of a [`Role::User`] message
//!   (Anthropic's shape); OpenAI's `tool` messages are merged into such a message.
//! - Tool calls are [`ContentPart::ToolCall`] parts of an assistant message; their
//!   `arguments` are the JSON text of the arguments object, exactly as received.
//! - [`Usage::input_tokens`] counts every prompt token, cached and cache-write ones
//!   included (OpenAI's convention); Anthropic's adapter adds and subtracts its
//!   `cache_read_input_tokens` and `cache_creation_input_tokens` at the boundary.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A chat request in Routerly's canonical form.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model name the client asked for (`auto`, a model id or an alias).
    pub model: String,
    /// System prompt blocks, in order; empty when there is none.
    pub system: Vec<ContentPart>,
    /// The conversation, oldest first (the leading system prompt is in `system`).
    pub messages: Vec<Message>,
    /// Maximum number of tokens to generate.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic, Gemini); dropped by providers without it.
    pub top_k: Option<u32>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Whether the client wants a stream of events.
    pub stream: bool,
    /// Whether the client asked for usage in the stream (OpenAI `stream_options.include_usage`).
    pub stream_include_usage: bool,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// How the model must use the tools.
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come in one turn; `None` leaves the provider's default.
    pub parallel_tool_calls: Option<bool>,
    /// Requested output format.
    pub response_format: Option<ResponseFormat>,
    /// Extended thinking / reasoning request.
    pub reasoning: Option<Reasoning>,
    /// Presence penalty (OpenAI only).
    pub presence_penalty: Option<f64>,
    /// Frequency penalty (OpenAI only).
    pub frequency_penalty: Option<f64>,
    /// Seed (OpenAI only).
    pub seed: Option<i64>,
    /// The end user, for attribution (`user` on OpenAI, `metadata.user_id` on Anthropic).
    pub user: Option<String>,
    /// Tools the provider itself runs (web search, code execution, MCP, …), tool kinds
    /// the canonical model does not represent, and past calls of a hosted web search in
    /// the conversation (a Responses `web_search_call` item), as the client sent them:
    /// forwarded untouched to a provider of the client's format, left out of a translation
    /// (and said so).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosted_tools: Vec<HostedTool>,
}

/// A tool the canonical model carries only by name (see [`ChatRequest::hosted_tools`]),
/// or, for hosted web search, with what a provider's own search tool needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostedTool {
    /// The tool's type as the client wrote it, such as `web_search_20250305`.
    pub kind: String,
    /// Where it stands in the client's body, such as `tools[2]`.
    pub path: String,
    /// Set when the tool is a hosted web search (OpenAI's `web_search` tool or
    /// `web_search_options`), which targets with a search tool of their own run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search: Option<WebSearch>,
}

impl HostedTool {
    /// A tool carried by name only.
    pub fn named(kind: impl Into<String>, path: impl Into<String>) -> Self {
        HostedTool {
            kind: kind.into(),
            path: path.into(),
            web_search: None,
        }
    }
}

/// A hosted web search: the provider searches the web and answers from what it found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WebSearch {
    /// Only these domains may be searched; empty for any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
    /// The user's approximate location, to localise results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_location: Option<UserLocation>,
}

/// An approximate location (every field optional, as OpenAI and Anthropic take it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserLocation {
    /// City.
    pub city: Option<String>,
    /// Region or state.
    pub region: Option<String>,
    /// Two-letter ISO country code.
    pub country: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The human or application; also carries tool results.
    User,
    /// The model; also carries tool calls and thinking.
    Assistant,
    /// An instruction inside the conversation (Anthropic's mid-conversation system
    /// messages, an OpenAI `system` message after the first turn), kept in its place; the
    /// system prompt before the conversation is [`ChatRequest::system`].
    System,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its parts, in order.
    pub content: Vec<ContentPart>,
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image given by URL or inline data.
    Image {
        /// Where the image comes from.
        source: ImageSource,
        /// OpenAI's `detail` hint, kept for same-format round trips.
        detail: Option<String>,
    },
    /// A document (a PDF, a plain-text file) given inline or by URL: Anthropic's
    /// `document` block, OpenAI's `file` part, Responses' `input_file`, Gemini's
    /// `inlineData` of a document type. A target that cannot read it refuses the request
    /// naming `path` (see `wire::encode_request`).
    Document {
        /// Where it comes from.
        source: DocumentSource,
        /// Its name: Anthropic's `title`, OpenAI's `filename`.
        name: Option<String>,
        /// What the model is told about it without citing it (Anthropic's `context`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
        /// Whether answers cite it (Anthropic's `citations: {"enabled": true}`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        citations: bool,
        /// Where it stands in the client's body, such as `messages[0].content[1]`.
        path: String,
    },
    /// A call of a tool by the assistant.
    ToolCall {
        /// Provider-side call id, echoed by the matching result.
        id: String,
        /// Tool name.
        name: String,
        /// JSON text of the arguments object.
        arguments: String,
    },
    /// The result of a tool call, sent back by the user side.
    ToolResult {
        /// The id of the call this answers.
        tool_call_id: String,
        /// The result, as text and image parts.
        content: Vec<ContentPart>,
        /// Whether the tool failed.
        is_error: bool,
    },
    /// Reasoning the model showed (Anthropic thinking, OpenAI-compatible `reasoning_content`).
    Thinking {
        /// The reasoning text.
        text: String,
        /// Anthropic's signature, needed to send the block back.
        signature: Option<String>,
    },
    /// Content the canonical model does not represent (a block, part or item type it does
    /// not know, or one with no equivalent elsewhere), noted by kind and place: a provider
    /// of the client's format gets the client's own body with it untouched, and a
    /// translation refuses the request naming the field, since leaving it out would change
    /// what the model is asked.
    Opaque {
        /// The type as the client wrote it, such as `document` or `input_file`.
        kind: String,
        /// Where it stands in the client's body, such as `messages[1].content[0]`.
        path: String,
        /// Characters of text it carries, for the token estimate.
        chars: usize,
    },
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    /// An opaque part for the client's JSON `value` of type `kind` at `path`.
    pub fn opaque(kind: &str, path: &str, value: &Value) -> Self {
        ContentPart::Opaque {
            kind: kind.to_owned(),
            path: path.to_owned(),
            chars: text_chars(value),
        }
    }
}

/// Characters of every string in `value` (its keys excluded).
fn text_chars(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len(),
        Value::Array(values) => values.iter().map(text_chars).sum(),
        Value::Object(members) => members.values().map(text_chars).sum(),
        _ => 0,
    }
}

impl Message {
    /// The message's text parts, joined by blank lines.
    pub fn joined_text(&self) -> String {
        joined_text(&self.content)
    }
}

/// The text parts among `parts`, joined by blank lines.
pub fn joined_text(parts: &[ContentPart]) -> String {
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    texts.join("\n\n")
}

impl ChatRequest {
    /// Whether the optional parameter `name` (its OpenAI name) is set.
    pub fn has_param(&self, name: &str) -> bool {
        match name {
            "seed" => self.seed.is_some(),
            "frequency_penalty" => self.frequency_penalty.is_some(),
            "presence_penalty" => self.presence_penalty.is_some(),
            "top_k" => self.top_k.is_some(),
            "stop" => !self.stop.is_empty(),
            _ => false,
        }
    }

    /// The first document (by place in the client's body, its source, and whether it
    /// stands inside a tool result) that `refuses` names a reason for.
    pub fn first_unreadable_document(
        &self,
        refuses: impl Fn(&DocumentSource, bool) -> Option<String>,
    ) -> Option<(String, String)> {
        fn in_parts(
            parts: &[ContentPart],
            in_tool_result: bool,
            refuses: &dyn Fn(&DocumentSource, bool) -> Option<String>,
        ) -> Option<(String, String)> {
            parts.iter().find_map(|part| match part {
                ContentPart::Document { source, path, .. } => {
                    refuses(source, in_tool_result).map(|reason| (path.clone(), reason))
                }
                ContentPart::ToolResult { content, .. } => in_parts(content, true, refuses),
                _ => None,
            })
        }
        in_parts(&self.system, false, &refuses).or_else(|| {
            self.messages
                .iter()
                .find_map(|message| in_parts(&message.content, false, &refuses))
        })
    }

    /// Every document of the request (in the system prompt, messages and tool results), in
    /// order.
    pub fn documents(&self) -> Vec<&ContentPart> {
        fn in_parts<'r>(parts: &'r [ContentPart], found: &mut Vec<&'r ContentPart>) {
            for part in parts {
                match part {
                    ContentPart::Document { .. } => found.push(part),
                    ContentPart::ToolResult { content, .. } => in_parts(content, found),
                    _ => {}
                }
            }
        }
        let mut found = Vec::new();
        in_parts(&self.system, &mut found);
        for message in &self.messages {
            in_parts(&message.content, &mut found);
        }
        found
    }

    /// The first hosted web search of the request, if any.
    pub fn web_search(&self) -> Option<(&HostedTool, &WebSearch)> {
        self.hosted_tools
            .iter()
            .find_map(|tool| Some((tool, tool.web_search.as_ref()?)))
    }

    /// The first content the canonical model carries only as [`ContentPart::Opaque`]:
    /// what a translation cannot send without changing the request's meaning.
    pub fn first_opaque(&self) -> Option<(&str, &str)> {
        fn in_parts(parts: &[ContentPart]) -> Option<(&str, &str)> {
            parts.iter().find_map(|part| match part {
                ContentPart::Opaque { kind, path, .. } => Some((kind.as_str(), path.as_str())),
                ContentPart::ToolResult { content, .. } => in_parts(content),
                _ => None,
            })
        }
        in_parts(&self.system).or_else(|| {
            self.messages
                .iter()
                .find_map(|message| in_parts(&message.content))
        })
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    /// A URL the provider fetches.
    Url {
        /// The URL (not a `data:` URL; those become [`ImageSource::Base64`]).
        url: String,
    },
    /// Inline bytes, base64-encoded.
    Base64 {
        /// MIME type, such as `image/png`.
        media_type: String,
        /// Base64 data without a `data:` prefix.
        data: String,
    },
}

/// Where a document comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DocumentSource {
    /// Inline bytes, base64-encoded.
    Base64 {
        /// MIME type, such as `application/pdf`.
        media_type: String,
        /// Base64 data without a `data:` prefix.
        data: String,
    },
    /// Plain text (Anthropic's `text` source).
    Text {
        /// The document's text.
        text: String,
    },
    /// A URL the provider fetches.
    Url {
        /// The URL.
        url: String,
    },
}

/// The media type of PDF documents, the one inline type every document-reading format takes.
pub const PDF_MEDIA_TYPE: &str = "application/pdf";

/// A function tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Function name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// JSON Schema of its arguments object.
    pub parameters: Value,
    /// OpenAI's `strict` flag.
    pub strict: Option<bool>,
}

/// How the model must use tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (`auto`).
    Auto,
    /// No tool may be called (`none`).
    None,
    /// Some tool must be called (`required` / Anthropic `any`).
    Required,
    /// This tool must be called.
    Tool {
        /// Its name.
        name: String,
    },
}

/// Requested output format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object (OpenAI JSON mode).
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name.
        name: String,
        /// The schema.
        schema: Value,
        /// Whether the provider must follow it strictly.
        strict: Option<bool>,
    },
}

/// A request for extended thinking / reasoning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    /// Token budget for thinking (Anthropic `budget_tokens`).
    pub budget_tokens: Option<u32>,
    /// Effort level (OpenAI `reasoning_effort`: `minimal`, `low`, `medium`, `high`).
    pub effort: Option<String>,
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its turn (`stop` / `end_turn`).
    EndTurn,
    /// The token limit was reached (`length` / `max_tokens`).
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// The model called tools (`tool_calls` / `tool_use`).
    ToolUse,
    /// Content was filtered or refused (`content_filter` / `refusal`).
    ContentFilter,
    /// The turn was paused (Anthropic `pause_turn`); mapped to end of turn elsewhere.
    PauseTurn,
}

/// Token usage of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Every prompt token, cached and cache-write tokens included.
    pub input_tokens: u64,
    /// Generated tokens, reasoning included.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write_tokens: u64,
    /// Reasoning tokens inside `output_tokens`, when the provider reports them.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Input tokens billed at the plain input price.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cached_input_tokens)
            .saturating_sub(self.cache_write_tokens)
    }

    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Takes every field that `other` reports (non-zero), keeping the rest; streams
    /// report usage in pieces (Anthropic: input at the start, output at the end).
    pub fn merge(&mut self, other: &Usage) {
        let fields = [
            (&mut self.input_tokens, other.input_tokens),
            (&mut self.output_tokens, other.output_tokens),
            (&mut self.cached_input_tokens, other.cached_input_tokens),
            (&mut self.cache_write_tokens, other.cache_write_tokens),
            (&mut self.reasoning_tokens, other.reasoning_tokens),
        ];
        for (mine, theirs) in fields {
            if theirs != 0 {
                *mine = theirs;
            }
        }
    }
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Provider-side id of the answer.
    pub id: String,
    /// The model that answered (Routerly sets its own model id here before encoding).
    pub model: String,
    /// Text, thinking and tool-call parts, in order.
    pub content: Vec<ContentPart>,
    /// Why generation stopped.
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that matched, when the provider says.
    pub stop_sequence: Option<String>,
    /// Token usage.
    pub usage: Usage,
    /// Unix seconds of creation.
    pub created: i64,
    /// What the provider's own web search found, and the sources the text cites.
    #[serde(default, skip_serializing_if = "WebSources::is_empty")]
    pub web_sources: WebSources,
}

/// What a provider's hosted web search found for an answer (Anthropic's
/// `web_search_tool_result` blocks and the `citations` on its text): the searches, in
/// order, and the sources the answer's text cites.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WebSources {
    /// The searches the provider ran.
    pub searches: Vec<WebSearchCall>,
    /// The citations of the answer's text.
    pub citations: Vec<Citation>,
}

impl WebSources {
    /// Whether there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.searches.is_empty() && self.citations.is_empty()
    }
}

/// One search the provider ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSearchCall {
    /// The provider's id of the search.
    pub id: String,
    /// What it searched for.
    pub query: String,
    /// The pages it found, in order.
    pub results: Vec<WebPage>,
}

/// A web page: a search result or a cited source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebPage {
    /// Its URL.
    pub url: String,
    /// Its title, when the provider gives one.
    pub title: Option<String>,
}

/// A source the answer's text cites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The page cited.
    pub page: WebPage,
    /// Where the citing text starts, in characters of the answer's text parts joined.
    pub start: usize,
    /// Where it ends (exclusive), in the same characters.
    pub end: usize,
}

/// One event of a streamed answer, in the order providers produce them.
///
/// Content blocks are numbered by `index` in order of appearance, the same numbering
/// for text, thinking and tool-call blocks (Anthropic's). A decoder from OpenAI chunks
/// assigns indexes as blocks appear; an encoder to OpenAI maps tool-call blocks to
/// OpenAI's own tool-call indexes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The answer begins; always first.
    Start {
        /// Provider-side id.
        id: String,
        /// The model that answers.
        model: String,
        /// Usage known at the start (Anthropic reports input tokens here).
        usage: Usage,
    },
    /// A text block begins.
    TextStart {
        /// Block index.
        index: usize,
    },
    /// More text.
    TextDelta {
        /// Block index.
        index: usize,
        /// The new text.
        text: String,
    },
    /// A thinking block begins.
    ThinkingStart {
        /// Block index.
        index: usize,
    },
    /// More thinking text.
    ThinkingDelta {
        /// Block index.
        index: usize,
        /// The new text.
        text: String,
    },
    /// The signature that closes a thinking block (Anthropic).
    ThinkingSignature {
        /// Block index.
        index: usize,
        /// The signature.
        signature: String,
    },
    /// A tool-call block begins.
    ToolCallStart {
        /// Block index.
        index: usize,
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// More argument JSON text for a tool call.
    ToolCallDelta {
        /// Block index.
        index: usize,
        /// A fragment of the arguments' JSON text.
        arguments: String,
    },
    /// A block is complete.
    BlockStop {
        /// Block index.
        index: usize,
    },
    /// Usage reported mid-stream or at the end; merged with [`Usage::merge`].
    Usage {
        /// The figures.
        usage: Usage,
    },
    /// Generation stopped for this reason.
    Finish {
        /// Why.
        stop_reason: StopReason,
        /// The stop sequence that matched, when known.
        stop_sequence: Option<String>,
    },
    /// A search the provider's hosted web search ran, complete with what it found.
    WebSearch {
        /// The search.
        search: WebSearchCall,
    },
    /// A citation of text already streamed (its `end` is at most the text streamed so
    /// far), sent when the cited text is complete.
    Citation {
        /// The citation.
        citation: Citation,
    },
    /// The stream is over; always last when the provider finished cleanly.
    End,
}

/// An error in the shape a provider or client understands, independent of wire format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What kind of error, in canonical terms.
    pub kind: ErrorKind,
    /// A human-readable message.
    pub message: String,
    /// The request field at fault, when known (OpenAI `param`).
    pub param: Option<String>,
    /// A machine-readable code (OpenAI `code`), such as `model_not_found`.
    pub code: Option<String>,
}

/// Kinds of error, mapped to each format's type names and to HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 400: the request is malformed or invalid.
    InvalidRequest,
    /// 401: missing or bad credentials.
    Authentication,
    /// 403: not allowed.
    Permission,
    /// 404: unknown model or resource.
    NotFound,
    /// 413: the body is too large.
    RequestTooLarge,
    /// 429: rate limited.
    RateLimit,
    /// 500: something broke inside.
    Internal,
    /// 502: the provider answered something unusable.
    BadGateway,
    /// 503: a budget is exhausted or no provider is available.
    Unavailable,
    /// 504: the provider timed out.
    Timeout,
    /// 529: the provider is overloaded (Anthropic).
    Overloaded,
}

impl ErrorKind {
    /// The HTTP status of this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimit => 429,
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Overloaded => 529,
        }
    }

    /// The kind that an HTTP status stands for (used for provider errors).
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            502 => ErrorKind::BadGateway,
            503 => ErrorKind::Unavailable,
            504 => ErrorKind::Timeout,
            529 => ErrorKind::Overloaded,
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::Internal,
        }
    }
}

impl ErrorBody {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorBody {
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

/// Why a wire body could not be decoded; rendered as a 400 (client side) or 502
/// (provider side) naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// What is wrong, in words a client understands.
    pub message: String,
    /// The JSON path of the field at fault, such as `messages[2].content`.
    pub param: Option<String>,
}

impl DecodeError {
    /// A decode error at `param`.
    pub fn at(param: impl Into<String>, message: impl Into<String>) -> Self {
        DecodeError {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// The error for content at `path` of type `kind` that a translation cannot carry.
    pub fn untranslatable(kind: &str, path: &str) -> Self {
        DecodeError::at(
            path,
            format!("`{path}`: `{kind}` content has no equivalent in the target format"),
        )
    }

    /// A decode error not tied to one field.
    pub fn new(message: impl Into<String>) -> Self {
        DecodeError {
            message: message.into(),
            param: None,
        }
    }

    /// The error as a canonical invalid-request body.
    pub fn to_error_body(&self) -> ErrorBody {
        ErrorBody {
            kind: ErrorKind::InvalidRequest,
            message: self.message.clone(),
            param: self.param.clone(),
            code: None,
        }
    }
}
