//! What a Responses answer repeats of its request, as OpenAI's does: the request fields
//! (`instructions`, `tools`, `previous_response_id`, …), and for each call of a tool that
//! came in a `namespace` tool, that namespace and the tool's own name.
//!
//! Codex sends groups of function tools as `{"type": "namespace", "name": N, "tools": […]}`.
//! Providers other than OpenAI have no namespaces, so decoding flattens each member into a
//! function tool named [`flat_name`]`(N, name)` (and a `function_call` item of the history
//! that names its `namespace` likewise); the answer's calls of such a name go back to the
//! client as `{"name": name, "namespace": N}`.

use serde_json::{Map, Value};

/// The request fields a response object repeats.
const ECHOED_FIELDS: &[&str] = &[
    "instructions",
    "tools",
    "tool_choice",
    "previous_response_id",
    "temperature",
    "top_p",
    "max_output_tokens",
    "parallel_tool_calls",
    "metadata",
    "store",
    "text",
    "reasoning",
    "truncation",
    "user",
];

/// The name a namespaced tool has for a provider without namespaces: `namespace__name`.
pub fn flat_name(namespace: &str, name: &str) -> String {
    format!("{namespace}__{name}")
}

/// What an answer to one Responses request repeats of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Echo {
    fields: Map<String, Value>,
    /// (flat name, namespace, name) of every function tool inside a namespace tool.
    namespaced: Vec<(String, String, String)>,
}

