//! Parse tests: each table row is one argv (plus environment) and one expectation.

use super::*;

type Args = &'static [&'static str];
type Env = &'static [(&'static str, &'static str)];

fn parse_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    parse_from(std::iter::once("tern").chain(args.iter().copied()), &lookup)
}

fn parse_args(args: &[&str]) -> Result<Config, ConfigError> {
    parse_env(args, &[])
}

fn ok(args: &[&str], env: &[(&str, &str)]) -> Config {
    parse_env(args, env).unwrap_or_else(|e| panic!("{args:?} {env:?}: {e}"))
}

fn join<U: ToString>(urls: &[U]) -> String {
    urls.iter().map(U::to_string).collect::<Vec<_>>().join(",")
}

#[test]
fn name_forms() {
    let table: &[(&[&str], &str)] = &[
        (&["-name=x"], "x"),
        (&["--name=x"], "x"),
        (&["--name", "x"], "x"),
        (&["-name", "x"], "x"),
        (&["-name=a=b"], "a=b"),
        (&["-name="], ""),
        (&["-name", "a", "--name=b"], "b"),
        (&["-name", "-debug"], "-debug"),
    ];
    for (args, want) in table {
        assert_eq!(ok(args, &[]).name, *want, "{args:?}");
    }
}

#[test]
fn bool_forms() {
    let table: &[(&[&str], bool)] = &[
        (&[], false),
        (&["-debug"], true),
        (&["--debug"], true),
        (&["-debug=true"], true),
        (&["-debug=false"], false),
        (&["--debug=1"], true),
        (&["-debug=F"], false),
        (&["-debug", "-debug=false"], false),
        (&["-debug=false", "-debug"], true),
    ];
    for (args, want) in table {
        assert_eq!(ok(args, &[]).debug, *want, "{args:?}");
    }
}

#[test]
fn environment() {
    type Check = fn(&Config) -> String;
    let table: &[(Args, Env, Check, &str)] = &[
        (&[], &[("ETCD_NAME", "e")], |c| c.name.clone(), "e"),
        (&["-name=f"], &[("ETCD_NAME", "e")], |c| c.name.clone(), "f"),
        (&[], &[("ETCD_NAME", "")], |c| c.name.clone(), "default"),
        (
            &[],
            &[("ETCD_DEBUG", "true")],
            |c| c.debug.to_string(),
            "true",
        ),
        (
            &["-debug=false"],
            &[("ETCD_DEBUG", "true")],
            |c| c.debug.to_string(),
            "false",
        ),
        (
            &[],
            &[("ETCD_INITIAL_CLUSTER_TOKEN", "t1")],
            |c| c.initial_cluster_token.clone(),
            "t1",
        ),
        (
            &[],
            &[("ETCD_HEARTBEAT_INTERVAL", "50")],
            |c| format!("{:?}", c.heartbeat_interval),
            "50ms",
        ),
        (
            &[],
            &[("ETCD_EXPERIMENTAL_GRPC_ADDR", "1.2.3.4:1")],
            |c| c.experimental_grpc_addr.clone(),
            "1.2.3.4:1",
        ),
        (&[], &[("TERN_SHARDS", "3")], |c| c.shards.to_string(), "3"),
        (
            &[],
            &[("TERN_PIN_SHARDS", "true")],
            |c| c.pin_shards.to_string(),
            "true",
        ),
        (&["--pin-shards"], &[], |c| c.pin_shards.to_string(), "true"),
        (
            &[],
            &[("ETCD_SHARDS", "3"), ("TERN_WATCH_HISTORY", "5000")],
            |c| c.watch_history.to_string(),
            "5000",
        ),
        (
            &[],
            &[("TERN_MAX_REQUEST_BYTES", "10")],
            |c| c.max_request_bytes.to_string(),
            "10",
        ),
        (
            &[],
            &[("TERN_DISCOVERY_SERVICE", "true")],
            |c| c.discovery_service.to_string(),
            "true",
        ),
        (
            &[],
            &[("ETCD_DISCOVERY_SERVICE", "true")],
            |c| c.discovery_service.to_string(),
            "false",
        ),
        (
            &["--discovery-service"],
            &[("TERN_DISCOVERY_SERVICE_TTL", "60")],
            |c| format!("{} {:?}", c.discovery_service, c.discovery_service_ttl),
            "true 60s",
        ),
        (
            &[],
            &[("ETCD_VERSION", "2.3.7")],
            |c| c.name.clone(),
            "default",
        ),
        (&[], &[("ETCD_CORS", "*")], |c| c.cors.join(","), "*"),
        (
            &[],
            &[
                ("ETCD_LISTEN_CLIENT_URLS", "http://10.0.0.1:2379"),
                ("ETCD_ADVERTISE_CLIENT_URLS", "http://h:2379"),
            ],
            |c| join(&c.listen_client_urls) + " " + &join(&c.advertise_client_urls),
            "http://10.0.0.1:2379 http://h:2379",
        ),
    ];
    for (args, env, check, want) in table {
        assert_eq!(check(&ok(args, env)), *want, "{args:?} {env:?}");
    }
}

