//! The one-pass member scan of the relays (`proxy::members`), differentially against
//! serde_json.
//!
//! Input: any bytes. Where serde_json reads an object, the scan finds the same members
//! with the same values (or steps aside for a key written with an escape); no proper
//! prefix of that object is taken for a whole one; replacing a member yields the object
//! serde_json expects. Where serde_json reads anything else, the scan refuses it. Texts
//! separated by a 0x1e byte are read in turn by one `Reader`, which must find in each what
//! a scan of it alone finds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerly_server::proxy::members;
use serde_json::Value;

/// At most this many prefixes of one input are checked, spread over its length.
const PREFIXES: usize = 24;

fuzz_target!(|data: &[u8]| {
    let mut reader = members::Reader::default();
    for part in data.split(|&byte| byte == 0x1e) {
        if let Ok(part) = std::str::from_utf8(part) {
            let alone = members::spans(part);
            assert_eq!(
                reader.read(part),
                alone.as_deref(),
                "a reader found other members than a scan of the text alone"
            );
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        assert_eq!(members::with_members(data, &[("model", "1")]), None);
        return;
    };
    let scanned = members::top_level(text);
    let Ok(parsed) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Value::Object(object) = parsed else {
        assert_eq!(scanned, None, "the scan took a non-object for an object");
        return;
    };
    let Some(scanned) = scanned else {
        // Only a key written with an escape makes the scan step aside.
        assert!(
            text.contains('\\'),
            "the scan refused an object serde_json reads"
        );
        return;
    };
    // Duplicate keys: serde_json keeps the last value at the first position.
    let mut last: Vec<(&str, Value)> = Vec::new();
    for (key, value_text) in &scanned {
        let value: Value = serde_json::from_str(value_text).unwrap_or_else(|error| {
            panic!("member `{key}` is not a JSON value ({error}): {value_text:?}")
        });
        match last.iter_mut().find(|(seen, _)| seen == key) {
            Some(entry) => entry.1 = value,
            None => last.push((key, value)),
        }
    }
    assert_eq!(
        last.len(),
        object.len(),
        "the scan and serde_json count different members"
    );
    for ((key, value), (parsed_key, parsed_value)) in last.iter().zip(&object) {
        assert_eq!(key, parsed_key, "the members come in a different order");
        assert_eq!(value, parsed_value, "member `{key}` differs");
    }

    // A text cut before its closing brace is not a whole object.
    let closing = text.rfind('}').expect("an object ends with a brace");
    let step = (closing / PREFIXES).max(1);
    for cut in (0..closing).step_by(step).chain([closing]) {
        if text.is_char_boundary(cut) {
            assert_eq!(
                members::top_level(&text[..cut]),
                None,
                "a prefix of {cut} bytes was taken for a whole object"
            );
        }
    }

    // Setting a member gives what serde_json would.
    let replaced = members::with_members(data, &[("model", "\"fuzz\""), ("usage", "{\"n\":1}")])
        .expect("an object the scan reads can have members set");
    let replaced: Value = serde_json::from_slice(&replaced).expect("setting members keeps JSON");
    let mut expected = object;
    expected.insert("model".to_owned(), Value::from("fuzz"));
    expected.insert("usage".to_owned(), serde_json::json!({"n": 1}));
    assert_eq!(
        replaced,
        Value::Object(expected),
        "members set as serde_json would"
    );
});
