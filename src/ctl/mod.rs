//! `ternctl`: etcdctl (v2 mode) compatible command-line client.
//!
//! Same commands, flags, `ETCDCTL_*` variables, output and exit codes as etcdctl v2, so
//! scripts keep working when `etcdctl` is replaced by `ternctl`. Flow: `goflag` reads argv
//! the Go/urfave way (help, version and usage errors end there), clap (`cli`) types the
//! canonical argv, and the command modules (`keys`, `cluster`, `auth`) talk to the
//! cluster through `crate::client`, printing with `format`.
//! Owns: exit codes, global option handling (endpoint list, credentials, timeouts,
//! member sync), password prompting. Must not know: HTTP details or server internals.

pub mod auth;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod format;
pub mod goflag;
pub mod help;
pub mod keys;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};

use crate::client::{Client, ClientError, Config, Url};
use cli::{Cli, Command};

/// etcdctl's exit codes.
pub const EXIT_SUCCESS: i32 = 0;
pub const EXIT_BAD_ARGS: i32 = 1;
pub const EXIT_BAD_CONNECTION: i32 = 2;
pub const EXIT_BAD_AUTH: i32 = 3;
pub const EXIT_SERVER_ERROR: i32 = 4;
pub const EXIT_CLUSTER_NOT_HEALTHY: i32 = 5;

/// The default endpoint list, as etcdctl's.
pub const DEFAULT_ENDPOINTS: &str = "http://127.0.0.1:2379,http://127.0.0.1:4001";

/// A command's early end: everything was printed, exit with this code.
#[derive(Debug, PartialEq, Eq)]
pub struct Exit(pub i32);

/// What a command returns.
pub type CmdResult = Result<(), Exit>;

/// Runs ternctl on `argv` (including argv[0]) and returns the exit code.
pub fn run(argv: Vec<OsString>) -> i32 {
    let args: Vec<String> = argv
        .into_iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let app = Cli::command();
    let canon = {
        let stdout = std::io::stdout();
        let stderr = std::io::stderr();
        match goflag::resolve(&app, &args, &mut stdout.lock(), &mut stderr.lock()) {
            goflag::Resolved::Exit(code) => return code,
            goflag::Resolved::Run(c) => c,
        }
    };
    let cli = match Cli::try_parse_from(&canon) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_BAD_ARGS;
        }
    };
    let ctx = Ctx { g: cli.clone() };
    let Some(cmd) = cli.command else {
        return EXIT_SUCCESS;
    };
    let r = match &cmd {
        Command::Backup(a) => backup::backup(a),
        Command::ClusterHealth(a) => cluster::cluster_health(&ctx, a),
        Command::Mk(a) => keys::mk(&ctx, a),
        Command::Mkdir(a) => keys::mkdir(&ctx, a, crate::client::PrevExist::NoExist),
        Command::Setdir(a) => keys::mkdir(&ctx, a, crate::client::PrevExist::Ignore),
        Command::Rm(a) => keys::rm(&ctx, a),
        Command::Rmdir(a) => keys::rmdir(&ctx, a),
        Command::Get(a) => keys::get(&ctx, a),
        Command::Ls(a) => keys::ls(&ctx, a),
        Command::Set(a) => keys::set(&ctx, a),
        Command::Update(a) => keys::update(&ctx, a),
        Command::Updatedir(a) => keys::updatedir(&ctx, a),
        Command::Watch(a) => keys::watch(&ctx, a),
        Command::ExecWatch(a) => keys::exec_watch(&ctx, a),
        Command::Member(m) => cluster::member(&ctx, m),
        Command::User(u) => auth::user(&ctx, u),
        Command::Role(r) => auth::role(&ctx, r),
        Command::Auth(a) => auth::auth(&ctx, a),
        // `help` never reaches clap: goflag answers it.
        Command::Help(_) => Ok(()),
    };
    let _ = std::io::stdout().flush();
    match r {
        Ok(()) => EXIT_SUCCESS,
        Err(Exit(code)) => code,
    }
}

