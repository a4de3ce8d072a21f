//! Routerly's own HTTP/1.1 server path for the proxy's calls.
//!
//! A connection starts here. Each request head is read and parsed (`httparse`); a call to a
//! proxy surface in the common shape — `POST` to `/v1/chat/completions`, `/v1/messages`,
//! `/v1/responses` or `/v1/embeddings`, HTTP/1.1, a `content-length` body of at most
//! [`MAX_BODY`] bytes — is read whole and handed to its handler directly, and the answer is
//! written back by this task: no hyper dispatcher, no router, no service stack between the
//! socket and the handler (together about a sixth of a plain call, counted by the callgrind
//! guard).
//!
//! Everything else is hyper's: on the first request that is not in that shape (another
//! route or method, `Expect`, a chunked or larger body, an upgrade, HTTP/1.0, a head that
//! does not parse, a `content-length` that is not plain digits, a body not all there within
//! [`BODY_WAIT`] of its head), the connection is handed to hyper with the bytes read so far
//! put back in front of the socket ([`Rewind`]), and hyper serves it from that request on,
//! as it serves every connection without this path. So every refusal and edge of HTTP/1.1
//! is hyper's, and this path only ever serves requests that hyper would frame the same way.
//!
//! What this path keeps of hyper's behaviour: keep-alive and pipelining (requests are
//! answered in order; bytes past a request stay in the buffer), `connection: close`, the
//! head timeout (which also ends idle connections), a `date` header, `content-length` for
//! bodies of known size and `chunked` otherwise, each chunk of a stream written as soon as
//! it comes, and a client hanging up while its call is waited on dropping the call (the
//! handler then records it as cancelled; as with hyper, the end of the connection is looked
//! for only while no further request is buffered, so requests pipelined before a client
//! closes its side are answered). A panic in the handler is answered with a 500 in the
//! surface's error shape, as the router's catch layer does.
//!
//! At a hand-over hyper starts its own head timeout and the handler's reader its own body
//! timeout, so a head longer than [`MAX_HEAD`] may take up to twice the head timeout, and a
//! body that stalls the body timeout plus [`BODY_WAIT`].

