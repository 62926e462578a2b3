//! Durability against real tern processes: `kill -9` under concurrent load loses no
//! acknowledged write, indexes only grow, and a restart with snapshots and a long WAL recovers
//! the same state.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, start_tern_on, temp_dir, Client};

/// Writers put `w<t>-<n>` = `<n>` until stopped; every acknowledged key is recorded.
fn run_writers(
    addr: std::net::SocketAddr,
    writers: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<HashMap<String, String>>>,
    round: usize,
) -> Vec<std::thread::JoinHandle<u64>> {
    (0..writers)
        .map(|t| {
            let stop = stop.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut max_index = 0;
                let Ok(mut c) = Client::try_connect(addr) else {
                    return 0;
                };
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("r{round}-w{t}-{n}");
                    let val = n.to_string();
                    let body = format!("value={val}");
                    let r = c.try_request(
                        "PUT",
                        &format!("/v2/keys/{key}"),
                        &[("Content-Type", "application/x-www-form-urlencoded")],
                        body.as_bytes(),
                    );
                    match r {
                        Ok(r) if r.status == 201 => {
                            max_index =
                                max_index.max(r.header("x-etcd-index").unwrap().parse().unwrap());
                            acked.lock().unwrap().insert(key, val);
                        }
                        // The server was killed mid-request: this write is unknown, not acknowledged.
                        _ => break,
                    }
                    n += 1;
                }
                max_index
            })
        })
        .collect()
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_write() {
    let dir = temp_dir("crash");
    let (port, peer) = (free_port(), free_port());
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut highest_index = 0u64;
    for round in 0..4 {
        let mut tern = start_tern_on(&dir, port, peer, 2, &["--snapshot-count", "500"]);
        // Everything acknowledged before every earlier crash is still there.
        let mut c = tern.client();
        for (key, val) in acked.lock().unwrap().iter() {
            let r = c.get(&format!("/v2/keys/{key}"));
            assert_eq!(r.status, 200, "round {round}: lost acknowledged {key}");
            assert_eq!(r.json()["node"]["value"], val.as_str());
        }
        let index: u64 = c
            .get("/v2/keys/")
            .header("x-etcd-index")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            index >= highest_index,
            "round {round}: index went back from {highest_index} to {index}"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let handles = run_writers(tern.addr, 16, stop.clone(), acked.clone(), round);
        std::thread::sleep(Duration::from_millis(300 + 150 * round as u64));
        tern.child.kill().unwrap(); // SIGKILL
        let _ = tern.child.wait();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            highest_index = highest_index.max(h.join().unwrap());
        }
    }
    let tern = start_tern_on(&dir, port, peer, 1, &[]);
    let mut c = tern.client();
    let total = acked.lock().unwrap().len();
    assert!(total > 100, "only {total} writes were acknowledged");
    for (key, val) in acked.lock().unwrap().iter() {
        let r = c.get(&format!("/v2/keys/{key}"));
        assert_eq!(r.status, 200, "lost acknowledged {key}");
        assert_eq!(r.json()["node"]["value"], val.as_str());
    }
    drop(tern);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn restart_with_snapshots_and_a_long_wal_recovers_the_same_state() {
    let dir = temp_dir("long-wal");
    let (port, peer) = (free_port(), free_port());
    let before;
    {
        let tern = start_tern_on(
            &dir,
            port,
            peer,
            2,
            &["--snapshot-count", "20000", "--max-snapshots", "2"],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(HashMap::new()));
        let handles = run_writers(tern.addr, 32, stop.clone(), acked.clone(), 0);
        let deadline = Instant::now() + Duration::from_secs(120);
        // At least 100k entries, well past several snapshots.
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if acked.lock().unwrap().len() >= 100_000 || Instant::now() > deadline {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
        let mut c = tern.client();
        c.put("/v2/keys/ttl", &[("value", "t"), ("ttl", "1000")]);
        before = c.get("/v2/keys/?recursive=true&sorted=true");
        assert!(
            acked.lock().unwrap().len() >= 100_000,
            "wrote only {}",
            acked.lock().unwrap().len()
        );
    }
    let snaps = std::fs::read_dir(dir.join("data/member/snap"))
        .unwrap()
        .count();
    assert!((1..=2).contains(&snaps), "{snaps} snapshot files kept");
    let tern = start_tern_on(&dir, port, peer, 2, &[]);
    let mut c = tern.client();
    let after = c.get("/v2/keys/?recursive=true&sorted=true");
    assert_eq!(after.header("x-etcd-index"), before.header("x-etcd-index"));
    let strip_ttl = |mut v: serde_json::Value| {
        for n in v["node"]["nodes"].as_array_mut().unwrap() {
            n.as_object_mut().unwrap().remove("ttl");
        }
        v
    };
    assert!(
        strip_ttl(after.json()) == strip_ttl(before.json()),
        "state differs after restart"
    );
    drop(tern);
    let _ = std::fs::remove_dir_all(dir);
}
