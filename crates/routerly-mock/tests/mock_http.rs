//! The mocks over real HTTP: validation, answers, usage, streams, directives, control endpoints.

use routerly_mock::{MockKind, MockOptions, MockServer, spawn};
use serde_json::{Value, json};

const KEY: &str = "sk-mock-test";

async fn mock(kind: MockKind) -> MockServer {
    spawn(
        kind,
        MockOptions {
            api_key: Some(KEY.to_owned()),
            ..MockOptions::default()
        },
    )
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn openai_post(server: &MockServer, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .expect("the OpenAI mock answers")
}

async fn anthropic_post(server: &MockServer, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", server.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .json(body)
        .send()
        .await
        .expect("the Anthropic mock answers")
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("a JSON body");
    (status, body)
}

/// Splits an SSE body into its `data:` payloads.
fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.lines().find_map(|line| line.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn weather_tool_openai() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}})
}

#[tokio::test]
async fn openai_rejects_invalid_requests_with_its_error_shape() {
    let server = mock(MockKind::OpenAi).await;
    let cases = [
        (json!({"messages": [user("hi")]}), Value::Null),
        (json!({"model": "m"}), json!("messages")),
        (json!({"model": "m", "messages": []}), json!("messages")),
        (
            json!({"model": "m", "messages": [{"role": "system2", "content": "x"}]}),
            json!("messages[0].role"),
        ),
        (
            json!({"model": "m", "messages": [user("hi")], "temperature": 3}),
            json!("temperature"),
        ),
        (
            json!({"model": "m", "messages": [user("hi")], "stream_options": {"include_usage": true}}),
            json!("stream_options"),
        ),
        (
            json!({"model": "m", "messages": [user("hi")], "tools": [{"type": "function", "function": {"name": 1}}]}),
            json!("tools[0].function.name"),
        ),
        (
            json!({"model": "m", "messages": [user("hi"), {"role": "tool", "tool_call_id": "x", "content": "r"}]}),
            json!("messages.[1].role"),
        ),
    ];
    for (body, param) in cases {
        let (status, error) = json_of(openai_post(&server, &body).await).await;
        assert_eq!(status, 400, "{body} should be rejected: {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        assert_eq!(error["error"]["param"], param, "{error}");
    }
    let not_json = client()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth(KEY)
        .body("{not json")
        .send()
        .await
        .expect("the OpenAI mock answers");
    let (status, error) = json_of(not_json).await;
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .expect("a message")
            .contains("could not parse the JSON body")
    );
}

#[tokio::test]
async fn openai_rejects_a_wrong_key() {
    let server = mock(MockKind::OpenAi).await;
    let response = client()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth("wrong")
        .json(&json!({"model": "m", "messages": [user("hi")]}))
        .send()
        .await
        .expect("the OpenAI mock answers");
    let (status, error) = json_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "invalid_api_key");
}

#[tokio::test]
async fn openai_answers_text_with_rule_usage() {
    let server = mock(MockKind::OpenAi).await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."}, user("What is the capital of France? [mock:cached=2]")]});
    let (status, completion) = json_of(openai_post(&server, &body).await).await;
    assert_eq!(status, 200, "{completion}");
    let text = "Hello from mock openai gpt-4o! You said: What is the capital of France?";
    assert_eq!(completion["choices"][0]["message"]["content"], text);
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(completion["model"], "gpt-4o");
    let prompt_bytes = "Be brief.".len() + "What is the capital of France? [mock:cached=2]".len();
    assert_eq!(
        completion["usage"]["prompt_tokens"],
        prompt_bytes.div_ceil(4)
    );
    assert_eq!(
        completion["usage"]["completion_tokens"],
        text.split_whitespace().count()
    );
    assert_eq!(
        completion["usage"]["prompt_tokens_details"]["cached_tokens"],
        2
    );
    let recorded = server.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(
        recorded[0].header("authorization"),
        Some("Bearer sk-mock-test")
    );
    assert_eq!(recorded[0].body, body);
}