use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::header::{CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use http_body_util::BodyExt as _;
use routerly_core::usage::Surface;
use routerly_providers::Deadline;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tower_http::catch_panic::ResponseForPanic as _;

use crate::panics::{PanicResponse, PanicShape};
use crate::proxy;
use crate::state::App;

/// The largest body this path reads before calling the handler; a larger one goes to hyper
/// and the handler's own reader, which counts it against the shared body budget. Bodies
/// read here are bounded by the connection cap times this.
pub const MAX_BODY: usize = 64 * 1024;
/// The largest head this path waits for; a longer one goes to hyper (whose own limit is
/// larger).
const MAX_HEAD: usize = 16 * 1024;
/// Most header lines of a head this path parses; more go to hyper.
const MAX_HEADERS: usize = 64;
/// What one read of the socket asks for at least.
const READ_SIZE: usize = 8 * 1024;
/// The longest wait for the rest of a body after its head, before the request is left to
/// hyper (whose reader then applies the body timeout): clients that write the head and
/// the body apart send the body at once.
const BODY_WAIT: Duration = Duration::from_millis(100);

/// How one connection's time on this path ended.
pub enum Ended {
    /// Closed: by either side, on the head timeout, on shutdown, or on a write error.
    Closed,
    /// The next request is not this path's: hyper serves the connection from it on.
    HandOff(Rewind),
}

/// What a connection on this path needs.
pub struct Direct {
    pub app: App,
    pub header_timeout: Duration,
}

/// Serves `stream` until it closes or a request is not this path's.
pub async fn serve(
    stream: TcpStream,
    direct: Direct,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Ended {
    serve_with(stream, direct, stop, proxy::call).await
}

/// [`serve`] with the handler given: the proxy's calls, or in tests one that panics.
async fn serve_with<Handler, Call>(
    mut stream: TcpStream,
    direct: Direct,
    stop: tokio::sync::watch::Receiver<bool>,
    handle: Handler,
) -> Ended
where
    Handler: Fn(Surface, App, Request) -> Call,
    Call: Future<Output = Response>,
{
    let mut buffer = BytesMut::with_capacity(READ_SIZE);
    // The head timeout: one timer for the connection, moved once per request.
    let mut head_due = Deadline::new(tokio::time::Instant::now() + direct.header_timeout);
    // Shutdown, watched by one future for the connection's life (registered with the
    // channel once, not once per request).
    let mut watch = stop.clone();
    let stopping = watch.wait_for(|stopping| *stopping);
    tokio::pin!(stopping);
    loop {
        // A head: read until it parses, under the head timeout; shutdown closes a
        // connection that is idle or still sending one.
        head_due.set(tokio::time::Instant::now() + direct.header_timeout);
        let head = loop {
            match parse_head(&buffer) {
                Ok(Some(head)) => break head,
                Ok(None) if buffer.len() < MAX_HEAD => {}
                Ok(None) | Err(NotOurs) => {
                    return Ended::HandOff(Rewind::new(buffer.freeze(), stream));
                }
            }
            tokio::select! {
                read = read_more(&mut stream, &mut buffer) => {
                    if let Ok(0) | Err(_) = read {
                        return Ended::Closed;
                    }
                }
                () = head_due.expired() => return Ended::Closed,
                _ = &mut stopping => return Ended::Closed,
            }
        };
        // The body: it is usually in the buffer already, else it follows at once; one that
        // takes longer is hyper's, whose reader applies the body timeout from there.
        if buffer.len() < head.length + head.body_length {
            let timeout = Duration::from_millis(
                direct
                    .app
                    .store
                    .snapshot()
                    .settings
                    .connections
                    .body_timeout_ms,
            );
            let deadline = tokio::time::Instant::now() + BODY_WAIT.min(timeout);
            while buffer.len() < head.length + head.body_length {
                match tokio::time::timeout_at(deadline, read_more(&mut stream, &mut buffer)).await {
                    Ok(Ok(0) | Err(_)) => return Ended::Closed,
                    Ok(Ok(_)) => {}
                    Err(_) => return Ended::HandOff(Rewind::new(buffer.freeze(), stream)),
                }
            }
        }
        let close = head.close;
        let Some(request) = head.request(&mut buffer) else {
            // A target or header the `http` types refuse: hyper answers it.
            return Ended::HandOff(Rewind::new(buffer.freeze(), stream));
        };
        // The call, dropped (and so recorded as cancelled) if the client hangs up first.
        let call = std::panic::AssertUnwindSafe(handle(head.surface, direct.app.clone(), request))
            .catch_unwind();
        tokio::pin!(call);
        let response = loop {
            tokio::select! {
                biased;
                answered = &mut call => break answered.unwrap_or_else(|panic| {
                    PanicResponse(PanicShape::Proxy(proxy::surface_format(head.surface))).response_for_panic(panic)
                }),
                read = read_more(&mut stream, &mut buffer), if buffer.is_empty() => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return Ended::Closed;
                    }
                }
            }
        };
        if write_response(&mut stream, response, close).await.is_err() || close {
            return Ended::Closed;
        }
        if *stop.borrow() {
            return Ended::Closed;
        }
    }
}

/// The request this path hands its handler when a connection's first bytes are `bytes`,
/// and how many of them it takes; `None` where it would wait for more or leave the
/// connection to hyper. The same steps as [`serve`] without a socket, for the fuzz target
/// that compares this path's reading of a request with hyper's (`fuzz/`).
#[cfg(feature = "fuzzing")]
pub fn first_request(bytes: &[u8]) -> Option<(Request, usize)> {
    let head = parse_head(bytes).ok()??;
    let taken = head.length + head.body_length;
    if bytes.len() < taken {
        return None;
    }
    let mut buffer = BytesMut::from(bytes);
    let request = head.request(&mut buffer)?;
    Some((request, taken))
}

/// Reads what the socket has into `buffer`, making room for at least [`READ_SIZE`] bytes.
async fn read_more(stream: &mut TcpStream, buffer: &mut BytesMut) -> io::Result<usize> {
    buffer.reserve(READ_SIZE);
    stream.read_buf(buffer).await
}

/// A parsed head this path serves: where its parts are in the buffer (which only grows
/// while the body is read, so the places stay true).
struct Head {
    /// Length of the head, its blank line included.
    length: usize,
    body_length: usize,
    target: Place,
    /// Each header line's name and value.
    headers: [(Place, Place); MAX_HEADERS],
    header_count: usize,
    close: bool,
    surface: Surface,
}

/// A part of a head: its start and end in the buffer (a head is at most [`MAX_HEAD`] bytes).
#[derive(Clone, Copy, Default)]
struct Place(u16, u16);

impl Place {
    fn range(self) -> Range<usize> {
        usize::from(self.0)..usize::from(self.1)
    }
}

/// A request this path leaves to hyper.
struct NotOurs;

