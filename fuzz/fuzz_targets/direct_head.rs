//! The proxy's own HTTP/1.1 request reader (`net::direct`) against hyper's.
//!
//! Input: the first bytes a client sends on a connection. Where the direct path takes a
//! request from them (it leaves everything else to hyper), hyper, serving the same bytes
//! as a whole connection, must read the same first request: method, target, version, the
//! header lines in order, and the body. So the direct path never frames a request
//! differently from the server that answers every request it declines.

#![no_main]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What a server reads of one request.
#[derive(Debug, PartialEq)]
struct Reading {
    method: Method,
    target: String,
    version: Version,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

async fn reading(request: http::Request<impl hyper::body::Body>) -> Option<Reading> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some(Reading {
        method: parts.method,
        target: parts.uri.to_string(),
        version: parts.version,
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        body,
    })
}

/// The first request hyper reads from a connection whose client sends `bytes` and then
/// closes its side; `None` when hyper reads none.
async fn hypers_reading(bytes: &[u8]) -> Option<Reading> {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let first: Arc<Mutex<Option<Option<Reading>>>> = Arc::default();
    let seen = Arc::clone(&first);
    let service = service_fn(move |request| {
        let seen = Arc::clone(&seen);
        async move {
            let read = reading(request).await;
            seen.lock().unwrap().get_or_insert(read);
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
        }
    });
    // The client closes its side after its bytes: hyper still answers what it read.
    let connection = http1::Builder::new()
        .half_close(true)
        .serve_connection(TokioIo::new(server), service);
    let client_side = async {
        client.write_all(bytes).await.ok();
        client.shutdown().await.ok();
        let mut answers = Vec::new();
        client.read_to_end(&mut answers).await.ok();
    };
    let _ = tokio::join!(connection, client_side);
    first.lock().unwrap().take().flatten()
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
}

fuzz_target!(|bytes: &[u8]| {
    let Some((request, taken)) = routerly_server::net::first_request(bytes) else {
        return;
    };
    assert!(taken <= bytes.len());
    assert_eq!(request.method(), Method::POST);
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
            let ours = reading(request)
                .await
                .expect("the direct path's body is whole");
            let hypers = hypers_reading(bytes).await;
            assert_eq!(
                Some(&ours),
                hypers.as_ref(),
                "the direct path and hyper read the first request of {:?} differently",
                String::from_utf8_lossy(bytes)
            );
        });
    });
});
