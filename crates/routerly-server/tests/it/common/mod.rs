//! The harness of the proxy tests: a real service on a loopback port with its own temporary
//! `ROUTERLY_HOME`, mock providers beside it, and helpers to call it and read its usage log.

use std::time::Duration;

use routerly_core::config::{ModelConfig, Project, ProjectModel, ProjectToken, ProviderKind};
use routerly_core::usage::UsageRecord;
use routerly_mock::{MockKind, MockOptions, MockServer};
use routerly_server::Service;
use routerly_server::state::App;
use routerly_server::store::{Draft, Home, usage_log};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The project token every test calls with, unless it says otherwise.
pub const TOKEN: &str = "sk-lr-test-0123456789abcdef0123456789abcdef";
/// That token's id, as usage records name it.
pub const TOKEN_ID: &str = "tok-main";
/// The project the harness creates.
pub const PROJECT_ID: &str = "proj-test";
/// Input price of every test model, USD per million tokens.
pub const INPUT_PRICE: f64 = 1.0;
/// Output price of every test model, USD per million tokens.
pub const OUTPUT_PRICE: f64 = 2.0;

/// A mock provider on loopback.
pub async fn mock(kind: MockKind) -> MockServer {
    routerly_mock::spawn(kind, MockOptions::default()).await
}

/// A model served by `mock`'s OpenAI API as `gpt-4o-mini`.
pub fn openai_model(id: &str, mock: &MockServer) -> ModelConfig {
    model(id, ProviderKind::OpenAi, &mock.base_url(), "gpt-4o-mini")
}

/// A model served by `mock`'s Anthropic API as `claude-haiku-4-5`.
pub fn anthropic_model(id: &str, mock: &MockServer) -> ModelConfig {
    model(
        id,
        ProviderKind::Anthropic,
        &mock.base_url(),
        "claude-haiku-4-5",
    )
}

/// The provider-side model name the test models use on a mock of `kind`.
pub fn upstream_of(kind: MockKind) -> &'static str {
    match kind {
        MockKind::OpenAi => "gpt-4o-mini",
        MockKind::Anthropic => "claude-haiku-4-5",
        other => panic!("the proxy tests use OpenAI and Anthropic mocks, not {other:?}"),
    }
}

/// A model served by `mock` (an OpenAI or Anthropic mock).
pub fn model_on(id: &str, mock: &MockServer) -> ModelConfig {
    match mock.kind() {
        MockKind::OpenAi => openai_model(id, mock),
        MockKind::Anthropic => anthropic_model(id, mock),
        other => panic!("the proxy tests use OpenAI and Anthropic mocks, not {other:?}"),
    }
}

/// A model whose endpoint is a loopback port nobody listens on.
pub async fn unreachable_model(id: &str) -> ModelConfig {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a port to learn a free one");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    drop(listener);
    model(
        id,
        ProviderKind::OpenAi,
        &format!("http://{addr}/v1"),
        "gpt-4o-mini",
    )
}

/// A registered model with the test prices. Built from JSON, as a hand-written
/// `models.json` would be, so fields added later take their defaults.
pub fn model(
    id: &str,
    provider: ProviderKind,
    endpoint: &str,
    upstream_model: &str,
) -> ModelConfig {
    serde_json::from_value(json!({
        "id": id,
        "provider": provider.as_str(),
        "endpoint": endpoint,
        "upstream_model": upstream_model,
        "pricing": {"input": INPUT_PRICE, "output": OUTPUT_PRICE},
    }))
    .expect("a valid model entry")
}

/// `model` answering its first token within `first_token_ms`.
pub fn with_first_token_timeout(mut model: ModelConfig, first_token_ms: u64) -> ModelConfig {
    model.timeouts.first_token_ms = Some(first_token_ms);
    model
}

/// A token record holding the hash of `token`.
pub fn project_token(id: &str, token: &str) -> ProjectToken {
    serde_json::from_value(json!({
        "id": id,
        "hash": hex::encode(Sha256::digest(token.as_bytes())),
        "snippet": format!("{}…", &token[..10]),
    }))
    .expect("a valid token entry")
}

/// A project model without aliases.
pub fn project_model(model_id: &str) -> ProjectModel {
    serde_json::from_value(json!({ "model_id": model_id })).expect("a valid project model")
}

