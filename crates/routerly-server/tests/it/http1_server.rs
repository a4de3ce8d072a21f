//! The HTTP/1.1 server as a client on a raw socket sees it: Routerly's own path for the
//! proxy's calls (`net::direct`) and hyper for everything that path hands over, mixed on one
//! connection, with keep-alive, pipelining, `connection: close`, the head and body timeouts
//! and heads that do not parse.

use crate::common;

use std::time::Duration;

use common::*;
use routerly_mock::MockKind;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer read off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "a JSON body ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A client on one connection that reads answers in order.
struct Connection {
    socket: TcpStream,
    read: Vec<u8>,
}

impl Connection {
    async fn open(gateway: &Gateway) -> Connection {
        let address = gateway.base_url.trim_start_matches("http://");
        Connection {
            socket: TcpStream::connect(address).await.expect("connect"),
            read: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.expect("send");
    }

    /// Sends `request` up to `split`, waits `pause`, then sends the rest.
    async fn send_apart(&mut self, request: &[u8], split: usize, pause: Duration) {
        self.send(&request[..split]).await;
        tokio::time::sleep(pause).await;
        self.send(&request[split..]).await;
    }

    /// A chat call saying `prompt`, and its answer.
    async fn chat(&mut self, prompt: &str) -> Answer {
        self.send(&post(
            "/v1/chat/completions",
            &openai_body("auto", prompt),
            "",
        ))
        .await;
        self.answer().await
    }

    /// Reads more bytes; false at the end of the connection.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), self.socket.read(&mut chunk))
            .await
            .expect("the server answers within 10 s")
            .unwrap_or(0);
        self.read.extend_from_slice(&chunk[..read]);
        read > 0
    }

