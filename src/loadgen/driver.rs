//! Driving a run: client threads (one glommio executor each), their connections and the
//! request loops.
//!
//! Every thread first connects all of its clients (for `https://` endpoints: TCP, then the TLS
//! handshake), then waits on a barrier shared with the caller, so the clock starts once every
//! connection is open. Each client then issues one
//! request at a time on its kept-alive connection until the run's end; a failed request (status
//! not 2xx, I/O error, timeout) is counted and, unless the server kept the connection, the
//! client reconnects.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use futures_rustls::TlsConnector;
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

use super::{value_of_size, Endpoint, Op, Report, Spec, Stop};
use crate::http::client::{encode_request, ClientConn, ClientResponse};
use crate::tls::stream::MaybeTls;

/// Largest response body accepted (a GET answer carries the value).
const MAX_BODY: usize = 4 << 20;
/// glommio's DMA memory per client executor: the clients do no file I/O.
const IO_MEMORY: usize = 1 << 20;
/// Highest latency the histogram holds, in microseconds (larger ones are clamped).
const MAX_MICROS: u64 = 600_000_000;
/// Attempts to open a client's first connection before the run fails.
const CONNECT_ATTEMPTS: u32 = 5;

/// A run that could not take place (the spec is invalid, or clients could not connect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// Runs `spec` and reports what it measured. For GET, the key is first written (to the first
/// endpoint) and read back from every endpoint, so followers serve it too.
pub fn run(spec: &Spec) -> Result<Report, RunError> {
    run_with(spec, || {})
}

