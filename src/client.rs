//! A small blocking etcd v2 client for `ternctl` (and later discovery, proxy and bench).
//!
//! Owns: endpoint URLs, a keep-alive HTTP/1.1 transport on `std::net` (Content-Length,
//! chunked and read-to-close bodies, dial/header/total timeouts), the cluster client that
//! picks a member, fails over to the next one on a connection error and syncs the member
//! list (etcd's `client.httpClusterClient`), and the v2 APIs: keys (get, set, create,
//! update, in-order create, delete, watch), members, stats and auth users/roles.
//! Errors render exactly like etcd's Go client so `ternctl` can print them verbatim.
//!
//! Must not know: command-line flags, output formats or exit codes (that is `ctl`), nor
//! anything of the server's internals.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------------------
// URLs and escaping (Go's net/url rules, so --debug prints the same cURL lines).

/// A parsed endpoint or request URL: `scheme://host[:port]path[?query]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    /// `host[:port]` as written; empty for opaque URLs such as `localhost:2379`.
    pub host: String,
    /// Unescaped path.
    pub path: String,
    /// Already encoded query, without `?`.
    pub query: String,
    /// Set for `scheme:opaque` URLs (Go keeps them and fails at request time).
    pub opaque: String,
}

impl Url {
    /// Parses like Go's `url.Parse` for the shapes endpoints take.
    pub fn parse(raw: &str) -> Result<Url, String> {
        let (scheme, rest) = match split_scheme(raw) {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => (String::new(), raw),
        };
        let (rest, query) = match rest.find('?') {
            Some(i) => (&rest[..i], rest[i + 1..].to_string()),
            None => (rest, String::new()),
        };
        if let Some(after) = rest.strip_prefix("//") {
            let (host, path) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            return Ok(Url {
                scheme,
                host: host.to_string(),
                path: unescape(path),
                query,
                opaque: String::new(),
            });
        }
        if !scheme.is_empty() && !rest.starts_with('/') {
            return Ok(Url {
                scheme,
                host: String::new(),
                path: String::new(),
                query,
                opaque: rest.to_string(),
            });
        }
        let first = rest.split('/').next().unwrap_or("");
        if scheme.is_empty() && first.contains(':') {
            return Err(format!(
                "parse {:?}: first path segment in URL cannot contain colon",
                raw
            ));
        }
        Ok(Url {
            scheme,
            host: String::new(),
            path: unescape(rest),
            query,
            opaque: String::new(),
        })
    }

    /// Go's `URL.String()`.
    pub fn to_string_go(&self) -> String {
        let mut s = String::new();
        if !self.scheme.is_empty() {
            s.push_str(&self.scheme);
            s.push(':');
        }
        if !self.opaque.is_empty() {
            s.push_str(&self.opaque);
        } else {
            if !self.scheme.is_empty() || !self.host.is_empty() {
                if !self.host.is_empty() || !self.path.is_empty() {
                    s.push_str("//");
                }
                s.push_str(&self.host);
            }
            let p = escape_path(&self.path);
            if !p.is_empty() && !p.starts_with('/') && !self.host.is_empty() {
                s.push('/');
            }
            s.push_str(&p);
        }
        if !self.query.is_empty() {
            s.push('?');
            s.push_str(&self.query);
        }
        s
    }

    /// `host:port` to dial, with the scheme's default port.
    pub fn dial_addr(&self) -> String {
        let h = &self.host;
        let has_port = match h.rfind(':') {
            Some(i) => !h[i..].contains(']'),
            None => false,
        };
        if has_port {
            h.clone()
        } else if self.scheme == "https" {
            format!("{h}:443")
        } else {
            format!("{h}:80")
        }
    }

    /// The request target: escaped path plus query.
    pub fn request_uri(&self) -> String {
        let mut p = escape_path(&self.path);
        if p.is_empty() {
            p.push('/');
        }
        if !self.query.is_empty() {
            p.push('?');
            p.push_str(&self.query);
        }
        p
    }

    fn with_path(&self, path: String) -> Url {
        Url {
            path,
            query: String::new(),
            ..self.clone()
        }
    }
}

fn split_scheme(raw: &str) -> Option<(String, &str)> {
    for (i, c) in raw.char_indices() {
        if c.is_ascii_alphabetic() {
            continue;
        }
        if i > 0 && (c.is_ascii_digit() || c == '+' || c == '-' || c == '.') {
            continue;
        }
        if c == ':' && i > 0 {
            return Some((raw[..i].to_string(), &raw[i + 1..]));
        }
        return None;
    }
    None
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn escape_with(s: &str, keep: impl Fn(u8) -> bool, space_plus: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') || keep(c) {
            out.push(c as char);
        } else if c == b' ' && space_plus {
            out.push('+');
        } else {
            out.push_str(&format!("%{:02X}", c));
        }
    }
    out
}

/// Go's `url.PathEscape` flavour used by `URL.EscapedPath` (keeps `$&+,/:;=@`).
pub fn escape_path(s: &str) -> String {
    escape_with(s, |c| b"$&+,/:;=@".contains(&c), false)
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    escape_with(s, |_| false, true)
}

