//! `--discovery` (manual §2.4, §3.2.2): members that know only a discovery URL in another
//! cluster's keys space (here a tern, or etcd 3.4) register there, wait for each other and form
//! a cluster; a member past the configured size is refused with etcd's "cluster is full"; a
//! token without a size gets the manual's message; a restart ignores the token.
//!
//! tern's own discovery service (`--discovery-service`): `GET /new?size=N` answers a token URL
//! that tern and etcd 3.4 members bootstrap from; the token directory has a TTL; bad sizes are
//! refused; with auth on, the caller needs write access; without the flag `/new` is a 404. Tests that need Debian's `etcd` skip with a
//! printed reason when it is missing.

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::{start_etcd, start_tern, Server};

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

/// A new token from `registry`'s discovery service for a cluster of `size`: its URL.
fn new_token(registry: &Server, size: &str) -> String {
    let r = registry.client().get(&format!("/new?size={size}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{r:?}"
    );
    let url = r.text();
    let prefix = format!("http://{}/v2/keys/_tern/discovery/", registry.addr);
    let token = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url:?} does not start with {prefix:?}"));
    assert!(
        token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{url:?}"
    );
    url
}

/// The three members (tern or etcd) have formed one cluster: each lists all three in
/// `/v2/members`, and a write on one is read on the others.
fn check_formed(c: &mut Cluster, key: &str) {
    for i in 0..3 {
        c.wait_serving(i, LONG);
    }
    c.wait_leader(&[0, 1, 2], LONG);
    for i in 0..3 {
        let members = c.client(i).get("/v2/members").json();
        let mut names: Vec<String> = members["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["m1", "m2", "m3"], "member {i}: {members}");
    }
    let w = c
        .client(0)
        .put(&format!("/v2/keys{key}"), &[("value", "found")]);
    assert_eq!(w.status, 201, "{}", w.text());
    for i in 1..3 {
        c.wait_value(i, key, "found", LONG);
    }
}

/// The token's registrations: one per member, `_config` hidden.
fn registrations(registry: &Server, url: &str) -> usize {
    let path = &url[url.find("/v2/keys/").unwrap()..];
    let listed = registry.client().get(path).json();
    listed["node"]["nodes"].as_array().map_or(0, Vec::len)
}

#[test]
fn tern_members_bootstrap_from_terns_discovery_service() {
    let registry = start_tern(1, &["--discovery-service"]);
    let url = new_token(&registry, "3");
    let mut c = Cluster::plan(3, &[]);
    for i in 0..3 {
        c.spawn(i, "", "new", &discovery_flags(&url));
    }
    check_formed(&mut c, "/from-new");
    assert_eq!(registrations(&registry, &url), 3);
}

#[test]
fn etcd_members_bootstrap_from_terns_discovery_service() {
    let Some(mut c) = Cluster::plan_etcd(3, &[]) else {
        println!("skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    };
    let registry = start_tern(1, &["--discovery-service"]);
    let url = new_token(&registry, "3");
    for i in 0..3 {
        c.spawn(i, "", "new", &discovery_flags(&url));
    }
    check_formed(&mut c, "/etcd-from-new");
    assert_eq!(registrations(&registry, &url), 3);
}

#[test]
fn tern_members_bootstrap_from_a_token_in_etcd() {
    let Some(registry) = start_etcd(&[]) else {
        println!("skipped: etcd is not installed (apt-get install etcd-server)");
        return;
    };
    let size = registry
        .client()
        .put("/v2/keys/discovery/etcdtok/_config/size", &[("value", "3")]);
    assert_eq!(size.status, 201, "{}", size.text());
    let url = format!("http://{}/v2/keys/discovery/etcdtok", registry.addr);
    let mut c = Cluster::plan(3, &[]);
    for i in 0..3 {
        c.spawn(i, "", "new", &discovery_flags(&url));
    }
    check_formed(&mut c, "/from-etcd");
    assert_eq!(registrations(&registry, &url), 3);
}

#[test]
fn discovery_tokens_expire_and_new_checks_its_size() {
    let registry = start_tern(1, &["--discovery-service"]);
    let mut r = registry.client();

    // A token is a hidden directory with the default TTL (7 days) and its size.
    let url = new_token(&registry, "5");
    let dir = &url[url.find("/v2/keys/").unwrap()..];
    let node = r.get(dir).json();
    assert_eq!(node["node"]["dir"], true, "{node}");
    let ttl = node["node"]["ttl"].as_i64().unwrap_or_default();
    assert!((604_700..=604_800).contains(&ttl), "{node}");
    assert!(node["node"]["expiration"].is_string(), "{node}");
    let size = r.get(&format!("{dir}/_config/size")).json();
    assert_eq!(size["node"]["value"], "5", "{size}");
    assert!(
        size["node"]["ttl"].is_null(),
        "the directory expires, not the key: {size}"
    );
    let root = r.get("/v2/keys/").json();
    assert!(root["node"]["nodes"].is_null(), "_tern is hidden: {root}");
    let default = new_token(&registry, "");
    let size = r.get(&format!(
        "{}/_config/size",
        &default[default.find("/v2/keys/").unwrap()..]
    ));
    assert_eq!(size.json()["node"]["value"], "3");
    let plain = r.get("/new");
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_ne!(plain.text(), default, "tokens are random");

    // Sizes that make no cluster.
    for bad in ["0", "-1", "abc", "101", "3.5", "99999999999999999999"] {
        let resp = r.get(&format!("/new?size={bad}"));
        assert_eq!(resp.status, 400, "size={bad}: {}", resp.text());
        assert!(
            resp.text()
                .contains("the cluster size must be a whole number from 1 to 100"),
            "size={bad}: {}",
            resp.text()
        );
    }
    assert_eq!(r.put("/new", &[("size", "3")]).status, 405);

    // With auth on, /new writes only what its caller may write.
    let json = [("Content-Type", "application/json")];
    let root = format!("Basic {}", tern::client::base64(b"root:rootpw"));
    let as_root = [("Authorization", root.as_str()), json[0]];
    for (path, headers, body) in [
        (
            "/v2/auth/users/root",
            &json[..],
            r#"{"user":"root","password":"rootpw"}"#,
        ),
        ("/v2/auth/enable", &[][..], ""),
        (
            "/v2/auth/roles/guest",
            &as_root[..],
            r#"{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}"#,
        ),
    ] {
        let resp = r
            .try_request("PUT", path, headers, body.as_bytes())
            .unwrap();
        assert_eq!(resp.status / 100, 2, "{path}: {}", resp.text());
    }
    let guest = r.get("/new");
    assert_eq!(guest.status, 401, "{}", guest.text());
    let resp = r.try_request("GET", "/new", &as_root[..1], b"").unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());

    // A short TTL: the abandoned token goes away as a whole.
    let short = start_tern(1, &["--discovery-service", "--discovery-service-ttl=1"]);
    let url = new_token(&short, "1");
    let dir = url[url.find("/v2/keys/").unwrap()..].to_string();
    let mut s = short.client();
    assert_eq!(s.get(&dir).status, 200);
    let deadline = std::time::Instant::now() + LONG;
    loop {
        if s.get(&dir).status == 404 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "token never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.get(&format!("{dir}/_config/size")).status, 404);

    // Without the flag, /new is nothing.
    let off = start_tern(1, &[]);
    let resp = off.client().get("/new?size=3");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.text(), "404 page not found\n");
}
