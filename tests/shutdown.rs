//! Ending a tern process: systemd's notify protocol (`READY=1` once it serves, `STOPPING=1`
//! on SIGTERM), exit 0 after SIGTERM with the listeners closed, and a leader's SIGTERM in a
//! 3-member cluster handing leadership over so that no client write fails beyond one retry.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{free_port, start_tern_with_env, temp_dir, wait_exit, Client};

fn sigterm(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
}

#[test]
fn systemd_hears_ready_then_stopping_and_sigterm_exits_0() {
    let dir = temp_dir("notify");
    let socket_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let port = free_port();
    let env = [("NOTIFY_SOCKET", socket_path.as_os_str())];
    let mut server = start_tern_with_env(&dir, port, free_port(), 2, &[], &env);
    server.owns_dir = true;
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 from tern");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means serving.
    assert_eq!(server.client().get("/health").status, 200);

    let mut kept = server.client();
    sigterm(server.child.id());
    let n = notify.recv(&mut buf).expect("STOPPING=1 from tern");
    assert_eq!(&buf[..n], b"STOPPING=1");
    // New connections are refused once stopping; the open one may still be answered.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Client::try_connect(server.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kept.try_request("GET", "/version", &[], b"");
    assert_eq!(
        wait_exit(&mut server.child, Duration::from_secs(10)),
        Some(0)
    );
}

/// Writes `key-<n>` through member `first`, once more through `fallback` when that fails;
/// counts writes that failed both times.
fn writer(
    c: &Cluster,
    first: usize,
    fallback: usize,
    tag: &'static str,
    stop: Arc<AtomicBool>,
    acked: Arc<std::sync::Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<(u64, u64)> {
    let addrs = [c.nodes[first].addr(), c.nodes[fallback].addr()];
    std::thread::spawn(move || {
        let retried = AtomicU64::new(0);
        let mut failed = 0;
        let mut conns: [Option<Client>; 2] = [None, None];
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("/v2/keys/{tag}-{n}");
            let mut ok = false;
            for (attempt, addr) in addrs.iter().enumerate() {
                if attempt == 1 {
                    retried.fetch_add(1, Ordering::Relaxed);
                }
                let conn = &mut conns[attempt];
                if conn.is_none() {
                    *conn = Client::try_connect(*addr).ok();
                }
                let Some(cl) = conn.as_mut() else { continue };
                cl.set_read_timeout(Duration::from_secs(10));
                let body = format!("value={n}");
                match cl.try_request(
                    "PUT",
                    &key,
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    body.as_bytes(),
                ) {
                    Ok(r) if r.status / 100 == 2 => {
                        ok = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => *conn = None,
                }
            }
            if ok {
                acked.lock().unwrap().push(key);
            } else {
                failed += 1;
            }
            n += 1;
        }
        (failed, retried.load(Ordering::Relaxed))
    })
}

#[test]
fn a_leaders_sigterm_hands_over_without_failed_writes() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_leader(&[0, 1, 2], Duration::from_secs(30));
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let via_leader = writer(&c, leader, others[0], "l", stop.clone(), acked.clone());
    let via_follower = writer(&c, others[1], others[0], "f", stop.clone(), acked.clone());
    std::thread::sleep(Duration::from_millis(500));

    let pid = c.nodes[leader].child.as_ref().unwrap().id();
    sigterm(pid);
    let code = c.nodes[leader].wait_exit(Duration::from_secs(10));
    assert_eq!(
        code,
        Some(0),
        "the leader's exit:\n{}",
        c.nodes[leader].log()
    );
    let log = c.nodes[leader].log();
    assert!(log.contains("handed leadership to"), "{log}");
    let new_leader = c.wait_leader(&others, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (failed_l, retried_l) = via_leader.join().unwrap();
    let (failed_f, retried_f) = via_follower.join().unwrap();
    println!(
        "writes retried: via the leader {retried_l}, via a follower {retried_f}; new leader m{}",
        new_leader + 1
    );
    assert_eq!(failed_l + failed_f, 0, "writes failed even after a retry");

    // Every acknowledged write is there.
    let keys = acked.lock().unwrap().clone();
    assert!(
        keys.len() > 10,
        "too few writes to mean anything: {}",
        keys.len()
    );
    let mut cl = c.client(new_leader);
    for key in keys {
        let r = cl.get(&format!("{key}?quorum=true"));
        assert_eq!(r.status, 200, "{key}: {}", r.text());
    }
}

#[test]
fn the_systemd_unit_verifies_and_its_environment_names_tern_flags() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    let unit = std::fs::read_to_string(root.join("tern.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("LimitNOFILE="));
    // Every variable the example sets (or shows commented out) names one of tern's flags.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let env = std::fs::read_to_string(root.join("tern.env")).unwrap();
    let mut names = 0;
    for line in env.lines() {
        let line = line.trim_start_matches('#');
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let Some(flag) = name
            .strip_prefix("ETCD_")
            .or_else(|| name.strip_prefix("TERN_"))
        else {
            continue;
        };
        let flag = format!("--{}", flag.to_ascii_lowercase().replace('_', "-"));
        assert!(help.contains(&flag), "{name}: tern has no {flag}");
        names += 1;
    }
    assert!(names > 10, "{names}");
    let Ok(analyze) = which("systemd-analyze") else {
        println!("systemd-analyze part skipped: systemd-analyze is not installed");
        return;
    };
    let dir = temp_dir("unit");
    let path = dir.join("tern.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/tern", env!("CARGO_BIN_EXE_tern")),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn which(cmd: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(cmd))
                .find(|p| p.exists())
        })
        .ok_or(())
}

/// Sends `GET path` on a raw connection and returns it, its response not read yet.
fn open_watch(addr: std::net::SocketAddr, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    s
}

#[test]
fn sigterm_ends_open_watches_with_complete_responses() {
    use std::io::Read;
    let mut server = common::start_tern(2, &[]);
    let mut watches: Vec<_> = [
        "/v2/keys/w?wait=true",
        "/v2/keys/w?wait=true&stream=true",
        "/v2/keys/?wait=true&recursive=true&waitIndex=100",
    ]
    .iter()
    .map(|p| open_watch(server.addr, p))
    .collect();
    // Every watch has its headers before the stop, so they are waiting.
    for w in &mut watches {
        let mut head = [0u8; 15];
        w.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK");
    }
    let stream_first = server.client().put("/v2/keys/w", &[("value", "1")]);
    assert_eq!(stream_first.status, 201);
    sigterm(server.child.id());
    for (i, w) in watches.iter_mut().enumerate() {
        let mut rest = Vec::new();
        w.read_to_end(&mut rest)
            .unwrap_or_else(|e| panic!("watch {i} was cut, not ended: {e}"));
        let text = String::from_utf8_lossy(&rest);
        // A chunked response that ends with its last chunk: a complete answer.
        assert!(
            text.contains("Transfer-Encoding: chunked"),
            "watch {i}: {text}"
        );
        assert!(
            text.ends_with("0\r\n\r\n"),
            "watch {i} did not end cleanly: {text:?}"
        );
        if i < 2 {
            assert!(text.contains("\"value\":\"1\""), "watch {i}: {text}");
        }
    }
    assert_eq!(
        wait_exit(&mut server.child, Duration::from_secs(10)),
        Some(0)
    );
}