/// Go's `url.Values.Encode`: sorted by key.
pub fn encode_values(pairs: &[(&str, String)]) -> String {
    let mut v: Vec<&(&str, String)> = pairs.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v.iter()
        .map(|(k, val)| format!("{}={}", query_escape(k), query_escape(val)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// etcd's `pathutil.CanonicalURLPath`: cleaned, rooted, trailing slash kept.
pub fn canonical_url_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut np = clean_path(&p);
    if p.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

fn join_path(a: &str, b: &str) -> String {
    clean_path(&format!("{a}/{b}"))
}

/// Go's `%q` for a string (used by the cURL debug lines and `member add` output).
pub fn go_quote(s: &str) -> String {
    crate::http::form::go_quote(s.as_bytes())
}

/// Standard base64 with padding (RFC 4648), for `Authorization: Basic`.
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

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

    fn json(mut self, body: String) -> Request {
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
enum Conn {
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
    idle: HashMap<String, (Conn, Vec<u8>)>,
    pub dial_timeout: Option<Duration>,
    /// TLS settings for `https` endpoints (`--ca-file`, `--cert-file`, `--key-file`); the
    /// system's roots when `None`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// An HTTP forward proxy (`--discovery-proxy`): `http` requests go to it in absolute
    /// form, `https` ones through a `CONNECT` tunnel, as Go's `http.ProxyURL` does.
    pub proxy: Option<Url>,
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

fn min_deadline(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A TLS failure as Go's crypto/tls and x509 word it; `None` when `e` is not one.
fn tls_text(e: &io::Error) -> Option<String> {
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

fn io_text(e: &io::Error) -> String {
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
        let host = url.dial_addr();
        let host = host
            .rsplit_once(':')
            .map_or(host.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = rustls::pki_types::ServerName::try_from(host.clone())
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
fn tunnel(
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
struct DeadlineReader<'a> {
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

// ---------------------------------------------------------------------------------------
// Errors, as etcd's Go client renders them.

/// An etcd API error body (`{"errorCode":..,"message":..,"cause":..,"index":..}`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EtcdError {
    pub code: i64,
    pub message: String,
    pub cause: String,
    pub index: u64,
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}) [{}]",
            self.code, self.message, self.cause, self.index
        )
    }
}

/// Every way a client call can fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered with an etcd error body.
    Etcd(EtcdError),
    /// Every endpoint failed; one entry per attempt, with whether it was a connection error.
    Cluster(Vec<(String, bool)>),
    /// The total deadline passed (`context deadline exceeded`).
    DeadlineExceeded,
    /// No endpoints to talk to.
    NoEndpoints,
    /// A message printed as-is (auth/members errors, unexpected status codes, ...).
    Msg(String),
}

pub const ERR_CLUSTER_UNAVAILABLE: &str = "client: etcd cluster is unavailable or misconfigured";
pub const ERR_INVALID_JSON: &str =
    "client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint";
pub const ERR_EMPTY_BODY: &str = "client: response body is empty";

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Etcd(e) => e.fmt(f),
            ClientError::Cluster(errs) => {
                f.write_str(ERR_CLUSTER_UNAVAILABLE)?;
                for (i, (e, _)) in errs.iter().enumerate() {
                    writeln!(f, "; error #{i}: {e}")?;
                }
                Ok(())
            }
            ClientError::DeadlineExceeded => f.write_str("context deadline exceeded"),
            ClientError::NoEndpoints => f.write_str("client: no endpoints available"),
            ClientError::Msg(m) => f.write_str(m),
        }
    }
}

impl ClientError {
    /// `ClusterError.Detail()`: one `error #i: ...` line per attempt.
    pub fn detail(&self) -> Option<String> {
        match self {
            ClientError::Cluster(errs) => Some(
                errs.iter()
                    .enumerate()
                    .map(|(i, (e, _))| format!("error #{i}: {e}\n"))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// etcdctl's `isConnectionError`: every attempt failed to connect or timed out.
    pub fn is_connection_error(&self) -> bool {
        match self {
            ClientError::Cluster(errs) => errs.iter().all(|(_, c)| *c),
            ClientError::DeadlineExceeded => true,
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Wire types.

/// A key or directory (`client.Node`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Node {
    pub key: String,
    pub dir: bool,
    pub value: String,
    /// `None` when the server sent no `nodes` (Go: nil slice, marshalled as `null`).
    pub nodes: Option<Vec<Node>>,
    pub created_index: u64,
    pub modified_index: u64,
    /// As sent by the server (RFC 3339).
    pub expiration: Option<String>,
    pub ttl: i64,
}

/// A keys API answer (`client.Response`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Response {
    pub action: String,
    pub node: Option<Node>,
    pub prev_node: Option<Node>,
    /// `X-Etcd-Index`.
    pub index: u64,
    /// `X-Etcd-Cluster-Id`.
    pub cluster_id: String,
}

fn node_from_json(v: &Value) -> Option<Node> {
    let o = v.as_object()?;
    let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let u = |k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some(Node {
        key: s("key"),
        dir: o.get("dir").and_then(Value::as_bool).unwrap_or(false),
        value: s("value"),
        nodes: o
            .get("nodes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(node_from_json).collect()),
        created_index: u("createdIndex"),
        modified_index: u("modifiedIndex"),
        expiration: o
            .get("expiration")
            .and_then(Value::as_str)
            .map(str::to_string),
        ttl: o.get("ttl").and_then(Value::as_i64).unwrap_or(0),
    })
}

/// Parses a keys API response body plus its headers (`unmarshalHTTPResponse`).
pub fn parse_keys_response(resp: &HttpResponse) -> Result<Response, ClientError> {
    match resp.status {
        200 | 201 => {
            if resp.body.is_empty() {
                return Err(ClientError::Msg(ERR_EMPTY_BODY.into()));
            }
            let v: Value = serde_json::from_slice(&resp.body)
                .map_err(|_| ClientError::Msg(ERR_INVALID_JSON.into()))?;
            let o = v
                .as_object()
                .ok_or_else(|| ClientError::Msg(ERR_INVALID_JSON.into()))?;
            let index = match resp.header("x-etcd-index") {
                Some(h) if !h.is_empty() => h.parse().map_err(|_| {
                    ClientError::Msg(format!(
                        "strconv.ParseUint: parsing {}: invalid syntax",
                        go_quote(h)
                    ))
                })?,
                _ => 0,
            };
            Ok(Response {
                action: o
                    .get("action")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                node: o.get("node").and_then(node_from_json),
                prev_node: o.get("prevNode").and_then(node_from_json),
                index,
                cluster_id: resp.header("x-etcd-cluster-id").unwrap_or("").to_string(),
            })
        }
        _ => Err(parse_etcd_error(&resp.body)),
    }
}

fn parse_etcd_error(body: &[u8]) -> ClientError {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
        return ClientError::Msg(ERR_INVALID_JSON.into());
    };
    ClientError::Etcd(EtcdError {
        code: o.get("errorCode").and_then(Value::as_i64).unwrap_or(0),
        message: o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
        cause: o.get("cause").and_then(Value::as_str).unwrap_or("").into(),
        index: o.get("index").and_then(Value::as_u64).unwrap_or(0),
    })
}

/// A cluster member (`client.Member`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn member_from_json(v: &Value) -> Member {
    Member {
        id: v.get("id").and_then(Value::as_str).unwrap_or("").into(),
        name: v.get("name").and_then(Value::as_str).unwrap_or("").into(),
        peer_urls: strings(v.get("peerURLs")),
        client_urls: strings(v.get("clientURLs")),
    }
}

/// A peer's `GET /members` (what a member joining a running cluster checks its configuration
/// against): the cluster ID from `X-Etcd-Cluster-ID` and the member list.
/// `https://` peers are dialled with `tls`.
pub fn peer_members(
    peer_url: &str,
    timeout: Duration,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> Result<(u64, Vec<Member>), String> {
    let mut url = Url::parse(peer_url)?;
    url.path = "/members".into();
    url.query = String::new();
    let mut transport = Transport {
        dial_timeout: Some(timeout),
        tls: Some(tls),
        ..Transport::default()
    };
    let deadline = Instant::now() + timeout;
    let resp = transport
        .round_trip(&Request::new("GET", url), Some(deadline), Some(deadline))
        .map_err(|e| format!("{e:?}"))?;
    if resp.status != 200 {
        return Err(format!("status {}", resp.status));
    }
    let cluster = resp
        .header("X-Etcd-Cluster-ID")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .ok_or("no X-Etcd-Cluster-ID header")?;
    let v: Value = serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
    let members = v
        .as_array()
        .map(|a| a.iter().map(member_from_json).collect())
        .unwrap_or_default();
    Ok((cluster, members))
}

/// An auth user (`client.User`); roles by name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct User {
    pub user: String,
    pub roles: Vec<String>,
}

/// An auth role (`client.Role`): key prefixes it may read and write.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Role {
    pub role: String,
    pub read: Option<Vec<String>>,
    pub write: Option<Vec<String>>,
}

fn role_from_json(v: &Value) -> Role {
    let kv = v.get("permissions").and_then(|p| p.get("kv"));
    let list = |k: &str| {
        kv.and_then(|kv| kv.get(k))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
    };
    Role {
        role: v.get("role").and_then(Value::as_str).unwrap_or("").into(),
        read: list("read"),
        write: list("write"),
    }
}

/// Read, write or both, for role grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Read,
    Write,
    ReadWrite,
}

// ---------------------------------------------------------------------------------------
// Keys API options.

/// `PrevExist` condition of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PrevExist {
    #[default]
    Ignore,
    Exist,
    NoExist,
}

/// Options of a PUT on `/v2/keys` (`client.SetOptions`).
#[derive(Clone, Debug, Default)]
pub struct SetOptions {
    pub prev_value: String,
    pub prev_index: u64,
    pub prev_exist: PrevExist,
    pub ttl: u64,
    pub refresh: bool,
    pub dir: bool,
    pub no_value_on_success: bool,
}

/// Options of a DELETE (`client.DeleteOptions`).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub prev_value: String,
    pub prev_index: u64,
    pub dir: bool,
    pub recursive: bool,
}

