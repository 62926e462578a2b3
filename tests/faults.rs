//! Fault injection: concurrent clients run quorum reads, writes and compare-and-swaps against a
//! 3-member cluster while members are killed (`kill -9`, then restarted), paused (SIGSTOP) and —
//! when the test runs as root with iptables — cut off from the others on their 127.x.y.z
//! address. Afterwards the recorded history must be linearizable (checked per key with a
//! WGL search, `tern::sim::linearizability`), which also means no acknowledged write was lost.

mod common;
#[allow(dead_code)]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{iptables_usable, partition, Cluster};
use common::{encode_form, Client};
use tern::sim::linearizability::{check, Op, OpKind, Verdict};

const KEYS: [&str; 3] = ["/lin/a", "/lin/b", "/lin/c"];
const CLIENTS: usize = 6;
const FAULT_TIME: Duration = Duration::from_secs(12);

/// A tiny deterministic generator (xorshift), seeded per client.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn nanos(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// What one request told us: `Some(resp)` when an answer arrived, `None` when the outcome is
/// unknown (timeout, reset).
fn send(
    conn: &mut Option<Client>,
    c: &Cluster,
    member: usize,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Option<common::Resp> {
    if conn.is_none() {
        let client = c.try_client(member)?;
        client.set_read_timeout(Duration::from_secs(3));
        *conn = Some(client);
    }
    let body = encode_form(form);
    let headers: &[(&str, &str)] = if form.is_empty() {
        &[]
    } else {
        &[("Content-Type", "application/x-www-form-urlencoded")]
    };
    let client = conn.as_mut()?;
    match client.try_request(method, path, headers, body.as_bytes()) {
        Ok(r) => Some(r),
        Err(_) => {
            *conn = None;
            None
        }
    }
}

fn error_code(r: &common::Resp) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()?
        .get("errorCode")?
        .as_u64()
}

/// One client: random operations on random keys through random members until `stop`.
fn run_client(
    id: usize,
    c: Arc<Cluster>,
    start: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Op>>>,
) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) * 0x1234_5678));
    let mut seq = 0u64;
    let n = c.nodes.len() as u64;
    let mut member = rng.below(n) as usize;
    let mut conn: Option<Client> = None;
    let mut last_seen: std::collections::HashMap<&str, String> = Default::default();
    while !stop.load(Ordering::Relaxed) {
        let key = KEYS[rng.below(KEYS.len() as u64) as usize];
        seq += 1;
        let value = format!("c{id}-{seq}");
        let call = nanos(start);
        // What happened: the operation and its return time (`None`: outcome unknown), or
        // nothing at all for a read that failed.
        let happened: Option<(OpKind, Option<u64>)> = match rng.below(3) {
            0 => {
                let r = send(
                    &mut conn,
                    &c,
                    member,
                    "GET",
                    &format!("/v2/keys{key}?quorum=true"),
                    &[],
                );
                let ret = nanos(start);
                match r {
                    // 404 with error 100: the key does not exist (the value reads as null).
                    Some(r)
                        if r.status == 200 || (r.status == 404 && error_code(&r) == Some(100)) =>
                    {
                        let result = r.json()["node"]["value"].as_str().map(str::to_string);
                        Some((OpKind::Read { result }, Some(ret)))
                    }
                    // A failed read tells nothing.
                    _ => None,
                }
            }
            1 => {
                let r = send(
                    &mut conn,
                    &c,
                    member,
                    "PUT",
                    &format!("/v2/keys{key}"),
                    &[("value", &value)],
                );
                let ret = nanos(start);
                let done = r.is_some_and(|r| matches!(r.status, 200 | 201));
                Some((OpKind::Write { value }, done.then_some(ret)))
            }
            _ => {
                // Compare against the value this client last saw there, so many succeed.
                let expected = last_seen
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| "never-written".into());
                let r = send(
                    &mut conn,
                    &c,
                    member,
                    "PUT",
                    &format!("/v2/keys{key}"),
                    &[("value", &value), ("prevValue", &expected)],
                );
                let ret = nanos(start);
                let outcome = match &r {
                    Some(r) if r.status == 200 => Some(true),
                    // 101: compare failed; 100: no such key (a CAS on a missing key fails).
                    Some(r) if matches!(error_code(r), Some(100 | 101)) => Some(false),
                    _ => None,
                };
                let kind = OpKind::Cas {
                    expected,
                    new: value,
                    ok: outcome.unwrap_or(true),
                };
                Some((kind, outcome.map(|_| ret)))
            }
        };
        let op = happened.map(|(kind, ret)| Op {
            client: id,
            key: key.into(),
            call,
            ret,
            kind,
        });
        let failed = op.as_ref().is_none_or(|o| o.ret.is_none());
        if let Some(op) = op.as_ref().filter(|o| o.ret.is_some()) {
            match &op.kind {
                OpKind::Read {
                    result: Some(value),
                }
                | OpKind::Write { value }
                | OpKind::Cas {
                    new: value,
                    ok: true,
                    ..
                } => {
                    last_seen.insert(key, value.clone());
                }
                _ => {}
            }
        }
        if let Some(op) = op {
            history.lock().unwrap().push(op);
        }
        if failed {
            // Try another member next time.
            conn = None;
            member = rng.below(n) as usize;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill,
    Pause,
    Partition,
}

