//! `cargo bench --bench group_commit`: group commit and snapshot stalls of a real tern, seen
//! from the client side.
//!
//! 1. Starts the release `tern` binary on loopback (fresh data dir under `std::env::temp_dir()`).
//! 2. For 1, 64 and 256 concurrent clients (one thread and one keep-alive HTTP/1.1 connection
//!    each, sequential `PUT /v2/keys/bench/<thread>/<i>` with `value=x`) it prints PUTs/s, p50/p99
//!    PUT latency and how many WAL fdatasyncs the PUTs cost (`tern_wal_fsyncs_total` from
//!    `/metrics`, before and after): fewer than one per PUT is group commit at work.
//! 3. Restarts a fresh tern with `--snapshot-count 10000`, writes 50,000 keys with 64 clients
//!    and prints `tern_snapshots_total` and how long snapshots stalled the raft loop.
//! 4. With `TERN_BENCH_ETCD=1` and an `etcd` binary on `PATH`, runs step 2 against etcd
//!    (`--enable-v2`) too; its fsyncs come from `etcd_disk_wal_fsync_duration_seconds_count`.
//!
//! Std only: threads and blocking `TcpStream`s. The machine is shared and the client threads
//! compete with the server for cores, so figures move between runs.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Client counts of the group-commit table, with the total PUTs of each round.
const ROUNDS: [(usize, usize); 3] = [(1, 2_000), (64, 12_800), (256, 12_800)];
/// The snapshot-stall run: `--snapshot-count`, keys written, clients.
const SNAPSHOT_COUNT: u64 = 10_000;
const SNAPSHOT_KEYS: usize = 50_000;
const SNAPSHOT_CLIENTS: usize = 64;

const TERN_FSYNCS: &str = "tern_wal_fsyncs_total";
const ETCD_FSYNCS: &str = "etcd_disk_wal_fsync_duration_seconds_count";

fn main() {
    println!("group commit: tern ({})", env!("CARGO_BIN_EXE_tern"));
    {
        let tern = Server::start_tern(&[]);
        group_commit_table(&tern, TERN_FSYNCS);
    }
    snapshot_stall();
    match etcd_skip_reason() {
        None => {
            let etcd = Server::start_etcd();
            println!();
            println!("group commit: etcd ({})", etcd.binary.display());
            group_commit_table(&etcd, ETCD_FSYNCS);
        }
        Some(why) => println!("\netcd comparison skipped: {why}"),
    }
}

/// Step 2: one table row per client count.
fn group_commit_table(server: &Server, fsync_metric: &str) {
    println!(
        "{:>7} {:>6} {:>11} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "clients", "PUTs", "fdatasyncs", "fsync/PUT", "wall s", "PUTs/s", "p50 ms", "p99 ms"
    );
    for (clients, total) in ROUNDS {
        let before = server.metric(fsync_metric);
        let load = run_puts(server.addr, clients, total);
        let fsyncs = server.metric(fsync_metric) - before;
        let secs = load.wall.as_secs_f64();
        println!(
            "{:>7} {:>6} {:>11} {:>10.3} {:>8.2} {:>9.0} {:>9.3} {:>9.3}",
            clients,
            total,
            fsyncs,
            fsyncs / total as f64,
            secs,
            total as f64 / secs,
            millis(load.percentile(0.50)),
            millis(load.percentile(0.99)),
        );
    }
}

/// Step 3: snapshot stalls of the raft loop under a sustained write load.
fn snapshot_stall() {
    let count = SNAPSHOT_COUNT.to_string();
    let tern = Server::start_tern(&["--snapshot-count", &count]);
    let load = run_puts(tern.addr, SNAPSHOT_CLIENTS, SNAPSHOT_KEYS);
    let secs = load.wall.as_secs_f64();
    println!();
    println!(
        "snapshot stall: tern --snapshot-count {SNAPSHOT_COUNT}, {SNAPSHOT_KEYS} keys, \
         {SNAPSHOT_CLIENTS} clients"
    );
    println!(
        "  {secs:.2} s, {:.0} PUTs/s, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        SNAPSHOT_KEYS as f64 / secs,
        millis(load.percentile(0.50)),
        millis(load.percentile(0.99)),
        millis(load.percentile(1.0)),
    );
    for name in [
        "tern_snapshots_total",
        "tern_snapshot_stall_seconds_total",
        "tern_snapshot_stall_seconds_max",
    ] {
        println!("  {name} {}", tern.metric(name));
    }
}

