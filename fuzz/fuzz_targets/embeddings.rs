//! The embeddings conversions: an OpenAI embeddings request for every provider's API, and
//! every provider's answer back to OpenAI's shape (floats or base64).
//!
//! Input: a selector byte (the provider's embeddings API) and a JSON array of two values:
//! the client's request and the provider's answer. The request is one the proxy accepted
//! (an object with a string `model`), as `encode_request` requires; the answer is anything.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routerly_core::wire::embeddings::{self, EmbeddingsFormat};
use routerly_fuzz::split_selector;
use serde_json::Value;

const FORMATS: [EmbeddingsFormat; 4] = [
    EmbeddingsFormat::OpenAi,
    EmbeddingsFormat::Mistral,
    EmbeddingsFormat::Gemini,
    EmbeddingsFormat::Ollama,
];

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = split_selector(data) else {
        return;
    };
    let format = FORMATS[usize::from(selector) % FORMATS.len()];
    let Ok(Value::Array(pair)) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let [request, answer] = pair.as_slice() else {
        return;
    };
    let _ = embeddings::estimated_tokens(request);
    let _ = embeddings::wants_base64(request);
    if request.get("model").is_some_and(Value::is_string) {
        if let Ok(body) = embeddings::encode_request(format, request, "fuzz-embed") {
            assert!(
                body.is_object(),
                "{format:?}: the upstream body is an object"
            );
        }
    }
    if let Ok(mut decoded) = embeddings::decode_response(format, answer, request, "fuzz-embed") {
        assert_eq!(
            decoded.body.get("model").and_then(Value::as_str),
            Some("fuzz-embed"),
            "{format:?}: the answer names Routerly's model"
        );
        embeddings::encode_base64(&mut decoded.body);
    }
});