#[test]
fn history_under_kills_pauses_and_partitions_is_linearizable() {
    let use_iptables = iptables_usable();
    if !use_iptables {
        println!("faults: not root or no iptables: partitions are skipped (kills and pauses run)");
    }
    let c = Cluster::start(3, &[]);
    c.wait_leader(&[0, 1, 2], Duration::from_secs(30));
    let c = Arc::new(Mutex::new(c));
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(Vec::new()));

    // Clients get their own view of the addresses (a Cluster clone is not possible: share the
    // plan through a second, read-only handle).
    let view = Arc::new(snapshot_view(&c.lock().unwrap()));
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let (view, stop, history) = (view.clone(), stop.clone(), history.clone());
        clients.push(std::thread::spawn(move || {
            run_client(id, view, start, stop, history)
        }));
    }

    let mut faults = vec![Fault::Kill, Fault::Pause];
    if use_iptables {
        faults.push(Fault::Partition);
    }
    let mut rng = Rng(0xfeed_beef);
    let mut round = 0usize;
    let mut applied = Vec::new();
    while start.elapsed() < FAULT_TIME {
        let victim = rng.below(3) as usize;
        let fault = faults[round % faults.len()];
        round += 1;
        applied.push((fault, victim));
        std::thread::sleep(Duration::from_millis(400));
        let mut cl = c.lock().unwrap();
        match fault {
            Fault::Kill => {
                cl.kill(victim);
                drop(cl);
                std::thread::sleep(Duration::from_millis(1000));
                c.lock().unwrap().restart(victim);
            }
            Fault::Pause => {
                cl.pause(victim);
                drop(cl);
                std::thread::sleep(Duration::from_millis(1500));
                c.lock().unwrap().resume(victim);
            }
            Fault::Partition => {
                let ip = cl.nodes[victim].ip.clone();
                let others: Vec<String> = (0..3)
                    .filter(|&i| i != victim)
                    .map(|i| cl.nodes[i].ip.clone())
                    .collect();
                drop(cl);
                partition(&ip, &others, true);
                std::thread::sleep(Duration::from_millis(2000));
                partition(&ip, &others, false);
            }
        }
    }
    // Let the cluster settle and the clients see it healthy again.
    c.lock()
        .unwrap()
        .wait_leader(&[0, 1, 2], Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.join().unwrap();
    }

    // Final quorum reads: every acknowledged write must be explained by them too.
    let mut final_client = c.lock().unwrap().client(0);
    for key in KEYS {
        let call = nanos(start);
        let r = final_client.get(&format!("/v2/keys{key}?quorum=true"));
        assert!(matches!(r.status, 200 | 404), "{}", r.text());
        history.lock().unwrap().push(Op {
            client: CLIENTS,
            key: key.into(),
            call,
            ret: Some(nanos(start)),
            kind: OpKind::Read {
                result: r.json()["node"]["value"].as_str().map(str::to_string),
            },
        });
    }

    let history = history.lock().unwrap().clone();
    let completed = history.iter().filter(|o| o.ret.is_some()).count();
    let cas_ok = history
        .iter()
        .filter(|o| o.ret.is_some() && matches!(o.kind, OpKind::Cas { ok: true, .. }))
        .count();
    println!(
        "faults: {} operations ({completed} with a known outcome, {cas_ok} successful CAS), faults {applied:?}",
        history.len()
    );
    assert!(
        completed > 100,
        "too little progress: {completed} completed operations"
    );
    match check(&history, 20_000_000) {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable { key, detail } => {
            panic!("history of {key} is not linearizable:\n{detail}")
        }
        Verdict::Unknown { key } => {
            println!("faults: the search for {key} ran out of budget; no verdict")
        }
    }
}

/// A read-only copy of the cluster's addresses for the client threads (the nemesis keeps the
/// `Cluster`, which owns the processes).
fn snapshot_view(c: &Cluster) -> Cluster {
    let mut v = Cluster::plan(0, &[]);
    for n in &c.nodes {
        v.nodes.push(common::cluster::Node {
            name: n.name.clone(),
            ip: n.ip.clone(),
            client_port: n.client_port,
            peer_port: n.peer_port,
            dir: n.dir.clone(),
            child: None,
            tls: n.tls.clone(),
        });
    }
    v
}