#[tokio::test]
async fn openai_tool_round_trip() {
    let server = mock(MockKind::OpenAi).await;
    let mut body = json!({"model": "gpt-4o", "tools": [weather_tool_openai()], "messages": [user("Weather?")]});
    let (_, completion) = json_of(openai_post(&server, &body).await).await;
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
    let message = completion["choices"][0]["message"].clone();
    let call = &message["tool_calls"][0];
    assert_eq!(call["id"], "call_1");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        call["function"]["arguments"],
        r#"{"city":"Paris","days":1}"#
    );
    assert_eq!(completion["usage"]["completion_tokens"], 10);
    let messages = body["messages"].as_array_mut().expect("messages");
    messages.push(message);
    messages.push(json!({"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21C"}));
    let (status, completion) = json_of(openai_post(&server, &body).await).await;
    assert_eq!(status, 200, "{completion}");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Tool result: Sunny, 21C"
    );
}

#[tokio::test]
async fn openai_parallel_calls_json_mode_images_and_length() {
    let server = mock(MockKind::OpenAi).await;
    let second = json!({"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}});
    let body = json!({"model": "m", "tools": [weather_tool_openai(), second], "messages": [user("both [mock:parallel]")]});
    let (_, completion) = json_of(openai_post(&server, &body).await).await;
    let calls = completion["choices"][0]["message"]["tool_calls"]
        .as_array()
        .expect("tool calls")
        .clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["function"]["name"], "get_time");

    let body = json!({"model": "m", "response_format": {"type": "json_object"}, "messages": [user("json please")]});
    let (_, completion) = json_of(openai_post(&server, &body).await).await;
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        r#"{"answer":"mock"}"#
    );

    let image =
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}});
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "what?"}, image, image]}]});
    let (_, completion) = json_of(openai_post(&server, &body).await).await;
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "I see 2 image(s)."
    );

    let body = json!({"model": "m", "max_tokens": 3, "messages": [user("hi")]});
    let (_, completion) = json_of(openai_post(&server, &body).await).await;
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Hello from mock"
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "length");
    assert_eq!(completion["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn openai_stream_has_role_words_finish_usage_and_done() {
    let server = mock(MockKind::OpenAi).await;
    let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "messages": [user("hi")]});
    let response = openai_post(&server, &body).await;
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream; charset=utf-8"
    );
    let text = response.text().await.expect("a body");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|chunk| serde_json::from_str(chunk).expect("chunks are JSON"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|chunk| chunk["usage"].is_null())
    );
    let content: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from mock openai m! You said: hi");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage_chunk = &chunks[chunks.len() - 1];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 8);

    let body = json!({"model": "m", "stream": true, "messages": [user("hi")]});
    let text = openai_post(&server, &body)
        .await
        .text()
        .await
        .expect("a body");
    assert!(
        !text.contains("\"usage\""),
        "no usage without include_usage: {text}"
    );
}

