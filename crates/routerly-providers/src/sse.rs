//! Incremental reader of server-sent events from a byte stream.

/// One server-sent event: its `event:` name, when given, and its joined `data:` lines.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// Known to hold no line break: the event was one `data:` line with no `\r` in it, as
    /// the parser's search for the event's end saw (the relay then need not look again
    /// before it writes the data as one line). `false` says nothing.
    one_line: bool,
}

impl SseEvent {
    /// An event with the given name and data.
    pub fn new(event: Option<String>, data: String) -> Self {
        SseEvent {
            event,
            data,
            one_line: false,
        }
    }

    /// Whether the data holds a line break (`\n` or `\r`), which would end an SSE field
    /// early if the data were written as one `data:` line.
    pub fn has_line_break(&self) -> bool {
        !self.one_line && memchr::memchr2(b'\n', b'\r', self.data.as_bytes()).is_some()
    }
}

/// Events are equal by name and data (what is known of the data's lines follows from it).
impl PartialEq for SseEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event && self.data == other.data
    }
}

impl Eq for SseEvent {}

/// Splits bytes into events as they arrive; holds the incomplete tail between calls.
///
/// Events are read in place from one buffer (no copy or allocation per event beyond the
/// event's own strings), and the search for an event's end resumes where the last one
/// stopped, so an event arriving in many small reads is scanned once.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// Where the unread bytes begin.
    start: usize,
    /// How far (from the buffer's beginning) the search for the next event's end has got.
    scanned: usize,
    /// A handed-back event's data, whose allocation the next event's data reuses.
    spare: String,
}

impl SseParser {
    /// An empty parser.
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Adds bytes read from the wire.
    pub fn push(&mut self, chunk: &[u8]) {
        self.append(|buffer| buffer.extend_from_slice(chunk));
    }

    /// Lets `read` append bytes from the wire to the buffer (so a reader can decode into
    /// it in place).
    pub fn append<R>(&mut self, read: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        if self.start > 0 {
            // Drop what was read; the unread tail is at most one partial event.
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        let read = read(&mut self.buffer);
        self.scanned = self.scanned.min(self.buffer.len());
        read
    }

    /// Bytes received that are not yet read as events.
    pub fn pending_len(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Takes back an event read from this parser once its reader is done with it: the next
    /// event's data is written into its allocation instead of a new one.
    pub fn recycle(&mut self, event: SseEvent) {
        if event.data.capacity() > self.spare.capacity() {
            self.spare = event.data;
        }
    }

    /// The next complete event, if one has arrived. Events without data (comments,
    /// keep-alives) are skipped.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let from = self.scanned.max(self.start);
            let Some(found) = find_event_end(&self.buffer, from) else {
                // A separator may begin in the last two bytes: look at them again.
                self.scanned = self.buffer.len().saturating_sub(2).max(self.start);
                return None;
            };
            let (end, separator_len) = (found.end, found.separator_len);
            let raw = &self.buffer[self.start..end];
            // Searched from the event's first byte, the first line break is its end: one line.
            let one_line = from == self.start && found.first_break == end;
            let event = parse_event(raw, one_line, &mut self.spare);
            self.start = end + separator_len;
            self.scanned = self.start;
            if self.start == self.buffer.len() {
                self.buffer.clear();
                self.start = 0;
                self.scanned = 0;
            }
            if let Some(event) = event {
                return Some(event);
            }
        }
    }
}

/// Where an event ends.
struct EventEnd {
    /// The index of its blank-line separator.
    end: usize,
    separator_len: usize,
    /// The index of the first `\n` or `\r` the search met.
    first_break: usize,
}

/// Where the first event at or after `from` ends. Both line-break bytes are searched for
/// (at the cost of one), so that the search also tells whether the event is one line.
fn find_event_end(buffer: &[u8], from: usize) -> Option<EventEnd> {
    let mut index = from;
    let mut first_break = None;
    while let Some(offset) = memchr::memchr2(b'\n', b'\r', &buffer[index..]) {
        index += offset;
        let first_break = *first_break.get_or_insert(index);
        // A blank line: `\n` then `\n` or `\r\n`.
        let separator_len = match &buffer[index..] {
            [b'\n', b'\n', ..] => Some(2),
            [b'\n', b'\r', b'\n', ..] => Some(3),
            _ => None,
        };
        if let Some(separator_len) = separator_len {
            return Some(EventEnd {
                end: index,
                separator_len,
                first_break,
            });
        }
        index += 1;
    }
    None
}

