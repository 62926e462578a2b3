//! The proxy's request handler: forwards each client request to the first available member
//! and passes its answer back, as etcd's v2 proxy (`proxy/httpproxy`) does.
//!
//! Owns, per shard: the pool of kept-alive connections to members (plain or TLS), the request
//! rewrite (hop-by-hop headers dropped, `Host` set to the member), trying the next member when
//! one cannot be reached (and marking it failed in the shard's [`Director`]), the answers
//! etcd's proxy gives of its own (501 for writes to a `readonly` proxy, 503 with no endpoint,
//! 502 when every endpoint failed, `/v2/config/local/proxy`, `/metrics`), and passing a
//! streamed answer (a watch) on piece by piece: when the client goes away the stream is
//! dropped and with it the member connection, which ends the watch there. Knows nothing about
//! what the keys API means; reads responses with the shared decoder (`http::client`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpStream;

use super::director::Director;
use crate::http::client::{encode_request, ClientConn};
use crate::http::decode::{Framing, ResponseHead};
use crate::http::{Handler, Method, Request, Response};
use crate::metrics::proxy::ProxyMetrics;
use crate::shard::with_timeout;
use crate::tls::stream::MaybeTls;

type Conn = ClientConn<MaybeTls<TcpStream>>;

/// Answers up to this size are read whole and sent with a `Content-Length`; larger ones and
/// chunked ones are passed on as they arrive.
const WHOLE_BODY: u64 = 4 << 20;
/// Idle connections kept per member and shard.
const IDLE_PER_ENDPOINT: usize = 64;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus the framing the
/// writer sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
];

/// The proxy's timeouts (`--proxy-dial-timeout`, `--proxy-write-timeout`,
/// `--proxy-read-timeout`; zero means none).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub dial: Duration,
    pub write: Duration,
    pub read: Duration,
}

/// One shard's proxy handler.
pub struct ProxyHandler {
    pub director: RefCell<Director>,
    pub readonly: bool,
    pub timeouts: Timeouts,
    /// For `https://` members.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub metrics: Arc<ProxyMetrics>,
    pool: Rc<Pool>,
}

/// Kept-alive member connections by endpoint URL.
#[derive(Default)]
struct Pool(RefCell<HashMap<String, Vec<Conn>>>);

impl Pool {
    fn take(&self, endpoint: &str) -> Option<Conn> {
        self.0.borrow_mut().get_mut(endpoint)?.pop()
    }

    fn put(&self, endpoint: &str, conn: Conn) {
        let mut pool = self.0.borrow_mut();
        let idle = pool.entry(endpoint.to_string()).or_default();
        if idle.len() < IDLE_PER_ENDPOINT {
            idle.push(conn);
        }
    }
}

fn message(status: u16, text: &str) -> Response {
    let body = serde_json::json!({ "message": text }).to_string();
    Response::full(status, body).with_header("Content-Type", "application/json")
}

impl ProxyHandler {
    pub fn new(
        director: Director,
        readonly: bool,
        timeouts: Timeouts,
        tls: Option<Arc<rustls::ClientConfig>>,
        metrics: Arc<ProxyMetrics>,
    ) -> ProxyHandler {
        ProxyHandler {
            director: RefCell::new(director),
            readonly,
            timeouts,
            tls,
            metrics,
            pool: Rc::new(Pool::default()),
        }
    }