#[test]
fn defaults() {
    type Check = fn(&Config) -> String;
    let c = Config::default();
    let table: &[(Check, &str)] = &[
        (|c| c.name.clone(), "default"),
        (|c| c.data_dir.display().to_string(), "default.etcd"),
        (|c| format!("{:?}", c.wal_dir), "None"),
        (
            |c| join(&c.listen_client_urls),
            "http://localhost:2379,http://localhost:4001",
        ),
        (
            |c| join(&c.advertise_client_urls),
            "http://localhost:2379,http://localhost:4001",
        ),
        (
            |c| join(&c.listen_peer_urls),
            "http://localhost:2380,http://localhost:7001",
        ),
        (
            |c| join(&c.initial_advertise_peer_urls),
            "http://localhost:2380,http://localhost:7001",
        ),
        (
            |c| c.initial_cluster.to_string(),
            "default=http://localhost:2380,default=http://localhost:7001",
        ),
        (|c| c.initial_cluster_token.clone(), "etcd-cluster"),
        (|c| c.initial_cluster_state.to_string(), "new"),
        (|c| c.snapshot_count.to_string(), "10000"),
        (|c| format!("{:?}", c.heartbeat_interval), "100ms"),
        (|c| format!("{:?}", c.election_timeout), "1s"),
        (|c| c.election_ticks().to_string(), "10"),
        (|c| c.max_snapshots.to_string(), "5"),
        (|c| c.max_wals.to_string(), "5"),
        (|c| format!("{:?}", c.cors), "[]"),
        (
            |c| format!("{:?}", (&c.discovery, &c.discovery_proxy, &c.discovery_srv)),
            "(None, None, None)",
        ),
        (|c| c.discovery_fallback.to_string(), "proxy"),
        (|c| c.strict_reconfig_check.to_string(), "false"),
        (|c| c.proxy.to_string(), "off"),
        (|c| format!("{:?}", c.proxy_failure_wait), "5s"),
        (|c| format!("{:?}", c.proxy_refresh_interval), "30s"),
        (|c| format!("{:?}", c.proxy_dial_timeout), "1s"),
        (|c| format!("{:?}", c.proxy_write_timeout), "5s"),
        (|c| format!("{:?}", c.proxy_read_timeout), "0ns"),
        (
            |c| {
                format!(
                    "{:?}",
                    (
                        c.client_tls == TlsInfo::default(),
                        c.peer_tls == TlsInfo::default()
                    )
                )
            },
            "(true, true)",
        ),
        (
            |c| format!("{:?}", (c.debug, &c.log_package_levels)),
            "(false, None)",
        ),
        (
            |c| format!("{:?}", (c.force_new_cluster, c.enable_pprof)),
            "(false, false)",
        ),
        (
            |c| {
                format!(
                    "{:?}",
                    (
                        c.experimental_v3demo,
                        c.experimental_auto_compaction_retention
                    )
                )
            },
            "(false, 0)",
        ),
        (|c| c.experimental_grpc_addr.clone(), "127.0.0.1:2378"),
        (|c| (c.shards >= 1).to_string(), "true"),
        (|c| c.watch_history.to_string(), "1000"),
        (|c| c.max_request_bytes.to_string(), "1572864"),
        (
            |c| format!("{} {:?}", c.discovery_service, c.discovery_service_ttl),
            "false 604800s",
        ),
        (|c| format!("{:?}", c.warnings), "[]"),
        (
            |c| format!("{:?}", c.listen_client_addrs()),
            "[127.0.0.1:2379, 127.0.0.1:4001]",
        ),
        (
            |c| format!("{:?}", c.listen_peer_addrs()),
            "[127.0.0.1:2380, 127.0.0.1:7001]",
        ),
        (
            |c| c.wal_dir_path().display().to_string(),
            "default.etcd/member/wal",
        ),
        (|c| format!("{:?}", c.request_timeout()), "7s"),
    ];
    for (i, (check, want)) in table.iter().enumerate() {
        assert_eq!(check(&c), *want, "row {i}");
    }
}

