//! `/metrics` speaks etcd's names: every family tern documents as etcd's
//! (`tern::metrics::ETCD_FAMILIES`) has, in tern's scrape, the name, type and label names that
//! Debian's etcd 3.4 exports for it. Skipped with a printed reason without etcd.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{start_etcd, start_tern};

/// Family name → (type, label names seen on its samples, `le` left out).
type Families = BTreeMap<String, (String, BTreeSet<String>)>;

fn families(text: &str) -> Families {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            out.entry(name.to_string()).or_default().0 = kind.to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, _) = line.split_once(' ').unwrap_or((line, ""));
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| out.contains_key(*f)))
                .unwrap_or(name);
            let entry = out.entry(family.to_string()).or_default();
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let label = pair.split('=').next().unwrap_or("");
                if label != "le" {
                    entry.1.insert(label.to_string());
                }
            }
        }
    }
    out
}

/// A PUT, a GET, a GET of a missing key (404), a quorum GET.
fn traffic(c: &mut common::Client) {
    assert_eq!(c.put("/v2/keys/m", &[("value", "1")]).status, 201);
    assert_eq!(c.get("/v2/keys/m").status, 200);
    assert_eq!(c.get("/v2/keys/missing").status, 404);
    assert_eq!(c.get("/v2/keys/m?quorum=true").status, 200);
    assert_eq!(c.get("/health").status, 200);
}

