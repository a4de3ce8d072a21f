//! Streams: same-format and cross-format relays, usage in the stream, a provider dying
//! mid-stream, a client hanging up.

use crate::common;

use std::time::Duration;

use common::*;
use routerly_core::usage::{Outcome, Surface};
use routerly_mock::MockKind;
use serde_json::{Value, json};

fn openai_stream_body(model: &str, text: &str, include_usage: Option<bool>) -> Value {
    let mut body = openai_body(model, text);
    body["stream"] = json!(true);
    if let Some(include_usage) = include_usage {
        body["stream_options"] = json!({"include_usage": include_usage});
    }
    body
}

fn anthropic_stream_body(model: &str, text: &str) -> Value {
    let mut body = anthropic_body(model, text);
    body["stream"] = json!(true);
    body
}

/// Status, model header, content type and events of a streamed answer.
async fn read_stream(response: reqwest::Response) -> (u16, Option<String>, String, Vec<Event>) {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().expect("an ASCII header").to_owned())
    };
    let model_header = header("x-routerly-model");
    let content_type = header("content-type").unwrap_or_default();
    let text = response.text().await.expect("read the whole stream");
    (status, model_header, content_type, sse_events(&text))
}

/// The text an Anthropic client assembles from the stream's deltas.
fn anthropic_stream_text(events: &[Event]) -> String {
    events
        .iter()
        .filter(|event| event.name.as_deref() == Some("content_block_delta"))
        .filter_map(|event| event.json()["delta"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// The chunks of an OpenAI stream that carry a non-null `usage`.
fn usage_chunks(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter(|event| event.data != "[DONE]")
        .map(Event::json)
        .filter(|chunk| chunk.get("usage").is_some_and(|usage| !usage.is_null()))
        .collect()
}

/// An OpenAI client streaming from `provider`, with and without `include_usage`.
async fn check_openai_client_stream(provider: MockKind) {
    let provider_mock = mock(provider).await;
    let model = model_on("served", &provider_mock);
    let upstream = upstream_of(provider);
    let gateway = Gateway::start(vec![model]).await;
    let text = mock_answer(provider, upstream, "hi");

    for include_usage in [Some(true), Some(false), None] {
        let (status, model_header, content_type, events) = read_stream(
            gateway
                .openai(&openai_stream_body("auto", "hi", include_usage))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{events:?}");
        assert_eq!(model_header.as_deref(), Some("served"));
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        assert_eq!(
            events.last().map(|event| event.data.as_str()),
            Some("[DONE]"),
            "an OpenAI stream ends with [DONE]: {events:?}"
        );
        assert_eq!(openai_stream_text(&events), text, "{events:?}");
        for event in events.iter().filter(|event| event.data != "[DONE]") {
            let chunk = event.json();
            assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
            assert_eq!(
                chunk["model"], "served",
                "chunks name the serving model: {chunk}"
            );
        }
        let usage = usage_chunks(&events);
        if include_usage == Some(true) {
            assert_eq!(usage.len(), 1, "one usage chunk when asked for: {events:?}");
            assert_eq!(usage[0]["choices"], json!([]), "{}", usage[0]);
            assert_eq!(usage[0]["usage"]["prompt_tokens"], prompt_tokens("hi"));
            assert_eq!(usage[0]["usage"]["completion_tokens"], words(&text));
        } else {
            assert!(
                usage.is_empty(),
                "no usage unless asked for ({include_usage:?}): {usage:?}"
            );
        }
    }

    assert_eq!(provider_mock.requests().len(), 3);
    if provider == MockKind::OpenAi {
        for request in provider_mock.requests() {
            assert_eq!(
                request.body["stream_options"]["include_usage"], true,
                "Routerly asks the provider for usage in the stream"
            );
        }
    }
    let records = gateway.stop().await;
    assert_eq!(records.len(), 3, "{records:#?}");
    for record in &records {
        assert_eq!(record.outcome, Outcome::Success, "{record:#?}");
        assert!(record.stream);
        assert_eq!(record.model_id.as_deref(), Some("served"));
        assert!(
            record.ttft_ms.is_some(),
            "a stream has a time to first token"
        );
        assert_tokens_and_cost(record, prompt_tokens("hi"), words(&text));
    }
}

#[tokio::test]
async fn openai_client_streams_from_openai_with_usage_only_when_asked() {
    check_openai_client_stream(MockKind::OpenAi).await;
}

#[tokio::test]
async fn openai_client_streams_from_anthropic_with_usage_only_when_asked() {
    check_openai_client_stream(MockKind::Anthropic).await;
}

/// An Anthropic client streaming from `provider`.
async fn check_anthropic_client_stream(provider: MockKind) {
    let provider_mock = mock(provider).await;
    let model = model_on("served", &provider_mock);
    let upstream = upstream_of(provider);
    let gateway = Gateway::start(vec![model]).await;
    let text = mock_answer(provider, upstream, "hi");

    let (status, model_header, content_type, events) = read_stream(
        gateway
            .anthropic(&anthropic_stream_body("auto", "hi"))
            .await,
    )
    .await;

    assert_eq!(status, 200, "{events:?}");
    assert_eq!(model_header.as_deref(), Some("served"));
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let names: Vec<&str> = events
        .iter()
        .filter_map(|event| event.name.as_deref())
        .filter(|name| *name != "ping")
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert!(names.contains(&"message_delta"), "{names:?}");
    let start = events[0].json();
    assert_eq!(start["message"]["model"], "served", "{start}");
    assert_eq!(anthropic_stream_text(&events), text);
    let delta = events
        .iter()
        .find(|event| event.name.as_deref() == Some("message_delta"))
        .expect("a message_delta event")
        .json();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn", "{delta}");
    assert_eq!(delta["usage"]["output_tokens"], words(&text), "{delta}");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record.outcome, Outcome::Success, "{record:#?}");
    assert_eq!(record.surface, Surface::Messages);
    assert!(record.stream);
    assert_tokens_and_cost(record, prompt_tokens("hi"), words(&text));
}

#[tokio::test]
async fn anthropic_client_streams_from_anthropic() {
    check_anthropic_client_stream(MockKind::Anthropic).await;
}

#[tokio::test]
async fn anthropic_client_streams_from_openai() {
    check_anthropic_client_stream(MockKind::OpenAi).await;
}

#[tokio::test]
async fn a_provider_dying_mid_stream_ends_with_an_anthropic_error_event() {
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let spare = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![
        anthropic_model("claude", &anthropic_mock),
        openai_model("gpt", &spare),
    ])
    .await;

    let prompt = "hi [mock:die_after=3]";
    let (status, model_header, _, events) = read_stream(
        gateway
            .anthropic(&anthropic_stream_body("claude", prompt))
            .await,
    )
    .await;

    assert_eq!(status, 200, "the stream had started: {events:?}");
    assert_eq!(model_header.as_deref(), Some("claude"));
    let names: Vec<Option<&str>> = events.iter().map(|event| event.name.as_deref()).collect();
    assert_eq!(
        names,
        [
            Some("message_start"),
            Some("content_block_start"),
            Some("ping"),
            Some("error")
        ],
        "the events so far, then an error event: {events:?}"
    );
    let error = events[3].json();
    assert_anthropic_error(&error, "api_error");
    assert!(
        spare.requests().is_empty(),
        "a started stream is not retried elsewhere"
    );

    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(record.outcome, Outcome::Error, "{record:#?}");
    assert_eq!(record.model_id.as_deref(), Some("claude"));
    assert!(record.error.is_some(), "the record says what broke");
    // message_start carried the input tokens (and Anthropic's initial output count of 1).
    assert_tokens_and_cost(record, prompt_tokens(prompt), 1);
}

#[tokio::test]
async fn a_provider_dying_mid_stream_ends_with_an_openai_error_chunk() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![openai_model("gpt", &openai_mock)]).await;

    let body = openai_stream_body("gpt", "hi [mock:die_after=3]", Some(true));
    let (status, model_header, _, events) = read_stream(gateway.openai(&body).await).await;

    assert_eq!(status, 200, "{events:?}");
    assert_eq!(model_header.as_deref(), Some("gpt"));
    assert_eq!(events.len(), 4, "three chunks, then the error: {events:?}");
    for event in &events[..3] {
        assert_eq!(event.json()["object"], "chat.completion.chunk", "{event:?}");
    }
    assert_openai_error(&events[3].json(), "server_error");
    assert!(
        events.iter().all(|event| event.data != "[DONE]"),
        "a broken stream does not claim to be done: {events:?}"
    );

    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].outcome, Outcome::Error, "{records:#?}");
    // OpenAI reports usage only in the last chunk, which never came.
    assert_tokens_and_cost(&records[0], 0, 0);
}

