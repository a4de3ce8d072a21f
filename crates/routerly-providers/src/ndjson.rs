//! Incremental reader of newline-delimited JSON (Ollama's streams) from a byte stream.

/// Splits bytes into lines as they arrive; holds the incomplete tail between calls.
#[derive(Debug, Default)]
pub struct NdjsonParser {
    buffer: Vec<u8>,
    /// Where the unread bytes begin.
    start: usize,
}

impl NdjsonParser {
    /// An empty parser.
    pub fn new() -> Self {
        NdjsonParser::default()
    }

    /// Adds bytes read from the wire.
    pub fn push(&mut self, chunk: &[u8]) {
        self.append(|buffer| buffer.extend_from_slice(chunk));
    }

    /// Lets `read` append bytes from the wire to the buffer (so a reader can decode into
    /// it in place).
    pub fn append<R>(&mut self, read: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        // Drop what was read; the unread tail is at most one partial line.
        self.buffer.drain(..self.start);
        self.start = 0;
        read(&mut self.buffer)
    }

    /// Bytes received that do not yet form a complete line.
    pub fn pending_len(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next complete, non-blank line, without its line ending.
    pub fn next_line(&mut self) -> Option<String> {
        loop {
            let unread = &self.buffer[self.start..];
            let end = memchr::memchr(b'\n', unread)?;
            self.start += end + 1;
            let line = String::from_utf8_lossy(&unread[..end]);
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
    use proptest::prelude::*;

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

    fn read(chunks: &[&[u8]]) -> (Vec<String>, usize) {
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

    proptest! {
        #[test]
        fn lines_do_not_depend_on_the_chunking(
            stream in proptest::collection::vec(
                prop_oneof![
                    Just(b"\n".to_vec()),
                    Just(b"\r\n".to_vec()),
                    Just(b"  ".to_vec()),
                    Just(vec![0xc3]),
                    Just(vec![0xa9]),
                    "[a-z{}\":,é]{0,8}".prop_map(String::into_bytes),
                ],
                0..40,
            ).prop_map(|pieces| pieces.concat()),
            cut_points in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let mut cuts: Vec<usize> = cut_points.iter().map(|cut| cut % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in cuts {
                chunks.push(&stream[from..cut]);
                from = cut;
            }
            chunks.push(&stream[from..]);
            let whole = read(&[&stream]);
            prop_assert_eq!(read(&chunks), whole.clone());
            for line in &whole.0 {
                prop_assert!(!line.is_empty() && !line.contains('\n'), "{:?}", line);
            }
            // What is left is exactly the bytes after the last newline.
            let tail = stream.iter().rev().take_while(|byte| **byte != b'\n').count();
            prop_assert_eq!(whole.1, tail);
        }
    }
}
