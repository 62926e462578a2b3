//! The manual's §5.1 key-space walk-through and §5.3 watches, against a real tern process.

mod common;

use std::time::Duration;

use common::{start_tern, Client, Server};
use serde_json::json;

#[test]
fn set_get_delete_a_key_as_in_the_manual() {
    let tern = start_tern(2, &[]);
    let mut c = tern.client();

    let r = c.put("/v2/keys/message", &[("value", "hello etcd")]);
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["action"], "set");
    assert_eq!(v["node"]["key"], "/message");
    assert_eq!(v["node"]["value"], "hello etcd");
    let idx = v["node"]["modifiedIndex"].as_u64().unwrap();
    assert_eq!(v["node"]["createdIndex"].as_u64().unwrap(), idx);
    assert_eq!(r.header("x-etcd-index").unwrap(), idx.to_string());
    assert!(r.header("x-raft-index").is_some());
    assert!(r.header("x-raft-term").is_some());
    assert!(r.header("x-etcd-cluster-id").is_some());

    let r = c.get("/v2/keys/message");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["node"]["value"], "hello etcd");
    assert_eq!(r.json()["action"], "get");

    // Overwrite: 200 with prevNode.
    let r = c.put("/v2/keys/message", &[("value", "again")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["prevNode"]["value"], "hello etcd");

    let r = c.request("DELETE", "/v2/keys/message", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["action"], "delete");
    assert_eq!(r.json()["prevNode"]["value"], "again");

    let r = c.get("/v2/keys/message");
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["errorCode"], 100);
    assert_eq!(v["message"], "Key not found");
    assert_eq!(v["cause"], "/message");
}

#[test]
fn every_shard_sees_every_write_at_once() {
    // Many connections land on different shards (SO_REUSEPORT): a write acknowledged on one
    // must be readable on whichever shard the next connection reaches.
    let tern = start_tern(2, &[]);
    for i in 0..40 {
        let mut w = tern.client();
        let val = format!("v{i}");
        assert_eq!(w.put("/v2/keys/seen", &[("value", &val)]).status / 100, 2);
        let mut r = tern.client();
        assert_eq!(r.get("/v2/keys/seen").json()["node"]["value"], val.as_str());
    }
}