#[test]
fn values() {
    type Check = fn(&Config) -> String;
    let table: &[(&[&str], Check, &str)] = &[
        (&["-name=infra0"], |c| c.data_dir.display().to_string(), "infra0.etcd"),
        (&["-name=infra0", "-data-dir=/d"], |c| c.data_dir.display().to_string(), "/d"),
        (&["-wal-dir=/w"], |c| c.wal_dir_path().display().to_string(), "/w"),
        (&["-snapshot-count=0x10"], |c| c.snapshot_count.to_string(), "16"),
        (&["-proxy=readonly"], |c| format!("{:?}", c.proxy), "Readonly"),
        (&["-initial-cluster-state", "existing"], |c| c.is_new_cluster().to_string(), "false"),
        (&["-discovery-fallback=exit"], |c| format!("{:?}", c.discovery_fallback), "Exit"),
        (&["-cors", "http://b, http://a,*"], |c| c.cors.join("|"), "*|http://a|http://b"),
        (&["-proxy-read-timeout=7"], |c| format!("{:?}", c.proxy_read_timeout), "7ms"),
        (&["-log-package-levels=etcdserver=DEBUG"], |c| format!("{:?}", c.log_package_levels), "Some(\"etcdserver=DEBUG\")"),
        (&["-experimental-auto-compaction-retention=-2"], |c| c.experimental_auto_compaction_retention.to_string(), "-2"),
        (&["-cert-file=c.pem", "-ca-file=ca.pem"], |c| format!("{}", c.client_tls.is_empty()), "false"),
        (&["-peer-client-cert-auth"], |c| format!("{}", c.peer_tls.client_cert_auth), "true"),
        (&["-cipher-suites= A, B,,"], |c| c.cipher_suites.join("|"), "A|B"),
        (&["-auto-tls", "-listen-client-urls=https://127.0.0.1:2379", "-advertise-client-urls=https://a:1"], |c| format!("{}", c.auto_tls), "true"),
        (
            &["-listen-client-urls=http://127.0.0.1:4001,http://[::1]:2379", "-advertise-client-urls=http://a:1"],
            |c| format!("{:?}", c.listen_client_addrs()),
            "[127.0.0.1:4001, [::1]:2379]",
        ),
        (
            &["-listen-peer-urls= http://10.0.0.1:2380"],
            |c| format!("{:?}", c.listen_peer_addrs()),
            "[10.0.0.1:2380]",
        ),
        (&["-advertise-client-urls=https://example.com:2379"], |c| join(&c.advertise_client_urls), "https://example.com:2379"),
        (&["-listen-client-urls=http://0.0.0.0:2379", "-proxy=on"], |c| join(&c.advertise_client_urls), "http://localhost:2379,http://localhost:4001"),
        (&["-v", "-snapshot=x", "-name=n"], |c| c.warnings.join("|"), "flag \"-v\" is no longer supported - ignoring.|flag \"-snapshot\" is no longer supported - ignoring."),
        (&["-addr=127.0.0.1:4001"], |c| join(&c.advertise_client_urls) + " " + &join(&c.listen_client_urls), "http://127.0.0.1:4001 http://[::]:4001"),
        (&["-peer-addr=10.0.0.1:7001", "-peer-cert-file=c", "-peer-key-file=k"], |c| join(&c.initial_advertise_peer_urls) + " " + &join(&c.listen_peer_urls), "https://10.0.0.1:7001 https://[::]:7001"),
    ];
    for (args, check, want) in table {
        assert_eq!(check(&ok(args, &[])), *want, "{args:?}");
    }
}

