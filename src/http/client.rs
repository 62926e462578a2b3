//! A small HTTP/1.1 client for peers: one request at a time on a kept-alive stream.
//!
//! Writes a request with a `Content-Length` body and reads the response head with httparse and
//! its body (`Content-Length`, chunked, or up to EOF). Used by the peer transport; knows nothing
//! of what the requests mean.

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest response head accepted from a peer.
const MAX_HEAD: usize = 64 * 1024;

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
    buf: Vec<u8>,
    /// Largest response body accepted.
    max_body: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientConn<S> {
    pub fn new(stream: S, max_body: usize) -> Self {
        ClientConn {
            stream,
            buf: Vec::with_capacity(4096),
            max_body,
        }
    }

    /// Sends one encoded request and reads its response.
    pub async fn round_trip(&mut self, request: &[u8], head: bool) -> io::Result<ClientResponse> {
        self.stream.write_all(request).await?;
        self.stream.flush().await?;
        self.read_response(head).await
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Reads one response; `head` says the request was HEAD (no body follows).
    pub async fn read_response(&mut self, head: bool) -> io::Result<ClientResponse> {
        let (status, headers, head_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let headers = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>();
                    break (parsed.code.unwrap_or(0), headers, len);
                }
                Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => self.fill().await?,
                Ok(httparse::Status::Partial) => return Err(invalid("response head too large")),
                Err(e) => return Err(invalid(&format!("bad response: {e}"))),
            }
        };
        self.buf.drain(..head_len);
        let mut resp = ClientResponse {
            status,
            headers,
            body: Vec::new(),
            keep_alive: true,
        };
        if resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            resp.keep_alive = false;
        }
        if head || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(resp);
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            resp.body = self.read_chunked().await?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| invalid("bad Content-Length"))?;
            if len > self.max_body {
                return Err(invalid("response body too large"));
            }
            while self.buf.len() < len {
                self.fill().await?;
            }
            resp.body = self.buf.drain(..len).collect();
        } else {
            loop {
                if self.buf.len() > self.max_body {
                    return Err(invalid("response body too large"));
                }
                match self.fill().await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            resp.body = std::mem::take(&mut self.buf);
            resp.keep_alive = false;
        }
        Ok(resp)
    }

    async fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return Ok(line);
            }
            if self.buf.len() > 4096 {
                return Err(invalid("chunk line too long"));
            }
            self.fill().await?;
        }
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size line"))?;
            if size == 0 {
                // Trailers, then the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > self.max_body {
                return Err(invalid("response body too large"));
            }
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
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