/// Why the etcd comparison does not run, or `None` when it does.
fn etcd_skip_reason() -> Option<String> {
    if std::env::var("TERN_BENCH_ETCD").as_deref() != Ok("1") {
        return Some("set TERN_BENCH_ETCD=1 to run it".into());
    }
    if find_on_path("etcd").is_none() {
        return Some("no etcd binary on PATH".into());
    }
    None
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// Load

/// What one round of PUTs measured.
struct Load {
    wall: Duration,
    /// Every PUT's latency, sorted.
    latencies: Vec<Duration>,
}

impl Load {
    /// Nearest-rank percentile, `p` in (0, 1].
    fn percentile(&self, p: f64) -> Duration {
        let n = self.latencies.len();
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        self.latencies[rank - 1]
    }
}

/// `clients` threads, each on its own keep-alive connection, share `total` sequential PUTs.
/// The wall clock runs from when every thread is connected until the last PUT is answered.
fn run_puts(addr: SocketAddr, clients: usize, total: usize) -> Load {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let n = total / clients + usize::from(t < total % clients);
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .name(format!("put-{t}"))
                .spawn(move || put_loop(addr, t, n, &barrier))
                .expect("spawn client thread")
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(total);
    for t in threads {
        latencies.extend(t.join().expect("client thread panicked"));
    }
    let wall = start.elapsed();
    latencies.sort_unstable();
    Load { wall, latencies }
}

fn put_loop(addr: SocketAddr, thread: usize, n: usize, barrier: &Barrier) -> Vec<Duration> {
    let mut conn = Conn::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    barrier.wait();
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let path = format!("/v2/keys/bench/{thread}/{i}");
        let start = Instant::now();
        let resp = conn
            .request("PUT", &path, Some(b"value=x"))
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        latencies.push(start.elapsed());
        assert!(
            matches!(resp.status, 200 | 201),
            "PUT {path}: status {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
    }
    latencies
}

// ---------------------------------------------------------------------------------------------
// Servers

/// A tern or etcd process on loopback, killed (and its directory removed) when dropped, also
/// when the bench panics.
struct Server {
    child: Child,
    binary: PathBuf,
    addr: SocketAddr,
    /// Holds `data/` (the data dir) and `server.log` (its stderr).
    dir: PathBuf,
}

impl Server {
    fn start_tern(extra: &[&str]) -> Server {
        Server::start(PathBuf::from(env!("CARGO_BIN_EXE_tern")), &[], extra)
    }

    fn start_etcd() -> Server {
        let bin = find_on_path("etcd").expect("etcd on PATH");
        Server::start(bin, &["--enable-v2"], &[])
    }

    /// Starts `binary` as the single member `bench` and waits until `GET /health` answers 200.
    fn start(binary: PathBuf, first: &[&str], extra: &[&str]) -> Server {
        let dir = fresh_dir();
        let port = free_port();
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("server.log")).expect("create server.log");
        let child = Command::new(&binary)
            .args(first)
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("bench={peer_url}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut server = Server {
            child,
            binary,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        server.wait_healthy(Duration::from_secs(30));
        server
    }

    fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before answering /health:\n{}",
                    self.binary.display(),
                    self.log()
                );
            }
            let health =
                Conn::connect(self.addr).and_then(|mut c| c.request("GET", "/health", None));
            if matches!(health, Ok(Response { status: 200, .. })) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} on {} did not answer GET /health with 200 within {timeout:?}:\n{}",
            self.binary.display(),
            self.addr,
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The value of the un-labelled sample `name` in `GET /metrics` (Prometheus text format).
    fn metric(&self, name: &str) -> f64 {
        let resp = Conn::connect(self.addr)
            .and_then(|mut c| c.request("GET", "/metrics", None))
            .unwrap_or_else(|e| panic!("GET /metrics from {}: {e}", self.addr));
        assert_eq!(resp.status, 200, "GET /metrics from {}", self.addr);
        let text = String::from_utf8_lossy(&resp.body);
        text.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .find_map(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {name} in /metrics of {}", self.addr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}

/// A fresh, empty directory under `std::env::temp_dir()`.
fn fresh_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tern-bench-group-commit-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    remove_if_present(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

fn remove_if_present(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            panic!("remove {}: {e}", dir.display())
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal blocking HTTP/1.1 client

struct Response {
    status: u16,
    body: Vec<u8>,
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: TcpStream,
    /// Bytes read past the previous response.
    leftover: Vec<u8>,
    writer: TcpStream,
    host: String,
}

impl Conn {
    fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: s.try_clone()?,
            leftover: Vec::new(),
            writer: s,
            host: addr.to_string(),
        })
    }

    /// Sends one request (`body` as an urlencoded form) and reads the whole response.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<Response> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(body) = body {
            req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.writer.write_all(&bytes)?;
        self.read_response()
    }

    /// Reads one response with tern's shared decoder (`tern::client::read_response`).
    fn read_response(&mut self) -> std::io::Result<Response> {
        let (resp, _) = tern::client::read_response(&mut self.reader, &mut self.leftover, "GET")
            .map_err(|e| invalid(&format!("{e:?}")))?;
        Ok(Response {
            status: resp.status,
            body: resp.body,
        })
    }
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}