#[test]
fn initial_cluster() {
    let table: &[(&[&str], &str)] = &[
        (
            &["-name=infra0"],
            "infra0=http://localhost:2380,infra0=http://localhost:7001",
        ),
        (
            &[
                "-name=infra0",
                "-initial-advertise-peer-urls=http://10.0.1.10:2380",
            ],
            "infra0=http://10.0.1.10:2380",
        ),
        (
            &[
                "-name=infra0",
                "-initial-cluster=infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380",
            ],
            "infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380",
        ),
        (
            &[
                "-name=x",
                "-initial-cluster=default=http://localhost:2380,default=http://localhost:7001",
            ],
            "x=http://localhost:2380,x=http://localhost:7001",
        ),
        (&["-discovery=https://discovery.etcd.io/abc"], ""),
        (&["-discovery-srv=example.com"], ""),
    ];
    for (args, want) in table {
        assert_eq!(ok(args, &[]).initial_cluster.to_string(), *want, "{args:?}");
    }
}

#[test]
fn errors() {
    let table: &[(Args, Env, &str)] = &[
        (&["-foo"], &[], "flag provided but not defined: -foo"),
        (
            &["-listen-client-urls=https://127.0.0.1:2379", "-advertise-client-urls=https://127.0.0.1:2379"],
            &[],
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme",
        ),
        (
            &["-listen-peer-urls=http://127.0.0.1:2380,https://127.0.0.1:7001"],
            &[],
            "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url https://127.0.0.1:7001 with HTTPS scheme",
        ),
        (&["--foo=1"], &[], "flag provided but not defined: -foo"),
        (&["-heartbeat-interval=abc"], &[], "invalid value \"abc\" for flag -heartbeat-interval: parse error"),
        (&["--snapshot-count", "-1"], &[], "invalid value \"-1\" for flag -snapshot-count: parse error"),
        (&["-max-wals=99999999999999999999"], &[], "invalid value \"99999999999999999999\" for flag -max-wals: value out of range"),
        (&["-debug=maybe"], &[], "invalid boolean value \"maybe\" for -debug: parse error"),
        (&["-debug="], &[], "invalid boolean value \"\" for -debug: parse error"),
        (&["-debug", "false"], &[], "'false' is not a valid flag"),
        (&["foo"], &[], "'foo' is not a valid flag"),
        (&["-name=x", "--", "foo"], &[], "'foo' is not a valid flag"),
        (&["-"], &[], "'-' is not a valid flag"),
        (&["--name"], &[], "flag needs an argument: -name"),
        (&["---name=x"], &[], "bad flag syntax: ---name=x"),
        (&["-=x"], &[], "bad flag syntax: -=x"),
        (&["-heartbeat-interval=abc", "-foo"], &[], "invalid value \"abc\" for flag -heartbeat-interval: parse error"),
        (&["-foo", "-heartbeat-interval=abc"], &[], "flag provided but not defined: -foo"),
        (
            &["-listen-client-urls", "http://example.com:2379"],
            &[],
            "invalid value \"http://example.com:2379\" for flag -listen-client-urls: expected IP in URL for binding (http://example.com:2379)",
        ),
        (
            &["-listen-peer-urls=http://example.com:2380"],
            &[],
            "invalid value \"http://example.com:2380\" for flag -listen-peer-urls: expected IP in URL for binding (http://example.com:2380)",
        ),
        (
            &["-advertise-client-urls=10.0.0.1:2379"],
            &[],
            "invalid value \"10.0.0.1:2379\" for flag -advertise-client-urls: URL scheme must be http or https: 10.0.0.1:2379",
        ),
        (
            &["-initial-advertise-peer-urls=http://10.0.0.1:2380/x"],
            &[],
            "invalid value \"http://10.0.0.1:2380/x\" for flag -initial-advertise-peer-urls: URL must not contain a path: http://10.0.0.1:2380/x",
        ),
        (&["-proxy=maybe"], &[], "invalid value \"maybe\" for flag -proxy: valid values are off, readonly, on"),
        (&["-initial-cluster-state=old"], &[], "invalid value \"old\" for flag -initial-cluster-state: valid values are new, existing"),
        (&["-discovery-fallback=retry"], &[], "invalid value \"retry\" for flag -discovery-fallback: valid values are proxy, exit"),
        (&["-initial-cluster=infra0"], &[], "invalid value \"infra0\" for flag -initial-cluster: expected name=url, got \"infra0\""),
        (
            &["-initial-cluster=a=http://h"],
            &[],
            "invalid value \"a=http://h\" for flag -initial-cluster: URL address does not have the form \"host:port\": http://h",
        ),
        (&[], &[("ETCD_HEARTBEAT_INTERVAL", "abc")], "invalid value \"abc\" for ETCD_HEARTBEAT_INTERVAL: parse error"),
        (&[], &[("ETCD_PROXY", "yes")], "invalid value \"yes\" for ETCD_PROXY: valid values are off, readonly, on"),
        (&[], &[("TERN_SHARDS", "x")], "invalid value \"x\" for TERN_SHARDS: parse error"),
        (&["-shards=0"], &[], "invalid value \"0\" for flag -shards: must be at least 1"),
        (&["-discovery-service=maybe"], &[], "invalid boolean value \"maybe\" for -discovery-service: parse error"),
        (&["-discovery-service-ttl=0"], &[], "invalid value \"0\" for flag -discovery-service-ttl: must be from 1 to 315360000 seconds"),
        (&[], &[("TERN_DISCOVERY_SERVICE_TTL", "1w")], "invalid value \"1w\" for TERN_DISCOVERY_SERVICE_TTL: parse error"),
        (&["-heartbeat-interval=300"], &[], "-election-timeout[1000ms] should be at least as 5 times as -heartbeat-interval[300ms]"),
        (&["-heartbeat-interval=0"], &[], "-heartbeat-interval[0ms] must be greater than 0"),
        (
            &["-election-timeout=60000", "-heartbeat-interval=1000"],
            &[],
            "-election-timeout[60000ms] is too long, and should be set less than 50000ms",
        ),
        (&["-discovery=http://d:1/x", "-initial-cluster=a=http://1.1.1.1:1"], &[], ERR_CONFLICT_BOOTSTRAP),
        (&["-initial-cluster=a=http://1.1.1.1:1"], &[("ETCD_DISCOVERY_SRV", "example.com")], ERR_CONFLICT_BOOTSTRAP),
        (
            &["-listen-client-urls=http://0.0.0.0:2379"],
            &[],
            "-advertise-client-urls is required when -listen-client-urls is set explicitly",
        ),
        (&["-peers=x"], &[], "invalid value \"x\" for flag -peers: flag \"-peers\" is no longer supported."),
        (
            &["-addr=127.0.0.1:4001", "-advertise-client-urls=http://1.1.1.1:1"],
            &[],
            "Set only one of flags -advertise-client-urls and -addr",
        ),
        (&["-addr=localhost:4001"], &[], "invalid value \"localhost:4001\" for flag -addr: bad IP in address specification"),
    ];
    for (args, env, want) in table {
        assert_eq!(
            parse_env(args, env).err(),
            Some(invalid(*want)),
            "{args:?} {env:?}"
        );
    }
}

