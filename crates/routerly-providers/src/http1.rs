//! Routerly's HTTP/1.1 client for providers reached directly (not through a proxy).
//!
//! A call runs in the task that makes it: the request is written, the answer's head read and
//! its body decoded from the connection by whoever polls the body, with no connection task
//! between them and no channel per body chunk (hyper's pooled client spent about a quarter
//! of a plain call there, counted by the callgrind guard). A body chunk holds everything
//! one read of the socket brought, so a stream's events that arrive together are relayed
//! together. Connections are kept per origin (scheme and authority) and reused when an
//! answer was read to its end and the provider did not close it.
//!
//! Framing follows RFC 9112: a `chunked` final transfer coding, else `content-length`, else
//! the body runs to the connection's close. Headers that frame the message or concern the
//! hop (`host`, `content-length`, `transfer-encoding`, `connection`, …) are Routerly's to
//! write and are never taken from the caller's headers, so a client's header cannot change
//! how the provider splits requests on a reused connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tower_service::Service;

use crate::{BoxError, Deadline, ProviderHeaders, TimeoutPhase, UpstreamError, describe};

/// A connection to a provider, TLS or not.
type Io = TokioIo<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>;

/// How long an unused connection is kept (providers close theirs after a minute or more).
const IDLE_TIMEOUT: Duration = Duration::from_secs(55);
/// Most unused connections kept per origin.
const MAX_IDLE_PER_ORIGIN: usize = 256;
/// Largest answer head read.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines an answer head may have.
const MAX_HEADERS: usize = 128;
/// What one read of the socket asks for.
const READ_SIZE: usize = 16 * 1024;

/// The pool of connections and the connector that opens new ones.
pub(crate) struct Client {
    connector: HttpsConnector<HttpConnector>,
    idle: Pool,
}

/// Unused connections by origin.
type Pool = Arc<Mutex<HashMap<Arc<str>, Vec<Idle>, foldhash::fast::RandomState>>>;

struct Idle {
    connection: Connection,
    since: Instant,
}

/// One open connection and what has been read from it but not consumed.
struct Connection {
    /// Boxed: a TLS connection's state is about a kilobyte, which every future holding a
    /// connection would carry and copy on each move.
    io: Box<Io>,
    buffer: BytesMut,
    /// The first-token deadline of the call on this connection: one timer for the
    /// connection's life, taken out while a call waits on it (boxed, as `io`).
    due: Option<Box<Deadline>>,
}

/// Where to send a call: the URL, parsed once per model.
pub(crate) struct Destination {
    pub(crate) uri: Uri,
    /// `scheme://authority`, the pool's key.
    origin: Arc<str>,
    /// Whether the environment sends this URL through a proxy (then reqwest calls it).
    pub(crate) proxied: bool,
}

impl Destination {
    pub(crate) fn new(uri: Uri, proxied: bool) -> Self {
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |authority| authority.as_str())
        );
        Destination {
            uri,
            origin: origin.into(),
            proxied,
        }
    }
}

/// An answer's status, headers and body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
}

