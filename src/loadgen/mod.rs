//! `loadgen`: tern's benchmark client, the engine of the `ternbench` binary and of
//! `cargo bench --bench matrix`.
//!
//! Owns what one load run is ([`Spec`]: endpoints, GET or PUT, value size, concurrent clients,
//! a duration or a request count, client threads, the TLS client configuration for `https://`
//! endpoints), driving it ([`run`]: one glommio executor per thread, each client one kept-alive
//! HTTP/1.1 connection, plain or TLS ([`crate::tls::stream::MaybeTls`]), issuing sequential
//! requests through [`crate::http::client::ClientConn`]) and what it measured ([`Report`]: requests/s, latency
//! percentiles from an HDR histogram, errors; as a text table row or JSON). It is the load of
//! the etcd manual's §8 benchmark: `GET`/`PUT /v2/keys/foo` with a `value=<n bytes>` form body.
//!
//! Knows nothing about the server it drives beyond the v2 keys API: not its processes, not its
//! cluster. Starting servers and comparing them is the caller's.

mod driver;
pub mod floor;
mod report;
pub mod responder;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

pub use driver::{run, run_with, RunError};
pub use report::{percentiles, Percentiles, Report};

/// Largest value a spec may ask for (tern's and etcd's default request limit is 1.5 MiB).
pub const MAX_VALUE_SIZE: usize = 1 << 20;

/// The key the manual's benchmark reads and writes.
pub const DEFAULT_KEY: &str = "/v2/keys/foo";

/// What each request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    /// `GET <key>` (the key is written once before the run starts).
    Get,
    /// `PUT <key>` with the form body `value=<value_size bytes>`.
    Put,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Put => "PUT",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Clients start no new request once this much time has passed since the start.
    Duration(Duration),
    /// Exactly this many requests are issued, shared by all clients.
    Requests(u64),
}

/// One server address the clients talk to, plain or TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `https://`: the name the server's certificate must carry (the URL's host); `None` for
    /// plain HTTP.
    pub tls: Option<ServerName<'static>>,
}

impl Endpoint {
    /// `http://addr`.
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, tls: None }
    }

    /// `https://addr`, the server's certificate naming the IP address.
    pub fn https(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            tls: Some(ServerName::IpAddress(addr.ip().into())),
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Endpoint {
        Endpoint::plain(addr)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.addr)
    }
}

/// One load run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Client `i` talks to `endpoints[i % len]`: one endpoint is "leader only", all members
    /// spread the clients round-robin.
    pub endpoints: Vec<Endpoint>,
    /// What `https://` endpoints are dialed with (required when there is one; see
    /// [`crate::tls::client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub op: Op,
    /// Bytes of the value written (PUT) or written once and then read (GET).
    pub value_size: usize,
    /// Concurrent clients; each is one connection doing one request at a time.
    pub clients: usize,
    pub stop: Stop,
    /// Client threads, each running one glommio executor; clients are spread over them.
    pub threads: usize,
    /// The request path, `/v2/keys/...`.
    pub key: String,
    /// PUT only: request number `n` writes `<key>/<n>` instead of `<key>`, so a run with
    /// [`Stop::Requests`] loads that many distinct keys.
    pub sequential_keys: bool,
    /// A request not answered within this time counts as an error and its connection is
    /// replaced.
    pub request_timeout: Duration,
    /// `user:password` sent with every request as HTTP basic auth (etcdctl's `--username`).
    pub basic_auth: Option<String>,
}

impl Spec {
    /// One client on one thread for one second, `GET /v2/keys/foo` with a 64-byte value.
    pub fn new<E: Into<Endpoint>>(endpoints: impl IntoIterator<Item = E>, op: Op) -> Spec {
        Spec {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            op,
            value_size: 64,
            clients: 1,
            stop: Stop::Duration(Duration::from_secs(1)),
            threads: 1,
            key: DEFAULT_KEY.to_string(),
            sequential_keys: false,
            request_timeout: Duration::from_secs(10),
            basic_auth: None,
        }
    }

    /// The headers every request carries (basic auth, when set).
    pub(crate) fn auth_headers(&self) -> Vec<(&'static str, String)> {
        self.basic_auth
            .iter()
            .map(|up| {
                (
                    "Authorization",
                    format!("Basic {}", crate::client::base64(up.as_bytes())),
                )
            })
            .collect()
    }

