//! tern's command line: every etcd 2.3 flag and its `ETCD_*` variable, tern's own flags
//! (`--shards`, `--watch-history`, `--max-request-bytes`, `--pin-shards`,
//! `--discovery-service`, `--discovery-service-ttl` and their `TERN_*` variables), their validation (etcd 2.3's `etcdmain/config.go` checks and messages) and the derived configuration
//! (default data dir, default initial cluster, durations, listen addresses).
//!
//! Flags are read the way Go's `flag` package reads them: `-flag` or `--flag`, `-flag=value` or
//! `-flag value`, bare booleans never take the next argument, the last occurrence wins, parsing
//! stops at the first non-flag argument (which is then refused). A flag not given on the command
//! line is read from its variable; an empty variable counts as unset.
//!
//! This module must not know about sockets, files, raft or the store: it only turns argv and the
//! environment into a typed [`Config`] or a [`ConfigError`]; the server decides what to do with it.

mod flags;
#[cfg(test)]
mod tests;
pub mod url;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

use flags::{Flags, DEFAULT_INITIAL_CLUSTER};
pub use url::{InitialCluster, ListenUrl, Scheme, Url};

/// The etcd release whose v2 API, flags and messages tern reproduces.
pub const ETCD_VERSION: &str = "2.3.7";

/// The flags the current stage of tern implements; see [`Config::check_supported`].
pub const SUPPORTED_NOW: &[&str] = &[
    "name",
    "data-dir",
    "listen-client-urls",
    "advertise-client-urls",
    "cors",
    "debug",
    "heartbeat-interval",
    "election-timeout",
    "snapshot-count",
    "max-snapshots",
    "max-wals",
    "wal-dir",
    "listen-peer-urls",
    "initial-advertise-peer-urls",
    "initial-cluster",
    "initial-cluster-token",
    "initial-cluster-state",
    "strict-reconfig-check",
    "force-new-cluster",
    "log-package-levels",
    "version",
    "shards",
    "watch-history",
    "max-request-bytes",
    "pin-shards",
    "ca-file",
    "cert-file",
    "key-file",
    "client-cert-auth",
    "trusted-ca-file",
    "peer-ca-file",
    "peer-cert-file",
    "peer-key-file",
    "peer-client-cert-auth",
    "peer-trusted-ca-file",
    "auto-tls",
    "peer-auto-tls",
    "cipher-suites",
    "discovery",
    "discovery-fallback",
    "discovery-srv",
    "proxy",
    "proxy-failure-wait",
    "proxy-refresh-interval",
    "proxy-dial-timeout",
    "proxy-write-timeout",
    "proxy-read-timeout",
    "discovery-proxy",
    "discovery-service",
    "discovery-service-ttl",
];

/// tern's own flags: read from `TERN_*` variables instead of `ETCD_*`.
const TERN_FLAGS: &[&str] = &[
    "shards",
    "watch-history",
    "max-request-bytes",
    "pin-shards",
    "discovery-service",
    "discovery-service-ttl",
];

/// Flags of etcd 0.4 that etcd 2.3 accepts (as booleans or with `=value`) and ignores with a warning.
const IGNORED_FLAGS: &[&str] = &[
    "cluster-active-size",
    "cluster-remove-delay",
    "cluster-sync-interval",
    "config",
    "force",
    "max-result-buffer",
    "max-retry-attempts",
    "peer-heartbeat-interval",
    "peer-election-timeout",
    "retry-interval",
    "snapshot",
    "v",
    "vv",
];

/// etcd's largest allowed `--election-timeout`, in milliseconds.
const MAX_ELECTION_MS: u64 = 50_000;

const ERR_CONFLICT_BOOTSTRAP: &str = "multiple discovery or bootstrap flags are set. \
     Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\"";

/// Why parsing did not produce a [`Config`]. `Help` and `Version` are not failures: print the text
/// to stdout and exit 0. `Invalid` is: print it to stderr and exit 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Help(String),
    Version(String),
    Invalid(String),
}

