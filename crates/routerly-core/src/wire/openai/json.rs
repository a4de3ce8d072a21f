//! Path-tracking readers over `serde_json` values, so every decode error names the
//! field at fault (`messages[2].tool_call_id`) and says what was expected.

use serde_json::{Map, Value};

use crate::canonical::DecodeError;

pub(crate) use crate::wire::json::{field_path, index_path};

/// "a string", "an array", … for error messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The error for a value of the wrong JSON type.
pub(crate) fn wrong_type(path: &str, expected: &str, value: &Value) -> DecodeError {
    DecodeError::at(
        path,
        format!(
            "Invalid type for '{path}': expected {expected}, but got {} instead.",
            describe(value)
        ),
    )
}

/// The error for a required field that is absent or null.
pub(crate) fn missing(path: &str) -> DecodeError {
    DecodeError::at(path, format!("Missing required parameter: '{path}'."))
}

/// The field `key`, treating `null` as absent (OpenAI clients send both).
pub(crate) fn get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    crate::wire::json::member(map, key).filter(|value| !value.is_null())
}

pub(crate) fn as_object<'a>(
    value: &'a Value,
    path: &str,
) -> Result<&'a Map<String, Value>, DecodeError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path, "an object", value))
}

pub(crate) fn as_array<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], DecodeError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong_type(path, "an array", value))
}

pub(crate) fn as_str<'a>(value: &'a Value, path: &str) -> Result<&'a str, DecodeError> {
    value
        .as_str()
        .ok_or_else(|| wrong_type(path, "a string", value))
}

pub(crate) fn required_object<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<&'a Map<String, Value>, DecodeError> {
    // The path is only spelled out for an error: the success path allocates nothing.
    let value = get(map, key).ok_or_else(|| missing(&field_path(parent, key)))?;
    value
        .as_object()
        .ok_or_else(|| wrong_type(&field_path(parent, key), "an object", value))
}

pub(crate) fn required_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<&'a str, DecodeError> {
    let value = get(map, key).ok_or_else(|| missing(&field_path(parent, key)))?;
    value
        .as_str()
        .ok_or_else(|| wrong_type(&field_path(parent, key), "a string", value))
}

pub(crate) fn optional_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<&'a str>, DecodeError> {
    get(map, key)
        .map(|value| {
            value
                .as_str()
                .ok_or_else(|| wrong_type(&field_path(parent, key), "a string", value))
        })
        .transpose()
}

pub(crate) fn optional_bool(
    map: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<bool>, DecodeError> {
    get(map, key)
        .map(|value| {
            value
                .as_bool()
                .ok_or_else(|| wrong_type(&field_path(parent, key), "a boolean", value))
        })
        .transpose()
}

pub(crate) fn optional_f64(
    map: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<f64>, DecodeError> {
    get(map, key)
        .map(|value| {
            value
                .as_f64()
                .ok_or_else(|| wrong_type(&field_path(parent, key), "a number", value))
        })
        .transpose()
}

pub(crate) fn optional_i64(
    map: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<i64>, DecodeError> {
    get(map, key)
        .map(|value| {
            value
                .as_i64()
                .ok_or_else(|| wrong_type(&field_path(parent, key), "an integer", value))
        })
        .transpose()
}

pub(crate) fn optional_u32(
    map: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<u32>, DecodeError> {
    get(map, key)
        .map(|value| {
            value
                .as_u64()
                .and_then(|number| u32::try_from(number).ok())
                .ok_or_else(|| {
                    wrong_type(
                        &field_path(parent, key),
                        "a non-negative integer below 2^32",
                        value,
                    )
                })
        })
        .transpose()
}

/// A token count from a provider; absent, null or malformed counts read as 0 because a
/// provider's odd usage block must not fail an otherwise good answer.
pub(crate) fn token_count(map: Option<&Map<String, Value>>, key: &str) -> u64 {
    map.and_then(|map| crate::wire::json::member(map, key))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}
