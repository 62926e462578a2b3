//! Responses and their HTTP/1.x wire form.
//!
//! Owns [`Response`] / [`Body`] (what a handler returns) and serialisation into a caller's
//! `Vec<u8>`: status line with the standard reason phrase, the handler's headers, `Date`
//! (cached per second), `Content-Length` or chunked framing, `Connection`, HEAD and
//! bodiless-status rules, and the chunk encoding of streamed bodies. Performs no I/O and knows
//! nothing about what a response means (no etcd / v2 API knowledge).

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_lite::Stream;

use super::spare;

/// A streamed body: each item goes out as one chunk as soon as it is produced. Dropping it
/// (the connection does so at once when the client goes away) is how its producer learns
/// nobody listens any more.
pub type BodyStream = Pin<Box<dyn Stream<Item = Vec<u8>>>>;

/// A response body.
pub enum Body {
    /// A body known in full; sent with `Content-Length`.
    Full(Vec<u8>),
    /// A body produced over time; sent chunked (HTTP/1.1) or until close (HTTP/1.0).
    Stream(BodyStream),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Full(b) => f.debug_tuple("Full").field(&b.len()).finish(),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What a handler answers.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Headers written as given, in order. `Content-Length`, `Transfer-Encoding` and
    /// `Connection` are the writer's: given ones are dropped, except that a `Connection`
    /// value containing `close` makes the connection close after this response. A given
    /// `Date` replaces the writer's.
    pub headers: Vec<(&'static str, HeaderValue)>,
    pub body: Body,
}

/// A response header's value. Numbers (the `X-Etcd-Index`/`X-Raft-*` headers, the cluster ID)
/// are kept as numbers and written when the head is encoded, and fixed texts are `'static`,
/// so the headers of a keys-API answer cost no heap allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Static(&'static str),
    Owned(String),
    /// Written in decimal.
    Decimal(u64),
    /// Written in lowercase hexadecimal, without leading zeros (etcd's IDs).
    Hex(u64),
}

impl HeaderValue {
    /// The value as text (numbers are formatted: not for hot paths).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            HeaderValue::Static(s) => (*s).into(),
            HeaderValue::Owned(s) => s.as_str().into(),
            HeaderValue::Decimal(n) => n.to_string().into(),
            HeaderValue::Hex(n) => format!("{n:x}").into(),
        }
    }

    /// Appends the value's bytes; a CR or LF in a text value becomes a space, so a value can
    /// never break the framing.
    fn write(&self, out: &mut Vec<u8>) {
        let text = match self {
            HeaderValue::Static(s) => *s,
            HeaderValue::Owned(s) => s.as_str(),
            HeaderValue::Decimal(n) => {
                out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
                return;
            }
            HeaderValue::Hex(n) => return write_hex(*n, out),
        };
        if text.bytes().any(|b| b == b'\r' || b == b'\n') {
            out.extend(
                text.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        } else {
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Appends `n` in lowercase hexadecimal without allocating.
fn write_hex(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

impl From<&'static str> for HeaderValue {
    fn from(s: &'static str) -> Self {
        HeaderValue::Static(s)
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> Self {
        HeaderValue::Owned(s)
    }
}

impl From<u64> for HeaderValue {
    fn from(n: u64) -> Self {
        HeaderValue::Decimal(n)
    }
}

impl PartialEq<&str> for HeaderValue {
    fn eq(&self, other: &&str) -> bool {
        self.text() == *other
    }
}

impl Response {
    /// A response with an empty full body.
    pub fn new(status: u16) -> Response {
        Response::full(status, Vec::new())
    }

    /// A response with a full body.
    pub fn full(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: spare::take(&spare::RESPONSE_HEADERS, 0),
            body: Body::Full(body.into()),
        }
    }

    /// An empty body buffer with room for `capacity` bytes, a spare one when the thread has
    /// one (the writer leaves every full body it sent for reuse).
    pub fn body_buffer(capacity: usize) -> Vec<u8> {
        spare::take(&spare::BYTES, capacity)
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::full(status, body).with_header("Content-Type", "text/plain; charset=utf-8")
    }

    /// A response whose body is streamed item by item.
    pub fn stream(status: u16, body: impl Stream<Item = Vec<u8>> + 'static) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Stream(Box::pin(body)),
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &'static str, value: impl Into<HeaderValue>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a header.
    pub fn push_header(&mut self, name: &'static str, value: impl Into<HeaderValue>) {
        self.headers.push((name, value.into()));
    }
}

/// What the writer must know about the request being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseContext {
    /// The request was HEAD: headers only, no body.
    pub head: bool,
    /// The request's minor version (the status line echoes it, as Go does).
    pub minor_version: u8,
    /// The connection stays open after this response (if the response itself allows it).
    pub keep_alive: bool,
}

impl ResponseContext {
    /// The context for an answer to an unparseable request: HTTP/1.1, then close.
    pub const CLOSE: ResponseContext = ResponseContext {
        head: false,
        minor_version: 1,
        keep_alive: false,
    };
}

/// How the rest of a response, after what [`encode_response`] wrote, must be sent.
pub struct Encoded {
    /// The connection must close once this response is out.
    pub close: bool,
    /// A body still to stream, and whether its items go chunked (else raw until close).
    pub stream: Option<(BodyStream, bool)>,
}

/// The standard reason phrase for `status` (empty for unknown codes).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Whether a response with `status` may carry a body (not 1xx, 204, 304).
fn body_allowed(status: u16) -> bool {
    !((100..200).contains(&status) || status == 204 || status == 304)
}

thread_local! {
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Appends the current time as an IMF-fixdate (29 bytes), formatted at most once a second.
fn write_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let s = httpdate::fmt_http_date(now);
            if s.len() == 29 {
                cached.1.copy_from_slice(s.as_bytes());
                cached.0 = secs;
            } else {
                out.extend_from_slice(s.as_bytes());
                return;
            }
        }
        out.extend_from_slice(&cached.1);
    });
}

