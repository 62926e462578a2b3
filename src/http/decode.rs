//! A sans-IO HTTP/1.1 response decoder: the one every client in tern reads responses with.
//!
//! Owns the response side of HTTP/1.x framing: the head (status line and headers, parsed by
//! httparse, bounded), skipping interim `1xx` answers, the body's delimitation
//! (`Content-Length`, chunked with extensions and trailers, or until the server closes; none
//! for HEAD, 204 and 304), the body bound, and whether the connection may carry another
//! request. It takes bytes and hands back [`Event`]s; reading sockets, timeouts and what a
//! response means belong to its callers: the blocking client (`crate::client`), the async one
//! (`http::client`, used by the peer transport and the proxy), tests and benches.
//!
//! Body data comes out piece by piece, borrowed from the caller's input, so a streamed body
//! (a `stream=true` watch through the proxy) is passed on as it arrives and never held whole.
//! Error texts are those of Go's `net/http` client, which `ternctl` prints as etcdctl does.

use std::fmt;

/// Largest response head accepted unless the caller says otherwise (Go's default).
pub const DEFAULT_MAX_HEAD: usize = 1 << 20;
/// Most headers a response may carry.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;

/// How a response's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// A response's status line and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header names as the server wrote them, in order.
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// The connection may carry another request once this body has been read.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What decoding produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Head(ResponseHead),
    /// Some body bytes, borrowed from the input.
    Data(&'a [u8]),
    /// The response is complete.
    End,
}

/// Why a response could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The head is larger than the bound.
    HeadTooLarge(usize),
    /// The status line is not HTTP's (Go: `malformed HTTP response "…"`).
    MalformedResponse(String),
    MalformedStatus(String),
    MalformedHeader(String),
    BadContentLength(String),
    MalformedChunk,
    /// The body is larger than the bound.
    BodyTooLarge(u64),
    /// The stream ended inside a response.
    UnexpectedEof,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::HeadTooLarge(n) => {
                write!(f, "net/http: server response headers exceeded {n} bytes")
            }
            DecodeError::MalformedResponse(line) => write!(f, "malformed HTTP response {line:?}"),
            DecodeError::MalformedStatus(line) => write!(f, "malformed HTTP status code {line:?}"),
            DecodeError::MalformedHeader(line) => write!(f, "malformed MIME header line: {line}"),
            DecodeError::BadContentLength(v) => write!(f, "bad Content-Length {v:?}"),
            DecodeError::MalformedChunk => f.write_str("malformed chunked encoding"),
            DecodeError::BodyTooLarge(n) => {
                write!(f, "http: response body too large (over {n} bytes)")
            }
            DecodeError::UnexpectedEof => f.write_str("unexpected EOF"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailer,
    UntilClose,
    Done,
}

/// Decodes one response after another from a connection's bytes.
#[derive(Debug)]
pub struct ResponseDecoder {
    state: State,
    head_request: bool,
    max_head: usize,
    max_body: u64,
    body_len: u64,
}

impl ResponseDecoder {
    /// A decoder for the answer to a request; `head_request` says it was HEAD (no body
    /// follows whatever the headers say). Bounds: [`DEFAULT_MAX_HEAD`], no body bound.
    pub fn new(head_request: bool) -> ResponseDecoder {
        ResponseDecoder {
            state: State::Head,
            head_request,
            max_head: DEFAULT_MAX_HEAD,
            max_body: u64::MAX,
            body_len: 0,
        }
    }

    /// Bounds the head and the body (builder style).
    pub fn with_limits(mut self, max_head: usize, max_body: u64) -> ResponseDecoder {
        self.max_head = max_head;
        self.max_body = max_body;
        self
    }

    /// Makes the decoder ready for the answer to the next request on the connection.
    pub fn reset(&mut self, head_request: bool) {
        self.state = State::Head;
        self.head_request = head_request;
        self.body_len = 0;
    }

    /// True once the current response's [`Event::End`] has been returned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// True inside a chunk's data: the last [`Event::Data`] did not end its chunk (callers that
    /// treat each chunk as a message, as a watch stream's events are, read on).
    pub fn in_chunk_data(&self) -> bool {
        matches!(self.state, State::ChunkData(_))
    }

    /// True while no byte of the current response has been decoded.
    pub fn in_head(&self) -> bool {
        self.state == State::Head
    }

