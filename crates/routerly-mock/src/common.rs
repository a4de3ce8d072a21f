//! What both mock providers share: test directives, the deterministic answer, the token rule
//! and the pieces streams are cut into.

use serde_json::{Map, Value};

/// Test directives read from the text of the caller's last turn (`[mock:key=value]` or `[mock:key]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub status: Option<u16>,
    pub delay_ms: u64,
    pub chunk_delay_ms: u64,
    pub die_after: Option<usize>,
    pub garbage: bool,
    pub cached: u64,
    pub cache_write: u64,
    pub parallel: bool,
    /// `[mock:tool=NAME]`: the tool to call, when the request offers it (agents offer many).
    pub tool: Option<String>,
    /// `[mock:arg.KEY=VALUE]`, in order: the call's arguments are exactly these strings
    /// instead of the schema-derived ones.
    pub args: Vec<(String, String)>,
    /// `[mock:web_search=QUERY]`: when the request offers the provider's hosted web search
    /// (Anthropic), the answer searches the web for QUERY and says what the page it found
    /// says, citing it (before any tool call).
    pub web_search: Option<String>,
}

const DIRECTIVE_OPEN: &str = "[mock:";

impl Directives {
    /// Reads every directive in `text`; unknown or malformed ones are ignored.
    pub(crate) fn parse(text: &str) -> Self {
        let mut directives = Directives::default();
        // A routing request quotes the client's message: its directives are for the
        // client's model, not for the routing model.
        if !text.contains(DIRECTIVE_OPEN) || is_routing_request(text) {
            return directives;
        }
        for body in directive_bodies(text) {
            let (key, value) = match body.split_once('=') {
                Some((key, value)) => (key.trim(), value.trim()),
                None => (body.trim(), ""),
            };
            match key {
                "status" => {
                    directives.status = value.parse().ok().filter(|s| (100..1000).contains(s))
                }
                "delay_ms" => directives.delay_ms = value.parse().unwrap_or(0),
                "chunk_delay_ms" => directives.chunk_delay_ms = value.parse().unwrap_or(0),
                "die_after" => directives.die_after = value.parse().ok(),
                "garbage" => directives.garbage = true,
                "cached" => directives.cached = value.parse().unwrap_or(0),
                "cache_write" => directives.cache_write = value.parse().unwrap_or(0),
                "parallel" => directives.parallel = true,
                "tool" if !value.is_empty() => directives.tool = Some(value.to_owned()),
                "web_search" if !value.is_empty() => directives.web_search = Some(value.to_owned()),
                _ => {
                    if let Some(name) = key.strip_prefix("arg.").filter(|name| !name.is_empty()) {
                        directives.args.push((name.to_owned(), value.to_owned()));
                    }
                }
            }
        }
        directives
    }
}

/// The inside of each `[mock:…]` in `text`, in order.
fn directive_bodies(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(DIRECTIVE_OPEN)?;
        let after_open = &rest[start + DIRECTIVE_OPEN.len()..];
        let end = after_open.find(']')?;
        rest = &after_open[end + 1..];
        Some(&after_open[..end])
    })
}

/// `text` without its directives, whitespace collapsed to single spaces.
pub(crate) fn strip_directives(text: &str) -> String {
    let mut without = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(DIRECTIVE_OPEN) {
        let after_open = &rest[start + DIRECTIVE_OPEN.len()..];
        let Some(end) = after_open.find(']') else {
            break;
        };
        without.push_str(&rest[..start]);
        without.push(' ');
        rest = &after_open[end + 1..];
    }
    without.push_str(rest);
    without.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The token rule: a quarter of the counted bytes, rounded up.
pub(crate) fn tokens_for_bytes(bytes: usize) -> u64 {
    bytes.div_ceil(4) as u64
}

/// Bytes of the compact JSON of `value`, as the token rule counts tool definitions and inputs.
pub(crate) fn json_bytes(value: &Value) -> usize {
    serde_json::to_vec(value)
        .map(|bytes| bytes.len())
        .unwrap_or(0)
}

/// Tool arguments built from a JSON schema: each property gets a fixed value by its type.
pub(crate) fn arguments_from_schema(schema: Option<&Value>) -> Value {
    let mut arguments = Map::new();
    if let Some(Value::Object(properties)) = schema.and_then(|schema| schema.get("properties")) {
        for (name, property) in properties {
            arguments.insert(name.clone(), value_for_property(property));
        }
    }
    Value::Object(arguments)
}

fn value_for_property(property: &Value) -> Value {
    let type_name = match property.get("type") {
        Some(Value::String(type_name)) => Some(type_name.as_str()),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    };
    match type_name {
        Some("string") => Value::from("Paris"),
        Some("number") | Some("integer") => Value::from(1),
        Some("boolean") => Value::Bool(true),
        _ => Value::Null,
    }
}

/// A tool the request offers.
pub(crate) struct ToolSpec<'a> {
    pub name: &'a str,
    pub schema: Option<&'a Value>,
    /// The group it belongs to (a Responses `namespace` tool), which its calls name.
    pub namespace: Option<&'a str>,
}

