//! A minimal DNS client for SRV records (`--discovery-srv`): one UDP query to the system's
//! name server (the first `nameserver` of /etc/resolv.conf, or `TERN_DNS_SERVER`), answers
//! parsed with name compression, sorted by priority then weight as Go's `net.LookupSRV` does.
//! And [`resolve`]: a `host:port`'s addresses for the executors' dialers, without blocking
//! them.
//!
//! Knows nothing about etcd; a truncated UDP answer is used as it is (no TCP retry).

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target host, without the trailing dot.
    pub target: String,
}

/// The addresses of `authority` (`host:port`, `[v6]:port`) without blocking the calling
/// executor: an IP literal is parsed; a host name goes to the system resolver on glommio's
/// blocking thread pool, so a slow or unreachable name server stalls that thread rather than
/// the shard (shard 0 runs raft; a proxy shard serves its clients). Must run on a glommio
/// executor.
pub async fn resolve(authority: &str) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let authority = authority.to_string();
    glommio::executor()
        .spawn_blocking(move || authority.to_socket_addrs().map(Iterator::collect))
        .await
}

/// The name server to ask: `TERN_DNS_SERVER` (`host:port`), else resolv.conf's first one.
pub fn name_server() -> String {
    if let Ok(s) = std::env::var("TERN_DNS_SERVER") {
        if !s.is_empty() {
            return s;
        }
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some("nameserver"))
                    .then(|| it.next().map(str::to_string))
                    .flatten()
            })
        })
        .map(|ns| {
            if ns.contains(':') {
                format!("[{ns}]:53")
            } else {
                format!("{ns}:53")
            }
        })
        .unwrap_or_else(|| "127.0.0.1:53".into())
}

/// Encodes a query for `name`'s SRV records.
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad DNS name {name:?}"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_SRV.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| "truncated DNS message".to_string())
}

/// Reads a (possibly compressed) name at `at`; returns it and the offset after it.
fn read_name(b: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *b.get(at).ok_or("truncated DNS name")? as usize;
        if len == 0 {
            return Ok((labels.join("."), end.unwrap_or(at + 1)));
        }
        if len & 0xc0 == 0xc0 {
            let ptr = (u16_at(b, at)? & 0x3fff) as usize;
            end.get_or_insert(at + 2);
            at = ptr;
            continue;
        }
        let label = b.get(at + 1..at + 1 + len).ok_or("truncated DNS label")?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += 1 + len;
    }
    Err("DNS name compression loop".into())
}

/// Parses the SRV answers of a response to query `id`.
pub fn parse_response(id: u16, b: &[u8]) -> Result<Vec<Srv>, String> {
    if u16_at(b, 0)? != id {
        return Err("DNS answer to another query".into());
    }
    let flags = u16_at(b, 2)?;
    match flags & 0x000f {
        0 => {}
        3 => return Err("no such host".into()),
        rcode => return Err(format!("DNS server failure (rcode {rcode})")),
    }
    let questions = u16_at(b, 4)?;
    let answers = u16_at(b, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(b, at)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        let (_, next) = read_name(b, at)?;
        let rtype = u16_at(b, next)?;
        let rdlen = u16_at(b, next + 8)? as usize;
        let rdata = next + 10;
        if b.len() < rdata + rdlen {
            return Err("truncated DNS record".into());
        }
        if rtype == TYPE_SRV {
            let (target, _) = read_name(b, rdata + 6)?;
            out.push(Srv {
                priority: u16_at(b, rdata)?,
                weight: u16_at(b, rdata + 2)?,
                port: u16_at(b, rdata + 4)?,
                target,
            });
        }
        at = rdata + rdlen;
    }
    if out.is_empty() {
        return Err("no such host".into());
    }
    // Priority ascending; within one priority, heavier weights first (a stable stand-in for
    // RFC 2782's weighted random order).
    out.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    Ok(out)
}

