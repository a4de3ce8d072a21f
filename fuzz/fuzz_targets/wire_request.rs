//! Request decoders and encoders of every wire format.
//!
//! Input: a selector byte (the client's format) and a request body. Whatever a client sends
//! must decode or be refused with an error, never panic; a decoded request, encoded for any
//! provider, is either refused by that encoder or read back by the same format's decoder,
//! and a second trip through that format changes nothing but the tool-call ids a format
//! without ids generates (the encoders and decoders agree). Where a format's simple reader
//! reads the body straight from its text, it gives what the full decoder gives.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerly_core::wire;
use routerly_fuzz::{
    FORMATS, format_of, results_answer_calls, split_selector, without_generated_ids,
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = split_selector(data) else {
        return;
    };
    let text = body;
    let simple = wire::decode_simple_request(format_of(selector), text);
    let Ok(body) = serde_json::from_slice::<Value>(text) else {
        assert!(simple.is_none(), "the simple reader read a body that is not JSON");
        return;
    };
    let decoded = wire::decode_request(format_of(selector), &body);
    if let Some(simple) = simple {
        assert_eq!(
            decoded.as_ref(),
            Ok(&simple.request),
            "the simple reader and the full decoder disagree"
        );
        // Its rewrite for the provider is the body with the model set (and usage asked
        // for), as the tree path writes it.
        for stream_usage in [false, true] {
            let Some(rewritten) = simple.places.rewrite(text, "\"fuzz-model\"", stream_usage) else {
                continue;
            };
            let mut expected = body.clone();
            expected["model"] = Value::from("fuzz-model");
            if stream_usage {
                expected["stream_options"] = serde_json::json!({"include_usage": true});
            }
            let rewritten: Value =
                serde_json::from_slice(&rewritten).expect("the rewrite is JSON");
            assert_eq!(rewritten, expected, "the rewrite is not the body with the model set");
        }
    }
    let Ok(request) = decoded else {
        return;
    };
    if request.messages.is_empty() {
        // Only a Responses request can have no messages (its history comes from
        // `previous_response_id`, which the server adds); no chat format sends none.
        return;
    }
    for provider in FORMATS {
        let Ok(encoded) = wire::encode_request(provider, &request, "fuzz-model") else {
            continue;
        };
        let decoded = wire::decode_request(provider, &encoded).unwrap_or_else(|error| {
            panic!("{provider:?} refuses its own encoder's request {encoded}: {error:?}")
        });
        let encoded_again =
            wire::encode_request(provider, &decoded, "fuzz-model").unwrap_or_else(|error| {
                panic!("{provider:?} refuses to encode what it decoded: {error:?}")
            });
        let decoded_again = wire::decode_request(provider, &encoded_again)
            .unwrap_or_else(|error| panic!("{provider:?} second trip refused: {error:?}"));
        if !results_answer_calls(&decoded) {
            // A result for no call keeps no link through a format that links by name.
            continue;
        }
        assert_eq!(
            without_generated_ids(decoded),
            without_generated_ids(decoded_again),
            "{provider:?}: a second trip through the format changed the request"
        );
    }
});