/// `--discovery-srv`: the client URLs published as `_etcd-client-ssl._tcp.<domain>` (https)
/// and `_etcd-client._tcp.<domain>` (http) SRV records, as etcdctl finds them.
fn srv_endpoints(domain: &str) -> Result<Vec<String>, String> {
    let server = crate::dns::name_server();
    let mut out = Vec::new();
    let mut last_error = String::new();
    for (service, scheme) in [("_etcd-client-ssl", "https"), ("_etcd-client", "http")] {
        let name = format!("{service}._tcp.{domain}");
        match crate::dns::lookup_srv(&server, &name, Duration::from_secs(5)) {
            Ok(records) => out.extend(
                records
                    .into_iter()
                    .map(|r| format!("{scheme}://{}:{}", r.target, r.port)),
            ),
            Err(e) => last_error = e,
        }
    }
    if out.is_empty() {
        return Err(last_error);
    }
    Ok(out)
}

/// The global options every command sees.
pub struct Ctx {
    pub g: Cli,
}

impl Ctx {
    /// `--output`.
    pub fn output(&self) -> &str {
        &self.g.output
    }

    /// A deadline `--total-timeout` from now (`contextWithTotalTimeout`).
    pub fn total_deadline(&self) -> Option<Instant> {
        Some(Instant::now() + self.g.total_timeout)
    }

    /// etcdctl's endpoint list (`getEndpoints`): flags and variables in its order of
    /// precedence, scheme defaulted to http.
    pub fn endpoints(&self) -> Result<Vec<String>, String> {
        if let Some(domain) = self.g.discovery_srv.as_deref().filter(|s| !s.is_empty()) {
            return srv_endpoints(domain);
        }
        let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
        let list = nonempty(&self.g.endpoints)
            .or_else(|| nonempty(&self.g.endpoint))
            .or_else(|| nonempty(&self.g.peers))
            .unwrap_or_else(|| DEFAULT_ENDPOINTS.to_string());
        let mut out = Vec::new();
        for ep in list.split(',') {
            let mut u = Url::parse(ep)?;
            if u.scheme.is_empty() {
                u.scheme = "http".into();
            }
            out.push(u.to_string_go());
        }
        Ok(out)
    }

    /// `newClient`: endpoints, credentials (prompting for a password), timeouts.
    fn new_client(&self) -> Result<Client, String> {
        let endpoints = self.endpoints()?;
        let mut cfg = Config {
            endpoints,
            header_timeout: Some(self.g.timeout),
            dial_timeout: Some(if self.g.total_timeout.is_zero() {
                Duration::from_secs(30)
            } else {
                self.g.total_timeout.min(Duration::from_secs(30))
            }),
            ..Default::default()
        };
        let files = crate::tls::ClientFiles {
            ca_file: self.g.ca_file.clone().filter(|s| !s.is_empty()),
            cert_file: self.g.cert_file.clone().filter(|s| !s.is_empty()),
            key_file: self.g.key_file.clone().filter(|s| !s.is_empty()),
        };
        if !files.is_empty() {
            cfg.tls = Some(crate::tls::client_config(&files)?);
        }
        if let Some(u) = self.g.username.as_deref().filter(|u| !u.is_empty()) {
            let (user, pass) = username_password("Password: ", u)?;
            cfg.username = Some(user);
            cfg.password = pass;
        }
        Client::new(cfg).map_err(|e| e.to_string())
    }