#[test]
fn help_and_version() {
    let table: &[(&[&str], Option<&str>)] = &[
        (&["-h"], Some("help")),
        (&["--help"], Some("help")),
        (&["-help"], Some("help")),
        (&["-name=x", "--h"], Some("help")),
        (&["--version"], Some("version")),
        (&["-version"], Some("version")),
        (&["-version=true", "-name=x"], Some("version")),
        (&["-version=false"], None),
    ];
    for (args, want) in table {
        let got = match parse_args(args) {
            Ok(_) => None,
            Err(ConfigError::Help(t)) if t.contains("--initial-cluster-token") => Some("help"),
            Err(ConfigError::Version(t)) if t == version_text() => Some("version"),
            Err(e) => panic!("{args:?}: {e:?}"),
        };
        assert_eq!(got, *want, "{args:?}");
    }
}

#[test]
fn version_text_lines() {
    let text = version_text();
    let want = format!(
        "tern Version: {}\netcd API Version: 2.3.7-compatible\nGit SHA: ",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.starts_with(&want), "{text}");
}

#[test]
fn exit_codes() {
    let got: Vec<i32> = [
        parse_args(&["--help"]),
        parse_args(&["--version"]),
        parse_args(&["-x"]),
    ]
    .into_iter()
    .map(|r| r.err().unwrap().exit_code())
    .collect();
    assert_eq!(got, [0, 0, 1]);
}