impl ConfigError {
    /// The process exit status for this outcome.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Help(_) | ConfigError::Version(_) => 0,
            ConfigError::Invalid(_) => 1,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, ConfigError::Invalid(_))
    }

    /// Prints the text (help and version to stdout, errors to stderr the way etcd words them)
    /// and exits with [`Self::exit_code`].
    pub fn exit(self) -> ! {
        match &self {
            ConfigError::Help(t) | ConfigError::Version(t) => print!("{t}"),
            ConfigError::Invalid(e) => {
                eprintln!("tern: error verifying flags, {e}. See 'tern --help'.")
            }
        }
        std::process::exit(self.exit_code())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Help(t) | ConfigError::Version(t) | ConfigError::Invalid(t) => {
                f.write_str(t)
            }
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            /// Every accepted spelling, in etcd's order.
            pub const VALUES: &'static [&'static str] = &[$($text),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// Parses one of [`Self::VALUES`]; the error lists them.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(format!("valid values are {}", Self::VALUES.join(", "))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// `--proxy`.
    ProxyMode { Off = "off", Readonly = "readonly", On = "on" }
);
string_enum!(
    /// `--initial-cluster-state`.
    ClusterState { New = "new", Existing = "existing" }
);
string_enum!(
    /// `--discovery-fallback`: what a member does when discovery finds the cluster full.
    DiscoveryFallback { Proxy = "proxy", Exit = "exit" }
);

/// TLS files for one side (clients or peers). Empty paths are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Deprecated `--ca-file`: same as `trusted_ca_file` plus `client_cert_auth`.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub trusted_ca_file: Option<PathBuf>,
}

impl TlsInfo {
    /// etcd's `TLSInfo.Empty()`: neither a cert nor a key file is given.
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_none() && self.key_file.is_none()
    }
}

/// Where a flag's value came from, when it did not come from its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    /// The variable's name, e.g. `ETCD_NAME`.
    Env(String),
}

/// The validated configuration of one tern process.
#[derive(Debug, Clone)]
pub struct Config {
    // member
    pub name: String,
    /// `--data-dir`, or `${name}.etcd` when not given.
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    pub snapshot_count: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// Sorted like etcd sorts them; each has a [`ListenUrl::socket_addr`].
    pub listen_peer_urls: Vec<ListenUrl>,
    /// Sorted like etcd sorts them; each has a [`ListenUrl::socket_addr`].
    pub listen_client_urls: Vec<ListenUrl>,
    /// 0 is unlimited.
    pub max_snapshots: u64,
    /// 0 is unlimited.
    pub max_wals: u64,
    /// Allowed CORS origins (`*` for any), sorted; empty means CORS is off.
    pub cors: Vec<String>,
    // clustering
    pub initial_advertise_peer_urls: Vec<Url>,
    pub advertise_client_urls: Vec<Url>,
    /// The bootstrap membership: `--initial-cluster`, or built from the name and
    /// `--initial-advertise-peer-urls` when not given; empty when `--discovery`/`--discovery-srv` is used.
    pub initial_cluster: InitialCluster,
    pub initial_cluster_token: String,
    pub initial_cluster_state: ClusterState,
    pub discovery: Option<String>,
    pub discovery_fallback: DiscoveryFallback,
    pub discovery_proxy: Option<String>,
    pub discovery_srv: Option<String>,
    pub strict_reconfig_check: bool,
    // proxy
    pub proxy: ProxyMode,
    pub proxy_failure_wait: Duration,
    pub proxy_refresh_interval: Duration,
    pub proxy_dial_timeout: Duration,
    pub proxy_write_timeout: Duration,
    /// Zero means no timeout (needed for watches).
    pub proxy_read_timeout: Duration,
    // security
    pub client_tls: TlsInfo,
    pub peer_tls: TlsInfo,
    /// `--auto-tls`: self-signed client certificates when none are given.
    pub auto_tls: bool,
    /// `--peer-auto-tls`.
    pub peer_auto_tls: bool,
    /// `--cipher-suites` (Go names), in order; empty means rustls's defaults.
    pub cipher_suites: Vec<String>,
    // logging
    pub debug: bool,
    pub log_package_levels: Option<String>,
    // unsafe
    pub force_new_cluster: bool,
    // experimental (accepted for compatibility; tern has no v3 API)
    pub experimental_v3demo: bool,
    pub experimental_grpc_addr: String,
    pub experimental_auto_compaction_retention: i64,
    pub enable_pprof: bool,
    // tern
    /// Executor threads; default: the number of online CPUs.
    pub shards: usize,
    /// Events kept for `waitIndex`.
    pub watch_history: usize,
    pub max_request_bytes: usize,
    /// Pin shard i to CPU i (off: the kernel places the shard threads).
    pub pin_shards: bool,
    /// `--discovery-service`: answer `GET /new?size=N` on the client URLs with a new
    /// discovery token URL in this cluster's keys space.
    pub discovery_service: bool,
    /// How long a token made by `/new` lives (its directory expires as a whole).
    pub discovery_service_ttl: Duration,
    /// Things worth logging at start (ignored legacy flags).
    pub warnings: Vec<String>,

