//! The `llm` policy's conversation with its routing model: the prompt it receives and the
//! answer it must give, `{"routing":[{"model","point","reason"?}]}`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The marker the routing model's system prompt carries; mocks recognise routing calls by it.
pub const ANSWER_SHAPE: &str =
    r#"{"routing":[{"model":"<model id>","point":<number from 0 to 1>}]}"#;

/// A candidate as the routing model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutingCandidate<'a> {
    /// The model id.
    pub model: &'a str,
    /// Its routing prompt: what it is good at.
    pub description: &'a str,
}

/// The system prompt of a routing call.
pub fn system_prompt(include_reason: bool) -> String {
    let reason = if include_reason {
        r#" Add a short "reason" string to each entry."#
    } else {
        ""
    };
    format!(
        "You route a user's message to the best language model. Score every candidate from 0 \
         (unsuitable) to 1 (ideal) by how well its description fits the message.{reason} \
         Answer with JSON only, in exactly this shape, listing every candidate: {ANSWER_SHAPE}"
    )
}

/// The user turn of a routing call: one line of JSON with the candidates, the message cut
/// to `max_chars` characters, and earlier choices of this conversation when memory is on.
pub fn user_prompt(
    candidates: &[RoutingCandidate<'_>],
    message: &str,
    max_chars: usize,
    recent_choices: &[String],
) -> String {
    let message: String = message.chars().take(max_chars).collect();
    let mut body = json!({ "candidates": candidates, "message": message });
    if !recent_choices.is_empty() {
        body["recent_choices"] = json!(recent_choices);
    }
    body.to_string()
}

/// The user turn asking once more after an answer that could not be used.
pub fn repair_prompt(original: &str, problem: &str) -> String {
    format!(
        "{original}\nYour previous answer could not be used ({problem}). Answer again with the JSON object only."
    )
}

/// One entry of the routing model's answer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RoutingChoice {
    /// The model id.
    pub model: String,
    /// Its points.
    pub point: f64,
    /// Why, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Reads the routing model's answer: the JSON object in it (code fences and text around it
/// tolerated), whose `routing` array lists `{model, point, reason?}`.
pub fn parse_answer(text: &str) -> Result<Vec<RoutingChoice>, String> {
    let start = text.find('{').ok_or("the answer holds no JSON object")?;
    let end = text.rfind('}').ok_or("the answer holds no JSON object")?;
    if end < start {
        return Err("the answer holds no JSON object".to_owned());
    }
    let value: Value = serde_json::from_str(&text[start..=end])
        .map_err(|error| format!("the answer is not valid JSON: {error}"))?;
    let entries = value
        .get("routing")
        .and_then(Value::as_array)
        .ok_or("the answer has no `routing` array")?;
    let mut choices = Vec::with_capacity(entries.len());
    for entry in entries {
        let model = entry
            .get("model")
            .and_then(Value::as_str)
            .ok_or("a `routing` entry has no `model` string")?;
        let point = match entry.get("point") {
            Some(Value::Number(number)) => number.as_f64(),
            Some(Value::String(text)) => text.trim().parse().ok(),
            _ => None,
        }
        .filter(|point: &f64| point.is_finite())
        .ok_or_else(|| format!("the entry for `{model}` has no numeric `point`"))?;
        choices.push(RoutingChoice {
            model: model.to_owned(),
            point,
            reason: entry
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
    if choices.is_empty() {
        return Err("the `routing` array is empty".to_owned());
    }
    Ok(choices)
}

/// Scores for `model_ids` from `choices`: points in [0, 1] as given, a larger scale (such as
/// 0–10) divided by its largest point; a candidate the answer leaves out scores 0.
pub fn scores(model_ids: &[&str], choices: &[RoutingChoice]) -> Vec<f64> {
    let largest = choices
        .iter()
        .map(|choice| choice.point)
        .fold(0f64, f64::max);
    let scale = if largest > 1.0 { largest } else { 1.0 };
    model_ids
        .iter()
        .map(|model_id| {
            choices
                .iter()
                .find(|choice| choice.model == *model_id)
                .map_or(0.0, |choice| (choice.point / scale).clamp(0.0, 1.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_through_fences_and_scales() {
        let text = "Sure!\n```json\n{\"routing\":[{\"model\":\"a\",\"point\":8},{\"model\":\"b\",\"point\":\"4\",\"reason\":\"meh\"}]}\n```";
        let choices = parse_answer(text).expect("a fenced answer parses");
        assert_eq!(choices[1].reason.as_deref(), Some("meh"));
        // Largest point 8 > 1: scale 0–8, so a = 1, b = 0.5, c (left out) = 0.
        assert_eq!(scores(&["a", "b", "c"], &choices), vec![1.0, 0.5, 0.0]);
    }

    #[test]
    fn unusable_answers_say_why() {
        for (text, expected) in [
            ("no json here", "no JSON object"),
            ("{\"routing\": 3}", "no `routing` array"),
            ("{\"routing\": [{\"point\": 1}]}", "no `model`"),
            ("{\"routing\": [{\"model\": \"a\"}]}", "numeric `point`"),
            ("{\"routing\": [}", "not valid JSON"),
        ] {
            let error = parse_answer(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn the_user_prompt_is_one_line_of_json_with_the_message_cut() {
        let prompt = user_prompt(
            &[RoutingCandidate {
                model: "a",
                description: "code",
            }],
            "abcdef",
            3,
            &["a".to_owned()],
        );
        assert!(!prompt.contains('\n'));
        let value: Value = serde_json::from_str(&prompt).expect("JSON");
        assert_eq!(value["message"], "abc");
        assert_eq!(value["candidates"][0]["description"], "code");
        assert_eq!(value["recent_choices"][0], "a");
        assert!(system_prompt(true).contains("\"routing\""));
    }
}
