//! Proxy mode (manual §2.3, §3.4): a `tern --proxy on|readonly` in front of a tern cluster
//! forwards the keys API (watches too), members and stats; finds the members' client URLs
//! through the peers; keeps the cluster it found in its data dir; fails over when the member
//! it uses dies; a `readonly` proxy answers writes with 501; a member past a discovery
//! token's size falls back to a proxy; a proxy becomes a member as §3.4.2 describes.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{add_member, Cluster};

const LONG: Duration = Duration::from_secs(30);

/// Plans one more node and starts it as a proxy of `members` with `extra` flags.
fn start_proxy(c: &mut Cluster, members: &[usize], extra: &[&str]) -> usize {
    let p = c.plan_node();
    let ic = c.initial_cluster(members);
    let mut flags = vec!["--proxy", "on"];
    flags.extend_from_slice(extra);
    c.spawn(p, &ic, "new", &flags);
    c.wait_serving(p, LONG);
    p
}

fn endpoints(c: &Cluster, p: usize) -> Vec<String> {
    let v = c.client(p).get("/v2/config/local/proxy").json();
    let mut e: Vec<String> = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    e.sort();
    e
}

#[test]
fn a_proxy_serves_the_client_api_of_its_cluster() {
    let mut c = Cluster::start(3, &[]);
    let p = start_proxy(&mut c, &[0, 1, 2], &[]);
    let mut want: Vec<String> = (0..3).map(|i| c.nodes[i].client_url()).collect();
    want.sort();
    assert_eq!(endpoints(&c, p), want);
    let log = c.nodes[p].log();
    assert!(log.contains("proxy: endpoints found"), "{log}");

    // Writes and reads, with the member's headers.
    let mut client = c.client(p);
    let w = client.put("/v2/keys/through", &[("value", "proxy")]);
    assert_eq!(w.status, 201, "{}", w.text());
    assert!(w.header("x-etcd-index").is_some(), "{:?}", w.headers);
    let r = client.get("/v2/keys/through?quorum=true");
    assert_eq!(r.json()["node"]["value"], "proxy", "{}", r.text());
    for i in 0..3 {
        c.wait_value(i, "/through", "proxy", LONG);
    }
    let cas = client.put("/v2/keys/through?prevValue=nope", &[("value", "x")]);
    assert_eq!(cas.status, 412);
    assert_eq!(cas.json()["errorCode"], 101, "{}", cas.text());
    let members = client.get("/v2/members").json();
    assert_eq!(members["members"].as_array().unwrap().len(), 3, "{members}");
    assert_eq!(client.get("/v2/stats/self").status, 200);
    assert_eq!(client.get("/version").status, 200);

    // A stream watch passes events on as they happen.
    let mut watcher = c.client(p);
    watcher.set_read_timeout(Duration::from_secs(10));
    watcher.send_raw(
        format!(
            "GET /v2/keys/w?wait=true&recursive=true&stream=true HTTP/1.1\r\nHost: {}\r\n\r\n",
            c.nodes[p].addr()
        )
        .as_bytes(),
    );
    let (status, headers) = watcher.read_head().unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("transfer-encoding").map(String::as_str),
        Some("chunked")
    );
    for n in 0..3 {
        let value = format!("v{n}");
        let w = client.put("/v2/keys/w/k", &[("value", &value)]);
        assert!(w.status == 201 || w.status == 200, "{}", w.text());
        let chunk = watcher.read_chunk().unwrap().expect("an event");
        let event: serde_json::Value = serde_json::from_slice(&chunk).unwrap();
        assert_eq!(event["node"]["value"], value, "{event}");
    }
    // A long-poll watch answers once.
    let mut waiter = c.client(p);
    waiter.set_read_timeout(Duration::from_secs(10));
    let index = client.get("/v2/keys/w/k").json()["node"]["modifiedIndex"]
        .as_u64()
        .unwrap();
    let r = waiter.get(&format!("/v2/keys/w/k?wait=true&waitIndex={index}"));
    assert_eq!(r.json()["node"]["modifiedIndex"], index, "{}", r.text());

    // The cluster it found is in its data dir, in etcd's format.
    let file = c.nodes[p].dir.join("data/proxy/cluster");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["PeerURLs"].as_array().unwrap().len(), 3, "{saved}");

    // Its own metrics, under etcd's names.
    let metrics = client.get("/metrics").text();
    for family in ["etcd_proxy_requests_total", "etcd_proxy_handled_total"] {
        assert!(
            metrics.contains(&format!("# TYPE {family} counter")),
            "{metrics}"
        );
    }
}

