//! Incremental reader of server-sent events from a byte stream.

use bytes::{Buf, BytesMut};

/// One server-sent event: its `event:` name, when given, and its joined `data:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// Splits bytes into events as they arrive; holds the incomplete tail between calls.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: BytesMut,
}

impl SseParser {
    /// An empty parser.
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Adds bytes read from the wire.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Bytes received that do not yet form a complete event.
    pub fn pending_len(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete event, if one has arrived. Events without data (comments,
    /// keep-alives) are skipped.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let (end, separator_len) = find_event_end(&self.buffer)?;
            let raw = self.buffer.split_to(end);
            self.buffer.advance(separator_len);
            if let Some(event) = parse_event(&raw) {
                return Some(event);
            }
        }
    }
}

/// Where the first event ends: the index of its blank-line separator and the separator's length.
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut index = 0;
    while index < buffer.len() {
        if buffer[index] == b'\n' {
            if buffer.get(index + 1) == Some(&b'\n') {
                return Some((index, 2));
            }
            if buffer.get(index + 1) == Some(&b'\r') && buffer.get(index + 2) == Some(&b'\n') {
                return Some((index, 3));
            }
        }
        index += 1;
    }
    None
}

fn parse_event(raw: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(raw);
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(existing) => {
                    existing.push('\n');
                    existing.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    data.map(|data| SseEvent { event, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(chunks: &[&str]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.push(chunk.as_bytes());
            while let Some(event) = parser.next_event() {
                events.push(event);
            }
        }
        events
    }

    #[test]
    fn events_split_across_reads_are_reassembled() {
        let events = events_of(&[
            "event: message_start\nda",
            "ta: {\"a\":1}\n",
            "\nevent: ping\r\ndata: {}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n",
        ]);
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: Some("ping".into()),
                    data: "{}".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
    }

    #[test]
    fn multi_line_data_is_joined_and_an_incomplete_tail_waits() {
        let mut parser = SseParser::new();
        parser.push(b"data: one\ndata: two\n\ndata: tail");
        assert_eq!(
            parser.next_event().expect("a complete event").data,
            "one\ntwo"
        );
        assert_eq!(parser.next_event(), None, "the tail has no blank line yet");
        assert_eq!(parser.pending_len(), "data: tail".len());
    }
}