#[test]
fn ttl_dirs_in_order_keys_and_conditions() {
    let tern = start_tern(1, &[]);
    let mut c = tern.client();

    // TTL: expiration and ttl fields.
    let r = c.put("/v2/keys/ttlkey", &[("value", "x"), ("ttl", "5")]);
    let v = r.json();
    assert_eq!(v["node"]["ttl"], 5);
    assert!(v["node"]["expiration"].as_str().unwrap().ends_with('Z'));

    // In-order keys: names sort in creation order.
    let a = c.request("POST", "/v2/keys/queue", &[("value", "first")]);
    let b = c.request("POST", "/v2/keys/queue", &[("value", "second")]);
    assert_eq!(a.status, 201);
    assert_eq!(a.json()["action"], "create");
    let ka = a.json()["node"]["key"].as_str().unwrap().to_string();
    let kb = b.json()["node"]["key"].as_str().unwrap().to_string();
    assert!(ka < kb, "{ka} < {kb}");
    assert_eq!(ka.len(), "/queue/".len() + 20);
    let r = c.get("/v2/keys/queue?recursive=true&sorted=true");
    let nodes = r.json()["node"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["value"], "first");

    // Directories.
    assert_eq!(c.put("/v2/keys/dir", &[("dir", "true")]).status, 201);
    let r = c.put(
        "/v2/keys/dir",
        &[("dir", "true"), ("ttl", "30"), ("prevExist", "true")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["node"]["ttl"], 30);
    let r = c.request("DELETE", "/v2/keys/dir?dir=true", &[]);
    assert_eq!(r.status, 200);

    // Compare-and-swap (§5.1.10) and compare-and-delete (§5.1.11).
    c.put("/v2/keys/foo", &[("value", "one")]);
    let r = c.put("/v2/keys/foo?prevExist=false", &[("value", "three")]);
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["errorCode"], 105);
    let r = c.put("/v2/keys/foo?prevValue=two", &[("value", "three")]);
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["errorCode"], 101);
    assert_eq!(r.json()["cause"], "[two != one]");
    let r = c.put("/v2/keys/foo?prevValue=one", &[("value", "three")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["action"], "compareAndSwap");
    let r = c.request("DELETE", "/v2/keys/foo?prevValue=one", &[]);
    assert_eq!(r.json()["errorCode"], 101);
    let r = c.request("DELETE", "/v2/keys/foo?prevValue=three", &[]);
    assert_eq!(r.json()["action"], "compareAndDelete");

    // Hidden keys are not listed.
    c.put("/v2/keys/_hidden", &[("value", "h")]);
    let r = c.get("/v2/keys/");
    let listed: Vec<String> = r.json()["node"]["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| n["key"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(!listed.contains(&"/_hidden".to_string()), "{listed:?}");
    assert_eq!(c.get("/v2/keys/_hidden").json()["node"]["value"], "h");
}

#[test]
fn watch_sees_a_write_from_another_connection() {
    let tern = start_tern(2, &[]);
    // Several watchers on fresh connections spread across shards.
    let mut watchers: Vec<Client> = (0..6)
        .map(|_| {
            let (w, headers) = open_watch(&tern, "/foo");
            assert!(headers.contains_key("x-etcd-index"));
            w
        })
        .collect();
    let mut c = tern.client();
    c.put("/v2/keys/foo", &[("value", "bar")]);
    for w in watchers.iter_mut() {
        let chunk = w.read_chunk().unwrap().expect("an event");
        let v: serde_json::Value = serde_json::from_slice(&chunk).unwrap();
        assert_eq!(v["action"], "set");
        assert_eq!(v["node"]["value"], "bar");
    }

    // History replay: waitIndex of that write answers at once.
    let idx = c.get("/v2/keys/foo").json()["node"]["modifiedIndex"]
        .as_u64()
        .unwrap();
    let r = c.get(&format!("/v2/keys/foo?wait=true&waitIndex={idx}"));
    assert_eq!(r.json()["node"]["value"], "bar");
    assert_eq!(r.json()["node"]["modifiedIndex"], json!(idx));
}

#[test]
fn expiry_is_seen_by_a_watcher() {
    let tern = start_tern(2, &[]);
    let mut c = tern.client();
    c.put("/v2/keys/short", &[("value", "x"), ("ttl", "1")]);
    let mut w = tern.client();
    w.set_read_timeout(Duration::from_secs(10));
    let r = w.get("/v2/keys/short?wait=true");
    let v = r.json();
    assert_eq!(v["action"], "expire");
    assert_eq!(v["node"]["key"], "/short");
    assert_eq!(v["prevNode"]["value"], "x");
    assert_eq!(c.get("/v2/keys/short").status, 404);
}

#[test]
fn waitindex_older_than_history_is_401() {
    let tern = start_tern(1, &["--watch-history", "10"]);
    let mut c = tern.client();
    for i in 0..30 {
        c.put("/v2/keys/h", &[("value", &i.to_string())]);
    }
    let r = c.get("/v2/keys/h?wait=true&waitIndex=1");
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["errorCode"], 401);
    assert_eq!(
        v["message"],
        "The event in requested index is outdated and cleared"
    );
    assert_eq!(v["cause"], "the requested history has been cleared [21/1]");
    assert_eq!(v["index"], 30);
}

