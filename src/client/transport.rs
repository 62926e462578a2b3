//! The blocking HTTP/1.1 transport: dialing (timeouts, DNS errors in Go's words), TLS
//! (rustls, Go's error texts), `--discovery-proxy` forward proxies (absolute form, `CONNECT`),
//! one kept-alive connection per `host:port`, header and total deadlines, and reading
//! responses with the shared decoder (`crate::http::decode`). Knows nothing of etcd's API.

use super::*;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// HTTP/1.1 responses, read with the shared sans-IO decoder (`crate::http::decode`).

/// A parsed HTTP response.
#[derive(Clone, Debug, Default)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one full response from `r` with the shared decoder ([`crate::http::decode`]).
/// `leftover` holds bytes read past the previous response on this connection (and receives
/// bytes past this one). Returns the response and whether the connection may be reused.
pub fn read_response<R: Read>(
    r: &mut R,
    leftover: &mut Vec<u8>,
    method: &str,
) -> Result<(HttpResponse, bool), ReadError> {
    use crate::http::decode::{Event, ResponseDecoder};
    let mut decoder = ResponseDecoder::new(method == "HEAD");
    let mut buf = std::mem::take(leftover);
    let mut tmp = [0u8; 8192];
    let mut resp = HttpResponse::default();
    let mut keep_alive = false;
    loop {
        let (used, event) = decoder
            .decode(&buf)
            .map_err(|e| ReadError::Protocol(e.to_string()))?;
        let starved = used == 0 && event.is_none();
        let mut done = false;
        match event {
            Some(Event::Head(head)) => {
                resp.status = head.status;
                keep_alive = head.keep_alive;
                resp.headers = head
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect();
            }
            Some(Event::Data(d)) => resp.body.extend_from_slice(d),
            Some(Event::End) => done = true,
            None => {}
        }
        buf.drain(..used);
        if done {
            *leftover = buf;
            return Ok((resp, keep_alive));
        }
        if starved {
            let n = r.read(&mut tmp).map_err(ReadError::Io)?;
            if n == 0 {
                if decoder.in_head() {
                    return Err(if buf.is_empty() && resp.status == 0 {
                        ReadError::Eof
                    } else {
                        ReadError::UnexpectedEof
                    });
                }
                return match decoder.finish() {
                    Ok(_) => Ok((resp, false)),
                    Err(_) => Err(ReadError::UnexpectedEof),
                };
            }
            buf.extend_from_slice(&tmp[..n]);
        }
    }
}

/// Why reading a response failed.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed before sending anything (a stale keep-alive connection).
    Eof,
    UnexpectedEof,
    Io(io::Error),
    Protocol(String),
}

// ---------------------------------------------------------------------------------------
// Transport: dialing, keep-alive, timeouts.

/// One HTTP request, already resolved against an endpoint.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: &'static str,
    pub url: Url,
    pub body: Option<Vec<u8>>,
    pub content_type: Option<&'static str>,
    pub basic_auth: Option<(String, String)>,
}

impl Request {
    pub fn new(method: &'static str, url: Url) -> Request {
        Request {
            method,
            url,
            body: None,
            content_type: None,
            basic_auth: None,
        }
    }

    pub fn form(mut self, body: String) -> Request {
        self.body = Some(body.into_bytes());
        self.content_type = Some("application/x-www-form-urlencoded");
        self
    }

    pub(super) fn json(mut self, body: String) -> Request {
        self.body = Some(body.into_bytes());
        self.content_type = Some("application/json");
        self
    }

    /// The `cURL Command:` line etcdctl prints with `--debug`.
    pub fn curl(&self) -> String {
        let mut s = format!("curl -X {} {}", self.method, self.url.to_string_go());
        if let Some(b) = &self.body {
            s.push_str(&format!(" -d {}", go_quote(&String::from_utf8_lossy(b))));
        }
        s
    }
}

/// A transport failure, rendered like Go's net/http errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// Dial failed (refused, unreachable, DNS); the text is Go's `dial tcp ...` message.
    Dial(String),
    /// Reading or writing the connection failed after it was established.
    Conn(String),
    /// The header deadline (`--timeout`) passed.
    HeaderTimeout,
    /// The overall deadline (`--total-timeout`) passed.
    Deadline,
    /// Anything else (bad scheme, malformed response).
    Other(String),
}

