//! Complete answers: Gemini's `GenerateContentResponse` to [`ChatResponse`], and a
//! [`ChatResponse`] to the `GenerateContentResponse` a Gemini client reads.

use serde_json::{Map, Value, json};

use super::json::{Object, get};
use super::{
    args_object, generated_call_id, stop_reason_from_name, stop_reason_name, usage_from_gemini,
    usage_to_gemini,
};
use crate::canonical::{
    ChatResponse, Citation, ContentPart, DecodeError, StopReason, Usage, WebPage, WebSearchCall,
    WebSources,
};

/// Decodes Gemini's whole answer. A prompt blocked before any candidate (`promptFeedback`)
/// is an empty answer stopped by the content filter, as Gemini's own SDK presents it.
pub fn decode_response(body: &Value) -> Result<ChatResponse, DecodeError> {
    let body_map = body
        .as_object()
        .ok_or_else(|| DecodeError::new("The provider's answer is not a JSON object."))?;
    let candidate = first_candidate(body_map);
    let blocked = candidate.is_none() && get(body_map, "promptFeedback").is_some();
    if candidate.is_none() && !blocked {
        return Err(DecodeError::at(
            "candidates",
            "The provider's answer has no candidates.",
        ));
    }
    let content = candidate.map(decode_candidate_parts).unwrap_or_default();
    let web_sources = candidate
        .and_then(|candidate| get(candidate, "groundingMetadata"))
        .and_then(Value::as_object)
        .map(|metadata| grounding_sources(metadata, &text_parts(candidate)))
        .unwrap_or_default();
    let called_tools = content
        .iter()
        .any(|part| matches!(part, ContentPart::ToolCall { .. }));
    let stop_reason = if blocked {
        Some(StopReason::ContentFilter)
    } else {
        candidate
            .and_then(|candidate| get(candidate, "finishReason"))
            .and_then(Value::as_str)
            .map(|name| stop_reason_from_name(name, called_tools))
    };
    Ok(ChatResponse {
        id: get(body_map, "responseId")
            .and_then(Value::as_str)
            .map_or_else(
                || format!("gemini-{}", uuid::Uuid::new_v4().simple()),
                str::to_owned,
            ),
        model: get(body_map, "modelVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        content,
        stop_reason,
        stop_sequence: None,
        usage: get(body_map, "usageMetadata")
            .and_then(Value::as_object)
            .map(usage_from_gemini)
            .unwrap_or_default(),
        created: chrono::Utc::now().timestamp(),
        web_sources,
    })
}

/// The answer's text parts (not thoughts), each with its index among the candidate's
/// parts, in order: the texts that [`grounding_sources`] offsets count in.
pub(super) fn text_parts(candidate: Option<&Object>) -> Vec<(usize, &str)> {
    candidate
        .into_iter()
        .flat_map(candidate_parts)
        .enumerate()
        .filter(|(_, part)| get(part, "thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|(index, part)| Some((index, get(part, "text")?.as_str()?)))
        .collect()
}

/// What Google Search grounding found for an answer (a candidate's `groundingMetadata`):
/// each of `webSearchQueries` as a search, and each `groundingSupports` segment as a
/// citation of each chunk it names. Gemini does not say which query found which page, so
/// the pages (`groundingChunks`) go with the first search. A segment's `startIndex` and
/// `endIndex` are UTF-8 byte offsets into the text of part `partIndex` (into the answer's
/// texts joined when there is none), turned into characters of the answer's texts joined
/// (`texts`, see [`text_parts`]).
pub(super) fn grounding_sources(metadata: &Object, texts: &[(usize, &str)]) -> WebSources {
    let pages: Vec<Option<WebPage>> = (get(metadata, "groundingChunks").and_then(Value::as_array))
        .into_iter()
        .flatten()
        .map(|chunk| {
            let web = chunk.get("web")?;
            Some(WebPage {
                url: web.get("uri")?.as_str()?.to_owned(),
                title: web.get("title").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect();
    let searches = (get(metadata, "webSearchQueries").and_then(Value::as_array))
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .enumerate()
        .map(|(index, query)| WebSearchCall {
            id: format!("google_search_{index}"),
            query: query.to_owned(),
            results: if index == 0 {
                pages.iter().flatten().cloned().collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    let mut citations = Vec::new();
    for support in (get(metadata, "groundingSupports").and_then(Value::as_array))
        .into_iter()
        .flatten()
    {
        let segment = &support["segment"];
        let part = segment["partIndex"]
            .as_u64()
            .and_then(|index| usize::try_from(index).ok());
        let offset = |name: &str| {
            let bytes = segment[name].as_u64().unwrap_or(0);
            char_offset(texts, part, usize::try_from(bytes).unwrap_or(usize::MAX))
        };
        let (start, end) = (offset("startIndex"), offset("endIndex"));
        if end <= start {
            continue;
        }
        for chunk in support["groundingChunkIndices"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let page = chunk
                .as_u64()
                .and_then(|index| pages.get(usize::try_from(index).ok()?))
                .and_then(Option::as_ref);
            if let Some(page) = page {
                citations.push(Citation {
                    page: page.clone(),
                    start,
                    end,
                });
            }
        }
    }
    WebSources {
        searches,
        citations,
    }
}

/// The character offset in `texts` joined of `bytes` into part `part`'s text (into the
/// texts joined when `part` is `None` or names no text part, as in a stream, whose part
/// indexes count within one chunk); an offset inside a character counts to its start, and
/// one past the end to the end.
fn char_offset(texts: &[(usize, &str)], part: Option<usize>, bytes: usize) -> usize {
    fn chars_in(text: &str, bytes: usize) -> usize {
        let mut end = bytes.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].chars().count()
    }
    let mut chars = 0;
    if let Some(part) = part.filter(|part| texts.iter().any(|(index, _)| index == part)) {
        for (index, text) in texts {
            if *index == part {
                return chars + chars_in(text, bytes);
            }
            chars += text.chars().count();
        }
    }
    let mut remaining = bytes;
    for (_, text) in texts {
        if remaining <= text.len() {
            return chars + chars_in(text, remaining);
        }
        remaining -= text.len();
        chars += text.chars().count();
    }
    chars
}

/// The first candidate, as an object.
pub(super) fn first_candidate(body_map: &Object) -> Option<&Object> {
    get(body_map, "candidates")
        .and_then(Value::as_array)
        .and_then(|candidates| candidates.first())
        .and_then(Value::as_object)
}

/// The parts of a candidate's content in canonical form, consecutive text merged.
fn decode_candidate_parts(candidate: &Object) -> Vec<ContentPart> {
    let mut content: Vec<ContentPart> = Vec::new();
    for part in candidate_parts(candidate) {
        match decode_part(part) {
            Some(ContentPart::Text { text }) => match content.last_mut() {
                Some(ContentPart::Text { text: previous }) => previous.push_str(&text),
                _ => content.push(ContentPart::Text { text }),
            },
            Some(ContentPart::Thinking { text, signature }) => match content.last_mut() {
                Some(ContentPart::Thinking {
                    text: previous,
                    signature: previous_signature,
                }) if previous_signature.is_none() => {
                    previous.push_str(&text);
                    *previous_signature = signature;
                }
                _ => content.push(ContentPart::Thinking { text, signature }),
            },
            Some(other) => content.push(other),
            None => {}
        }
    }
    content
}

/// The `parts` of a candidate's `content`.
pub(super) fn candidate_parts(candidate: &Object) -> impl Iterator<Item = &Object> {
    get(candidate, "content")
        .and_then(|content| content.get("parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// One response part in canonical form; parts Routerly does not model (executable code,
/// a bare signature) give `None`.
pub(super) fn decode_part(part: &Object) -> Option<ContentPart> {
    if let Some(call) = get(part, "functionCall").and_then(Value::as_object) {
        return Some(ContentPart::ToolCall {
            id: get(call, "id")
                .and_then(Value::as_str)
                .map_or_else(generated_call_id, str::to_owned),
            name: get(call, "name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arguments: get(call, "args").map_or_else(|| "{}".to_owned(), Value::to_string),
        });
    }
    let text = get(part, "text").and_then(Value::as_str)?;
    if get(part, "thought").and_then(Value::as_bool) == Some(true) {
        return Some(ContentPart::Thinking {
            text: text.to_owned(),
            signature: get(part, "thoughtSignature")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
    Some(ContentPart::text(text))
}

/// Encodes a [`ChatResponse`] as the `GenerateContentResponse` a Gemini client reads.
pub fn encode_response(response: &ChatResponse) -> Value {
    let parts: Vec<Value> = response.content.iter().filter_map(encode_part).collect();
    let finish_reason = stop_reason_name(
        response
            .stop_reason
            .as_ref()
            .unwrap_or(&StopReason::EndTurn),
    );
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": finish_reason,
            "index": 0,
        }],
        "usageMetadata": usage_to_gemini(&response.usage),
        "modelVersion": response.model,
        "responseId": response.id,
    })
}

/// One canonical part as a Gemini response part.
pub(super) fn encode_part(part: &ContentPart) -> Option<Value> {
    match part {
        ContentPart::Text { text } => Some(json!({"text": text})),
        ContentPart::Thinking { text, signature } => {
            let mut thought = Map::new();
            thought.insert("text".into(), Value::from(text.as_str()));
            thought.insert("thought".into(), Value::Bool(true));
            if let Some(signature) = signature {
                thought.insert("thoughtSignature".into(), Value::from(signature.as_str()));
            }
            Some(Value::Object(thought))
        }
        ContentPart::ToolCall {
            id,
            name,
            arguments,
        } => {
            Some(json!({"functionCall": {"id": id, "name": name, "args": args_object(arguments)}}))
        }
        ContentPart::Image { .. }
        | ContentPart::Document { .. }
        | ContentPart::ToolResult { .. }
        | ContentPart::Opaque { .. } => None,
    }
}

/// Usage as Gemini reports it on a stream chunk.
pub(super) fn usage_metadata(usage: &Usage) -> Value {
    usage_to_gemini(usage)
}