/// Looks up `name`'s SRV records at `server` (`host:port`).
pub fn lookup_srv(server: &str, name: &str, timeout: Duration) -> Result<Vec<Srv>, String> {
    let addr: SocketAddr = server
        .to_socket_addrs()
        .map_err(|e| format!("name server {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("name server {server}: no address"))?;
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u16)
        .unwrap_or(7);
    let query = encode_query(id, name)?;
    sock.send_to(&query, addr)
        .map_err(|e| format!("lookup {name} on {server}: {e}"))?;
    let mut buf = [0u8; 4096];
    loop {
        let (n, from) = sock
            .recv_from(&mut buf)
            .map_err(|_| format!("lookup {name} on {server}: i/o timeout"))?;
        if from != addr {
            continue;
        }
        return parse_response(id, &buf[..n])
            .map_err(|e| format!("lookup {name} on {server}: {e}"));
    }
}

/// Builds a response to `query` with the given SRV answers (tests and fake servers).
pub fn encode_response(query: &[u8], answers: &[Srv]) -> Vec<u8> {
    let mut r = query.to_vec();
    r[2] = 0x81; // response, recursion desired
    r[3] = if answers.is_empty() { 0x83 } else { 0x80 };
    r[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    for a in answers {
        r.extend_from_slice(&[0xc0, 12]); // the question's name
        r.extend_from_slice(&TYPE_SRV.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&60u32.to_be_bytes());
        let mut rdata = Vec::new();
        rdata.extend_from_slice(&a.priority.to_be_bytes());
        rdata.extend_from_slice(&a.weight.to_be_bytes());
        rdata.extend_from_slice(&a.port.to_be_bytes());
        for label in a.target.trim_end_matches('.').split('.') {
            rdata.push(label.len() as u8);
            rdata.extend_from_slice(label.as_bytes());
        }
        rdata.push(0);
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_parses_literals_and_asks_the_resolver_for_names() {
        let (tx, rx) = std::sync::mpsc::channel();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let v4 = resolve("127.0.0.1:2380").await.unwrap();
                let v6 = resolve("[::1]:2380").await.unwrap();
                let name = resolve("localhost:2380").await.unwrap();
                let no_port = resolve("localhost").await.is_err();
                tx.send((v4, v6, name, no_port)).unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        let (v4, v6, name, no_port) = rx.recv().unwrap();
        assert_eq!(v4, vec!["127.0.0.1:2380".parse::<SocketAddr>().unwrap()]);
        assert_eq!(v6, vec!["[::1]:2380".parse::<SocketAddr>().unwrap()]);
        assert!(
            name.iter()
                .all(|a| a.ip().is_loopback() && a.port() == 2380)
                && !name.is_empty(),
            "{name:?}"
        );
        assert!(no_port);
    }

    #[test]
    fn query_and_answer_round_trip() {
        let q = encode_query(0x1234, "_etcd-client._tcp.example.com").unwrap();
        let answers = vec![
            Srv {
                priority: 10,
                weight: 1,
                port: 2379,
                target: "b.example.com".into(),
            },
            Srv {
                priority: 0,
                weight: 5,
                port: 4001,
                target: "a.example.com".into(),
            },
        ];
        let r = encode_response(&q, &answers);
        let got = parse_response(0x1234, &r).unwrap();
        assert_eq!(got[0].target, "a.example.com");
        assert_eq!(got[0].port, 4001);
        assert_eq!(got[1].target, "b.example.com");
        assert!(parse_response(0x9999, &r).is_err());
        for cut in 0..r.len() {
            // Never panics on a truncated answer.
            let _ = parse_response(0x1234, &r[..cut]);
        }
        let none = encode_response(&q, &[]);
        assert_eq!(parse_response(0x1234, &none).unwrap_err(), "no such host");
        assert!(encode_query(1, "a..b").is_err());
    }

    #[test]
    fn lookup_against_a_local_fake_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let answer = encode_response(
                &buf[..n],
                &[Srv {
                    priority: 0,
                    weight: 0,
                    port: 2379,
                    target: "infra0.example.com.".into(),
                }],
            );
            server.send_to(&answer, from).unwrap();
        });
        let got = lookup_srv(
            &addr,
            "_etcd-client._tcp.example.com",
            Duration::from_secs(2),
        )
        .unwrap();
        t.join().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].target, "infra0.example.com");
    }
}
