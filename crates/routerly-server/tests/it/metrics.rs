//! `GET /metrics` after real traffic: the counters match the calls made, the overhead header
//! matches the usage record, and the optional bearer token guards the endpoint.

use crate::common;

use common::*;
use routerly_mock::MockKind;
use serde_json::json;

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("expected a sample `{series}` in:\n{text}"))
        .parse()
        .expect("a numeric sample value")
}

#[tokio::test]
async fn metrics_count_calls_tokens_cost_attempts_and_streams() {
    let openai = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start(vec![
        openai_model("gpt", &openai),
        unreachable_model("down").await,
    ])
    .await;

    // Two answered calls, one streamed call, one call that falls back from an unreachable
    // provider, and one the provider refuses.
    let mut overheads = Vec::new();
    for text in ["hello there", "second call"] {
        let response = gateway.openai(&openai_body("gpt", text)).await;
        assert_eq!(response.status(), 200, "a plain call succeeds");
        let overhead: f64 = response
            .headers()
            .get("x-routerly-overhead-ms")
            .expect("non-streamed answers carry x-routerly-overhead-ms")
            .to_str()
            .expect("an ASCII header")
            .parse()
            .expect("the overhead is a number of milliseconds");
        assert!((0.0..1000.0).contains(&overhead), "overhead {overhead} ms");
        overheads.push(overhead);
        response.bytes().await.expect("read the answer");
    }
    let mut stream_body = openai_body("gpt", "stream me");
    stream_body["stream"] = json!(true);
    let response = gateway.openai(&stream_body).await;
    assert_eq!(response.status(), 200, "a streamed call succeeds");
    assert!(
        response.headers().get("x-routerly-overhead-ms").is_none(),
        "streams do not announce an overhead before they end"
    );
    response.text().await.expect("read the stream");
    let response = gateway.openai(&openai_body("down", "nobody home")).await;
    assert_eq!(
        response.status(),
        200,
        "an unreachable model falls back to the next"
    );
    response.bytes().await.expect("read the answer");
    let response = gateway
        .openai(&openai_body("gpt", "[mock:status=400] refused"))
        .await;
    assert_eq!(
        response.status(),
        400,
        "the provider's refusal is passed on"
    );
    response.bytes().await.expect("read the error");

    let records = gateway.wait_for_records(5).await;
    for overhead in &overheads {
        assert!(
            records
                .iter()
                .any(|record| format!("{:.3}", record.overhead_ms) == format!("{overhead:.3}")),
            "the header's overhead {overhead} is the usage record's: {records:#?}"
        );
    }

    let response = gateway.get("/metrics").send().await.expect("scrape");
    assert_eq!(response.status(), 200, "metrics are open without a token");
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/plain; version=0.0.4")),
        "Prometheus text format"
    );
    let text = response.text().await.expect("read the exposition");
    let ok = format!(
        "project=\"{PROJECT_ID}\",model=\"gpt\",provider=\"openai\",surface=\"chat_completions\",outcome=\"success\""
    );
    let failed = format!(
        "project=\"{PROJECT_ID}\",model=\"gpt\",provider=\"openai\",surface=\"chat_completions\",outcome=\"error\""
    );
    assert_eq!(
        sample(&text, &format!("routerly_requests_total{{{ok}}}")),
        4.0
    );
    assert_eq!(
        sample(&text, &format!("routerly_requests_total{{{failed}}}")),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("routerly_request_errors_total{{{failed}}}")),
        1.0
    );
    assert!(
        !text.contains(&format!("routerly_request_errors_total{{{ok}}}")),
        "successes are not errors"
    );
    assert_eq!(
        sample(
            &text,
            &format!("routerly_request_duration_seconds_count{{{ok}}}")
        ),
        4.0
    );
    assert_eq!(
        sample(&text, &format!("routerly_overhead_seconds_count{{{ok}}}")),
        4.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("routerly_time_to_first_token_seconds_count{{{ok}}}")
        ),
        1.0,
        "only the stream has a time to first token"
    );

    let successes: Vec<_> = records.iter().filter(|r| r.status == 200).collect();
    let input: u64 = successes.iter().map(|r| r.input_tokens).sum();
    let output: u64 = successes.iter().map(|r| r.output_tokens).sum();
    let cost: f64 = successes.iter().map(|r| r.cost_usd).sum();
    assert!(
        input > 0 && output > 0,
        "the mock reports usage: {records:#?}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("routerly_tokens_total{{{ok},type=\"input\"}}")
        ),
        input as f64
    );
    assert_eq!(
        sample(
            &text,
            &format!("routerly_tokens_total{{{ok},type=\"output\"}}")
        ),
        output as f64
    );
    let scraped_cost = sample(&text, &format!("routerly_cost_usd_total{{{ok}}}"));
    assert!(
        (scraped_cost - cost).abs() < 1e-12,
        "cost {scraped_cost} is the records' {cost}"
    );
    assert_eq!(
        sample(
            &text,
            "routerly_upstream_attempts_total{model=\"gpt\",result=\"ok\"}"
        ),
        4.0
    );
    assert_eq!(
        sample(
            &text,
            "routerly_upstream_attempts_total{model=\"gpt\",result=\"4xx\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "routerly_upstream_attempts_total{model=\"down\",result=\"network\"}"
        ),
        1.0
    );
    assert_eq!(sample(&text, "routerly_in_flight_requests"), 0.0);
    assert!(
        sample(&text, "routerly_usage_queue_depth") >= 0.0,
        "the queue depth is exposed"
    );
    assert!(
        !text.contains(TOKEN) && !text.contains("hello there"),
        "no token and no request text in the metrics"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_configured_metrics_token_guards_the_endpoint() {
    let openai = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(vec![openai_model("gpt", &openai)], |draft| {
        draft.settings.metrics_token = Some("scrape-secret".to_owned());
    })
    .await;
    let response = gateway.get("/metrics").send().await.expect("scrape");
    assert_eq!(response.status(), 401, "no token, no metrics");
    let response = gateway
        .get("/metrics")
        .bearer_auth("wrong")
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 401, "a wrong token, no metrics");
    let response = gateway
        .get("/metrics")
        .bearer_auth("scrape-secret")
        .send()
        .await
        .expect("scrape");
    assert_eq!(
        response.status(),
        200,
        "the configured token opens the metrics"
    );
    let text = response.text().await.expect("read the exposition");
    assert!(text.contains("routerly_in_flight_requests 0"), "{text}");
    gateway.stop().await;
}
