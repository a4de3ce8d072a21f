//! A JSON object's top-level members read in one pass, without building a tree: what the
//! relays need to pass a provider's text through with a member or two replaced (`model`)
//! or looked at (`usage`, `error`).
//!
//! The scan finds each member's extent: keys exactly, values by their brackets and
//! strings, so a truncated or unbalanced text is refused, but a value's inside is not
//! checked. That is enough where the text is relayed as it came (a client reads it with its
//! own parser) and cheaper than a validating parse: for a stream that parse was a sixth of
//! the relay's instructions. Whatever the relays read (`usage`) they parse with serde.

use memchr::memchr2;

/// The top-level members of the object `text`, in order: (key, value's JSON text). `None`
/// when `text` is not one object with balanced brackets and strings, or a key has an
/// escape (the caller then takes the path that builds a tree).
pub fn top_level(text: &str) -> Option<Vec<(&str, &str)>> {
    Some(
        spans(text)?
            .iter()
            .map(|member| (member.key(text), member.value(text)))
            .collect(),
    )
}

/// The top-level members of the object `text` as [`top_level`] reads them, by place.
pub fn spans(text: &str) -> Option<Vec<Member>> {
    // Room for the members of an OpenAI answer or stream chunk (nine) without growing.
    let mut members = Vec::with_capacity(12);
    scan(text.as_bytes(), None, |member, _| members.push(member))?;
    Some(members)
}

/// Where one member of an object's text is: its key (between the quotes) and its value,
/// as byte ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    key: (usize, usize),
    value: (usize, usize),
}

impl Member {
    /// The key, in the object's `text`.
    pub fn key<'t>(&self, text: &'t str) -> &'t str {
        &text[self.key.0..self.key.1]
    }

    /// The value's JSON text, in the object's `text`.
    pub fn value<'t>(&self, text: &'t str) -> &'t str {
        &text[self.value.0..self.value.1]
    }
}

/// Reads the members of a run of objects that begin alike, as a stream's events do (the
/// same id, creation time, model and fingerprint before each event's delta): the members
/// that lie wholly in what a text shares with the one read before are taken from that
/// reading, and the scan resumes after them. The scan of a member reads no byte past
/// the place where the next one begins, so what it found there holds for any text with
/// the same bytes up to that place; the result is always what [`spans`] gives.
#[derive(Debug)]
pub struct Reader {
    /// The last text read whole.
    last: Vec<u8>,
    /// Its members.
    members: Vec<Member>,
    /// Where the scan went on after each member (`usize::MAX` after the last).
    resumes: Vec<usize>,
    /// How many of the last reading's members were taken from the one before.
    reused: usize,
}

impl Default for Reader {
    fn default() -> Self {
        // Room for the members of an OpenAI stream chunk (seven to nine), and for its text
        // (two to three hundred bytes), without growing.
        Reader {
            last: Vec::with_capacity(512),
            members: Vec::with_capacity(12),
            resumes: Vec::with_capacity(12),
            reused: 0,
        }
    }
}

impl Reader {
    /// The top-level members of the object `text` as [`spans`] reads them (`None` where it
    /// refuses `text`).
    pub fn read(&mut self, text: &str) -> Option<&[Member]> {
        let bytes = text.as_bytes();
        let shared = common_prefix(&self.last, bytes);
        let kept = self.resumes.partition_point(|&resume| resume <= shared);
        self.members.truncate(kept);
        self.resumes.truncate(kept);
        self.last.clear();
        self.reused = 0;
        let resume = kept.checked_sub(1).map(|last| self.resumes[last]);
        let (members, resumes) = (&mut self.members, &mut self.resumes);
        let read = scan(bytes, resume, |member, resume| {
            members.push(member);
            resumes.push(resume);
        });
        if read.is_none() {
            self.members.clear();
            self.resumes.clear();
            return None;
        }
        self.last.extend_from_slice(bytes);
        self.reused = kept;
        Some(&self.members)
    }

