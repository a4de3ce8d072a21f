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
//! [`history_items`] for the OpenAI pass-through case). Built-in tools (`web_search`,
//! `file_search`, …) only OpenAI can run: decoding skips them, and
//! [`openai_only_feature`] names them so a request routed elsewhere gets a clear 400.

use super::openai::json;
mod request;
mod response;
mod stream;

pub use crate::wire::openai::{decode_error, encode_error};
pub use request::{decode_request, encode_request, history_items, openai_only_feature};
pub use response::{decode_response, encode_response, new_response_id};
pub use stream::{StreamDecoder, StreamEncoder};
