//! The async HTTP/1.1 client: one request at a time on a kept-alive stream.
//!
//! Writes requests (`encode_request`: a `Content-Length` body, always sent) and reads their
//! answers with the shared sans-IO decoder ([`super::decode`]): whole (`round_trip`,
//! `read_response`) or as a head followed by body pieces as they arrive (`read_head`,
//! `read_body`; the proxy passes streamed watches on this way). Used by the peer transport,
//! the proxy and the load generator; knows nothing of what the requests mean.

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::decode::{DecodeError, Event, ResponseDecoder, ResponseHead};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Input read ahead at once.
const READ_CHUNK: usize = 16 * 1024;

/// A response as read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False when the server asked to close the connection (or the body ran to EOF).
    pub keep_alive: bool,
}

impl ClientResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Encodes a request with a `Content-Length` body (always sent, also when empty).
pub fn encode_request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

/// A client connection: buffered reads of responses, whole writes of requests.
pub struct ClientConn<S> {
    stream: S,
    /// Input read but not yet decoded is `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    decoder: ResponseDecoder,
    /// Largest response body accepted by `read_response`.
    max_body: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientConn<S> {
    pub fn new(stream: S, max_body: usize) -> Self {
        ClientConn {
            stream,
            buf: Vec::with_capacity(4096),
            pos: 0,
            decoder: ResponseDecoder::new(false),
            max_body,
        }
    }

    /// The stream, e.g. to shut it down.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Writes one encoded request.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<()> {
        self.stream.write_all(request).await?;
        self.stream.flush().await
    }

    /// Sends one encoded request and reads its response.
    pub async fn round_trip(&mut self, request: &[u8], head: bool) -> io::Result<ClientResponse> {
        self.send(request).await?;
        self.read_response(head).await
    }

    /// Reads more input; `Ok(false)` at EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > READ_CHUNK {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let n = self.stream.read(&mut self.buf[len..]).await;
        self.buf.truncate(len + *n.as_ref().unwrap_or(&0));
        Ok(n? > 0)
    }

    /// Reads the head of the next response; `head` says the request was HEAD (no body
    /// follows). The body follows with [`ClientConn::read_body`].
    pub async fn read_head(&mut self, head: bool) -> io::Result<ResponseHead> {
        self.read_head_within(head, u64::MAX).await
    }

    async fn read_head_within(&mut self, head: bool, max_body: u64) -> io::Result<ResponseHead> {
        self.decoder = ResponseDecoder::new(head).with_limits(MAX_HEAD, max_body);
        loop {
            let (n, event) = self
                .decoder
                .decode(&self.buf[self.pos..])
                .map_err(invalid)?;
            self.pos += n;
            match event {
                Some(Event::Head(h)) => return Ok(h),
                Some(_) => unreachable!("a body before its head"),
                None if n > 0 => {}
                None => {
                    if !self.fill().await? {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
        }
    }

    /// The next piece of the current body as it arrives, or `None` once it is complete.
    pub async fn read_body(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            let (n, event) = self
                .decoder
                .decode(&self.buf[self.pos..])
                .map_err(invalid)?;
            let piece = match event {
                Some(Event::Data(d)) => Some(Some(d.to_vec())),
                Some(Event::End) => Some(None),
                Some(Event::Head(_)) => unreachable!("a head inside a body"),
                None => None,
            };
            self.pos += n;
            match piece {
                Some(p) => return Ok(p),
                None if n > 0 => {}
                None => {
                    if !self.fill().await? {
                        return match self.decoder.finish().map_err(invalid)? {
                            Event::End => Ok(None),
                            _ => unreachable!("finish ends or fails"),
                        };
                    }
                }
            }
        }
    }

    /// Reads one whole response; `head` says the request was HEAD (no body follows).
    pub async fn read_response(&mut self, head: bool) -> io::Result<ClientResponse> {
        let h = self.read_head_within(head, self.max_body as u64).await?;
        let mut body = Vec::new();
        while let Some(piece) = self.read_body().await? {
            body.extend_from_slice(&piece);
        }
        Ok(ClientResponse {
            status: h.status,
            keep_alive: h.keep_alive,
            headers: h.headers,
            body,
        })
    }
}

fn invalid(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory stream: reads come from `input`, writes go to `output`.
    struct Scripted {
        input: futures_lite::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            // One byte at a time, to exercise partial reads.
            let n = buf.len().min(1);
            std::pin::Pin::new(&mut self.input).poll_read(cx, &mut buf[..n])
        }
    }

    impl AsyncWrite for Scripted {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.output.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn conn(input: &str) -> ClientConn<Scripted> {
        ClientConn::new(
            Scripted {
                input: futures_lite::io::Cursor::new(input.as_bytes().to_vec()),
                output: Vec::new(),
            },
            1 << 20,
        )
    }

    #[test]
    fn reads_length_chunked_and_eof_bodies_in_sequence() {
        let mut c = conn(concat!(
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
            "HTTP/1.1 412 Precondition Failed\r\nConnection: close\r\n\r\nrest",
        ));
        futures_lite::future::block_on(async {
            let mut req = Vec::new();
            encode_request("POST", "h:1", "/p", &[("X-A", "1".into())], b"xy", &mut req);
            let r = c.round_trip(&req, false).await.unwrap();
            assert_eq!((r.status, r.body.len()), (204, 0));
            assert_eq!(
                String::from_utf8(c.stream.output.clone()).unwrap(),
                "POST /p HTTP/1.1\r\nHost: h:1\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nxy"
            );
            let r = c.read_response(false).await.unwrap();
            assert_eq!(r.body, b"hello");
            let r = c.read_response(false).await.unwrap();
            assert_eq!(r.body, b"abcde");
            let r = c.read_response(false).await.unwrap();
            assert_eq!(
                (r.status, r.body.as_slice(), r.keep_alive),
                (412, &b"rest"[..], false)
            );
            assert!(c.read_response(false).await.is_err());
        });
    }

    #[test]
    fn refuses_garbage_and_oversized_bodies() {
        let mut c = conn("HTTX/1.1 200 OK\r\n\r\n");
        assert!(futures_lite::future::block_on(c.read_response(false)).is_err());
        let mut c = conn("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n");
        assert!(futures_lite::future::block_on(c.read_response(false)).is_err());
    }
}