fn write_status_line(status: u16, minor: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(if minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    let _ = write!(out, "{status:03} ");
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Serialises `resp` (a full response, or the head of a streamed one) onto `out`.
pub fn encode_response(resp: Response, ctx: &ResponseContext, out: &mut Vec<u8>) -> Encoded {
    encode_with_date(resp, ctx, None, out)
}

/// [`encode_response`] with a fixed `Date` value (tests); `None` uses the clock.
pub(crate) fn encode_with_date(
    resp: Response,
    ctx: &ResponseContext,
    date: Option<&str>,
    out: &mut Vec<u8>,
) -> Encoded {
    let Response {
        status,
        headers,
        body,
    } = resp;
    let mut keep_alive = ctx.keep_alive;
    let mut has_date = false;
    write_status_line(status, ctx.minor_version, out);
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        if name.eq_ignore_ascii_case("connection") {
            if value
                .text()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                keep_alive = false;
            }
            continue;
        }
        has_date |= name.eq_ignore_ascii_case("date");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        value.write(out);
        out.extend_from_slice(b"\r\n");
    }
    spare::give(&spare::RESPONSE_HEADERS, headers);
    if !has_date {
        out.extend_from_slice(b"Date: ");
        match date {
            Some(d) => out.extend_from_slice(d.as_bytes()),
            None => write_date(out),
        }
        out.extend_from_slice(b"\r\n");
    }
    let allowed = body_allowed(status);
    let mut stream = None;
    match body {
        Body::Full(bytes) => {
            if allowed {
                let _ = write!(out, "Content-Length: {}\r\n", bytes.len());
            }
            finish_head(keep_alive, ctx.minor_version, out);
            if allowed && !ctx.head {
                out.extend_from_slice(&bytes);
            }
            spare::give(&spare::BYTES, bytes);
        }
        Body::Stream(s) => {
            if !allowed {
                finish_head(keep_alive, ctx.minor_version, out);
            } else if ctx.minor_version == 0 {
                // No chunked coding in HTTP/1.0: the body ends when the connection does.
                keep_alive = false;
                finish_head(false, 0, out);
                if !ctx.head {
                    stream = Some((s, false));
                }
            } else {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                finish_head(keep_alive, ctx.minor_version, out);
                if !ctx.head {
                    stream = Some((s, true));
                }
            }
        }
    }
    Encoded {
        close: !keep_alive,
        stream,
    }
}