    async fn dial(&self, endpoint: &str) -> Result<Conn, String> {
        let (tls, authority) = split_endpoint(endpoint).ok_or("not an http(s) URL")?;
        let addrs = crate::dns::resolve(authority)
            .await
            .map_err(|e| e.to_string())?;
        let mut last = format!("{authority}: no address");
        for addr in addrs {
            let connected = TcpStream::connect_timeout(addr, self.timeouts.dial.max(MIN_DIAL))
                .await
                .map_err(|e| format!("dial tcp {addr}: {}", go_dial_error(&io::Error::from(e))));
            let stream = match connected {
                Ok(s) => s,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let stream = if tls {
                let config = self
                    .tls
                    .clone()
                    .ok_or("an https member and no TLS client configuration")?;
                let name = crate::tls::client::server_name(authority).map_err(|e| e.to_string())?;
                let connector = futures_rustls::TlsConnector::from(config);
                let handshake = connector.connect(name, stream);
                match with_timeout(self.timeouts.dial.max(MIN_DIAL), handshake).await {
                    Some(Ok(s)) => MaybeTls::Tls(Box::new(s)),
                    Some(Err(e)) => return Err(format!("TLS handshake with {authority}: {e}")),
                    None => return Err(format!("TLS handshake with {authority}: timed out")),
                }
            } else {
                MaybeTls::Plain(stream)
            };
            return Ok(ClientConn::new(stream, usize::MAX));
        }
        Err(last)
    }

    /// Sends the request on `conn` and reads the answer's head, within the timeouts.
    async fn exchange(
        &self,
        conn: &mut Conn,
        request: &[u8],
        head: bool,
    ) -> io::Result<ResponseHead> {
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "i/o timeout");
        match self.timeouts.write {
            d if d.is_zero() => conn.send(request).await?,
            d => with_timeout(d, conn.send(request))
                .await
                .ok_or_else(timed_out)??,
        }
        match self.timeouts.read {
            d if d.is_zero() => conn.read_head(head).await,
            d => with_timeout(d, conn.read_head(head))
                .await
                .ok_or_else(timed_out)?,
        }
    }

    /// One member's answer to `req`, or why there was none (the dial failed, or the request
    /// went out and no complete answer came): either way the next member is tried.
    async fn forward(&self, endpoint: &str, req: &Request) -> Result<Response, String> {
        let (_, authority) = split_endpoint(endpoint).ok_or("not an http(s) URL")?;
        let request = encode_upstream(req, authority);
        let head_request = req.method == Method::Head;
        // A pooled connection the member has closed meanwhile fails at once: try a new one.
        let mut reused = self.pool.take(endpoint);
        let (mut conn, head) = loop {
            let (mut conn, fresh) = match reused.take() {
                Some(c) => (c, false),
                None => (self.dial(endpoint).await?, true),
            };
            match self.exchange(&mut conn, &request, head_request).await {
                Ok(head) => break (conn, head),
                Err(e) if fresh => return Err(format!("{} {endpoint}: {e}", req.method.as_str())),
                Err(_) => continue,
            }
        };
        let mut resp = Response::full(head.status, Vec::new());
        for (name, value) in &head.headers {
            if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                continue;
            }
            if let Some(name) = super::header_name(name) {
                resp.headers.push((name, value.clone().into()));
            }
        }
        match head.framing {
            Framing::None => {
                if head.keep_alive {
                    self.pool.put(endpoint, conn);
                }
            }
            Framing::Length(n) if n <= WHOLE_BODY => {
                let mut body = Vec::with_capacity(n as usize);
                loop {
                    match conn.read_body().await {
                        Ok(Some(piece)) => body.extend_from_slice(&piece),
                        Ok(None) => break,
                        Err(e) => return Err(e.to_string()),
                    }
                }
                if head.keep_alive {
                    self.pool.put(endpoint, conn);
                }
                resp.body = crate::http::Body::Full(body);
            }
            _ => {
                let pool = self.pool.clone();
                let endpoint = endpoint.to_string();
                let keep_alive = head.keep_alive;
                let pieces = futures_lite::stream::unfold(Some(conn), move |conn| {
                    let pool = pool.clone();
                    let endpoint = endpoint.clone();
                    async move {
                        let mut conn = conn?;
                        match conn.read_body().await {
                            Ok(Some(piece)) => Some((piece, Some(conn))),
                            Ok(None) => {
                                if keep_alive {
                                    pool.put(&endpoint, conn);
                                }
                                None
                            }
                            Err(_) => None,
                        }
                    }
                });
                resp.body = crate::http::Body::Stream(Box::pin(pieces));
            }
        }
        Ok(resp)
    }

    fn own_answer(&self, req: &Request) -> Option<Response> {
        match req.path.as_str() {
            "/v2/config/local/proxy" => {
                let endpoints = self.director.borrow_mut().all();
                let body = serde_json::json!({ "endpoints": *endpoints }).to_string();
                Some(Response::text(200, body))
            }
            "/metrics" => Some(
                Response::full(200, crate::metrics::proxy::render(&self.metrics))
                    .with_header("Content-Type", "text/plain; version=0.0.4"),
            ),
            _ => None,
        }
    }
}