/// Options of a GET (`client.GetOptions`).
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    pub recursive: bool,
    pub sort: bool,
    pub quorum: bool,
}

// ---------------------------------------------------------------------------------------
// The cluster client.

/// Client configuration (`client.Config`).
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub endpoints: Vec<String>,
    pub username: Option<String>,
    pub password: String,
    /// Per-request header timeout (`--timeout`); `None` waits forever.
    pub header_timeout: Option<Duration>,
    pub dial_timeout: Option<Duration>,
    /// Print a `cURL Command:` line on stderr for every request.
    pub debug: bool,
    /// TLS client settings for `https` endpoints.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// The v2 client: endpoint list with a pinned member, failover, sync.
pub struct Client {
    endpoints: Vec<Url>,
    pinned: usize,
    creds: Option<(String, String)>,
    header_timeout: Option<Duration>,
    pub debug: bool,
    transport: Transport,
    rng: u64,
    /// Overall deadline applied to every call until changed (`--total-timeout`).
    pub deadline: Option<Instant>,
}

const KEYS_PREFIX: &str = "/v2/keys";

impl Client {
    /// Builds a client; fails like `client.New` on a bad or empty endpoint list.
    pub fn new(cfg: Config) -> Result<Client, ClientError> {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (std::process::id() as u64) << 32;
        let mut c = Client {
            endpoints: Vec::new(),
            pinned: 0,
            creds: cfg.username.map(|u| (u, cfg.password)),
            header_timeout: cfg.header_timeout,
            debug: cfg.debug,
            transport: Transport {
                dial_timeout: cfg.dial_timeout,
                tls: cfg.tls,
                ..Default::default()
            },
            rng: seed | 1,
            deadline: None,
        };
        c.set_endpoints(&cfg.endpoints)?;
        Ok(c)
    }

