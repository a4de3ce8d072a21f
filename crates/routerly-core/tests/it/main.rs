//! The core's integration tests, in one test binary (each module was a binary of its own):
//! the wire formats against fixture files (`tests/fixtures`), their round trips as property
//! tests, and the scan that keeps format rules inside `wire/`.

mod anthropic_wire;
mod format_matches;
mod gemini_wire;
mod ollama_mistral_wire;
mod openai_wire;
mod responses_wire;
mod wire_roundtrip;
