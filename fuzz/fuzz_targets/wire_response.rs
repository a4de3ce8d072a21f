//! Response decoders and encoders of every wire format, and the usage readers the relays
//! use on text they pass through.
//!
//! Input: a selector byte (the provider's format) and an answer body. A provider's answer
//! decodes or is refused, never panics; a decoded answer encoded for any client is read
//! back by that format's decoder, and a second trip changes nothing but the ids a format
//! without them generates.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerly_core::wire;
use routerly_fuzz::{FORMATS, format_of, response_without_generated_ids, split_selector};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = split_selector(data) else {
        return;
    };
    let format = format_of(selector);
    if let Ok(text) = std::str::from_utf8(body) {
        // The relays read usage straight from a usage object's text.
        let _ = wire::decode_usage(format, text);
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Ok(response) = wire::decode_response(format, &body) else {
        return;
    };
    for client in FORMATS {
        let encoded = wire::encode_response(client, &response);
        let decoded = wire::decode_response(client, &encoded).unwrap_or_else(|error| {
            panic!("{client:?} refuses its own encoder's answer {encoded}: {error:?}")
        });
        let decoded_again = wire::decode_response(client, &wire::encode_response(client, &decoded))
            .unwrap_or_else(|error| panic!("{client:?} second trip refused: {error:?}"));
        assert_eq!(
            response_without_generated_ids(decoded),
            response_without_generated_ids(decoded_again),
            "{client:?}: a second trip through the format changed the answer"
        );
    }
});