/// One connection: plain TCP, or TLS over it for `https` endpoints.
pub(super) enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// Keep-alive HTTP/1.1 transport: at most one idle connection per `host:port`.
#[derive(Default)]
pub struct Transport {
    pub(super) idle: HashMap<String, (Conn, Vec<u8>)>,
    pub dial_timeout: Option<Duration>,
    /// TLS settings for `https` endpoints (`--ca-file`, `--cert-file`, `--key-file`); the
    /// system's roots when `None`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// An HTTP forward proxy (`--discovery-proxy`): `http` requests go to it in absolute
    /// form, `https` ones through a `CONNECT` tunnel, as Go's `http.ProxyURL` does.
    pub proxy: Option<Url>,
}

pub(super) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

pub(super) fn min_deadline(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A TLS failure as Go's crypto/tls and x509 word it; `None` when `e` is not one.
pub(super) fn tls_text(e: &io::Error) -> Option<String> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::AlertReceived(alert) => {
            let name = format!("{alert:?}");
            // BadCertificate -> "bad certificate"
            let mut words = String::new();
            for (i, ch) in name.chars().enumerate() {
                if ch.is_uppercase() && i > 0 {
                    words.push(' ');
                }
                words.push(ch.to_ascii_lowercase());
            }
            format!("remote error: tls: {words}")
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "x509: certificate signed by unknown authority".into()
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::Expired) => {
            "x509: certificate has expired or is not yet valid".into()
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName) => {
            "x509: certificate is not valid for this host".into()
        }
        other => format!("tls: {other}"),
    })
}

pub(super) fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "i/o timeout".into(),
        _ => {
            let s = e.to_string();
            // "Network is unreachable (os error 101)" -> "network is unreachable"
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
    }
}