#[test]
fn a_proxy_fails_over_and_restarts_from_its_cluster_file() {
    let mut c = Cluster::start(3, &[]);
    let p = start_proxy(
        &mut c,
        &[0, 1, 2],
        &[
            "--proxy-failure-wait",
            "60000",
            "--proxy-refresh-interval",
            "60000",
        ],
    );
    let mut client = c.client(p);
    assert_eq!(client.put("/v2/keys/k", &[("value", "1")]).status, 201);
    // Kill the member it uses (its /v2/stats/self says which), twice: every read goes on
    // being answered as long as one member is left, since a request that cannot reach one
    // member goes to the next.
    for _ in 0..2 {
        let name = client.get("/v2/stats/self").json()["name"]
            .as_str()
            .unwrap()
            .to_string();
        let victim = c.nodes.iter().position(|n| n.name == name).unwrap();
        c.kill(victim);
        for _ in 0..20 {
            let r = client.get("/v2/keys/k");
            assert_eq!(r.status, 200, "after killing m{}: {}", victim + 1, r.text());
        }
    }
    let log = c.nodes[p].log();
    assert!(log.contains("marked endpoint"), "{log}");
    // With every member gone: 502 for the request that finds them dead, then 503.
    for i in 0..3 {
        c.kill(i);
    }
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = c.client(p).get("/v2/keys/k");
        statuses.push((
            r.status,
            r.json()["message"].as_str().unwrap_or("").to_string(),
        ));
    }
    assert!(
        statuses.iter().all(|(s, m)| (*s == 502
            && m.starts_with("httpproxy: unable to get response from"))
            || (*s == 503 && m == "httpproxy: zero endpoints currently available")),
        "{statuses:?}"
    );
    assert_eq!(statuses.last().unwrap().0, 503, "{statuses:?}");

    // Restarted without --initial-cluster, the proxy takes its peers from its data dir; the
    // members come back on theirs.
    c.kill(p);
    for i in 0..3 {
        let ic = c.initial_cluster(&[i]);
        c.spawn(i, &ic, "existing", &[]);
    }
    for i in 0..3 {
        c.wait_serving(i, LONG);
    }
    c.spawn(p, "", "new", &["--proxy", "on"]);
    c.wait_serving(p, LONG);
    let log = c.nodes[p].log();
    assert!(log.contains("from cluster file"), "{log}");
    assert_eq!(c.client(p).get("/v2/keys/k").json()["node"]["value"], "1");

    // A data dir used by a proxy starts a proxy again, --proxy or not.
    c.kill(p);
    c.spawn(p, "", "new", &[]);
    c.wait_serving(p, LONG);
    assert!(
        c.nodes[p]
            .log()
            .contains("already initialized as proxy before, starting as etcd proxy"),
        "{}",
        c.nodes[p].log()
    );
}

#[test]
fn a_readonly_proxy_answers_writes_with_501() {
    let mut c = Cluster::start(1, &[]);
    assert_eq!(
        c.client(0).put("/v2/keys/ro", &[("value", "1")]).status,
        201
    );
    let p = start_proxy(&mut c, &[0], &["--proxy", "readonly"]);
    let mut client = c.client(p);
    for method in ["PUT", "POST", "DELETE"] {
        let r = client.request(method, "/v2/keys/ro", &[("value", "2")]);
        assert_eq!((r.status, r.body.len()), (501, 0), "{method}");
    }
    // The connection stays usable, and reads go through.
    assert_eq!(client.get("/v2/keys/ro").json()["node"]["value"], "1");
    assert_eq!(c.client(0).get("/v2/keys/ro").json()["node"]["value"], "1");
}

#[test]
fn a_member_past_the_discovery_size_falls_back_to_a_proxy() {
    let registry = common::start_tern(1, &[]);
    let url = format!("http://{}/v2/keys/discovery/fallback", registry.addr);
    let size = registry.client().put(
        "/v2/keys/discovery/fallback/_config/size",
        &[("value", "1")],
    );
    assert_eq!(size.status, 201);
    let mut c = Cluster::plan(2, &[]);
    c.spawn(0, "", "new", &["--discovery", &url]);
    c.wait_serving(0, LONG);
    // The second finds the cluster full and (the default fallback) becomes its proxy.
    c.spawn(1, "", "new", &["--discovery", &url]);
    c.wait_serving(1, LONG);
    let log = c.nodes[1].log();
    assert!(log.contains("falling back to proxy"), "{log}");
    let w = c.client(1).put("/v2/keys/via", &[("value", "fallback")]);
    assert_eq!(w.status, 201, "{}", w.text());
    c.wait_value(0, "/via", "fallback", LONG);
    let members = c.client(1).get("/v2/members").json();
    assert_eq!(members["members"].as_array().unwrap().len(), 1, "{members}");
}