    /// How many of the members the last [`read`](Reader::read) gave were taken from the
    /// reading before it: those members have the same key and value text, at the same
    /// place, in both texts (0 after a refused text).
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// The members the last [`read`](Reader::read) gave (none after a refused text).
    pub fn members(&self) -> &[Member] {
        &self.members
    }
}

/// How many bytes `a` and `b` begin with alike, compared 32 bytes at a time, then eight.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let length = a.len().min(b.len());
    let word = |bytes: &[u8], at: usize| {
        u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
    };
    let mut at = 0;
    while at + 32 <= length {
        let differ = (word(a, at) ^ word(b, at))
            | (word(a, at + 8) ^ word(b, at + 8))
            | (word(a, at + 16) ^ word(b, at + 16))
            | (word(a, at + 24) ^ word(b, at + 24));
        if differ != 0 {
            break;
        }
        at += 32;
    }
    while at + 8 <= length {
        let (x, y) = (word(a, at), word(b, at));
        if x != y {
            return at + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + a[at..length]
        .iter()
        .zip(&b[at..length])
        .take_while(|(x, y)| x == y)
        .count()
}

/// Calls `visit` with each top-level member of the object `text` as [`top_level`] reads
/// it, without collecting them. `None` as `top_level` refuses; members before the fault
/// have been visited by then, so a caller keeps what it gathered only on `Some`.
pub fn each_member<'a>(text: &'a str, mut visit: impl FnMut(&'a str, &'a str)) -> Option<()> {
    scan(text.as_bytes(), None, |member, _| {
        visit(member.key(text), member.value(text))
    })
}

/// The scan behind every reading: each member of the object `bytes` with the place where
/// the scan goes on after it (`usize::MAX` after the last), from the start or from
/// `resume`, a place a scan of the same bytes went on from. A key is a string without an
/// escape that ends on a character boundary; every value ends on one too, being followed
/// by an ASCII byte or the end.
fn scan(bytes: &[u8], resume: Option<usize>, mut visit: impl FnMut(Member, usize)) -> Option<()> {
    let mut at = match resume {
        Some(resume) => skip_space(bytes, resume),
        None => {
            let at = skip_space(bytes, 0);
            if bytes.get(at) != Some(&b'{') {
                return None;
            }
            let at = skip_space(bytes, at + 1);
            if bytes.get(at) == Some(&b'}') {
                return (skip_space(bytes, at + 1) == bytes.len()).then_some(());
            }
            at
        }
    };
    loop {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        // A key with an escape is refused: the first quote or backslash must close it.
        let key_end = quote_or_backslash(bytes, at + 1)?;
        if bytes[key_end] != b'"' {
            return None;
        }
        let key = (at + 1, key_end);
        at = skip_space(bytes, key_end + 1);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_space(bytes, at + 1);
        let value_end = value_end(bytes, value_start)?;
        let member = Member {
            key,
            value: (value_start, value_end),
        };
        at = skip_space(bytes, value_end);
        match bytes.get(at) {
            Some(b',') => {
                at = skip_space(bytes, at + 1);
                visit(member, at);
            }
            Some(b'}') => {
                visit(member, usize::MAX);
                return (skip_space(bytes, at + 1) == bytes.len()).then_some(());
            }
            _ => return None,
        }
    }
}

/// The object `json` with `replacements` (name, JSON text) set: replaced where present (a
/// repeated key once), added at the end otherwise. `None` when `json` is not an object
/// [`top_level`] can read.
pub fn with_members(json: &[u8], replacements: &[(&str, &str)]) -> Option<Vec<u8>> {
    let text = crate::json_text::utf8(json)?;
    let members = spans(text)?;
    let mut out = Vec::with_capacity(json.len() + 64);
    if !splice_object(&mut out, text, &members, replacements, &[]) {
        write_object(&mut out, text, &members, replacements);
    }
    Some(out)
}

