//! `ternctl --discovery-srv <domain>` finds a real tern through the SRV records a (fake, local)
//! DNS server publishes for `_etcd-client._tcp.<domain>`; `TERN_DNS_SERVER` points ternctl at it.

mod common;

use std::net::UdpSocket;
use std::process::Command;

use common::start_tern;
use tern::dns::{encode_response, Srv};

#[test]
fn ternctl_finds_tern_through_srv_records() {
    let tern = start_tern(1, &[]);
    let port = tern.addr.port();
    let dns = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns_addr = dns.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        // Two questions: the -ssl name (no such host), then the plain one.
        for _ in 0..2 {
            let (n, from) = dns.recv_from(&mut buf).unwrap();
            let asked = String::from_utf8_lossy(&buf[..n]).into_owned();
            let answers = if asked.contains("_etcd-client-ssl") {
                vec![]
            } else {
                vec![Srv {
                    priority: 0,
                    weight: 0,
                    port,
                    target: "localhost".into(),
                }]
            };
            dns.send_to(&encode_response(&buf[..n], &answers), from)
                .unwrap();
        }
    });
    let out = Command::new(env!("CARGO_BIN_EXE_ternctl"))
        .args([
            "--discovery-srv",
            "example.test",
            "--no-sync",
            "set",
            "/srv",
            "found",
        ])
        .env("TERN_DNS_SERVER", &dns_addr)
        .output()
        .unwrap();
    server.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "found\n");
    let r = tern.client().get("/v2/keys/srv");
    assert_eq!(r.json()["node"]["value"], "found");
}
