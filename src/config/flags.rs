//! The flag table (clap derive) and the value parsers that read values the way Go's `flag`
//! package and etcd 2.3's flag types do. [`super`] feeds clap already-split `--name=value` tokens.

use clap::{ArgAction, Parser};

use super::url::{parse_url_list, InitialCluster, Url};
use super::{ClusterState, DiscoveryFallback, ProxyMode};

/// A URL list flag's value (newtype so clap sees one value, not many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Urls(pub Vec<Url>);

/// `--cors` origins, sorted and deduplicated (etcd keeps them in a set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cors(pub Vec<String>);

/// Every flag etcd 2.3 accepts (but the ignored ones, handled before clap), then tern's own.
/// Declaration order is the order `check_supported` reports in.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "tern",
    about = "tern: an etcd v2 compatible server",
    override_usage = "tern [flags]\n       tern --version\n       tern -h | --help",
    after_help = "Every flag is also read from its environment variable when not given: \
                  --initial-cluster-token from ETCD_INITIAL_CLUSTER_TOKEN, --shards from TERN_SHARDS.\n\
                  Flags take one or two dashes, and -flag=value or -flag value; booleans take -flag or -flag=false.",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub(super) struct Flags {
    // ---- member ----
    /// Human-readable name for this member.
    #[arg(long, default_value = "default", help_heading = "Member")]
    pub name: String,
    /// Path to the data directory [default: ${name}.etcd].
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        help_heading = "Member"
    )]
    pub data_dir: String,
    /// Path to the dedicated wal directory.
    #[arg(long, default_value = "", help_heading = "Member")]
    pub wal_dir: String,
    /// Number of committed transactions to trigger a snapshot to disk.
    #[arg(long, default_value = "10000", value_parser = go_uint, help_heading = "Member")]
    pub snapshot_count: u64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value = "100", value_parser = go_uint, help_heading = "Member")]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value = "1000", value_parser = go_uint, help_heading = "Member")]
    pub election_timeout: u64,
    /// List of URLs to listen on for peer traffic.
    #[arg(long, default_value = "http://localhost:2380,http://localhost:7001", value_parser = listen_urls, help_heading = "Member")]
    pub listen_peer_urls: Urls,
    /// List of URLs to listen on for client traffic.
    #[arg(long, default_value = "http://localhost:2379,http://localhost:4001", value_parser = listen_urls, help_heading = "Member")]
    pub listen_client_urls: Urls,
    /// Maximum number of snapshot files to retain (0 is unlimited).
    #[arg(long, default_value = "5", value_parser = go_uint, help_heading = "Member")]
    pub max_snapshots: u64,
    /// Maximum number of wal files to retain (0 is unlimited).
    #[arg(long, default_value = "5", value_parser = go_uint, help_heading = "Member")]
    pub max_wals: u64,
    /// Comma-separated white list of origins for CORS (cross-origin resource sharing).
    #[arg(long, default_value = "", value_parser = cors, help_heading = "Member")]
    pub cors: Cors,

    // ---- clustering ----
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380,http://localhost:7001", value_parser = urls, help_heading = "Clustering")]
    pub initial_advertise_peer_urls: Urls,
    /// Initial cluster configuration for bootstrapping.
    #[arg(long, default_value = DEFAULT_INITIAL_CLUSTER, value_parser = InitialCluster::parse, help_heading = "Clustering")]
    pub initial_cluster: InitialCluster,
    /// Initial cluster state ('new' or 'existing').
    #[arg(long, default_value = "new", value_parser = ClusterState::parse, help_heading = "Clustering")]
    pub initial_cluster_state: ClusterState,
    /// Initial cluster token for the etcd cluster during bootstrap.
    #[arg(long, default_value = "etcd-cluster", help_heading = "Clustering")]
    pub initial_cluster_token: String,
    /// List of this member's client URLs to advertise to the public.
    #[arg(long, default_value = "http://localhost:2379,http://localhost:4001", value_parser = urls, help_heading = "Clustering")]
    pub advertise_client_urls: Urls,
    /// Discovery URL used to bootstrap the cluster.
    #[arg(long, default_value = "", help_heading = "Clustering")]
    pub discovery: String,
    /// Expected behavior ('exit' or 'proxy') when discovery services fails.
    #[arg(long, default_value = "proxy", value_parser = DiscoveryFallback::parse, help_heading = "Clustering")]
    pub discovery_fallback: DiscoveryFallback,
    /// HTTP proxy to use for traffic to discovery service.
    #[arg(long, default_value = "", help_heading = "Clustering")]
    pub discovery_proxy: String,
    /// DNS domain used to bootstrap initial cluster.
    #[arg(long, default_value = "", help_heading = "Clustering")]
    pub discovery_srv: String,
    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Clustering")]
    pub strict_reconfig_check: bool,

    // ---- proxy ----
    /// Proxy mode setting ('off', 'readonly' or 'on').
    #[arg(long, default_value = "off", value_parser = ProxyMode::parse, help_heading = "Proxy")]
    pub proxy: ProxyMode,
    /// Time (in milliseconds) an endpoint will be held in a failed state.
    #[arg(long, default_value = "5000", value_parser = go_uint, help_heading = "Proxy")]
    pub proxy_failure_wait: u64,
    /// Time (in milliseconds) of the endpoints refresh interval.
    #[arg(long, default_value = "30000", value_parser = go_uint, help_heading = "Proxy")]
    pub proxy_refresh_interval: u64,
    /// Time (in milliseconds) for a dial to timeout.
    #[arg(long, default_value = "1000", value_parser = go_uint, help_heading = "Proxy")]
    pub proxy_dial_timeout: u64,
    /// Time (in milliseconds) for a write to timeout.
    #[arg(long, default_value = "5000", value_parser = go_uint, help_heading = "Proxy")]
    pub proxy_write_timeout: u64,
    /// Time (in milliseconds) for a read to timeout.
    #[arg(long, default_value = "0", value_parser = go_uint, help_heading = "Proxy")]
    pub proxy_read_timeout: u64,

    // ---- security ----
    /// DEPRECATED: Path to the client server TLS CA file.
    #[arg(long, default_value = "", help_heading = "Security")]
    pub ca_file: String,
    /// Path to the client server TLS cert file.
    #[arg(long, default_value = "", help_heading = "Security")]
    pub cert_file: String,
    /// Path to the client server TLS key file.
    #[arg(long, default_value = "", help_heading = "Security")]
    pub key_file: String,
    /// Enable client cert authentication.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Security")]
    pub client_cert_auth: bool,
    /// Path to the client server TLS trusted CA key file.
    #[arg(long, default_value = "", help_heading = "Security")]
    pub trusted_ca_file: String,
    /// DEPRECATED: Path to the peer server TLS CA file.
    #[arg(long, default_value = "", help_heading = "Security")]
    pub peer_ca_file: String,
    /// Path to the peer server TLS cert file.
    #[arg(long, default_value = "", help_heading = "Security")]
    pub peer_cert_file: String,
    /// Path to the peer server TLS key file.
    #[arg(long, default_value = "", help_heading = "Security")]
    pub peer_key_file: String,
    /// Enable peer client cert authentication.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Security")]
    pub peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, default_value = "", help_heading = "Security")]
    pub peer_trusted_ca_file: String,
    /// Client TLS using generated certificates (etcd 3; in <data-dir>/fixtures/client).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Security")]
    pub auto_tls: bool,
    /// Peer TLS using generated certificates (etcd 3; in <data-dir>/fixtures/peer).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Security")]
    pub peer_auto_tls: bool,
    /// Comma-separated list of supported TLS 1.2 cipher suites (Go names; etcd 3). TLS 1.3 suites are always enabled.
    #[arg(long, default_value = "", help_heading = "Security")]
    pub cipher_suites: String,

    // ---- logging ----
    /// Enable debug-level logging.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Logging")]
    pub debug: bool,
    /// Specify a particular log level for each package (eg: 'etcdmain=CRITICAL,etcdserver=DEBUG').
    #[arg(long, default_value = "", help_heading = "Logging")]
    pub log_package_levels: String,

    // ---- unsafe ----
    /// Force to create a new one member cluster.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Unsafe")]
    pub force_new_cluster: bool,

    // ---- version ----
    /// Print the version and exit.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Other")]
    pub version: bool,

    // ---- experimental ----
    /// Enable experimental v3 demo API.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Experimental")]
    pub experimental_v3demo: bool,
    /// gRPC address for experimental v3 demo API.
    #[arg(
        long = "experimental-gRPC-addr",
        default_value = "127.0.0.1:2378",
        help_heading = "Experimental"
    )]
    pub experimental_grpc_addr: String,
    /// Auto compaction retention in hour. 0 means disable auto compaction.
    #[arg(long, default_value = "0", value_parser = go_int, help_heading = "Experimental")]
    pub experimental_auto_compaction_retention: i64,

    // ---- backwards compatibility with etcd 0.4.6 ----
    /// DEPRECATED: Use -advertise-client-urls instead.
    #[arg(long, value_parser = ip_port, hide = true)]
    pub addr: Option<String>,
    /// DEPRECATED: Use -listen-client-urls instead.
    #[arg(long, value_parser = ip_port, hide = true)]
    pub bind_addr: Option<String>,
    /// DEPRECATED: Use -initial-advertise-peer-urls instead.
    #[arg(long, value_parser = ip_port, hide = true)]
    pub peer_addr: Option<String>,
    /// DEPRECATED: Use -listen-peer-urls instead.
    #[arg(long, value_parser = ip_port, hide = true)]
    pub peer_bind_addr: Option<String>,
    /// DEPRECATED: Use -initial-cluster instead.
    #[arg(long, value_parser = no_longer_supported("peers"), hide = true)]
    pub peers: Option<String>,
    /// DEPRECATED: Use -initial-cluster instead.
    #[arg(long, value_parser = no_longer_supported("peers-file"), hide = true)]
    pub peers_file: Option<String>,

    // ---- profiling ----
    /// Enable runtime profiling data via HTTP server. Address is at client URL + "/debug/pprof"
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "Profiling")]
    pub enable_pprof: bool,

    // ---- tern ----
    /// Number of executor threads (env TERN_SHARDS) [default: number of online CPUs].
    #[arg(long, value_parser = positive_uint, help_heading = "tern")]
    pub shards: Option<u64>,
    /// Number of events kept for waitIndex (env TERN_WATCH_HISTORY).
    #[arg(long, default_value = "1000", value_parser = positive_uint, help_heading = "tern")]
    pub watch_history: u64,
    /// Largest client request body accepted, in bytes (env TERN_MAX_REQUEST_BYTES).
    #[arg(long, default_value = "1572864", value_parser = positive_uint, help_heading = "tern")]
    pub max_request_bytes: u64,
    /// Pin shard i to CPU i (env TERN_PIN_SHARDS): for machines whose cores tern has to itself.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "tern")]
    pub pin_shards: bool,
    /// Serve a discovery service: `GET /new?size=N` answers a token URL for `--discovery` (env TERN_DISCOVERY_SERVICE).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool, help_heading = "tern")]
    pub discovery_service: bool,
    /// Seconds until a discovery token made by /new expires with everything under it (env TERN_DISCOVERY_SERVICE_TTL).
    #[arg(long, default_value = "604800", value_parser = discovery_service_ttl, help_heading = "tern")]
    pub discovery_service_ttl: u64,
}