/// The expected cost of a call at the test prices.
pub fn expected_cost(input_tokens: u64, output_tokens: u64) -> f64 {
    (input_tokens as f64 * INPUT_PRICE + output_tokens as f64 * OUTPUT_PRICE) / 1_000_000.0
}

/// Asserts that `record` has these tokens and the cost they imply.
pub fn assert_tokens_and_cost(record: &UsageRecord, input_tokens: u64, output_tokens: u64) {
    assert_eq!(
        (record.input_tokens, record.output_tokens),
        (input_tokens, output_tokens),
        "expected {input_tokens} input and {output_tokens} output tokens in {record:#?}"
    );
    let cost = expected_cost(input_tokens, output_tokens);
    assert!(
        (record.cost_usd - cost).abs() < 1e-12,
        "expected cost {cost} USD, got {} in {record:#?}",
        record.cost_usd
    );
}

/// A running service on a loopback port.
pub struct Gateway {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The service's shared state.
    pub app: App,
    /// A client for the tests' requests.
    pub client: reqwest::Client,
    home_dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// A service with `models`, all in one project (in this order) that [`TOKEN`] opens.
    pub async fn start(models: Vec<ModelConfig>) -> Gateway {
        Gateway::start_with(models, |_| {}).await
    }

    /// [`Gateway::start`], then `edit` applied to the configuration before serving.
    pub async fn start_with(models: Vec<ModelConfig>, edit: impl FnOnce(&mut Draft)) -> Gateway {
        let home_dir = tempfile::tempdir().expect("create a temporary ROUTERLY_HOME");
        let service = Service::open(Home::new(home_dir.path()))
            .await
            .expect("the service opens a fresh home");
        let app = service.app();
        app.store
            .update(|draft| {
                let mut project: Project = serde_json::from_value(
                    json!({"id": PROJECT_ID, "name": "Test", "slug": "test"}),
                )
                .expect("a valid project entry");
                project.models = models
                    .iter()
                    .map(|model| project_model(&model.id))
                    .collect();
                project.tokens = vec![project_token(TOKEN_ID, TOKEN)];
                // Fallback tests expect the next candidate at once; the routing tests turn
                // retries (default 1) back on where they test them.
                project.routing.retries = 0;
                draft.projects.projects.push(project);
                draft.models.models = models;
                edit(draft);
                Ok::<(), std::convert::Infallible>(())
            })
            .await
            .expect("the test configuration is valid");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the service's listener");
        let base_url = format!(
            "http://{}",
            listener
                .local_addr()
                .expect("a bound listener has an address")
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(service.serve(listener, async move {
            let _ = stopped.await;
        }));
        Gateway {
            base_url,
            app,
            client: reqwest::Client::new(),
            home_dir,
            stop: Some(stop),
            served,
        }
    }

    /// The home directory of this service.
    pub fn home(&self) -> &std::path::Path {
        self.home_dir.path()
    }

    /// `POST /v1/chat/completions` with [`TOKEN`].
    pub async fn openai(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.base_url))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("the service answers /v1/chat/completions")
    }

    /// `POST /v1/messages` with [`TOKEN`] in `x-api-key`.
    pub async fn anthropic(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", TOKEN)
            .header("anthropic-version", "2023-06-01")
            .json(body)
            .send()
            .await
            .expect("the service answers /v1/messages")
    }

    /// A request builder for `path` on this service.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base_url))
    }

    /// A GET builder for `path` on this service.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.base_url))
    }

    /// The usage records on disk now (the writer flushes within one batch of a record).
    pub fn usage_now(&self) -> Vec<UsageRecord> {
        usage_log::read_usage(&self.app.home.usage_log_path()).expect("read the usage log")
    }

    /// Waits (up to 5 s) until at least `count` usage records are on disk.
    pub async fn wait_for_records(&self, count: usize) -> Vec<UsageRecord> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let records = self.usage_now();
            if records.len() >= count {
                return records;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} usage records within 5 s, found {}: {records:#?}",
                records.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Shuts the service down (flushing the usage log), returns every usage record and
    /// removes the temporary home.
    pub async fn stop(mut self) -> Vec<UsageRecord> {
        let usage_path = self.app.home.usage_log_path();
        drop(self.app);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.served)
            .await
            .expect("the service shuts down within 10 s")
            .expect("the serve task does not panic")
            .expect("the service shuts down cleanly");
        let records = usage_log::read_usage(&usage_path).expect("read the usage log");
        self.home_dir.close().expect("remove the temporary home");
        records
    }
}