    /// Decodes from `input`: how many bytes were used, and the event they made (`None`: more
    /// input is needed; the used bytes, if any, were framing). Call again with the rest of
    /// the input until it returns `(0, None)`. After [`Event::End`] it returns `(0, None)`
    /// until [`ResponseDecoder::reset`].
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<Event<'a>>), DecodeError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Done => return Ok((used, None)),
                State::Head => match self.decode_head(rest)? {
                    None => return Ok((used, None)),
                    Some((n, None)) => used += n, // an interim 1xx answer, skipped
                    Some((n, Some(head))) => return Ok((used + n, Some(Event::Head(head)))),
                },
                State::Length(0) => {
                    self.state = State::Done;
                    return Ok((used, Some(Event::End)));
                }
                State::Length(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    if n == 0 {
                        return Ok((used, None));
                    }
                    self.state = State::Length(left - n as u64);
                    return Ok((used + n, Some(Event::Data(&rest[..n]))));
                }
                State::UntilClose => {
                    if rest.is_empty() {
                        return Ok((used, None));
                    }
                    self.count_body(rest.len() as u64)?;
                    return Ok((used + rest.len(), Some(Event::Data(rest))));
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        used += n;
                        if size == 0 {
                            self.state = State::Trailer;
                        } else {
                            self.count_body(size)?;
                            self.state = State::ChunkData(size);
                        }
                    }
                    Ok(httparse::Status::Partial) if rest.len() <= MAX_LINE => {
                        return Ok((used, None))
                    }
                    _ => return Err(DecodeError::MalformedChunk),
                },
                State::ChunkData(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    if n == 0 {
                        return Ok((used, None));
                    }
                    self.state = if n as u64 == left {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(left - n as u64)
                    };
                    return Ok((used + n, Some(Event::Data(&rest[..n]))));
                }
                State::ChunkDataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::ChunkSize;
                    }
                    [b'\n', ..] => {
                        used += 1;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok((used, None)),
                    _ => return Err(DecodeError::MalformedChunk),
                },
                State::Trailer => match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        used += i + 1;
                        if rest[..i].iter().all(|&b| b == b'\r') && i <= 1 {
                            self.state = State::Done;
                            return Ok((used, Some(Event::End)));
                        }
                    }
                    None if rest.len() <= MAX_LINE => return Ok((used, None)),
                    None => return Err(DecodeError::MalformedChunk),
                },
            }
        }
    }

    /// The connection ended (EOF): the end of an until-close body, or an error when a
    /// response was cut short. Nothing at all of a response (`in_head` with no input left)
    /// is also `UnexpectedEof`; callers that reuse connections tell that case apart with
    /// [`ResponseDecoder::in_head`] before calling this.
    pub fn finish(&mut self) -> Result<Event<'static>, DecodeError> {
        match self.state {
            State::UntilClose | State::Length(0) => {
                self.state = State::Done;
                Ok(Event::End)
            }
            _ => Err(DecodeError::UnexpectedEof),
        }
    }

    fn count_body(&mut self, n: u64) -> Result<(), DecodeError> {
        self.body_len = self.body_len.saturating_add(n);
        if self.body_len > self.max_body {
            return Err(DecodeError::BodyTooLarge(self.max_body));
        }
        Ok(())
    }

    /// Parses a head from `input`: `None` needs more; `Some((used, None))` skipped a 1xx.
    fn decode_head(
        &mut self,
        input: &[u8],
    ) -> Result<Option<(usize, Option<ResponseHead>)>, DecodeError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let len = match parsed.parse(input) {
            Ok(httparse::Status::Complete(len)) if len <= self.max_head => len,
            Ok(httparse::Status::Complete(_)) => {
                return Err(DecodeError::HeadTooLarge(self.max_head))
            }
            Ok(httparse::Status::Partial) if input.len() > self.max_head => {
                return Err(DecodeError::HeadTooLarge(self.max_head))
            }
            Ok(httparse::Status::Partial) => {
                // httparse waits for the whole head; a wrong first line is known earlier
                // (after the empty lines httparse skips).
                let line = match input.iter().position(|&b| b != b'\r' && b != b'\n') {
                    Some(i) => &input[i..],
                    None => &[][..],
                };
                if !line.is_empty() && !b"HTTP/".starts_with(&line[..line.len().min(5)]) {
                    return Err(DecodeError::MalformedResponse(first_line(input)));
                }
                return Ok(None);
            }
            Err(e) => return Err(head_error(e, input)),
        };
        let status = parsed.code.unwrap_or(0);
        let minor_version = parsed.version.unwrap_or(1);
        if (100..200).contains(&status) && status != 101 {
            return Ok(Some((len, None)));
        }
        let mut headers = Vec::with_capacity(parsed.headers.len());
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut close = minor_version == 0;
        for h in parsed.headers.iter() {
            let value = String::from_utf8_lossy(h.value).trim().to_string();
            if h.name.eq_ignore_ascii_case("content-length") {
                let n: u64 = value
                    .parse()
                    .map_err(|_| DecodeError::BadContentLength(value.clone()))?;
                if length.is_some_and(|m| m != n) {
                    return Err(DecodeError::BadContentLength(value));
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") && minor_version == 0 {
                        close = false;
                    }
                }
            }
            headers.push((h.name.to_string(), value));
        }
        let framing = if self.head_request || status == 204 || status == 304 {
            Framing::None
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        if let Framing::Length(n) = framing {
            self.count_body(n)?;
        }
        self.state = match framing {
            Framing::None => State::Length(0),
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        let head = ResponseHead {
            status,
            reason: parsed.reason.unwrap_or("").to_string(),
            minor_version,
            headers,
            framing,
            keep_alive: !close && framing != Framing::UntilClose,
        };
        Ok(Some((len, Some(head))))
    }
}