/// Appends `text` (the object whose `members` [`spans`] read) with `replacements` set
/// as [`write_object`] sets them and the members named in `removed` left out, copying the
/// text between them as it is (one copy instead of one per member). `false` (with `out` as
/// it was) when it cannot: a replaced key repeats, or nothing would be left to put an
/// added member after; the caller then writes member by member.
pub fn splice_object(
    out: &mut Vec<u8>,
    text: &str,
    members: &[Member],
    replacements: &[(&str, &str)],
    removed: &[&str],
) -> bool {
    let mut found = [false; 4];
    assert!(
        replacements.len() <= found.len(),
        "a few replacements at most"
    );
    let start = out.len();
    out.reserve(
        text.len()
            + replacements
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>(),
    );
    let spliced = splice_members(out, text, members, |_, member| {
        let key = member.key(text);
        if removed.contains(&key) {
            return Some(Edit::Remove);
        }
        match replacements.iter().position(|(name, _)| *name == key) {
            // A replaced key that repeats undoes what was written.
            Some(index) if found[index] => None,
            Some(index) => {
                found[index] = true;
                Some(Edit::Replace(replacements[index].1))
            }
            None => Some(Edit::Keep),
        }
    });
    let Some((tail, kept)) = spliced else {
        return false;
    };
    let missing = found[..replacements.len()].contains(&false);
    if !kept && missing {
        // Nothing kept to put an added member after.
        out.truncate(start);
        return false;
    }
    // What is not there yet goes after the last kept member.
    for ((key, value), present) in replacements.iter().zip(found) {
        if !present {
            write_member(out, start, key, value);
        }
    }
    out.extend_from_slice(&text.as_bytes()[tail..]);
    true
}

/// What a splice does with one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit<'v> {
    /// Copied as it is.
    Keep,
    /// Its value replaced by this JSON text.
    Replace(&'v str),
    /// Left out, with the comma that joined it to the others.
    Remove,
}

/// Appends `text` (the object whose `members` [`spans`] read) up to the end of its last
/// kept member, each member edited as `edit` says (asked once per member, in order, with
/// its index),
/// copying the text between edited values as it is. Gives where the rest of `text` begins
/// (the caller appends it, after any member it adds) and whether any member was kept; or
/// `None`, with `out` as it was, when `edit` gives `None`.
pub fn splice_members<'v>(
    out: &mut Vec<u8>,
    text: &str,
    members: &[Member],
    mut edit: impl FnMut(usize, &Member) -> Option<Edit<'v>>,
) -> Option<(usize, bool)> {
    let start = out.len();
    let bytes = text.as_bytes();
    // `copied` is how much of `text` is in `out`; `last_end` where the last kept value ends.
    let mut copied = 0;
    let mut last_end = None;
    for (index, member) in members.iter().enumerate() {
        let (value_at, value_end) = member.value;
        match edit(index, member) {
            None => {
                out.truncate(start);
                return None;
            }
            Some(Edit::Remove) => {
                match last_end {
                    // `,"key":value` goes: from the end of the value before it.
                    Some(end) => out.extend_from_slice(&bytes[copied..end]),
                    // The first kept member is later: `"key":value,` goes, up to the next key.
                    None => out.extend_from_slice(&bytes[copied..member.key.0 - 1]),
                }
                copied = match (last_end, members.get(index + 1)) {
                    (None, Some(next)) => next.key.0 - 1,
                    _ => value_end,
                };
                continue;
            }
            Some(Edit::Replace(value)) => {
                out.extend_from_slice(&bytes[copied..value_at]);
                out.extend_from_slice(value.as_bytes());
                copied = value_end;
            }
            Some(Edit::Keep) => {}
        }
        last_end = Some(value_end);
    }
    let tail = last_end.unwrap_or(copied).max(copied);
    out.extend_from_slice(&bytes[copied..tail]);
    Some((tail, last_end.is_some()))
}

