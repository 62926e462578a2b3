//! `--discovery` (manual §2.4, §3.2.2): members that know only a discovery URL in another
//! cluster's keys space (here a tern) register there, wait for each other and form a cluster;
//! a member past the configured size is refused with etcd's "cluster is full"; a token without
//! a size gets the manual's message; a restart ignores the token.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::start_tern;

const LONG: Duration = Duration::from_secs(30);

fn discovery_flags(url: &str) -> [&str; 4] {
    ["--discovery", url, "--discovery-fallback", "exit"]
}

#[test]
fn members_find_each_other_through_a_discovery_url() {
    let registry = start_tern(1, &[]);
    let mut r = registry.client();
    let url = format!("http://{}/v2/keys/discovery/tok1", registry.addr);
    let size = r.put("/v2/keys/discovery/tok1/_config/size", &[("value", "3")]);
    assert_eq!(size.status, 201);

    let mut c = Cluster::plan(4, &[]);
    for i in 0..3 {
        c.spawn(i, "", "new", &discovery_flags(&url));
    }
    for i in 0..3 {
        c.wait_serving(i, LONG);
    }
    let leader = c.wait_leader(&[0, 1, 2], LONG);
    let w = c
        .client(leader)
        .put("/v2/keys/found", &[("value", "each-other")]);
    assert_eq!(w.status, 201, "{}", w.text());
    for i in 0..3 {
        c.wait_value(i, "/found", "each-other", LONG);
    }
    let members = c.client(0).get("/v2/members").json();
    let mut names: Vec<String> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["m1", "m2", "m3"], "{members}");
    // Each registered under its member ID, `name=peerURL`.
    let listed = r.get("/v2/keys/discovery/tok1").json();
    let registered = listed["node"]["nodes"].as_array().unwrap();
    // `_config` is hidden, as every `_` key is.
    assert_eq!(registered.len(), 3, "{listed}");
    let id = c.member_id(1);
    let mine = r.get(&format!("/v2/keys/discovery/tok1/{id}")).json();
    assert_eq!(
        mine["node"]["value"],
        format!("m2={}", c.nodes[1].peer_url()),
        "{mine}"
    );

    // A fourth member: the cluster is full.
    c.spawn(3, "", "new", &discovery_flags(&url));
    assert_eq!(c.nodes[3].wait_exit(LONG), Some(1), "{}", c.nodes[3].log());
    assert!(
        c.nodes[3].log().contains("discovery: cluster is full"),
        "{}",
        c.nodes[3].log()
    );

    // A restart keeps its cluster and says the token is ignored.
    c.kill(0);
    c.spawn(0, "", "new", &discovery_flags(&url));
    c.wait_serving(0, LONG);
    c.wait_value(0, "/found", "each-other", LONG);
    assert!(
        c.nodes[0]
            .log()
            .contains("discovery token ignored since a cluster has already been initialized"),
        "{}",
        c.nodes[0].log()
    );
}

#[test]
fn a_token_without_a_size_gets_the_manuals_message() {
    let registry = start_tern(1, &[]);
    let url = format!("http://{}/v2/keys/discovery/nosize", registry.addr);
    let mut c = Cluster::plan(1, &[]);
    c.spawn(0, "", "new", &discovery_flags(&url));
    assert_eq!(c.nodes[0].wait_exit(LONG), Some(1), "{}", c.nodes[0].log());
    let want =
        format!("error: the cluster doesn't have a size configuration value in {url}/_config");
    assert!(c.nodes[0].log().contains(&want), "{}", c.nodes[0].log());
}

/// A DNS server on a local UDP port answering `_etcd-server._tcp.<domain>` with `targets`
/// (host, port) and nothing for the `-ssl` name, until the test ends.
fn fake_dns(targets: Vec<(String, u16)>) -> String {
    use tern::dns::{encode_response, Srv};
    let dns = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = dns.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = dns.recv_from(&mut buf) {
            let asked = String::from_utf8_lossy(&buf[..n]).into_owned();
            let answers: Vec<Srv> = if asked.contains("_etcd-server-ssl") {
                vec![]
            } else {
                targets
                    .iter()
                    .map(|(host, port)| Srv {
                        priority: 0,
                        weight: 0,
                        port: *port,
                        target: host.clone(),
                    })
                    .collect()
            };
            let _ = dns.send_to(&encode_response(&buf[..n], &answers), from);
        }
    });
    addr
}

#[test]
fn members_find_each_other_through_srv_records() {
    let mut c = Cluster::plan(4, &[]);
    let targets = (0..3)
        .map(|i| (c.nodes[i].ip.clone(), c.nodes[i].peer_port))
        .collect();
    let dns = fake_dns(targets);
    c.env.push(("TERN_DNS_SERVER".into(), dns.clone()));
    let flags = ["--discovery-srv", "example.test"];
    for i in 0..3 {
        c.spawn(i, "", "new", &flags);
    }
    for i in 0..3 {
        c.wait_serving(i, LONG);
    }
    let leader = c.wait_leader(&[0, 1, 2], LONG);
    assert_eq!(
        c.client(leader)
            .put("/v2/keys/srv", &[("value", "1")])
            .status,
        201
    );
    for i in 0..3 {
        c.wait_value(i, "/srv", "1", LONG);
    }
    let members = c.client(0).get("/v2/members").json();
    assert_eq!(members["members"].as_array().unwrap().len(), 3, "{members}");
    // A restart needs no DNS: the WAL has the cluster.
    c.kill(1);
    c.env.retain(|(k, _)| k != "TERN_DNS_SERVER");
    c.env.push(("TERN_DNS_SERVER".into(), "127.0.0.1:9".into()));
    c.spawn(1, "", "new", &flags);
    c.wait_serving(1, LONG);
    c.wait_value(1, "/srv", "1", LONG);
    c.env.retain(|(k, _)| k != "TERN_DNS_SERVER");
    c.env.push(("TERN_DNS_SERVER".into(), dns));
    // A member the records do not name: the manual's error.
    c.spawn(3, "", "new", &flags);
    assert_eq!(c.nodes[3].wait_exit(LONG), Some(1), "{}", c.nodes[3].log());
    assert!(
        c.nodes[3]
            .log()
            .contains("cannot find local etcd m4 from SRV records."),
        "{}",
        c.nodes[3].log()
    );
}