impl Client {
    pub(crate) fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client {
            connector,
            idle: Arc::default(),
        }
    }

    /// Posts `body` with `headers` and reads the answer's head, by `due` (the first-token
    /// deadline, else [`TimeoutPhase::FirstToken`]). A pooled connection found closed when
    /// the request is written is replaced by a new one once; nothing of the request reached
    /// the provider on it.
    pub(crate) async fn post(
        &self,
        destination: &Destination,
        headers: &ProviderHeaders<'_>,
        body: &[u8],
        connect_timeout: Duration,
        due: tokio::time::Instant,
    ) -> Result<Answer, UpstreamError> {
        let head = request_head(&destination.uri, headers, body.len());
        let request = [head.as_slice(), body];
        let fresh = || async {
            tokio::time::timeout_at(due, self.written(destination, request, connect_timeout))
                .await
                .map_err(|_| UpstreamError::Timeout(TimeoutPhase::FirstToken))?
        };
        let (mut connection, mut deadline) = match self.pooled(&destination.origin) {
            Some(mut connection) => {
                let mut deadline = connection
                    .due
                    .take()
                    .unwrap_or_else(|| Box::new(Deadline::new(due)));
                deadline.set(due);
                let written = tokio::select! {
                    biased;
                    written = connection.write(request) => written,
                    () = deadline.expired() => {
                        return Err(UpstreamError::Timeout(TimeoutPhase::FirstToken));
                    }
                };
                match written {
                    Ok(()) => (connection, deadline),
                    Err(_) => (fresh().await?, deadline),
                }
            }
            None => (fresh().await?, Box::new(Deadline::new(due))),
        };
        let (status, headers, framing, reusable) = tokio::select! {
            biased;
            head = connection.read_head() => head?,
            () = deadline.expired() => return Err(UpstreamError::Timeout(TimeoutPhase::FirstToken)),
        };
        connection.due = Some(deadline);
        let pool = reusable.then(|| (Arc::clone(&self.idle), Arc::clone(&destination.origin)));
        Ok(Answer {
            status,
            headers,
            body: Body {
                connection: Some(connection),
                framing,
                pool,
            },
        })
    }

    /// A new connection with `request` (head and body) written on it.
    async fn written(
        &self,
        destination: &Destination,
        request: [&[u8]; 2],
        connect_timeout: Duration,
    ) -> Result<Connection, UpstreamError> {
        let mut connector = self.connector.clone();
        let io =
            match tokio::time::timeout(connect_timeout, connector.call(destination.uri.clone()))
                .await
            {
                Err(_) => return Err(UpstreamError::Timeout(TimeoutPhase::Connect)),
                Ok(Err(error)) => return Err(connect_error(&*error)),
                Ok(Ok(io)) => Box::new(TokioIo::new(io)),
            };
        let mut connection = Connection {
            io,
            buffer: BytesMut::new(),
            due: None,
        };
        connection
            .write(request)
            .await
            .map_err(|error| UpstreamError::Connect(describe(&error)))?;
        Ok(connection)
    }

    /// An unused connection to `origin` that is still open, if one is kept.
    fn pooled(&self, origin: &str) -> Option<Connection> {
        let mut idle = self.idle.lock().expect("pool lock");
        let kept = idle.get_mut(origin)?;
        while let Some(Idle {
            mut connection,
            since,
        }) = kept.pop()
        {
            if since.elapsed() < IDLE_TIMEOUT && connection.still_open() {
                return Some(connection);
            }
        }
        None
    }
}

/// How many of an origin's idle `entries` have been idle for [`IDLE_TIMEOUT`] at `now`.
/// They are the first ones: a connection is pushed when it comes back and taken from the
/// end, so the entries are in the order they became idle.
fn expired<T>(entries: &[T], since: impl Fn(&T) -> Instant, now: Instant) -> usize {
    entries.partition_point(|entry| now.saturating_duration_since(since(entry)) >= IDLE_TIMEOUT)
}

/// The request's head for a body of `body_length` bytes.
fn request_head(uri: &Uri, headers: &ProviderHeaders<'_>, body_length: usize) -> Vec<u8> {
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    // The authority without any `user:password@` the URL may carry.
    let authority = uri.authority().map_or("", |authority| {
        let text = authority.as_str();
        text.rfind('@').map_or(text, |at| &text[at + 1..])
    });
    let mut out = Vec::with_capacity(256 + headers.len() * 48);
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    headers.write(&mut out, is_framing_or_hop);
    out.extend_from_slice(b"content-length: ");
    routerly_core::json_text::decimal(&mut out, body_length as u64);
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// Headers the client writes itself (`host`, `content-length`) or that belong to one hop.
fn is_framing_or_hop(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
    )
}