    /// `mustNewClient`: a client whose endpoint list was synced from the member list
    /// (unless `--no-sync`). Exits like etcdctl on failure.
    pub fn must_client(&self) -> Result<Client, Exit> {
        let mut c = match self.new_client() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return Err(Exit(EXIT_BAD_ARGS));
            }
        };
        let debug = self.g.debug;
        c.debug = debug;
        if !self.g.no_sync {
            if debug {
                eprintln!(
                    "start to sync cluster using endpoints({})",
                    c.endpoints().join(",")
                );
            }
            c.deadline = self.total_deadline();
            let r = c.sync();
            c.deadline = None;
            if let Err(e) = r {
                if e == ClientError::NoEndpoints {
                    eprintln!("etcd cluster has no published client endpoints.");
                    eprintln!(
                        "Try '--no-sync' if you want to access non-published client endpoints({}).",
                        c.endpoints().join(",")
                    );
                    return Err(handle_error(EXIT_SERVER_ERROR, &e));
                }
                if e.is_connection_error() {
                    return Err(handle_error(EXIT_BAD_CONNECTION, &e));
                }
            }
            if debug {
                eprintln!("got endpoints({}) after sync", c.endpoints().join(","));
            }
        }
        if debug {
            eprintln!("Cluster-Endpoints: {}", c.endpoints().join(", "));
        }
        Ok(c)
    }

    /// `mustNewClientNoSync`.
    pub fn must_client_no_sync(&self) -> Result<Client, Exit> {
        let mut c = match self.new_client() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return Err(Exit(EXIT_BAD_ARGS));
            }
        };
        if self.g.debug {
            eprintln!("Cluster-Endpoints: {}", c.endpoints().join(", "));
            c.debug = true;
        }
        Ok(c)
    }
}

/// `handleError`: prints `Error:  <err>` (and a cluster error's detail), gives the exit.
pub fn handle_error(code: i32, err: &ClientError) -> Exit {
    eprint!("{}", format::handle_error_text(err));
    Exit(code)
}

/// `handleError` for a plain message (`key required`, ...).
pub fn handle_error_msg(code: i32, msg: &str) -> Exit {
    eprintln!("Error:  {msg}");
    Exit(code)
}

/// Prints a keys response in the chosen format (`printResponseKey`).
pub fn print_key(ctx: &Ctx, resp: &crate::client::Response) {
    match format::response_key(resp, ctx.output()) {
        Ok(s) => {
            print!("{s}");
            let _ = std::io::stdout().flush();
        }
        Err(s) => eprint!("{s}"),
    }
}

/// `getUsernamePassword`: `user:pass`, or prompt for the password.
pub fn username_password(prompt: &str, flag: &str) -> Result<(String, String), String> {
    match flag.split_once(':') {
        Some((u, p)) => Ok((u.to_string(), p.to_string())),
        None => Ok((flag.to_string(), ask_password(prompt)?)),
    }
}

/// speakeasy's `Ask`: prompt on stdout, `stty -echo`, read a line from stdin, newline,
/// `stty echo`. Works with a terminal and with a pipe (stty then complains on stderr,
/// exactly as under etcdctl).
pub fn ask_password(prompt: &str) -> Result<String, String> {
    use std::process::{Command as Proc, Stdio};
    if !prompt.is_empty() {
        print!("{prompt}");
        let _ = std::io::stdout().flush();
    }
    let stty = |arg: &str| {
        Proc::new("stty")
            .arg(arg)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
    };
    if let Err(e) = stty("-echo") {
        return Err(format!(
            "failed turning off console echo for password entry:\n\t{e}"
        ));
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    while let Ok(1) = lock.read(&mut byte) {
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    println!();
    let _ = stty("echo");
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

/// Makes Ctrl-C end a watch with exit code 0, as etcdctl does.
pub fn exit_zero_on_interrupt() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
        fn _exit(code: i32) -> !;
    }
    extern "C" fn on_sigint(_: i32) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { _exit(0) }
    }
    const SIGINT: i32 = 2;
    // SAFETY: installs a handler that only calls the async-signal-safe _exit.
    unsafe {
        signal(SIGINT, on_sigint as extern "C" fn(i32) as usize);
    }
}
