//! TLS on tern's client and peer ports, with real `tern` processes and certificates from a
//! throw-away CA made in the test (rcgen): every endpoint over https beside plain http; client
//! certificates accepted and refused; Debian's `etcdctl` and `ternctl` over TLS; a 3-member
//! cluster with peer TLS and client-cert auth through a restart and a leader kill; a member
//! with another CA's certificate kept out; certificates rotated without a restart; bad TLS
//! settings refused at start with one line naming the flag and the file; `--auto-tls`;
//! `--cipher-suites`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::{common_name, Pair, Pki};
use common::cluster::{Cluster, NodeTls};
use common::{free_port, have, temp_dir, Client};

/// A tern process killed (and its directory removed) when dropped.
struct Tern {
    child: Child,
    dir: PathBuf,
}

impl Drop for Tern {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Tern {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

/// The flags of a 1-member tern in `dir` listening for clients on `client_urls` (the first is
/// advertised), with a plain peer URL.
fn member_args(dir: &Path, client_urls: &[String]) -> Vec<String> {
    let peer = format!("http://127.0.0.1:{}", free_port());
    [
        "--name",
        "t1",
        "--data-dir",
        &dir.join("data").display().to_string(),
        "--listen-client-urls",
        &client_urls.join(","),
        "--advertise-client-urls",
        &client_urls[0],
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        &format!("t1={peer}"),
        "--shards",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The flags of a server certificate plus client certificate auth against `ca`.
fn client_cert_auth_args(ca: &Pki, server: &Pair) -> Vec<String> {
    vec![
        "--cert-file".into(),
        server.cert_str(),
        "--key-file".into(),
        server.key_str(),
        "--client-cert-auth".into(),
        "--trusted-ca-file".into(),
        ca.ca_str(),
    ]
}

fn spawn_tern(dir: &Path, args: &[String]) -> Tern {
    let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start tern");
    Tern {
        child,
        dir: dir.to_path_buf(),
    }
}

/// Waits until `addr` answers `/health` over TLS with `config`; the connection.
fn wait_tls(t: &mut Tern, addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = t.child.try_wait() {
            panic!("tern exited ({status}) while starting:\n{}", t.log());
        }
        if let Ok(mut c) = Client::try_connect_tls(addr, config.clone()) {
            if c.try_request("GET", "/health", &[], b"")
                .is_ok_and(|r| r.status == 200)
            {
                return c;
            }
        }
        assert!(
            Instant::now() < deadline,
            "tern did not serve over TLS:\n{}",
            t.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// What a plain-HTTP request to `addr` gets back (until the server closes).
fn plain_http_answer(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether one request over a fresh TLS connection with `config` gets an answer.
fn request_ok(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, path: &str) -> bool {
    Client::try_connect_tls(addr, config.clone())
        .and_then(|mut c| c.try_request("GET", path, &[], b""))
        .is_ok_and(|r| r.status == 200)
}

fn ternctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ternctl"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_endpoint_works_over_https_beside_plain_http() {
    let dir = temp_dir("tls-endpoints");
    let pki = Pki::new(&dir.join("pki"), "ca");
    let server = pki.issue("server", &["127.0.0.1", "localhost"]);
    let (tls_port, http_port) = (free_port(), free_port());
    let https = format!("https://127.0.0.1:{tls_port}");
    let mut args = member_args(
        &dir,
        &[https.clone(), format!("http://127.0.0.1:{http_port}")],
    );
    args.extend([
        "--cert-file".into(),
        server.cert_str(),
        "--key-file".into(),
        server.key_str(),
    ]);
    let mut t = spawn_tern(&dir, &args);
    let config = pki.client_config(None);
    let mut c = wait_tls(&mut t, addr(tls_port), &config);

    // Handshakes that never finish, and garbage, delay nobody.
    let stalled: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(addr(tls_port)).unwrap())
        .collect();
    let mut garbage = TcpStream::connect(addr(tls_port)).unwrap();
    garbage
        .write_all(&[0x16, 3, 1, 0xff, 0xff, 1, 2, 3])
        .unwrap();

    assert_eq!(c.put("/v2/keys/a", &[("value", "1")]).status, 201);
    let r = c.get("/v2/keys/a");
    assert_eq!(r.json()["node"]["value"], "1", "{}", r.text());

    // A long-poll watch and a streamed watch, answered over TLS.
    let watcher_config = config.clone();
    let long_poll = std::thread::spawn(move || {
        let mut w = Client::try_connect_tls(addr(tls_port), watcher_config).unwrap();
        w.get("/v2/keys/a?wait=true").json()["node"]["value"].clone()
    });
    let mut stream = Client::try_connect_tls(addr(tls_port), config.clone()).unwrap();
    stream.send_raw(b"GET /v2/keys/s?wait=true&stream=true HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, _) = stream.read_head().unwrap();
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.put("/v2/keys/a", &[("value", "2")]).status, 200);
    assert_eq!(long_poll.join().unwrap(), "2");
    for v in ["x", "y"] {
        assert_eq!(c.put("/v2/keys/s", &[("value", v)]).status / 100, 2);
        let chunk = stream.read_chunk().unwrap().expect("a watch event");
        let event: serde_json::Value = serde_json::from_slice(&chunk).unwrap();
        assert_eq!(event["node"]["value"], v);
    }

    for path in [
        "/v2/members",
        "/v2/stats/self",
        "/v2/stats/store",
        "/v2/stats/leader",
        "/health",
        "/version",
        "/metrics",
        "/v2/machines",
    ] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    assert!(c.get("/v2/members").text().contains(&https));

    // The plain listener serves the same data; plain HTTP on the TLS port gets Go's answer.
    let mut plain = Client::connect(addr(http_port));
    assert_eq!(plain.get("/v2/keys/a").json()["node"]["value"], "2");
    let answer = plain_http_answer(addr(tls_port));
    assert!(
        answer.starts_with("HTTP/1.0 400 Bad Request")
            && answer.contains("Client sent an HTTP request to an HTTPS server."),
        "{answer:?}"
    );
    // A client that does not trust the server's CA fails the handshake.
    let other = Pki::new(&dir.join("other"), "other");
    let err = Client::try_connect_tls(addr(tls_port), other.client_config(None))
        .err()
        .expect("a server certificate from an unknown CA is refused");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // curl and ternctl over https.
    if have("curl") {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--cacert",
                &pki.ca_str(),
                &format!("{https}/v2/keys/a"),
            ])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(r#""value":"2""#),
            "{}",
            text(&out)
        );
    } else {
        println!("curl part skipped: curl is not installed");
    }
    let out = ternctl(&[
        "--endpoints",
        &https,
        "--ca-file",
        &pki.ca_str(),
        "get",
        "/a",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2\n",
        "{}",
        text(&out)
    );
    drop((stalled, garbage));
    assert!(
        request_ok(addr(tls_port), &config, "/version"),
        "{}",
        t.log()
    );
}

#[test]
fn client_certificates_are_checked_with_client_cert_auth() {
    let dir = temp_dir("tls-client-auth");
    let pki = Pki::new(&dir.join("pki"), "ca");
    let server = pki.issue("server", &["127.0.0.1"]);
    let client = pki.issue("client", &[]);
    let other = Pki::new(&dir.join("other"), "other");
    let stranger = other.issue("stranger", &[]);
    let port = free_port();
    let https = format!("https://127.0.0.1:{port}");
    let mut args = member_args(&dir, std::slice::from_ref(&https));
    args.extend(client_cert_auth_args(&pki, &server));
    let mut t = spawn_tern(&dir, &args);
    let with_cert = pki.client_config(Some(&client));
    let mut c = wait_tls(&mut t, addr(port), &with_cert);
    assert_eq!(c.put("/v2/keys/k", &[("value", "v")]).status, 201);

    // No certificate, or one from another CA: refused (in TLS 1.3 the refusal shows at the
    // first read), while the good client keeps being served.
    for (what, config) in [
        ("no client certificate", pki.client_config(None)),
        (
            "a certificate of another CA",
            pki.client_config(Some(&stranger)),
        ),
    ] {
        assert!(
            !request_ok(addr(port), &config, "/v2/keys/k"),
            "{what} was accepted"
        );
    }
    assert_eq!(c.get("/v2/keys/k").json()["node"]["value"], "v");
    assert!(t.log().contains("client TLS handshake from"), "{}", t.log());

    let ca = pki.ca_str();
    let out = ternctl(&["--endpoints", &https, "--ca-file", &ca, "get", "/k"]);
    assert!(
        !out.status.success(),
        "ternctl without a certificate: {}",
        text(&out)
    );
    let (cert, key) = (client.cert_str(), client.key_str());
    let out = ternctl(&[
        "--endpoints",
        &https,
        "--ca-file",
        &ca,
        "--cert-file",
        &cert,
        "--key-file",
        &key,
        "get",
        "/k",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "v\n",
        "{}",
        text(&out)
    );
}

#[test]
fn etcdctl_works_against_tern_over_tls() {
    if !have("etcdctl") {
        println!("skipped: etcdctl is not installed (apt-get install etcd-client)");
        return;
    }
    let dir = temp_dir("tls-etcdctl");
    let pki = Pki::new(&dir.join("pki"), "ca");
    let server = pki.issue("server", &["127.0.0.1"]);
    let client = pki.issue("client", &[]);
    let port = free_port();
    let https = format!("https://127.0.0.1:{port}");
    let mut args = member_args(&dir, std::slice::from_ref(&https));
    args.extend(client_cert_auth_args(&pki, &server));
    let mut t = spawn_tern(&dir, &args);
    wait_tls(&mut t, addr(port), &pki.client_config(Some(&client)));
    let etcdctl = |with_cert: bool, cmd: &[&str]| -> Output {
        let mut c = Command::new("etcdctl");
        c.env("ETCDCTL_API", "2")
            .args(["--endpoints", &https, "--ca-file", &pki.ca_str()]);
        if with_cert {
            c.args([
                "--cert-file",
                &client.cert_str(),
                "--key-file",
                &client.key_str(),
            ]);
        }
        c.args(cmd).output().unwrap()
    };
    let out = etcdctl(true, &["set", "/dir/k", "hello"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\n",
        "{}",
        text(&out)
    );
    let out = etcdctl(true, &["get", "/dir/k"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\n",
        "{}",
        text(&out)
    );
    let out = etcdctl(true, &["ls", "--recursive", "/"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/dir\n/dir/k\n",
        "{}",
        text(&out)
    );
    let out = etcdctl(true, &["member", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("clientURLs={https}")),
        "{}",
        text(&out)
    );
    let out = etcdctl(true, &["cluster-health"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cluster is healthy"),
        "{}",
        text(&out)
    );
    let out = etcdctl(false, &["get", "/dir/k"]);
    assert!(
        !out.status.success(),
        "etcdctl without a certificate: {}",
        text(&out)
    );
}

/// Member `i`'s TLS: its own certificate for its address, client and peer certificate auth
/// against `ca`; the test's connections present `client`.
fn member_tls(ca: &Pki, cert: &Pair, client: &Pair) -> NodeTls {
    let flags = [
        ("--cert-file", cert.cert_str()),
        ("--key-file", cert.key_str()),
        ("--trusted-ca-file", ca.ca_str()),
        ("--peer-cert-file", cert.cert_str()),
        ("--peer-key-file", cert.key_str()),
        ("--peer-trusted-ca-file", ca.ca_str()),
    ];
    let mut args: Vec<String> = flags
        .iter()
        .flat_map(|(f, v)| [f.to_string(), v.clone()])
        .collect();
    args.extend([
        "--client-cert-auth".into(),
        "--peer-client-cert-auth".into(),
    ]);
    NodeTls {
        client: Some(ca.client_config(Some(client))),
        peer: true,
        args,
    }
}

fn peer_addr(c: &Cluster, i: usize) -> SocketAddr {
    format!("{}:{}", c.nodes[i].ip, c.nodes[i].peer_port)
        .parse()
        .unwrap()
}

#[test]
fn a_cluster_with_peer_tls_survives_a_restart_and_a_leader_kill() {
    let mut c = Cluster::plan(3, &[]);
    let pki = Pki::new(&temp_dir("tls-cluster-pki"), "ca");
    let client = pki.issue("client", &[]);
    for i in 0..3 {
        let cert = pki.issue(&format!("m{i}"), &[&c.nodes[i].ip.clone()]);
        c.nodes[i].tls = member_tls(&pki, &cert, &client);
    }
    let all = [0, 1, 2];
    let ic = c.initial_cluster(&all);
    for i in all {
        c.spawn(i, &ic, "new", &[]);
    }
    for i in all {
        c.wait_serving(i, Duration::from_secs(30));
    }
    let leader = c.wait_leader(&all, Duration::from_secs(30));
    assert_eq!(
        c.client(leader).put("/v2/keys/k", &[("value", "1")]).status,
        201
    );
    for i in all {
        c.wait_value(i, "/k", "1", Duration::from_secs(10));
    }

    // The peer port: a certificate of the cluster's CA gets in; no certificate, plain HTTP or
    // (below) another CA's certificate does not — a forged raft message has no way in.
    let p = peer_addr(&c, leader);
    assert!(request_ok(p, &pki.client_config(Some(&client)), "/members"));
    assert!(!request_ok(p, &pki.client_config(None), "/members"));
    assert!(plain_http_answer(p).contains("Client sent an HTTP request to an HTTPS server."));

    // A follower restarts and catches up over TLS.
    let follower = (leader + 1) % 3;
    c.kill(follower);
    assert_eq!(
        c.client(leader).put("/v2/keys/k", &[("value", "2")]).status,
        200
    );
    c.restart(follower);
    c.wait_value(follower, "/k", "2", Duration::from_secs(20));

    // The leader dies: the others elect one of them and go on; the old leader comes back.
    c.kill(leader);
    let others: Vec<usize> = all.into_iter().filter(|&i| i != leader).collect();
    let new_leader = c.wait_leader(&others, Duration::from_secs(30));
    assert_eq!(
        c.client(new_leader)
            .put("/v2/keys/k", &[("value", "3")])
            .status,
        200
    );
    c.restart(leader);
    c.wait_value(leader, "/k", "3", Duration::from_secs(20));

    // A fourth member joins: announced with an https peer URL, it checks its configuration
    // against the running members' list over peer TLS (--initial-cluster-state existing).
    let added = c.plan_node();
    let ip = c.nodes[added].ip.clone();
    let cert = pki.issue("m4", &[&ip]);
    c.nodes[added].tls = member_tls(&pki, &cert, &client);
    let body = format!(r#"{{"peerURLs":["{}"]}}"#, c.nodes[added].peer_url());
    let r = c
        .client(new_leader)
        .try_request(
            "POST",
            "/v2/members",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let ic = c.initial_cluster(&[0, 1, 2, added]);
    c.spawn(added, &ic, "existing", &[]);
    c.wait_serving(added, Duration::from_secs(30));
    c.wait_value(added, "/k", "3", Duration::from_secs(20));
}

#[test]
fn a_member_with_another_cas_certificate_is_kept_out() {
    let mut c = Cluster::plan(3, &[]);
    let pki = Pki::new(&temp_dir("tls-wrong-ca-pki"), "ca");
    let rogue_ca = Pki::new(&temp_dir("tls-wrong-ca-rogue"), "rogue");
    let client = pki.issue("client", &[]);
    let rogue_client = rogue_ca.issue("client", &[]);
    for i in 0..3 {
        let ip = c.nodes[i].ip.clone();
        c.nodes[i].tls = if i < 2 {
            member_tls(&pki, &pki.issue(&format!("m{i}"), &[&ip]), &client)
        } else {
            member_tls(&rogue_ca, &rogue_ca.issue("m2", &[&ip]), &rogue_client)
        };
    }
    let ic = c.initial_cluster(&[0, 1, 2]);
    for i in 0..3 {
        c.spawn(i, &ic, "new", &[]);
    }
    c.wait_serving(0, Duration::from_secs(30));
    c.wait_serving(1, Duration::from_secs(30));
    let leader = c.wait_leader(&[0, 1], Duration::from_secs(30));
    assert_eq!(
        c.client(leader).put("/v2/keys/k", &[("value", "v")]).status,
        201
    );

    // Give the rogue member time to try, then look: nothing reached it, nothing came from it.
    std::thread::sleep(Duration::from_secs(2));
    let rogue_has_it = c
        .try_client(2)
        .and_then(|mut cl| cl.try_request("GET", "/v2/keys/k", &[], b"").ok())
        .is_some_and(|r| r.status == 200);
    assert!(
        !rogue_has_it,
        "the member with the rogue CA's certificate got the data"
    );
    let members = c.client(leader).get("/v2/members").json();
    let rogue_id = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "m3")
        .map(|m| m["id"].as_str().unwrap().to_string())
        .unwrap();
    let stats = c.client(leader).get("/v2/stats/leader").json();
    let counts = &stats["followers"][&rogue_id]["counts"];
    assert_eq!(counts["success"], 0, "{stats}");
    assert!(counts["fail"].as_u64().unwrap_or(0) > 0, "{stats}");
    let logs = c.nodes[0].log() + &c.nodes[1].log() + &c.nodes[2].log();
    assert!(logs.contains("peer TLS handshake"), "{logs}");
    // The rogue CA's certificate does not open the peer port to a request either.
    let rogue_config = pki_client_with_foreign_cert(&pki, &rogue_client);
    assert!(!request_ok(
        peer_addr(&c, leader),
        &rogue_config,
        "/members"
    ));
}

/// Trusts `ca` for the server but presents `cert` (signed by some other CA).
fn pki_client_with_foreign_cert(ca: &Pki, cert: &Pair) -> Arc<rustls::ClientConfig> {
    ca.client_config(Some(cert))
}

#[test]
fn certificates_are_reloaded_when_their_files_change() {
    let dir = temp_dir("tls-rotate");
    let pki = Pki::new(&dir.join("pki"), "ca");
    let first = pki.issue("server-1", &["127.0.0.1"]);
    let (cert, key) = (dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let port = free_port();
    let mut args = member_args(&dir, &[format!("https://127.0.0.1:{port}")]);
    args.extend([
        "--cert-file".into(),
        cert.display().to_string(),
        "--key-file".into(),
        key.display().to_string(),
    ]);
    let mut t = spawn_tern(&dir, &args);
    let config = pki.client_config(None);
    let mut old = wait_tls(&mut t, addr(port), &config);
    let served_cn = || {
        let c = Client::try_connect_tls(addr(port), config.clone()).unwrap();
        common_name(&c.peer_certificates()[0])
    };
    assert_eq!(served_cn(), "server-1");

    // Rotate: the key first, then the certificate (a moment where they do not match).
    let second = pki.issue("server-2", &["127.0.0.1"]);
    std::fs::copy(&second.key, &key).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    std::fs::copy(&second.cert, &cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_cn() != "server-2" {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served:\n{}",
            t.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        t.log().contains("reloaded the client TLS certificate"),
        "{}",
        t.log()
    );
    // The connection made before still works.
    assert_eq!(old.get("/version").status, 200);

    // A broken file is not taken: the last good certificate stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(served_cn(), "server-2");
    assert!(
        t.log().contains("cannot reload the client TLS certificate"),
        "{}",
        t.log()
    );
}

/// Runs `cmd` until it exits (killed after 20 s: a tern that starts is a failure here); its
/// exit code (`None` when killed) and stderr.
fn run_to_exit(cmd: &mut Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (code, stderr)
}

#[test]
fn bad_tls_settings_stop_tern_with_one_line_naming_the_flag() {
    let dir = temp_dir("tls-errors");
    let pki = Pki::new(&dir.join("pki"), "ca");
    let good = pki.issue("good", &["127.0.0.1"]);
    let other = pki.issue("other", &["127.0.0.1"]);
    let expired = pki.issue_expired("old", &["127.0.0.1"]);
    let missing = dir.join("missing.pem").display().to_string();
    let https = format!("https://127.0.0.1:{}", free_port());
    let s = |v: &str| v.to_string();
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec![
                s("--cert-file"),
                missing.clone(),
                s("--key-file"),
                good.key_str(),
            ],
            vec![s("--cert-file"), missing.clone()],
        ),
        (
            vec![
                s("--cert-file"),
                good.cert_str(),
                s("--key-file"),
                other.key_str(),
            ],
            vec![
                s("--key-file"),
                other.key_str(),
                s("does not match"),
                good.cert_str(),
            ],
        ),
        (
            vec![
                s("--cert-file"),
                expired.cert_str(),
                s("--key-file"),
                expired.key_str(),
            ],
            vec![s("--cert-file"), expired.cert_str(), s("expired")],
        ),
        (
            vec![],
            vec![
                s("TLS key/cert (--cert-file, --key-file) must be provided for client url"),
                https.clone(),
            ],
        ),
        (
            vec![
                s("--cert-file"),
                good.cert_str(),
                s("--key-file"),
                good.key_str(),
                s("--client-cert-auth"),
                s("--trusted-ca-file"),
                missing.clone(),
            ],
            vec![s("--trusted-ca-file"), missing.clone()],
        ),
        (
            vec![
                s("--cert-file"),
                good.cert_str(),
                s("--key-file"),
                good.key_str(),
                s("--client-cert-auth"),
            ],
            vec![s("--client-cert-auth needs --trusted-ca-file")],
        ),
        (
            vec![
                s("--cert-file"),
                good.cert_str(),
                s("--key-file"),
                good.key_str(),
                s("--cipher-suites"),
                s("TLS_RSA_WITH_RC4_128_SHA"),
            ],
            vec![s("--cipher-suites"), s("TLS_RSA_WITH_RC4_128_SHA")],
        ),
    ];
    for (i, (flags, wanted)) in cases.iter().enumerate() {
        let data = dir.join(format!("case{i}"));
        let mut args = member_args(&data, std::slice::from_ref(&https));
        args.extend(flags.iter().cloned());
        let (code, stderr) = run_to_exit(Command::new(env!("CARGO_BIN_EXE_tern")).args(&args));
        assert_eq!(code, Some(1), "{flags:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{flags:?}: one line, not {stderr}");
        assert!(lines[0].starts_with("tern: "), "{stderr}");
        for w in wanted {
            assert!(
                lines[0].contains(w.as_str()),
                "{flags:?}: {w:?} not in {stderr}"
            );
        }
    }
    // The peer side names its own flags.
    let peer = format!("https://127.0.0.1:{}", free_port());
    let (code, stderr) = run_to_exit(
        Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["--data-dir", &dir.join("peer").display().to_string()])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args([
                "--peer-cert-file",
                &missing,
                "--peer-key-file",
                &good.key_str(),
            ]),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--peer-cert-file") && stderr.contains(&missing),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn auto_tls_serves_clients_and_peers_with_generated_certificates() {
    let mut c = Cluster::plan(3, &[]);
    for n in &mut c.nodes {
        n.tls = NodeTls {
            client: Some(tern::tls::client::skip_verify_config()),
            peer: true,
            args: vec!["--auto-tls".into(), "--peer-auto-tls".into()],
        };
    }
    let ic = c.initial_cluster(&[0, 1, 2]);
    for i in 0..3 {
        c.spawn(i, &ic, "new", &[]);
    }
    for i in 0..3 {
        c.wait_serving(i, Duration::from_secs(30));
    }
    let leader = c.wait_leader(&[0, 1, 2], Duration::from_secs(30));
    assert_eq!(
        c.client(leader)
            .put("/v2/keys/auto", &[("value", "yes")])
            .status,
        201
    );
    for i in 0..3 {
        c.wait_value(i, "/auto", "yes", Duration::from_secs(10));
        let data = c.nodes[i].dir.join("data");
        for side in ["client", "peer"] {
            let cert = data.join("fixtures").join(side).join("cert.pem");
            assert!(cert.exists(), "{} is missing", cert.display());
        }
    }
    assert!(plain_http_answer(peer_addr(&c, leader)).contains("HTTPS server"));
}

#[test]
fn cipher_suites_limit_tls12_and_leave_tls13_on() {
    let dir = temp_dir("tls-suites");
    let pki = Pki::new(&dir.join("pki"), "ca");
    let server = pki.issue("server", &["127.0.0.1"]);
    let port = free_port();
    let mut args = member_args(&dir, &[format!("https://127.0.0.1:{port}")]);
    args.extend([
        "--cert-file".into(),
        server.cert_str(),
        "--key-file".into(),
        server.key_str(),
        "--cipher-suites".into(),
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
    ]);
    let mut t = spawn_tern(&dir, &args);
    wait_tls(&mut t, addr(port), &pki.client_config(None));
    let tls12_with = |suite: rustls::CipherSuite| -> Arc<rustls::ClientConfig> {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites.retain(|s| s.suite() == suite);
        let roots = {
            let mut r = rustls::RootCertStore::empty();
            for c in tern::tls::pem::certs(&pki.ca()).unwrap() {
                r.add(c).unwrap();
            }
            r
        };
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    use rustls::CipherSuite as S;
    assert!(request_ok(
        addr(port),
        &tls12_with(S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        "/version"
    ));
    assert!(!request_ok(
        addr(port),
        &tls12_with(S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
        "/version"
    ));
    assert!(
        request_ok(addr(port), &pki.client_config(None), "/version"),
        "TLS 1.3 stays on"
    );
}

/// A proxy in a TLS cluster: clients reach it over `https://` with a client certificate, it
/// reaches the members' `https://` client URLs with its own certificate (`--cert-file`, as
/// etcd's proxy uses the client TLS files) and their peers for the member list with its peer
/// certificate.
#[test]
fn a_proxy_speaks_tls_to_its_clients_and_to_the_members() {
    let mut c = Cluster::plan(2, &[]);
    let pki = Pki::new(&temp_dir("tls-proxy-pki"), "ca");
    let client = pki.issue("client", &[]);
    for i in 0..2 {
        let cert = pki.issue(&format!("n{i}"), &[&c.nodes[i].ip.clone()]);
        c.nodes[i].tls = member_tls(&pki, &cert, &client);
    }
    let ic = c.initial_cluster(&[0]);
    c.spawn(0, &ic, "new", &[]);
    c.wait_serving(0, Duration::from_secs(30));
    c.spawn(1, &ic, "new", &["--proxy", "on"]);
    c.wait_serving(1, Duration::from_secs(30));
    let mut through = c.client(1);
    let w = through.put("/v2/keys/tls-proxy", &[("value", "1")]);
    assert_eq!(w.status, 201, "{}", w.text());
    c.wait_value(0, "/tls-proxy", "1", Duration::from_secs(10));
    let endpoints = through.get("/v2/config/local/proxy").json();
    assert_eq!(
        endpoints["endpoints"][0],
        format!("https://{}:{}", c.nodes[0].ip, c.nodes[0].client_port),
        "{endpoints}"
    );
    // Without a client certificate the proxy's listener refuses the handshake.
    let anonymous = Client::try_connect_tls(c.nodes[1].addr(), pki.client_config(None))
        .and_then(|mut a| a.try_request("GET", "/v2/keys/tls-proxy", &[], b""));
    assert!(anonymous.is_err(), "{:?}", anonymous.map(|r| r.status));
}