#[tokio::test]
async fn openai_directives_fail_and_garble() {
    let server = mock(MockKind::OpenAi).await;
    let response = openai_post(
        &server,
        &json!({"model": "m", "messages": [user("[mock:status=429]")]}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, error) = json_of(response).await;
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");

    let response = openai_post(
        &server,
        &json!({"model": "m", "messages": [user("[mock:garbage]")]}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("a body");
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "garbage is not JSON: {text}"
    );

    let started = std::time::Instant::now();
    let (status, _) = json_of(
        openai_post(
            &server,
            &json!({"model": "m", "messages": [user("[mock:delay_ms=150]")]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));

    let body = json!({"model": "m", "stream": true, "messages": [user("one two three four [mock:die_after=2]")]});
    let result = openai_post(&server, &body).await.text().await;
    assert!(
        result.is_err(),
        "a dying stream ends with a transport error, got {result:?}"
    );

    server.fail_next(2, 503);
    let body = json!({"model": "m", "messages": [user("hi")]});
    assert_eq!(openai_post(&server, &body).await.status().as_u16(), 503);
    assert_eq!(openai_post(&server, &body).await.status().as_u16(), 503);
    assert_eq!(openai_post(&server, &body).await.status().as_u16(), 200);
}

#[tokio::test]
async fn openai_models_and_embeddings() {
    let server = mock(MockKind::OpenAi).await;
    let response = client()
        .get(format!("{}/models", server.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("the OpenAI mock answers");
    let (_, models) = json_of(response).await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "gpt-4o");
    let response = client()
        .post(format!("{}/embeddings", server.base_url()))
        .bearer_auth(KEY)
        .json(&json!({"model": "text-embedding-3-small", "input": ["abcd efgh", "x"], "dimensions": 16}))
        .send()
        .await
        .expect("the OpenAI mock answers");
    let (status, embeddings) = json_of(response).await;
    assert_eq!(status, 200, "{embeddings}");
    assert_eq!(embeddings["data"][1]["index"], 1);
    assert_eq!(
        embeddings["data"][0]["embedding"].as_array().map(Vec::len),
        Some(16)
    );
    assert_eq!(embeddings["usage"]["prompt_tokens"], 3);
}

#[tokio::test]
async fn anthropic_rejects_invalid_requests_with_its_error_shape() {
    let server = mock(MockKind::Anthropic).await;
    let tool_use = json!({"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]});
    let cases = [
        (
            json!({"model": "m", "messages": [user("hi")]}),
            "max_tokens: Field required",
        ),
        (
            json!({"model": "m", "max_tokens": 10, "messages": []}),
            "messages: at least one message is required",
        ),
        (
            json!({"model": "m", "max_tokens": 10, "messages": [{"role": "system", "content": "s"}, user("hi")]}),
            "messages.0: a system message must immediately follow a user message",
        ),
        (
            json!({"model": "m", "max_tokens": 10, "messages": [user("hi"), tool_use,
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "r"}]}]}),
            "unexpected `tool_use_id` found in `tool_result` blocks: toolu_9",
        ),
        (
            json!({"model": "m", "max_tokens": 10, "messages": [user("hi"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": "{}"}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]}]}),
            "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
        ),
        (
            json!({"model": "m", "max_tokens": 1024, "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": [user("hi")]}),
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
        (
            json!({"model": "m", "max_tokens": 4096, "temperature": 0.2, "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": [user("hi")]}),
            "`temperature` may only be set to 1 when thinking is enabled",
        ),
    ];
    for (body, message) in cases {
        let (status, error) = json_of(anthropic_post(&server, "/v1/messages", &body).await).await;
        assert_eq!(status, 400, "{body} should be rejected: {error}");
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        let actual = error["error"]["message"].as_str().expect("a message");
        assert!(
            actual.contains(message),
            "{actual:?} should contain {message:?}"
        );
    }
}

#[tokio::test]
async fn anthropic_requires_key_and_version() {
    let server = mock(MockKind::Anthropic).await;
    let body = json!({"model": "m", "max_tokens": 10, "messages": [user("hi")]});
    let response = client()
        .post(format!("{}/v1/messages", server.base_url()))
        .header("x-api-key", "wrong")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .expect("the Anthropic mock answers");
    let (status, error) = json_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["type"], "authentication_error");
    let response = client()
        .post(format!("{}/v1/messages", server.base_url()))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("the Anthropic mock answers");
    let (status, error) = json_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"]["message"],
        "anthropic-version: header is required"
    );
}

#[tokio::test]
async fn anthropic_answers_with_cache_usage_and_counts_tokens_alike() {
    let server = mock(MockKind::Anthropic).await;
    let body = json!({"model": "claude-x", "max_tokens": 100, "system": "Be brief.",
        "messages": [user("Capital of France? [mock:cached=3][mock:cache_write=1]")]});
    let (status, message) = json_of(anthropic_post(&server, "/v1/messages", &body).await).await;
    assert_eq!(status, 200, "{message}");
    let text = "Hello from mock anthropic claude-x! You said: Capital of France?";
    assert_eq!(message["content"], json!([{"type": "text", "text": text}]));
    assert_eq!(message["stop_reason"], "end_turn");
    let estimate = ("Be brief.".len()
        + "Capital of France? [mock:cached=3][mock:cache_write=1]".len())
    .div_ceil(4);
    assert_eq!(message["usage"]["input_tokens"], estimate - 4);
    assert_eq!(message["usage"]["cache_read_input_tokens"], 3);
    assert_eq!(message["usage"]["cache_creation_input_tokens"], 1);
    assert_eq!(
        message["usage"]["output_tokens"],
        text.split_whitespace().count()
    );
    let (status, count) =
        json_of(anthropic_post(&server, "/v1/messages/count_tokens", &body).await).await;
    assert_eq!(status, 200, "{count}");
    assert_eq!(count["input_tokens"], estimate);
    let recorded = server.requests();
    assert_eq!(
        recorded[0].header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
}

#[tokio::test]
async fn anthropic_tool_round_trip_and_stream() {
    let server = mock(MockKind::Anthropic).await;
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let mut body = json!({"model": "m", "max_tokens": 100, "tools": tools, "stream": true, "messages": [user("Weather?")]});
    let text = anthropic_post(&server, "/v1/messages", &body)
        .await
        .text()
        .await
        .expect("a body");
    let events: Vec<Value> = sse_data(&text)
        .iter()
        .map(|data| serde_json::from_str(data).expect("events are JSON"))
        .collect();
    let types: Vec<&str> = events
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert_eq!(types.first(), Some(&"message_start"));
    assert_eq!(types.last(), Some(&"message_stop"));
    assert!(types.contains(&"ping"));
    let start = events
        .iter()
        .find(|event| event["type"] == "content_block_start")
        .expect("a block");
    assert_eq!(start["content_block"]["id"], "toolu_1");
    let input: String = events
        .iter()
        .filter_map(|event| event["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(input, r#"{"city":"Paris"}"#);
    let delta = events
        .iter()
        .find(|event| event["type"] == "message_delta")
        .expect("a message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 10);

    body["stream"] = json!(false);
    let messages = body["messages"].as_array_mut().expect("messages");
    messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]}));
    messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "Sunny"}]}]}));
    let (status, message) = json_of(anthropic_post(&server, "/v1/messages", &body).await).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["content"][0]["text"], "Tool result: Sunny");
}