impl ToolSpec<'_> {
    /// Whether `name` names this tool: its name, or `namespace.name` for a namespaced one.
    fn is_named(&self, name: &str) -> bool {
        match self.namespace {
            None => self.name == name,
            Some(namespace) => {
                name.strip_prefix(namespace)
                    .and_then(|rest| rest.strip_prefix('.'))
                    == Some(self.name)
            }
        }
    }
}

/// What the request allows or forces about tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToolChoice<'a> {
    Auto,
    None,
    Named(&'a str),
}

/// The provider-neutral view of a request that the deterministic answer depends on.
pub(crate) struct Conversation<'a> {
    pub provider: &'static str,
    pub model: &'a str,
    pub tools: Vec<ToolSpec<'a>>,
    pub tool_choice: ToolChoice<'a>,
    /// The last message is the caller's and carries no tool results.
    pub last_is_plain_user: bool,
    /// Texts of the tool results in the caller's last turn, when it carries any.
    pub tool_results: Option<Vec<String>>,
    /// Text of the last user message (directives still in it).
    pub user_text: String,
    /// Images in the last user message.
    pub images: usize,
    /// JSON output was requested.
    pub json_output: bool,
    pub directives: Directives,
}

/// A tool call the mock answers with.
pub(crate) struct ToolCall {
    pub name: String,
    pub arguments: Value,
    /// The namespace of a namespaced tool.
    pub namespace: Option<String>,
}

/// The deterministic answer.
pub(crate) enum Answer {
    Text(String),
    ToolCalls(Vec<ToolCall>),
}

/// Whether `text` is a routing model's request: a user turn whose first line is a JSON
/// object with `candidates` (Routerly's `llm` routing policy).
pub(crate) fn is_routing_request(text: &str) -> bool {
    text.trim_start().starts_with("{\"candidates\":")
}

/// The routing answer (rule 0 of the crate documentation): for each candidate, the share of
/// its description's words (three letters or more, lowercased) found in the message, with
/// two decimals, as `{"routing":[{"model","point","reason"}]}`. With `[mock:routing_invalid]`
/// in the message, a first ask (a one-line turn) gets plain text instead, so the caller's
/// repair attempt (a longer turn) is what succeeds.
fn routing_answer(text: &str) -> Option<String> {
    let first_line = text.trim_start().lines().next()?;
    let request: Value = serde_json::from_str(first_line).ok()?;
    let message = request.get("message")?.as_str()?;
    if message.contains("[mock:routing_invalid]") && text.trim().lines().count() == 1 {
        return Some("I would pick the first model.".to_owned());
    }
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|word| word.chars().count() >= 3)
            .map(str::to_lowercase)
            .collect()
    };
    let message_words = words(message);
    let entries: Vec<Value> = request
        .get("candidates")?
        .as_array()?
        .iter()
        .filter_map(|candidate| {
            let model = candidate.get("model")?.as_str()?;
            let description = words(candidate.get("description").and_then(Value::as_str).unwrap_or(""));
            let shared = description
                .iter()
                .filter(|word| message_words.contains(word))
                .count();
            let point = if description.is_empty() {
                0.0
            } else {
                (shared as f64 / description.len() as f64 * 100.0).round() / 100.0
            };
            Some(serde_json::json!({
                "model": model,
                "point": point,
                "reason": format!("{shared} of {} description words in the message", description.len()),
            }))
        })
        .collect();
    Some(serde_json::json!({ "routing": entries }).to_string())
}