    fn rand(&mut self, n: usize) -> usize {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545F4914F6CDD1D) % n as u64) as usize
    }

    fn shuffle(&mut self, eps: Vec<Url>) -> Vec<Url> {
        // Go's rand.Perm-based shuffle shape: p[i] = p[j]; p[j] = i.
        let n = eps.len();
        let mut p = vec![0usize; n];
        for i in 0..n {
            let j = self.rand(i + 1);
            p[i] = p[j];
            p[j] = i;
        }
        p.into_iter().map(|k| eps[k].clone()).collect()
    }

    /// Replaces the endpoint list (shuffled, pinned to the first).
    pub fn set_endpoints(&mut self, eps: &[String]) -> Result<(), ClientError> {
        if eps.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let mut parsed = Vec::new();
        for e in eps {
            parsed.push(Url::parse(e).map_err(ClientError::Msg)?);
        }
        self.endpoints = self.shuffle(parsed);
        self.pinned = 0;
        Ok(())
    }

    /// The current endpoints, in order, as Go prints them.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(Url::to_string_go).collect()
    }

    /// Sends one request built per endpoint, failing over like `httpClusterClient.Do`.
    /// `one_shot` requests (create, delete) are not retried on another member.
    pub fn do_request(
        &mut self,
        build: &dyn Fn(&Url) -> Request,
        one_shot: bool,
        wait: bool,
    ) -> Result<HttpResponse, ClientError> {
        let n = self.endpoints.len();
        if n == 0 {
            return Err(ClientError::NoEndpoints);
        }
        let mut errs: Vec<(String, bool)> = Vec::new();
        let pinned = self.pinned;
        for i in pinned..pinned + n {
            let k = i % n;
            let ep = self.endpoints[k].clone();
            let res = self.do_one(build, &ep, wait);
            let err = match res {
                Err(TransportError::Deadline) => return Err(ClientError::DeadlineExceeded),
                Err(e) => {
                    let (text, conn) = match e {
                        TransportError::Dial(s) => (s, true),
                        TransportError::Conn(s) => (s, true),
                        TransportError::HeaderTimeout => (
                            format!(
                                "client: endpoint {} exceeded header timeout",
                                ep.to_string_go()
                            ),
                            false,
                        ),
                        TransportError::Other(s) => (s, false),
                        TransportError::Deadline => unreachable!("handled above"),
                    };
                    errs.push((text.clone(), conn));
                    text
                }
                Ok(resp) if resp.status / 100 == 5 => {
                    let text = match resp.status {
                        500 | 503 => {
                            format!("client: etcd member {} has no leader", ep.to_string_go())
                        }
                        s => format!(
                            "client: etcd member {} returns server error [{}]",
                            ep.to_string_go(),
                            crate::http::response::reason_phrase(s)
                        ),
                    };
                    errs.push((text, false));
                    errs[0].0.clone()
                }
                Ok(resp) => {
                    if k != pinned {
                        self.pinned = k;
                    }
                    return Ok(resp);
                }
            };
            if one_shot {
                self.pinned = (k + 1) % n;
                return Err(ClientError::Msg(err));
            }
        }
        Err(ClientError::Cluster(errs))
    }

    fn do_one(
        &mut self,
        build: &dyn Fn(&Url) -> Request,
        ep: &Url,
        wait: bool,
    ) -> Result<HttpResponse, TransportError> {
        let mut req = build(ep);
        req.basic_auth = self.creds.clone();
        for _ in 0..=10 {
            if self.debug {
                eprintln!("cURL Command: {}", req.curl());
            }
            let header_deadline = if wait {
                None
            } else {
                self.header_timeout
                    .filter(|t| !t.is_zero())
                    .map(|t| Instant::now() + t)
            };
            let resp = self
                .transport
                .round_trip(&req, header_deadline, self.deadline)?;
            if resp.status / 100 == 3 {
                let Some(loc) = resp.header("location") else {
                    return Err(TransportError::Other("location header not set".into()));
                };
                req.url = Url::parse(loc).map_err(|_| {
                    TransportError::Other(format!("location header not valid URL: {loc}"))
                })?;
                continue;
            }
            return Ok(resp);
        }
        Err(TransportError::Other("client: too many redirects".into()))
    }

    /// Replaces the endpoints with the members' client URLs (`Client.Sync`).
    pub fn sync(&mut self) -> Result<(), ClientError> {
        let members = self.member_list()?;
        let eps: Vec<String> = members.into_iter().flat_map(|m| m.client_urls).collect();
        if eps.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let mut parsed = Vec::new();
        for e in &eps {
            parsed.push(Url::parse(e).map_err(ClientError::Msg)?);
        }
        let mut a: Vec<String> = self.endpoints();
        let mut b: Vec<String> = parsed.iter().map(Url::to_string_go).collect();
        a.sort();
        b.sort();
        if a == b {
            return Ok(());
        }
        self.endpoints = self.shuffle(parsed);
        self.pinned = 0;
        Ok(())
    }

    // ----- keys -----

    fn keys_url(ep: &Url, key: &str) -> Url {
        let key = if !key.is_empty() && !key.starts_with('/') {
            format!("/{key}")
        } else {
            key.to_string()
        };
        ep.with_path(canonical_url_path(&format!(
            "{}{}{}",
            ep.path, KEYS_PREFIX, key
        )))
    }

    /// GET a key or directory.
    pub fn get(&mut self, key: &str, opts: &GetOptions) -> Result<Response, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let mut u = Self::keys_url(ep, key);
                u.query = encode_values(&[
                    ("recursive", opts.recursive.to_string()),
                    ("sorted", opts.sort.to_string()),
                    ("quorum", opts.quorum.to_string()),
                ]);
                Request::new("GET", u)
            },
            false,
            false,
        )?;
        parse_keys_response(&resp)
    }

    /// PUT a key or directory with conditions.
    pub fn set(
        &mut self,
        key: &str,
        value: &str,
        opts: &SetOptions,
    ) -> Result<Response, ClientError> {
        let one_shot = opts.prev_exist == PrevExist::NoExist;
        let resp = self.do_request(
            &|ep| {
                let mut u = Self::keys_url(ep, key);
                let mut params: Vec<(&str, String)> = Vec::new();
                let mut form: Vec<(&str, String)> = Vec::new();
                if opts.dir {
                    params.push(("dir", "true".into()));
                } else {
                    if !opts.prev_value.is_empty() {
                        params.push(("prevValue", opts.prev_value.clone()));
                    }
                    form.push(("value", value.to_string()));
                }
                if opts.prev_index != 0 {
                    params.push(("prevIndex", opts.prev_index.to_string()));
                }
                match opts.prev_exist {
                    PrevExist::Ignore => {}
                    PrevExist::Exist => params.push(("prevExist", "true".into())),
                    PrevExist::NoExist => params.push(("prevExist", "false".into())),
                }
                if opts.ttl > 0 {
                    form.push(("ttl", opts.ttl.to_string()));
                }
                if opts.refresh {
                    form.push(("refresh", "true".into()));
                }
                if opts.no_value_on_success {
                    params.push(("noValueOnSuccess", "true".into()));
                }
                u.query = encode_values(&params);
                Request::new("PUT", u).form(encode_values(&form))
            },
            one_shot,
            false,
        )?;
        parse_keys_response(&resp)
    }

    /// Create only if absent (`prevExist=false`).
    pub fn create(&mut self, key: &str, value: &str, ttl: u64) -> Result<Response, ClientError> {
        self.set(
            key,
            value,
            &SetOptions {
                prev_exist: PrevExist::NoExist,
                ttl,
                ..Default::default()
            },
        )
    }

    /// Update only if present (`prevExist=true`).
    pub fn update(&mut self, key: &str, value: &str, ttl: u64) -> Result<Response, ClientError> {
        self.set(
            key,
            value,
            &SetOptions {
                prev_exist: PrevExist::Exist,
                ttl,
                ..Default::default()
            },
        )
    }

    /// POST an in-order key under `dir`.
    pub fn create_in_order(
        &mut self,
        dir: &str,
        value: &str,
        ttl: u64,
    ) -> Result<Response, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let mut form = vec![("value", value.to_string())];
                if ttl > 0 {
                    form.push(("ttl", ttl.to_string()));
                }
                Request::new("POST", Self::keys_url(ep, dir)).form(encode_values(&form))
            },
            false,
            false,
        )?;
        parse_keys_response(&resp)
    }

    /// DELETE a key or directory with conditions.
    pub fn delete(&mut self, key: &str, opts: &DeleteOptions) -> Result<Response, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let mut u = Self::keys_url(ep, key);
                let mut params: Vec<(&str, String)> = Vec::new();
                if !opts.prev_value.is_empty() {
                    params.push(("prevValue", opts.prev_value.clone()));
                }
                if opts.prev_index != 0 {
                    params.push(("prevIndex", opts.prev_index.to_string()));
                }
                if opts.dir {
                    params.push(("dir", "true".into()));
                }
                if opts.recursive {
                    params.push(("recursive", "true".into()));
                }
                u.query = encode_values(&params);
                let mut r = Request::new("DELETE", u);
                r.content_type = Some("application/x-www-form-urlencoded");
                r
            },
            true,
            false,
        )?;
        parse_keys_response(&resp)
    }

    /// A watcher on `key` for events after `after_index` (0: from now).
    pub fn watcher(&self, key: &str, after_index: u64, recursive: bool) -> Watcher {
        Watcher {
            key: key.to_string(),
            wait_index: if after_index > 0 { after_index + 1 } else { 0 },
            recursive,
        }
    }

    // ----- members -----

    fn members_url(ep: &Url, suffix: &str) -> Url {
        let p = join_path(&ep.path, "/v2/members");
        ep.with_path(if suffix.is_empty() {
            p
        } else {
            join_path(&p, suffix)
        })
    }

    /// GET /v2/members.
    pub fn member_list(&mut self) -> Result<Vec<Member>, ClientError> {
        let resp = self.do_request(
            &|ep| Request::new("GET", Self::members_url(ep, "")),
            false,
            false,
        )?;
        expect_status(&resp, &[200])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        Ok(v.get("members")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(member_from_json).collect())
            .unwrap_or_default())
    }

    /// GET /v2/members/leader.
    pub fn member_leader(&mut self) -> Result<Member, ClientError> {
        let resp = self.do_request(
            &|ep| Request::new("GET", Self::members_url(ep, "leader")),
            false,
            false,
        )?;
        expect_status(&resp, &[200])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        Ok(member_from_json(&v))
    }

    /// POST /v2/members with one peer URL.
    pub fn member_add(&mut self, peer_url: &str) -> Result<Member, ClientError> {
        let urls = validate_peer_urls(&[peer_url.to_string()]).map_err(ClientError::Msg)?;
        let body = peer_urls_json(&urls);
        let resp = self.do_request(
            &|ep| Request::new("POST", Self::members_url(ep, "")).json(body.clone()),
            false,
            false,
        )?;
        expect_status(&resp, &[201, 409])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        if resp.status != 201 {
            return Err(ClientError::Msg(
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            ));
        }
        Ok(member_from_json(&v))
    }

    /// PUT /v2/members/<id> with new peer URLs.
    pub fn member_update(&mut self, id: &str, peer_urls: &[String]) -> Result<(), ClientError> {
        let urls = validate_peer_urls(peer_urls).map_err(ClientError::Msg)?;
        let body = peer_urls_json(&urls);
        let resp = self.do_request(
            &|ep| Request::new("PUT", Self::members_url(ep, id)).json(body.clone()),
            false,
            false,
        )?;
        expect_status(&resp, &[204, 404, 409])?;
        if resp.status != 204 {
            let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
            return Err(ClientError::Msg(
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            ));
        }
        Ok(())
    }

    /// DELETE /v2/members/<id>.
    pub fn member_remove(&mut self, id: &str) -> Result<(), ClientError> {
        let resp = self.do_request(
            &|ep| Request::new("DELETE", Self::members_url(ep, id)),
            false,
            false,
        )?;
        expect_status(&resp, &[204, 410])
    }

    // ----- stats -----

    /// GET /v2/stats/{self,leader,store} as raw JSON.
    pub fn stats(&mut self, which: &str) -> Result<Value, ClientError> {
        let resp = self.do_request(
            &|ep| {
                Request::new(
                    "GET",
                    ep.with_path(join_path(&ep.path, &format!("/v2/stats/{which}"))),
                )
            },
            false,
            false,
        )?;
        expect_status(&resp, &[200])?;
        serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))
    }

    // ----- auth -----

    fn auth_url(ep: &Url, action: &str, name: &str) -> Url {
        let mut p = join_path(&ep.path, &format!("/v2/auth/{action}"));
        if !name.is_empty() {
            p = join_path(&p, name);
        }
        ep.with_path(p)
    }

    fn auth_call(
        &mut self,
        method: &'static str,
        action: &str,
        name: &str,
        body: Option<String>,
        ok: &[u16],
    ) -> Result<HttpResponse, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let r = Request::new(method, Self::auth_url(ep, action, name));
                match &body {
                    Some(b) => r.json(b.clone()),
                    None => r,
                }
            },
            false,
            false,
        )?;
        if !ok.contains(&resp.status) {
            let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
            return Err(ClientError::Msg(
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .into(),
            ));
        }
        Ok(resp)
    }

    /// PUT /v2/auth/enable.
    pub fn auth_enable(&mut self) -> Result<(), ClientError> {
        self.auth_call("PUT", "enable", "", None, &[200, 201])
            .map(|_| ())
    }

    /// DELETE /v2/auth/enable.
    pub fn auth_disable(&mut self) -> Result<(), ClientError> {
        self.auth_call("DELETE", "enable", "", None, &[200, 201])
            .map(|_| ())
    }

    /// GET /v2/auth/users: user names.
    pub fn user_list(&mut self) -> Result<Vec<String>, ClientError> {
        let resp = self.auth_call("GET", "users", "", None, &[200])?;
        names_in(&resp.body, "users", "user")
    }

    /// PUT /v2/auth/users/<name> with a password.
    pub fn user_add(&mut self, name: &str, password: &str) -> Result<(), ClientError> {
        let body = user_json(name, Some(password), "", &[]);
        self.auth_call("PUT", "users", name, Some(body), &[200, 201])
            .map(|_| ())
    }

    /// DELETE /v2/auth/users/<name>.
    pub fn user_remove(&mut self, name: &str) -> Result<(), ClientError> {
        self.auth_call("DELETE", "users", name, None, &[200, 201])
            .map(|_| ())
    }

    fn mod_user(
        &mut self,
        method: &'static str,
        name: &str,
        body: Option<String>,
    ) -> Result<User, ClientError> {
        let resp = self.auth_call(method, "users", name, body, &[200])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        // etcdctl decodes `roles` into []string first; when the server sends role
        // objects that fails element by element, leaving one "" per role, and the
        // fallback then appends the names: `Roles:  r1` with a doubled space.
        let roles = match v.get("roles").and_then(Value::as_array) {
            Some(a) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            Some(a) => {
                let mut r = vec![String::new(); a.len()];
                r.extend(a.iter().map(|x| {
                    x.get("role")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                }));
                r
            }
            None => Vec::new(),
        };
        Ok(User {
            user: v.get("user").and_then(Value::as_str).unwrap_or("").into(),
            roles,
        })
    }

    /// GET /v2/auth/users/<name>.
    pub fn user_get(&mut self, name: &str) -> Result<User, ClientError> {
        self.mod_user("GET", name, None)
    }

    /// Grant roles to a user.
    pub fn user_grant(&mut self, name: &str, roles: &[String]) -> Result<User, ClientError> {
        let body = user_json(name, None, "grant", roles);
        self.mod_user("PUT", name, Some(body))
    }

    /// Revoke roles from a user.
    pub fn user_revoke(&mut self, name: &str, roles: &[String]) -> Result<User, ClientError> {
        let body = user_json(name, None, "revoke", roles);
        self.mod_user("PUT", name, Some(body))
    }

    /// Change a user's password.
    pub fn user_passwd(&mut self, name: &str, password: &str) -> Result<User, ClientError> {
        let body = user_json(name, Some(password), "", &[]);
        self.mod_user("PUT", name, Some(body))
    }

    /// GET /v2/auth/roles: role names.
    pub fn role_list(&mut self) -> Result<Vec<String>, ClientError> {
        let resp = self.do_request(
            &|ep| {
                let mut r = Request::new("GET", Self::auth_url(ep, "roles", ""));
                r.content_type = Some("application/json");
                r
            },
            false,
            false,
        )?;
        expect_status(&resp, &[200])?;
        names_in(&resp.body, "roles", "role")
    }

    /// PUT /v2/auth/roles/<name>.
    pub fn role_add(&mut self, name: &str) -> Result<(), ClientError> {
        let body = role_json(name, None);
        self.auth_call("PUT", "roles", name, Some(body), &[200, 201])
            .map(|_| ())
    }

    /// DELETE /v2/auth/roles/<name>.
    pub fn role_remove(&mut self, name: &str) -> Result<(), ClientError> {
        self.auth_call("DELETE", "roles", name, None, &[200, 201])
            .map(|_| ())
    }

    fn mod_role(
        &mut self,
        method: &'static str,
        name: &str,
        body: Option<String>,
    ) -> Result<Role, ClientError> {
        let resp = self.auth_call(method, "roles", name, body, &[200])?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|_| json_err(&resp.body))?;
        Ok(role_from_json(&v))
    }

    /// GET /v2/auth/roles/<name>.
    pub fn role_get(&mut self, name: &str) -> Result<Role, ClientError> {
        self.mod_role("GET", name, None)
    }

    /// Grant key prefixes to a role.
    pub fn role_grant(
        &mut self,
        name: &str,
        prefixes: &[String],
        perm: Permission,
    ) -> Result<Role, ClientError> {
        let body = role_json(name, Some(("grant", prefixes, perm)));
        self.mod_role("PUT", name, Some(body))
    }

    /// Revoke key prefixes from a role.
    pub fn role_revoke(
        &mut self,
        name: &str,
        prefixes: &[String],
        perm: Permission,
    ) -> Result<Role, ClientError> {
        let body = role_json(name, Some(("revoke", prefixes, perm)));
        self.mod_role("PUT", name, Some(body))
    }

    /// GET /health: the raw body, or the transport error text.
    pub fn health(&mut self, client_url: &str) -> Result<Vec<u8>, String> {
        let url = Url::parse(client_url).map_err(|e| e.to_string())?;
        let url = url.with_path(format!("{}/health", url.path.trim_end_matches('/')));
        // A plain HTTP client, as etcdctl's: no cURL debug line, no credentials.
        let req = Request::new("GET", url.clone());
        let get = format!("Get {:?}", url.to_string_go());
        match self.transport.round_trip(&req, None, self.deadline) {
            Ok(r) => Ok(r.body),
            Err(TransportError::Dial(s)) | Err(TransportError::Conn(s)) => {
                Err(format!("{get}: {s}"))
            }
            Err(TransportError::Other(s)) => Err(format!("{get}: {s}")),
            Err(TransportError::HeaderTimeout) | Err(TransportError::Deadline) => Err(format!(
                "{get}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
        }
    }
}

/// A keys watcher (`client.Watcher`): each `next` long-polls for one event.
pub struct Watcher {
    key: String,
    wait_index: u64,
    recursive: bool,
}

impl Watcher {
    /// Waits for the next event (no deadline) and advances past it.
    pub fn next(&mut self, c: &mut Client) -> Result<Response, ClientError> {
        loop {
            let (key, wi, rec) = (self.key.clone(), self.wait_index, self.recursive);
            let resp = c.do_request(
                &|ep| {
                    let mut u = Client::keys_url(ep, &key);
                    u.query = encode_values(&[
                        ("wait", "true".into()),
                        ("waitIndex", wi.to_string()),
                        ("recursive", rec.to_string()),
                    ]);
                    Request::new("GET", u)
                },
                false,
                true,
            )?;
            match parse_keys_response(&resp) {
                Err(ClientError::Msg(m)) if m == ERR_EMPTY_BODY => continue,
                Err(e) => return Err(e),
                Ok(r) => {
                    self.wait_index = r.node.as_ref().map_or(0, |n| n.modified_index) + 1;
                    return Ok(r);
                }
            }
        }
    }
}

fn json_err(body: &[u8]) -> ClientError {
    ClientError::Msg(go_json_error(body))
}

/// Go's `encoding/json` error text for a body that is not valid JSON (approximate:
/// the common cases, an empty body and a bad first character).
pub fn go_json_error(body: &[u8]) -> String {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => "unexpected end of JSON input".into(),
        Some(&c)
            if !matches!(
                c,
                b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
            ) =>
        {
            format!(
                "invalid character {} looking for beginning of value",
                go_char(c)
            )
        }
        Some(_) => "unexpected end of JSON input".into(),
    }
}

