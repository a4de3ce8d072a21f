//! How connections are accepted and served, and who the client is.
//!
//! - [`serve_connections`]: the accept loop. At most `max_connections` connections are served
//!   at once (the rest wait in the kernel's accept queue); HTTP/1.1 only (HTTP/2 and TLS are
//!   a reverse proxy's job); a request head must arrive within
//!   `header_timeout_ms` of the connection starting to wait for it, which also ends idle
//!   keep-alive connections; `accept` errors (out of descriptors) are backed off instead of
//!   spun on. On shutdown, connections with no request in progress — idle ones and ones still
//!   sending a head — close at once; requests in progress get the grace period.
//! - Each connection starts on Routerly's own HTTP/1.1 path for the proxy's calls
//!   ([`direct`]), which hands it to hyper and the router from the first request it does not
//!   serve itself.
//! - [`raise_nofile_limit`]: the soft `RLIMIT_NOFILE` raised to the hard limit at start.
//! - [`ClientAddr`]: the client's address: the peer's, or, when the peer is a trusted
//!   proxy, the rightmost address in its forwarding headers that is not itself trusted.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts};
use http::HeaderMap;
use http::request::Parts;
use hyper_util::rt::{TokioIo, TokioTimer};
use routerly_core::config::{Connections, TrustedProxy};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::Service as _;

use crate::state::App;

mod direct;
/// The direct path's reading of a request, public here for the fuzz targets (`fuzz/`).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use direct::first_request;

/// Descriptors kept free of connections: files, the usage log, upstream sockets.
const RESERVED_DESCRIPTORS: u64 = 256;
/// First and longest pause after a failed `accept`.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// Raises the soft limit on open files to the hard limit; returns the limit now in force
/// (`None` where the platform has no such limit or it cannot be read).
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(error) => {
                tracing::warn!("cannot raise the open-file limit: {error}");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap in force: the configured one, lowered to fit the open-file limit.
pub fn connection_cap(configured: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return configured.max(1);
    };
    let fits =
        usize::try_from(nofile.saturating_sub(RESERVED_DESCRIPTORS).max(16)).unwrap_or(usize::MAX);
    if fits < configured {
        tracing::warn!(
            configured,
            open_file_limit = nofile,
            "max_connections lowered to {fits} to fit the open-file limit"
        );
    }
    configured.min(fits).max(1)
}

/// Serves `router` on `listener` until `shutdown` completes; then closes the connections
/// that have no request in progress at once, and gives the others `grace` to finish. With
/// `direct` (the service's state), the proxy's calls are served by [`direct`] first; without
/// it, hyper serves every request.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    direct: Option<App>,
    limits: Connections,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let cap = connection_cap(limits.max_connections, raise_nofile_limit());
    let permits = Arc::new(Semaphore::new(cap));
    // HTTP/1.1 only: a request head is then read from the connection's first byte, under
    // the head timeout (the HTTP/2 sniffing of an auto builder waits without one). Clients
    // that want HTTP/2 or TLS reach Routerly through a reverse proxy.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms));
    let header_timeout = Duration::from_millis(limits.header_timeout_ms);
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF.0;
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = ACCEPT_BACKOFF.0;
                    accepted
                }
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    // Out of descriptors or memory: retrying at once would spin on the
                    // same error while the waiting connections time out.
                    tracing::warn!("accept failed: {error}; pausing {} ms", backoff.as_millis());
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut shutdown => break,
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Nagle's algorithm meeting delayed ACKs costs ~40 ms per response written in pieces.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {error}");
        }
        let (router, builder, mut stop) = (router.clone(), builder.clone(), stop.clone());
        let direct = direct.clone().map(|app| direct::Direct {
            app,
            header_timeout,
        });
        connections.spawn(async move {
            let _permit = permit;
            // Routerly's own path first; hyper from the first request that path leaves to it.
            let io = match direct {
                Some(direct) => match direct::serve(stream, direct, stop.clone()).await {
                    direct::Ended::Closed => return,
                    direct::Ended::HandOff(rewind) => rewind,
                },
                None => direct::Rewind::new(bytes::Bytes::new(), stream),
            };
            let in_flight = Arc::new(AtomicUsize::new(0));
            let service = {
                let in_flight = Arc::clone(&in_flight);
                hyper::service::service_fn(move |mut request| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let live = Live::enter(&in_flight);
                    let mut router = router.clone();
                    async move {
                        let response = router.call(request).await.unwrap_or_else(|e| match e {});
                        Ok::<_, Infallible>(
                            response.map(|body| Body::new(LiveBody { body, _live: live })),
                        )
                    }
                })
            };
            let connection = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(connection);
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(error) = ended {
                        tracing::debug!(%peer, "connection ended: {error}");
                    }
                }
                _ = async { stop.wait_for(|stopping| *stopping).await.is_ok() } => {
                    // Idle, silent or still sending a head: closed now, by dropping it.
                    if in_flight.load(Ordering::Acquire) == 0 {
                        return;
                    }
                    // A request in progress finishes (within the grace period), then the
                    // connection closes.
                    connection.as_mut().graceful_shutdown();
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, "connection ended: {error}");
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down: no new connections; closing idle ones, waiting for requests in progress"
    );
    let _ = stopping.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "grace period over; closing the remaining connections"
        );
    }
    connections.shutdown().await;
}

