//! The Responses API's stored objects: `GET`, `DELETE` and `input_items` scoped to the
//! project that created them, `store: false` honoured, request fields echoed, and
//! `item_reference` resolved for translated models and passed through for OpenAI.

use crate::common;

use common::*;
use routerly_core::config::Project;
use routerly_mock::MockKind;
use serde_json::{Value, json};

const OTHER_TOKEN: &str = "sk-lr-other-0123456789abcdef0123456789abcdef";

/// A gateway whose project serves `models`, beside a second project (with [`OTHER_TOKEN`])
/// that has the same models.
async fn two_projects(models: Vec<routerly_core::config::ModelConfig>) -> Gateway {
    Gateway::start_with(models, |draft| {
        let mut other: Project =
            serde_json::from_value(json!({"id": "proj-other", "name": "Other", "slug": "other"}))
                .expect("a valid project");
        other.models = draft.projects.projects[0].models.clone();
        other.tokens = vec![project_token("tok-other", OTHER_TOKEN)];
        draft.projects.projects.push(other);
    })
    .await
}

async fn create(gateway: &Gateway, body: &Value) -> Value {
    let (status, _, reply) = answer(
        gateway
            .post("/v1/responses")
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    reply
}

async fn get(gateway: &Gateway, path: &str, token: &str) -> (u16, Value) {
    let (status, _, body) = answer(
        gateway
            .get(path)
            .bearer_auth(token)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn stored_responses_are_read_listed_and_deleted_by_their_project_only() {
    let anthropic = mock(MockKind::Anthropic).await;
    let gateway = two_projects(vec![anthropic_model("claude", &anthropic)]).await;
    let tools = json!([{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]);
    let created = create(
        &gateway,
        &json!({"model": "claude", "instructions": "Be brief.", "tools": tools,
                "input": [{"role": "user", "content": "Hello"}], "metadata": {"k": "v"}}),
    )
    .await;
    // Translated answers echo the request's fields as OpenAI does.
    assert_eq!(created["instructions"], "Be brief.");
    assert_eq!(created["tools"], tools);
    assert_eq!(created["metadata"], json!({"k": "v"}));
    let id = created["id"].as_str().expect("an id").to_owned();

    let (status, retrieved) = get(&gateway, &format!("/v1/responses/{id}"), TOKEN).await;
    assert_eq!(status, 200, "{retrieved}");
    assert_eq!(retrieved["id"], created["id"]);
    assert_eq!(retrieved["output"], created["output"]);
    assert_eq!(retrieved["instructions"], "Be brief.");

    let (status, items) = get(&gateway, &format!("/v1/responses/{id}/input_items"), TOKEN).await;
    assert_eq!(status, 200, "{items}");
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(items["data"][0]["content"], "Hello");
    assert_eq!(items["first_id"], items["data"][0]["id"]);

    // Another project's token sees nothing, and cannot delete it.
    for path in [
        format!("/v1/responses/{id}"),
        format!("/v1/responses/{id}/input_items"),
    ] {
        let (status, body) = get(&gateway, &path, OTHER_TOKEN).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_openai_error(&body, "not_found_error");
    }
    let response = gateway
        .client
        .delete(format!("{}/v1/responses/{id}", gateway.base_url))
        .bearer_auth(OTHER_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    let (status, _) = get(&gateway, &format!("/v1/responses/{id}"), TOKEN).await;
    assert_eq!(status, 200, "still there for its own project");
    // Without a token: 401.
    let response = gateway
        .get(&format!("/v1/responses/{id}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);

    let response = gateway
        .client
        .delete(format!("{}/v1/responses/{id}", gateway.base_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let deleted: Value = response.json().await.expect("JSON");
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response", "deleted": true})
    );
    let (status, _) = get(&gateway, &format!("/v1/responses/{id}"), TOKEN).await;
    assert_eq!(status, 404);
    // Continuing a deleted response is refused like an unknown one.
    let (status, _, body) = answer(
        gateway
            .post("/v1/responses")
            .bearer_auth(TOKEN)
            .json(&json!({"model": "claude", "input": "again", "previous_response_id": id}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Odd ids are a plain 404, never a path outside the store.
    let (status, _) = get(&gateway, "/v1/responses/..%2F..%2Fconfig", TOKEN).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn store_false_keeps_nothing() {
    let anthropic = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![anthropic_model("claude", &anthropic)]).await;
    let created = create(
        &gateway,
        &json!({"model": "claude", "input": "Secret", "store": false}),
    )
    .await;
    let id = created["id"].as_str().expect("an id");
    let (status, _) = get(&gateway, &format!("/v1/responses/{id}"), TOKEN).await;
    assert_eq!(status, 404);
    let (status, _, body) = answer(
        gateway
            .post("/v1/responses")
            .bearer_auth(TOKEN)
            .json(&json!({"model": "claude", "input": "again", "previous_response_id": id}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn item_references_are_resolved_for_translated_models_and_passed_to_openai() {
    let anthropic = mock(MockKind::Anthropic).await;
    let openai = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![
        anthropic_model("claude", &anthropic),
        openai_model("gpt", &openai),
    ])
    .await;
    let first = create(
        &gateway,
        &json!({"model": "claude", "input": "My name is Ada"}),
    )
    .await;
    let message_id = first["output"][0]["id"]
        .as_str()
        .expect("a message id")
        .to_owned();
    let said = first["output"][0]["content"][0]["text"].clone();

    // What the Vercel AI SDK sends on its second turn: the earlier turns, the reply by
    // reference.
    let second = json!({"model": "claude", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "My name is Ada"}]},
        {"type": "item_reference", "id": message_id},
        {"role": "user", "content": [{"type": "input_text", "text": "Who am I?"}]}
    ]});
    create(&gateway, &second).await;
    let sent = anthropic.requests().last().expect("a request").body.clone();
    assert_eq!(sent["messages"][1]["role"], "assistant");
    assert_eq!(sent["messages"][1]["content"][0]["text"], said);

    // OpenAI resolves its own references: the body reaches it untouched.
    let mut to_openai = second.clone();
    to_openai["model"] = json!("gpt");
    create(&gateway, &to_openai).await;
    let sent = openai.requests().last().expect("a request").body.clone();
    assert_eq!(
        sent["input"][1],
        json!({"type": "item_reference", "id": message_id})
    );

    // A reference Routerly cannot resolve cannot be translated: a 400 naming it.
    let unknown = json!({"model": "claude", "input": [
        {"role": "user", "content": "hi"},
        {"type": "item_reference", "id": "msg_unknown00"}
    ]});
    let (status, _, body) = answer(
        gateway
            .post("/v1/responses")
            .bearer_auth(TOKEN)
            .json(&unknown)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = assert_openai_error(&body, "invalid_request_error");
    assert!(
        message.contains("item_reference") && message.contains("`claude`"),
        "{message}"
    );
}

/// Codex's shape on a translated model, streamed: the namespace's members reach the
/// provider as flat function tools, the model's call of one comes back under its namespace,
/// and `response.created` / `response.completed` echo the request (`previous_response_id`
/// included) as OpenAI's do.
#[tokio::test]
async fn a_streamed_translated_answer_echoes_the_request_and_gives_calls_their_namespace() {
    let anthropic = mock(MockKind::Anthropic).await;
    let gateway = two_projects(vec![anthropic_model("claude", &anthropic)]).await;
    let first = create(&gateway, &json!({"model": "claude", "input": "Hello"})).await;
    let previous = first["id"].as_str().expect("an id").to_owned();
    let tools = json!([
        {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}},
        {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
            {"type": "function", "name": "list_agents", "parameters": {"type": "object", "properties": {}}}
        ]}
    ]);
    let body = json!({"model": "claude", "stream": true, "previous_response_id": previous,
        "instructions": "You are Codex.", "tools": tools,
        "input": [{"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "List them. [mock:tool=multi_agent_v1__list_agents]"}]}]});
    let response = gateway
        .post("/v1/responses")
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-routerly-dropped"), None);
    let text = response.text().await.expect("a stream");
    let events = sse_events(&text);
    let data_of = |name: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|event| event.name.as_deref() == Some(name))
            .map(|event| event.json())
            .collect()
    };
    for name in ["response.created", "response.completed"] {
        let echoed = &data_of(name)[0]["response"];
        assert_eq!(echoed["previous_response_id"], previous.as_str(), "{name}");
        assert_eq!(echoed["tools"], tools, "{name}");
        assert_eq!(echoed["instructions"], "You are Codex.", "{name}");
    }
    let call = &data_of("response.output_item.done")
        .into_iter()
        .find(|done| done["item"]["type"] == "function_call")
        .expect("a function call")["item"];
    assert_eq!(call["name"], "list_agents", "{call}");
    assert_eq!(call["namespace"], "multi_agent_v1", "{call}");

    let requests = anthropic.requests();
    let sent = &requests.last().expect("sent upstream").body;
    let names: Vec<&str> = sent["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert_eq!(names, ["exec_command", "multi_agent_v1__list_agents"]);
}