pub(super) const DEFAULT_INITIAL_CLUSTER: &str =
    "default=http://localhost:2380,default=http://localhost:7001";

impl Flags {
    /// Each flag's final value in a comparable form, in declaration order
    /// (the deprecated flags, whose effect lands in the URL flags, are left out).
    pub fn values(&self) -> Vec<(&'static str, String)> {
        macro_rules! list {
            ($($name:literal => $field:ident),* $(,)?) => {
                vec![$(($name, format!("{:?}", self.$field))),*]
            };
        }
        list![
            "name" => name, "data-dir" => data_dir, "wal-dir" => wal_dir,
            "snapshot-count" => snapshot_count, "heartbeat-interval" => heartbeat_interval,
            "election-timeout" => election_timeout, "listen-peer-urls" => listen_peer_urls,
            "listen-client-urls" => listen_client_urls, "max-snapshots" => max_snapshots,
            "max-wals" => max_wals, "cors" => cors,
            "initial-advertise-peer-urls" => initial_advertise_peer_urls,
            "initial-cluster" => initial_cluster, "initial-cluster-state" => initial_cluster_state,
            "initial-cluster-token" => initial_cluster_token,
            "advertise-client-urls" => advertise_client_urls, "discovery" => discovery,
            "discovery-fallback" => discovery_fallback, "discovery-proxy" => discovery_proxy,
            "discovery-srv" => discovery_srv, "strict-reconfig-check" => strict_reconfig_check,
            "proxy" => proxy, "proxy-failure-wait" => proxy_failure_wait,
            "proxy-refresh-interval" => proxy_refresh_interval,
            "proxy-dial-timeout" => proxy_dial_timeout, "proxy-write-timeout" => proxy_write_timeout,
            "proxy-read-timeout" => proxy_read_timeout,
            "ca-file" => ca_file, "cert-file" => cert_file, "key-file" => key_file,
            "client-cert-auth" => client_cert_auth, "trusted-ca-file" => trusted_ca_file,
            "peer-ca-file" => peer_ca_file, "peer-cert-file" => peer_cert_file,
            "peer-key-file" => peer_key_file, "peer-client-cert-auth" => peer_client_cert_auth,
            "peer-trusted-ca-file" => peer_trusted_ca_file,
            "auto-tls" => auto_tls, "peer-auto-tls" => peer_auto_tls,
            "cipher-suites" => cipher_suites,
            "debug" => debug, "log-package-levels" => log_package_levels,
            "force-new-cluster" => force_new_cluster, "version" => version,
            "experimental-v3demo" => experimental_v3demo,
            "experimental-gRPC-addr" => experimental_grpc_addr,
            "experimental-auto-compaction-retention" => experimental_auto_compaction_retention,
            "addr" => addr, "bind-addr" => bind_addr, "peer-addr" => peer_addr,
            "peer-bind-addr" => peer_bind_addr,
            "enable-pprof" => enable_pprof,
            "shards" => shards, "watch-history" => watch_history,
            "max-request-bytes" => max_request_bytes, "pin-shards" => pin_shards,
            "discovery-service" => discovery_service,
            "discovery-service-ttl" => discovery_service_ttl,
        ]
    }
}