fn finish_head(keep_alive: bool, minor: u8, out: &mut Vec<u8>) {
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk of a chunked body. Empty data writes nothing (an empty chunk would end
/// the body).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the terminating chunk of a chunked body (no trailers).
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// The answer to a request that could not be parsed: `status`, a short text body, close.
pub fn error_response(status: u16, detail: &str) -> Response {
    let mut body = format!("{status} {}", reason_phrase(status));
    if !detail.is_empty() {
        body.push_str(": ");
        body.push_str(detail);
    }
    body.push('\n');
    Response::text(status, body).with_header("Connection", "close")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_write_numbers_and_never_break_the_framing() {
        let cases: [(HeaderValue, &str); 7] = [
            (0u64.into(), "0"),
            (1234567890u64.into(), "1234567890"),
            (u64::MAX.into(), "18446744073709551615"),
            (HeaderValue::Hex(0xd1cf_af99_9eb9_7a2a), "d1cfaf999eb97a2a"),
            (HeaderValue::Hex(0), "0"),
            ("application/json".into(), "application/json"),
            ("a\r\nb".to_string().into(), "a  b"),
        ];
        for (value, want) in cases {
            let mut out = Vec::new();
            value.write(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want);
            if !want.contains(' ') {
                assert_eq!(value.text(), want);
            }
        }
    }

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const KEEP: ResponseContext = ResponseContext {
        head: false,
        minor_version: 1,
        keep_alive: true,
    };

    fn encode(resp: Response, ctx: ResponseContext) -> (String, Encoded) {
        let mut out = Vec::new();
        let enc = encode_with_date(resp, &ctx, Some(DATE), &mut out);
        (String::from_utf8(out).expect("utf-8"), enc)
    }

    fn json() -> Response {
        Response::full(201, "{\"action\":\"set\"}\n")
            .with_header("Content-Type", "application/json")
            .with_header("X-Etcd-Index", "7")
    }

    #[test]
    fn full_response_bytes() {
        let (text, enc) = encode(json(), KEEP);
        assert_eq!(
            text,
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Etcd-Index: 7\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 17\r\n\r\n{\"action\":\"set\"}\n"
        );
        assert!(!enc.close && enc.stream.is_none());
    }

    #[test]
    fn head_response_has_length_but_no_body() {
        let ctx = ResponseContext { head: true, ..KEEP };
        let (text, _) = encode(json(), ctx);
        assert_eq!(
            text,
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Etcd-Index: 7\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 17\r\n\r\n"
        );
    }

    #[test]
    fn close_and_http10() {
        let ctx = ResponseContext {
            keep_alive: false,
            ..KEEP
        };
        let (text, enc) = encode(Response::new(404), ctx);
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert!(enc.close);
        let ctx = ResponseContext {
            minor_version: 0,
            ..KEEP
        };
        let (text, enc) = encode(Response::full(200, "x"), ctx);
        assert_eq!(
            text,
            "HTTP/1.0 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx"
        );
        assert!(!enc.close);
        // A handler's Connection: close is honoured; its framing headers are not used.
        let resp = Response::full(200, "ab")
            .with_header("Connection", "close")
            .with_header("Content-Length", "99");
        let (text, enc) = encode(resp, KEEP);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab"
        );
        assert!(enc.close);
    }

    #[test]
    fn bodiless_statuses() {
        let (text, _) = encode(Response::full(204, "ignored"), KEEP);
        assert_eq!(
            text,
            "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
    }

    #[test]
    fn stream_head_and_chunks() {
        let resp = Response::stream(200, futures_lite::stream::iter(vec![b"a".to_vec()]))
            .with_header("Content-Type", "application/json");
        let (text, enc) = encode(resp, KEEP);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        assert!(matches!(enc.stream, Some((_, true))));
        assert!(!enc.close);
        let mut out = Vec::new();
        encode_chunk(b"{\"x\":1}\n", &mut out);
        encode_chunk(b"", &mut out);
        encode_chunk(&[b'z'; 26], &mut out);
        encode_last_chunk(&mut out);
        let mut want = b"8\r\n{\"x\":1}\n\r\n1a\r\n".to_vec();
        want.extend_from_slice(&[b'z'; 26]);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, want);
        // HEAD of a stream: chunked head, nothing to stream.
        let resp = Response::stream(200, futures_lite::stream::empty());
        let (_, enc) = encode(resp, ResponseContext { head: true, ..KEEP });
        assert!(enc.stream.is_none());
        // HTTP/1.0: raw body until close.
        let resp = Response::stream(200, futures_lite::stream::empty());
        let ctx = ResponseContext {
            minor_version: 0,
            ..KEEP
        };
        let (text, enc) = encode(resp, ctx);
        assert_eq!(
            text,
            "HTTP/1.0 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n"
        );
        assert!(matches!(enc.stream, Some((_, false))) && enc.close);
    }

    #[test]
    fn date_is_rfc7231_and_error_body() {
        let mut out = Vec::new();
        write_date(&mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.len(), 29);
        assert!(httpdate::parse_http_date(&text).is_ok());
        let (text, enc) = encode(error_response(431, "too many headers"), KEEP);
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"));
        assert!(text.ends_with(
            "Connection: close\r\n\r\n431 Request Header Fields Too Large: too many headers\n"
        ));
        assert!(enc.close);
    }
}
