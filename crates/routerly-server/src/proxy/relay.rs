//! Relaying a provider's event stream to the client, event by event.
//!
//! The first upstream event has already arrived when a relay is built, so the 200 is
//! only committed once the provider has proven it is answering. Each upstream event is
//! decoded (for usage and the end marker) and then either passed through with the model
//! replaced, when client and provider share a format, or re-encoded for the client. The
//! relay writes the usage record when the stream ends, fails, or the client hangs up
//! (the relay is dropped mid-stream: outcome `cancelled`, tokens seen so far).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;
use routerly_core::accumulate::Accumulator;
use routerly_core::canonical::{ChatResponse, ErrorBody, ErrorKind, StreamEvent, Usage};
use routerly_core::config::{Pricing, ProviderKind};
use routerly_core::usage::Outcome;
use routerly_core::wire::{
    self, EventRewrite, StreamDecoder, StreamEncoder, StreamPassthrough, WireFormat,
};
use routerly_providers::{EventStream, SseEvent};

use super::error::ProxyError;
use super::members;
use super::record::{CallRecord, ServedBy};
use crate::state::App;

/// Events already arrived are gathered into one write up to about this many bytes.
const MAX_WRITE: usize = 64 * 1024;

/// What a relay needs besides the call record.
pub struct RelayParts {
    /// The application, for the usage sink.
    pub app: App,
    /// The provider's stream, after its first event.
    pub events: EventStream,
    /// The first event, already read.
    pub first_event: SseEvent,
    /// The client's format.
    pub client_format: WireFormat,
    /// The provider's format.
    pub provider_format: WireFormat,
    /// Routerly's id of the serving model.
    pub model_id: String,
    /// Its prices.
    pub pricing: Pricing,
    /// Its provider.
    pub provider: ProviderKind,
    /// Whether an OpenAI client asked for usage in the stream.
    pub client_wants_usage: bool,
    /// When the attempt that produced this stream began.
    pub attempt_started: Instant,
    /// The response id the client sees when the stream is re-encoded (Responses API);
    /// `None` keeps the provider's.
    pub response_id: Option<String>,
    /// What a re-encoded Responses stream repeats of its request.
    pub echo: Option<routerly_core::wire::responses::Echo>,
    /// Called with the whole answer when the stream ends successfully (to store a
    /// Responses-API conversation); the stream closes after it returns.
    pub on_complete: Option<OnComplete>,
}

/// What a relay runs with the whole answer once the stream has ended successfully.
pub type OnComplete =
    Box<dyn FnOnce(ChatResponse) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A stream being relayed.
pub struct Relay {
    parts: RelayParts,
    /// The first event, already translated for the client.
    pending_first: Vec<u8>,
    decoder: StreamDecoder,
    encoder: Option<StreamEncoder>,
    record: CallRecord,
    usage: Usage,
    first_byte_at: Option<Instant>,
    saw_end: bool,
    finished: bool,
    /// The answer so far, kept only when someone wants it at the end.
    accumulator: Option<Accumulator>,
    /// The model id as a JSON string, as passed-through events carry it.
    model_json: String,
    /// Reads passed-through events, taking what one shares with the last from it.
    reader: members::Reader,
    /// What the last passed-through event's leading members were found to be.
    plain_lead: PlainLead,
}

/// The leading members of a passed-through event that are neither `usage`, `choices` nor
/// `error`, and which of them are named `model`: the next event's members that the reader
/// takes from this one need not be looked at again.
#[derive(Clone, Copy, Debug, Default)]
struct PlainLead {
    /// How many members lead.
    members: usize,
    /// Which of them are named `model`, by index.
    models: u64,
}

/// A mask of the `count` lowest bits (all 64 from 64 on).
fn low_bits(count: usize) -> u64 {
    u64::MAX.checked_shr(64 - count.min(64) as u32).unwrap_or(0)
}

impl Relay {
    /// A relay of `parts.events`, finishing `record` when it ends; or, when the first event
    /// cannot be read, why not, so the caller can try the next candidate (nothing has
    /// reached the client yet, and no record is written).
    pub fn start(mut parts: RelayParts, record: CallRecord) -> Result<Self, String> {
        let decoder = StreamDecoder::new(parts.provider_format);
        let mut encoder = (parts.client_format != parts.provider_format)
            .then(|| StreamEncoder::new(parts.client_format, parts.client_wants_usage));
        if let (Some(encoder), Some(echo)) = (&mut encoder, parts.echo.take()) {
            encoder.set_echo(echo);
        }
        let first_event =
            std::mem::replace(&mut parts.first_event, SseEvent::new(None, String::new()));
        let model_json = routerly_core::json_text::string_text(&parts.model_id);
        let mut relay = Relay {
            parts,
            pending_first: Vec::new(),
            decoder,
            encoder,
            record,
            usage: Usage::default(),
            first_byte_at: None,
            saw_end: false,
            finished: false,
            accumulator: None,
            model_json,
            reader: members::Reader::default(),
            plain_lead: PlainLead::default(),
        };
        if relay.parts.on_complete.is_some() {
            relay.accumulator = Some(Accumulator::new());
        }
        let mut first = Vec::new();
        let translated = relay.translate(&first_event, &mut first);
        relay.parts.events.recycle(first_event);
        match translated {
            Ok(()) => {
                relay.pending_first = first;
                Ok(relay)
            }
            Err(message) => {
                // The caller records this attempt and moves on; this relay records nothing.
                relay.finished = true;
                Err(message)
            }
        }
    }