#[test]
fn etcd_families_have_etcds_names_types_and_labels() {
    let tern = start_tern(2, &[]);
    let mut c = tern.client();
    traffic(&mut c);
    let r = c.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let ours = families(&r.text());
    let all = || {
        tern::metrics::ETCD_FAMILIES
            .iter()
            .chain(tern::metrics::ETCD_HTTP_FAMILIES)
            .chain(tern::metrics::ETCD_STORE_FAMILIES)
    };
    for name in all() {
        assert!(ours.contains_key(*name), "tern does not export {name}");
    }
    let text = r.text();
    for line in [
        "etcd_http_received_total{method=\"PUT\"} 1",
        "etcd_http_received_total{method=\"GET\"} 2",
        "etcd_http_received_total{method=\"QGET\"} 1",
        "etcd_http_failed_total{code=\"404\",method=\"GET\"} 1",
        "etcd_http_successful_duration_seconds_count{method=\"GET\"} 1",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    // tern's own: per-shard load (the keys requests above, over both shards) and group
    // commit's batch sizes.
    let shard_requests: u64 = (0..2)
        .map(|i| {
            let prefix = format!("tern_shard_requests_total{{shard=\"{i}\"}} ");
            let line = text.lines().find(|l| l.starts_with(&prefix));
            let line = line.unwrap_or_else(|| panic!("{prefix} not in:\n{text}"));
            line[prefix.len()..].parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(shard_requests, 4, "{text}");
    assert_eq!(ours["tern_wal_sync_entries"].0, "histogram");
    assert!(
        text.contains("tern_shard_watchers{shard=\"1\"} 0"),
        "{text}"
    );
    assert_eq!(ours["etcd_server_has_leader"].0, "gauge");
    assert!(
        r.text().contains("etcd_server_has_leader 1"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("etcd_server_is_leader 1"));
    // start_tern waited on /health too.
    assert!(
        r.text().contains("etcd_server_health_success ")
            && !r.text().contains("etcd_server_health_success 0"),
        "{}",
        r.text()
    );

    let Some(etcd) = start_etcd(&[]) else {
        println!("etcd part skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    };
    let mut e = etcd.client();
    traffic(&mut e);
    let theirs = families(&e.get("/metrics").text());
    for name in all() {
        let Some(want) = theirs.get(*name) else {
            panic!("etcd 3.4 does not export {name}");
        };
        assert_eq!(
            &ours[*name], want,
            "{name}: tern's (type, labels) differ from etcd's"
        );
    }
}

/// The peer network families of a three-member cluster (tern's, or etcd's when `etcd`) after
/// [`traffic`], one malformed message batch sent to the leader by hand and one member killed:
/// (type, label names) of each of `tern::metrics::ETCD_NETWORK_FAMILIES` the leader exports
/// within `patience`, and the cluster's scrape text.
fn network_families(etcd: bool, patience: Duration) -> Option<(Families, String)> {
    let mut c = if etcd {
        Cluster::start_etcd(3, &[])?
    } else {
        Cluster::start(3, &[])
    };
    let leader = c.wait_leader(&[0, 1, 2], Duration::from_secs(30));
    let (sender, victim) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut client = c.client(leader);
    traffic(&mut client);
    // A batch that does not decode, from a member: a receive failure.
    let cluster_id = client
        .get("/v2/members")
        .header("x-etcd-cluster-id")
        .unwrap()
        .to_string();
    let from = c.member_id(sender);
    let mut peer = common::Client::connect(
        format!("{}:{}", c.nodes[leader].ip, c.nodes[leader].peer_port)
            .parse()
            .unwrap(),
    );
    let path = if etcd { "/raft" } else { "/raft/msgs" };
    let headers = [
        ("X-Etcd-Cluster-ID", cluster_id.as_str()),
        ("X-Server-From", from.as_str()),
        ("X-Server-Version", "3.4.23"),
    ];
    let r = peer
        .try_request("POST", path, &headers, b"garbage")
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    // A member gone: send failures and a disconnect.
    c.kill(victim);
    assert_eq!(client.put("/v2/keys/n", &[("value", "2")]).status, 201);
    let deadline = Instant::now() + patience;
    loop {
        let text = c.client(leader).get("/metrics").text();
        let all = families(&text);
        let found: Families = tern::metrics::ETCD_NETWORK_FAMILIES
            .iter()
            .filter_map(|n| all.get(*n).map(|f| (n.to_string(), f.clone())))
            .collect();
        if found.len() == tern::metrics::ETCD_NETWORK_FAMILIES.len() || Instant::now() > deadline {
            return Some((found, text));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn peer_network_families_have_etcds_names_types_and_labels() {
    let (ours, text) = network_families(false, Duration::from_secs(10)).unwrap();
    for name in tern::metrics::ETCD_NETWORK_FAMILIES {
        assert!(
            ours.contains_key(*name),
            "tern does not export {name}:\n{text}"
        );
    }
    // etcd 3.4 observes round trips every 30 s: wait for them.
    let Some((theirs, text)) = network_families(true, Duration::from_secs(45)) else {
        println!("etcd part skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    };
    for name in tern::metrics::ETCD_NETWORK_FAMILIES {
        let Some(want) = theirs.get(*name) else {
            panic!("etcd 3.4 does not export {name}:\n{text}");
        };
        assert_eq!(
            &ours[*name], want,
            "{name}: tern's (type, labels) differ from etcd's"
        );
    }
}

/// Every metric name in `text` (etcd's, the process', tern's own).
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["etcd_", "os_fd_", "process_", "tern_"]
            .iter()
            .any(|p| text[i..].starts_with(p))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let end = text[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| i + n);
            out.insert(text[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn the_dashboard_and_alerts_query_only_what_tern_exports() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let alerts = std::fs::read_to_string(root.join("prometheus/tern-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(root.join("grafana/tern-dashboard.json")).unwrap();
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    // A cluster with traffic and a failed member exports every family (a single member has
    // no peer traffic to show).
    let (_, text) = network_families(false, Duration::from_secs(10)).unwrap();
    let ours = families(&text);
    let used: BTreeSet<String> = names_in(&alerts)
        .into_iter()
        .chain(names_in(&dashboard))
        .collect();
    assert!(used.len() > 10, "{used:?}");
    for name in &used {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| ours.contains_key(*f)))
            .unwrap_or(name);
        assert!(
            ours.contains_key(family),
            "{name} is queried but tern does not export it"
        );
    }
    if common::have("promtool") {
        let out = std::process::Command::new("promtool")
            .args(["check", "rules"])
            .arg(root.join("prometheus/tern-alerts.yml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        println!("promtool part skipped: promtool is not installed (apt-get install prometheus)");
    }
}

/// `/debug/vars` (etcd's expvar endpoint): the command line, the open-files limit and
/// `raft.status` with etcd 3.4's field names and state names; Go's `memstats` is left out.
#[test]
fn debug_vars_show_raft_status_like_etcd() {
    let tern = start_tern(2, &[]);
    let mut c = tern.client();
    assert_eq!(c.put("/v2/keys/d", &[("value", "1")]).status, 201);
    // Published every tick.
    std::thread::sleep(Duration::from_millis(300));
    let r = c.get("/debug/vars");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    let ours = r.json();
    let status = &ours["raft.status"];
    assert_eq!(status["raftState"], "StateLeader", "{ours}");
    let id = status["id"].as_str().unwrap().to_string();
    assert_eq!(status["lead"], id.as_str());
    assert_eq!(status["vote"], id.as_str());
    assert_eq!(status["leadtransferee"], "0");
    assert_eq!(status["progress"][&id]["state"], "StateReplicate", "{ours}");
    assert_eq!(status["progress"][&id]["match"], status["commit"], "{ours}");
    assert!(status["commit"].as_u64().unwrap() >= 2, "{ours}");
    assert!(ours["file_descriptor_limit"].as_u64().unwrap() > 0);
    assert!(
        ours["cmdline"][0].as_str().unwrap().ends_with("tern"),
        "{ours}"
    );

    let Some(etcd) = start_etcd(&[]) else {
        println!("etcd part skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    };
    let theirs = etcd.client().get("/debug/vars").json();
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    let mut want = keys(&theirs);
    want.remove("memstats");
    assert_eq!(keys(&ours), want);
    assert_eq!(keys(status), keys(&theirs["raft.status"]));
    for (k, v) in theirs["raft.status"].as_object().unwrap() {
        let same_type = std::mem::discriminant(v) == std::mem::discriminant(&status[k]);
        assert!(same_type, "raft.status.{k}: etcd {v}, tern {}", status[k]);
    }
}

/// The value of `name{shard="i"}` in a scrape.
fn shard_gauge(text: &str, name: &str, shard: usize) -> u64 {
    let prefix = format!("{name}{{shard=\"{shard}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&prefix));
    let line = line.unwrap_or_else(|| panic!("{prefix} not in:\n{text}"));
    line[prefix.len()..].parse().unwrap()
}

/// Scrapes through `scraper` until only its own connection is open on every shard
/// (connections are counted until the server sees them close), for 10 s at most.
fn scrape_when_alone(scraper: &mut common::Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scraper.get("/metrics").text();
        let open: u64 = (0..2)
            .map(|i| shard_gauge(&text, "tern_shard_client_connections", i))
            .sum();
        if open == 1 || Instant::now() > deadline {
            assert_eq!(open, 1, "{text}");
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first few client connections are served by shard 0, where raft runs, so a handful of
/// clients' writes need no hop between threads; more connections spread over every shard;
/// once the first ones close, shard 0 takes new ones again.
#[test]
fn a_handful_of_clients_are_served_by_the_raft_shard_and_more_spread() {
    let tern = start_tern(2, &[]);
    let requests_on = |text: &str, shard| shard_gauge(text, "tern_shard_requests_total", shard);
    let mut scraper = tern.client();
    scrape_when_alone(&mut scraper);
    // Three clients (with the scraper, four connections: shard 0 takes up to four).
    let mut few: Vec<common::Client> = (0..3).map(|_| tern.client()).collect();
    for (i, c) in few.iter_mut().enumerate() {
        let r = c.put(&format!("/v2/keys/few/{i}"), &[("value", "v")]);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let text = scraper.get("/metrics").text();
    assert_eq!(requests_on(&text, 1), 0, "{text}");
    assert_eq!(requests_on(&text, 0), 3, "{text}");
    assert!(
        shard_gauge(&text, "tern_shard_client_connections", 0) >= 3,
        "{text}"
    );

    // Forty more: the kernel spreads them (all forty on one shard: one chance in 2^40).
    let mut many: Vec<common::Client> = (0..40).map(|_| tern.client()).collect();
    for c in &mut many {
        assert_eq!(c.get("/v2/keys/few/0").status, 200);
    }
    let text = scraper.get("/metrics").text();
    assert!(requests_on(&text, 1) > 0, "{text}");
    assert!(
        shard_gauge(&text, "tern_shard_client_connections", 1) > 0,
        "{text}"
    );

    // Every client gone: new ones are served by shard 0 again.
    drop(few);
    drop(many);
    let text = scrape_when_alone(&mut scraper);
    let before = requests_on(&text, 1);
    let mut again: Vec<common::Client> = (0..3).map(|_| tern.client()).collect();
    for (i, c) in again.iter_mut().enumerate() {
        let r = c.put(&format!("/v2/keys/again/{i}"), &[("value", "v")]);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let text = scraper.get("/metrics").text();
    assert_eq!(requests_on(&text, 1), before, "{text}");
}