#[tokio::test]
async fn a_client_hanging_up_mid_stream_leaves_one_cancelled_record() {
    let anthropic_mock = mock(MockKind::Anthropic).await;
    let gateway = Gateway::start(vec![anthropic_model("claude", &anthropic_mock)]).await;

    let prompt = "hi there, tell me more [mock:chunk_delay_ms=200]";
    let mut response = gateway
        .openai(&openai_stream_body("auto", prompt, None))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let first = response
        .chunk()
        .await
        .expect("read the first chunk")
        .expect("the stream has a first chunk");
    assert!(!first.is_empty());
    drop(response);

    let records = gateway.wait_for_records(1).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    // Let the relay run on a little, to be sure it does not record twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "exactly one record: {records:#?}");
    let record = &records[0];
    assert_eq!(record.outcome, Outcome::Cancelled, "{record:#?}");
    assert_eq!(record.model_id.as_deref(), Some("claude"));
    assert!(record.stream);
    assert_eq!(
        record.input_tokens,
        prompt_tokens(prompt),
        "tokens seen so far are kept: {record:#?}"
    );
    assert!(
        record.latency_ms < 2_000.0,
        "the hang-up was noticed promptly, not at the end of the stream: {record:#?}"
    );
}

#[tokio::test]
async fn a_client_hanging_up_before_the_answer_leaves_one_cancelled_record() {
    let openai_mock = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![openai_model("gpt", &openai_mock)]).await;

    for stream in [false, true] {
        let mut body = openai_body("auto", "hi [mock:delay_ms=800]");
        body["stream"] = json!(stream);
        let result = gateway
            .post("/v1/chat/completions")
            .bearer_auth(TOKEN)
            .timeout(Duration::from_millis(200))
            .json(&body)
            .send()
            .await;
        assert!(
            result.as_ref().is_err_and(reqwest::Error::is_timeout),
            "expected the client to give up first: {result:?}"
        );
    }

    // Give the provider time to answer, so a late record would show up too.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let records = gateway.stop().await;
    assert_eq!(
        records.len(),
        2,
        "one record per call that passed authentication: {records:#?}"
    );
    for record in &records {
        assert_eq!(record.outcome, Outcome::Cancelled, "{record:#?}");
        assert_eq!(
            record.status, 499,
            "nginx's client-closed-request: {record:#?}"
        );
        assert_eq!(record.model_id.as_deref(), Some("gpt"), "{record:#?}");
        assert!(
            record.latency_ms < 700.0,
            "recorded when the client left: {record:#?}"
        );
    }
}