/// A request in progress on a connection: from the handler's call to the end of the
/// response body (a stream included).
struct Live(Arc<AtomicUsize>);

impl Live {
    fn enter(in_flight: &Arc<AtomicUsize>) -> Live {
        in_flight.fetch_add(1, Ordering::AcqRel);
        Live(Arc::clone(in_flight))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request [`Live`] until it is sent or dropped.
struct LiveBody {
    body: Body,
    _live: Live,
}

impl hyper::body::Body for LiveBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Errors of one connection that `accept` reports; the listener is fine.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// The client's address (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<App> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
        let snapshot = app.store.snapshot();
        Ok(ClientAddr(client_address(
            peer,
            &parts.headers,
            &snapshot.settings.trusted_proxies,
        )))
    }
}

/// The client's address for a request from `peer` with `headers`: `peer` itself unless it
/// is a trusted proxy; then the hops its `Forwarded` (or, without one, `X-Forwarded-For`)
/// header lists are walked from the right, past every trusted one. A hop that cannot be
/// read ends the walk at the proxy that named it.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let trusted_hop = |address: &IpAddr| trusted.iter().any(|proxy| proxy.contains(address));
    if !trusted_hop(&peer) {
        return peer;
    }
    let hops: Vec<Option<IpAddr>> = if headers.contains_key(http::header::FORWARDED) {
        header_items(headers, http::header::FORWARDED)
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (key, value) = pair.split_once('=')?;
                        key.trim()
                            .eq_ignore_ascii_case("for")
                            .then(|| value.trim().trim_matches('"'))
                    })
                    .and_then(parse_hop)
            })
            .collect()
    } else {
        header_items(headers, "x-forwarded-for")
            .map(parse_hop)
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(address) => {
                client = address;
                if !trusted_hop(&address) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The comma-separated items of every `name` header line, in order.
fn header_items(
    headers: &HeaderMap,
    name: impl http::header::AsHeaderName,
) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.parse::<SocketAddr>().ok().map(|socket| socket.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|text| text.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let forwarded = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &forwarded, &[]),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.9"), &forwarded, &trusted(&["10.0.0.1"])),
            ip("10.0.0.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        // The client sent a forged first entry; the proxies appended the real ones.
        let forwarded = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &forwarded, &proxies),
            ip("203.0.113.7")
        );
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.7:5555"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &split, &proxies),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_reads_ipv6_and_ports() {
        let proxies = trusted(&["::1"]);
        let forwarded = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            (
                "forwarded",
                r#"for=6.6.6.6, For="[2001:db8::7]:4711";proto=https"#,
            ),
        ]);
        assert_eq!(
            client_address(ip("::1"), &forwarded, &proxies),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_proxy_that_named_it() {
        let proxies = trusted(&["127.0.0.1"]);
        for value in ["unknown", "_hidden", "", "not an address"] {
            let forwarded = headers(&[("x-forwarded-for", value)]);
            assert_eq!(
                client_address(ip("127.0.0.1"), &forwarded, &proxies),
                ip("127.0.0.1"),
                "{value:?}"
            );
        }
        // No header at all: the proxy is the client.
        assert_eq!(
            client_address(ip("127.0.0.1"), &HeaderMap::new(), &proxies),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_chain_of_only_trusted_hops_ends_at_the_leftmost() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let forwarded = headers(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &forwarded, &proxies),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(connection_cap(4096, Some(1024)), 768);
        assert_eq!(connection_cap(4096, Some(1 << 20)), 4096);
        assert_eq!(connection_cap(0, None), 1);
    }
}