/// Applies the answer rules of the crate documentation, first match wins.
pub(crate) fn decide(conversation: &Conversation<'_>) -> Answer {
    if is_routing_request(&conversation.user_text)
        && let Some(answer) = routing_answer(&conversation.user_text)
    {
        return Answer::Text(answer);
    }
    if !conversation.tools.is_empty()
        && conversation.tool_choice != ToolChoice::None
        && conversation.last_is_plain_user
    {
        let tools: Vec<&ToolSpec<'_>> = if conversation.directives.parallel {
            conversation.tools.iter().collect()
        } else if let Some(name) = conversation.directives.tool.as_deref() {
            conversation
                .tools
                .iter()
                .filter(|tool| tool.is_named(name))
                .take(1)
                .collect()
        } else if let ToolChoice::Named(name) = conversation.tool_choice {
            conversation
                .tools
                .iter()
                .filter(|tool| tool.is_named(name))
                .take(1)
                .collect()
        } else {
            conversation.tools.iter().take(1).collect()
        };
        if !tools.is_empty() {
            return Answer::ToolCalls(
                tools
                    .into_iter()
                    .map(|tool| ToolCall {
                        name: tool.name.to_owned(),
                        namespace: tool.namespace.map(str::to_owned),
                        arguments: if conversation.directives.args.is_empty() {
                            arguments_from_schema(tool.schema)
                        } else {
                            Value::Object(
                                conversation
                                    .directives
                                    .args
                                    .iter()
                                    .map(|(key, value)| (key.clone(), Value::from(value.as_str())))
                                    .collect(),
                            )
                        },
                    })
                    .collect(),
            );
        }
    }
    if conversation.json_output {
        return Answer::Text(r#"{"answer":"mock"}"#.to_owned());
    }
    if let Some(results) = &conversation.tool_results {
        return Answer::Text(format!("Tool result: {}", results.join("; ")));
    }
    if conversation.images > 0 {
        return Answer::Text(format!("I see {} image(s).", conversation.images));
    }
    let said: String = strip_directives(&conversation.user_text)
        .chars()
        .take(60)
        .collect();
    Answer::Text(format!(
        "Hello from mock {} {}! You said: {said}",
        conversation.provider, conversation.model
    ))
}

/// Output tokens of an answer: its words, or 10 for tool calls.
pub(crate) fn output_tokens(answer: &Answer) -> u64 {
    match answer {
        Answer::Text(text) => text.split_whitespace().count() as u64,
        Answer::ToolCalls(_) => 10,
    }
}

/// `text` cut word by word, each piece carrying the whitespace before it, so the pieces join back to `text`.
pub(crate) fn word_fragments(text: &str) -> Vec<&str> {
    let mut fragments = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (index, character) in text.char_indices() {
        if character.is_whitespace() {
            if in_word {
                fragments.push(&text[start..index]);
                start = index;
                in_word = false;
            }
        } else {
            in_word = true;
        }
    }
    if start < text.len() {
        fragments.push(&text[start..]);
    }
    fragments
}

/// `text` cut to its first `limit` words when it has more (the answer hit `max_tokens`).
pub(crate) fn truncate_words(text: &str, limit: u64) -> Option<String> {
    let fragments = word_fragments(text);
    let words = fragments.len() as u64;
    (words > limit).then(|| fragments[..limit as usize].concat().trim_start().to_owned())
}

/// `text` cut into pieces of at most `size` bytes on character boundaries (tool arguments in streams).
pub(crate) fn byte_fragments(text: &str, size: usize) -> Vec<&str> {
    let mut fragments = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        fragments.push(&text[start..end]);
        start = end;
    }
    fragments
}

