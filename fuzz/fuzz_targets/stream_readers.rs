//! The provider stream readers (`SseParser`, `NdjsonParser`): the same events whatever the
//! chunking of the byte stream.
//!
//! Input: a count byte, that many chunk lengths, then the stream. The stream is read whole
//! and in those chunks (the last length repeating), the chunked reading handing each SSE
//! event back to be reused; both readings yield the same events and leave the same
//! incomplete tail.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerly_providers::{NdjsonParser, SseEvent, SseParser};

/// The stream's chunks: the given lengths (zero is a read of no bytes), the last repeating.
fn chunks<'s>(lengths: &[u8], mut stream: &'s [u8]) -> Vec<&'s [u8]> {
    let mut out = Vec::new();
    let mut lengths = lengths
        .iter()
        .copied()
        .chain(std::iter::repeat(*lengths.last().unwrap_or(&255)));
    while !stream.is_empty() {
        let length = usize::from(lengths.next().expect("repeats forever")).min(stream.len());
        let (chunk, rest) = stream.split_at(length);
        out.push(chunk);
        stream = rest;
        if length == 0 && out.len() > 1024 {
            // Reads of nothing forever would never finish the stream.
            out.push(stream);
            break;
        }
    }
    out
}

/// The events of `chunks`; with `recycle`, each handed back once read, as a relay does.
fn sse(chunks: &[&[u8]], recycle: bool) -> (Vec<SseEvent>, usize) {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(event) = parser.next_event() {
            if recycle {
                events.push(event.clone());
                parser.recycle(event);
            } else {
                events.push(event);
            }
        }
    }
    (events, parser.pending_len())
}

fn ndjson(chunks: &[&[u8]]) -> (Vec<String>, usize) {
    let mut parser = NdjsonParser::new();
    let mut lines = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(line) = parser.next_line() {
            lines.push(line);
        }
    }
    (lines, parser.pending_len())
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 16).min(rest.len());
    let (lengths, stream) = rest.split_at(count);
    let chunked = chunks(lengths, stream);

    let (whole_events, whole_pending) = sse(&[stream], false);
    let (chunked_events, chunked_pending) = sse(&chunked, true);
    assert_eq!(
        whole_events, chunked_events,
        "SSE events depend on the chunking"
    );
    assert_eq!(
        whole_pending, chunked_pending,
        "SSE tail depends on the chunking"
    );
    for event in &whole_events {
        assert!(
            // Lines end at LF (or CRLF); a lone CR is not taken for a line end.
            event
                .event
                .as_deref()
                .is_none_or(|name| !name.contains('\n')),
            "an event name spans lines"
        );
    }

    let (whole_lines, whole_pending) = ndjson(&[stream]);
    let (chunked_lines, chunked_pending) = ndjson(&chunked);
    assert_eq!(
        whole_lines, chunked_lines,
        "NDJSON lines depend on the chunking"
    );
    assert_eq!(
        whole_pending, chunked_pending,
        "NDJSON tail depends on the chunking"
    );
    for line in &whole_lines {
        assert!(
            !line.is_empty() && !line.contains('\n'),
            "a line is one non-blank line"
        );
    }
});
