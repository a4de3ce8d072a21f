//! OpenAI Responses API wire format (`/v1/responses`), for clients of Routerly's Responses
//! surface and for OpenAI models behind it.
//!
//! In the order every wire module follows: request conversion ([`decode_request`],
//! [`encode_request`]), response conversion ([`decode_response`], [`encode_response`]),
//! stream conversion ([`StreamDecoder`], [`StreamEncoder`]) and error mapping
//! ([`decode_error`], [`encode_error`], OpenAI's error shape).
//!
//! Conversation state (`previous_response_id`) is not this module's business: the server
//! keeps the canonical messages of each stored response and prepends them (see
//! [`history_items`] for the OpenAI pass-through case). An answer re-encoded for the client
//! repeats its request as OpenAI's does ([`Echo`]: the request fields, and the namespace
//! of a call of a `namespace` tool's member, which decoding flattened into a function
//! tool). Built-in tools (`web_search`, `file_search`, …) are carried by name
//! (`ChatRequest::hosted_tools`); [`openai_only_feature`] names the parameters only
//! OpenAI can serve so a request routed elsewhere gets a clear 400.

use super::openai::json;
mod echo;
mod request;
mod response;
mod stream;

pub use crate::wire::openai::{decode_error, encode_error};
pub use echo::{Echo, flat_name};
pub use request::{decode_request, encode_request, history_items, openai_only_feature};
pub use response::{decode_response, encode_response, encode_response_echoing, new_response_id};
pub use stream::{StreamDecoder, StreamEncoder};
