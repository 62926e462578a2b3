//! A member run inside the test process through `tern::server::Server`: started, serving,
//! stopped (the executors end and `wait` returns), started again on the same data dir.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{free_port, temp_dir, Client};
use tern::server::Server;

fn start(dir: &std::path::Path, client: u16, peer: u16) -> Server {
    let c = format!("http://127.0.0.1:{client}");
    let p = format!("http://127.0.0.1:{peer}");
    let args = [
        "tern".to_string(),
        "--name".into(),
        "inproc".into(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--listen-client-urls".into(),
        c.clone(),
        "--advertise-client-urls".into(),
        c,
        "--listen-peer-urls".into(),
        p.clone(),
        "--initial-advertise-peer-urls".into(),
        p.clone(),
        "--initial-cluster".into(),
        format!("inproc={p}"),
    ];
    let config = tern::config::parse_from(args, &|_| None).expect("flags parse");
    Server::start(config).expect("the member starts")
}

/// Waits until the member answers `/health` with 200.
fn wait_healthy(addr: SocketAddr) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Client::try_connect(addr) {
            if c.try_request("GET", "/health", &[], b"")
                .is_ok_and(|r| r.status == 200)
            {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "the member never became healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_member_in_process_serves_stops_and_starts_again_with_its_data() {
    let dir = temp_dir("lifecycle");
    let (client, peer) = (free_port(), free_port());
    let addr: SocketAddr = format!("127.0.0.1:{client}").parse().unwrap();

    let server = start(&dir, client, peer);
    let mut c = wait_healthy(addr);
    let r = c.put("/v2/keys/lifecycle", &[("value", "kept")]);
    assert_eq!(r.status, 201, "{}", r.text());
    drop(c);
    server.stop();
    server
        .wait()
        .expect("an orderly stop ends without an error");
    // The executors are gone: nothing listens on the client port any more.
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "the client port still accepts connections after the member stopped"
    );

    let server = start(&dir, client, peer);
    let mut c = wait_healthy(addr);
    let r = c.get("/v2/keys/lifecycle");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["node"]["value"], "kept");
    drop(c);
    server.stop();
    server
        .wait()
        .expect("an orderly stop ends without an error");
    let _ = std::fs::remove_dir_all(dir);
}