/// Appends the object `text` whose `members` [`spans`] read, written member by member
/// with `replacements` set (see [`with_members`]).
pub fn write_object(
    out: &mut Vec<u8>,
    text: &str,
    members: &[Member],
    replacements: &[(&str, &str)],
) {
    let start = out.len();
    out.push(b'{');
    let mut written = [false; 4];
    assert!(
        replacements.len() <= written.len(),
        "a few replacements at most"
    );
    for member in members {
        let key = member.key(text);
        match replacements.iter().position(|(name, _)| *name == key) {
            Some(index) if !written[index] => {
                written[index] = true;
                write_member(out, start, key, replacements[index].1);
            }
            Some(_) => {}
            None => write_member(out, start, key, member.value(text)),
        }
    }
    for ((key, value), done) in replacements.iter().zip(written) {
        if !done {
            write_member(out, start, key, value);
        }
    }
    out.push(b'}');
}

/// Appends `"key":value` to the object that begins at `object_start` in `out`.
pub fn write_member(out: &mut Vec<u8>, object_start: usize, key: &str, value: &str) {
    if out.len() > object_start + 1 {
        out.push(b',');
    }
    // Keys with escapes never get here, so the key is written back as it came.
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(value.as_bytes());
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The index of the quote that closes the string opening at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        at = quote_or_backslash(bytes, at)?;
        if bytes[at] == b'"' {
            return Some(at);
        }
        at += 2;
    }
}

/// The index of the first `"` or `\` at or after `at`. Most strings of an answer are
/// short (keys, ids, a stream event's few words), so the first words are searched eight
/// bytes at a time in place (SWAR), where a call into memchr's vector search costs more
/// than the search; longer text goes to memchr.
#[inline]
fn quote_or_backslash(bytes: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    for _ in 0..4 {
        let Some(word) = bytes.get(at..at + 8) else {
            break;
        };
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let (quote, backslash) = (word ^ QUOTES, word ^ BACKSLASHES);
        // A byte's high bit is set where it is zero (exact up to the first zero byte,
        // which is all the lowest set bit needs).
        let found =
            (quote.wrapping_sub(ONES) & !quote | backslash.wrapping_sub(ONES) & !backslash) & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    Some(at + memchr2(b'"', b'\\', bytes.get(at..)?)?)
}

/// The bytes that open or close a string, an object or an array.
const STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b'"' as usize] = true;
    table[b'{' as usize] = true;
    table[b'[' as usize] = true;
    table[b'}' as usize] = true;
    table[b']' as usize] = true;
    table
};

