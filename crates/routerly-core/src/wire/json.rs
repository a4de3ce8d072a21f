//! Small readers for untyped JSON that name the field path in every error, so a client
//! learns exactly which part of its body is wrong (`messages[2].content[0].tool_use_id`).
//! Shared by the wire formats whose errors use this wording (OpenAI's has its own).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::canonical::DecodeError;

/// JSON object, as `serde_json` names it.
pub(crate) type Object = Map<String, Value>;

/// The path of `key` inside the value at `path` (the root has the empty path). Paths are
/// built for every message and part a request holds, so they are joined without `format!`
/// (its machinery was most of their cost).
pub(crate) fn field_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        return key.to_owned();
    }
    let mut joined = String::with_capacity(path.len() + 1 + key.len());
    joined.push_str(path);
    joined.push('.');
    joined.push_str(key);
    joined
}

/// A field's value; absent and `null` both count as not given, as in Anthropic's API.
pub(crate) fn get<'a>(object: &'a Object, key: &str) -> Option<&'a Value> {
    member(object, key).filter(|value| !value.is_null())
}

/// Objects with at most this many members are searched in order rather than by hash.
const SCAN_MEMBERS: usize = 12;

/// The member `key` of `object`. A request's objects are small and a decoder asks each for
/// many optional fields, most absent: comparing the few keys costs a fraction of hashing
/// the name asked for (SipHash per look-up was a third of a plain call's request decoding).
pub(crate) fn member<'a>(object: &'a Object, key: &str) -> Option<&'a Value> {
    if object.len() <= SCAN_MEMBERS {
        object
            .iter()
            .find_map(|(name, value)| (name == key).then_some(value))
    } else {
        object.get(key)
    }
}

/// A field that must be present.
pub(crate) fn require<'a>(
    object: &'a Object,
    key: &str,
    path: &str,
) -> Result<&'a Value, DecodeError> {
    get(object, key).ok_or_else(|| {
        let param = field_path(path, key);
        DecodeError::at(&param, format!("`{param}`: field required"))
    })
}

fn wrong_type(param: &str, expected: &str) -> DecodeError {
    DecodeError::at(param, format!("`{param}` must be {expected}"))
}

/// The value as an object.
pub(crate) fn as_object<'a>(value: &'a Value, param: &str) -> Result<&'a Object, DecodeError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(param, "an object"))
}

/// The value as an array.
pub(crate) fn as_array<'a>(value: &'a Value, param: &str) -> Result<&'a [Value], DecodeError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong_type(param, "an array"))
}

/// The value as a string.
pub(crate) fn as_str<'a>(value: &'a Value, param: &str) -> Result<&'a str, DecodeError> {
    value.as_str().ok_or_else(|| wrong_type(param, "a string"))
}

/// A required string field.
/// `object[key]` as a string that is a bare media type (see [`crate::wire::media`]).
pub(crate) fn require_media_type<'a>(
    object: &'a Object,
    key: &str,
    path: &str,
) -> Result<&'a str, DecodeError> {
    let value = require_str(object, key, path)?;
    crate::wire::media::check_media_type(value)
        .map_err(|message| DecodeError::at(field_path(path, key), message))?;
    Ok(value)
}

pub(crate) fn require_str<'a>(
    object: &'a Object,
    key: &str,
    path: &str,
) -> Result<&'a str, DecodeError> {
    as_str(require(object, key, path)?, &field_path(path, key))
}

/// An optional string field.
pub(crate) fn optional_str<'a>(
    object: &'a Object,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, DecodeError> {
    get(object, key)
        .map(|value| as_str(value, &field_path(path, key)))
        .transpose()
}

/// An optional boolean field.
pub(crate) fn optional_bool(
    object: &Object,
    key: &str,
    path: &str,
) -> Result<Option<bool>, DecodeError> {
    get(object, key)
        .map(|value| {
            value
                .as_bool()
                .ok_or_else(|| wrong_type(&field_path(path, key), "a boolean"))
        })
        .transpose()
}

/// An optional number field.
pub(crate) fn optional_f64(
    object: &Object,
    key: &str,
    path: &str,
) -> Result<Option<f64>, DecodeError> {
    get(object, key)
        .map(|value| {
            value
                .as_f64()
                .ok_or_else(|| wrong_type(&field_path(path, key), "a number"))
        })
        .transpose()
}

/// An optional non-negative integer field that fits in `u32`.
pub(crate) fn optional_u32(
    object: &Object,
    key: &str,
    path: &str,
) -> Result<Option<u32>, DecodeError> {
    get(object, key)
        .map(|value| {
            value
                .as_u64()
                .and_then(|number| u32::try_from(number).ok())
                .ok_or_else(|| wrong_type(&field_path(path, key), "a non-negative integer"))
        })
        .transpose()
}

/// A token limit of at least 1, or none. A limit of 0 asks for an answer of no tokens, which
/// every provider refuses: each decoder refuses it in its own words (`message`), so that no
/// encoder is ever handed a 0 to write.
pub(crate) fn nonzero_limit(
    limit: Option<u32>,
    field: &str,
    message: &str,
) -> Result<Option<u32>, DecodeError> {
    match limit {
        Some(0) => Err(DecodeError::at(field, message)),
        limit => Ok(limit),
    }
}

/// A non-negative integer from a provider's usage object; anything else counts as 0,
/// because a missing or odd counter must not fail an answer that was already paid for.
pub(crate) fn lenient_u64(object: &Object, key: &str) -> u64 {
    member(object, key).and_then(Value::as_u64).unwrap_or(0)
}

/// The path of element `index` of the array at `path`.
pub(crate) fn index_path(path: &str, index: usize) -> String {
    let mut joined = Vec::with_capacity(path.len() + 8);
    joined.extend_from_slice(path.as_bytes());
    joined.push(b'[');
    crate::json_text::decimal(&mut joined, index as u64);
    joined.push(b']');
    String::from_utf8(joined).expect("a path and digits are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_as_format_would() {
        assert_eq!(field_path("", "messages"), "messages");
        assert_eq!(field_path("messages[2]", "content"), "messages[2].content");
        for index in [0, 7, 10, 99, 1234, usize::MAX] {
            assert_eq!(index_path("messages", index), format!("messages[{index}]"));
        }
        assert_eq!(index_path("", 3), "[3]");
    }
}

/// A message of a simple reader (`decode_simple_request` of the chat formats): a role and
/// text content, nothing else (any other member fails the reading). A role with an escape
/// fails it too: only a borrowed string is taken.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextMessage<'a> {
    pub role: &'a str,
    #[serde(borrow)]
    pub content: Cow<'a, str>,
}

/// A member a simple reader reads that may be absent, `null` or a value: `present` tells
/// an absent member from a `null` one (which `Option` reads alike).
pub(crate) struct Present<T> {
    pub present: bool,
    pub value: Option<T>,
}

impl<T> Default for Present<T> {
    fn default() -> Self {
        Present {
            present: false,
            value: None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Present<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Present {
            present: true,
            value: Option::deserialize(deserializer)?,
        })
    }
}

/// Where `part` lies in `text`, when it is a piece of it (a string serde borrowed from the
/// text); `None` for a string serde made (one with an escape), which is an allocation of
/// its own and so never within `text`.
pub(crate) fn place_in(text: &str, part: &str) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= text.len()).then_some(start..end)
}