/// An OpenAI chat body with one user message.
pub fn openai_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// An Anthropic messages body with one user message.
pub fn anthropic_body(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}]})
}

/// The status, a header and the JSON body of `response`.
pub async fn status_header_json(
    response: reqwest::Response,
    header: &str,
) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let header = response
        .headers()
        .get(header)
        .map(|value| value.to_str().expect("an ASCII header").to_owned());
    let text = response.text().await.expect("read the response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("expected a JSON body ({error}), got {text:?}"));
    (status, header, body)
}

/// The model header, status and JSON body of `response`.
pub async fn answer(response: reqwest::Response) -> (u16, Option<String>, Value) {
    status_header_json(response, "x-routerly-model").await
}

/// Asserts `body` is OpenAI's error shape with this `type` and returns its message.
pub fn assert_openai_error(body: &Value, error_type: &str) -> String {
    let error = body
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("expected an OpenAI error body, got {body}"));
    for field in ["message", "type", "param", "code"] {
        assert!(
            error.contains_key(field),
            "expected `error.{field}` in the OpenAI error body {body}"
        );
    }
    assert_eq!(
        error["type"], error_type,
        "expected error type {error_type} in {body}"
    );
    error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a string message in {body}"))
        .to_owned()
}

/// Asserts `body` is Anthropic's error shape with this `type` and returns its message.
pub fn assert_anthropic_error(body: &Value, error_type: &str) -> String {
    assert_eq!(
        body["type"], "error",
        "expected an Anthropic error body, got {body}"
    );
    assert_eq!(
        body["error"]["type"], error_type,
        "expected error type {error_type} in {body}"
    );
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a string message in {body}"))
        .to_owned()
}

/// One server-sent event: its `event:` name and its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The `event:` field.
    pub name: Option<String>,
    /// The `data:` field.
    pub data: String,
}

impl Event {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|error| panic!("expected JSON event data ({error}): {:?}", self.data))
    }
}

/// Splits an SSE body into events.
pub fn sse_events(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.trim_start().to_owned());
                }
            }
            (!data.is_empty()).then(|| Event {
                name,
                data: data.join("\n"),
            })
        })
        .collect()
}

/// The text an OpenAI client assembles from the stream's deltas.
pub fn openai_stream_text(events: &[Event]) -> String {
    events
        .iter()
        .filter(|event| event.data != "[DONE]")
        .filter_map(|event| {
            event.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The mock's deterministic answer to `text` (see `routerly_mock`).
pub fn mock_answer(provider: MockKind, upstream_model: &str, text: &str) -> String {
    format!(
        "Hello from mock {} {upstream_model}! You said: {text}",
        provider.name()
    )
}

/// The mock's output tokens for an answer: its words.
pub fn words(answer: &str) -> u64 {
    answer.split_whitespace().count() as u64
}

/// The mock's input tokens for prompt text: a quarter of the bytes, rounded up.
pub fn prompt_tokens(text: &str) -> u64 {
    text.len().div_ceil(4) as u64
}

/// The first admin's email in tests that read the management API.
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// Their password.
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// Replaces the project's routing policies (`retries` retries per model).
pub fn set_policies(draft: &mut Draft, policies: Value, retries: u32) {
    let project = &mut draft.projects.projects[0];
    project.routing = serde_json::from_value(json!({ "policies": policies, "retries": retries }))
        .expect("a valid routing configuration");
}

/// Creates the first admin and returns their access token for the management API.
pub async fn admin_token(gateway: &Gateway) -> String {
    routerly_server::api::setup_headless_admin(&gateway.app, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("create the first admin");
    let login: Value = gateway
        .post("/api/auth/login")
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .expect("login answers")
        .json()
        .await
        .expect("login answers JSON");
    login["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// The trace `trace_id` as the dashboard reads it.
pub async fn trace_via_api(gateway: &Gateway, token: &str, trace_id: &str) -> Value {
    let response = gateway
        .get(&format!("/api/traces/{trace_id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the trace route answers");
    assert_eq!(response.status(), 200, "GET /api/traces/{trace_id}");
    response.json().await.expect("a trace is JSON")
}

/// A trace's final order of models.
pub fn ranking(trace: &Value) -> Vec<String> {
    trace["ranking"]
        .as_array()
        .expect("a ranking")
        .iter()
        .map(|entry| entry["model"].as_str().expect("a model").to_owned())
        .collect()
}