/// [`run`], calling `on_start` once every client is connected, as the clock starts (a caller
/// measuring something about the servers over the run reads it there and after the return).
pub fn run_with(spec: &Spec, on_start: impl FnOnce()) -> Result<Report, RunError> {
    spec.validate().map_err(|e| RunError(e.0))?;
    crate::iomem::raise_memlock_limit();
    if spec.op == Op::Get {
        prepare_get(spec)?;
    }
    let issued = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(spec.threads + 1));
    let mut handles = Vec::with_capacity(spec.threads);
    for t in 0..spec.threads {
        let spec = spec.clone();
        let issued = Arc::clone(&issued);
        let barrier = Arc::clone(&barrier);
        let handle = std::thread::Builder::new()
            .name(format!("ternbench-{t}"))
            .spawn(move || thread_main(t, &spec, &issued, &barrier))
            .map_err(|e| RunError(format!("spawn a client thread: {e}")))?;
        handles.push(handle);
    }
    barrier.wait();
    on_start();
    let start = Instant::now();
    let mut micros = new_histogram();
    let mut errors = 0;
    let mut first_error = None;
    let mut end = start;
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(done)) => {
                micros
                    .add(&done.micros)
                    .map_err(|e| RunError(format!("merge histograms: {e}")))?;
                errors += done.errors;
                if first_error.is_none() {
                    first_error = done.first_error;
                }
                end = end.max(done.end);
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(_) => {
                failure.get_or_insert(RunError("a client thread panicked".into()));
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let elapsed = end.duration_since(start).as_secs_f64();
    Ok(Report::new(spec, &micros, errors, elapsed, first_error))
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// What one thread's clients gathered.
struct ThreadDone {
    micros: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    end: Instant,
}

#[derive(Default)]
struct Tally {
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

fn executor(name: &str) -> Result<glommio::LocalExecutor, RunError> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .io_memory(IO_MEMORY)
        .make()
        .map_err(|e| RunError(format!("start a glommio executor (io_uring): {e}")))
}

fn thread_main(
    t: usize,
    spec: &Spec,
    issued: &Arc<AtomicU64>,
    barrier: &Barrier,
) -> Result<ThreadDone, RunError> {
    let ex = match executor(&format!("ternbench-{t}")) {
        Ok(ex) => ex,
        Err(e) => {
            barrier.wait();
            return Err(e);
        }
    };
    ex.run(async move {
        // This thread's clients: i ≡ t (mod threads); client i talks to endpoint i mod n.
        let mine: Vec<usize> = (t..spec.clients).step_by(spec.threads).collect();
        let mut tasks = Vec::with_capacity(mine.len());
        for &i in &mine {
            let dialer = Dialer::new(spec, &spec.endpoints[i % spec.endpoints.len()]);
            tasks.push(
                glommio::spawn_local(async move { dialer.connect_retrying().await }).detach(),
            );
        }
        let mut conns = Vec::with_capacity(tasks.len());
        let mut failure = None;
        for (task, &i) in tasks.into_iter().zip(&mine) {
            match task.await {
                Some(Ok(c)) => conns.push((i, c)),
                Some(Err(e)) => {
                    failure.get_or_insert(RunError(format!(
                        "client {i}: connect to {}: {e}",
                        spec.endpoints[i % spec.endpoints.len()]
                    )));
                }
                None => {
                    failure.get_or_insert(RunError(format!("client {i}: connect task lost")));
                }
            }
        }
        // Everyone meets here, also a thread that failed, so no one waits forever.
        barrier.wait();
        if let Some(e) = failure {
            return Err(e);
        }
        let start = Instant::now();
        let micros = Rc::new(RefCell::new(new_histogram()));
        let tally = Rc::new(RefCell::new(Tally::default()));
        let mut running = Vec::with_capacity(conns.len());
        for (i, conn) in conns {
            let client = Client {
                dialer: Dialer::new(spec, &spec.endpoints[i % spec.endpoints.len()]),
                spec: spec.clone(),
                issued: Arc::clone(issued),
                micros: Rc::clone(&micros),
                tally: Rc::clone(&tally),
                deadline: match spec.stop {
                    Stop::Duration(d) => Some(start + d),
                    Stop::Requests(_) => None,
                },
            };
            running.push(glommio::spawn_local(client.run(conn)).detach());
        }
        for task in running {
            task.await;
        }
        let end = Instant::now();
        let micros = micros.borrow().clone();
        let tally = std::mem::take(&mut *tally.borrow_mut());
        Ok(ThreadDone {
            micros,
            errors: tally.errors,
            first_error: tally.first_error,
            end,
        })
    })
}

/// A kept-alive connection: plain TCP, or TLS over it for an `https://` endpoint (one match per
/// read or write; the plain path copies nothing more than before).
type Conn = ClientConn<MaybeTls<TcpStream>>;

/// Opens connections to one endpoint.
struct Dialer {
    endpoint: Endpoint,
    /// From the spec's TLS client configuration, for an `https://` endpoint.
    tls: Option<TlsConnector>,
    handshake_timeout: Duration,
}

impl Dialer {
    fn new(spec: &Spec, endpoint: &Endpoint) -> Dialer {
        Dialer {
            endpoint: endpoint.clone(),
            tls: endpoint
                .tls
                .as_ref()
                .and(spec.tls.clone())
                .map(TlsConnector::from),
            handshake_timeout: spec.request_timeout,
        }
    }

    /// TCP (no Nagle), then the TLS handshake for `https://`: the server's certificate must
    /// name the endpoint's host.
    async fn connect(&self) -> io::Result<Conn> {
        let stream = TcpStream::connect(self.endpoint.addr)
            .await
            .map_err(io::Error::from)?;
        stream.set_nodelay(true).map_err(io::Error::from)?;
        let stream = match (&self.endpoint.tls, &self.tls) {
            (None, _) => MaybeTls::Plain(stream),
            (Some(name), Some(tls)) => {
                let tls = with_timeout(self.handshake_timeout, tls.connect(name.clone(), stream))
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
                MaybeTls::Tls(Box::new(tls))
            }
            (Some(_), None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an https endpoint without a TLS client configuration",
                ))
            }
        };
        Ok(ClientConn::new(stream, MAX_BODY))
    }

    async fn connect_retrying(&self) -> io::Result<Conn> {
        let mut attempt = 1;
        loop {
            match self.connect().await {
                Ok(c) => return Ok(c),
                Err(e) if attempt >= CONNECT_ATTEMPTS => return Err(e),
                Err(_) => {
                    glommio::timer::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// One client: sequential requests on one connection.
struct Client {
    dialer: Dialer,
    spec: Spec,
    issued: Arc<AtomicU64>,
    micros: Rc<RefCell<Histogram<u64>>>,
    tally: Rc<RefCell<Tally>>,
    deadline: Option<Instant>,
}

impl Client {
    /// The next request number, or `None` when the run is over.
    fn next(&self) -> Option<u64> {
        match (self.spec.stop, self.deadline) {
            (Stop::Requests(total), _) => {
                let n = self.issued.fetch_add(1, Ordering::Relaxed);
                (n < total).then_some(n)
            }
            (Stop::Duration(_), Some(deadline)) => {
                (Instant::now() < deadline).then(|| self.issued.fetch_add(1, Ordering::Relaxed))
            }
            (Stop::Duration(_), None) => None,
        }
    }

    async fn run(self, conn: Conn) {
        let host = self.dialer.endpoint.addr.to_string();
        let body = match self.spec.op {
            Op::Get => Vec::new(),
            Op::Put => format!("value={}", value_of_size(self.spec.value_size)).into_bytes(),
        };
        let method = self.spec.op.as_str();
        let mut headers: Vec<(&str, String)> = self.spec.auth_headers();
        if self.spec.op == Op::Put {
            headers.push((
                "Content-Type",
                "application/x-www-form-urlencoded".to_string(),
            ));
        }
        let mut fixed = Vec::new();
        encode_request(method, &host, &self.spec.key, &headers, &body, &mut fixed);
        let mut request = Vec::with_capacity(fixed.len() + 32);
        let mut conn = Some(conn);
        while let Some(n) = self.next() {
            let req: &[u8] = if self.spec.sequential_keys {
                request.clear();
                let path = format!("{}/{n}", self.spec.key);
                encode_request(method, &host, &path, &headers, &body, &mut request);
                &request
            } else {
                &fixed
            };
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match self.dialer.connect().await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        self.tally.borrow_mut().error(format!("reconnect: {e}"));
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let started = Instant::now();
            let outcome = with_timeout(self.spec.request_timeout, c.round_trip(req, false)).await;
            let micros = started.elapsed().as_micros() as u64;
            match outcome {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    let _ = self.micros.borrow_mut().record(micros.clamp(1, MAX_MICROS));
                    if !resp.keep_alive {
                        conn = None;
                    }
                }
                Ok(resp) => {
                    self.tally.borrow_mut().error(describe(&resp));
                    if !resp.keep_alive {
                        conn = None;
                    }
                }
                Err(e) => {
                    self.tally.borrow_mut().error(format!("{method}: {e}"));
                    conn = None;
                }
            }
        }
    }
}

fn describe(resp: &ClientResponse) -> String {
    let body = String::from_utf8_lossy(&resp.body);
    let body: String = body.chars().take(200).collect();
    format!("status {}: {}", resp.status, body.trim_end())
}

async fn with_timeout<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    futures_lite::future::or(fut, async {
        glommio::timer::sleep(limit).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {limit:?}"),
        ))
    })
    .await
}

/// Writes the GET key on the first endpoint, then waits until every endpoint serves it.
fn prepare_get(spec: &Spec) -> Result<(), RunError> {
    let ex = executor("ternbench-prepare")?;
    ex.run(async {
        let value = value_of_size(spec.value_size);
        let body = format!("value={value}").into_bytes();
        let first = Dialer::new(spec, &spec.endpoints[0]);
        let first_addr = first.endpoint.addr.to_string();
        let mut req = Vec::new();
        let mut headers = spec.auth_headers();
        headers.push((
            "Content-Type",
            "application/x-www-form-urlencoded".to_string(),
        ));
        encode_request("PUT", &first_addr, &spec.key, &headers, &body, &mut req);
        let fail = |what: String| RunError(format!("prepare GET: {what}"));
        let first_name = &first.endpoint;
        let mut conn = first
            .connect_retrying()
            .await
            .map_err(|e| fail(format!("connect to {first_name}: {e}")))?;
        let resp = with_timeout(spec.request_timeout, conn.round_trip(&req, false))
            .await
            .map_err(|e| fail(format!("PUT {} on {first_name}: {e}", spec.key)))?;
        if !(200..300).contains(&resp.status) {
            return Err(fail(format!(
                "PUT {} on {first_name}: {}",
                spec.key,
                describe(&resp)
            )));
        }
        let mut distinct: Vec<&Endpoint> = Vec::new();
        for ep in &spec.endpoints {
            if !distinct.contains(&ep) {
                distinct.push(ep);
            }
        }
        for ep in distinct {
            let dialer = Dialer::new(spec, ep);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let mut req = Vec::new();
                let auth = spec.auth_headers();
                encode_request("GET", &ep.addr.to_string(), &spec.key, &auth, &[], &mut req);
                let got = match dialer.connect().await {
                    Ok(mut c) => with_timeout(spec.request_timeout, c.round_trip(&req, false))
                        .await
                        .map(|r| {
                            (
                                r.status == 200 && contains(&r.body, value.as_bytes()),
                                describe(&r),
                            )
                        }),
                    Err(e) => Err(e),
                };
                let last = match got {
                    Ok((true, _)) => break,
                    Ok((false, what)) => what,
                    Err(e) => e.to_string(),
                };
                if Instant::now() > deadline {
                    return Err(fail(format!("{ep} does not serve {}: {last}", spec.key)));
                }
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::Arc;

    use super::*;
    use crate::loadgen::Endpoint;

    /// Answers every request on `s` with `200 ok` until the client goes away.
    fn serve_http(mut s: impl Read + Write) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                match s.read(&mut chunk) {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            while buf.len() < end + 4 + body {
                match s.read(&mut chunk) {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            buf.drain(..end + 4 + body);
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if s.write_all(answer).and_then(|_| s.flush()).is_err() {
                return;
            }
        }
    }

    /// A CA and a certificate for 127.0.0.1 signed by it: (CA PEM, server config).
    fn tls_server() -> (String, Arc<rustls::ServerConfig>) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
        (ca.pem(), Arc::new(config))
    }

    /// A server on a free loopback port: every connection is served on its own thread, over
    /// TLS with `tls`.
    fn server(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { return };
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config).unwrap();
                        serve_http(rustls::StreamOwned::new(conn, s));
                    }
                    None => serve_http(s),
                });
            }
        });
        addr
    }

    fn spec(endpoint: Endpoint) -> Spec {
        let mut spec = Spec::new([endpoint], Op::Put);
        spec.clients = 4;
        spec.stop = Stop::Requests(200);
        spec.request_timeout = Duration::from_secs(5);
        spec
    }

    fn ca_config(pem: &str) -> Arc<rustls::ClientConfig> {
        let dir = std::env::temp_dir().join(format!("tern-loadgen-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!("ca-{}.pem", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&path, pem).unwrap();
        let config = crate::tls::client_config(&crate::tls::ClientFiles {
            ca_file: Some(path.display().to_string()),
            ..Default::default()
        })
        .unwrap();
        let _ = std::fs::remove_file(&path);
        config
    }

    #[test]
    fn plain_and_tls_runs_answer_every_request() {
        let plain = run(&spec(Endpoint::plain(server(None)))).unwrap();
        assert_eq!((plain.requests, plain.errors), (200, 0), "{plain:?}");
        let (ca, config) = tls_server();
        let mut s = spec(Endpoint::https(server(Some(config))));
        s.tls = Some(ca_config(&ca));
        let tls = run(&s).unwrap();
        assert_eq!((tls.requests, tls.errors), (200, 0), "{tls:?}");
    }

    #[test]
    fn a_server_certificate_from_another_ca_fails_the_run() {
        let (_, config) = tls_server();
        let (other_ca, _) = tls_server();
        let mut s = spec(Endpoint::https(server(Some(config))));
        s.tls = Some(ca_config(&other_ca));
        let err = run(&s).unwrap_err();
        assert!(err.0.contains("TLS handshake"), "{err}");
    }
}