    flags: Flags,
    sources: BTreeMap<String, Source>,
}

impl Default for Config {
    /// The configuration with no flags and no environment.
    fn default() -> Config {
        parse_from(["tern"], &|_| None).expect("defaults are valid")
    }
}

impl Config {
    /// Whether `flag` (`"initial-cluster"` or `"--initial-cluster"`) was given on the command line
    /// or through its variable (etcd counts both as "set").
    pub fn explicitly_set(&self, flag: &str) -> bool {
        self.sources.contains_key(flag.trim_start_matches('-'))
    }

    /// Where `flag`'s value came from; `None` when it has its default.
    pub fn source(&self, flag: &str) -> Option<&Source> {
        self.sources.get(flag.trim_start_matches('-'))
    }

    /// Fails with `flag --X is not supported yet` for the first flag (in etcd's help order) that is
    /// not in `supported` and was set to something other than its default.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), ConfigError> {
        let defaults = default_flags().values();
        for ((name, value), (_, default)) in self.flags.values().into_iter().zip(defaults) {
            if !supported.contains(&name) && self.explicitly_set(name) && value != default {
                return Err(invalid(format!("flag --{name} is not supported yet")));
            }
        }
        Ok(())
    }

    pub fn is_proxy(&self) -> bool {
        self.proxy != ProxyMode::Off
    }

    pub fn is_new_cluster(&self) -> bool {
        self.initial_cluster_state == ClusterState::New
    }

    /// Election timeout in heartbeat ticks (etcd's `electionTicks`).
    pub fn election_ticks(&self) -> u64 {
        (self.election_timeout.as_millis() / self.heartbeat_interval.as_millis()) as u64
    }

    /// etcd's request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.election_timeout
    }

    /// Addresses to bind for clients.
    pub fn listen_client_addrs(&self) -> Vec<SocketAddr> {
        self.listen_client_urls
            .iter()
            .map(ListenUrl::socket_addr)
            .collect()
    }

    /// Addresses to bind for peers.
    pub fn listen_peer_addrs(&self) -> Vec<SocketAddr> {
        self.listen_peer_urls
            .iter()
            .map(ListenUrl::socket_addr)
            .collect()
    }

    /// `<data-dir>/member`.
    pub fn member_dir(&self) -> PathBuf {
        self.data_dir.join("member")
    }

    /// `--wal-dir`, or `<data-dir>/member/wal`.
    pub fn wal_dir_path(&self) -> PathBuf {
        self.wal_dir
            .clone()
            .unwrap_or_else(|| self.member_dir().join("wal"))
    }

    /// `<data-dir>/member/snap`.
    pub fn snap_dir(&self) -> PathBuf {
        self.member_dir().join("snap")
    }
}

