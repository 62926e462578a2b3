//! The client API: maps HTTP requests to v2 operations on this shard.
//!
//! Owns routing (`/v2/keys`, `/v2/members`, `/v2/machines`, `/v2/stats/*`, `/version`,
//! `/health`, and `/new` with `--discovery-service`), CORS, and the etcd headers every answer carries. Reads go to the newest published
//! version of the store ([`Shard::view`]); writes go through [`Shard::propose`]. Knows nothing about how commands are
//! replicated or how bytes reach the socket.

mod auth;
pub mod discovery;
mod keys;
mod members;
mod stats;

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cluster::Member;
use crate::error::Error;
use crate::http::{Body, Handler, HeaderValue, Method, Request, Response};
use crate::shard::{Padded, Shard};
use crate::transport::TransportStats;

/// The etcd version whose v2 API tern serves, as `/version` reports it.
pub const ETCD_SERVER_VERSION: &str = "2.3.7";
pub const ETCD_CLUSTER_VERSION: &str = "2.3.0";

/// Per-shard read counters (written by their shard only), summed when `/v2/stats/store` is
/// asked for.
#[derive(Default)]
pub struct ReadCounters {
    pub gets_success: AtomicU64,
    pub gets_fail: AtomicU64,
}

/// What every shard's API needs to know about this member; built once at start.
pub struct ApiShared {
    /// This member as configured (its name and ID); the cluster's list is `Shared::membership`.
    pub member: Member,
    pub cluster_id: u64,
    /// Peer traffic figures for the stats endpoints.
    pub transport: Arc<TransportStats>,
    /// `--cors` origins; empty means no CORS headers at all (etcd 2.3's default).
    pub cors: Vec<String>,
    /// When this process started, unix nanoseconds.
    pub start_time: i64,
    pub counters: Box<[Padded<ReadCounters>]>,
    /// `--discovery-service`: `Some` serves `/new`.
    pub discovery_service: Option<discovery::DiscoveryService>,
}

impl ApiShared {
    pub fn new(
        member: Member,
        cluster_id: u64,
        transport: Arc<TransportStats>,
        cors: Vec<String>,
        nshards: usize,
    ) -> ApiShared {
        ApiShared {
            member,
            cluster_id,
            transport,
            cors,
            start_time: unix_nanos_now(),
            counters: (0..nshards)
                .map(|_| Padded(ReadCounters::default()))
                .collect(),
            discovery_service: None,
        }
    }
}

pub fn unix_nanos_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The API as served by one shard.
#[derive(Clone)]
pub struct Api {
    pub shard: Rc<Shard>,
    pub shared: Arc<ApiShared>,
    /// This shard's password checker (a cache of verified credentials).
    auth_verifier: Rc<crate::auth::password::Verifier>,
}

impl Api {
    pub fn new(shard: Rc<Shard>, shared: Arc<ApiShared>) -> Api {
        Api {
            shard,
            shared,
            auth_verifier: Rc::new(crate::auth::password::Verifier::new()),
        }
    }

    fn counters(&self) -> &ReadCounters {
        &self.shared.counters[self.shard.id].0
    }