impl Transport {
    /// Connects to `url`, with TLS for `https`.
    fn connect(&mut self, url: &Url, deadline: Option<Instant>) -> Result<Conn, TransportError> {
        let tcp = match &self.proxy {
            Some(proxy) => {
                let tcp = self.dial(proxy, deadline).map_err(|e| match e {
                    TransportError::Dial(why) => {
                        TransportError::Dial(format!("proxyconnect tcp: {why}"))
                    }
                    e => e,
                })?;
                if url.scheme == "https" {
                    tunnel(&tcp, &url.dial_addr(), deadline)?;
                }
                tcp
            }
            None => self.dial(url, deadline)?,
        };
        if url.scheme != "https" {
            return Ok(Conn::Plain(tcp));
        }
        let config = match &self.tls {
            Some(c) => c.clone(),
            None => {
                let c = crate::tls::client_config(&crate::tls::ClientFiles::default())
                    .map_err(TransportError::Other)?;
                self.tls = Some(c.clone());
                c
            }
        };
        let addr = url.dial_addr();
        let host = crate::tls::client::host_of(&addr);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| TransportError::Other(format!("bad TLS server name {host:?}")))?;
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| TransportError::Other(format!("tls: {e}")))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // Handshake now, so certificate errors show as such rather than as a failed write.
        if let Some(r) = remaining(deadline) {
            let _ = tls
                .sock
                .set_read_timeout(Some(r.max(Duration::from_millis(1))));
        }
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| match tls_text(&e) {
                    Some(text) => TransportError::Other(text),
                    None => TransportError::Conn(format!("read tcp: {}", io_text(&e))),
                })?;
        }
        Ok(Conn::Tls(Box::new(tls)))
    }

    fn dial(&self, url: &Url, deadline: Option<Instant>) -> Result<TcpStream, TransportError> {
        let addr = url.dial_addr();
        let addrs: Vec<_> = match addr.to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(_) => {
                let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(&addr);
                return Err(TransportError::Dial(format!(
                    "dial tcp: lookup {host} on {}: no such host",
                    crate::dns::name_server()
                )));
            }
        };
        let mut last = None;
        for a in addrs {
            let timeout = match (self.dial_timeout, remaining(deadline)) {
                (Some(t), Some(r)) => Some(t.min(r)),
                (t, r) => t.or(r),
            };
            let res = match timeout {
                Some(t) if t.is_zero() => return Err(TransportError::Deadline),
                Some(t) => TcpStream::connect_timeout(&a, t),
                None => TcpStream::connect(a),
            };
            match res {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => {
                    if e.kind() == io::ErrorKind::TimedOut
                        && deadline.is_some_and(|d| Instant::now() >= d)
                    {
                        return Err(TransportError::Deadline);
                    }
                    last = Some(format!("dial tcp {a}: connect: {}", io_text(&e)));
                }
            }
        }
        Err(TransportError::Dial(last.unwrap_or_else(|| {
            format!("dial tcp {addr}: no addresses")
        })))
    }

    /// Sends `req` and reads the full response. `header_deadline` bounds the wait for the
    /// response head, `deadline` the whole exchange.
    pub fn round_trip(
        &mut self,
        req: &Request,
        header_deadline: Option<Instant>,
        deadline: Option<Instant>,
    ) -> Result<HttpResponse, TransportError> {
        if req.url.scheme != "http" && req.url.scheme != "https" {
            return Err(TransportError::Other(format!(
                "unsupported protocol scheme {:?}",
                req.url.scheme
            )));
        }
        let key = req.url.dial_addr();
        // Through a forward proxy a plain request names its whole URL.
        let target = match &self.proxy {
            Some(_) if req.url.scheme == "http" => {
                format!("http://{}{}", req.url.host, req.url.request_uri())
            }
            _ => req.url.request_uri(),
        };
        let mut head = format!(
            "{} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Go-http-client/1.1\r\n",
            req.method, req.url.host
        );
        if let Some((u, p)) = &req.basic_auth {
            head.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64(format!("{u}:{p}").as_bytes())
            ));
        }
        if let Some(ct) = req.content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        let body = req.body.as_deref().unwrap_or(&[]);
        if req.body.is_some() || matches!(req.method, "POST" | "PUT") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body);

        let hd = min_deadline(header_deadline, deadline);
        // A reused connection may have been closed by the server: retry once, fresh.
        for attempt in 0..2 {
            let (mut conn, mut leftover, reused) = match self.idle.remove(&key) {
                Some((c, l)) if attempt == 0 => (c, l, true),
                _ => (self.connect(&req.url, hd)?, Vec::new(), false),
            };
            let set_to = |c: &TcpStream, d: Option<Instant>| -> Result<(), TransportError> {
                match remaining(d) {
                    Some(r) if r.is_zero() => Err(TransportError::Deadline),
                    r => {
                        let _ = c.set_read_timeout(r);
                        let _ = c.set_write_timeout(r);
                        Ok(())
                    }
                }
            };
            set_to(conn.tcp(), hd)?;
            if let Err(e) = conn.write_all(&wire).and_then(|()| conn.flush()) {
                if reused {
                    continue;
                }
                return Err(TransportError::Conn(format!("write tcp: {}", io_text(&e))));
            }
            // Read the head under the header deadline, the body under the total one.
            let mut reader = DeadlineReader {
                conn: &mut conn,
                head_deadline: hd,
                deadline,
                got_any: false,
            };
            let result = read_response(&mut reader, &mut leftover, req.method);
            let got_any = reader.got_any;
            match result {
                Ok((resp, reusable)) => {
                    if reusable {
                        let _ = conn.tcp().set_read_timeout(None);
                        self.idle.insert(key, (conn, leftover));
                    }
                    return Ok(resp);
                }
                Err(ReadError::Eof) if reused => continue,
                Err(e) => {
                    let timed_out = |e: &io::Error| {
                        matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        )
                    };
                    return Err(match e {
                        ReadError::Io(ref io) if tls_text(io).is_some() => {
                            TransportError::Other(tls_text(io).unwrap_or_default())
                        }
                        ReadError::Io(ref io) if timed_out(io) => {
                            if deadline.is_some_and(|d| Instant::now() >= d) {
                                TransportError::Deadline
                            } else if !got_any {
                                TransportError::HeaderTimeout
                            } else {
                                TransportError::Conn("i/o timeout".into())
                            }
                        }
                        ReadError::Io(io) => TransportError::Conn(format!(
                            "read tcp {}->{}: read: {}",
                            conn.tcp()
                                .local_addr()
                                .map(|a| a.to_string())
                                .unwrap_or_default(),
                            conn.tcp()
                                .peer_addr()
                                .map(|a| a.to_string())
                                .unwrap_or_default(),
                            io_text(&io)
                        )),
                        ReadError::Eof => TransportError::Conn("EOF".into()),
                        ReadError::UnexpectedEof => TransportError::Conn("unexpected EOF".into()),
                        ReadError::Protocol(p) => TransportError::Other(p),
                    });
                }
            }
        }
        Err(TransportError::Conn("EOF".into()))
    }
}

