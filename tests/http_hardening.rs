//! The HTTP layer's bounds against a real tern process: the peer port judges a raft request by
//! its head before it reads the body, pipelined answers a client does not read stay bounded,
//! and a pipelined request sees every earlier request on its connection.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_port, start_tern, start_tern_on, temp_dir, Server};

/// A tern whose peer port is known.
fn start_with_peer_port() -> (Server, SocketAddr) {
    let peer_port = free_port();
    let mut tern = start_tern_on(&temp_dir("hardening"), free_port(), peer_port, 1, &[]);
    tern.owns_dir = true;
    (tern, format!("127.0.0.1:{peer_port}").parse().unwrap())
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Reads one response with a Content-Length body (or none): status, head, body.
fn read_response(s: &mut TcpStream) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head[9..12].parse().expect("status");
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().expect("length"))
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body)?;
    Ok((status, head, body))
}

/// The cluster ID and the (only) member's ID, as a peer of this server would send them.
fn cluster_and_member(tern: &Server) -> (String, String) {
    let r = tern.client().get("/v2/members");
    let cluster = r
        .header("x-etcd-cluster-id")
        .expect("cluster ID")
        .to_string();
    let member = r.json()["members"][0]["id"]
        .as_str()
        .expect("member ID")
        .to_string();
    (cluster, member)
}

#[test]
fn peer_port_refuses_a_raft_request_by_its_head_before_reading_the_body() {
    let (tern, peer) = start_with_peer_port();
    let pid = tern.child.id();
    let (cluster, member) = cluster_and_member(&tern);
    let before = rss_kib(pid);
    let cases = [
        (Some("0123456789abcdef"), Some(member.as_str()), 412),
        (None, Some(member.as_str()), 412),
        (Some(cluster.as_str()), Some("deadbeef"), 403),
        (Some(cluster.as_str()), None, 403),
        // A member, but a batch over the bound.
        (Some(cluster.as_str()), Some(member.as_str()), 413),
    ];
    for (cluster_id, from, want) in cases {
        let mut s = TcpStream::connect(peer).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = String::from("POST /raft/msgs HTTP/1.1\r\nHost: t\r\n");
        if let Some(c) = cluster_id {
            head.push_str(&format!("X-Etcd-Cluster-ID: {c}\r\n"));
        }
        if let Some(f) = from {
            head.push_str(&format!("X-Server-From: {f}\r\n"));
        }
        head.push_str(
            "Content-Type: application/octet-stream\r\nContent-Length: 1073741824\r\n\r\n",
        );
        s.write_all(head.as_bytes()).unwrap();
        // The answer comes with no byte of the body sent.
        let (status, head, _) = read_response(&mut s)
            .unwrap_or_else(|e| panic!("{cluster_id:?} {from:?}: no answer before the body: {e}"));
        assert_eq!(status, want, "{cluster_id:?} {from:?}: {head}");
        assert!(head.contains("Connection: close\r\n"), "{head}");
        // Whatever is sent now is dropped unread until the server closes.
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..64 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // A member of this cluster is heard.
    let mut s = TcpStream::connect(peer).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "POST /raft/msgs HTTP/1.1\r\nHost: t\r\nX-Etcd-Cluster-ID: {cluster}\r\nX-Server-From: {member}\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    assert_eq!(read_response(&mut s).expect("answer").0, 204);
}

/// The `.incoming` files in a server's snap directory.
fn incoming_files(tern: &Server) -> Vec<std::path::PathBuf> {
    let dir = tern.dir.join("data/member/snap");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".incoming"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_snapshot_body_streams_to_disk_and_an_abandoned_one_is_removed() {
    let (tern, peer) = start_with_peer_port();
    let pid = tern.child.id();
    let (cluster, member) = cluster_and_member(&tern);
    let before = rss_kib(pid);
    let mut s = TcpStream::connect(peer).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /raft/snapshot HTTP/1.1\r\nHost: t\r\nX-Etcd-Cluster-ID: {cluster}\r\nX-Server-From: {member}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        512u64 << 20
    );
    s.write_all(head.as_bytes()).unwrap();
    // The header frame: an empty message; then 300 MiB of snapshot data.
    s.write_all(&0u32.to_le_bytes()).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..300 {
        s.write_all(&chunk).expect("the body is taken as it comes");
    }
    // Let the server take what is in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = rss_kib(pid);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = rss_kib(pid);
        let on_disk: u64 = incoming_files(&tern)
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        if on_disk >= 290 << 20 {
            break;
        }
    }
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let files = incoming_files(&tern);
    assert_eq!(files.len(), 1, "{files:?}");
    let len = std::fs::metadata(&files[0]).expect("incoming file").len();
    assert!(len >= 290 << 20, "only {len} bytes on disk");
    // The client goes away mid-body: the file goes too.
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !incoming_files(&tern).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", incoming_files(&tern));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The server still serves.
    assert_eq!(tern.client().get("/v2/members").status, 200);
}

#[test]
fn a_pipelined_read_sees_the_write_before_it() {
    let tern = start_tern(2, &[]);
    let mut c = tern.client();
    let form = "value=v1";
    let reqs = format!(
        "PUT /v2/keys/rw HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}\
         GET /v2/keys/rw?quorum=true HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /v2/keys/rw HTTP/1.1\r\nHost: t\r\n\r\n\
         DELETE /v2/keys/rw HTTP/1.1\r\nHost: t\r\n\r\n\
         GET /v2/keys/rw HTTP/1.1\r\nHost: t\r\n\r\n",
        form.len()
    );
    c.send_raw(reqs.as_bytes());
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    for _ in 0..2 {
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["node"]["value"], "v1");
    }
    assert_eq!(c.read_response(false).unwrap().status, 200);
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn pipelined_answers_nobody_reads_stay_bounded() {
    let tern = start_tern(1, &[]);
    let pid = tern.child.id();
    let mut c = tern.client();
    let value = "x".repeat(100_000);
    for i in 0..20 {
        let r = c.put(&format!("/v2/keys/big/k{i}"), &[("value", &value)]);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = c.get("/v2/keys/big?recursive=true");
    assert!(r.body.len() > 2_000_000, "{}", r.body.len());
    let before = rss_kib(pid);
    // Four connections each ask for the 2 MB directory 100 times and read nothing.
    let reqs = "GET /v2/keys/big?recursive=true HTTP/1.1\r\nHost: t\r\n\r\n".repeat(100);
    let conns: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(tern.addr).expect("connect");
            s.write_all(reqs.as_bytes()).unwrap();
            s
        })
        .collect();
    // Without a bound each would hold 32 answers (64 MB); with it, a few MB.
    let mut peak = before;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        peak < before + 100 * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    drop(conns);
    // The server still serves.
    assert_eq!(tern.client().get("/v2/keys/big/k0").status, 200);
}
