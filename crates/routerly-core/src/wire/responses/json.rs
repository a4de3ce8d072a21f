//! Path-tracking readers over `serde_json` values for the Responses decoder, so every
//! decode error names the field at fault (`input[2].call_id`), in OpenAI's words.

use serde_json::{Map, Value};

use crate::canonical::DecodeError;

pub(super) fn field_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn wrong_type(path: &str, expected: &str, value: &Value) -> DecodeError {
    DecodeError::at(
        path,
        format!(
            "Invalid type for '{path}': expected {expected}, but got {} instead.",
            describe(value)
        ),
    )
}

pub(super) fn missing(path: &str) -> DecodeError {
    DecodeError::at(path, format!("Missing required parameter: '{path}'."))
}

pub(super) fn get<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|value| !value.is_null())
}

pub(super) fn as_object<'a>(
    value: &'a Value,
    path: &str,
) -> Result<&'a Map<String, Value>, DecodeError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path, "an object", value))
}

pub(super) fn as_array<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], DecodeError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong_type(path, "an array", value))
}

pub(super) fn as_str<'a>(value: &'a Value, path: &str) -> Result<&'a str, DecodeError> {
    value
        .as_str()
        .ok_or_else(|| wrong_type(path, "a string", value))
}

pub(super) fn required_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<&'a str, DecodeError> {
    let path = field_path(parent, key);
    let value = get(map, key).ok_or_else(|| missing(&path))?;
    as_str(value, &path)
}

pub(super) fn optional_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<&'a str>, DecodeError> {
    get(map, key)
        .map(|value| as_str(value, &field_path(parent, key)))
        .transpose()
}

pub(super) fn optional_bool(
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

pub(super) fn optional_f64(
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

pub(super) fn optional_u32(
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