#[test]
fn a_proxy_becomes_a_member_as_the_manual_describes() {
    // §3.4.2: one member, one proxy.
    let mut c = Cluster::start(1, &[]);
    let p = start_proxy(&mut c, &[0], &[]);
    assert_eq!(
        c.client(p).put("/v2/keys/before", &[("value", "1")]).status,
        201
    );
    // 1. Add the proxy's host as a member (through the proxy, as etcdctl would).
    let added = add_member(&mut c.client(p), &c.nodes[p].peer_url());
    assert_eq!(added.status, 201, "{}", added.text());
    // 2. Stop the proxy. 3. Remove its data dir. 4. Start a member there.
    c.kill(p);
    std::fs::remove_dir_all(c.nodes[p].dir.join("data")).unwrap();
    let ic = c.initial_cluster(&[0, p]);
    c.spawn(p, &ic, "existing", &[]);
    c.wait_serving(p, LONG);
    let deadline = Instant::now() + LONG;
    loop {
        let w = c.client(p).put("/v2/keys/after", &[("value", "2")]);
        if w.status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", w.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    c.wait_value(p, "/before", "1", LONG);
    c.wait_value(0, "/after", "2", LONG);
    let members = c.client(0).get("/v2/members").json();
    assert_eq!(members["members"].as_array().unwrap().len(), 2, "{members}");
}

/// A forward HTTP proxy on a local port for absolute-form requests (what `--discovery-proxy`
/// sends for an `http` URL): each connection is piped to the host its first request names.
/// Returns its URL and the requests it saw (their first lines).
fn forward_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).unwrap_or(0) == 0 {
                    return;
                }
                log.lock().unwrap().push(first.trim_end().to_string());
                let target = first.split_whitespace().nth(1).unwrap_or("");
                let Some(rest) = target.strip_prefix("http://") else {
                    return;
                };
                let authority = rest.split('/').next().unwrap().to_string();
                let Ok(mut upstream) = TcpStream::connect(&authority) else {
                    return;
                };
                // Origin form upstream; the rest of this connection's bytes as they come
                // (the client uses one request per connection through here or keeps it
                // alive: later requests are absolute-form too, which tern also accepts).
                let line = first.replacen(&format!("http://{authority}"), "", 1);
                upstream.write_all(line.as_bytes()).unwrap();
                let mut back = upstream.try_clone().unwrap();
                let mut client_w = client.try_clone().unwrap();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut back, &mut client_w);
                });
                let _ = upstream.write_all(reader.buffer());
                let mut rest = reader.into_inner();
                let _ = std::io::copy(&mut rest, &mut upstream);
            });
        }
    });
    (url, seen)
}

#[test]
fn members_reach_the_discovery_service_through_the_discovery_proxy() {
    let registry = common::start_tern(1, &[]);
    let token = format!("http://{}/v2/keys/discovery/viaproxy", registry.addr);
    let size = registry.client().put(
        "/v2/keys/discovery/viaproxy/_config/size",
        &[("value", "1")],
    );
    assert_eq!(size.status, 201);
    let (proxy_url, seen) = forward_proxy();
    let mut c = Cluster::plan(1, &[]);
    c.spawn(
        0,
        "",
        "new",
        &["--discovery", &token, "--discovery-proxy", &proxy_url],
    );
    c.wait_serving(0, LONG);
    let log = c.nodes[0].log();
    assert!(log.contains("discovery: using proxy"), "{log}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|l| l.starts_with(&format!("GET {token}/_config/size "))),
        "{seen:?}"
    );
    // Registered through the proxy, under the member's ID.
    let listed = registry.client().get("/v2/keys/discovery/viaproxy").json();
    assert_eq!(
        listed["node"]["nodes"].as_array().unwrap().len(),
        1,
        "{listed}"
    );

    // A proxy that cannot be reached: discovery fails, naming it.
    let mut d = Cluster::plan(1, &[]);
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    d.spawn(
        0,
        "",
        "new",
        &[
            "--discovery",
            &token,
            "--discovery-proxy",
            &dead,
            "--discovery-fallback",
            "exit",
        ],
    );
    assert_eq!(d.nodes[0].wait_exit(Duration::from_secs(60)), Some(1));
    let log = d.nodes[0].log();
    assert!(log.contains("proxyconnect tcp"), "{log}");
}