/// Go's `strconv.ParseBool`, which the flag package uses for boolean flags.
pub(super) fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("parse error".into()),
    }
}

/// Digits in Go's base-0 syntax (`0x`, `0o`, `0b` prefixes, leading `0` for octal).
fn go_digits(s: &str) -> Result<u64, String> {
    let (digits, radix) = match s.get(..2) {
        Some("0x" | "0X") => (&s[2..], 16),
        Some("0o" | "0O") => (&s[2..], 8),
        Some("0b" | "0B") => (&s[2..], 2),
        _ if s.len() > 1 && s.starts_with('0') => (&s[1..], 8),
        _ => (s, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err("parse error".into());
    }
    u64::from_str_radix(digits, radix).map_err(|_| "value out of range".into())
}

/// Go's `flag.UintVar`/`Uint64Var` value syntax.
pub(super) fn go_uint(s: &str) -> Result<u64, String> {
    go_digits(s)
}

/// Go's `flag.IntVar` value syntax (an optional sign, then base-0 digits).
pub(super) fn go_int(s: &str) -> Result<i64, String> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = go_digits(rest)?;
    let limit = if neg { 1u64 << 63 } else { i64::MAX as u64 };
    if v > limit {
        return Err("value out of range".into());
    }
    Ok(if neg {
        (v as i64).wrapping_neg()
    } else {
        v as i64
    })
}