#[test]
fn other_endpoints() {
    let tern = start_tern(1, &[]);
    let mut c = tern.client();
    let r = c.get("/version");
    assert_eq!(r.json()["etcdserver"], "2.3.7");
    let r = c.get("/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["health"], "true");
    let r = c.get("/v2/machines");
    assert_eq!(r.text(), format!("http://{}", tern.addr));
    let r = c.get("/v2/members");
    let m = &r.json()["members"][0];
    assert_eq!(m["name"], "t1");
    assert_eq!(m["clientURLs"][0], format!("http://{}", tern.addr));
    let r = c.get("/v2/stats/self");
    assert_eq!(r.json()["state"], "StateLeader");
    assert_eq!(r.json()["name"], "t1");
    let r = c.get("/v2/stats/leader");
    assert_eq!(r.json()["followers"], json!({}));
    c.put("/v2/keys/s", &[("value", "1")]);
    c.get("/v2/keys/s");
    c.get("/v2/keys/nope");
    let r = c.get("/v2/stats/store");
    let v = r.json();
    assert_eq!(v["setsSuccess"], 1);
    assert!(v["getsSuccess"].as_u64().unwrap() >= 1);
    assert!(v["getsFail"].as_u64().unwrap() >= 1);
    let m = c.get("/metrics").text();
    let fsyncs: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("tern_wal_fsyncs_total "))
        .and_then(|v| v.parse().ok())
        .expect("tern_wal_fsyncs_total");
    assert!(fsyncs >= 1, "{m}");
    // As etcd's: the Prometheus handler takes any method; `/health` is typed as text.
    assert_eq!(c.request("POST", "/metrics", &[]).status, 200);
    assert_eq!(
        c.get("/health").header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let r = c.request("HEAD", "/health", &[]);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = c.request("POST", "/v2/machines", &[]);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET,HEAD")));
    assert_eq!(c.request("OPTIONS", "*", &[]).status, 200);
    // Routes match the percent-decoded path, as Go's ServeMux does.
    assert_eq!(c.get("/v2/%6Beys/s").json()["node"]["value"], "1");
    assert_eq!(c.get("/v2/keys%2Fs").json()["node"]["value"], "1");
    assert_eq!(c.get("/v2/stats/%73elf").json()["name"], "t1");
    assert_eq!(c.get("/v2/%6Dembers").json()["members"][0]["name"], "t1");
    assert_eq!(c.get("/v2/nothing").status, 404);
    assert_eq!(c.request("PATCH", "/v2/keys/x", &[]).status, 405);
    assert_eq!(c.request("POST", "/version", &[]).status, 405);
}

#[test]
fn quorum_reads_and_cors() {
    let tern = start_tern(2, &["--cors", "*"]);
    let mut c = tern.client();
    c.put("/v2/keys/q", &[("value", "1")]);
    let r = c.get("/v2/keys/q?quorum=true");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["node"]["value"], "1");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = c.request("OPTIONS", "/v2/keys/q", &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn malformed_requests_get_4xx_and_others_are_unaffected() {
    let tern = start_tern(1, &[]);
    let mut good = tern.client();
    good.put("/v2/keys/ok", &[("value", "1")]);
    let mut bad = tern.client();
    bad.send_raw(b"\x00\x01garbage\r\n\r\n");
    let r = bad.read_response(false).unwrap();
    assert_eq!(r.status, 400);
    let r = good.get("/v2/keys/ok?ttl=abc&prevIndex=x");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], 203);
    let r = good.put("/v2/keys/ok?ttl=abc", &[]);
    assert_eq!(r.json()["errorCode"], 202);
    let r = good.put("/v2/keys/ok", &[("prevExist", "maybe")]);
    assert_eq!(r.json()["errorCode"], 209);
    // A path Go cannot parse gets Go's 400, and the connection closes as Go's does.
    let r = tern.client().request("PUT", "/v2/keys/ok%zz", &[]);
    assert_eq!((r.status, r.text().as_str()), (400, "400 Bad Request"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(good.get("/v2/keys/ok").json()["node"]["value"], "1");
}

#[test]
fn a_disconnected_watcher_is_released_at_once() {
    let tern = start_tern(2, &[]);
    let mut c = tern.client();
    let watchers = |c: &mut Client| {
        c.get("/v2/stats/store").json()["watchers"]
            .as_u64()
            .unwrap()
    };
    let (w, _) = open_watch(&tern, "/gone");
    assert_eq!(watchers(&mut c), 1);
    drop(w);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while watchers(&mut c) != 0 {
        assert!(std::time::Instant::now() < deadline, "watcher not released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn absurd_keys_are_refused_not_stored() {
    let tern = start_tern(1, &[]);
    let mut c = tern.client();
    let deep = "/a".repeat(1000);
    let r = c.put(&format!("/v2/keys{deep}"), &[("value", "x")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], 209);
    let long = "k".repeat(20_000);
    let r = c.put(&format!("/v2/keys/{long}"), &[("value", "x")]);
    assert_eq!(r.status, 400);
    assert_eq!(c.get("/v2/stats/store").json()["setsSuccess"], 0);
}

#[test]
fn the_index_a_client_saw_never_goes_back_on_another_connection() {
    // While writes stream in, each read on a fresh connection (any shard) must show an
    // X-Etcd-Index at least as high as the read before it showed.
    let tern = start_tern(4, &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut w = tern.client();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let val = i.to_string();
                assert_eq!(w.put("/v2/keys/moving", &[("value", &val)]).status / 100, 2);
            }
        })
    };
    let mut last = 0u64;
    for _ in 0..300 {
        let mut r = tern.client();
        let resp = r.get("/v2/keys/moving");
        let index: u64 = resp
            .header("X-Etcd-Index")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(
            index >= last,
            "X-Etcd-Index went back from {last} to {index}"
        );
        last = index;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(last > 0);
}

#[test]
fn what_a_watcher_saw_is_readable_on_every_shard() {
    let tern = start_tern(2, &[]);
    let mut writer = tern.client();
    for i in 0..20 {
        let (mut w, _) = open_watch(&tern, "/seen-by-watch");
        let val = format!("v{i}");
        // Write without waiting for the answer, so the watcher may hear of it first.
        writer.send_raw(
            format!(
                "PUT /v2/keys/seen-by-watch HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\nvalue={val}",
                6 + val.len()
            )
            .as_bytes(),
        );
        let event: serde_json::Value =
            serde_json::from_slice(&w.read_chunk().unwrap().unwrap()).unwrap();
        assert_eq!(event["node"]["value"], val.as_str());
        for _ in 0..4 {
            let mut r = tern.client();
            assert_eq!(
                r.get("/v2/keys/seen-by-watch").json()["node"]["value"],
                val.as_str()
            );
        }
        assert_eq!(writer.read_response(false).unwrap().status / 100, 2);
    }
}

#[test]
fn oversized_bodies_get_413() {
    let tern = start_tern(1, &["--max-request-bytes", "1024"]);
    let mut c = tern.client();
    let big = "x".repeat(4096);
    let r = c.put("/v2/keys/big", &[("value", &big)]);
    assert_eq!(r.status, 413);
    let mut c = tern.client();
    assert_eq!(c.put("/v2/keys/small", &[("value", "ok")]).status, 201);
}

#[test]
fn bad_flags_name_the_flag_and_exit_1() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--heartbeat-interval", "abc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-heartbeat-interval"));
    let out = run(&["-listen-client-urls=http://example.com:2379"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected IP in URL for binding"));
    let out = run(&["--addr", "127.0.0.1:4001"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag --addr is not supported yet"));
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("etcd API Version: 2.3.7"));
}

#[test]
fn etcd_environment_variables_configure_tern() {
    let port = common::free_port();
    let dir = common::temp_dir("env");
    let url = format!("http://127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .env("ETCD_NAME", "from-env")
        .env("ETCD_DATA_DIR", dir.join("d"))
        .env("ETCD_LISTEN_CLIENT_URLS", &url)
        .env("ETCD_ADVERTISE_CLIENT_URLS", &url)
        .env("ETCD_LISTEN_PEER_URLS", "http://127.0.0.1:0")
        .env("TERN_SHARDS", "1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let name = loop {
        if let Ok(mut c) = Client::try_connect(addr) {
            if let Ok(r) = c.try_request("GET", "/v2/stats/self", &[], b"") {
                break r.json()["name"].as_str().unwrap().to_string();
            }
        }
        assert!(std::time::Instant::now() < deadline, "tern did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(name, "from-env");
}

#[test]
fn two_terns_started_at_once_on_one_port_do_not_share_it() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let start = |tag: &str| {
        let dir = common::temp_dir(tag);
        let peer = format!("http://127.0.0.1:{}", common::free_port());
        std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("default={peer}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut a = start("twin-a");
    let mut b = start("twin-b");
    // One of them gives up; the other serves.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let loser = loop {
        if let Some(status) = a.try_wait().unwrap() {
            break (a, b, status);
        }
        if let Some(status) = b.try_wait().unwrap() {
            break (b, a, status);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both terns kept running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (lost, mut won, status) = loser;
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut lost.stderr.unwrap(), &mut err).unwrap();
    assert!(err.contains("address already in use"), "{err}");
    assert!(
        won.try_wait().unwrap().is_none(),
        "the other tern stopped too"
    );
    let _ = won.kill();
    let _ = won.wait();
}

/// A shard without watchers or waiters is not sent the batches that carry nothing for it; when a
/// watch starts there it catches up from the published version. Watches started on such idle
/// shards must start at the current index, hear the next change, and replay history.
#[test]
fn watches_on_shards_that_sat_idle_start_current_and_hear_the_next_change() {
    let tern = start_tern(4, &[]);
    let mut writer = tern.client();
    for round in 0..3 {
        let mut last_index = 0u64;
        for i in 0..30 {
            let r = writer.put(&format!("/v2/keys/idle/k{i}"), &[("value", "x")]);
            assert_eq!(r.status / 100, 2);
            last_index = r.header("X-Etcd-Index").unwrap().parse().unwrap();
        }
        let mut watchers: Vec<Client> = (0..16)
            .map(|_| {
                let (w, headers) = open_watch(&tern, "/idle/w");
                let start: u64 = headers["x-etcd-index"].parse().unwrap();
                assert!(
                    start >= last_index,
                    "round {round}: a watch started at {start}, before the write at {last_index}"
                );
                w
            })
            .collect();
        let value = format!("r{round}");
        let r = writer.put("/v2/keys/idle/w", &[("value", &value)]);
        let index = r.json()["node"]["modifiedIndex"].as_u64().unwrap();
        for w in watchers.iter_mut() {
            let event: serde_json::Value =
                serde_json::from_slice(&w.read_chunk().unwrap().expect("an event")).unwrap();
            assert_eq!(event["node"]["value"], value.as_str());
            assert_eq!(event["node"]["modifiedIndex"], json!(index));
        }
        drop(watchers);
        // History, from fresh connections: the first key of this round.
        for _ in 0..8 {
            let mut c = tern.client();
            let r = c.get(&format!(
                "/v2/keys/idle/k0?wait=true&waitIndex={}",
                last_index - 29
            ));
            assert_eq!(r.json()["node"]["modifiedIndex"], json!(last_index - 29));
        }
    }
}

/// Starts a long-poll watch of `key` on a fresh connection and reads the head of its answer
/// (200, and the headers); the event follows as a chunk.
fn open_watch(tern: &Server, key: &str) -> (Client, std::collections::BTreeMap<String, String>) {
    let mut w = tern.client();
    w.send_raw(
        format!(
            "GET /v2/keys{key}?wait=true HTTP/1.1\r\nHost: {}\r\n\r\n",
            tern.addr
        )
        .as_bytes(),
    );
    let (status, headers) = w.read_head().unwrap();
    assert_eq!(status, 200, "watch of {key}");
    (w, headers)
}
