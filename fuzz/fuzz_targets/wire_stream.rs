//! Stream decoders and encoders of every wire format, fed through the readers the relay
//! uses (SSE, or NDJSON for Ollama).
//!
//! Input: a selector byte (the provider's format, and whether the client asked for usage)
//! and the provider's byte stream. Every event decodes or is refused (the relay then stops),
//! never panics; the canonical events, encoded for any client, are frames of JSON that the
//! client format's own decoder reads back, and the accumulated answer is well formed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerly_core::accumulate::Accumulator;
use routerly_core::canonical::StreamEvent;
use routerly_core::wire::{self, StreamDecoder, StreamEncoder, WireFormat};
use routerly_fuzz::{FORMATS, format_of, split_selector};
use routerly_providers::{NdjsonParser, SseEvent, SseParser};

/// The events of `stream` as the provider reader of `format` yields them.
fn upstream_events(format: WireFormat, stream: &[u8]) -> Vec<SseEvent> {
    let mut events = Vec::new();
    if format == WireFormat::OllamaChat {
        let mut parser = NdjsonParser::new();
        parser.push(stream);
        while let Some(data) = parser.next_line() {
            events.push(SseEvent::new(None, data));
        }
    } else {
        let mut parser = SseParser::new();
        parser.push(stream);
        while let Some(event) = parser.next_event() {
            events.push(event);
        }
    }
    events
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, stream)) = split_selector(data) else {
        return;
    };
    let format = format_of(selector);
    let include_usage = selector & 0x80 != 0;
    let mut decoder = StreamDecoder::new(format);
    let mut canonical: Vec<StreamEvent> = Vec::new();
    for event in upstream_events(format, stream) {
        match decoder.decode(event.event.as_deref(), &event.data) {
            Ok(events) => canonical.extend(events),
            Err(_) => break,
        }
    }
    let mut accumulator = Accumulator::new();
    for event in &canonical {
        accumulator.push(event);
    }
    let _ = accumulator.response();

    for client in FORMATS {
        let mut encoder = StreamEncoder::new(client, include_usage);
        let mut client_decoder = StreamDecoder::new(client);
        for event in &canonical {
            for frame in encoder.encode(event) {
                let bytes = frame.to_bytes();
                assert!(
                    bytes.ends_with(b"\n\n") && !frame.data.contains('\n'),
                    "{client:?}: a frame is one line of data: {:?}",
                    frame.data
                );
                if frame.data != "[DONE]" {
                    serde_json::from_str::<serde_json::Value>(&frame.data).unwrap_or_else(
                        |error| panic!("{client:?} wrote a frame that is not JSON: {error}"),
                    );
                }
                if let Err(error) = client_decoder.decode(frame.event, &frame.data) {
                    panic!(
                        "{client:?} refuses its own encoder's frame {:?} {}: {error:?}",
                        frame.event, frame.data
                    );
                }
            }
        }
    }
    // The Responses encoder is also what the stored-conversation path reads back.
    let _ = wire::encode_response(WireFormat::OpenAiResponses, &accumulator.response());
});
