//! Incremental reader of newline-delimited JSON (Ollama's streams) from a byte stream.

use bytes::{Buf, BytesMut};

/// Splits bytes into lines as they arrive; holds the incomplete tail between calls.
#[derive(Debug, Default)]
pub struct NdjsonParser {
    buffer: BytesMut,
}

impl NdjsonParser {
    /// An empty parser.
    pub fn new() -> Self {
        NdjsonParser::default()
    }

    /// Adds bytes read from the wire.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Bytes received that do not yet form a complete line.
    pub fn pending_len(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete, non-blank line, without its line ending.
    pub fn next_line(&mut self) -> Option<String> {
        loop {
            let end = self.buffer.iter().position(|&byte| byte == b'\n')?;
            let raw = self.buffer.split_to(end);
            self.buffer.advance(1);
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim();
            if !line.is_empty() {
                return Some(line.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_are_reassembled_and_blank_lines_skipped() {
        let mut parser = NdjsonParser::new();
        parser.push(b"{\"a\":1}\n\n{\"b\"");
        assert_eq!(parser.next_line().as_deref(), Some("{\"a\":1}"));
        assert_eq!(parser.next_line(), None, "the tail has no newline yet");
        parser.push(b":2}\r\n");
        assert_eq!(parser.next_line().as_deref(), Some("{\"b\":2}"));
        assert_eq!(parser.pending_len(), 0);
    }
}