#[tokio::test]
async fn anthropic_overloaded_and_thinking() {
    let server = mock(MockKind::Anthropic).await;
    let body = json!({"model": "m", "max_tokens": 100, "messages": [user("[mock:status=529]")]});
    let (status, error) = json_of(anthropic_post(&server, "/v1/messages", &body).await).await;
    assert_eq!(status, 529);
    assert_eq!(error["error"]["type"], "overloaded_error");
    let body = json!({"model": "m", "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": [user("hi")]});
    let (status, message) = json_of(anthropic_post(&server, "/v1/messages", &body).await).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["content"][0]["type"], "thinking");
    assert_eq!(
        message["content"][1]["text"],
        "Hello from mock anthropic m! You said: hi"
    );
}

#[tokio::test]
async fn control_endpoints_fail_record_and_reset() {
    let server = mock(MockKind::Anthropic).await;
    let base = server.base_url();
    let response = client()
        .post(format!("{base}/_mock/fail"))
        .json(&json!({"count": 1, "status": 429}))
        .send()
        .await
        .expect("the control endpoint answers");
    assert_eq!(response.status().as_u16(), 200);
    let body = json!({"model": "m", "max_tokens": 10, "messages": [user("hi")]});
    let response = anthropic_post(&server, "/v1/messages", &body).await;
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        anthropic_post(&server, "/v1/messages", &body)
            .await
            .status()
            .as_u16(),
        200
    );
    let (_, recorded) = json_of(
        client()
            .get(format!("{base}/_mock/requests"))
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(recorded.as_array().map(Vec::len), Some(2));
    assert_eq!(recorded[0]["headers"]["anthropic-version"], "2023-06-01");
    client()
        .post(format!("{base}/_mock/reset"))
        .send()
        .await
        .expect("answers");
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn recording_is_bounded() {
    let server = spawn(
        MockKind::OpenAi,
        MockOptions {
            record_limit: 3,
            ..MockOptions::default()
        },
    )
    .await;
    for index in 0..5 {
        openai_post(
            &server,
            &json!({"model": "m", "messages": [user(&format!("n{index}"))]}),
        )
        .await;
    }
    let recorded = server.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].body["messages"][0]["content"], "n2");
}
