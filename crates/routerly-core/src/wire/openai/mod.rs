//! OpenAI Chat Completions wire format (`/v1/chat/completions`), for clients and for
//! OpenAI and OpenAI-compatible providers alike.
//!
//! In the order every wire module follows: request conversion ([`decode_request`],
//! [`encode_request`]), response conversion ([`decode_response`], [`encode_response`]),
//! stream conversion ([`StreamDecoder`], [`StreamEncoder`]) and error mapping
//! ([`decode_error`], [`encode_error`]).
//!
//! Client-side decoding is strict and names the field at fault; provider-side decoding
//! is lenient where OpenAI-compatible servers differ harmlessly from OpenAI.

mod error;
pub(crate) mod json;
mod request;
mod response;
mod stream;

pub use error::{decode_error, encode_error};
pub(crate) use request::fitted_user;
pub use request::{decode_request, decode_simple_request, encode_request};
pub(crate) use request::{
    document_filename, document_from_data_url, image_from_url, user_location,
};
pub use response::{decode_response, decode_usage_text, encode_response, stop_reason_name};
pub use stream::{StreamDecoder, StreamEncoder};