/// tern's counts: a Go uint that must be at least 1.
pub(super) fn positive_uint(s: &str) -> Result<u64, String> {
    match go_uint(s)? {
        0 => Err("must be at least 1".into()),
        v => Ok(v),
    }
}

/// The longest `--discovery-service-ttl`, in seconds (ten years): far beyond any bootstrap,
/// and far from where seconds overflow etcd's nanosecond expirations.
pub(super) const MAX_DISCOVERY_SERVICE_TTL: u64 = 10 * 365 * 24 * 3600;

/// `--discovery-service-ttl`: whole seconds, at least 1, at most ten years.
pub(super) fn discovery_service_ttl(s: &str) -> Result<u64, String> {
    match go_uint(s)? {
        v @ 1..=MAX_DISCOVERY_SERVICE_TTL => Ok(v),
        _ => Err(format!(
            "must be from 1 to {MAX_DISCOVERY_SERVICE_TTL} seconds"
        )),
    }
}

pub(super) fn urls(s: &str) -> Result<Urls, String> {
    parse_url_list(s).map(Urls)
}

/// A URL list to bind: every host must be an IP or `localhost`.
pub(super) fn listen_urls(s: &str) -> Result<Urls, String> {
    let list = parse_url_list(s)?;
    list.iter().try_for_each(Url::check_bindable)?;
    Ok(Urls(list))
}