/// How OpenAI names a JSON value's type in "Invalid type" errors.
pub(crate) fn json_type_phrase(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `name` matches `^[a-zA-Z0-9_-]{1,max}$`, the tool-name pattern of both APIs.
pub(crate) fn is_valid_tool_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// The page the mock's web search finds for `query`.
pub(crate) fn search_page(query: &str) -> (String, String) {
    let slug: String = (query.chars())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    (
        format!("https://search.example/{slug}"),
        format!("Mock result for {query}"),
    )
}

/// What the page found for `query` says, and the answer that cites it.
pub(crate) fn cited_text(query: &str) -> String {
    format!("What the web says about {query}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_parsed_and_stripped() {
        let text = "Hi [mock:cached=5] there [mock:parallel][mock:status=429] [mock:bogus";
        let directives = Directives::parse(text);
        assert_eq!(directives.cached, 5);
        assert!(directives.parallel);
        assert_eq!(directives.status, Some(429));
        assert_eq!(strip_directives(text), "Hi there [mock:bogus");
    }

    #[test]
    fn tool_and_argument_directives_pick_the_call() {
        let text = "Read it [mock:tool=Read] [mock:arg.file_path=/tmp/a b.txt][mock:arg.=x]";
        let directives = Directives::parse(text);
        assert_eq!(directives.tool.as_deref(), Some("Read"));
        assert_eq!(
            directives.args,
            vec![("file_path".to_owned(), "/tmp/a b.txt".to_owned())]
        );
        let schema = serde_json::json!({"properties": {"file_path": {"type": "string"}}});
        let offered = |directives: Directives| Conversation {
            provider: "openai",
            model: "m",
            tools: vec![
                ToolSpec {
                    name: "Bash",
                    schema: None,
                    namespace: None,
                },
                ToolSpec {
                    name: "Read",
                    schema: Some(&schema),
                    namespace: None,
                },
            ],
            tool_choice: ToolChoice::Auto,
            last_is_plain_user: true,
            tool_results: None,
            user_text: text.to_owned(),
            images: 0,
            json_output: false,
            directives,
        };
        match decide(&offered(directives.clone())) {
            Answer::ToolCalls(calls) => {
                assert_eq!(calls.len(), 1);
                assert_eq!(calls[0].name, "Read");
                assert_eq!(
                    calls[0].arguments,
                    serde_json::json!({"file_path": "/tmp/a b.txt"})
                );
            }
            Answer::Text(text) => panic!("expected a tool call, got {text}"),
        }
        // A named tool the request does not offer: no call, the plain answer.
        let absent = Directives {
            tool: Some("Write".to_owned()),
            ..directives
        };
        assert!(matches!(decide(&offered(absent)), Answer::Text(_)));
    }

    #[test]
    fn fragments_join_back() {
        let text = "Hello from  mock\nworld";
        assert_eq!(word_fragments(text).concat(), text);
        assert_eq!(
            word_fragments(text),
            vec!["Hello", " from", "  mock", "\nworld"]
        );
        let json = r#"{"city":"Parisé"}"#;
        assert_eq!(byte_fragments(json, 4).concat(), json);
    }

    #[test]
    fn truncation_keeps_the_first_words() {
        assert_eq!(
            truncate_words("one two three", 2).as_deref(),
            Some("one two")
        );
        assert_eq!(truncate_words("one two", 2), None);
    }

    #[test]
    fn schema_arguments_follow_property_types() {
        let schema = serde_json::json!({"properties": {
            "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
            "ratio": {"type": ["number", "null"]}, "extra": {"type": "object"}}});
        assert_eq!(
            arguments_from_schema(Some(&schema)),
            serde_json::json!({"city": "Paris", "days": 1, "metric": true, "ratio": 1, "extra": null})
        );
    }

    #[test]
    fn routing_requests_get_word_overlap_points_and_keep_their_directives_inert() {
        let ask = r#"{"candidates":[{"model":"coder","description":"rust code"},{"model":"poet","description":"poems"}],"message":"write rust code [mock:status=500]"}"#;
        assert!(is_routing_request(ask));
        assert_eq!(Directives::parse(ask), Directives::default());
        let answer: Value =
            serde_json::from_str(&routing_answer(ask).expect("an answer")).expect("JSON");
        assert_eq!(answer["routing"][0]["point"], 1.0);
        assert_eq!(answer["routing"][1]["point"], 0.0);
        let invalid = r#"{"candidates":[{"model":"a","description":"x"}],"message":"[mock:routing_invalid]"}"#;
        assert_eq!(
            routing_answer(invalid).as_deref(),
            Some("I would pick the first model.")
        );
        assert!(
            routing_answer(&format!("{invalid}\nplease repair"))
                .expect("an answer")
                .starts_with("{")
        );
    }

    #[test]
    fn token_rule_rounds_up() {
        assert_eq!(tokens_for_bytes(0), 0);
        assert_eq!(tokens_for_bytes(1), 1);
        assert_eq!(tokens_for_bytes(8), 2);
        assert_eq!(tokens_for_bytes(9), 3);
    }
}
