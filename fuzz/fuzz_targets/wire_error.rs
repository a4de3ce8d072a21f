//! Error decoders and encoders of every wire format.
//!
//! Input: a selector byte (the provider's format), two bytes of HTTP status and the error
//! body. Any body (JSON or not, any size) decodes to an error without panicking; an error
//! encoded for any client and decoded back in that format keeps its message and status.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerly_core::wire;
use routerly_fuzz::{FORMATS, format_of};

fuzz_target!(|data: &[u8]| {
    let [selector, high, low, body @ ..] = data else {
        return;
    };
    let status = u16::from_be_bytes([*high, *low]);
    let error = wire::decode_error(format_of(*selector), status, body);
    for client in FORMATS {
        let encoded = wire::encode_error(client, &error);
        let bytes = serde_json::to_vec(&encoded).expect("a JSON value serializes");
        let decoded = wire::decode_error(client, error.kind.status(), &bytes);
        assert_eq!(
            decoded.kind.status(),
            error.kind.status(),
            "{client:?}: the error's status changed in a round trip"
        );
        if !error.message.trim().is_empty() {
            assert_eq!(
                decoded.message, error.message,
                "{client:?}: the error's message changed in a round trip"
            );
        }
    }
});