/// etcd's `cors.CORSInfo.Set`: comma-separated origins, spaces trimmed, empty entries dropped.
pub(super) fn cors(s: &str) -> Result<Cors, String> {
    let mut origins: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = origins
        .iter()
        .find(|o| o.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(format!("Invalid CORS origin: {bad:?}"));
    }
    origins.sort();
    origins.dedup();
    Ok(Cors(origins))
}

/// etcd's `flags.IPAddressPort`: `ip:port` with an IP literal; kept as Go's `JoinHostPort` prints it.
pub(super) fn ip_port(s: &str) -> Result<String, String> {
    let s = s.trim();
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => rest
            .split_once("]:")
            .ok_or_else(|| format!("address {s}: missing port in address"))?,
        None => s
            .rsplit_once(':')
            .ok_or_else(|| format!("address {s}: missing port in address"))?,
    };
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| "bad IP in address specification".to_string())?;
    let port: u16 = port
        .parse()
        .map_err(|_| "bad port in address specification".to_string())?;
    Ok(std::net::SocketAddr::new(ip, port).to_string())
}

/// etcd's `flags.DeprecatedFlag`: setting it at all is an error.
fn no_longer_supported(
    name: &'static str,
) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync + 'static {
    move |_| Err(format!("flag \"-{name}\" is no longer supported."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_uint_syntax() {
        let cases: [(&str, Result<u64, String>); 8] = [
            ("100", Ok(100)),
            ("0", Ok(0)),
            ("0x10", Ok(16)),
            ("010", Ok(8)),
            ("abc", Err("parse error".into())),
            ("-1", Err("parse error".into())),
            ("", Err("parse error".into())),
            ("99999999999999999999", Err("value out of range".into())),
        ];
        for (input, want) in cases {
            assert_eq!(go_uint(input), want, "{input}");
        }
    }

    #[test]
    fn go_int_syntax() {
        let cases: [(&str, Result<i64, String>); 4] = [
            ("-3", Ok(-3)),
            ("+4", Ok(4)),
            ("-0x10", Ok(-16)),
            ("x", Err("parse error".into())),
        ];
        for (input, want) in cases {
            assert_eq!(go_int(input), want, "{input}");
        }
    }

    #[test]
    fn go_bool_syntax() {
        for (input, want) in [
            ("1", Ok(true)),
            ("T", Ok(true)),
            ("False", Ok(false)),
            ("yes", Err("parse error".to_string())),
        ] {
            assert_eq!(go_bool(input), want, "{input}");
        }
    }

    #[test]
    fn ip_port_syntax() {
        let cases = [
            ("127.0.0.1:4001", Ok("127.0.0.1:4001".to_string())),
            ("[::1]:4001", Ok("[::1]:4001".to_string())),
            (
                "localhost:4001",
                Err("bad IP in address specification".to_string()),
            ),
            (
                "1.2.3.4:x",
                Err("bad port in address specification".to_string()),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ip_port(input), want, "{input}");
        }
    }

    #[test]
    fn discovery_service_ttl_syntax() {
        let range = Err("must be from 1 to 315360000 seconds".to_string());
        let cases = [
            ("604800", Ok(604_800)),
            ("1", Ok(1)),
            ("315360000", Ok(315_360_000)),
            ("0", range.clone()),
            ("315360001", range),
            ("7d", Err("parse error".to_string())),
        ];
        for (input, want) in cases {
            assert_eq!(discovery_service_ttl(input), want, "{input}");
        }
    }

    #[test]
    fn cors_is_a_set() {
        assert_eq!(
            cors(" b ,a,,b").unwrap(),
            Cors(vec!["a".into(), "b".into()])
        );
    }
}