/// What `tern --version` prints.
pub fn version_text() -> String {
    format!(
        "tern Version: {}\netcd API Version: {ETCD_VERSION}-compatible\nGit SHA: {}\nOS/Arch: {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("TERN_GIT_SHA").unwrap_or("Not provided"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

/// What `tern --help` prints.
pub fn help_text() -> String {
    Flags::command().render_help().to_string()
}

/// Parses the process's arguments and environment.
pub fn parse() -> Result<Config, ConfigError> {
    parse_from(std::env::args_os(), &|k| std::env::var(k).ok())
}

/// Parses `args` (starting with the program name) with `env` standing in for the environment.
pub fn parse_from<I, T>(
    args: I,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args = args
        .into_iter()
        .skip(1)
        .map(|a| {
            a.into()
                .into_string()
                .map_err(|a| invalid(format!("invalid UTF-8 in argument {a:?}")))
        })
        .collect::<Result<Vec<String>, _>>()?;
    let known = KnownFlags::new();
    let scan = scan(&args, &known);

    // Values given before the point where Go's parser stopped are checked first, as Go would.
    let mut sources: BTreeMap<String, Source> = scan
        .set
        .iter()
        .map(|n| (n.clone(), Source::CommandLine))
        .collect();
    let parsed = run_clap(&scan.tokens, &known, &sources)?;
    match scan.stop {
        Stop::End => {}
        Stop::Help => return Err(ConfigError::Help(help_text())),
        Stop::Error(msg) => return Err(invalid(msg)),
        Stop::Positional(arg) => return Err(invalid(format!("'{arg}' is not a valid flag"))),
    }
    if parsed.version {
        return Err(ConfigError::Version(version_text()));
    }

    // Then every flag not on the command line is read from its variable.
    let mut tokens = scan.tokens;
    let mut warnings = scan.warnings;
    for name in &known.names {
        if name == "version" || sources.contains_key(name) {
            continue;
        }
        let var = env_var(name);
        if let Some(value) = env(&var).filter(|v| !v.is_empty()) {
            tokens.push(format!("--{name}={value}"));
            sources.insert(name.clone(), Source::Env(var));
        }
    }
    for name in IGNORED_FLAGS {
        if scan.ignored.iter().any(|n| n == name) {
            continue;
        }
        if env(&env_var(name)).is_some_and(|v| !v.is_empty()) {
            warnings.push(format!(
                "flag \"-{name}\" is no longer supported - ignoring."
            ));
        }
    }
    let flags = run_clap(&tokens, &known, &sources)?;
    build(flags, sources, warnings)
}

/// `ETCD_LISTEN_CLIENT_URLS` for `listen-client-urls`, `TERN_SHARDS` for `shards`.
fn env_var(flag: &str) -> String {
    let prefix = if TERN_FLAGS.contains(&flag) {
        "TERN_"
    } else {
        "ETCD_"
    };
    format!("{prefix}{}", flag.to_uppercase().replace('-', "_"))
}

/// The long names clap knows, and which of them are booleans.
struct KnownFlags {
    names: Vec<String>,
    bools: BTreeSet<String>,
}

impl KnownFlags {
    fn new() -> KnownFlags {
        let cmd = Flags::command();
        let mut names = Vec::new();
        let mut bools = BTreeSet::new();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if arg.get_num_args().is_some_and(|r| r.min_values() == 0) {
                bools.insert(long.to_string());
            }
            names.push(long.to_string());
        }
        KnownFlags { names, bools }
    }

    fn is_known(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

enum Stop {
    End,
    Help,
    Positional(String),
    Error(String),
}

struct Scan {
    /// `--name=value` (or bare `--name` for booleans), ready for clap.
    tokens: Vec<String>,
    /// Flags seen, in order.
    set: Vec<String>,
    /// Ignored legacy flags seen.
    ignored: Vec<String>,
    warnings: Vec<String>,
    stop: Stop,
}

/// Go's `FlagSet.Parse`: splits argv into flags and values, stopping at the first non-flag.
fn scan(args: &[String], known: &KnownFlags) -> Scan {
    let mut out = Scan {
        tokens: Vec::new(),
        set: Vec::new(),
        ignored: Vec::new(),
        warnings: Vec::new(),
        stop: Stop::End,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.len() < 2 || !arg.starts_with('-') {
            out.stop = Stop::Positional(arg.clone());
            break;
        }
        let body = if arg == "--" {
            out.stop = args
                .get(i + 1)
                .map_or(Stop::End, |a| Stop::Positional(a.clone()));
            break;
        } else {
            arg.strip_prefix("--").unwrap_or(&arg[1..])
        };
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            out.stop = Stop::Error(format!("bad flag syntax: {arg}"));
            break;
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if IGNORED_FLAGS.contains(&name) {
            out.warnings.push(format!(
                "flag \"-{name}\" is no longer supported - ignoring."
            ));
            out.ignored.push(name.to_string());
            i += 1;
            continue;
        }
        if !known.is_known(name) {
            out.stop = if name == "help" || name == "h" {
                Stop::Help
            } else {
                Stop::Error(format!("flag provided but not defined: -{name}"))
            };
            break;
        }
        let token = match value {
            Some(v) => format!("--{name}={v}"),
            None if known.bools.contains(name) => format!("--{name}"),
            None => match args.get(i + 1) {
                Some(v) => {
                    i += 1;
                    format!("--{name}={v}")
                }
                None => {
                    out.stop = Stop::Error(format!("flag needs an argument: -{name}"));
                    break;
                }
            },
        };
        out.tokens.push(token);
        out.set.push(name.to_string());
        i += 1;
    }
    out
}

/// Hands the tokens to clap; a bad value is reported the way Go's flag package (or etcd's
/// environment reader) reports it, naming the flag or the variable.
fn run_clap(
    tokens: &[String],
    known: &KnownFlags,
    sources: &BTreeMap<String, Source>,
) -> Result<Flags, ConfigError> {
    use clap::error::{ContextKind, ContextValue};
    let argv = std::iter::once("tern").chain(tokens.iter().map(String::as_str));
    let err = match Flags::command().try_get_matches_from(argv) {
        Ok(m) => return Flags::from_arg_matches(&m).map_err(|e| invalid(e.to_string())),
        Err(e) => e,
    };
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        err.get(ContextKind::InvalidArg),
        err.get(ContextKind::InvalidValue),
    ) else {
        return Err(invalid(
            err.to_string()
                .trim_start_matches("error: ")
                .trim_end()
                .to_string(),
        ));
    };
    let name = arg
        .trim_start_matches('-')
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .next()
        .unwrap_or_default();
    let reason = std::error::Error::source(&err)
        .map_or_else(|| "parse error".to_string(), |s| s.to_string());
    Err(invalid(match sources.get(name) {
        Some(Source::Env(var)) => format!("invalid value {value:?} for {var}: {reason}"),
        _ if known.bools.contains(name) => {
            format!("invalid boolean value {value:?} for -{name}: {reason}")
        }
        _ => format!("invalid value {value:?} for flag -{name}: {reason}"),
    }))
}

fn default_flags() -> Flags {
    Flags::try_parse_from(["tern"]).expect("default flag values parse")
}

fn opt_string(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn opt_path(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// etcd's `URLsFromFlags`: a legacy `ip:port` flag stands in for its URL flag.
fn urls_from_flags(
    urls: &[Url],
    urls_flag: &str,
    addr: &Option<String>,
    addr_flag: &str,
    tls: &TlsInfo,
    sources: &BTreeMap<String, Source>,
) -> Result<Vec<Url>, ConfigError> {
    let Some(addr) = addr else {
        return Ok(urls.to_vec());
    };
    if sources.contains_key(urls_flag) {
        return Err(invalid(format!(
            "Set only one of flags -{urls_flag} and -{addr_flag}"
        )));
    }
    let scheme = if tls.is_empty() { "http" } else { "https" };
    Url::parse(&format!("{scheme}://{addr}"))
        .map(|u| vec![u])
        .map_err(invalid)
}

/// Listen URLs are checked when parsed (and legacy `-bind-addr` values are IPs): this cannot fail
/// for values that came through the flags, but stays an error rather than a panic.
fn to_listen(urls: Vec<Url>) -> Result<Vec<ListenUrl>, ConfigError> {
    urls.into_iter()
        .map(|u| ListenUrl::new(u).map_err(invalid))
        .collect()
}

/// etcd 2.3's checks after flags and variables are read, then the derived values.
fn build(
    mut f: Flags,
    mut sources: BTreeMap<String, Source>,
    warnings: Vec<String>,
) -> Result<Config, ConfigError> {
    let is_set = |sources: &BTreeMap<String, Source>, n: &str| sources.contains_key(n);

    let bootstrap_flags = ["discovery", "initial-cluster", "discovery-srv"];
    if bootstrap_flags
        .iter()
        .filter(|n| is_set(&sources, n))
        .count()
        > 1
    {
        return Err(invalid(ERR_CONFLICT_BOOTSTRAP));
    }

    let client_tls = TlsInfo {
        ca_file: opt_path(&f.ca_file),
        cert_file: opt_path(&f.cert_file),
        key_file: opt_path(&f.key_file),
        client_cert_auth: f.client_cert_auth,
        trusted_ca_file: opt_path(&f.trusted_ca_file),
    };
    let peer_tls = TlsInfo {
        ca_file: opt_path(&f.peer_ca_file),
        cert_file: opt_path(&f.peer_cert_file),
        key_file: opt_path(&f.peer_key_file),
        client_cert_auth: f.peer_client_cert_auth,
        trusted_ca_file: opt_path(&f.peer_trusted_ca_file),
    };

    // etcd's SetBindAddrFromAddr: an -addr alone also binds its port on every interface.
    for (bind, addr) in [
        ("bind-addr", f.addr.clone()),
        ("peer-bind-addr", f.peer_addr.clone()),
    ] {
        let (Some(addr), false) = (addr, is_set(&sources, bind)) else {
            continue;
        };
        let port = addr.rsplit_once(':').map_or("", |(_, p)| p);
        let any = format!("[::]:{port}");
        match bind {
            "bind-addr" => f.bind_addr = Some(any),
            _ => f.peer_bind_addr = Some(any),
        }
        sources.insert(bind.to_string(), Source::CommandLine);
    }
    let listen_peer_urls = urls_from_flags(
        &f.listen_peer_urls.0,
        "listen-peer-urls",
        &f.peer_bind_addr,
        "peer-bind-addr",
        &peer_tls,
        &sources,
    )?;
    let initial_advertise_peer_urls = urls_from_flags(
        &f.initial_advertise_peer_urls.0,
        "initial-advertise-peer-urls",
        &f.peer_addr,
        "peer-addr",
        &peer_tls,
        &sources,
    )?;
    let listen_client_urls = urls_from_flags(
        &f.listen_client_urls.0,
        "listen-client-urls",
        &f.bind_addr,
        "bind-addr",
        &client_tls,
        &sources,
    )?;
    let advertise_client_urls = urls_from_flags(
        &f.advertise_client_urls.0,
        "advertise-client-urls",
        &f.addr,
        "addr",
        &client_tls,
        &sources,
    )?;

    // A member must say which URL clients should use when it listens somewhere specific.
    let may_fallback_to_proxy =
        is_set(&sources, "discovery") && f.discovery_fallback == DiscoveryFallback::Proxy;
    let may_be_proxy = f.proxy != ProxyMode::Off || may_fallback_to_proxy;
    if !may_be_proxy
        && is_set(&sources, "listen-client-urls")
        && !is_set(&sources, "advertise-client-urls")
    {
        return Err(invalid(
            "-advertise-client-urls is required when -listen-client-urls is set explicitly",
        ));
    }

    if f.heartbeat_interval == 0 {
        return Err(invalid("-heartbeat-interval[0ms] must be greater than 0"));
    }
    if 5 * u128::from(f.heartbeat_interval) > u128::from(f.election_timeout) {
        return Err(invalid(format!(
            "-election-timeout[{}ms] should be at least as 5 times as -heartbeat-interval[{}ms]",
            f.election_timeout, f.heartbeat_interval
        )));
    }
    if f.election_timeout > MAX_ELECTION_MS {
        return Err(invalid(format!(
            "-election-timeout[{}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms",
            f.election_timeout
        )));
    }

    // Derived values (etcdmain/etcd.go).
    let data_dir = match f.data_dir.as_str() {
        "" => PathBuf::from(format!("{}.etcd", f.name)),
        d => PathBuf::from(d),
    };
    let initial_cluster = if !f.discovery.is_empty() || !f.discovery_srv.is_empty() {
        InitialCluster::default()
    } else if !is_set(&sources, "initial-cluster")
        || (f.name != "default"
            && InitialCluster::parse(DEFAULT_INITIAL_CLUSTER).as_ref() == Ok(&f.initial_cluster))
    {
        InitialCluster::from_member(&f.name, &initial_advertise_peer_urls)
    } else {
        f.initial_cluster.clone()
    };
    let shards = match f.shards {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let ms = Duration::from_millis;

    // etcd 3's check: an https listener needs a certificate (given, or generated).
    for (urls, tls, auto, side, flags) in [
        (
            &listen_client_urls,
            &client_tls,
            f.auto_tls,
            "client",
            "--cert-file, --key-file",
        ),
        (
            &listen_peer_urls,
            &peer_tls,
            f.peer_auto_tls,
            "peer",
            "--peer-cert-file, --peer-key-file",
        ),
    ] {
        if let Some(u) = urls.iter().find(|u| u.scheme == Scheme::Https) {
            if tls.cert_file.is_none() && tls.key_file.is_none() && !auto {
                return Err(invalid(format!(
                    "TLS key/cert ({flags}) must be provided for {side} url {} with HTTPS scheme",
                    u
                )));
            }
        }
    }

    Ok(Config {
        name: f.name.clone(),
        data_dir,
        wal_dir: opt_path(&f.wal_dir),
        snapshot_count: f.snapshot_count,
        heartbeat_interval: ms(f.heartbeat_interval),
        election_timeout: ms(f.election_timeout),
        listen_peer_urls: to_listen(listen_peer_urls)?,
        listen_client_urls: to_listen(listen_client_urls)?,
        max_snapshots: f.max_snapshots,
        max_wals: f.max_wals,
        cors: f.cors.0.clone(),
        initial_advertise_peer_urls,
        advertise_client_urls,
        initial_cluster,
        initial_cluster_token: f.initial_cluster_token.clone(),
        initial_cluster_state: f.initial_cluster_state,
        discovery: opt_string(&f.discovery),
        discovery_fallback: f.discovery_fallback,
        discovery_proxy: opt_string(&f.discovery_proxy),
        discovery_srv: opt_string(&f.discovery_srv),
        strict_reconfig_check: f.strict_reconfig_check,
        proxy: f.proxy,
        proxy_failure_wait: ms(f.proxy_failure_wait),
        proxy_refresh_interval: ms(f.proxy_refresh_interval),
        proxy_dial_timeout: ms(f.proxy_dial_timeout),
        proxy_write_timeout: ms(f.proxy_write_timeout),
        proxy_read_timeout: ms(f.proxy_read_timeout),
        client_tls,
        peer_tls,
        auto_tls: f.auto_tls,
        peer_auto_tls: f.peer_auto_tls,
        cipher_suites: f
            .cipher_suites
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        debug: f.debug,
        log_package_levels: opt_string(&f.log_package_levels),
        force_new_cluster: f.force_new_cluster,
        experimental_v3demo: f.experimental_v3demo,
        experimental_grpc_addr: f.experimental_grpc_addr.clone(),
        experimental_auto_compaction_retention: f.experimental_auto_compaction_retention,
        enable_pprof: f.enable_pprof,
        shards,
        watch_history: f.watch_history as usize,
        pin_shards: f.pin_shards,
        discovery_service: f.discovery_service,
        discovery_service_ttl: Duration::from_secs(f.discovery_service_ttl),
        max_request_bytes: f.max_request_bytes as usize,
        warnings,
        flags: f,
        sources,
    })
}