    /// Checks that the run makes sense before any connection is opened.
    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |msg: String| Err(SpecError(msg));
        if self.endpoints.is_empty() {
            return bad("no endpoints".into());
        }
        if let Some(ep) = self.endpoints.iter().find(|e| e.tls.is_some()) {
            if self.tls.is_none() {
                return bad(format!(
                    "{ep}: an https endpoint needs a TLS client configuration"
                ));
            }
        }
        if self.clients == 0 {
            return bad("--clients must be at least 1".into());
        }
        if self.threads == 0 {
            return bad("--threads must be at least 1".into());
        }
        if self.threads > self.clients {
            return bad(format!(
                "--threads {} is more than --clients {}: a thread without a client does nothing",
                self.threads, self.clients
            ));
        }
        if self.value_size > MAX_VALUE_SIZE {
            return bad(format!(
                "--value-size {} is over the limit of {MAX_VALUE_SIZE} bytes",
                self.value_size
            ));
        }
        match self.stop {
            Stop::Duration(d) if d.is_zero() => return bad("--duration-secs must be > 0".into()),
            Stop::Requests(0) => return bad("--requests must be at least 1".into()),
            _ => {}
        }
        if !self.key.starts_with("/v2/keys/") || self.key.len() == "/v2/keys/".len() {
            return bad(format!(
                "key {:?} is not a key path under /v2/keys/",
                self.key
            ));
        }
        if self
            .key
            .bytes()
            .any(|b| b <= b' ' || b == b'?' || b == b'#')
        {
            return bad(format!(
                "key {:?} has characters that need escaping",
                self.key
            ));
        }
        if self.sequential_keys && self.op != Op::Put {
            return bad("sequential keys are for PUT only".into());
        }
        if self.request_timeout.is_zero() {
            return bad("the request timeout must be > 0".into());
        }
        Ok(())
    }
}

/// A spec that cannot run, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

/// Parses a comma-separated endpoint list: `http://host:port`, `https://host:port` or
/// `host:port` (plain), with or without a trailing `/`. Each is resolved to its first socket
/// address; an `https://` endpoint's certificate must name its host.
pub fn parse_endpoints(list: &str) -> Result<Vec<Endpoint>, SpecError> {
    let mut out = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (tls, rest) = match raw.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, _)) => {
                return Err(SpecError(format!(
                    "{raw}: scheme {scheme:?} is neither http nor https"
                )))
            }
            None => (false, raw),
        };
        let hostport = rest.trim_end_matches('/');
        if hostport.contains('/') {
            return Err(SpecError(format!(
                "{raw}: an endpoint is a scheme, host and port, without a path"
            )));
        }
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| SpecError(format!("{raw}: {e}")))?
            .next()
            .ok_or_else(|| SpecError(format!("{raw}: resolves to no address")))?;
        let tls = if tls {
            let host = crate::tls::client::host_of(hostport);
            let name = ServerName::try_from(host.to_string())
                .map_err(|_| SpecError(format!("{raw}: {host:?} is not a TLS server name")))?;
            Some(name)
        } else {
            None
        };
        out.push(Endpoint { addr, tls });
    }
    if out.is_empty() {
        return Err(SpecError("no endpoints".into()));
    }
    Ok(out)
}