/// A dial error as Go words it (`connect: connection refused`, `i/o timeout`).
fn go_dial_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

/// Dial timeouts below this are raised to it (a zero flag would never connect).
const MIN_DIAL: Duration = Duration::from_millis(10);

/// `(https?, authority)` of an `http(s)://authority[/…]` endpoint.
fn split_endpoint(endpoint: &str) -> Option<(bool, &str)> {
    let authority = crate::transport::url_authority(endpoint)?;
    Some((endpoint.starts_with("https://"), authority))
}

/// The request as the member gets it: same method, target and end-to-end headers; `Host` is
/// the member; the body (de-chunked by the server side) goes with a `Content-Length`.
fn encode_upstream(req: &Request, authority: &str) -> Vec<u8> {
    let target = match req.query.as_str() {
        "" => req.path.clone(),
        q => format!("{}?{q}", req.path),
    };
    // Headers the client's `Connection` header names are hop-by-hop too.
    let named: Vec<String> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    let headers: Vec<(&str, String)> = req
        .headers
        .iter()
        .filter(|(n, _)| {
            !HOP_BY_HOP.iter().any(|h| n.eq_ignore_ascii_case(h))
                && !named.iter().any(|t| n.eq_ignore_ascii_case(t))
        })
        .map(|(n, v)| (n, v.to_string()))
        .collect();
    let mut out = Vec::with_capacity(256 + req.body.len());
    encode_request(
        req.method.as_str(),
        authority,
        &target,
        &headers,
        &req.body,
        &mut out,
    );
    out
}

impl Handler for ProxyHandler {
    async fn handle(&self, req: Request) -> Response {
        let started = Instant::now();
        let method = req.method.as_str();
        if let Some(resp) = self.own_answer(&req) {
            return resp;
        }
        if self.readonly && req.method != Method::Get {
            return Response::new(501);
        }
        self.metrics.requested(method);
        let endpoints = self.director.borrow_mut().available(started);
        if endpoints.is_empty() {
            tracing::info!("proxy: zero endpoints currently available");
            self.metrics.dropped(method, "zero_endpoints");
            return message(503, "httpproxy: zero endpoints currently available");
        }
        for endpoint in &endpoints {
            match self.forward(endpoint, &req).await {
                Ok(resp) => {
                    self.metrics.handled(method, resp.status);
                    if matches!(resp.body, crate::http::Body::Full(_)) {
                        self.metrics.took(method, started.elapsed());
                    }
                    return resp;
                }
                Err(e) => {
                    tracing::info!("proxy: failed to direct request to {endpoint}: {e}");
                    self.metrics.dropped(method, "failed_sending_request");
                    self.director.borrow_mut().failed(endpoint, Instant::now());
                }
            }
        }
        tracing::info!(
            "proxy: unable to get response from {} endpoint(s)",
            endpoints.len()
        );
        self.metrics.dropped(method, "failed_getting_response");
        message(
            502,
            &format!(
                "httpproxy: unable to get response from {} endpoint(s)",
                endpoints.len()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_member_gets_the_request_without_hop_by_hop_headers() {
        let req = Request {
            method: Method::Put,
            path: "/v2/keys/a".into(),
            query: "prevExist=false".into(),
            headers: [
                ("Host", "proxy:2379"),
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "1"),
                ("Authorization", "Basic cm9vdDpw"),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Transfer-Encoding", "chunked"),
            ]
            .into_iter()
            .collect(),
            body: b"value=1".to_vec(),
            minor_version: 1,
            keep_alive: true,
        };
        assert_eq!(
            String::from_utf8(encode_upstream(&req, "10.0.0.1:2379")).unwrap(),
            "PUT /v2/keys/a?prevExist=false HTTP/1.1\r\nHost: 10.0.0.1:2379\r\n\
             Authorization: Basic cm9vdDpw\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 7\r\n\r\nvalue=1"
        );
    }

    #[test]
    fn endpoints_split_into_scheme_and_authority() {
        assert_eq!(split_endpoint("http://a:1"), Some((false, "a:1")));
        assert_eq!(split_endpoint("https://[::1]:2/x"), Some((true, "[::1]:2")));
        assert_eq!(split_endpoint("unix://x"), None);
        assert_eq!(split_endpoint("http://"), None);
    }
}
