//! Driving a run: client threads (one glommio executor each), their connections and the
//! request loops.
//!
//! Every thread first connects all of its clients, then waits on a barrier shared with the
//! caller, so the clock starts once every connection is open. Each client then issues one
//! request at a time on its kept-alive connection until the run's end; a failed request (status
//! not 2xx, I/O error, timeout) is counted and, unless the server kept the connection, the
//! client reconnects.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

use super::{value_of_size, Op, Report, Spec, Stop};
use crate::http::client::{encode_request, ClientConn, ClientResponse};

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
            let addr = spec.endpoints[i % spec.endpoints.len()];
            tasks.push(glommio::spawn_local(connect_retrying(addr)).detach());
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
                addr: spec.endpoints[i % spec.endpoints.len()],
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

type Conn = ClientConn<TcpStream>;

async fn connect(addr: SocketAddr) -> io::Result<Conn> {
    let stream = TcpStream::connect(addr).await.map_err(io::Error::from)?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    Ok(ClientConn::new(stream, MAX_BODY))
}

async fn connect_retrying(addr: SocketAddr) -> io::Result<Conn> {
    let mut attempt = 1;
    loop {
        match connect(addr).await {
            Ok(c) => return Ok(c),
            Err(e) if attempt >= CONNECT_ATTEMPTS => return Err(e),
            Err(_) => {
                glommio::timer::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
        }
    }
}

/// One client: sequential requests on one connection.
struct Client {
    addr: SocketAddr,
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
        let host = self.addr.to_string();
        let body = match self.spec.op {
            Op::Get => Vec::new(),
            Op::Put => format!("value={}", value_of_size(self.spec.value_size)).into_bytes(),
        };
        let method = self.spec.op.as_str();
        let headers: Vec<(&str, String)> = match self.spec.op {
            Op::Get => Vec::new(),
            Op::Put => vec![(
                "Content-Type",
                "application/x-www-form-urlencoded".to_string(),
            )],
        };
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
                None => match connect(self.addr).await {
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
        let first = spec.endpoints[0];
        let mut req = Vec::new();
        encode_request(
            "PUT",
            &first.to_string(),
            &spec.key,
            &[(
                "Content-Type",
                "application/x-www-form-urlencoded".to_string(),
            )],
            &body,
            &mut req,
        );
        let fail = |what: String| RunError(format!("prepare GET: {what}"));
        let mut conn = connect_retrying(first)
            .await
            .map_err(|e| fail(format!("connect to {first}: {e}")))?;
        let resp = with_timeout(spec.request_timeout, conn.round_trip(&req, false))
            .await
            .map_err(|e| fail(format!("PUT {} on {first}: {e}", spec.key)))?;
        if !(200..300).contains(&resp.status) {
            return Err(fail(format!(
                "PUT {} on {first}: {}",
                spec.key,
                describe(&resp)
            )));
        }
        let mut distinct = spec.endpoints.clone();
        distinct.sort();
        distinct.dedup();
        for addr in distinct {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let mut req = Vec::new();
                encode_request("GET", &addr.to_string(), &spec.key, &[], &[], &mut req);
                let got = match connect(addr).await {
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
                    return Err(fail(format!("{addr} does not serve {}: {last}", spec.key)));
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