    /// The next answer (informational ones, such as `100 Continue`, returned too).
    async fn answer(&mut self) -> Answer {
        loop {
            let mut lines = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut lines);
            if let httparse::Status::Complete(length) =
                response.parse(&self.read).expect("a well-formed head")
            {
                let status = response.code.expect("a status");
                let headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .map(|header| {
                        (
                            header.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(header.value).into_owned(),
                        )
                    })
                    .collect();
                self.read.drain(..length);
                let mut answer = Answer {
                    status,
                    headers,
                    body: Vec::new(),
                };
                if status < 200 {
                    return answer;
                }
                if let Some(length) = answer.header("content-length") {
                    let length: usize = length.parse().expect("a number");
                    while self.read.len() < length {
                        assert!(self.fill().await, "the connection ended mid-body");
                    }
                    answer.body = self.read.drain(..length).collect();
                } else {
                    assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
                    answer.body = self.chunked().await;
                }
                return answer;
            }
            assert!(self.fill().await, "the connection ended before an answer");
        }
    }

    async fn chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = self.read.windows(2).position(|pair| pair == b"\r\n") {
                    break at;
                }
                assert!(self.fill().await, "the connection ended mid-chunk");
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&self.read[..line_end]).expect("a size line"),
                16,
            )
            .expect("a hexadecimal size");
            self.read.drain(..line_end + 2);
            while self.read.len() < size + 2 {
                assert!(self.fill().await, "the connection ended mid-chunk");
            }
            body.extend(self.read.drain(..size));
            assert_eq!(
                self.read.drain(..2).collect::<Vec<u8>>(),
                b"\r\n",
                "a chunk ends with CRLF"
            );
            if size == 0 {
                return body;
            }
        }
    }

    /// Whether the server closes the connection within `within`.
    async fn closes_within(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        matches!(
            tokio::time::timeout(within, self.socket.read(&mut chunk)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

/// A `POST` of `body` to `path` with the test token, `extra` header lines added.
fn post(path: &str, body: &Value, extra: &str) -> Vec<u8> {
    let body = serde_json::to_vec(body).expect("JSON");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: routerly\r\nAuthorization: Bearer {TOKEN}\r\n\
         x-api-key: {TOKEN}\r\nanthropic-version: 2023-06-01\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

/// Where the head of `request` ends (after its blank line).
fn head_end(request: &[u8]) -> usize {
    request
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a head")
        + 4
}

fn assert_answered(answer: &Answer, text: &str) {
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = answer.json();
    let said = body["choices"][0]["message"]["content"]
        .as_str()
        .or_else(|| body["content"][0]["text"].as_str())
        .unwrap_or_else(|| panic!("an answer with text: {body}"));
    assert_eq!(said, text, "{body}");
}

async fn gateway() -> (routerly_mock::MockServer, Gateway) {
    let mock = mock(MockKind::OpenAi).await;
    let gateway = Gateway::start_with(vec![openai_model("gpt", &mock)], |draft| {
        draft.settings.connections.header_timeout_ms = 400;
        draft.settings.connections.body_timeout_ms = 300;
    })
    .await;
    (mock, gateway)
}

#[tokio::test]
async fn pipelined_calls_on_one_connection_are_answered_in_order() {
    let (_mock, gateway) = gateway().await;
    let mut connection = Connection::open(&gateway).await;
    let prompts = ["first call", "second call", "third one"];
    let mut bytes = Vec::new();
    bytes.extend(post(
        "/v1/chat/completions",
        &openai_body("auto", prompts[0]),
        "",
    ));
    bytes.extend(post(
        "/v1/messages",
        &anthropic_body("auto", prompts[1]),
        "",
    ));
    bytes.extend(post(
        "/v1/chat/completions?extra=1",
        &openai_body("auto", prompts[2]),
        "",
    ));
    // All three in one write: the second and third wait in the buffer behind the first.
    connection.send(&bytes).await;
    for prompt in prompts {
        let answer = connection.answer().await;
        assert_answered(
            &answer,
            &mock_answer(MockKind::OpenAi, "gpt-4o-mini", prompt),
        );
        assert!(answer.header("date").is_some(), "{answer:?}");
        assert_eq!(answer.header("connection"), None, "kept alive: {answer:?}");
    }
    assert_eq!(gateway.stop().await.len(), 3);
}

#[tokio::test]
async fn a_connection_handed_to_hyper_keeps_serving_every_kind_of_request() {
    let (_mock, gateway) = gateway().await;
    let mut connection = Connection::open(&gateway).await;
    let text = |prompt| mock_answer(MockKind::OpenAi, "gpt-4o-mini", prompt);

    assert_answered(&connection.chat("direct").await, &text("direct"));

    // Not a call: hyper and the router take the connection from here.
    connection
        .send(b"GET /health HTTP/1.1\r\nHost: routerly\r\n\r\n")
        .await;
    let health = connection.answer().await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.json()["status"], "ok");

    // A chunked body, then one sent after `100 Continue`, then a plain call again.
    let body = serde_json::to_vec(&openai_body("auto", "chunked")).expect("JSON");
    let mut chunked = b"POST /v1/chat/completions HTTP/1.1\r\nHost: routerly\r\n".to_vec();
    chunked.extend(
        format!("Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n").bytes(),
    );
    chunked.extend(format!("{:x}\r\n", body.len()).bytes());
    chunked.extend(&body);
    chunked.extend(b"\r\n0\r\n\r\n");
    connection.send(&chunked).await;
    assert_answered(&connection.answer().await, &text("chunked"));

    let expect = post(
        "/v1/chat/completions",
        &openai_body("auto", "continued"),
        "Expect: 100-continue\r\n",
    );
    let split = head_end(&expect);
    connection.send(&expect[..split]).await;
    assert_eq!(connection.answer().await.status, 100);
    connection.send(&expect[split..]).await;
    assert_answered(&connection.answer().await, &text("continued"));

    assert_answered(&connection.chat("after").await, &text("after"));
    assert_eq!(gateway.stop().await.len(), 4);
}

#[tokio::test]
async fn a_body_sent_late_and_a_body_past_the_direct_limit_are_both_served() {
    let (_mock, gateway) = gateway().await;
    let mut connection = Connection::open(&gateway).await;
    // The head first, the body a moment later (as SDKs that write them apart do).
    let request = post("/v1/messages", &anthropic_body("auto", "late body"), "");
    connection
        .send_apart(&request, head_end(&request), Duration::from_millis(20))
        .await;
    assert_answered(
        &connection.answer().await,
        &mock_answer(MockKind::OpenAi, "gpt-4o-mini", "late body"),
    );
    let long = "word ".repeat(30_000);
    connection
        .send(&post(
            "/v1/chat/completions",
            &openai_body("auto", &long),
            "",
        ))
        .await;
    // Read by hyper and the handler's reader, on the same connection.
    let answer = connection.answer().await;
    assert_eq!(answer.status, 200, "{answer:?}");

    assert_eq!(gateway.stop().await.len(), 2);
}

#[tokio::test]
async fn a_body_slower_than_the_direct_paths_wait_is_handed_to_hyper_within_its_bounds() {
    let (_mock, gateway) = gateway().await;
    // Past the direct path's 100 ms wait for the rest of a body, within the 300 ms body
    // timeout that hyper's reader applies from the hand-over: answered.
    let mut connection = Connection::open(&gateway).await;
    let request = post("/v1/messages", &anthropic_body("auto", "slow body"), "");
    connection
        .send_apart(&request, head_end(&request) + 5, Duration::from_millis(180))
        .await;
    assert_answered(
        &connection.answer().await,
        &mock_answer(MockKind::OpenAi, "gpt-4o-mini", "slow body"),
    );
    // A body that stalls: the 408 comes after the body timeout, and no later than the wait
    // plus the timeout (with room for a loaded machine), not at the head timeout or never.
    let mut stalled = Connection::open(&gateway).await;
    let request = post("/v1/messages", &anthropic_body("auto", "never sent"), "");
    let started = std::time::Instant::now();
    stalled.send(&request[..head_end(&request) + 5]).await;
    let answer = stalled.answer().await;
    let waited = started.elapsed();
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "answered after {waited:?}"
    );
    // Both calls are recorded: the one served and the one refused.
    let statuses: Vec<u16> = gateway
        .stop()
        .await
        .iter()
        .map(|record| record.status)
        .collect();
    assert_eq!(statuses, vec![200, 408]);
}

#[tokio::test]
async fn calls_pipelined_before_the_client_closes_its_side_are_answered() {
    let (_mock, gateway) = gateway().await;
    let mut connection = Connection::open(&gateway).await;
    let mut bytes = post(
        "/v1/chat/completions",
        &openai_body("auto", "slow [mock:delay_ms=300]"),
        "",
    );
    bytes.extend(post(
        "/v1/chat/completions",
        &openai_body("auto", "second"),
        "",
    ));
    connection.send(&bytes).await;
    connection
        .socket
        .shutdown()
        .await
        .expect("close the sending side");
    // The end of the connection is not taken for a hang-up while a request waits behind
    // the call (as hyper does); the last call, with nothing behind it, is cancelled.
    let answer = connection.answer().await;
    assert_eq!(answer.status, 200, "{answer:?}");
    gateway.stop().await;
}

#[tokio::test]
async fn connection_close_is_answered_and_honoured() {
    let (_mock, gateway) = gateway().await;
    let mut connection = Connection::open(&gateway).await;
    connection
        .send(&post(
            "/v1/chat/completions",
            &openai_body("auto", "last one"),
            "Connection: close\r\n",
        ))
        .await;
    let answer = connection.answer().await;
    assert_answered(
        &answer,
        &mock_answer(MockKind::OpenAi, "gpt-4o-mini", "last one"),
    );
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    assert!(connection.closes_within(Duration::from_secs(2)).await);
    gateway.stop().await;
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_in_the_callers_format() {
    let (_mock, gateway) = gateway().await;
    let mut connection = Connection::open(&gateway).await;
    let request = post("/v1/messages", &anthropic_body("auto", "never sent"), "");
    // The head and a few bytes of the body, then silence past the body timeout.
    let split = head_end(&request);
    connection.send(&request[..split + 5]).await;
    let answer = connection.answer().await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_anthropic_error(&answer.json(), "invalid_request_error");
    gateway.stop().await;
}

#[tokio::test]
async fn idle_and_slow_heads_are_closed_at_the_head_timeout() {
    let (_mock, gateway) = gateway().await;
    // Nothing sent.
    let mut idle = Connection::open(&gateway).await;
    // Half a head.
    let mut slow = Connection::open(&gateway).await;
    slow.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: rou")
        .await;
    // Idle after a call.
    let mut used = Connection::open(&gateway).await;
    assert_eq!(used.chat("then idle").await.status, 200);
    for connection in [&mut idle, &mut slow, &mut used] {
        assert!(
            connection.closes_within(Duration::from_secs(3)).await,
            "closed after the 400 ms head timeout"
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn heads_the_direct_path_does_not_take_get_hypers_answers() {
    let (_mock, gateway) = gateway().await;
    for (request, status) in [
        // Not a number.
        (&b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nContent-Length: x1\r\n\r\n"[..], 400),
        // Two lengths that disagree.
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            400,
        ),
        // Not HTTP.
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
        // A length behind Unicode white space: hyper refuses it, so the direct path must
        // not read it as 2 (a front proxy that ignores the header would frame it as 0).
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nContent-Length: \xc2\xa02\r\n\r\n{}",
            400,
        ),
        // A target httparse reads and `http::Uri` refuses: the head goes back to hyper.
        (
            b"POST /v1/chat/completions?a=<b> HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\n{}",
            400,
        ),
        // A method the route does not take.
        (b"PUT /v1/chat/completions HTTP/1.1\r\nHost: r\r\nContent-Length: 0\r\n\r\n", 405),
    ] {
        let mut connection = Connection::open(&gateway).await;
        connection.send(request).await;
        let answer = connection.answer().await;
        assert_eq!(
            answer.status,
            status,
            "{}: {answer:?}",
            String::from_utf8_lossy(request)
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_streamed_answer_is_chunked_and_the_connection_kept() {
    let (_mock, gateway) = gateway().await;
    let mut connection = Connection::open(&gateway).await;
    for prompt in ["stream one", "stream two"] {
        let mut body = openai_body("auto", prompt);
        body["stream"] = json!(true);
        connection
            .send(&post("/v1/chat/completions", &body, ""))
            .await;
        let answer = connection.answer().await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
        let text = String::from_utf8(answer.body).expect("UTF-8 events");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        assert_eq!(
            openai_stream_text(&sse_events(&text)),
            mock_answer(MockKind::OpenAi, "gpt-4o-mini", prompt)
        );
    }
    assert_eq!(gateway.stop().await.len(), 2);
}