#[test]
fn explicitly_set() {
    let table: &[(Args, Env, &str, bool)] = &[
        (&[], &[], "initial-cluster", false),
        (
            &["-initial-cluster=default=http://localhost:2380"],
            &[],
            "initial-cluster",
            true,
        ),
        (
            &["-initial-cluster=default=http://localhost:2380"],
            &[],
            "--initial-cluster",
            true,
        ),
        (
            &[],
            &[("ETCD_INITIAL_CLUSTER_STATE", "existing")],
            "initial-cluster-state",
            true,
        ),
        (
            &[],
            &[("ETCD_INITIAL_CLUSTER_STATE", "")],
            "initial-cluster-state",
            false,
        ),
        (&["-name=default"], &[], "name", true),
    ];
    for (args, env, flag, want) in table {
        assert_eq!(
            ok(args, env).explicitly_set(flag),
            *want,
            "{args:?} {env:?} {flag}"
        );
    }
}

#[test]
fn sources() {
    let c = ok(&["-name=a"], &[("ETCD_DEBUG", "1")]);
    let got = (
        c.source("name").cloned(),
        c.source("debug").cloned(),
        c.source("proxy").cloned(),
    );
    assert_eq!(
        got,
        (
            Some(Source::CommandLine),
            Some(Source::Env("ETCD_DEBUG".into())),
            None
        )
    );
}

#[test]
fn check_supported() {
    let table: &[(Args, Env, Result<(), &str>)] = &[
        (&[], &[], Ok(())),
        (&["--proxy", "on"], &[], Ok(())),
        (&["--proxy=off"], &[], Ok(())),
        (&[], &[("ETCD_PROXY", "readonly")], Ok(())),
        (
            &["-cert-file=c", "-proxy=on", "-proxy-failure-wait=100"],
            &[],
            Ok(()),
        ),
        (&["-cert-file=c"], &[], Ok(())),
        (&["-peer-auto-tls", "-cipher-suites=X"], &[], Ok(())),
        (&["-discovery=http://d:1/t"], &[], Ok(())),
        (
            &["-discovery=http://d:1/t", "-discovery-proxy=http://p:3128"],
            &[],
            Ok(()),
        ),
        (&["-force-new-cluster"], &[], Ok(())),
        (&["-strict-reconfig-check"], &[], Ok(())),
        (&["-discovery-srv=example.com"], &[], Ok(())),
        (
            &["-discovery-service", "-discovery-service-ttl=60"],
            &[],
            Ok(()),
        ),
        (&["-enable-pprof=false"], &[], Ok(())),
        (&["-proxy-read-timeout=0"], &[], Ok(())),
        (
            &["-addr=127.0.0.1:4001"],
            &[],
            Err("flag --addr is not supported yet"),
        ),
        (&["-v"], &[], Ok(())),
        (
            &[
                "-name=infra0",
                "-data-dir=/tmp/d",
                "-wal-dir=/tmp/w",
                "-listen-client-urls=http://127.0.0.1:2379",
                "-advertise-client-urls=http://127.0.0.1:2379",
                "-listen-peer-urls=http://127.0.0.1:2380",
                "-initial-advertise-peer-urls=http://127.0.0.1:2380",
                "-initial-cluster=infra0=http://127.0.0.1:2380",
                "-initial-cluster-token=t",
                "-initial-cluster-state=existing",
                "-cors=*",
                "-debug",
                "-log-package-levels=etcdserver=DEBUG",
                "-heartbeat-interval=50",
                "-election-timeout=500",
                "-snapshot-count=5",
                "-max-snapshots=0",
                "-max-wals=0",
                "-shards=2",
                "-watch-history=10",
                "-max-request-bytes=100",
            ],
            &[],
            Ok(()),
        ),
    ];
    for (args, env, want) in table {
        let got = ok(args, env).check_supported(SUPPORTED_NOW);
        assert_eq!(got, want.map_err(invalid), "{args:?} {env:?}");
    }
}