fn connect_error(error: &(dyn std::error::Error + 'static)) -> UpstreamError {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return UpstreamError::Timeout(TimeoutPhase::Connect);
        }
        source = cause.source();
    }
    UpstreamError::Connect(describe(error))
}

fn protocol(message: &str) -> UpstreamError {
    UpstreamError::Protocol(message.to_owned())
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked transfer coding, at this point of it.
    Chunked(Chunk),
    /// The body ends when the provider closes the connection.
    UntilClose,
    /// The body has been read.
    Done,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk, in the trailer section.
    Trailers,
}

impl Connection {
    /// Writes `request` (head, then body) whole, gathered into one write where the
    /// connection takes one (the body is not copied behind the head), and flushes it: TLS
    /// keeps records it could not send yet until a flush (a large body on a full socket
    /// buffer would otherwise wait forever).
    async fn write(&mut self, [head, body]: [&[u8]; 2]) -> std::io::Result<()> {
        self.io
            .write_all_buf(&mut bytes::Buf::chain(head, body))
            .await?;
        self.io.flush().await
    }

    /// Whether a pooled connection can take a request: nothing to read (no close, no stray
    /// bytes) when asked without waiting.
    fn still_open(&mut self) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut context = Context::from_waker(std::task::Waker::noop());
        matches!(
            Pin::new(&mut *self.io).poll_read(&mut context, &mut buf),
            Poll::Pending
        )
    }

    /// Reads more of the answer into the buffer; `Ok(0)` at the connection's end.
    fn poll_fill(&mut self, context: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buffer.capacity() - self.buffer.len() < READ_SIZE / 4 {
            self.buffer.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut *self.io), context, &mut self.buffer)
    }

    async fn fill(&mut self) -> Result<usize, UpstreamError> {
        std::future::poll_fn(|context| self.poll_fill(context))
            .await
            .map_err(|error| UpstreamError::Protocol(describe(&error)))
    }

    /// The answer's status and headers, how its body is framed, and whether the connection
    /// can serve another request once the body is read. Interim (1xx) answers are skipped.
    async fn read_head(&mut self) -> Result<(StatusCode, HeaderMap, Framing, bool), UpstreamError> {
        loop {
            if let Some(head) = self.parsed_head()? {
                return Ok(head);
            }
            if self.buffer.len() > MAX_HEAD_BYTES {
                return Err(protocol("the answer's head is too large"));
            }
            if self.fill().await? == 0 {
                return Err(protocol(if self.buffer.is_empty() {
                    "the provider closed the connection without answering"
                } else {
                    "the provider closed the connection in the answer's head"
                }));
            }
        }
    }

    /// The answer's head taken from the buffer, skipping interim (1xx) answers; `None`
    /// until it has all arrived. Not async, so the parser's header slots live on the stack
    /// for the parse only and not in every call's future.
    fn parsed_head(
        &mut self,
    ) -> Result<Option<(StatusCode, HeaderMap, Framing, bool)>, UpstreamError> {
        loop {
            // Slots left uninitialised: filling 128 of them cost more than parsing a head.
            let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut []);
            let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut parsed,
                &self.buffer,
                &mut slots,
            ) {
                Ok(httparse::Status::Complete(length)) => length,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(error) => {
                    return Err(UpstreamError::Protocol(format!(
                        "the answer's head is not HTTP/1.1: {error}"
                    )));
                }
            };
            let code = parsed.code.unwrap_or(0);
            let status = StatusCode::from_u16(code)
                .map_err(|_| protocol("the answer's status is not a valid code"))?;
            if (100..200).contains(&code) {
                if code == 101 {
                    return Err(protocol("the provider switched protocols"));
                }
                self.buffer.advance(length);
                continue;
            }
            let mut headers = HeaderMap::with_capacity(parsed.headers.len());
            for header in parsed.headers.iter() {
                let name = HeaderName::from_bytes(header.name.as_bytes())
                    .map_err(|_| protocol("the answer has an invalid header name"))?;
                let value = HeaderValue::from_bytes(header.value)
                    .map_err(|_| protocol("the answer has an invalid header value"))?;
                headers.append(name, value);
            }
            let version = parsed.version;
            self.buffer.advance(length);
            let framing = framing(status, &headers)?;
            let reusable = version == Some(1)
                && framing != Framing::UntilClose
                && !connection_closes(&headers);
            return Ok(Some((status, headers, framing, reusable)));
        }
    }
}