    /// Counts one GET (etcd's getsSuccess/getsFail). Only this shard writes its counters, so
    /// a load and a store do (no locked instruction per GET).
    fn count_read(&self, ok: bool) {
        let c = self.counters();
        let counter = if ok { &c.gets_success } else { &c.gets_fail };
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn cluster_id_header(&self) -> (&'static str, HeaderValue) {
        (
            "X-Etcd-Cluster-Id",
            HeaderValue::Hex(self.shared.cluster_id),
        )
    }

    /// Adds the CORS headers `--cors` asks for.
    fn add_cors(&self, request_origin: Option<String>, resp: &mut Response) {
        let allow_all = self.shared.cors.iter().any(|o| o == "*");
        let origin = if allow_all {
            Some("*".to_string())
        } else {
            request_origin.filter(|o| self.shared.cors.iter().any(|c| c == o))
        };
        if let Some(origin) = origin {
            resp.headers.push((
                "Access-Control-Allow-Methods",
                "POST, GET, OPTIONS, PUT, DELETE".into(),
            ));
            resp.headers
                .push(("Access-Control-Allow-Origin", origin.into()));
            resp.headers.push((
                "Access-Control-Allow-Headers",
                "accept, content-type, authorization".into(),
            ));
        }
    }

    async fn route(&self, req: Request) -> Response {
        if req.path == "*" {
            // Go's server answers `OPTIONS *` itself; its ServeMux refuses `*` for the rest.
            if req.method == Method::Options {
                return Response::new(200);
            }
            let mut r = Response::new(400);
            r.headers.push(("Connection", "close".into()));
            return r;
        }
        // Go's ServeMux routes on the percent-decoded path (`r.URL.Path`); a path Go's URL parser
        // refuses never reaches it.
        let Ok(decoded) = crate::http::decode_path_bytes(&req.path) else {
            return go_bad_request();
        };
        if !self.shared.cors.is_empty() && req.method == Method::Options {
            return Response::new(200);
        }
        if let Some(clean) = go_mux_clean_path(&decoded) {
            return moved_permanently(&req, &clean);
        }
        let path = String::from_utf8_lossy(&decoded);
        if path == "/v2/keys" || path.starts_with("/v2/keys/") {
            return keys::handle(self, &req, &path["/v2/keys".len()..]).await;
        }
        if let Some(sub) = path.strip_prefix("/v2/auth/") {
            return auth::handle(self, &req, sub).await;
        }
        if let Some(sub) = path.strip_prefix("/v2/members") {
            if sub.is_empty() || sub.starts_with('/') {
                return members::handle(self, &req, &sub[sub.len().min(1)..]).await;
            }
        }
        match &*path {
            "/version" => only_get(&req, version),
            "/health" => {
                if req.method != Method::Get {
                    return method_not_allowed("GET");
                }
                self.health().await
            }
            "/v2/machines" => {
                if !is_get(&req) {
                    return method_not_allowed("GET,HEAD");
                }
                members::machines(self)
            }
            "/v2/stats/self" => only_get(&req, || stats::self_stats(self)),
            "/v2/stats/leader" => only_get(&req, || stats::leader_stats(self)),
            "/v2/stats/store" => only_get(&req, || stats::store_stats(self)),
            // The Prometheus handler answers every method.
            "/metrics" => stats::metrics(self),
            // Go's expvar handler answers every method too.
            "/debug/vars" => stats::debug_vars(self),
            "/new" => match &self.shared.discovery_service {
                Some(service) => discovery::handle(self, service, &req).await,
                None => not_found(),
            },
            _ => not_found(),
        }
    }

    /// `/health`: healthy when a leader is known and a quorum read goes through (etcd 2.3),
    /// and the WAL has room for writes (etcd 3 reports its NOSPACE alarm the same way). The
    /// body is JSON but etcd sets no type, so Go sniffs it as text.
    async fn health(&self) -> Response {
        let raft = &self.shard.shared.raft;
        let leader = raft.leader.load(Ordering::Acquire);
        let healthy = leader != 0
            && !raft.wal_full.load(Ordering::Relaxed)
            && self.shard.read_barrier().await.is_ok();
        let counter = if healthy {
            &raft.health_success
        } else {
            &raft.health_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if healthy {
            text_response(200, "{\"health\": \"true\"}")
        } else {
            text_response(503, "{\"health\": \"false\"}\n")
        }
    }
}

impl Handler for Api {
    async fn handle(&self, req: Request) -> Response {
        if self.shared.cors.is_empty() {
            return self.route(req).await;
        }
        let origin = req.header("origin").map(str::to_string);
        let mut resp = self.route(req).await;
        self.add_cors(origin, &mut resp);
        resp
    }
}

/// Go's `http.ServeMux` answers a path that is not clean (`//`, `.`, `..`, also when
/// percent-encoded, since it looks at the decoded path) with a redirect to the cleaned path,
/// keeping a trailing slash. Returns the cleaned path when it differs. `*` is not a path.
fn go_mux_clean_path(path: &[u8]) -> Option<Vec<u8>> {
    if path == b"*" {
        return None;
    }
    // Already clean (the usual case): no copy. A trailing `/` is kept, as Go's mux keeps it.
    let names = path
        .strip_prefix(b"/")
        .map(|p| p.strip_suffix(b"/").unwrap_or(p));
    let clean = path == b"/"
        || names.is_some_and(|n| {
            !n.is_empty()
                && n.split(|&b| b == b'/')
                    .all(|c| !matches!(c, b"" | b"." | b".."))
        });
    if clean {
        return None;
    }
    let mut names: Vec<&[u8]> = Vec::new();
    for name in path.split(|&b| b == b'/') {
        match name {
            b"" | b"." => {}
            b".." => {
                names.pop();
            }
            name => names.push(name),
        }
    }
    let mut clean = Vec::with_capacity(path.len() + 1);
    for name in &names {
        clean.push(b'/');
        clean.extend_from_slice(name);
    }
    if clean.is_empty() || path.ends_with(b"/") {
        clean.push(b'/');
    }
    (clean != path).then_some(clean)
}

/// Go's `url.PathEscape`-like escaping of a path as `url.URL.String` writes it: unreserved
/// characters, `/` and `$&+,:;=@` stay, every other byte becomes `%XX`.
fn escape_path(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path {
        if b.is_ascii_alphanumeric() || b"-_.~/$&+,:;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Go's `http.Redirect` with 301, as `ServeMux` sends it: `Location` is the escaped clean path
/// and the raw query (bytes beyond ASCII as lowercase `%xx`); a GET gets a small HTML body.
fn moved_permanently(req: &Request, clean_path: &[u8]) -> Response {
    let mut url = escape_path(clean_path);
    if !req.query.is_empty() {
        url.push('?');
        url.push_str(&req.query);
    }
    let mut r = Response::new(301);
    if is_get(req) {
        r.headers
            .push(("Content-Type", "text/html; charset=utf-8".into()));
        r.body = Body::Full(
            format!(
                "<a href=\"{}\">Moved Permanently</a>.\n\n",
                html_escape(&url)
            )
            .into_bytes(),
        );
    }
    let mut location = String::with_capacity(url.len());
    for b in url.bytes() {
        if b.is_ascii() {
            location.push(b as char);
        } else {
            location.push_str(&format!("%{b:02x}"));
        }
    }
    r.headers.push(("Location", location.into()));
    r
}

/// Go's `html.EscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            c => out.push(c),
        }
    }
    out
}

/// What Go's server answers a request whose target it cannot parse (`%zz` in the path): 400,
/// a fixed text, and the connection closed.
fn go_bad_request() -> Response {
    let mut r = text_response(400, "400 Bad Request");
    r.headers.push(("Connection", "close".into()));
    r
}

fn is_get(req: &Request) -> bool {
    matches!(req.method, Method::Get | Method::Head)
}

/// GET only: etcd's `/version` and stats handlers refuse HEAD too.
fn only_get(req: &Request, f: impl FnOnce() -> Response) -> Response {
    if req.method == Method::Get {
        f()
    } else {
        method_not_allowed("GET")
    }
}

/// `/version`'s body (also served on the peer port).
pub fn version_json() -> String {
    format!(
        "{{\"etcdserver\":\"{ETCD_SERVER_VERSION}\",\"etcdcluster\":\"{ETCD_CLUSTER_VERSION}\"}}"
    )
}

fn version() -> Response {
    json_response(200, version_json().into_bytes())
}

pub(crate) fn json_response(status: u16, body: Vec<u8>) -> Response {
    let mut r = Response::new(status);
    // Room for the keys API's headers (index, raft index and term, cluster ID) without a
    // reallocation.
    r.headers.reserve_exact(5);
    r.headers.push(("Content-Type", "application/json".into()));
    r.body = Body::Full(body);
    r
}

pub(crate) fn text_response(status: u16, text: &str) -> Response {
    let mut r = Response::new(status);
    r.headers
        .push(("Content-Type", "text/plain; charset=utf-8".into()));
    r.body = Body::Full(text.as_bytes().to_vec());
    r
}

pub(crate) fn not_found() -> Response {
    let mut r = text_response(404, "404 page not found\n");
    r.headers.push(("X-Content-Type-Options", "nosniff".into()));
    r
}

pub(crate) fn method_not_allowed(allow: &str) -> Response {
    let mut r = text_response(405, "Method Not Allowed\n");
    r.headers.push(("Allow", allow.to_string().into()));
    r.headers.push(("X-Content-Type-Options", "nosniff".into()));
    r
}

/// An etcd error as JSON with its status and `X-Etcd-Index`.
pub(crate) fn error_response(err: &Error) -> Response {
    let mut r = json_response(err.http_status(), err.to_json());
    r.headers.push(("X-Etcd-Index", err.index.into()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mux_clean_path_leaves_clean_paths_and_cleans_the_others() {
        let clean = [&b"/"[..], b"/v2/keys/foo", b"/v2/keys/", b"/a", b"*"];
        for p in clean {
            assert_eq!(go_mux_clean_path(p), None, "{}", String::from_utf8_lossy(p));
        }
        let cases: [(&[u8], &[u8]); 9] = [
            (b"//", b"/"),
            (b"", b"/"),
            (b"a", b"/a"),
            (b"/a//b", b"/a/b"),
            (b"/a/./b", b"/a/b"),
            (b"/a/../b", b"/b"),
            (b"/a/.", b"/a"),
            (b"/a/..", b"/"),
            (b"/a//", b"/a/"),
        ];
        for (p, want) in cases {
            assert_eq!(
                go_mux_clean_path(p).as_deref(),
                Some(want),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
    }

    fn request(method: Method, path: &str, query: &str) -> Request {
        Request {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers: [("Host", "h")].into_iter().collect(),
            body: Vec::new(),
            minor_version: 1,
            keep_alive: true,
        }
    }

    fn clean(raw: &str) -> Option<String> {
        let decoded = crate::http::decode_path_bytes(raw).unwrap();
        go_mux_clean_path(&decoded).map(|c| escape_path(&c))
    }

    #[test]
    fn dot_segments_are_cleaned_after_percent_decoding() {
        let cases = [
            ("/v2/keys/x/../../y", Some("/v2/y")),
            ("/v2/keys/x/%2e%2e/%2e%2e/y", Some("/v2/y")),
            ("/v2/keys/x/%2E%2E/y", Some("/v2/keys/y")),
            ("/v2/keys/x/.%2e/y", Some("/v2/keys/y")),
            ("/v2/keys/x/%2e/y", Some("/v2/keys/x/y")),
            ("/v2/keys//x//y", Some("/v2/keys/x/y")),
            ("/v2/keys/x/%2e%2e/", Some("/v2/keys/")),
            ("/v2/keys/%2e%2e", Some("/v2")),
            ("/v2/keys/x%2f..%2fy", Some("/v2/keys/y")),
            ("/v2/keys/x/%2e%2E%2e/y", None),
            ("/v2/keys/a%2Fb", None),
            ("/v2/keys/", None),
            ("/", None),
            ("*", None),
            ("", Some("/")),
            // The clean path is written as Go's url.URL writes a path.
            (
                "/v2/keys/sp%20ace/%2e/%C3%A9%3F%23%25+%ff/",
                Some("/v2/keys/sp%20ace/%C3%A9%3F%23%25+%FF/"),
            ),
            (
                "/v2/keys/a!'()*[]{}|^`\"<>@:;=,&$+~%7F%01/./b",
                Some("/v2/keys/a%21%27%28%29%2A%5B%5D%7B%7D%7C%5E%60%22%3C%3E@:;=,&$+~%7F%01/b"),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(clean(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn redirects_are_go_http_redirects() {
        let get = request(Method::Get, "/v2/keys/x/%2e/y", "a=b&c='<é>'");
        let r = moved_permanently(&get, b"/v2/keys/x/y");
        assert_eq!(r.status, 301);
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.text().into_owned())
        };
        assert_eq!(
            header("Location").as_deref(),
            Some("/v2/keys/x/y?a=b&c='<%c3%a9>'")
        );
        assert_eq!(
            header("Content-Type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        let Body::Full(body) = &r.body else {
            panic!("streamed redirect body")
        };
        assert_eq!(
            String::from_utf8_lossy(body),
            "<a href=\"/v2/keys/x/y?a=b&amp;c=&#39;&lt;é&gt;&#39;\">Moved Permanently</a>.\n\n"
        );
        let put = request(Method::Put, "/v2/keys/x/%2e%2e/%2e%2e/y", "");
        let r = moved_permanently(&put, b"/v2/y");
        assert_eq!(r.headers, vec![("Location", "/v2/y".to_string().into())]);
        assert!(matches!(&r.body, Body::Full(b) if b.is_empty()));
    }
}
