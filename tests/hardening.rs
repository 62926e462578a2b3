//! Faults and hostile input against real tern processes: a panic ends the member, forged peer
//! messages are dropped, a data dir missing its snapshot is refused with a message, file
//! descriptors running out refuse clients but never the WAL, and a full disk fails writes
//! while reads keep working.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use raft::eraftpb::{Message, MessageType};

/// The names of the files in `dir`, sorted.
fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Waits up to `timeout` for member `i` to exit; its status.
fn wait_status(c: &mut Cluster, i: usize, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let child = c.nodes[i].child.as_mut()?;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_panic_on_any_shard_ends_the_process() {
    for shard in ["0", "1"] {
        let mut c = Cluster::plan(1, &[]);
        c.env
            .push(("TERN_TEST_PANIC_SHARD".to_string(), shard.to_string()));
        let ic = c.initial_cluster(&[0]);
        c.spawn(0, &ic, "new", &[]);
        let status = wait_status(&mut c, 0, Duration::from_secs(30));
        let log = c.nodes[0].log();
        let status = status.unwrap_or_else(|| {
            panic!("shard {shard} panicked but the process is still running:\n{log}")
        });
        assert!(!status.success(), "exit status {status:?}");
        assert!(log.contains("panicking on purpose"), "{log}");
        assert!(log.contains("tern: fatal: thread"), "{log}");
    }
}

/// POSTs one batch of raft messages to member `i`'s peer port as `from` (hex); the status.
fn post_raft(c: &Cluster, i: usize, cluster_id: &str, from: &str, msgs: &[Message]) -> u16 {
    let mut body = Vec::new();
    for m in msgs {
        tern::transport::encode_frame(m, &mut body);
    }
    let n = &c.nodes[i];
    let mut s = peer_connection(c, i);
    let head = format!(
        "POST /raft/msgs HTTP/1.1\r\nHost: {}:{}\r\nX-Etcd-Cluster-ID: {cluster_id}\r\n\
         X-Server-From: {from}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        n.ip,
        n.peer_port,
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    status_of(&answer)
}

/// A connection to member `i`'s peer port (reads time out after 10 s).
fn peer_connection(c: &Cluster, i: usize) -> TcpStream {
    let n = &c.nodes[i];
    let s = TcpStream::connect((n.ip.as_str(), n.peer_port)).expect("connect to peer port");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A 3-member cluster with a leader, one of its followers, and the answer to a first write
/// through the leader (its headers carry the cluster ID and the raft term).
fn three_members_and_a_write() -> (Cluster, usize, usize, common::Resp) {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_leader(&[0, 1, 2], Duration::from_secs(20));
    let follower = (leader + 1) % 3;
    let r = c.client(leader).put("/v2/keys/before", &[("value", "1")]);
    assert_eq!(r.status, 201);
    (c, leader, follower, r)
}

/// The status code of an HTTP answer's text (0 when there is none).
fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A forged heartbeat committing far past the log (raft-rs panics on one), a heartbeat from a
/// stranger and one claiming to come from the member itself: the member drops them and keeps
/// serving reads and writes.
#[test]
fn forged_raft_messages_do_not_break_a_member() {
    let (mut c, leader, follower, r) = three_members_and_a_write();
    let cluster_id = r
        .header("X-Etcd-Cluster-Id")
        .expect("cluster id")
        .to_string();
    let term: u64 = r.header("X-Raft-Term").expect("term").parse().unwrap();
    let leader_id = c.member_id(leader);
    let follower_id = c.member_id(follower);
    let id = |hex: &str| u64::from_str_radix(hex, 16).unwrap();

    let heartbeat = |from: u64, commit: u64| {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.from = from;
        m.to = id(&follower_id);
        m.term = term;
        m.commit = commit;
        m
    };
    let far = 1u64 << 40;
    // From the real leader, with its term: only the commit index is impossible.
    post_raft(
        &c,
        follower,
        &cluster_id,
        &leader_id,
        &[heartbeat(id(&leader_id), far)],
    );
    // From an ID that is no member, and from the follower itself.
    post_raft(
        &c,
        follower,
        &cluster_id,
        "deadbeef",
        &[heartbeat(0xdead_beef, far)],
    );
    post_raft(
        &c,
        follower,
        &cluster_id,
        &follower_id,
        &[heartbeat(id(&follower_id), far)],
    );
    // Appends whose entries do not follow their index.
    let mut append = heartbeat(id(&leader_id), 0);
    append.set_msg_type(MessageType::MsgAppend);
    append.index = far;
    append.log_term = term;
    let e = raft::eraftpb::Entry {
        index: 1,
        term: term + 1,
        ..Default::default()
    };
    append.entries = vec![e].into();
    post_raft(&c, follower, &cluster_id, &leader_id, &[append]);

    std::thread::sleep(Duration::from_millis(300));
    assert!(
        c.nodes[follower].running(),
        "the follower died:\n{}",
        c.nodes[follower].log()
    );
    // The follower still takes writes (forwarded to the leader) and sees them applied.
    let mut fc = c.client(follower);
    fc.set_read_timeout(Duration::from_secs(10));
    let r = fc.put("/v2/keys/after", &[("value", "2")]);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = fc.get("/v2/keys/after?quorum=true");
    assert_eq!(r.json()["node"]["value"], "2");
    let r = fc.get("/health");
    assert_eq!(r.status, 200, "{}", r.text());
    let log = c.nodes[follower].log();
    assert!(log.contains("raft: dropped a MsgHeartbeat"), "{log}");
}

/// etcd's "wal: file not found": a member whose snapshots were deleted after the WAL segments
/// they made unnecessary were purged must refuse to start, saying what is missing, not panic or
/// start with a hole in its log.
#[test]
fn a_missing_snapshot_after_a_purge_is_refused_by_name() {
    let mut c = Cluster::start(1, &["--snapshot-count", "50", "--max-wals", "2"]);
    let value = "v".repeat(1 << 20);
    let mut client = c.client(0);
    for i in 0..200 {
        let r = client.put(&format!("/v2/keys/big{}", i % 10), &[("value", &value)]);
        assert_eq!(r.status, if i < 10 { 201 } else { 200 }, "{}", r.text());
    }
    let wal = c.nodes[0].dir.join("data/member/wal");
    let first_segment = || {
        let mut names = file_names(&wal);
        names.retain(|n| n.ends_with(".wal"));
        names[0].clone()
    };
    // Wait for a purge (it follows a snapshot).
    let deadline = Instant::now() + Duration::from_secs(30);
    while first_segment().starts_with("0000000000000000-") {
        assert!(Instant::now() < deadline, "no WAL segment was purged");
        std::thread::sleep(Duration::from_millis(100));
    }
    c.kill(0);
    std::fs::remove_dir_all(c.nodes[0].dir.join("data/member/snap")).unwrap();
    let ic = c.initial_cluster(&[0]);
    c.spawn(0, &ic, "existing", &[]);
    let status = wait_status(&mut c, 0, Duration::from_secs(30));
    let log = c.nodes[0].log();
    let status = status.unwrap_or_else(|| panic!("the member did not exit:\n{log}"));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("wal: file not found"), "{log}");
    assert!(log.contains(&first_segment()), "{log}");
    assert!(log.contains("member/snap"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// Idle connections that would take every file descriptor are refused once the connection
/// budget is spent; the WAL still rotates, snapshots are still written, every write succeeds,
/// and the refusals are logged a few times, not once per connection.
#[test]
fn running_out_of_file_descriptors_refuses_clients_never_the_log() {
    use std::os::unix::process::CommandExt;
    let mut c = Cluster::plan(1, &["--snapshot-count", "20"]);
    let ic = c.initial_cluster(&[0]);
    let mut cmd = c.command(0, &ic, "new", &[]);
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.spawn_command(0, cmd);
    c.wait_serving(0, Duration::from_secs(30));
    let mut writer = c.client(0);
    // An answer proves the member accepted the writer's connection (a connection the kernel
    // completed but the member had not accepted yet would be refused once the flood below
    // takes every descriptor: one CI run saw the writer's first PUT hit a closed socket).
    assert_eq!(writer.get("/version").status, 200);
    let addr = c.nodes[0].addr();
    // Far more connections than the member has descriptors.
    let idle: Vec<TcpStream> = (0..400)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    assert!(idle.len() > 256, "only {} connections made", idle.len());
    std::thread::sleep(Duration::from_millis(500));
    // 100 MiB of writes: at least one WAL segment rotation and five snapshots.
    let value = "w".repeat(1 << 20);
    for i in 0..100 {
        let r = writer.put(&format!("/v2/keys/fd{}", i % 10), &[("value", &value)]);
        assert!(
            r.status == 200 || r.status == 201,
            "write {i}: {}",
            r.text()
        );
    }
    assert!(
        c.nodes[0].running(),
        "the member exited:\n{}",
        c.nodes[0].log()
    );
    drop(idle);
    std::thread::sleep(Duration::from_millis(500));
    let r = c.client(0).get("/v2/keys/fd3");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["node"]["value"].as_str().map(str::len),
        Some(1 << 20)
    );
    let log = c.nodes[0].log();
    let refusals = log.matches("refusing a connection").count();
    assert!(
        (1..=10).contains(&refusals),
        "{refusals} refusal lines:\n{log}"
    );
    let wal = c.nodes[0].dir.join("data/member/wal");
    let segments = file_names(&wal)
        .iter()
        .filter(|n| n.ends_with(".wal"))
        .count();
    assert!(segments >= 2, "no WAL rotation happened");
}

/// A tmpfs mounted for one test, unmounted (lazily) when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    /// Mounts a tmpfs of `mib` MiB on `dir`; `None` (with the reason printed) when this
    /// process may not mount.
    fn tmpfs(dir: &std::path::Path, mib: u64) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "skipping: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A full disk fails writes with an etcd-style error while reads, watches and `/health`
/// (saying false) keep working, also across a `kill -9` and restart; once space is freed,
/// writes resume by themselves, and every acknowledged write is there.
#[test]
fn a_full_disk_fails_writes_not_the_member() {
    let mut c = Cluster::plan(1, &[]);
    let data = c.nodes[0].dir.join("data");
    // Room for the first segment, its spare, a filler, and part of one more segment.
    let Some(_mount) = Mount::tmpfs(&data, 200) else {
        return;
    };
    let filler = data.join("filler");
    std::fs::write(&filler, vec![1u8; 40 << 20]).unwrap();
    let ic = c.initial_cluster(&[0]);
    c.spawn(0, &ic, "new", &[]);
    c.wait_serving(0, Duration::from_secs(30));

    let pad = "p".repeat(1 << 20);
    let mut acknowledged = std::collections::BTreeMap::new();
    let mut refusal = None;
    let mut client = c.client(0);
    for i in 0..200u32 {
        let key = format!("/v2/keys/full{}", i % 10);
        let value = format!("{i:08}{pad}");
        let r = client.put(&key, &[("value", &value)]);
        if r.status == 200 || r.status == 201 {
            acknowledged.insert(key, value);
        } else {
            refusal = Some(r);
            break;
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    assert_eq!(refusal.status, 500, "{}", refusal.text());
    let body = refusal.json();
    assert_eq!(body["errorCode"], 300, "{body}");
    assert!(
        body["cause"]
            .as_str()
            .unwrap_or("")
            .contains("no space left"),
        "{body}"
    );
    assert!(acknowledged.len() >= 10, "{} writes", acknowledged.len());

    let check_serving_reads = |c: &Cluster| {
        let mut client = c.client(0);
        for (key, value) in &acknowledged {
            let r = client.get(key);
            assert_eq!(r.status, 200);
            assert!(r.json()["node"]["value"] == value.as_str(), "{key}");
        }
        // A watch answered from the event history.
        let r = client.get("/v2/keys/full1?wait=true&waitIndex=1");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["action"], "set");
        // Health says false (within a few ticks).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = client.get("/health");
            if r.status == 503 {
                assert!(r.text().contains("false"));
                break;
            }
            assert!(Instant::now() < deadline, "/health stayed {}", r.text());
            std::thread::sleep(Duration::from_millis(100));
        }
        let r = client.put("/v2/keys/small", &[("value", &pad)]);
        assert_eq!(r.status, 500, "a write went through on a full disk");
    };
    check_serving_reads(&c);

    // A restart on the full disk serves reads again instead of exiting.
    c.kill(0);
    c.spawn(0, &ic, "existing", &[]);
    c.wait_serving(0, Duration::from_secs(30));
    check_serving_reads(&c);
    assert!(
        !file_names(&data.join("member/wal"))
            .iter()
            .any(|n| n.ends_with(".tmp")),
        "a .tmp file was left in the WAL directory"
    );

    // Space returns: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = c.client(0);
    loop {
        let value = format!("after{pad}");
        let r = client.put("/v2/keys/full0", &[("value", &value)]);
        if r.status == 200 {
            acknowledged.insert("/v2/keys/full0".to_string(), value);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get("/health").status != 200 {
        assert!(Instant::now() < deadline, "/health stayed false");
        std::thread::sleep(Duration::from_millis(100));
    }
    for (key, value) in &acknowledged {
        assert!(
            client.get(key).json()["node"]["value"] == value.as_str(),
            "{key}"
        );
    }
    c.kill(0);
}

/// Sends a bodiless request `method path` to member `i`'s peer port with the given cluster ID
/// and sender; the status and the head of the answer.
fn peer_request(
    c: &Cluster,
    i: usize,
    method: &str,
    path: &str,
    cluster_id: &str,
    from: &str,
) -> (u16, String) {
    let n = &c.nodes[i];
    let mut s = peer_connection(c, i);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nX-Etcd-Cluster-ID: {cluster_id}\r\n\
         X-Server-From: {from}\r\nContent-Length: 0\r\n\r\n",
        n.ip, n.peer_port,
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    (status_of(&text), text)
}

/// The stream a peer opens to receive raft messages is judged by its head like a batch: this
/// cluster's ID, a member that names itself in the path, `GET` only. A stream that replaces a
/// member's own one (whoever knows its ID can open one on a plain-HTTP peer port) ends it for
/// a moment only: the member opens its own again and keeps replicating.
#[test]
fn raft_stream_requests_are_judged_by_their_head() {
    let (c, leader, follower, r) = three_members_and_a_write();
    let cluster_id = r
        .header("X-Etcd-Cluster-Id")
        .expect("cluster id")
        .to_string();
    let fid = c.member_id(follower);
    let path = format!("/raft/stream/{fid}");
    let cases = [
        ("GET", path.as_str(), "1234", fid.as_str(), 412),
        (
            "GET",
            "/raft/stream/deadbeef",
            cluster_id.as_str(),
            "deadbeef",
            403,
        ),
        ("GET", path.as_str(), cluster_id.as_str(), "deadbeef", 403),
        (
            "GET",
            "/raft/stream/deadbeef",
            cluster_id.as_str(),
            fid.as_str(),
            400,
        ),
        (
            "GET",
            "/raft/stream/",
            cluster_id.as_str(),
            fid.as_str(),
            400,
        ),
        (
            "POST",
            path.as_str(),
            cluster_id.as_str(),
            fid.as_str(),
            405,
        ),
        (
            "HEAD",
            path.as_str(),
            cluster_id.as_str(),
            fid.as_str(),
            405,
        ),
    ];
    for (method, p, cluster, from, want) in cases {
        let (status, head) = peer_request(&c, leader, method, p, cluster, from);
        assert_eq!(status, want, "{method} {p} as {from} of {cluster}:\n{head}");
    }
    let (status, head) = peer_request(&c, leader, "GET", &path, &cluster_id, &fid);
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut fc = c.client(follower);
    fc.set_read_timeout(Duration::from_secs(10));
    let r = fc.put("/v2/keys/after", &[("value", "2")]);
    assert_eq!(r.status, 201, "{}", r.text());
    c.wait_value(follower, "/after", "2", Duration::from_secs(20));
}