/// How the body of an answer with `status` and `headers` is framed (RFC 9112, 6.3).
fn framing(status: StatusCode, headers: &HeaderMap) -> Result<Framing, UpstreamError> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Done);
    }
    if let Some(last) = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        let chunked = last
            .as_bytes()
            .rsplit(|byte| *byte == b',')
            .next()
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Ok(if chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::UntilClose
        });
    }
    let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let Some(first) = lengths.next() else {
        return Ok(Framing::UntilClose);
    };
    let length = content_length(first.as_bytes())?;
    for other in lengths {
        if content_length(other.as_bytes())? != length {
            return Err(protocol("the answer has conflicting content lengths"));
        }
    }
    Ok(if length == 0 {
        Framing::Done
    } else {
        Framing::Length(length)
    })
}

fn content_length(value: &[u8]) -> Result<u64, UpstreamError> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(protocol("the answer's content length is not a number"));
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| protocol("the answer's content length is too large"))
}

fn connection_closes(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// An answer's body, read from its connection by whoever polls it. Read to its end on a
/// reusable connection, the connection goes back to the pool; dropped before that, the
/// connection is closed.
pub(crate) struct Body {
    connection: Option<Connection>,
    framing: Framing,
    pool: Option<(Pool, Arc<str>)>,
}

impl Body {
    /// Appends to `out` everything of the body that is in the buffer, decoded: whether
    /// any bytes were appended. The connection's buffer is consumed in place, never split,
    /// so it keeps its one allocation for the connection's life.
    fn decoded(&mut self, out: &mut Vec<u8>) -> Result<bool, BoxError> {
        let connection = self
            .connection
            .as_mut()
            .expect("a body being read has its connection");
        let buffer = &mut connection.buffer;
        let before = out.len();
        // Room at once for all that has arrived (the body's data is at most that).
        out.reserve(buffer.len());
        match &mut self.framing {
            Framing::Done => {}
            Framing::UntilClose => {
                out.extend_from_slice(buffer);
                buffer.clear();
            }
            Framing::Length(left) => {
                let take = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                out.extend_from_slice(&buffer[..take]);
                buffer.advance(take);
                *left -= take as u64;
                if *left == 0 {
                    self.framing = Framing::Done;
                }
            }
            Framing::Chunked(state) => {
                if decode_chunks(buffer, state, out)? {
                    self.framing = Framing::Done;
                }
            }
        }
        Ok(out.len() > before)
    }

    /// Appends the body's next bytes to `out`: `Ok(true)` once some were appended,
    /// `Ok(false)` at the body's end (when nothing more will be).
    pub(crate) fn poll_read_into(
        &mut self,
        context: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<Result<bool, BoxError>> {
        loop {
            if self.connection.is_none() {
                return Poll::Ready(Ok(false));
            }
            let decoded = self.decoded(out);
            if self.framing == Framing::Done {
                self.finished();
            }
            match decoded {
                Err(error) => {
                    self.connection = None;
                    return Poll::Ready(Err(error));
                }
                Ok(true) => return Poll::Ready(Ok(true)),
                Ok(false) if self.framing == Framing::Done => return Poll::Ready(Ok(false)),
                Ok(false) => {}
            }
            let connection = self.connection.as_mut().expect("not done");
            match ready!(connection.poll_fill(context)) {
                Ok(0) => {
                    self.connection = None;
                    if self.framing == Framing::UntilClose {
                        return Poll::Ready(Ok(false));
                    }
                    return Poll::Ready(Err(
                        "the provider closed the connection before the answer's end".into(),
                    ));
                }
                Ok(_) => {}
                Err(error) => {
                    self.connection = None;
                    return Poll::Ready(Err(error.into()));
                }
            }
        }
    }

    /// The body has been read: the connection goes back to the pool if it can serve again.
    fn finished(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        let Some((pool, origin)) = self.pool.take() else {
            return;
        };
        if !connection.buffer.is_empty() {
            // Bytes after the answer: the provider is not speaking HTTP/1.1 as agreed.
            return;
        }
        let now = Instant::now();
        let mut idle = pool.lock().expect("pool lock");
        let kept = idle.entry(origin).or_default();
        // One clock read, not one per idle connection (under load, dozens per call).
        kept.drain(..expired(kept, |idle| idle.since, now));
        if kept.len() < MAX_IDLE_PER_ORIGIN {
            kept.push(Idle {
                connection,
                since: now,
            });
        }
    }
}

/// Decodes the chunked body in `buffer` from `state` on, as far as the buffer goes: the
/// data of every whole or partial chunk in it is appended to `out` (so the events of many
/// chunks reach the reader together); whether the body ended (last chunk and trailers read).
fn decode_chunks(
    buffer: &mut BytesMut,
    state: &mut Chunk,
    out: &mut Vec<u8>,
) -> Result<bool, BoxError> {
    // What was read leaves the buffer once, at the end (an answer of many small chunks
    // arrives many at a time).
    let (read, ended) = decode_chunk_bytes(buffer, state, out)?;
    buffer.advance(read);
    Ok(ended)
}

/// [`decode_chunks`] over `bytes`: how many of them were read, and whether the body ended.
fn decode_chunk_bytes(
    bytes: &[u8],
    state: &mut Chunk,
    out: &mut Vec<u8>,
) -> Result<(usize, bool), BoxError> {
    let mut at = 0;
    loop {
        let rest = &bytes[at..];
        match *state {
            Chunk::Size => {
                let Some(line_end) = memchr::memchr(b'\n', rest) else {
                    if rest.len() > 4096 {
                        return Err("a chunk-size line is too long".into());
                    }
                    break;
                };
                let size = chunk_size(&rest[..line_end])?;
                at += line_end + 1;
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if rest.is_empty() {
                    break;
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                out.extend_from_slice(&rest[..take]);
                at += take;
                *state = if take as u64 == left {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - take as u64)
                };
            }
            Chunk::DataEnd => match rest {
                [b'\r', b'\n', ..] => {
                    at += 2;
                    *state = Chunk::Size;
                }
                [b'\n', ..] => {
                    at += 1;
                    *state = Chunk::Size;
                }
                [] | [b'\r'] => break,
                _ => return Err("a chunk does not end where its size says".into()),
            },
            Chunk::Trailers => {
                let Some(line_end) = memchr::memchr(b'\n', rest) else {
                    if rest.len() > MAX_HEAD_BYTES {
                        return Err("the answer's trailers are too large".into());
                    }
                    break;
                };
                let line = &rest[..line_end];
                at += line_end + 1;
                if line.strip_suffix(b"\r").unwrap_or(line).is_empty() {
                    return Ok((at, true));
                }
            }
        }
    }
    Ok((at, false))
}

/// The size on a chunk-size line (without its `\n`): hexadecimal digits, then optional
/// extensions after `;`, with optional space around the digits.
fn chunk_size(line: &[u8]) -> Result<u64, BoxError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = match memchr::memchr(b';', line) {
        Some(end) => &line[..end],
        None => line,
    }
    .trim_ascii();
    let invalid = || "a chunk size is not a hexadecimal number".into();
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid());
    }
    let mut size = 0u64;
    for digit in digits {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return Err(invalid()),
        };
        size = size * 16 + u64::from(value);
    }
    Ok(size)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// A provider on loopback: it answers every request (its head and the body `{}`) on a
    /// connection with the pieces of `answer`, each followed by its pause in milliseconds,
    /// closing the connection after an answer when `close`; the port and a count of the
    /// connections it accepted.
    pub(crate) async fn loopback_provider(
        answer: Vec<(&'static [u8], u64)>,
        close: bool,
    ) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    loop {
                        let Ok(read) = socket.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                        while let Some(end) = request.windows(6).position(|w| w == b"\r\n\r\n{}") {
                            request.drain(..end + 6);
                            for (piece, pause_ms) in answer.iter() {
                                if socket.write_all(piece).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(*pause_ms)).await;
                            }
                            if close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    /// Decodes `wire` handed over in pieces cut at `cuts`: the data, and whether it ended.
    fn decode_in_pieces(wire: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool), BoxError> {
        let mut buffer = BytesMut::new();
        let mut state = Chunk::Size;
        let mut data = Vec::new();
        let mut at = 0;
        for cut in cuts.iter().copied().chain([wire.len()]) {
            let cut = cut.clamp(at, wire.len());
            buffer.extend_from_slice(&wire[at..cut]);
            at = cut;
            if decode_chunks(&mut buffer, &mut state, &mut data)? {
                assert!(buffer.is_empty() && at == wire.len(), "bytes after the end");
                return Ok((data, true));
            }
        }
        Ok((data, false))
    }

    proptest! {
        #[test]
        fn chunked_bodies_decode_the_same_however_they_arrive(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..8),
            extension in any::<bool>(),
            trailer in any::<bool>(),
            cuts in proptest::collection::vec(0usize..3000, 0..12),
        ) {
            let mut wire = Vec::new();
            for chunk in &chunks {
                wire.extend_from_slice(format!("{:X}", chunk.len()).as_bytes());
                if extension {
                    wire.extend_from_slice(b";name=\"value\"");
                }
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n");
            if trailer {
                wire.extend_from_slice(b"x-checksum: 1\r\n");
            }
            wire.extend_from_slice(b"\r\n");
            let mut cuts = cuts;
            cuts.sort_unstable();
            let (data, done) = decode_in_pieces(&wire, &cuts).expect("a valid chunked body");
            prop_assert!(done);
            prop_assert_eq!(data, chunks.concat());
            // Cut short anywhere, it has not ended.
            for end in 0..wire.len() {
                let (_, done) = decode_in_pieces(&wire[..end], &cuts).expect("a valid prefix");
                prop_assert!(!done, "ended after {} of {} bytes", end, wire.len());
            }
        }
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for wire in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"\r\n",
            b"1234567890abcdef0\r\n",
            b"-5\r\nhello\r\n",
        ] {
            assert!(decode_in_pieces(wire, &[]).is_err(), "{wire:?}");
        }
    }

    fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn bodies_are_framed_as_rfc_9112_says() {
        let ok = StatusCode::OK;
        let framed = |pairs: &[(&'static str, &'static str)]| framing(ok, &head(pairs));
        // Chunked as the final coding wins over a length (a smuggling attempt otherwise).
        assert_eq!(
            framed(&[
                ("transfer-encoding", "gzip, chunked"),
                ("content-length", "5")
            ])
            .unwrap(),
            Framing::Chunked(Chunk::Size)
        );
        assert_eq!(
            framed(&[("transfer-encoding", "chunked, gzip")]).unwrap(),
            Framing::UntilClose
        );
        assert_eq!(
            framed(&[("content-length", "12")]).unwrap(),
            Framing::Length(12)
        );
        assert_eq!(framed(&[("content-length", "0")]).unwrap(), Framing::Done);
        assert_eq!(framed(&[]).unwrap(), Framing::UntilClose);
        let mut twice = head(&[("content-length", "3")]);
        twice.append("content-length", HeaderValue::from_static("4"));
        assert!(framing(ok, &twice).is_err());
        for bad in ["", "-1", "1e3", "0x10", "99999999999999999999999"] {
            let headers: HeaderMap = [(
                http::header::CONTENT_LENGTH,
                HeaderValue::from_str(bad).unwrap(),
            )]
            .into_iter()
            .collect();
            assert!(framing(ok, &headers).is_err(), "{bad:?}");
        }
        assert_eq!(
            framing(StatusCode::NO_CONTENT, &head(&[("content-length", "7")])).unwrap(),
            Framing::Done
        );
    }

    #[test]
    fn a_callers_framing_and_hop_headers_never_reach_the_provider() {
        let uri: Uri = "https://user:secret@api.example.test:8443/v1/chat/completions?beta=true"
            .parse()
            .unwrap();
        let headers = head(&[
            ("authorization", "Bearer sk-x"),
            ("transfer-encoding", "chunked"),
            ("content-length", "1"),
            ("host", "evil.test"),
            ("connection", "close"),
            ("anthropic-beta", "tools"),
        ]);
        let mut bytes = request_head(&uri, &ProviderHeaders::passing(&headers), 2);
        bytes.extend_from_slice(b"{}");
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!(
                "POST /v1/chat/completions?beta=true HTTP/1.1\r\nhost: api.example.test:8443\r\n\
                 content-type: application/json\r\nuser-agent: {}\r\n\
                 authorization: Bearer sk-x\r\nanthropic-beta: tools\r\ncontent-length: 2\r\n\r\n{{}}",
                crate::USER_AGENT
            )
        );
    }

    /// A provider on loopback that answers every request on a connection with `answer`
    /// (closing after it when `close`), counting the connections it accepts.
    async fn provider(answer: &'static [u8], close: bool) -> (Destination, Arc<AtomicUsize>) {
        let (port, accepted) = loopback_provider(vec![(answer, 0)], close).await;
        let uri = format!("http://127.0.0.1:{port}/v1/chat").parse().unwrap();
        (Destination::new(uri, false), accepted)
    }

    async fn call(
        client: &Client,
        destination: &Destination,
    ) -> Result<(StatusCode, Vec<u8>), BoxError> {
        call_within(client, destination, Duration::from_secs(5)).await
    }

    /// A call whose answer's head is due within `first_token`, read to its end.
    async fn call_within(
        client: &Client,
        destination: &Destination,
        first_token: Duration,
    ) -> Result<(StatusCode, Vec<u8>), BoxError> {
        let due = tokio::time::Instant::now() + first_token;
        let answer = client
            .post(
                destination,
                &ProviderHeaders::passing(&HeaderMap::new()),
                b"{}",
                Duration::from_secs(2),
                due,
            )
            .await?;
        let mut body = answer.body;
        let mut data = Vec::new();
        while std::future::poll_fn(|context| body.poll_read_into(context, &mut data)).await? {}
        Ok((answer.status, data))
    }

    #[tokio::test]
    async fn the_first_token_deadline_holds_on_new_and_reused_connections() {
        // Every answer's head comes 150 ms after its request.
        let answer: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        let (port, accepted) = loopback_provider(vec![(b"", 150), (answer, 0)], false).await;
        let uri = format!("http://127.0.0.1:{port}/v1/chat").parse().unwrap();
        let destination = Destination::new(uri, false);
        let client = Client::new();
        let post = |due_ms| call_within(&client, &destination, Duration::from_millis(due_ms));
        assert_eq!(post(400).await.unwrap().1, b"hello");
        // The first call's deadline passes while its connection is idle; the second call
        // on that connection has its own.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(post(2000).await.unwrap().1, b"hello");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the connection was reused"
        );
        // A deadline shorter than the wait ends the call, on a reused connection and on a
        // new one (the first is not kept after a timeout).
        for connections in [1, 2] {
            let started = tokio::time::Instant::now();
            let error = post(50).await.unwrap_err();
            assert!(
                matches!(
                    error.downcast_ref::<UpstreamError>(),
                    Some(UpstreamError::Timeout(TimeoutPhase::FirstToken))
                ),
                "{error:?}"
            );
            assert!(started.elapsed() >= Duration::from_millis(50));
            assert_eq!(accepted.load(Ordering::SeqCst), connections);
        }
    }

    #[test]
    fn connections_idle_for_the_timeout_are_the_first_ones_dropped() {
        let base = Instant::now();
        let now = base + Duration::from_secs(200);
        let ago = |seconds| now - Duration::from_secs(seconds);
        // In the order they became idle: oldest first.
        let idle = [ago(120), ago(56), ago(55), ago(54), ago(1), now];
        assert_eq!(expired(&idle, |since| *since, now), 3);
        assert_eq!(expired(&idle[3..], |since| *since, now), 0);
        assert_eq!(expired(&idle[..3], |since| *since, now), 3);
        assert_eq!(expired(&[] as &[Instant], |since| *since, now), 0);
    }

    #[tokio::test]
    async fn connections_are_reused_after_an_answer_read_to_its_end() {
        let (destination, accepted) = provider(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            false,
        )
        .await;
        let client = Client::new();
        for _ in 0..3 {
            let (status, body) = call(&client, &destination).await.unwrap();
            assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"hello"[..]));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        let (chunked, accepted) = provider(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            false,
        )
        .await;
        for _ in 0..3 {
            assert_eq!(call(&client, &chunked).await.unwrap().1, b"hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_provider_closes_is_not_used_again() {
        // Closed after each answer, saying so or not: each call opens its own.
        for answer in [
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ] {
            let (destination, accepted) = provider(answer, true).await;
            let client = Client::new();
            for _ in 0..3 {
                // Let the close reach the client, as between real calls.
                tokio::time::sleep(Duration::from_millis(20)).await;
                assert_eq!(call(&client, &destination).await.unwrap().1, b"ok");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 3);
        }
        // A body that runs to the close is read whole, and the connection goes.
        let (destination, accepted) = provider(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true).await;
        let client = Client::new();
        assert_eq!(
            call(&client, &destination).await.unwrap().1,
            b"until the end"
        );
        assert_eq!(
            call(&client, &destination).await.unwrap().1,
            b"until the end"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_and_its_connection_is_dropped() {
        let (destination, accepted) =
            provider(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true).await;
        let client = Client::new();
        let error = call(&client, &destination).await.unwrap_err();
        assert!(
            error.to_string().contains("closed the connection"),
            "{error}"
        );
        // A body left unread: the connection is not pooled.
        let (destination, accepted_too) =
            provider(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", false).await;
        let answer = client
            .post(
                &destination,
                &ProviderHeaders::passing(&HeaderMap::new()),
                b"{}",
                Duration::from_secs(2),
                tokio::time::Instant::now() + Duration::from_secs(5),
            )
            .await
            .unwrap();
        drop(answer);
        call(&client, &destination).await.unwrap();
        assert_eq!(accepted_too.load(Ordering::SeqCst), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // A head larger than 64 KiB is refused, not buffered on.
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        for line in 0..100 {
            huge.extend_from_slice(format!("x-filler-{line}: {}\r\n", "a".repeat(700)).as_bytes());
        }
        let (destination, _) = provider(huge.leak(), true).await;
        assert!(matches!(
            client
                .post(
                    &destination,
                    &ProviderHeaders::passing(&HeaderMap::new()),
                    b"{}",
                    Duration::from_secs(2),
                    tokio::time::Instant::now() + Duration::from_secs(5),
                )
                .await,
            Err(UpstreamError::Protocol(message)) if message.contains("too large")
        ));
        // Not HTTP at all.
        let (destination, _) = provider(b"SSH-2.0-OpenSSH\r\n\r\n", true).await;
        assert!(matches!(
            client
                .post(
                    &destination,
                    &ProviderHeaders::passing(&HeaderMap::new()),
                    b"{}",
                    Duration::from_secs(2),
                    tokio::time::Instant::now() + Duration::from_secs(5),
                )
                .await,
            Err(UpstreamError::Protocol(_))
        ));
    }
}