fn go_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        c if c.is_ascii_graphic() || c == b' ' => format!("'{}'", c as char),
        c => format!("'\\x{c:02x}'"),
    }
}

fn expect_status(resp: &HttpResponse, want: &[u16]) -> Result<(), ClientError> {
    if want.contains(&resp.status) {
        Ok(())
    } else {
        Err(ClientError::Msg(format!(
            "unexpected status code {}",
            resp.status
        )))
    }
}

/// etcd's `types.NewURLs`: every URL http(s)/unix(s), `host:port`, no path; sorted.
pub fn validate_peer_urls(urls: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in urls {
        let u = Url::parse(raw.trim())?;
        if !matches!(u.scheme.as_str(), "http" | "https" | "unix" | "unixs") {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {raw}"
            ));
        }
        let has_port = u
            .host
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'));
        if !has_port {
            return Err(format!(
                "URL address does not have the form \"host:port\": {raw}"
            ));
        }
        if !u.path.is_empty() {
            return Err(format!("URL must not contain a path: {raw}"));
        }
        out.push(u.to_string_go());
    }
    out.sort();
    Ok(out)
}

fn peer_urls_json(urls: &[String]) -> String {
    serde_json::json!({ "peerURLs": urls }).to_string()
}

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn js_list(v: Option<&[String]>) -> String {
    match v {
        None => "null".into(),
        Some(v) => format!(
            "[{}]",
            v.iter().map(|s| js(s)).collect::<Vec<_>>().join(",")
        ),
    }
}