#[tokio::test]
async fn a_stream_falls_back_before_its_first_event_and_times_out_when_idle() {
    let first = mock(MockKind::OpenAi).await;
    let second = mock(MockKind::Anthropic).await;
    let mut second_model = anthropic_model("second", &second);
    second_model.timeouts.idle_ms = Some(150);
    let gateway = Gateway::start(vec![openai_model("first", &first), second_model]).await;
    first.fail_next(2, 503);

    let (status, model_header, _, events) = read_stream(
        gateway
            .openai(&openai_stream_body("auto", "hi", Some(true)))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(model_header.as_deref(), Some("second"));
    assert_eq!(
        events.last().map(|event| event.data.as_str()),
        Some("[DONE]")
    );

    // The provider falls silent longer than the idle timeout after its first events.
    let (status, model_header, _, events) = read_stream(
        gateway
            .anthropic(&anthropic_stream_body(
                "auto",
                "hi [mock:chunk_delay_ms=400]",
            ))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(model_header.as_deref(), Some("second"));
    let last = events.last().expect("some events");
    assert_eq!(last.name.as_deref(), Some("error"), "{events:?}");
    assert_anthropic_error(&last.json(), "timeout_error");

    let records = gateway.stop().await;
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0].outcome, Outcome::Success);
    assert_eq!(records[0].attempts.len(), 1, "{records:#?}");
    assert_eq!(records[0].attempts[0].status, Some(503));
    assert_eq!(records[1].outcome, Outcome::Timeout, "{records:#?}");
    assert_eq!(
        records[1].attempts.len(),
        1,
        "the first model failed first: {records:#?}"
    );
}