fn first_line(input: &[u8]) -> String {
    let end = input
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(input.len())
        .min(MAX_LINE);
    String::from_utf8_lossy(&input[..end]).into_owned()
}

/// Go's text for a head httparse refused: the offending line, as `net/http` quotes it.
fn head_error(e: httparse::Error, input: &[u8]) -> DecodeError {
    let line = first_line(input);
    match e {
        httparse::Error::Version => DecodeError::MalformedResponse(line),
        httparse::Error::Status => DecodeError::MalformedStatus(line),
        httparse::Error::TooManyHeaders => {
            DecodeError::MalformedHeader(format!("more than {MAX_HEADERS} header lines"))
        }
        _ => {
            // The first header line that is not `name: value`.
            let text = String::from_utf8_lossy(input);
            let bad = text
                .split('\n')
                .skip(1)
                .map(|l| l.trim_end_matches('\r'))
                .find(|l| !l.is_empty() && !is_header_line(l))
                .unwrap_or("")
                .to_string();
            DecodeError::MalformedHeader(bad)
        }
    }
}

fn is_header_line(line: &str) -> bool {
    line.split_once(':').is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
    })
}

/// A whole response, decoded from a buffer: the head and the body. A test and fuzz aid, and
/// what callers that hold a complete answer in memory use.
pub fn decode_all(
    input: &[u8],
    head_request: bool,
    eof: bool,
) -> Result<Option<(ResponseHead, Vec<u8>, usize)>, DecodeError> {
    let mut decoder = ResponseDecoder::new(head_request);
    let mut head = None;
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let (n, event) = decoder.decode(&input[pos..])?;
        pos += n;
        match event {
            Some(Event::Head(h)) => head = Some(h),
            Some(Event::Data(d)) => body.extend_from_slice(d),
            Some(Event::End) => return Ok(head.map(|h| (h, body, pos))),
            None if n > 0 => {}
            None if !eof => return Ok(None),
            None if decoder.in_head() && input.is_empty() => return Ok(None),
            None => {
                decoder.finish()?;
                return Ok(head.map(|h| (h, body, pos)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes (the caller's buffer keeps what was not
    /// used), collecting every response.
    fn decode_stepwise(
        input: &[u8],
        step: usize,
    ) -> Result<Vec<(u16, Vec<u8>, bool)>, DecodeError> {
        let mut decoder = ResponseDecoder::new(false);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut fed = 0;
        let mut current: Option<(u16, Vec<u8>, bool)> = None;
        loop {
            let (n, event) = decoder.decode(&buf)?;
            let starved = n == 0 && event.is_none();
            match event {
                Some(Event::Head(h)) => current = Some((h.status, Vec::new(), h.keep_alive)),
                Some(Event::Data(d)) => current.as_mut().unwrap().1.extend_from_slice(d),
                Some(Event::End) => {
                    out.push(current.take().unwrap());
                    decoder.reset(false);
                }
                None => {}
            }
            buf.drain(..n);
            if starved {
                if fed == input.len() {
                    if !decoder.in_head() || !buf.is_empty() {
                        decoder.finish()?;
                        out.push(current.take().unwrap());
                    }
                    return Ok(out);
                }
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }

    const STREAM: &str = concat!(
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
        "HTTP/1.1 412 Precondition Failed\r\nConnection: close\r\n\r\nrest until close",
    );

    #[test]
    fn decodes_every_framing_at_every_split_size() {
        let want = vec![
            (204, b"".to_vec(), true),
            (200, b"hello".to_vec(), true),
            (200, b"abcde".to_vec(), true),
            (200, b"ok".to_vec(), true),
            (412, b"rest until close".to_vec(), false),
        ];
        for step in 1..=STREAM.len() {
            assert_eq!(
                decode_stepwise(STREAM.as_bytes(), step)
                    .unwrap_or_else(|e| panic!("step {step}: {e:?}")),
                want,
                "step {step}"
            );
        }
    }

    #[test]
    fn head_requests_and_bodiless_statuses_have_no_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let (head, body, used) = decode_all(raw, true, false).unwrap().unwrap();
        assert_eq!(
            (head.framing, body.len(), used),
            (Framing::None, 0, raw.len())
        );
        let raw = b"HTTP/1.1 304 Not Modified\r\n\r\n";
        assert_eq!(
            decode_all(raw, false, false).unwrap().unwrap().0.framing,
            Framing::None
        );
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let ka = |raw: &str| {
            decode_all(raw.as_bytes(), false, true)
                .unwrap()
                .unwrap()
                .0
                .keep_alive
        };
        assert!(ka("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!ka(
            "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!ka("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!ka("HTTP/1.1 200 OK\r\n\r\nbody"));
    }

    #[test]
    fn headers_keep_their_case_and_are_found_without_it() {
        let raw = b"HTTP/1.1 200 OK\r\nX-Etcd-Index: 7\r\nContent-Length: 0\r\n\r\n";
        let head = decode_all(raw, false, false).unwrap().unwrap().0;
        assert_eq!(head.headers[0].0, "X-Etcd-Index");
        assert_eq!(head.header("x-etcd-index"), Some("7"));
        assert_eq!(head.reason, "OK");
    }

    #[test]
    fn bad_input_gets_gos_texts() {
        let err = |raw: &str| {
            decode_all(raw.as_bytes(), false, true)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("HTTX/1.1 200 OK\r\n\r\n"),
            "malformed HTTP response \"HTTX/1.1 200 OK\""
        );
        assert_eq!(err("garbage"), "malformed HTTP response \"garbage\"");
        assert_eq!(
            err("HTTP/1.1 2x0 OK\r\n\r\n"),
            "malformed HTTP status code \"HTTP/1.1 2x0 OK\""
        );
        assert_eq!(
            err("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"),
            "malformed MIME header line: no colon here"
        );
        assert_eq!(
            err("HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n"),
            "bad Content-Length \"ten\""
        );
        assert_eq!(
            err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            "malformed chunked encoding"
        );
        assert_eq!(
            err("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
            "unexpected EOF"
        );
        assert_eq!(err("HTTP/1.1 200 OK\r\nContent-Le"), "unexpected EOF");
    }

    #[test]
    fn bounds_are_enforced_before_the_bytes_arrive() {
        let mut d = ResponseDecoder::new(false).with_limits(64, 10);
        let big_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(
            d.decode(big_head.as_bytes()),
            Err(DecodeError::HeadTooLarge(64))
        );
        let mut d = ResponseDecoder::new(false).with_limits(64, 10);
        assert_eq!(
            d.decode(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"),
            Err(DecodeError::BodyTooLarge(10))
        );
        let mut d = ResponseDecoder::new(false).with_limits(64, 10);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (n, _) = d.decode(chunked).unwrap();
        assert_eq!(n, chunked.len());
        assert_eq!(d.decode(b"6\r\nabcdef\r\n").unwrap().0, 9);
        assert_eq!(d.decode(b"\r\n6\r\n"), Err(DecodeError::BodyTooLarge(10)));
    }

    #[test]
    fn a_streamed_body_comes_out_as_it_arrives() {
        let mut d = ResponseDecoder::new(false);
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (n, e) = d.decode(head).unwrap();
        assert!(matches!(e, Some(Event::Head(_))) && n == head.len());
        // Half a chunk is passed on at once.
        assert_eq!(
            d.decode(b"a\r\n01234").unwrap(),
            (8, Some(Event::Data(b"01234")))
        );
        assert_eq!(
            d.decode(b"56789\r\n").unwrap(),
            (5, Some(Event::Data(b"56789")))
        );
        assert_eq!(d.decode(b"\r\n").unwrap(), (2, None));
        assert_eq!(d.decode(b"0\r\n\r\n").unwrap(), (5, Some(Event::End)));
        assert!(d.is_done());
    }
}
