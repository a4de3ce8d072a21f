//! The request bodies real clients sent (captured by tests/e2e/test_clients.py's recording proxy,
//! `ROUTERLY_RECORD_CLIENTS`; scrubbed of temporary paths and the run's nonce), replayed against
//! an OpenAI, an Anthropic and a Gemini model. A body whose format the target speaks must arrive
//! upstream unchanged apart from the model; a translated one must be accepted by the target's
//! mock, which rejects what the real API rejects. What Routerly must refuse is listed in
//! `known_gap` and checked to fail exactly so.
//!
//! Fixture layout: `tests/fixtures/clients/<client>/<n>.json`, a first line
//! `{"method","path"}` as the client called Routerly, then the JSON body. One is not a
//! capture: `claude-code/web-search-history.json` is `2.json`'s request (model, system,
//! thinking, metadata) around a conversation holding a web search Anthropic ran (its
//! `server_tool_use`, `web_search_tool_result` and cited text, in the Messages API's
//! documented shape), as Claude Code's `WebSearch` sends it back; the mocks cannot run a
//! real search to capture one.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use routerly_core::config::ProviderKind;
use routerly_mock::{MockKind, MockServer};
use serde_json::Value;

struct Fixture {
    name: String,
    /// The path and query as the client called them (Claude Code adds `?beta=true`).
    path: String,
    body: Value,
}

impl Fixture {
    /// The path without its query.
    fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

fn fixtures() -> Vec<Fixture> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clients");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the client corpus exists")
        .flat_map(|client| {
            std::fs::read_dir(client.expect("a corpus entry").path()).expect("a client directory")
        })
        .map(|file| file.expect("a fixture entry").path())
        .filter(|file| file.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files.iter().map(|file| read_fixture(&root, file)).collect()
}

fn read_fixture(root: &Path, file: &Path) -> Fixture {
    let text = std::fs::read_to_string(file).expect("a readable fixture");
    let (head, body) = text
        .split_once('\n')
        .expect("a fixture has a head line and a body");
    let head: Value = serde_json::from_str(head).expect("the head line is JSON");
    Fixture {
        name: file
            .strip_prefix(root)
            .expect("under the corpus")
            .display()
            .to_string(),
        path: head["path"]
            .as_str()
            .expect("the head names the path")
            .to_owned(),
        body: serde_json::from_str(body).expect("the body is JSON"),
    }
}

/// The error text Routerly answers for a captured body it must refuse, if `body` is one:
/// an `item_reference` to a response of the capture session, which this gateway never
/// stored, cannot be resolved for a translated model (OpenAI's own store resolves it).
fn known_gap(fixture: &Fixture, target: MockKind) -> Option<&'static str> {
    let body = &fixture.body;
    let items = |key: &str| body[key].as_array().cloned().unwrap_or_default();
    if fixture.route() == "/v1/responses"
        && target != MockKind::OpenAi
        && items("input")
            .iter()
            .any(|item| item["type"] == "item_reference")
    {
        return Some("item_reference");
    }
    None
}

/// The mock kind whose API the client's path is.
fn format_of(path: &str) -> MockKind {
    match path {
        "/v1/messages" => MockKind::Anthropic,
        _ => MockKind::OpenAi,
    }
}

fn upstream_name(kind: MockKind) -> &'static str {
    match kind {
        MockKind::Gemini => "gemini-2.5-flash",
        other => upstream_of(other),
    }
}

#[tokio::test]
async fn every_captured_client_body_reaches_every_provider_family() {
    let corpus = fixtures();
    assert!(
        corpus.len() >= 5,
        "the corpus holds {} bodies",
        corpus.len()
    );
    let mocks: Vec<MockServer> = vec![
        mock(MockKind::OpenAi).await,
        mock(MockKind::Anthropic).await,
        mock(MockKind::Gemini).await,
    ];
    let models = vec![
        openai_model("to-openai", &mocks[0]),
        anthropic_model("to-anthropic", &mocks[1]),
        model(
            "to-gemini",
            ProviderKind::Gemini,
            &mocks[2].base_url(),
            "gemini-2.5-flash",
        ),
    ];
    let gateway = Gateway::start(models).await;
    let mut failures = Vec::new();
    let (mut identical, mut translated, mut gaps) = (0, 0, 0);
    for fixture in &corpus {
        for (target, id) in [
            (MockKind::OpenAi, "to-openai"),
            (MockKind::Anthropic, "to-anthropic"),
            (MockKind::Gemini, "to-gemini"),
        ] {
            let upstream = mocks
                .iter()
                .find(|mock| mock.kind() == target)
                .expect("a mock per family");
            upstream.reset();
            let mut body = fixture.body.clone();
            body["model"] = Value::from(id);
            let request = gateway.post(&fixture.path).json(&body);
            let request = if fixture.route() == "/v1/messages" {
                request
                    .header("x-api-key", TOKEN)
                    .header("anthropic-version", "2023-06-01")
            } else {
                request.bearer_auth(TOKEN)
            };
            let response = request.send().await.expect("the service answers");
            let status = response.status().as_u16();
            let text = response.text().await.expect("a readable answer");
            let case = format!("{} -> {target:?}", fixture.name);
            match known_gap(fixture, target) {
                Some(refusal) => {
                    if status != 400 || !text.contains(refusal) {
                        failures.push(format!(
                            "{case}: expected today's 400 ({refusal}), got {status}: {text:.300} \
                             (fixed? remove the gap from known_gap and the README table)"
                        ));
                    }
                    gaps += 1;
                    continue;
                }
                None if status != 200 => {
                    failures.push(format!("{case}: {status} {text:.500}"));
                    continue;
                }
                None => {}
            }
            let requests = upstream.requests();
            if requests.len() != 1 {
                failures.push(format!("{case}: {} upstream requests", requests.len()));
                continue;
            }
            if format_of(fixture.route()) == target {
                let mut expected = fixture.body.clone();
                expected["model"] = Value::from(upstream_name(target));
                if requests[0].body != expected {
                    failures.push(format!(
                        "{case}: the same-format body changed upstream\nsent: {expected}\ngot:  {}",
                        requests[0].body
                    ));
                }
                identical += 1;
            } else {
                translated += 1;
            }
        }
    }
    gateway.stop().await;
    eprintln!("{identical} same-format replays, {translated} translated, {gaps} known gaps");
    assert!(
        identical > 0 && translated > 0,
        "the corpus must exercise pass-through and translation"
    );
    assert!(
        failures.is_empty(),
        "{} of {} replays failed:\n{}",
        failures.len(),
        corpus.len() * 3,
        failures.join("\n\n")
    );
}