/// The event in `raw` (without its blank line); its data is written into `spare`'s
/// allocation when there is one. `one_line`: `raw` holds no `\n` or `\r`.
fn parse_event(raw: &[u8], one_line: bool, spare: &mut String) -> Option<SseEvent> {
    // Valid UTF-8 (the usual case) is checked with a vectorised validator (a third of the
    // standard library's instructions on an event: measured with callgrind) and borrowed.
    let text = match simdutf8::basic::from_utf8(raw) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(raw),
    };
    let mut event = None;
    let mut data: Option<String> = None;
    // Lines split with memchr's vector search (`str::lines` looks byte by byte).
    let mut rest = &*text;
    while !rest.is_empty() {
        let end = if one_line {
            None
        } else {
            memchr::memchr(b'\n', rest.as_bytes())
        };
        let (line, after) = match end {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, ""),
        };
        rest = after;
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
                None => {
                    let mut first = std::mem::take(spare);
                    first.clear();
                    // A new allocation has room for a somewhat longer event: a stream's
                    // events differ by a few words, and this one's data will be recycled.
                    if first.capacity() < value.len() {
                        first.reserve(value.len() + value.len().min(1024));
                    }
                    first.push_str(value);
                    data = Some(first);
                }
            },
            _ => {}
        }
    }
    data.map(|data| SseEvent {
        event,
        data,
        one_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
                SseEvent::new(Some("message_start".into()), "{\"a\":1}".into()),
                SseEvent::new(Some("ping".into()), "{}".into()),
                SseEvent::new(None, "[DONE]".into()),
            ]
        );
    }

    #[test]
    fn an_event_read_whole_is_known_to_be_one_line_when_it_is() {
        let mut parser = SseParser::new();
        parser.push(b"data: {\"a\":1}\n\ndata: a\rb\n\ndata: a\ndata: b\n\ndata: c\r\n\r\n");
        let one = parser.next_event().expect("one line");
        assert!(one.one_line && !one.has_line_break());
        for expected in ["a\rb", "a\nb"] {
            let event = parser.next_event().expect("an event with a break");
            assert_eq!(event.data, expected);
            assert!(!event.one_line && event.has_line_break());
        }
        // A line ended by CR LF: not known, and no break in the data.
        let crlf = parser.next_event().expect("a CR LF event");
        assert!(!crlf.one_line && !crlf.has_line_break());
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

    #[test]
    fn an_event_arriving_byte_by_byte_is_found_once_whole() {
        let stream = "event: a\r\ndata: 1\r\n\r\ndata: 2\n\n: ping\n\ndata: 3\ndata: 4\n\n";
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for byte in stream.as_bytes() {
            parser.push(std::slice::from_ref(byte));
            while let Some(event) = parser.next_event() {
                events.push((event.event, event.data));
            }
        }
        assert_eq!(
            events,
            vec![
                (Some("a".to_owned()), "1".to_owned()),
                (None, "2".to_owned()),
                (None, "3\n4".to_owned()),
            ]
        );
        assert_eq!(parser.pending_len(), 0);
    }

    #[test]
    fn a_recycled_event_lends_its_allocation_to_the_next() {
        let mut parser = SseParser::new();
        parser.push(b"data: a first event's data\n\ndata: second\n\ndata: x\ndata: y\n\n");
        let first = parser.next_event().expect("the first event");
        let allocation = first.data.as_ptr();
        parser.recycle(first);
        let second = parser.next_event().expect("the second event");
        assert_eq!(second.data, "second");
        assert_eq!(
            second.data.as_ptr(),
            allocation,
            "written into the recycled data"
        );
        parser.recycle(second);
        // Lines joined into the recycled allocation too.
        let third = parser.next_event().expect("the third event");
        assert_eq!((third.event, third.data.as_str()), (None, "x\ny"));
        assert_eq!(third.data.as_ptr(), allocation);
    }

    /// The stream cut at `cuts` (positions taken modulo its length), in order.
    fn split<'s>(stream: &'s [u8], cuts: &[usize]) -> Vec<&'s [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for cut in cuts {
            chunks.push(&stream[from..cut]);
            from = cut;
        }
        chunks.push(&stream[from..]);
        chunks
    }

    /// The events of `chunks`, each handed back once read (as a relay does).
    fn read(chunks: &[&[u8]]) -> (Vec<SseEvent>, usize) {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.push(chunk);
            while let Some(event) = parser.next_event() {
                events.push(event.clone());
                parser.recycle(event);
            }
        }
        (events, parser.pending_len())
    }

    /// Byte streams made of SSE's own pieces (fields, separators, comments, CR and LF,
    /// invalid UTF-8), so that most of them hold events.
    fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"data: ".to_vec()),
            Just(b"data:".to_vec()),
            Just(b"event: ".to_vec()),
            Just(b": comment".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\n\n".to_vec()),
            Just(vec![0xff, 0xfe]),
            "[a-z{}\":,\\[\\] é]{0,8}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn events_do_not_depend_on_the_chunking(
            stream in sse_bytes(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let whole = read(&[&stream]);
            let chunked = read(&split(&stream, &cuts));
            prop_assert_eq!(&chunked, &whole);
            let byte_by_byte: Vec<&[u8]> = stream.chunks(1).collect();
            let byte_by_byte = read(&byte_by_byte);
            // What the parser knows of an event's lines is never wrong, however it arrived.
            for event in whole.0.iter().chain(&chunked.0).chain(&byte_by_byte.0) {
                let breaks = event.data.bytes().any(|byte| byte == b'\n' || byte == b'\r');
                prop_assert_eq!(event.has_line_break(), breaks, "{:?}", event);
            }
            prop_assert_eq!(byte_by_byte, whole);
        }

        #[test]
        fn written_events_are_read_back(
            events in proptest::collection::vec(
                (proptest::option::of("[a-z_.]{1,12}"), "[^\r\n]{0,16}(\n[^\r\n]{0,16}){0,2}"),
                0..8,
            ),
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let newline = if crlf { "\r\n" } else { "\n" };
            let mut stream = String::new();
            for (event, data) in &events {
                if let Some(event) = event {
                    stream.push_str(&format!("event: {event}{newline}"));
                }
                for line in data.split('\n') {
                    stream.push_str(&format!("data: {line}{newline}"));
                }
                stream.push_str(newline);
            }
            let expected: Vec<SseEvent> = events
                .iter()
                .map(|(event, data)| SseEvent::new(event.clone(), data.clone()))
                .collect();
            let (read_events, pending) = read(&split(stream.as_bytes(), &cuts));
            prop_assert_eq!(read_events, expected);
            prop_assert_eq!(pending, 0);
        }
    }
}
