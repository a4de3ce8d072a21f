//! JSON text written by hand, byte for byte what `serde_json` writes, for the records every
//! call writes (usage record, trace, log line). Through `serde_json` a string is escaped byte
//! by byte and a timestamp goes through `core::fmt` one character at a time: about 5,000
//! instructions of a plain call (callgrind, `bench/callgrind-guard.sh`). Here a string that
//! needs no escape (every string Routerly makes itself) is checked sixteen bytes at a time and
//! copied whole, and a timestamp is written digit by digit. Tests compare both with
//! `serde_json`.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// `bytes` as text when they are UTF-8, checked by vector (`simdutf8`): a body read
/// member by member is checked once, here, in about a sixth of `std::str::from_utf8`'s
/// instructions.
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// Appends `text` as a JSON string.
pub fn string(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        serde_json::to_writer(&mut *out, text).expect("a string serializes");
        return;
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// `text` as a JSON string, built as text (no check of the bytes written back as UTF-8).
pub fn string_text(text: &str) -> String {
    if needs_escape(text.as_bytes()) {
        return serde_json::to_string(text).expect("a string serializes");
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    out.push_str(text);
    out.push('"');
    out
}

/// Appends `text` as a JSON string, or `null`.
pub fn optional_string(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => string(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// Whether a byte of `bytes` must be escaped in a JSON string as `serde_json` escapes it: a
/// quote, a backslash or a control character. Without an early exit inside each block of
/// sixteen, the compiler checks a block in a few vector instructions.
fn needs_escape(bytes: &[u8]) -> bool {
    let escaped = |byte: u8| byte < 0x20 || byte == b'"' || byte == b'\\';
    let any_escaped = |block: &[u8; 16]| block.iter().fold(false, |any, &byte| any | escaped(byte));
    let Some(last) = bytes.len().checked_sub(16) else {
        return bytes.iter().any(|&byte| escaped(byte));
    };
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if any_escaped(block.try_into().expect("sixteen bytes")) {
            return true;
        }
    }
    // The bytes after the last whole block, as the last sixteen bytes of the text (which
    // overlap the block before): one more block check instead of a byte-by-byte tail.
    !blocks.remainder().is_empty() && any_escaped(bytes[last..].try_into().expect("sixteen bytes"))
}

/// Appends `at` as `chrono`'s `Serialize` writes a UTC time: a JSON string in RFC 3339 with
/// `Z`, its fraction of a second in 0, 3, 6 or 9 digits, whichever shows it exactly.
pub fn timestamp(out: &mut Vec<u8>, at: &DateTime<Utc>) {
    let year = at.year();
    if !(0..=9999).contains(&year) {
        // Outside four digits chrono writes a sign; not a time Routerly records.
        serde_json::to_writer(&mut *out, at).expect("a time serializes");
        return;
    }
    let mut nano = at.nanosecond();
    out.push(b'"');
    if nano >= 1_000_000_000 {
        // A leap second, as chrono writes it.
        nano -= 1_000_000_000;
        civil_second(out, at, at.second() + 1);
    } else {
        out.extend_from_slice(&second_text(at));
    }
    if nano != 0 {
        out.push(b'.');
        if nano.is_multiple_of(1_000_000) {
            digits(out, nano / 1_000_000, 3);
        } else if nano.is_multiple_of(1_000) {
            digits(out, nano / 1_000, 6);
        } else {
            digits(out, nano, 9);
        }
    }
    out.extend_from_slice(b"Z\"");
}

/// `at`'s second as RFC 3339 writes it, `YYYY-MM-DDTHH:MM:SS` (a year of four digits),
/// from a one-entry cache per thread: the records a call writes, and the calls of one
/// second, share it, and working out the civil date is most of a timestamp's cost.
pub fn second_text(at: &DateTime<Utc>) -> [u8; 19] {
    thread_local! {
        static LAST: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((i64::MIN, [0; 19])) };
    }
    let second = at.timestamp();
    LAST.with(|last| {
        let (cached, text) = last.get();
        if cached == second {
            return text;
        }
        let mut out = Vec::with_capacity(19);
        civil_second(&mut out, at, at.second());
        let text: [u8; 19] = out.try_into().expect("nineteen bytes");
        last.set((second, text));
        text
    })
}

/// Appends `YYYY-MM-DDTHH:MM:` of `at` and then `second`.
fn civil_second(out: &mut Vec<u8>, at: &DateTime<Utc>, second: u32) {
    digits(out, at.year().clamp(0, 9999) as u32, 4);
    for (separator, value) in [
        (b'-', at.month()),
        (b'-', at.day()),
        (b'T', at.hour()),
        (b':', at.minute()),
        (b':', second),
    ] {
        out.push(separator);
        digits(out, value, 2);
    }
}

/// Appends `value` in decimal, without padding and without the formatting machinery.
pub fn decimal(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `value` in decimal, zero-padded to `width` digits (at most 10; higher digits of a
/// wider value are left out).
pub fn digits(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut buffer = [b'0'; 10];
    let mut rest = value;
    for slot in buffer[..width].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&buffer[..width]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn an_escape_is_found_at_every_place_of_every_length() {
        for length in 0..80 {
            let plain = "a".repeat(length);
            assert_eq!(written(|out| string(out, &plain)), format!("\"{plain}\""));
            for at in 0..length {
                for escape in ['"', '\\', '\n', '\u{1}'] {
                    let mut text = plain.clone();
                    text.replace_range(at..=at, &escape.to_string());
                    assert!(needs_escape(text.as_bytes()), "{length} {at} {escape:?}");
                    assert_eq!(
                        written(|out| string(out, &text)),
                        serde_json::to_string(&text).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn strings_are_what_serde_json_writes() {
        for text in [
            "",
            "plain",
            "0190b5f4-7a3e-7c1d-9f00-1234567890ab",
            "sixteen bytes!!!",
            "a quote \" in the second block....",
            "back\\slash",
            "line\nbreak",
            "\u{1}\u{1f}\u{7f}",
            "naïve — ünïcode 💡",
            "a long text without anything to escape, longer than two blocks of sixteen",
        ] {
            assert_eq!(
                written(|out| string(out, text)),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
            assert_eq!(string_text(text), serde_json::to_string(text).unwrap());
        }
        assert_eq!(written(|out| optional_string(out, None)), "null");
    }

    #[test]
    fn timestamps_of_one_second_and_the_next_are_each_what_chrono_writes() {
        // The cached second is reused only within its second.
        let base = 1_796_636_814;
        for (seconds, nanos) in [
            (base, 0),
            (base, 500_000_000),
            (base + 1, 1_000),
            (base, 999_999_999),
            (base + 86_400, 0),
            (base + 86_400, 7_000_000),
            (base - 1, 0),
        ] {
            let at = DateTime::from_timestamp(seconds, nanos).expect("in range");
            assert_eq!(
                written(|out| timestamp(out, &at)),
                serde_json::to_string(&at).unwrap()
            );
        }
    }

    #[test]
    fn timestamps_are_what_chrono_writes() {
        for text in [
            "2026-12-06T03:04:05Z",
            "2026-12-06T03:04:05.120Z",
            "2026-12-06T03:04:05.000120Z",
            "2026-12-06T03:04:05.000000120Z",
            "2026-12-06T03:04:05.123456789Z",
            "0001-01-01T00:00:00.5Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            let at: DateTime<Utc> = text.parse().expect("a time");
            assert_eq!(
                written(|out| timestamp(out, &at)),
                serde_json::to_string(&at).unwrap(),
                "{text}"
            );
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|date| date.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second")
            .and_utc();
        assert_eq!(
            written(|out| timestamp(out, &leap)),
            serde_json::to_string(&leap).unwrap()
        );
    }

    proptest! {
        #[test]
        fn any_string_is_what_serde_json_writes(text in any::<String>()) {
            prop_assert_eq!(written(|out| string(out, &text)), serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn any_time_is_what_chrono_writes(seconds in -62_135_596_800i64..253_402_300_799, nanos in 0u32..1_000_000_000, round in 0u32..3) {
            let nanos = match round { 0 => nanos / 1_000_000 * 1_000_000, 1 => nanos / 1_000 * 1_000, _ => nanos };
            let at = DateTime::from_timestamp(seconds, nanos).expect("in range");
            prop_assert_eq!(written(|out| timestamp(out, &at)), serde_json::to_string(&at).unwrap());
        }
    }
}
