//! `cargo bench --bench matrix`: the etcd manual's §8 benchmark matrix, tern beside etcd.
//!
//! 1. Measures the floor of an acknowledged write on this machine: one 4 KiB O_DIRECT write +
//!    fdatasync in the bench's data directory plus one loopback TCP round trip. The write goes
//!    to a preallocated (unwritten) block, as an append to etcd's WAL does; the strict floor
//!    overwrites a written block instead, as tern's zero-filled WAL segments allow (no journal
//!    commit in the fdatasync). Measured again after the 1-member cells; the lower figure of
//!    each part is what single-client PUT is compared with.
//! 2. Starts a 1-member tern and, when `/usr/bin/etcd` exists, a 1-member etcd (`--enable-v2`),
//!    then a 3-member tern cluster and a 3-member etcd cluster, all on loopback (127.0.0.x with
//!    free ports, fresh data dirs under `std::env::temp_dir()`).
//! 3. For each cluster runs the matrix {GET, PUT} × {64, 256 bytes} × {1, 64, 256 clients} ×
//!    {leader only, all members (3 members, 64 and 256 clients)} with `tern::loadgen` (one
//!    client thread, one kept-alive connection per client), a tern cell and then the same etcd
//!    cell, so drift of the shared machine hits both alike. Prints a Markdown table per cluster
//!    with the manual's §8 figures (etcd 2.2 on three 2-CPU machines with SSDs, load from a
//!    fourth) beside the 3-member rows.
//! 4. Prints single-client PUT p90 / floor, and the RSS (`VmRSS`) of the 1-member tern and etcd
//!    before and after loading N keys of 64 bytes with 256 clients.
//! 5. TLS: generates a CA and a server certificate (rcgen, ECDSA P-256, IP SANs 127.0.0.1–3)
//!    and starts a 1-member tern and a 1-member etcd that each listen on a plain and an
//!    `https://` client URL with those same files. Runs {GET, PUT} × 64 B × 64 clients × {http,
//!    https} (keep-alive; the handshakes happen before the clock starts), tern then etcd per
//!    cell, and prints them with the server CPU per request: user + system time of the server
//!    process (all its threads, `/proc/<pid>/stat`) over the run divided by the requests, and
//!    the load generator's (`getrusage` of this process) beside it. On a machine whose cores
//!    the client shares, CPU per request is the figure that carries over to larger hosts.
//!
//! Quick by default (0.5 s per cell, N = 100,000; about a minute and a half). `TERN_BENCH_FULL=1`
//! runs 5 s per cell and N = 1,000,000. `TERN_BENCH_CELL_SECS` and `TERN_BENCH_LOAD_KEYS`
//! override either; `TERN_BENCH_THREADS` sets the client threads (default 1);
//! `TERN_BENCH_ONLY=plain|tls|auth|proxy|memory` runs one section alone (plain: the floor, the
//! 1- and 3-member matrices and the RSS row) (`TERN_BENCH_TLS_ONLY=1` and
//! `TERN_BENCH_AUTH_ONLY=1` as before): TLS, auth (`matrix/auth.rs`: auth off, then basic
//! auth as a user, tern beside etcd), proxy (`matrix/proxy.rs`: GET and PUT through tern's
//! proxy and etcd's v2 proxy, each before a 1-member cluster of its kind) or memory
//! (`matrix/memory.rs`: RSS per key after N keys with `--shards` 1, 2, 4 and 8, and etcd).
//! Everything runs on one machine: the client shares the cores with the servers, so figures
//! are relative (tern/etcd) more than absolute.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern::loadgen::floor::Floor;
use tern::loadgen::{self, Endpoint, Op, Report, Spec, Stop};

#[path = "matrix/auth.rs"]
mod auth;
#[path = "matrix/memory.rs"]
mod memory;
#[path = "matrix/proxy.rs"]
mod proxy;

const ETCD: &str = "/usr/bin/etcd";