    /// The streaming response.
    pub fn into_response(self) -> Response {
        // Boxed: the stream's state moves in and out of each step's future, and a relay is
        // large (its moves were a tenth of a stream's memory copying).
        let stream = futures_util::stream::unfold(Box::new(self), |mut relay| async move {
            let chunk = relay.next_chunk().await?;
            Some((Ok::<Bytes, Infallible>(chunk), relay))
        });
        let mut response = Response::new(Body::from_stream(stream));
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }

    /// The next bytes to send: the next upstream event and every later one that has already
    /// arrived, translated, so what the provider sent together leaves in one write (an
    /// event is never held back waiting for another); `None` when done.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let mut out = std::mem::take(&mut self.pending_first);
        loop {
            if !out.is_empty() {
                // The first bytes are on their way, even when the end arrived with them and
                // the record is written before they leave.
                self.first_byte_at.get_or_insert_with(Instant::now);
            }
            if self.finished {
                break;
            }
            if self.saw_end {
                self.parts.events.release();
                self.finish(Outcome::Success, None).await;
                break;
            }
            let next = if out.is_empty() {
                self.parts.events.next_event().await
            } else if out.len() >= MAX_WRITE {
                break;
            } else {
                match self.parts.events.ready_event() {
                    Some(next) => next,
                    None => break,
                }
            };
            let failure = match next {
                Ok(Some(event)) => {
                    let translated = self.translate(&event, &mut out);
                    self.parts.events.recycle(event);
                    match translated {
                        Ok(()) => continue,
                        Err(message) => (
                            Outcome::Error,
                            format!("the provider sent an unreadable event: {message}"),
                        ),
                    }
                }
                Ok(None) => (
                    Outcome::Error,
                    "the provider closed the stream before it finished".to_owned(),
                ),
                Err(error) => {
                    let outcome = if error.is_timeout() {
                        Outcome::Timeout
                    } else {
                        Outcome::Error
                    };
                    (outcome, error.to_string())
                }
            };
            out.extend_from_slice(&self.fail(failure.0, failure.1).await);
            break;
        }
        if out.is_empty() {
            return None;
        }
        self.first_byte_at.get_or_insert_with(Instant::now);
        Some(Bytes::from(out))
    }

    /// Decodes one upstream event and appends the bytes for the client to `out`.
    fn translate(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), String> {
        if self.encoder.is_none() && self.passthrough_plain(event, out) {
            return Ok(());
        }
        let events = self
            .decoder
            .decode(event.event.as_deref(), &event.data)
            .map_err(|error| error.message)?;
        for canonical in &events {
            if let Some(accumulator) = &mut self.accumulator {
                accumulator.push(canonical);
            }
            match canonical {
                StreamEvent::Start { usage, .. } | StreamEvent::Usage { usage } => {
                    self.usage.merge(usage)
                }
                StreamEvent::End => self.saw_end = true,
                _ => {}
            }
        }
        let Some(encoder) = &mut self.encoder else {
            self.passthrough(event, out);
            return Ok(());
        };
        for mut canonical in events {
            if let StreamEvent::Start { id, model, .. } = &mut canonical {
                model.clone_from(&self.parts.model_id);
                if let Some(response_id) = &self.parts.response_id {
                    id.clone_from(response_id);
                }
            }
            for frame in encoder.encode(&canonical) {
                out.extend_from_slice(&frame.to_bytes());
            }
        }
        Ok(())
    }

    /// When formats match, the bytes of an event that carries no end and no error, without
    /// decoding it: the model replaced and OpenAI's usage read (and kept from a client that
    /// did not ask for it), in one pass over the JSON (measured with callgrind: decoding
    /// every event and re-serializing it was two thirds of a streamed request's
    /// instructions), appended to `out`. Anthropic's events that carry usage take the
    /// decoding path. `false` (with `out` as it was) sends the event down that path.
    fn passthrough_plain(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> bool {
        let format = self.parts.provider_format;
        match wire::stream_passthrough(format, event.event.as_deref(), &event.data) {
            StreamPassthrough::Copy => {
                sse_frame(event.event.as_deref(), event.data.as_bytes(), out);
                return true;
            }
            StreamPassthrough::Decode => return false,
            StreamPassthrough::Members => {}
        }
        let text = event.data.as_str();
        // What was found of the last event's lead, known to nothing after this one unless it
        // is passed through below (every return before that leaves the default).
        let lead = std::mem::take(&mut self.plain_lead);
        if self.reader.read(text).is_none() {
            return false;
        }
        let entries = self.reader.members();
        // An event with more members than the masks below hold takes the decoding path.
        if entries.len() > 64 {
            return false;
        }
        // The leading members the reader took from the event before are the same text: where
        // they were all neither `usage`, `choices` nor `error`, what was found of them holds
        // (the members before a stream's `choices`: id, object, created, model, fingerprint).
        let reused = self.reader.reused().min(lead.members);
        // The members named `model` and `usage`, by index.
        let mut models = lead.models & low_bits(reused);
        let mut usages = 0u64;
        let mut usage = None;
        let mut no_choices = false;
        // How many leading members are neither, for the next event.
        let mut plain = reused;
        for (index, member) in entries.iter().enumerate().skip(reused) {
            let value = member.value(text);
            let ends_lead = match member.key(text) {
                "error" => return false,
                "usage" => {
                    usages |= 1 << index;
                    if value != "null" {
                        let Some(decoded) = routerly_core::wire::decode_usage(format, value) else {
                            return false;
                        };
                        usage = Some(decoded);
                    }
                    true
                }
                "choices" => {
                    no_choices = value == "[]";
                    true
                }
                "model" => {
                    models |= 1 << index;
                    false
                }
                _ => false,
            };
            if plain == index && !ends_lead {
                plain = index + 1;
            }
        }
        self.plain_lead = PlainLead {
            members: plain,
            models: models & low_bits(plain),
        };
        let start = out.len();
        // Room for this event and, when it must grow, for the others already arrived (they
        // leave in the same write).
        out.reserve(text.len() + self.model_json.len() + 16 + self.parts.events.buffered_len());
        out.extend_from_slice(b"data: ");
        // Routerly asked for usage in the stream; the client did not: the member goes.
        if self.parts.client_wants_usage {
            usages = 0;
        }
        // The text is copied between the replaced values (a model is replaced where the
        // event names one, never added), unless a line break between members would end the
        // SSE field early.
        let model = self.model_json.as_str();
        // What becomes of the member at `index`, for either way of writing the event.
        let edit = |index: usize| {
            let bit = 1 << index;
            if models & bit != 0 {
                members::Edit::Replace(model)
            } else if usages & bit != 0 {
                members::Edit::Remove
            } else {
                members::Edit::Keep
            }
        };
        let spliced = !event.has_line_break()
            && members::splice_members(out, text, entries, |index, _| Some(edit(index)))
                .map(|(tail, _)| out.extend_from_slice(&text.as_bytes()[tail..]))
                .is_some();
        if !spliced {
            let object_start = out.len();
            out.push(b'{');
            for (index, member) in entries.iter().enumerate() {
                let value = match edit(index) {
                    members::Edit::Keep => member.value(text),
                    members::Edit::Replace(value) => value,
                    members::Edit::Remove => continue,
                };
                members::write_member(out, object_start, member.key(text), value);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"\n\n");
        if let Some(usage) = usage {
            self.usage.merge(&usage);
            if no_choices && !self.parts.client_wants_usage {
                // The usage-only chunk Routerly asked for: not the client's to see.
                out.truncate(start);
            }
        }
        true
    }

    /// The upstream event as the client gets it when formats match, appended to `out`: the
    /// model replaced, and for OpenAI the usage Routerly asked for removed unless the client
    /// asked too.
    fn passthrough(&self, event: &SseEvent, out: &mut Vec<u8>) {
        let rewritten = match wire::rewrite_event(
            self.parts.provider_format,
            event.event.as_deref(),
            &event.data,
            &self.parts.model_id,
            self.parts.client_wants_usage,
        ) {
            EventRewrite::Dropped => return,
            EventRewrite::Unchanged => None,
            EventRewrite::Replaced(data) => Some(data),
        };
        let data = rewritten.as_deref().unwrap_or(&event.data);
        sse_frame(event.event.as_deref(), data.as_bytes(), out);
    }

    /// Ends the stream after a failure: an error event in the client's format, then the record.
    async fn fail(&mut self, outcome: Outcome, message: String) -> Bytes {
        tracing::warn!(
            model = %self.parts.model_id,
            trace_id = self.record.trace_id(),
            error = %message,
            "stream failed after it had started"
        );
        let kind = if outcome == Outcome::Timeout {
            ErrorKind::Timeout
        } else {
            ErrorKind::BadGateway
        };
        let mut error = ProxyError::from_body(
            self.parts.client_format,
            ErrorBody::new(
                kind,
                "The provider's stream broke off before the answer was complete.",
            ),
        );
        error.trace_id = Some(self.record.trace_id().to_owned());
        let body = error.json();
        self.finish(outcome, Some(message)).await;
        let frame = wire::stream_error_frame(self.parts.client_format, &body);
        Bytes::from(frame)
    }

    fn served_by(&self) -> ServedBy {
        ServedBy {
            model_id: self.parts.model_id.clone(),
            provider: self.parts.provider,
            pricing: self.parts.pricing,
        }
    }

    fn ttft(&self) -> Option<Duration> {
        self.first_byte_at
            .map(|at| at.duration_since(self.record.started()))
    }

    async fn finish(&mut self, outcome: Outcome, error: Option<String>) {
        self.finished = true;
        if outcome == Outcome::Success
            && let (Some(on_complete), Some(accumulator)) =
                (self.parts.on_complete.take(), self.accumulator.take())
        {
            let mut response = accumulator.response();
            if let Some(response_id) = &self.parts.response_id
                && self.encoder.is_some()
            {
                response.id.clone_from(response_id);
            }
            on_complete(response).await;
        }
        self.record
            .add_upstream_time(self.parts.attempt_started.elapsed());
        let usage_record = self.record.finish(
            outcome,
            200,
            Some(self.served_by()),
            self.usage,
            self.ttft(),
            error,
        );
        self.parts.app.usage.record(usage_record).await;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The client hung up mid-stream: record what was used so far.
        self.record
            .add_upstream_time(self.parts.attempt_started.elapsed());
        let usage_record = self.record.finish(
            Outcome::Cancelled,
            200,
            Some(self.served_by()),
            self.usage,
            self.ttft(),
            Some("the client closed the connection before the stream ended".to_owned()),
        );
        self.parts.app.usage.record_detached(usage_record);
    }
}

/// One SSE frame, appended to `out`.
fn sse_frame(event: Option<&str>, data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + 32);
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// A provider's whole answer relayed to a client of the same format, read in one pass: the
/// text with the model replaced, and its usage. `None` sends the answer down the decoding
/// path: not an object [`members::spans`] can read, an error, no `required` member
/// (`choices`, `content`) that every answer of the format has, or a format without this
/// path.
pub(super) fn passthrough_answer(
    format: WireFormat,
    json: &[u8],
    model_id: &str,
) -> Option<(Vec<u8>, Usage)> {
    let required = wire::answer_required_member(format)?;
    let text = routerly_core::json_text::utf8(json)?;
    let entries = members::spans(text)?;
    let mut usage = Usage::default();
    let mut complete = false;
    for member in &entries {
        match member.key(text) {
            "error" => return None,
            "usage" => usage = routerly_core::wire::decode_usage(format, member.value(text))?,
            key if key == required => complete = true,
            _ => {}
        }
    }
    if !complete {
        return None;
    }
    let mut out = Vec::with_capacity(json.len() + model_id.len() + 16);
    let model_json = routerly_core::json_text::string_text(model_id);
    let replacements = [("model", model_json.as_str())];
    if !members::splice_object(&mut out, text, &entries, &replacements, &[]) {
        members::write_object(&mut out, text, &entries, &replacements);
    }
    Some((out, usage))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("the rewrite is JSON")
    }

    #[test]
    fn an_answer_of_the_clients_format_is_relayed_with_its_usage_read() {
        let answer = br#"{"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let (bytes, usage) = passthrough_answer(WireFormat::OpenAiChat, answer, "my-model")
            .expect("a complete OpenAI answer");
        let mut expected = parsed(answer);
        expected["model"] = Value::from("my-model");
        assert_eq!(parsed(&bytes), expected);
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens
            ),
            (14, 3, 4)
        );

        let message = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":2,"cache_read_input_tokens":5}}"#;
        let (_, usage) = passthrough_answer(WireFormat::AnthropicMessages, message, "c")
            .expect("a complete Anthropic answer");
        // Anthropic's input excludes cache reads; canonical input includes them.
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens
            ),
            (15, 2, 5)
        );
    }

    #[test]
    fn answers_the_fast_path_cannot_vouch_for_take_the_decoding_path() {
        for answer in [
            &br#"{"error":{"message":"overloaded"}}"#[..],
            br#"{"id":"c1","object":"chat.completion"}"#,
            br#"{"choices":[],"usage":null}"#,
            b"not json",
        ] {
            assert_eq!(
                passthrough_answer(WireFormat::OpenAiChat, answer, "m"),
                None,
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
        let gemini = br#"{"candidates":[],"usageMetadata":{}}"#;
        assert_eq!(
            passthrough_answer(WireFormat::GeminiGenerateContent, gemini, "m"),
            None
        );
    }
}