/// The `field` of every object in the array `list` of a JSON body (user and role listings).
fn names_in(body: &[u8], list: &str, field: &str) -> Result<Vec<String>, ClientError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| json_err(body))?;
    Ok(v.get(list)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.get(field).and_then(Value::as_str).unwrap_or("").into())
                .collect()
        })
        .unwrap_or_default())
}

/// Go's `json.Marshal(client.User{...})`, field order and omitempty included.
fn user_json(name: &str, password: Option<&str>, op: &str, roles: &[String]) -> String {
    let mut s = format!("{{\"user\":{}", js(name));
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        s.push_str(&format!(",\"password\":{}", js(p)));
    }
    s.push_str(",\"roles\":null");
    if !op.is_empty() && !roles.is_empty() {
        s.push_str(&format!(",\"{op}\":{}", js_list(Some(roles))));
    }
    s.push('}');
    s
}

/// Go's `json.Marshal(client.Role{...})`.
fn role_json(name: &str, change: Option<(&str, &[String], Permission)>) -> String {
    let perms = |r: Option<&[String]>, w: Option<&[String]>| {
        format!(
            "{{\"kv\":{{\"read\":{},\"write\":{}}}}}",
            js_list(r),
            js_list(w)
        )
    };
    let mut s = format!(
        "{{\"role\":{},\"permissions\":{}",
        js(name),
        perms(None, None)
    );
    if let Some((op, prefixes, perm)) = change {
        let (r, w) = match perm {
            Permission::Read => (Some(prefixes), None),
            Permission::Write => (None, Some(prefixes)),
            Permission::ReadWrite => (Some(prefixes), Some(prefixes)),
        };
        s.push_str(&format!(",\"{op}\":{}", perms(r, w)));
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn url_parsing_matches_go() {
        let u = Url::parse("http://127.0.0.1:2379/").unwrap();
        assert_eq!(u.to_string_go(), "http://127.0.0.1:2379/");
        assert_eq!(u.dial_addr(), "127.0.0.1:2379");
        assert_eq!(
            Url::parse("127.0.0.1:2379").unwrap_err(),
            "parse \"127.0.0.1:2379\": first path segment in URL cannot contain colon"
        );
        let o = Url::parse("localhost:2379").unwrap();
        assert_eq!(
            (o.scheme.as_str(), o.opaque.as_str()),
            ("localhost", "2379")
        );
        assert_eq!(Url::parse("http://h").unwrap().dial_addr(), "h:80");
    }

    #[test]
    fn keys_urls_are_canonical_and_escaped() {
        let ep = Url::parse("http://h:1").unwrap();
        let mut u = Client::keys_url(&ep, "foo//bar/");
        assert_eq!(u.path, "/v2/keys/foo/bar/");
        u = Client::keys_url(&ep, "/a b/*?");
        assert_eq!(u.to_string_go(), "http://h:1/v2/keys/a%20b/%2A%3F");
        assert_eq!(canonical_url_path(""), "/");
        assert_eq!(clean_path("/a/../../b/./c"), "/b/c");
    }

    #[test]
    fn query_and_form_encoding() {
        assert_eq!(
            encode_values(&[("value", "a b&c".into()), ("ttl", "5".into())]),
            "ttl=5&value=a+b%26c"
        );
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
    fn error_rendering() {
        let e = ClientError::Etcd(EtcdError {
            code: 100,
            message: "Key not found".into(),
            cause: "/a".into(),
            index: 3,
        });
        assert_eq!(e.to_string(), "100: Key not found (/a) [3]");
        let c = ClientError::Cluster(vec![("x".into(), true), ("y".into(), true)]);
        assert_eq!(
            c.to_string(),
            "client: etcd cluster is unavailable or misconfigured; error #0: x\n; error #1: y\n"
        );
        assert_eq!(c.detail().unwrap(), "error #0: x\nerror #1: y\n");
        assert!(c.is_connection_error());
        assert!(!ClientError::Cluster(vec![("x".into(), false)]).is_connection_error());
    }

    #[test]
    fn keys_response_parsing() {
        let resp = HttpResponse {
            status: 200,
            headers: vec![("x-etcd-index".into(), "9".into())],
            body: br#"{"action":"get","node":{"key":"/d","dir":true,"nodes":[{"key":"/d/a","value":"1","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":3,"createdIndex":3}}"#.to_vec(),
        };
        let r = parse_keys_response(&resp).unwrap();
        assert_eq!(r.index, 9);
        let n = r.node.unwrap();
        assert!(n.dir);
        assert_eq!(n.nodes.unwrap()[0].value, "1");
        let err = HttpResponse {
            status: 404,
            body: br#"{"errorCode":100,"message":"Key not found","cause":"/x","index":5}"#.to_vec(),
            ..Default::default()
        };
        assert_eq!(
            parse_keys_response(&err).unwrap_err().to_string(),
            "100: Key not found (/x) [5]"
        );
        let empty = HttpResponse {
            status: 200,
            ..Default::default()
        };
        assert_eq!(
            parse_keys_response(&empty).unwrap_err().to_string(),
            ERR_EMPTY_BODY
        );
    }

    #[test]
    fn peer_url_validation() {
        assert_eq!(
            validate_peer_urls(&["bad-url".into()]).unwrap_err(),
            "URL scheme must be http, https, unix, or unixs: bad-url"
        );
        assert_eq!(
            validate_peer_urls(&["http://h".into()]).unwrap_err(),
            "URL address does not have the form \"host:port\": http://h"
        );
        assert_eq!(
            validate_peer_urls(&["http://h:1/p".into()]).unwrap_err(),
            "URL must not contain a path: http://h:1/p"
        );
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b"root:pw"), "cm9vdDpwdw==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
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