/// The index just past the value that begins at `start`.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match *bytes.get(start)? {
        b'"' => Some(string_end(bytes, start)? + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            loop {
                // Skip to the next byte that matters (most bytes do not), by table.
                while !STRUCTURAL[usize::from(*bytes.get(at)?)] {
                    at += 1;
                }
                match bytes[at] {
                    b'"' => at = string_end(bytes, at)?,
                    b'{' | b'[' => depth += 1,
                    _ => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                }
                at += 1;
            }
        }
        b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
            let length = bytes[start..]
                .iter()
                .position(|byte| matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(bytes.len() - start);
            Some(start + length)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    #[test]
    fn members_match_what_a_full_parse_sees() {
        let texts = [
            r#"{}"#,
            r#" { "a" : 1 , "b":[1,{"c":"}]\"{"}], "d":{"e":null}, "f":"x\\"  } "#,
            r#"{"id":"c1","choices":[{"delta":{"content":"{[\"]"}}],"usage":null,"n":-1.5e3,"t":true}"#,
            r#"{"text":"naïve — ünïcode 💡","k":false}"#,
            // Runs of backslashes before quotes, and brackets of both kinds in strings,
            // inside values of either kind.
            r#"{"a":{"b":"q\\","c":"\\\"}"},"d":["]\"[",{"e":"}]{["},"\\"],"f":1}"#,
        ];
        for text in texts {
            let members = top_level(text).expect(text);
            let parsed: serde_json::Map<String, Value> = serde_json::from_str(text).unwrap();
            assert_eq!(members.len(), parsed.len(), "{text}");
            for (key, value) in members {
                let value: Value = serde_json::from_str(value).expect(value);
                assert_eq!(parsed[key], value, "{text}: {key}");
            }
        }
    }

    #[test]
    fn strings_end_at_their_quote_wherever_it_falls_in_a_word() {
        // Escapes and the closing quote at every offset of the in-place words and past
        // them (where memchr searches), in keys and values.
        for length in 0..80 {
            for escape in 0..=length {
                let mut content = "é".repeat(length / 3) + &"a".repeat(length - length / 3);
                let at = content
                    .char_indices()
                    .nth(escape)
                    .map_or(content.len(), |(at, _)| at);
                content.insert_str(at, "\\\"\\\\");
                let text = format!(
                    r#"{{"{}":"{content}","k":[{{"{content}":"x"}}]}}"#,
                    "a".repeat(length)
                );
                let members = top_level(&text).expect(&text);
                let parsed: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
                assert_eq!(members.len(), 2, "{text}");
                for (key, value) in members {
                    assert_eq!(
                        parsed[key],
                        serde_json::from_str::<Value>(value).unwrap(),
                        "{text}"
                    );
                }
                let escaped_key = format!(r#"{{"{content}":1}}"#);
                assert_eq!(top_level(&escaped_key), None, "{escaped_key}");
            }
        }
    }

    #[test]
    fn texts_that_are_not_one_balanced_object_are_refused() {
        for text in [
            "",
            "[1]",
            r#"{"a":1"#,
            r#"{"a":[1,2}"#,
            r#"{"a":"unterminated}"#,
            r#"{"a":{"b":1}"#,
            r#"{"a":1}{"b":2}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{a:1}"#,
            r#"{"mo\u0064el":1}"#,
            r#"{"a":1,}"#,
        ] {
            assert_eq!(top_level(text), None, "{text}");
        }
    }

    #[test]
    fn members_are_replaced_in_place_added_at_the_end_and_written_once() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi \"x\""}],"model":"again","stream":true}"#;
        let out = with_members(
            body,
            &[
                ("model", r#""gpt-4o""#),
                ("stream_options", r#"{"include_usage":true}"#),
            ],
        )
        .expect("an object of plain keys");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi \"x\""}],"stream":true,"stream_options":{"include_usage":true}}"#
        );
        assert_eq!(
            with_members(b"{}", &[("model", r#""m""#)]),
            Some(br#"{"model":"m"}"#.to_vec())
        );
        assert_eq!(with_members(b"[1]", &[("model", r#""m""#)]), None);
    }

    #[test]
    fn splicing_copies_the_text_between_replaced_values_as_it_is() {
        let text = "{ \"id\": \"c1\",\n \"model\" : \"up\", \"n\":[1, 2] }";
        let members = spans(text).expect("an object");
        let mut out = Vec::new();
        assert!(splice_object(
            &mut out,
            text,
            &members,
            &[("model", r#""mine""#), ("extra", "true")],
            &[]
        ));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{ \"id\": \"c1\",\n \"model\" : \"mine\", \"n\":[1, 2],\"extra\":true }"
        );
        // A replaced key that repeats, or nothing left to add after: member by member.
        let twice = r#"{"model":"a","model":"b"}"#;
        let mut out = Vec::new();
        let members = spans(twice).unwrap();
        assert!(!splice_object(
            &mut out,
            twice,
            &members,
            &[("model", "1")],
            &[]
        ));
        assert!(!splice_object(&mut out, "{}", &[], &[("model", "1")], &[]));
        let alone = r#"{"usage":null}"#;
        let members = spans(alone).unwrap();
        assert!(!splice_object(
            &mut out,
            alone,
            &members,
            &[("model", "1")],
            &["usage"]
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn splicing_leaves_out_removed_members_wherever_they_are() {
        let splice = |text: &str, removed: &[&str]| {
            let members = spans(text).expect("an object");
            let mut out = Vec::new();
            assert!(splice_object(
                &mut out,
                text,
                &members,
                &[("model", "\"m\"")],
                removed
            ));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            splice(r#"{"usage":null,"model":"x","a":1}"#, &["usage"]),
            r#"{"model":"m","a":1}"#
        );
        assert_eq!(
            splice(r#"{"a":1,"usage":null,"model":"x"}"#, &["usage"]),
            r#"{"a":1,"model":"m"}"#
        );
        assert_eq!(
            splice(r#"{ "a":1, "model":"x", "usage":{"t":2} }"#, &["usage"]),
            r#"{ "a":1, "model":"m" }"#
        );
        assert_eq!(
            splice(r#"{"usage":1,"b":2,"usage":3}"#, &["usage"]),
            r#"{"b":2,"model":"m"}"#
        );
        assert_eq!(
            splice(r#"{"usage":1,"usage":3,"model":"x"}"#, &["usage"]),
            r#"{"model":"m"}"#
        );
        assert_eq!(
            splice(r#"{"model":"x","usage":1}"#, &["usage"]),
            r#"{"model":"m"}"#
        );
    }

    /// Text that stresses the scan: quotes, backslashes, brackets and non-ASCII.
    fn tricky_text() -> impl Strategy<Value = String> {
        proptest::string::string_regex(r#"([a-z ]|"|\\|\{|\}|\[|\]|,|:|é|💡|\n|\u{1}){0,12}"#)
            .expect("a valid pattern")
    }

    /// Arbitrary JSON values, nested a few levels.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |number| number.is_finite())
                .prop_map(Value::from),
            tricky_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((tricky_text(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// An object, written compactly or pretty.
    fn object_text() -> impl Strategy<Value = (serde_json::Map<String, Value>, String)> {
        (
            proptest::collection::vec((tricky_text(), json_value()), 0..8),
            any::<bool>(),
        )
            .prop_map(|(members, pretty)| {
                let object: serde_json::Map<String, Value> = members.into_iter().collect();
                let text = if pretty {
                    serde_json::to_string_pretty(&object)
                } else {
                    serde_json::to_string(&object)
                }
                .expect("a map serializes");
                (object, text)
            })
    }

    /// Texts that begin alike, as a stream's events do: objects with the same first
    /// members and then their own, each maybe cut short and followed by other text, and
    /// maybe with one of its bytes changed.
    fn texts_that_begin_alike() -> impl Strategy<Value = Vec<String>> {
        (
            proptest::collection::vec((tricky_text(), json_value()), 0..5),
            proptest::collection::vec(
                (
                    proptest::collection::vec((tricky_text(), json_value()), 0..4),
                    any::<bool>(),
                    proptest::option::of((any::<proptest::sample::Index>(), tricky_text())),
                    proptest::option::of((
                        any::<proptest::sample::Index>(),
                        proptest::sample::select(&[',', '}', ']', ':', '"', ' ', '1'][..]),
                    )),
                ),
                1..6,
            ),
        )
            .prop_map(|(common, variants)| {
                variants
                    .into_iter()
                    .map(|(own, pretty, cut, changed)| {
                        let mut object = serde_json::Map::new();
                        for (key, value) in common.iter().cloned().chain(own) {
                            object.insert(key, value);
                        }
                        let mut text = if pretty {
                            serde_json::to_string_pretty(&object)
                        } else {
                            serde_json::to_string(&object)
                        }
                        .expect("a map serializes");
                        if let Some((at, tail)) = cut {
                            let mut at = at.index(text.len() + 1);
                            while !text.is_char_boundary(at) {
                                at -= 1;
                            }
                            text.truncate(at);
                            text.push_str(&tail);
                        }
                        // One byte changed, as where one text has a comma and the other
                        // its closing brace.
                        if let Some((at, byte)) = changed
                            && !text.is_empty()
                        {
                            let at = at.index(text.len());
                            if text.as_bytes()[at].is_ascii() {
                                text.replace_range(at..=at, byte.encode_utf8(&mut [0; 4]));
                            }
                        }
                        text
                    })
                    .collect()
            })
    }

    #[test]
    fn a_reader_takes_the_members_two_events_share_from_the_first() {
        let first =
            r#"{"id":"c1","model":"up","choices":[{"delta":{"content":"Hi"}}],"usage":null}"#;
        let second =
            r#"{"id":"c1","model":"up","choices":[{"delta":{"content":"there"}}],"usage":null}"#;
        let mut reader = Reader::default();
        assert_eq!(reader.read(first), spans(first).as_deref());
        // Two members come from the first reading; the rest are scanned.
        let shared = common_prefix(first.as_bytes(), second.as_bytes());
        assert_eq!(
            &first[..shared],
            r#"{"id":"c1","model":"up","choices":[{"delta":{"content":""#
        );
        assert_eq!(reader.resumes.partition_point(|&at| at <= shared), 2);
        assert_eq!(reader.reused(), 0);
        assert_eq!(reader.read(second), spans(second).as_deref());
        assert_eq!(reader.reused(), 2);
        // A text that differs inside a shared member's value is scanned whole.
        let third = r#"{"id":"c2","model":"up","choices":[],"usage":{"total_tokens":3}}"#;
        assert_eq!(reader.read(third), spans(third).as_deref());
        assert_eq!(reader.reused(), 0);
        assert_eq!(reader.read(third), spans(third).as_deref());
        // The last member is always scanned again: what follows it is the text's end.
        assert_eq!(reader.reused(), 3);
        assert_eq!(reader.read("{\"id\":\"c2\","), None);
        assert_eq!(reader.reused(), 0);
        assert_eq!(reader.read(third), spans(third).as_deref());
        assert_eq!(reader.reused(), 0);
        // Texts that part at the byte before a member's key: at the comma, or at space.
        for (before, after) in [
            (r#"{"a":1,"b":2}"#, r#"{"a":1}"b":2}"#),
            (r#"{"a":1,"b":2}"#, r#"{"a":1 "b":2}"#),
            (r#"{"a":1, "b":2}"#, r#"{"a":1,  "b":2}"#),
        ] {
            reader.read(before).expect("an object");
            assert_eq!(reader.read(after), spans(after).as_deref(), "{after}");
        }
    }

    #[test]
    fn the_common_prefix_ends_at_the_first_byte_that_differs_wherever_it_is() {
        // Lengths around the 32- and 8-byte steps, a difference at every place (and none).
        let text: Vec<u8> = (0..100u8).map(|index| b'a' + index % 26).collect();
        for length in [0, 1, 7, 8, 9, 31, 32, 33, 40, 63, 64, 65, 100] {
            let a = &text[..length];
            assert_eq!(common_prefix(a, a), length);
            assert_eq!(common_prefix(a, &text), length);
            for at in 0..length {
                let mut b = a.to_vec();
                b[at] ^= 0x40;
                assert_eq!(
                    common_prefix(a, &b),
                    at,
                    "length {length}, differing at {at}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn the_scan_agrees_with_serde_json((generated, text) in object_text()) {
            // Compared with serde_json's reading of the same text (its float parsing is not
            // exact, so the generated numbers may differ in the last digit).
            let object: serde_json::Map<String, Value> =
                serde_json::from_str(&text).expect("serde_json reads what it wrote");
            prop_assert_eq!(object.len(), generated.len());
            let escaped_key = object
                .keys()
                .any(|key| serde_json::to_string(key).expect("a key").contains('\\'));
            let Some(members) = top_level(&text) else {
                prop_assert!(escaped_key, "refused an object without escaped keys: {text}");
                return Ok(());
            };
            prop_assert!(!escaped_key, "a key with an escape was read as written: {text}");
            prop_assert_eq!(members.len(), object.len());
            for ((key, value_text), (parsed_key, parsed_value)) in members.iter().zip(&object) {
                prop_assert_eq!(key, parsed_key);
                let value: Value = serde_json::from_str(value_text).expect("a member's JSON text");
                prop_assert_eq!(&value, parsed_value);
            }
        }

        #[test]
        fn a_reader_reads_each_text_as_a_scan_of_it_alone(texts in texts_that_begin_alike()) {
            let mut reader = Reader::default();
            let mut before: Option<(&str, Vec<Member>)> = None;
            for text in &texts {
                let alone = spans(text);
                prop_assert_eq!(reader.read(text), alone.as_deref(), "{}", text);
                // What it says it reused is the same key and value text as in the text before.
                let reused = reader.reused();
                if reused > 0 {
                    let (last, last_members) = before.as_ref().expect("a reading before");
                    let members = alone.as_deref().expect("read");
                    for (now, then) in members[..reused].iter().zip(last_members) {
                        prop_assert_eq!(now, then);
                        prop_assert_eq!(now.key(text), then.key(last));
                        prop_assert_eq!(now.value(text), then.value(last));
                    }
                }
                before = alone.map(|members| (text.as_str(), members));
            }
        }

        #[test]
        fn a_truncated_object_is_refused((_object, text) in object_text()) {
            let closing = text.rfind('}').expect("an object ends with a brace");
            for cut in (0..closing).filter(|cut| text.is_char_boundary(*cut)) {
                prop_assert_eq!(top_level(&text[..cut]), None, "{} of {}", cut, text);
            }
        }

        #[test]
        fn setting_members_gives_what_serde_json_gives((_generated, text) in object_text()) {
            let replacements = [("model", r#""m""#), ("usage", "[1]")];
            let Some(out) = with_members(text.as_bytes(), &replacements) else {
                prop_assert_eq!(top_level(&text), None, "refused only what the scan refuses");
                return Ok(());
            };
            let object: serde_json::Map<String, Value> =
                serde_json::from_str(&text).expect("serde_json reads what it wrote");
            let out: Value = serde_json::from_slice(&out).expect("still JSON");
            let mut expected = object;
            expected.insert("model".to_owned(), Value::from("m"));
            expected.insert("usage".to_owned(), serde_json::json!([1]));
            prop_assert_eq!(out, Value::Object(expected));
        }

        #[test]
        fn splicing_gives_what_serde_json_gives((_generated, text) in object_text()) {
            let Some(members) = spans(&text) else {
                return Ok(());
            };
            let mut out = Vec::new();
            if !splice_object(&mut out, &text, &members, &[("model", r#""m""#)], &["usage"]) {
                return Ok(());
            }
            let object: serde_json::Map<String, Value> =
                serde_json::from_str(&text).expect("serde_json reads what it wrote");
            let out: Value = serde_json::from_slice(&out).expect("still JSON");
            let mut expected = object;
            expected.remove("usage");
            expected.insert("model".to_owned(), Value::from("m"));
            prop_assert_eq!(out, Value::Object(expected));
        }

        #[test]
        fn what_the_scan_accepts_it_writes_back_the_same(
            text in r#"[ {}\[\]":,a-c0-9\\-]{0,40}"#
        ) {
            if let (Some(members), Some(spans)) = (top_level(&text), spans(&text)) {
                let mut out = Vec::new();
                write_object(&mut out, &text, &spans, &[]);
                let out = String::from_utf8(out).expect("UTF-8 in, UTF-8 out");
                let again = top_level(&out);
                prop_assert_eq!(again.as_ref(), Some(&members), "{} became {}", text, out);
            }
        }
    }
}