/// Parses the head at the start of `buffer`: `Ok(None)` while it is incomplete, `Err` when
/// this path does not serve it.
fn parse_head(buffer: &[u8]) -> Result<Option<Head>, NotOurs> {
    let mut lines = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let length = match request.parse_with_uninit_headers(buffer, &mut lines) {
        Ok(httparse::Status::Complete(length)) if length <= MAX_HEAD => length,
        Ok(httparse::Status::Complete(_)) => return Err(NotOurs),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(NotOurs),
    };
    let (Some("POST"), Some(1), Some(target)) = (request.method, request.version, request.path)
    else {
        return Err(NotOurs);
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let Some(surface) = proxy::surface_of(path) else {
        return Err(NotOurs);
    };
    // Within a head of at most MAX_HEAD bytes: the places fit in u16.
    let within = |part: &[u8]| {
        let start = part.as_ptr() as usize - buffer.as_ptr() as usize;
        Place(start as u16, (start + part.len()) as u16)
    };
    let mut head = Head {
        length,
        body_length: 0,
        target: within(target.as_bytes()),
        headers: [(Place::default(), Place::default()); MAX_HEADERS],
        header_count: request.headers.len(),
        close: false,
        surface,
    };
    let mut content_length = None;
    for (line, place) in request.headers.iter().zip(head.headers.iter_mut()) {
        let name = line.name;
        if name.eq_ignore_ascii_case("content-length") {
            // Only ASCII digits between optional spaces and tabs: what hyper reads the same
            // way. Anything else (a sign, a list, Unicode white space that `str::trim` would
            // take away) is hyper's to refuse, so the two never frame a request differently.
            // (httparse has refused every control byte but the tab in a value already.)
            let digits = line.value.trim_ascii();
            let plain = (1..=18).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit);
            match (content_length, plain) {
                (None, true) => {
                    content_length = Some(digits.iter().fold(0usize, |length, digit| {
                        length * 10 + usize::from(digit - b'0')
                    }));
                }
                // Repeated or not plain digits.
                _ => return Err(NotOurs),
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in line.value.split(|&byte| byte == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    head.close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                    // `upgrade` or headers named for the hop: hyper's.
                    return Err(NotOurs);
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return Err(NotOurs);
        }
        *place = (within(name.as_bytes()), within(line.value));
    }
    match content_length {
        Some(length) if length <= MAX_BODY => head.body_length = length,
        _ => return Err(NotOurs),
    }
    Ok(Some(head))
}

impl Head {
    /// The request, its head and body taken from the front of `buffer` (without copying
    /// them); `None`, with `buffer` as it was, when the target or a header is one the `http`
    /// types refuse.
    /// No `ConnectInfo`: the proxy's handlers never read the peer's address (the
    /// management API's do, and hyper serves those).
    fn request(&self, buffer: &mut BytesMut) -> Option<Request> {
        let head = buffer.split_to(self.length).freeze();
        let Some((uri, headers)) = self.parts(&head) else {
            // The head goes back in front of what follows it, for hyper to answer.
            let mut whole = BytesMut::with_capacity(head.len() + buffer.len());
            whole.extend_from_slice(&head);
            whole.extend_from_slice(buffer);
            *buffer = whole;
            return None;
        };
        let body = buffer.split_to(self.body_length).freeze();
        let mut request = Request::new(Body::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = headers;
        Some(request)
    }

    /// The target and the header lines as the `http` types, sharing `head`'s bytes.
    /// `httparse` accepts some bytes in a target that `http::Uri` refuses (`<`, `>`).
    fn parts(&self, head: &Bytes) -> Option<(Uri, HeaderMap)> {
        let uri = Uri::from_maybe_shared(head.slice(self.target.range())).ok()?;
        let mut headers = HeaderMap::with_capacity(self.header_count);
        for (name, value) in &self.headers[..self.header_count] {
            let name = HeaderName::from_bytes(&head[name.range()]).ok()?;
            let value = HeaderValue::from_maybe_shared(head.slice(value.range())).ok()?;
            headers.append(name, value);
        }
        Some((uri, headers))
    }
}

/// Writes `response`: its head, then its body as it comes (`content-length` when its size is
/// known, `chunked` otherwise); the pending bytes are written whenever the body has to wait.
async fn write_response(stream: &mut TcpStream, response: Response, close: bool) -> io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("<none>")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        // Framing is this writer's.
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        header_line(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !parts.headers.contains_key(DATE) {
        date::with(|date| header_line(&mut out, b"date", date));
    }
    if close {
        header_line(&mut out, b"connection", b"close");
    }
    let exact = hyper::body::Body::size_hint(&body).exact();
    let chunked = match exact {
        Some(length) => {
            out.extend_from_slice(b"content-length: ");
            routerly_core::json_text::decimal(&mut out, length);
            out.extend_from_slice(b"\r\n");
            false
        }
        None => {
            header_line(&mut out, b"transfer-encoding", b"chunked");
            true
        }
    };
    out.extend_from_slice(b"\r\n");
    let mut written: u64 = 0;
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    out.clear();
                }
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers: not sent
            },
            // A body that fails midway: the connection is cut, as hyper does, so the
            // client sees a truncated answer rather than a complete one.
            Some(Err(error)) => return Err(io::Error::other(error)),
        };
        if data.is_empty() {
            continue;
        }
        written += data.len() as u64;
        // Room for the frame, its framing and the body's end at once (a stream's events
        // that arrived together are one frame, larger than the head's buffer).
        out.reserve(data.len() + 32);
        if chunked {
            chunk_size_line(&mut out, data.len());
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&data);
        }
    }
    if let Some(length) = exact
        && written != length
    {
        return Err(io::Error::other(
            "the body's length is not the one announced",
        ));
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    stream.write_all(&out).await
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A chunk's size line: the length in hexadecimal and CRLF.
fn chunk_size_line(out: &mut Vec<u8>, length: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut rest = length;
    loop {
        at -= 1;
        digits[at] = DIGITS[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// The `date` header's value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }

    pub fn with(write: impl FnOnce(&[u8])) {
        let now = SystemTime::now();
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        CACHED.with(|cached| {
            let mut cached = cached.borrow_mut();
            if cached.0 != second || cached.1.is_empty() {
                *cached = (second, httpdate::fmt_http_date(now));
            }
            write(cached.1.as_bytes());
        });
    }
}

/// The bytes read from a connection before it was handed to hyper, served to hyper before
/// the socket's own.
pub struct Rewind {
    read: Bytes,
    stream: TcpStream,
}

impl Rewind {
    pub fn new(read: Bytes, stream: TcpStream) -> Self {
        Rewind { read, stream }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let taken = self.read.len().min(out.remaining());
            let bytes = self.read.split_to(taken);
            out.put_slice(&bytes);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, out)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bytes)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics on a body of `panic`, else answers `ok`.
    async fn answer(_: Surface, _: App, request: Request) -> Response {
        let body = request
            .into_body()
            .collect()
            .await
            .expect("the body was read whole")
            .to_bytes();
        if &body[..] == b"panic" {
            panic!("a handler's bug");
        }
        Response::new(Body::from("ok"))
    }

    /// Writes a request and reads its answer (`content-length` framed): status and body.
    async fn exchange(client: &mut TcpStream, path: &str, body: &str) -> (u16, String) {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        client.write_all(request.as_bytes()).await.expect("written");
        let mut read = Vec::new();
        let (head_end, length) = loop {
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "the connection stays open: {}",
                String::from_utf8_lossy(&read)
            );
            read.extend_from_slice(&chunk[..n]);
            if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .expect("a content-length")
                    .parse::<usize>()
                    .expect("digits");
                break (end + 4, length);
            }
        };
        while read.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the whole body arrives");
            read.extend_from_slice(&chunk[..n]);
        }
        let status = std::str::from_utf8(&read[9..12])
            .expect("ASCII")
            .parse()
            .expect("a status");
        (
            status,
            String::from_utf8_lossy(&read[head_end..head_end + length]).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_panicking_call_is_answered_in_its_surface_shape_and_the_connection_goes_on() {
        let home = tempfile::tempdir().expect("a temporary home");
        let service = crate::Service::open(crate::store::Home::new(home.path()))
            .await
            .expect("the service opens a fresh home");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bound");
        let address = listener.local_addr().expect("an address");
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let direct = Direct {
            app: service.app(),
            header_timeout: Duration::from_secs(10),
        };
        let served = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accepted");
            serve_with(stream, direct, stopped, answer).await
        });
        let mut client = TcpStream::connect(address).await.expect("connected");

        let (status, body) = exchange(&mut client, "/v1/chat/completions", "panic").await;
        assert_eq!(status, 500, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let message = error["error"]["message"].as_str().expect("OpenAI's shape");
        assert!(message.starts_with("internal error"), "{body}");
        assert!(
            !body.contains("a handler's bug"),
            "the panic stays in the log: {body}"
        );

        let (status, body) = exchange(&mut client, "/v1/messages", "panic").await;
        assert_eq!(status, 500, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(error["type"], "error", "Anthropic's shape: {body}");
        let message = error["error"]["message"]
            .as_str()
            .expect("Anthropic's shape");
        assert!(message.starts_with("internal error"), "{body}");

        // The same connection serves the next call.
        let (status, body) = exchange(&mut client, "/v1/chat/completions", "{}").await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        drop(client);
        assert!(matches!(
            served.await.expect("no panic escapes"),
            Ended::Closed
        ));
    }
}