/// The host of `host:port` or `[v6]:port`, without brackets.
/// The value written: `n` bytes of lowercase letters (no form escaping needed).
pub fn value_of_size(n: usize) -> String {
    (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_goes_in_every_request() {
        let mut spec = Spec::new([Endpoint::plain("127.0.0.1:1".parse().unwrap())], Op::Get);
        assert!(spec.auth_headers().is_empty());
        spec.basic_auth = Some("root:pw".into());
        assert_eq!(
            spec.auth_headers(),
            vec![("Authorization", "Basic cm9vdDpwdw==".to_string())]
        );
    }

    fn spec() -> Spec {
        Spec::new(["127.0.0.1:2379".parse::<SocketAddr>().unwrap()], Op::Put)
    }

    #[test]
    fn default_spec_is_valid() {
        assert_eq!(spec().validate(), Ok(()));
    }

    #[test]
    fn invalid_specs_are_refused_with_a_reason() {
        type Change = Box<dyn Fn(&mut Spec)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|s| s.endpoints.clear()), "no endpoints"),
            (Box::new(|s| s.clients = 0), "--clients"),
            (Box::new(|s| s.threads = 0), "--threads"),
            (
                Box::new(|s| {
                    s.clients = 2;
                    s.threads = 3
                }),
                "more than --clients",
            ),
            (
                Box::new(|s| s.value_size = MAX_VALUE_SIZE + 1),
                "--value-size",
            ),
            (
                Box::new(|s| s.stop = Stop::Duration(Duration::ZERO)),
                "--duration-secs",
            ),
            (Box::new(|s| s.stop = Stop::Requests(0)), "--requests"),
            (Box::new(|s| s.key = "/v2/members".into()), "not a key path"),
            (Box::new(|s| s.key = "/v2/keys/".into()), "not a key path"),
            (Box::new(|s| s.key = "/v2/keys/a b".into()), "escaping"),
            (
                Box::new(|s| {
                    s.op = Op::Get;
                    s.sequential_keys = true
                }),
                "PUT only",
            ),
            (Box::new(|s| s.request_timeout = Duration::ZERO), "timeout"),
        ];
        for (change, want) in cases {
            let mut s = spec();
            change(&mut s);
            let err = s.validate().expect_err(want);
            assert!(err.0.contains(want), "{err} should mention {want:?}");
        }
    }

    #[test]
    fn endpoints_parse_with_and_without_scheme() {
        let got =
            parse_endpoints("http://127.0.0.1:2379, 127.0.0.2:4001/,http://127.0.0.3:1/").unwrap();
        let want: Vec<Endpoint> = ["127.0.0.1:2379", "127.0.0.2:4001", "127.0.0.3:1"]
            .iter()
            .map(|s| Endpoint::plain(s.parse().unwrap()))
            .collect();
        assert_eq!(got, want);
        assert!(parse_endpoints("").is_err());
        assert!(parse_endpoints("http://127.0.0.1:2379/v2").is_err());
        assert!(parse_endpoints("https://127.0.0.1:2379/v2").is_err());
        assert!(parse_endpoints("127.0.0.1").is_err());
        let e = parse_endpoints("ftp://127.0.0.1:21").unwrap_err();
        assert!(e.0.contains("neither http nor https"), "{e}");
    }

    #[test]
    fn https_endpoints_name_their_host() {
        let got = parse_endpoints("https://127.0.0.1:2379/,HTTPS://[::1]:4001,http://127.0.0.2:1")
            .unwrap();
        assert_eq!(
            got,
            vec![
                Endpoint::https("127.0.0.1:2379".parse().unwrap()),
                Endpoint::https("[::1]:4001".parse().unwrap()),
                Endpoint::plain("127.0.0.2:1".parse().unwrap()),
            ]
        );
        assert_eq!(got[0].to_string(), "https://127.0.0.1:2379");
        assert_eq!(got[2].to_string(), "http://127.0.0.2:1");
        // A DNS name stays the name the certificate is checked against.
        let got = parse_endpoints("https://localhost:2379").unwrap();
        assert_eq!(
            got[0].tls,
            Some(ServerName::try_from("localhost".to_string()).unwrap())
        );
        assert!(got[0].addr.ip().is_loopback());
    }

    #[test]
    fn https_endpoints_need_a_tls_configuration() {
        let mut s = Spec::new(
            [Endpoint::https("127.0.0.1:2379".parse().unwrap())],
            Op::Get,
        );
        let e = s.validate().unwrap_err();
        assert!(e.0.contains("TLS client configuration"), "{e}");
        s.tls = Some(crate::tls::client_config(&Default::default()).unwrap());
        assert!(s.validate().is_ok());
    }

    #[test]
    fn values_have_the_asked_size_and_need_no_escaping() {
        assert_eq!(value_of_size(0), "");
        let v = value_of_size(256);
        assert_eq!(v.len(), 256);
        assert!(v.bytes().all(|b| b.is_ascii_lowercase()));
    }
}