fn main() {
    let mode = Mode::from_env();
    print_header(&mode);
    let root = fresh_dir("run");
    let etcd_bin = Path::new(ETCD).exists().then(|| PathBuf::from(ETCD));
    if etcd_bin.is_none() {
        println!("etcd columns empty: {ETCD} is missing (apt-get install etcd-server)\n");
    }

    let mut notes = Vec::new();
    let only = mode.only.as_deref();
    if only.is_none() || only == Some("plain") {
        plain_sections(&root, etcd_bin.as_ref(), &mode, &mut notes);
    }
    if only.is_none() || only == Some("tls") {
        tls_section(&root, etcd_bin.as_ref(), &mode, &mut notes);
    }
    if only.is_none() || only == Some("auth") {
        auth::auth_section(&root, etcd_bin.as_ref(), &mode, &mut notes);
    }
    if only.is_none() || only == Some("proxy") {
        proxy::proxy_section(&root, etcd_bin.as_ref(), &mode, &mut notes);
    }
    if only.is_none() || only == Some("memory") {
        memory::memory_section(&root, etcd_bin.as_ref(), &mode);
    }
    if !notes.is_empty() {
        println!("## Errors\n");
        for n in &notes {
            println!("- {n}");
        }
        println!();
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// The floor, the matrix of the 1- and 3-member clusters over plain HTTP, single-client PUT
/// against the floor and the RSS after a load.
fn plain_sections(root: &Path, etcd_bin: Option<&PathBuf>, mode: &Mode, notes: &mut Vec<String>) {
    let mut floor = measure_floor(root);
    println!("## Floor\n");
    println!("{}\n", floor.summary(root));

    let mut single_put = Vec::new();
    for members in [1usize, 3] {
        let tern = Cluster::start(Kind::Tern, members, root, None);
        let etcd = etcd_bin.map(|b| Cluster::start(Kind::Etcd(b.clone()), members, root, None));
        println!("## {members}-member cluster\n");
        println!(
            "tern leader {} (members {}); etcd leader {}\n",
            tern.leader,
            tern.client_list(),
            etcd.as_ref()
                .map_or("—".to_string(), |e| e.leader.to_string())
        );
        println!(
            "| cell | tern req/s | etcd req/s | tern/etcd | tern p50 / p90 / p99 ms | \
             etcd p50 / p90 / p99 ms | §8 etcd 2.2 req/s | §8 p90 ms |"
        );
        println!("|---|---:|---:|---:|---|---|---:|---:|");
        for cell in cells(members) {
            let t = run_cell(&tern, &cell, mode);
            let e = etcd.as_ref().map(|e| run_cell(e, &cell, mode));
            let label = format!("{members}m {}", cell.name());
            note_errors(notes, &label, "tern", Some(&t));
            note_errors(notes, &label, "etcd", e.as_ref());
            let reference = (members == 3).then(|| manual_reference(&cell)).flatten();
            println!("{}", table_row(&cell, &t, e.as_ref(), reference));
            if members == 1 && cell.op == Op::Put && cell.value_size == 64 && cell.clients == 1 {
                single_put.push(("tern", t.as_ref().ok().map(|r| r.p90)));
                single_put.push((
                    "etcd",
                    e.as_ref().and_then(|e| e.as_ref().ok()).map(|r| r.p90),
                ));
            }
        }
        println!();
        if members == 1 {
            // The shared machine's noise only ever adds latency: measure the floor again and
            // keep the lower figure of each part, so the comparison below is not flattered.
            floor = floor.lower(&measure_floor(root));
            println!("## Single-client PUT (64 B, 1 member) against the floor\n");
            println!(
                "floor measured again after the 1-member cells; the lower of the two of each \
                 part: fdatasync p50 {:.3} ms (over a written block {:.3} ms), loopback round \
                 trip p50 {:.3} ms\n",
                floor.fsync_p50_ms, floor.overwrite_p50_ms, floor.rtt_p50_ms
            );
            for (who, p90) in &single_put {
                match p90 {
                    Some(p90) => println!(
                        "- {who}: p90 {p90:.3} ms = {:.2} × floor ({:.3} ms), {:.2} × strict \
                         floor ({:.3} ms)",
                        p90 / floor.total_ms(),
                        floor.total_ms(),
                        p90 / floor.strict_ms(),
                        floor.strict_ms()
                    ),
                    None => println!("- {who}: no figure"),
                }
            }
            println!();
            println!(
                "## RSS after loading {} keys of 64 bytes (1 member, 256 clients)\n",
                mode.load_keys
            );
            println!("| server | RSS before MiB | RSS after MiB | load req/s | load errors |");
            println!("|---|---:|---:|---:|---:|");
            for c in std::iter::once(&tern).chain(etcd.as_ref()) {
                println!("{}", rss_row(c, mode));
            }
            println!();
        }
    }
}

/// A failed cell, or one with failed requests, as a line for the "Errors" section.
fn note_errors(notes: &mut Vec<String>, label: &str, who: &str, r: Option<&CellResult>) {
    match r {
        Some(Err(err)) => notes.push(format!("{label}: {who}: {err}")),
        Some(Ok(r)) if r.errors > 0 => notes.push(format!(
            "{label}: {who}: {} errors, first: {}",
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        )),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Mode and header

struct Mode {
    full: bool,
    cell: Duration,
    load_keys: u64,
    threads: usize,
    /// Only this section (`TERN_BENCH_ONLY=tls|auth|proxy`; the older `TERN_BENCH_TLS_ONLY=1`
    /// and `TERN_BENCH_AUTH_ONLY=1` still work).
    only: Option<String>,
}

impl Mode {
    fn from_env() -> Mode {
        let full = std::env::var("TERN_BENCH_FULL").as_deref() == Ok("1");
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
        Mode {
            full,
            cell: Duration::from_secs_f64(var("TERN_BENCH_CELL_SECS").unwrap_or(if full {
                5.0
            } else {
                0.5
            })),
            load_keys: var("TERN_BENCH_LOAD_KEYS")
                .map(|v| v as u64)
                .unwrap_or(if full { 1_000_000 } else { 100_000 }),
            threads: var("TERN_BENCH_THREADS").map_or(1, |v| v.max(1.0) as usize),
            only: std::env::var("TERN_BENCH_ONLY").ok().or_else(|| {
                let set = |name: &str| std::env::var(name).as_deref() == Ok("1");
                if set("TERN_BENCH_TLS_ONLY") {
                    Some("tls".to_string())
                } else if set("TERN_BENCH_AUTH_ONLY") {
                    Some("auth".to_string())
                } else {
                    None
                }
            }),
        }
    }
}

fn print_header(mode: &Mode) {
    let envs: Vec<String> = [
        "TERN_BENCH_FULL",
        "TERN_BENCH_CELL_SECS",
        "TERN_BENCH_LOAD_KEYS",
        "TERN_BENCH_THREADS",
        "TERN_BENCH_TLS_ONLY",
        "TERN_BENCH_AUTH_ONLY",
        "TERN_BENCH_ONLY",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v} ")))
    .collect();
    println!("# tern vs etcd: the §8 benchmark matrix\n");
    println!(
        "command: `{}cargo bench --bench matrix` ({} mode: {} s per cell, {} keys for RSS, {} \
         client thread(s))",
        envs.concat(),
        if mode.full { "full" } else { "quick" },
        mode.cell.as_secs_f64(),
        mode.load_keys,
        mode.threads
    );
    println!(
        "date: {}; machine: {} CPUs, kernel {}; tern {} ({}); etcd: {}\n",
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        sh("uname", &["-r"]),
        sh(
            "git",
            &[
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "describe",
                "--always",
                "--dirty"
            ]
        ),
        env!("CARGO_BIN_EXE_tern"),
        if Path::new(ETCD).exists() {
            sh(ETCD, &["--version"])
                .lines()
                .next()
                .unwrap_or("?")
                .to_string()
        } else {
            "missing".to_string()
        }
    );
}

/// The first line of a command's output, or "?".
fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8(o.stdout)
                .ok()
                .map(|s| s.lines().next().unwrap_or("?").trim().to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

// ---------------------------------------------------------------------------------------------
// Cells

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Leader,
    All,
}

struct Cell {
    op: Op,
    value_size: usize,
    clients: usize,
    target: Target,
}

impl Cell {
    fn name(&self) -> String {
        format!(
            "{} {} B, {} client{}, {}",
            self.op,
            self.value_size,
            self.clients,
            if self.clients == 1 { "" } else { "s" },
            match self.target {
                Target::Leader => "leader",
                Target::All => "all members",
            }
        )
    }
}

fn cells(members: usize) -> Vec<Cell> {
    let mut out = Vec::new();
    for op in [Op::Get, Op::Put] {
        for value_size in [64, 256] {
            for clients in [1, 64, 256] {
                out.push(Cell {
                    op,
                    value_size,
                    clients,
                    target: Target::Leader,
                });
                if members > 1 && clients > 1 {
                    out.push(Cell {
                        op,
                        value_size,
                        clients,
                        target: Target::All,
                    });
                }
            }
        }
    }
    out
}

/// The etcd manual's §8.2 table (etcd 2.2.0-alpha, 3 members): (req/s, p90 ms).
fn manual_reference(cell: &Cell) -> Option<(f64, f64)> {
    let all = cell.target == Target::All;
    let r = match (cell.op, cell.value_size, cell.clients, all) {
        (Op::Get, 64, 1, false) => (2804.0, 0.4),
        (Op::Get, 64, 64, false) => (17816.0, 5.7),
        (Op::Get, 64, 256, false) => (18667.0, 20.4),
        (Op::Get, 256, 1, false) => (2181.0, 0.5),
        (Op::Get, 256, 64, false) => (17435.0, 6.0),
        (Op::Get, 256, 256, false) => (18180.0, 21.3),
        (Op::Get, 64, 64, true) => (46965.0, 2.1),
        (Op::Get, 64, 256, true) => (55286.0, 7.4),
        (Op::Get, 256, 64, true) => (46603.0, 2.1),
        (Op::Get, 256, 256, true) => (55291.0, 7.3),
        (Op::Put, 64, 1, false) => (76.0, 19.4),
        (Op::Put, 64, 64, false) => (2461.0, 31.8),
        (Op::Put, 64, 256, false) => (4275.0, 69.6),
        (Op::Put, 256, 1, false) => (64.0, 16.7),
        (Op::Put, 256, 64, false) => (2385.0, 31.5),
        (Op::Put, 256, 256, false) => (4353.0, 74.0),
        (Op::Put, 64, 64, true) => (2005.0, 49.8),
        (Op::Put, 64, 256, true) => (4868.0, 81.5),
        (Op::Put, 256, 64, true) => (1925.0, 47.7),
        (Op::Put, 256, 256, true) => (4975.0, 70.3),
        _ => return None,
    };
    Some(r)
}

type CellResult = Result<Report, String>;

fn run_cell(cluster: &Cluster, cell: &Cell, mode: &Mode) -> CellResult {
    let endpoints = match cell.target {
        Target::Leader => vec![cluster.leader],
        // Leader first, so the GET key is written through the leader.
        Target::All => {
            let mut v = vec![cluster.leader];
            v.extend(cluster.clients.iter().filter(|a| **a != cluster.leader));
            v
        }
    };
    loadgen::run(&cell_spec(endpoints, cell, mode)).map_err(|e| e.to_string())
}

/// The load of `cell` (operation, value size, clients) on `endpoints` for one cell's time.
fn cell_spec<E: Into<Endpoint>>(
    endpoints: impl IntoIterator<Item = E>,
    cell: &Cell,
    mode: &Mode,
) -> Spec {
    let mut spec = Spec::new(endpoints, cell.op);
    spec.value_size = cell.value_size;
    spec.clients = cell.clients;
    spec.threads = mode.threads.min(cell.clients);
    spec.stop = Stop::Duration(mode.cell);
    spec
}

fn table_row(
    cell: &Cell,
    tern: &CellResult,
    etcd: Option<&CellResult>,
    reference: Option<(f64, f64)>,
) -> String {
    let (ref_rps, ref_p90) = match reference {
        Some((r, p)) => (format!("{r:.0}"), format!("{p:.1}")),
        None => ("—".to_string(), "—".to_string()),
    };
    format!(
        "| {} | {} | {} | {} |",
        cell.name(),
        result_columns(tern, etcd).join(" | "),
        ref_rps,
        ref_p90
    )
}

/// tern req/s, etcd req/s, tern/etcd, tern p50 / p90 / p99, etcd p50 / p90 / p99.
fn result_columns(tern: &CellResult, etcd: Option<&CellResult>) -> [String; 5] {
    let rps = |r: Option<&CellResult>| match r {
        Some(Ok(r)) if r.errors > 0 => format!("{:.0} ({} err)", r.rps, r.errors),
        Some(Ok(r)) => format!("{:.0}", r.rps),
        Some(Err(_)) => "failed".to_string(),
        None => "—".to_string(),
    };
    let lat = |r: Option<&CellResult>| match r {
        Some(Ok(r)) => format!("{:.2} / {:.2} / {:.2}", r.p50, r.p90, r.p99),
        _ => "—".to_string(),
    };
    let ratio = match (tern, etcd) {
        (Ok(t), Some(Ok(e))) if e.rps > 0.0 => format!("{:.2}", t.rps / e.rps),
        _ => "—".to_string(),
    };
    [
        rps(Some(tern)),
        rps(etcd),
        ratio,
        lat(Some(tern)),
        lat(etcd),
    ]
}

// ---------------------------------------------------------------------------------------------
// RSS

fn rss_row(cluster: &Cluster, mode: &Mode) -> String {
    let member = &cluster.members[0];
    let before = rss_kib(member.child.id());
    let mut spec = Spec::new(vec![cluster.leader], Op::Put);
    spec.value_size = 64;
    spec.clients = 256;
    spec.threads = mode.threads;
    spec.key = "/v2/keys/load".to_string();
    spec.sequential_keys = true;
    spec.stop = Stop::Requests(mode.load_keys);
    let (rps, errors) = match loadgen::run(&spec) {
        Ok(r) => (format!("{:.0}", r.rps), r.errors.to_string()),
        Err(e) => (format!("failed: {e}"), "—".to_string()),
    };
    // Let a pending snapshot or compaction settle before reading the RSS.
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(member.child.id());
    let mib = |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
    format!(
        "| {} | {} | {} | {} | {} |",
        cluster.kind.name(),
        mib(before),
        mib(after),
        rps,
        errors
    )
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// TLS

/// The certificate files of the TLS section, the same for tern and etcd, and the client
/// configuration that trusts their CA.
struct BenchTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client: Arc<rustls::ClientConfig>,
}

impl BenchTls {
    /// A CA and a server certificate signed by it for 127.0.0.1–3 and `localhost`, both
    /// ECDSA P-256, as PEM files in `dir`.
    fn generate(dir: &Path) -> BenchTls {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
        };
        std::fs::create_dir_all(dir).expect("TLS dir");
        let now = time::OffsetDateTime::now_utc();
        let key = || KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ECDSA P-256 key");
        let ca_key = key();
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.distinguished_name
            .push(DnType::CommonName, "tern bench CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = now - time::Duration::hours(1);
        ca.not_after = now + time::Duration::days(2);
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let server_key = key();
        let mut server = CertificateParams::new(
            ["127.0.0.1", "127.0.0.2", "127.0.0.3", "localhost"].map(String::from),
        )
        .expect("server params");
        server
            .distinguished_name
            .push(DnType::CommonName, "tern bench server");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.not_before = now - time::Duration::hours(1);
        server.not_after = now + time::Duration::days(2);
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        };
        let ca = write("ca.pem", ca_cert.pem());
        let cert = write("server.pem", server_cert.pem());
        let key = write("server-key.pem", server_key.serialize_pem());
        let client = tern::tls::client_config(&tern::tls::ClientFiles {
            ca_file: Some(ca.display().to_string()),
            ..Default::default()
        })
        .expect("TLS client configuration");
        BenchTls {
            ca,
            cert,
            key,
            client,
        }
    }
}

/// CPU time per request of one cell, in µs: the server process's user and system time, and
/// the load generator's (this process) user + system time.
#[derive(Clone, Copy)]
struct CpuPerRequest {
    user: f64,
    sys: f64,
    client: f64,
}

impl CpuPerRequest {
    fn server(&self) -> f64 {
        self.user + self.sys
    }
}

type MeasuredCell = (CellResult, Option<CpuPerRequest>);

/// User and system CPU seconds of process `pid`, all its threads (`/proc/<pid>/stat` fields
/// 14 and 15, in clock ticks).
fn process_cpu(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tick = if tick > 0 { tick as f64 } else { 100.0 };
    Some((utime as f64 / tick, stime as f64 / tick))
}

/// User + system CPU seconds of this process (the load generator's threads, also exited ones).
fn own_cpu() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Runs `spec` against the server process `pid`, reading its CPU time and this process's as
/// the clock starts (every client connected, handshakes done) and when the run has ended.
fn run_measured(spec: &Spec, pid: u32) -> MeasuredCell {
    let mut before = None;
    let report = loadgen::run_with(spec, || before = Some((process_cpu(pid), own_cpu())));
    let after = (process_cpu(pid), own_cpu());
    let report = report.map_err(|e| e.to_string());
    let cpu = match (&report, before, after) {
        (Ok(r), Some((Some((u0, s0)), c0)), (Some((u1, s1)), c1)) if r.requests > 0 => {
            let per = |secs: f64| secs * 1e6 / r.requests as f64;
            Some(CpuPerRequest {
                user: per(u1 - u0),
                sys: per(s1 - s0),
                client: per(c1 - c0),
            })
        }
        _ => None,
    };
    (report, cpu)
}

/// GET and PUT of 64 B from 64 kept-alive clients to a 1-member tern and etcd, each over the
/// plain and the `https://` client URL of the same process, with the server CPU per request.
fn tls_section(root: &Path, etcd_bin: Option<&PathBuf>, mode: &Mode, notes: &mut Vec<String>) {
    let tls = BenchTls::generate(&root.join("tls"));
    let tern = Cluster::start(Kind::Tern, 1, root, Some(&tls));
    let etcd = etcd_bin.map(|b| Cluster::start(Kind::Etcd(b.clone()), 1, root, Some(&tls)));
    let negotiated = |c: Option<&Cluster>| {
        c.and_then(|c| c.tls_leader.as_ref())
            .map_or("—".to_string(), |(a, n)| format!("{n} at {a}"))
    };
    println!("## TLS (1 member, 64 B, 64 clients, keep-alive)\n");
    println!(
        "Each server listens on a plain and an https client URL at once (one process, one data \
         dir); the https one serves {} (ECDSA P-256, signed by {}, both made with rcgen in this \
         run; the same files for tern and etcd), which the load generator verifies (rustls). \
         Negotiated: tern {}; etcd {}. The handshakes happen before the clock starts. CPU µs/req: \
         user + system time of the server process over the run (/proc/<pid>/stat, all threads, \
         clock ticks) / requests; the client's is the load generator's (getrusage) over the \
         same run.\n",
        tls.cert.file_name().unwrap_or_default().to_string_lossy(),
        tls.ca.file_name().unwrap_or_default().to_string_lossy(),
        negotiated(Some(&tern)),
        negotiated(etcd.as_ref()),
    );
    println!(
        "| cell | tern req/s | etcd req/s | tern/etcd | tern p50 / p90 / p99 ms | \
         etcd p50 / p90 / p99 ms | tern CPU µs/req (user / sys) | etcd CPU µs/req (user / sys) \
         | client CPU µs/req (tern / etcd run) |"
    );
    println!("|---|---:|---:|---:|---|---|---:|---:|---:|");
    // (op, https, tern, etcd)
    let mut measured: Vec<(Op, bool, MeasuredCell, Option<MeasuredCell>)> = Vec::new();
    for op in [Op::Get, Op::Put] {
        for https in [false, true] {
            let cell = Cell {
                op,
                value_size: 64,
                clients: 64,
                target: Target::Leader,
            };
            let label = format!(
                "TLS section {}, {}",
                cell.name(),
                if https { "https" } else { "http" }
            );
            let run = |c: &Cluster| {
                let endpoint = match (https, &c.tls_leader) {
                    (true, Some((addr, _))) => Endpoint::https(*addr),
                    _ => Endpoint::plain(c.leader),
                };
                let mut spec = cell_spec([endpoint], &cell, mode);
                spec.tls = Some(Arc::clone(&tls.client));
                run_measured(&spec, c.members[0].child.id())
            };
            let t = run(&tern);
            let e = etcd.as_ref().map(run);
            note_errors(notes, &label, "tern", Some(&t.0));
            note_errors(notes, &label, "etcd", e.as_ref().map(|e| &e.0));
            let variant = if https { "https" } else { "http" };
            println!("{}", measured_row(&cell, variant, &t, e.as_ref()));
            measured.push((op, https, t, e));
        }
    }
    println!();
    println!("What TLS costs (https against http, same process, same run):\n");
    for op in [Op::Get, Op::Put] {
        let find = |https: bool| measured.iter().find(|m| m.0 == op && m.1 == https);
        let (Some(plain), Some(tls)) = (find(false), find(true)) else {
            continue;
        };
        let pairs = [
            ("tern", Some(&plain.2), Some(&tls.2)),
            ("etcd", plain.3.as_ref(), tls.3.as_ref()),
        ];
        for (who, p, t) in pairs {
            let (Some((Ok(p), pc)), Some((Ok(t), tc))) = (p, t) else {
                println!("- {who} {op}: no figure");
                continue;
            };
            let cpu = match (pc, tc) {
                (Some(pc), Some(tc)) => format!(
                    "; server CPU {:.1} → {:.1} µs/req ({:+.1}), client CPU {:.1} → {:.1} µs/req",
                    pc.server(),
                    tc.server(),
                    tc.server() - pc.server(),
                    pc.client,
                    tc.client
                ),
                _ => String::new(),
            };
            println!(
                "- {who} {op}: {:.0} → {:.0} req/s (× {:.2}), p99 {:.2} → {:.2} ms{cpu}",
                p.rps,
                t.rps,
                if p.rps > 0.0 { t.rps / p.rps } else { 0.0 },
                p.p99,
                t.p99
            );
        }
    }
    println!();
}

/// A row of a measured section: the cell with `variant` (http/https, auth off/on), the usual
/// result columns, then server and client CPU per request.
fn measured_row(
    cell: &Cell,
    variant: &str,
    tern: &MeasuredCell,
    etcd: Option<&MeasuredCell>,
) -> String {
    let cpu = |m: Option<&MeasuredCell>| match m.and_then(|m| m.1) {
        Some(c) => format!("{:.1} ({:.1} / {:.1})", c.server(), c.user, c.sys),
        None => "—".to_string(),
    };
    let client = |m: Option<&MeasuredCell>| {
        m.and_then(|m| m.1)
            .map_or("—".to_string(), |c| format!("{:.1}", c.client))
    };
    format!(
        "| {}, {variant} | {} | {} | {} | {} / {} |",
        cell.name(),
        result_columns(&tern.0, etcd.map(|e| &e.0)).join(" | "),
        cpu(Some(tern)),
        cpu(etcd),
        client(Some(tern)),
        client(etcd)
    )
}

fn measure_floor(dir: &Path) -> Floor {
    loadgen::floor::measure(dir).expect("the floor (O_DIRECT fdatasync, loopback round trip)")
}

// ---------------------------------------------------------------------------------------------
// Servers

#[derive(Clone)]
enum Kind {
    Tern,
    Etcd(PathBuf),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Tern => "tern",
            Kind::Etcd(_) => "etcd",
        }
    }

    fn binary(&self) -> PathBuf {
        match self {
            Kind::Tern => PathBuf::from(env!("CARGO_BIN_EXE_tern")),
            Kind::Etcd(b) => b.clone(),
        }
    }
}

struct Member {
    child: Child,
    client: SocketAddr,
    /// The `https://` client URL's address (a cluster started with TLS).
    tls_client: Option<SocketAddr>,
    log: PathBuf,
}

/// A tern or etcd cluster on loopback; its processes are killed and its directory removed
/// when dropped (also when the bench panics).
struct Cluster {
    kind: Kind,
    members: Vec<Member>,
    clients: Vec<SocketAddr>,
    leader: SocketAddr,
    /// Started with TLS: the leader's `https://` client address, and the protocol version and
    /// cipher suite the load generator's TLS client negotiated with it.
    tls_leader: Option<(SocketAddr, String)>,
    dir: PathBuf,
}

impl Cluster {
    /// Starts `size` members on plain client URLs; with `tls`, each also listens on an
    /// `https://` client URL with its certificate and key.
    fn start(kind: Kind, size: usize, root: &Path, tls: Option<&BenchTls>) -> Cluster {
        Cluster::start_with(kind, size, root, tls, &[])
    }

    /// [`Cluster::start`] with `extra` flags for every member (its data under a directory
    /// named after them too).
    fn start_with(
        kind: Kind,
        size: usize,
        root: &Path,
        tls: Option<&BenchTls>,
        extra: &[&str],
    ) -> Cluster {
        let dir = root.join(format!(
            "{}-{size}{}{}",
            kind.name(),
            if tls.is_some() { "-tls" } else { "" },
            extra.concat().replace(['-', ' '], "")
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let ips: Vec<Ipv4Addr> = (1..=size as u8)
            .map(|i| Ipv4Addr::new(127, 0, 0, i))
            .collect();
        // Hold every listener until all ports are chosen, so no two are the same.
        let rounds = if tls.is_some() { 3 } else { 2 };
        let held: Vec<TcpListener> = (0..rounds)
            .flat_map(|_| ips.iter().map(|ip| bind_free(*ip)))
            .collect();
        let addrs: Vec<SocketAddr> = held
            .iter()
            .map(|l| l.local_addr().expect("local addr"))
            .collect();
        drop(held);
        let (clients, peers) = (addrs[..size].to_vec(), addrs[size..2 * size].to_vec());
        let tls_clients = addrs[2 * size..].to_vec();
        let initial: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}=http://{p}"))
            .collect();
        let initial = initial.join(",");
        let token = format!("bench-{}-{}-{size}", kind.name(), std::process::id());
        let mut members = Vec::new();
        for i in 0..size {
            let mut client_url = format!("http://{}", clients[i]);
            if tls.is_some() {
                client_url.push_str(&format!(",https://{}", tls_clients[i]));
            }
            let peer_url = format!("http://{}", peers[i]);
            let log = dir.join(format!("m{i}.log"));
            let log_file = std::fs::File::create(&log).expect("create log");
            let mut cmd = Command::new(kind.binary());
            if let Kind::Etcd(_) = kind {
                cmd.arg("--enable-v2");
            }
            cmd.args(["--name", &format!("m{i}"), "--data-dir"])
                .arg(dir.join(format!("m{i}.data")))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log_file);
            if let Some(tls) = tls {
                cmd.arg("--cert-file")
                    .arg(&tls.cert)
                    .arg("--key-file")
                    .arg(&tls.key);
            }
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", kind.binary().display()));
            members.push(Member {
                child,
                client: clients[i],
                tls_client: tls.map(|_| tls_clients[i]),
                log,
            });
        }
        let mut cluster = Cluster {
            kind,
            members,
            clients,
            leader: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_leader: None,
            dir,
        };
        cluster.leader = cluster.wait_ready(Duration::from_secs(30));
        if let Some(tls) = tls {
            cluster.tls_leader = Some(cluster.wait_tls(tls, Duration::from_secs(10)));
        }
        cluster
    }

    /// Waits until the leader answers `/health` with 200 on its `https://` client URL, its
    /// certificate verified by the load generator's TLS client; returns that address and what
    /// was negotiated.
    fn wait_tls(&self, tls: &BenchTls, timeout: Duration) -> (SocketAddr, String) {
        let addr = self
            .members
            .iter()
            .find(|m| m.client == self.leader)
            .and_then(|m| m.tls_client)
            .expect("the leader has an https client URL");
        let deadline = Instant::now() + timeout;
        loop {
            let last = match https_get(addr, "/health", &tls.client) {
                Ok((200, _, negotiated)) => return (addr, negotiated),
                Ok((status, body, _)) => format!("status {status}: {body}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!(
                    "{} does not answer GET https://{addr}/health within {timeout:?}: {last}",
                    self.kind.name()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client_list(&self) -> String {
        let v: Vec<String> = self.clients.iter().map(|a| a.to_string()).collect();
        v.join(", ")
    }

    /// Waits until every member answers `/health` with 200 and one says it leads
    /// (`/v2/stats/self` state `StateLeader`); returns the leader's client address.
    fn wait_ready(&mut self, timeout: Duration) -> SocketAddr {
        let deadline = Instant::now() + timeout;
        loop {
            for m in &mut self.members {
                if let Ok(Some(status)) = m.child.try_wait() {
                    panic!(
                        "{} {} exited with {status}:\n{}",
                        self.kind.name(),
                        m.client,
                        std::fs::read_to_string(&m.log).unwrap_or_default()
                    );
                }
            }
            let healthy = self
                .members
                .iter()
                .all(|m| matches!(http_get(m.client, "/health"), Ok((200, _))));
            if healthy {
                let leader = self.members.iter().find(|m| {
                    matches!(http_get(m.client, "/v2/stats/self"),
                        Ok((200, body)) if body.contains("StateLeader"))
                });
                if let Some(l) = leader {
                    return l.client;
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| std::fs::read_to_string(&m.log).unwrap_or_default())
                    .collect();
                panic!(
                    "{} cluster not ready within {timeout:?}:\n{}",
                    self.kind.name(),
                    logs.join("\n----\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET path` with `Connection: close`: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "{}", get_request(addr, path))?;
    parse_response(&read_all(&mut s)?)
}

/// [`http_get`] over TLS, the server's certificate checked for `addr`'s IP address: (status,
/// body, the protocol version and cipher suite negotiated).
fn https_get(
    addr: SocketAddr,
    path: &str,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<(u16, String, String)> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, s);
    write!(tls, "{}", get_request(addr, path))?;
    let raw = read_all(&mut tls)?;
    let negotiated = format!(
        "{} {}",
        tls.conn
            .protocol_version()
            .map_or("?".to_string(), |v| format!("{v:?}")),
        tls.conn
            .negotiated_cipher_suite()
            .map_or("?".to_string(), |c| format!("{:?}", c.suite()))
    );
    let (status, body) = parse_response(&raw)?;
    Ok((status, body, negotiated))
}

fn get_request(addr: SocketAddr, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
}

/// Everything until the server closes; a TLS server that closes without close_notify ends the
/// read with an error that is taken as the end.
fn read_all(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    match r.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e),
    }
}

fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    // The whole answer is in `raw` (the connection was read to its end): tern's decoder.
    match tern::http::decode::decode_all(raw, false, true) {
        Ok(Some((head, body, _))) => Ok((head.status, String::from_utf8_lossy(&body).into_owned())),
        Ok(None) => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no response",
        )),
        Err(e) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.to_string(),
        )),
    }
}

/// A listener on a free port of `ip` (the caller releases it before the server binds it).
fn bind_free(ip: Ipv4Addr) -> TcpListener {
    TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind a free port on {ip}: {e}"))
}

/// A fresh, empty directory under `std::env::temp_dir()`.
fn fresh_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tern-bench-matrix-{}-{what}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}