#[tokio::test]
async fn an_event_whose_json_spans_lines_reaches_the_client_on_one_line_with_its_model_replaced() {
    // An OpenAI-compatible provider whose first chunk's JSON is split over two `data:`
    // lines (a line break between members): the member splice cannot copy it as it is.
    let gateway = gateway_to_a_provider_answering(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\n\
        data:  \"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
        data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[],\
        \"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n\
        data: [DONE]\n\n"
            .to_owned(),
    )
    .await;
    let (status, _, _, events) = read_stream(
        gateway
            .openai(&openai_stream_body("served", "hi", None))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let data: Vec<&str> = events.iter().map(|event| event.data.as_str()).collect();
    assert_eq!(
        data.len(),
        2,
        "the chunk and [DONE], the usage-only chunk withheld: {data:?}"
    );
    assert!(!data[0].contains('\n'), "one line: {:?}", data[0]);
    let chunk = events[0].json();
    assert_eq!(chunk["model"], "served");
    assert_eq!(chunk["choices"][0]["delta"]["content"], "Hi");
    assert!(
        chunk.get("usage").is_none(),
        "the client did not ask for usage: {chunk}"
    );
    assert_eq!(data[1], "[DONE]");
    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!((records[0].input_tokens, records[0].output_tokens), (3, 1));
}

#[tokio::test]
async fn events_that_begin_alike_have_every_model_replaced_and_every_usage_read() {
    // Consecutive events share their leading members (what the relay found of them is
    // taken from the event before), in shapes a provider may send: `model` twice, `usage`
    // first or before `choices`, and a lead that grows and shrinks from one event to the next.
    let events = [
        r#"{"id":"c1","model":"up","choices":[{"index":0,"delta":{"content":"a"}}]}"#,
        r#"{"id":"c1","model":"up","choices":[{"index":0,"delta":{"content":"b"}}]}"#,
        r#"{"id":"c1","model":"up","model":"up","choices":[{"index":0,"delta":{"content":"c"}}]}"#,
        r#"{"id":"c1","model":"up","model":"up","x":1,"choices":[{"index":0,"delta":{"content":"d"}}]}"#,
        r#"{"id":"c1","model":"up","usage":null,"model":"up","choices":[{"index":0,"delta":{"content":"e"}}]}"#,
        r#"{"usage":null,"id":"c1","model":"up","choices":[{"index":0,"delta":{"content":"f"}}]}"#,
        r#"{"usage":null,"id":"c1","model":"up","choices":[{"index":0,"delta":{"content":"g"}}]}"#,
        r#"{"id":"c1","model":"up","usage":{"prompt_tokens":2,"completion_tokens":7,"total_tokens":9},"choices":[{"index":0,"delta":{"content":"h"}}]}"#,
    ];
    let mut answer = String::new();
    for event in events {
        answer.push_str(&format!("data: {event}\n\n"));
    }
    answer.push_str("data: [DONE]\n\n");
    let gateway = gateway_to_a_provider_answering(answer).await;
    let (status, _, _, received) = read_stream(
        gateway
            .openai(&openai_stream_body("served", "hi", None))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(received.len(), events.len() + 1, "{received:?}");
    for (sent, got) in events.iter().zip(&received) {
        let sent: Value = serde_json::from_str(sent).expect("JSON");
        // Every `model`, a repeated one too, is replaced: the raw text names no other.
        assert!(!got.data.contains("\"up\""), "{}", got.data);
        assert!(!got.data.contains("usage"), "not asked for: {}", got.data);
        let got = got.json();
        assert_eq!(got["model"], "served", "{got}");
        assert_eq!(got["choices"], sent["choices"]);
        assert_eq!(got["id"], "c1");
    }
    assert_eq!(received[events.len()].data, "[DONE]");
    let records = gateway.stop().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!((records[0].input_tokens, records[0].output_tokens), (2, 7));
}

/// A gateway whose one model, `served`, is an OpenAI-compatible provider on loopback that
/// answers its one call with a 200 event stream of `events` (SSE text) and closes.
async fn gateway_to_a_provider_answering(events: String) -> Gateway {
    use routerly_core::config::ProviderKind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("a connection");
        let mut request = vec![0; 64 * 1024];
        let _ = socket.read(&mut request).await;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
        socket
            .write_all(format!("{head}{events}").as_bytes())
            .await
            .expect("answer");
    });
    let served = model(
        "served",
        ProviderKind::OpenAi,
        &format!("http://{address}/v1"),
        "gpt-4o-mini",
    );
    Gateway::start(vec![served]).await
}