/// Every flag of etcd 2.3.7's etcdmain/config.go is known (ignored ones are handled before clap).
#[test]
fn every_etcd_flag_is_known() {
    let etcd = [
        "cors",
        "data-dir",
        "wal-dir",
        "listen-peer-urls",
        "listen-client-urls",
        "max-snapshots",
        "max-wals",
        "name",
        "snapshot-count",
        "heartbeat-interval",
        "election-timeout",
        "initial-advertise-peer-urls",
        "advertise-client-urls",
        "discovery",
        "discovery-fallback",
        "discovery-proxy",
        "discovery-srv",
        "initial-cluster",
        "initial-cluster-token",
        "initial-cluster-state",
        "strict-reconfig-check",
        "proxy",
        "proxy-failure-wait",
        "proxy-refresh-interval",
        "proxy-dial-timeout",
        "proxy-write-timeout",
        "proxy-read-timeout",
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
        "debug",
        "log-package-levels",
        "force-new-cluster",
        "version",
        "experimental-v3demo",
        "experimental-gRPC-addr",
        "experimental-auto-compaction-retention",
        "addr",
        "bind-addr",
        "peer-addr",
        "peer-bind-addr",
        "peers",
        "peers-file",
        "enable-pprof",
    ];
    let known = KnownFlags::new();
    let missing: Vec<&str> = etcd.into_iter().filter(|f| !known.is_known(f)).collect();
    assert_eq!(missing, Vec::<&str>::new());
}

/// `check_supported` sees every flag clap knows (but the always-failing deprecated ones).
#[test]
fn every_flag_is_compared_by_check_supported() {
    let listed: Vec<&str> = default_flags()
        .values()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let missing: Vec<String> = KnownFlags::new()
        .names
        .into_iter()
        .filter(|n| !listed.contains(&n.as_str()) && n != "peers" && n != "peers-file")
        .collect();
    assert_eq!(missing, Vec::<String>::new());
}

/// The server reads the config this way (src/server.rs); keep it compiling.
#[test]
fn server_usage() {
    let c = ok(
        &["-name=t1", "-initial-cluster=t1=http://127.0.0.1:2380"],
        &[],
    );
    let listen: Vec<SocketAddr> = c
        .listen_client_urls
        .iter()
        .map(|u| u.socket_addr())
        .collect();
    let mine: Vec<String> = c
        .initial_cluster
        .iter()
        .filter(|(name, _)| *name == c.name)
        .map(|(_, url)| url.to_string())
        .collect();
    let others = c.initial_cluster.iter().any(|(name, _)| *name != c.name);
    assert_eq!(
        format!("{listen:?} {mine:?} {others}"),
        "[127.0.0.1:2379, 127.0.0.1:4001] [\"http://127.0.0.1:2380\"] false"
    );
}
