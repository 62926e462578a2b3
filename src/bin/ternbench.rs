//! `ternbench`: load for a tern (or etcd v2) cluster, as in the etcd manual's §8 benchmark.
//!
//! ```text
//! ternbench --endpoints http://127.0.0.1:2379 --op put --value-size 64 --clients 64 \
//!     --duration-secs 10
//! ternbench --endpoints https://127.0.0.1:2379 --ca-file ca.pem --op get --clients 64
//! ```
//!
//! `https://` endpoints are dialed with TLS (rustls): the server's certificate is checked against
//! `--ca-file` (the system's roots without it) and must name the endpoint's host; `--cert-file`
//! and `--key-file` present a client certificate. The handshakes happen before the clock starts.
//!
//! `ternbench --floor DIR` sends no load and prints the floor of an acknowledged write on this
//! machine instead ([`loadgen::floor`]), so a script can set its figures beside the floor
//! measured in the same run. `ternbench --responder ADDR` serves instead: a do-nothing HTTP
//! responder ([`loadgen::responder`]) whose CPU per request is almost all kernel time, for
//! scripts to run beside the servers they compare.
//!
//! Prints requests/s, p50/p90/p99/max latency (ms) and the error count as a table row, or as
//! JSON with `--json`. Exits 1 when the run cannot take place, 2 on bad flags; a run whose
//! requests failed still exits 0 and reports them under `errors`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tern::loadgen::{self, Op, Spec, Stop};
use tern::tls::ClientFiles;

#[derive(Parser, Debug)]
#[command(
    name = "ternbench",
    about = "HTTP load for the etcd v2 keys API: GET or PUT of one key from C concurrent clients"
)]
struct Args {
    /// Comma-separated client URLs (http:// or https://); clients are spread over them
    /// round-robin.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    endpoints: String,
    /// What each request does.
    #[arg(long, value_enum, default_value = "get")]
    op: Op,
    /// Bytes of the value (PUT body `value=<bytes>`; GET reads a value of this size).
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Concurrent clients, each one kept-alive connection doing one request at a time.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Run for this many seconds (default 10 unless --requests is given).
    #[arg(long, conflicts_with = "requests")]
    duration_secs: Option<f64>,
    /// Issue exactly this many requests in all.
    #[arg(long)]
    requests: Option<u64>,
    /// Client threads, one glommio executor each.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The key path requested.
    #[arg(long, default_value = loadgen::DEFAULT_KEY)]
    key: String,
    /// PUT request n writes <key>/<n>: with --requests N, loads N distinct keys.
    #[arg(long)]
    sequential_keys: bool,
    /// Seconds before an unanswered request counts as an error.
    #[arg(long, default_value_t = 10.0)]
    timeout_secs: f64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Send HTTP basic auth as USER:PASSWORD with every request (etcdctl's --username).
    #[arg(long, short = 'u', value_name = "USER:PASSWORD")]
    username: Option<String>,
    /// https endpoints: verify the server's certificate with this CA bundle (PEM) instead of
    /// the system's roots.
    #[arg(long)]
    ca_file: Option<String>,
    /// https endpoints: present this client certificate (PEM; with --key-file).
    #[arg(long, requires = "key_file")]
    cert_file: Option<String>,
    /// https endpoints: the key of --cert-file (PEM).
    #[arg(long, requires = "cert_file")]
    key_file: Option<String>,
    /// Send no load: measure the floor of an acknowledged write instead (4 KiB O_DIRECT write
    /// + fdatasync with files in DIR, plus a loopback TCP round trip) and print it.
    #[arg(long, value_name = "DIR")]
    floor: Option<std::path::PathBuf>,
    /// Send no load: serve ADDR (host:port) with a do-nothing HTTP responder until killed (PUTs
    /// answered 201, GETs 200 with the last PUT's value), to measure what the kernel alone
    /// costs per request.
    #[arg(long, value_name = "ADDR", conflicts_with = "floor")]
    responder: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ternbench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn seconds(what: &str, s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{what} {s}: not a duration"))
}

fn run(args: &Args) -> Result<(), String> {
    if let Some(addr) = args.responder {
        let what = |e: std::io::Error| format!("--responder {addr}: {e}");
        let responder = loadgen::responder::Responder::bind(addr).map_err(what)?;
        return responder.run().map_err(what);
    }
    if let Some(dir) = &args.floor {
        let floor =
            loadgen::floor::measure(dir).map_err(|e| format!("--floor {}: {e}", dir.display()))?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&floor).map_err(|e| e.to_string())?
            );
        } else {
            println!("{}", floor.summary(dir));
        }
        return Ok(());
    }
    let endpoints = loadgen::parse_endpoints(&args.endpoints).map_err(|e| e.to_string())?;
    let files = ClientFiles {
        ca_file: args.ca_file.clone(),
        cert_file: args.cert_file.clone(),
        key_file: args.key_file.clone(),
    };
    let tls = if endpoints.iter().any(|e| e.tls.is_some()) {
        Some(tern::tls::client_config(&files)?)
    } else {
        if !files.is_empty() {
            eprintln!("ternbench: warning: no https endpoint: --ca-file, --cert-file and --key-file are ignored");
        }
        None
    };
    let mut spec = Spec::new(endpoints, args.op);
    spec.tls = tls;
    spec.value_size = args.value_size;
    spec.clients = args.clients;
    spec.threads = args.threads;
    spec.key = args.key.clone();
    spec.sequential_keys = args.sequential_keys;
    spec.basic_auth = args.username.clone();
    spec.request_timeout = seconds("--timeout-secs", args.timeout_secs)?;
    spec.stop = match (args.requests, args.duration_secs) {
        (Some(n), _) => Stop::Requests(n),
        (None, Some(s)) => Stop::Duration(seconds("--duration-secs", s)?),
        (None, None) => Stop::Duration(Duration::from_secs(10)),
    };
    let report = loadgen::run(&spec).map_err(|e| e.to_string())?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", loadgen::Report::table_header());
        println!("{}", report.table_row());
        if let Some(e) = &report.first_error {
            println!("first error: {e}");
        }
    }
    Ok(())
}
