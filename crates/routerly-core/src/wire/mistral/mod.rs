//! Mistral's chat API (`POST /v1/chat/completions`): OpenAI's shape with differences
//! that make a Mistral model refuse an OpenAI body.
//!
//! Mistral is its own [`WireFormat`](crate::wire::WireFormat) rather than OpenAI with
//! options because the server passes a client's body through untouched when client and
//! provider formats match. An OpenAI client's body sent raw to Mistral would be refused
//! with 422 for fields Mistral forbids (`stream_options`, `max_completion_tokens`, `seed`,
//! `user`, …) and for tool-call ids that are not 9 letters and
//! digits. As a format of its own, every OpenAI request goes through the canonical model
//! and this encoder, which writes what Mistral takes; the answers are OpenAI-shaped, so
//! decoding reuses [`crate::wire::openai`] after normalizing Mistral's extras.
//!
//! The differences handled here:
//! - Tool-call ids must match `^[a-zA-Z0-9]{9}$`. Ids of that form are kept; any other
//!   id is mapped to 9 characters by a hash, the same for a call and its result, so a
//!   conversation started on another provider continues on Mistral.
//! - `max_tokens` (not `max_completion_tokens`), `random_seed` (not `seed`), `tool_choice`
//!   `any` (not `required`), `top_k` kept; no `stream_options` (usage always ends the
//!   stream) and no `user`. `reasoning_effort` is Mistral's too and passes as it is.
//! - `safe_prompt` is Mistral's own switch with no canonical counterpart; it is left to
//!   Mistral's default (off).
//! - Answers: `content` may be a list of chunks, with `thinking` chunks (Magistral),
//!   which become reasoning; `finish_reason` `model_length` is a token-limit stop.
//! - Errors: Mistral's flat `{"object":"error","message",…}`, its 422 validation detail
//!   (`message.detail[]`), and the bare `{"message"}` of its gateway.

mod error;
mod request;
mod response;
mod stream;

pub use error::{decode_error, encode_error};
pub use request::{decode_request, encode_request, mistral_call_id};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};