impl Echo {
    /// The echo of a client's request `body`.
    pub fn of_request(body: &Value) -> Echo {
        let fields: Map<String, Value> = ECHOED_FIELDS
            .iter()
            .filter_map(|field| Some(((*field).to_owned(), body.get(*field)?.clone())))
            .collect();
        let namespaced = fields
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("namespace"))
            .filter_map(|tool| Some((tool.get("name")?.as_str()?, tool.get("tools")?.as_array()?)))
            .flat_map(|(namespace, members)| {
                members.iter().filter_map(move |member| {
                    let name = member.get("name")?.as_str()?;
                    Some((
                        flat_name(namespace, name),
                        namespace.to_owned(),
                        name.to_owned(),
                    ))
                })
            })
            .collect();
        Echo { fields, namespaced }
    }

    /// Whether there is nothing to repeat.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.namespaced.is_empty()
    }

    /// Sets the echoed request fields on a `response` object.
    pub(super) fn apply(&self, response: &mut Value) {
        if let Some(object) = response.as_object_mut() {
            object.extend(
                self.fields
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone())),
            );
        }
    }

    /// The namespace and name the client knows a called tool by: `(Some(N), name)` for a
    /// flattened member of namespace N, `(None, called)` otherwise.
    pub(super) fn call_name<'a>(&'a self, called: &'a str) -> (Option<&'a str>, &'a str) {
        self.namespaced
            .iter()
            .find(|(flat, _, _)| flat == called)
            .map_or((None, called), |(_, namespace, name)| {
                (Some(namespace.as_str()), name.as_str())
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canonical::{ChatResponse, ContentPart, StopReason, StreamEvent};
    use crate::wire::responses::{StreamEncoder, decode_request, encode_response_echoing};

    /// The shape Codex 0.171 sends (tests/fixtures/clients/codex): function tools, a
    /// namespace of function tools, and web search.
    fn codex_body() -> Value {
        json!({
            "model": "m",
            "instructions": "You are Codex.",
            "previous_response_id": "resp_prev",
            "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list agents"}]},
                {"type": "function_call", "call_id": "call_1", "name": "list_agents",
                 "namespace": "multi_agent_v1", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "none"}
            ],
            "tools": [
                {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
                {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
                    {"type": "function", "name": "list_agents", "description": "Lists agents.",
                     "parameters": {"type": "object", "properties": {}}},
                    {"type": "function", "name": "close_agent", "parameters": {"type": "object"}}
                ]},
                {"type": "web_search", "external_web_access": true}
            ],
            "store": false,
            "stream": true
        })
    }

    #[test]
    fn namespace_members_become_flat_function_tools_and_history_calls_follow() {
        let request = decode_request(&codex_body()).expect("decodes");
        let names: Vec<&str> = request
            .tools
            .iter()
            .map(|tool| tool.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "exec_command",
                "multi_agent_v1__list_agents",
                "multi_agent_v1__close_agent"
            ]
        );
        assert_eq!(
            request.tools[1].description.as_deref(),
            Some("Lists agents.")
        );
        assert_eq!(request.hosted_tools.len(), 1, "{:?}", request.hosted_tools);
        assert_eq!(request.hosted_tools[0].kind, "web_search");
        assert!(matches!(
            &request.messages[1].content[0],
            ContentPart::ToolCall { name, .. } if name == "multi_agent_v1__list_agents"
        ));
        // A namespace without its members is malformed.
        let error = decode_request(&json!({"model": "m", "input": "x",
            "tools": [{"type": "namespace", "name": "n"}]}))
        .expect_err("refused");
        assert_eq!(error.param.as_deref(), Some("tools[0].tools"));
    }

    #[test]
    fn a_call_of_a_flat_name_goes_back_under_its_namespace_with_the_request_echoed() {
        let echo = Echo::of_request(&codex_body());
        let answer = ChatResponse {
            id: "resp_abc".into(),
            model: "claude".into(),
            content: vec![
                ContentPart::ToolCall {
                    id: "toolu_1".into(),
                    name: "multi_agent_v1__close_agent".into(),
                    arguments: "{}".into(),
                },
                ContentPart::ToolCall {
                    id: "toolu_2".into(),
                    name: "exec_command".into(),
                    arguments: "{}".into(),
                },
            ],
            stop_reason: Some(StopReason::ToolUse),
            stop_sequence: None,
            usage: Default::default(),
            created: 1,
            web_sources: Default::default(),
        };
        let encoded = encode_response_echoing(&answer, &echo);
        assert_eq!(encoded["output"][0]["name"], "close_agent");
        assert_eq!(encoded["output"][0]["namespace"], "multi_agent_v1");
        assert_eq!(encoded["output"][1]["name"], "exec_command");
        assert!(encoded["output"][1].get("namespace").is_none());
        assert_eq!(encoded["previous_response_id"], "resp_prev");
        assert_eq!(encoded["instructions"], "You are Codex.");
        assert_eq!(encoded["tools"], codex_body()["tools"]);
        assert_eq!(encoded["store"], false);
    }

    #[test]
    fn a_stream_echoes_the_request_in_created_and_completed() {
        let mut encoder = StreamEncoder::new();
        encoder.set_echo(Echo::of_request(&codex_body()));
        let events = [
            StreamEvent::Start {
                id: "resp_abc".into(),
                model: "claude".into(),
                usage: Default::default(),
            },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_1".into(),
                name: "multi_agent_v1__list_agents".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{}".into(),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                stop_sequence: None,
            },
            StreamEvent::End,
        ];
        let frames: Vec<(String, Value)> = events
            .iter()
            .flat_map(|event| encoder.encode(event))
            .map(|frame| {
                (
                    frame.event.unwrap_or_default().to_owned(),
                    serde_json::from_str(&frame.data).expect("JSON"),
                )
            })
            .collect();
        let of = |name: &str| {
            frames
                .iter()
                .filter(|(event, _)| event == name)
                .map(|(_, data)| data.clone())
                .collect::<Vec<_>>()
        };
        for name in [
            "response.created",
            "response.in_progress",
            "response.completed",
        ] {
            let response = &of(name)[0]["response"];
            assert_eq!(response["previous_response_id"], "resp_prev", "{name}");
            assert_eq!(response["tools"], codex_body()["tools"], "{name}");
            assert_eq!(response["instructions"], "You are Codex.", "{name}");
        }
        let added = &of("response.output_item.added")[0]["item"];
        assert_eq!(
            (&added["name"], &added["namespace"]),
            (&json!("list_agents"), &json!("multi_agent_v1"))
        );
        assert_eq!(
            of("response.function_call_arguments.done")[0]["name"],
            "list_agents"
        );
        let completed = &of("response.completed")[0]["response"]["output"][0];
        assert_eq!(completed["namespace"], "multi_agent_v1");
        // Without an echo, nothing of a request is invented.
        let mut plain = StreamEncoder::new();
        let created: Value = serde_json::from_str(&plain.encode(&events[0])[0].data).expect("JSON");
        assert_eq!(created["response"]["previous_response_id"], Value::Null);
    }
}