/// Opens a `CONNECT` tunnel to `authority` through the proxy on `tcp`.
pub(super) fn tunnel(
    tcp: &TcpStream,
    authority: &str,
    deadline: Option<Instant>,
) -> Result<(), TransportError> {
    let mut s = tcp;
    let _ = s.set_read_timeout(remaining(deadline).map(|r| r.max(Duration::from_millis(1))));
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    s.write_all(request.as_bytes())
        .map_err(|e| TransportError::Conn(format!("proxyconnect tcp: {}", io_text(&e))))?;
    // Read the answer's head byte by byte: what follows it belongs to the tunnel.
    let mut decoder = crate::http::decode::ResponseDecoder::new(true).with_limits(64 * 1024, 0);
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte) {
            Ok(0) => return Err(TransportError::Conn("proxyconnect tcp: EOF".into())),
            Ok(_) => buf.push(byte[0]),
            Err(e) => {
                return Err(TransportError::Conn(format!(
                    "proxyconnect tcp: {}",
                    io_text(&e)
                )))
            }
        }
        match decoder.decode(&buf) {
            Ok((_, Some(crate::http::decode::Event::Head(head)))) => {
                return match head.status {
                    200..=299 => Ok(()),
                    status => Err(TransportError::Other(format!(
                        "proxyconnect tcp: {status} {}",
                        head.reason
                    ))),
                };
            }
            Ok((used, _)) => {
                buf.drain(..used);
            }
            Err(e) => return Err(TransportError::Other(format!("proxyconnect tcp: {e}"))),
        }
    }
}

/// Applies the header deadline until the first bytes arrive, then the total deadline.
pub(super) struct DeadlineReader<'a> {
    conn: &'a mut Conn,
    head_deadline: Option<Instant>,
    deadline: Option<Instant>,
    got_any: bool,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let d = if self.got_any {
            self.deadline
        } else {
            self.head_deadline
        };
        match remaining(d) {
            Some(r) if r.is_zero() => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline"));
            }
            r => self.conn.tcp().set_read_timeout(r)?,
        }
        let n = self.conn.read(buf)?;
        if n > 0 {
            self.got_any = true;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Read};

    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Index: 7\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";

    /// Yields its data in fixed-size pieces, like a slow socket.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(self.data.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunked_response_at_every_read_size() {
        for step in [1, 2, 3, 5, 10, 100, 1000] {
            let mut r = Trickle { data: RESP, step };
            let mut left = Vec::new();
            let (resp, reuse) = read_response(&mut r, &mut left, "GET").unwrap();
            assert_eq!(resp.status, 200, "step {step}");
            assert_eq!(resp.body, b"hello world", "step {step}");
            assert_eq!(resp.header("x-etcd-index"), Some("7"));
            assert!(reuse);
            // The pipelined second response is still readable from the leftover.
            let (resp2, _) = read_response(&mut r, &mut left, "GET").unwrap();
            assert_eq!(resp2.status, 204, "step {step}");
        }
    }

    #[test]
    fn content_length_and_close_bodies() {
        let mut r = Trickle {
            data: b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcHTTP/1.0 200 OK\r\nConnection: close\r\n\r\nrest",
            step: 2,
        };
        let mut left = Vec::new();
        let (a, reuse) = read_response(&mut r, &mut left, "GET").unwrap();
        assert_eq!(
            (a.status, a.body.as_slice(), reuse),
            (404, &b"abc"[..], true)
        );
        let (b, reuse) = read_response(&mut r, &mut left, "GET").unwrap();
        assert_eq!(
            (b.status, b.body.as_slice(), reuse),
            (200, &b"rest"[..], false)
        );
    }

    #[test]
    fn truncated_responses_are_errors() {
        let mut r = Trickle {
            data: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            step: 4,
        };
        assert!(matches!(
            read_response(&mut r, &mut Vec::new(), "GET"),
            Err(ReadError::UnexpectedEof)
        ));
        let mut r = Trickle { data: b"", step: 4 };
        assert!(matches!(
            read_response(&mut r, &mut Vec::new(), "GET"),
            Err(ReadError::Eof)
        ));
        let mut r = Trickle {
            data: b"FOO 200\r\n\r\n",
            step: 4,
        };
        assert!(matches!(
            read_response(&mut r, &mut Vec::new(), "GET"),
            Err(ReadError::Protocol(_))
        ));
    }

    #[test]
    fn curl_line_quotes_body() {
        let mut r = Request::new("PUT", Url::parse("http://h:1/v2/keys/a").unwrap());
        r = r.form("value=\"x\"".into());
        assert_eq!(
            r.curl(),
            "curl -X PUT http://h:1/v2/keys/a -d \"value=\\\"x\\\"\""
        );
    }

    #[test]
    fn refused_connection_renders_like_go() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut c = Client::new(Config {
            endpoints: vec![format!("http://127.0.0.1:{port}")],
            ..Default::default()
        })
        .unwrap();
        let e = c.get("/a", &GetOptions::default()).unwrap_err();
        assert_eq!(
            e.detail().unwrap(),
            format!("error #0: dial tcp 127.0.0.1:{port}: connect: connection refused\n")
        );
        assert!(e.is_connection_error());
    }
}
