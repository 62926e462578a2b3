//! `cargo bench --bench allocs`: heap allocations per request, counted.
//!
//! A member runs in this process (`tern::server::Server`, one shard, a data dir under the
//! system's temp dir); this binary's global allocator counts every allocation of every thread.
//! A client on its own thread sends keep-alive requests over loopback from fixed buffers and
//! reads each answer into a fixed buffer, so it allocates nothing itself. For each request
//! kind: warm up, then count the allocations (and bytes) over N requests and subtract what the
//! member allocates by itself (ticks, timers) over an idle stretch as long as the measured one.
//! Prints one line per kind: allocations and bytes per request.
//!
//! Issue 18 asks for no heap allocation per GET on the request/response path; this shows where
//! that stands.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counts() -> (u64, u64) {
    (ALLOCS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Reads one HTTP response (head + Content-Length body, or a chunked body) into `buf`.
fn read_response(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    let mut len = 0;
    loop {
        let n = s.read(&mut buf[len..]).expect("read");
        assert!(n > 0, "the member closed the connection");
        len += n;
        let data = &buf[..len];
        let Some(head_end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = &data[..head_end];
        let body = &data[head_end + 4..];
        if let Some(cl) = find_header(head, b"content-length") {
            let cl: usize = std::str::from_utf8(cl).unwrap().trim().parse().unwrap();
            if body.len() >= cl {
                return head_end + 4 + cl;
            }
        } else if body.ends_with(b"0\r\n\r\n") {
            return len;
        }
    }
}

fn find_header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name)
            .then(|| &line[colon + 1..])
    })
}

/// Sends `request` `n` times on one connection, each after the previous answer.
fn drive(addr: SocketAddr, request: &[u8], n: usize) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    for _ in 0..n {
        s.write_all(request).expect("write");
        let got = read_response(&mut s, &mut buf);
        assert!(
            buf[..got].starts_with(b"HTTP/1.1 20"),
            "{}",
            String::from_utf8_lossy(&buf[..got.min(300)])
        );
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("tern-allocs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (client, peer) = (free_port(), free_port());
    let c = format!("http://127.0.0.1:{client}");
    let p = format!("http://127.0.0.1:{peer}");
    let args = [
        "tern".to_string(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--shards".into(),
        "1".into(),
        "--listen-client-urls".into(),
        c.clone(),
        "--advertise-client-urls".into(),
        c,
        "--listen-peer-urls".into(),
        p.clone(),
        "--initial-advertise-peer-urls".into(),
        p.clone(),
        "--initial-cluster".into(),
        format!("default={p}"),
    ];
    let config = tern::config::parse_from(args, &|_| None).expect("flags");
    let server = tern::server::Server::start(config).expect("start");
    let addr: SocketAddr = format!("127.0.0.1:{client}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the member never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let put = b"PUT /v2/keys/bench HTTP/1.1\r\nHost: 127.0.0.1\r\n\
Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 70\r\n\r\n\
value=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl";
    let get = b"GET /v2/keys/bench HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let n: usize = std::env::var("TERN_ALLOCS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    drive(addr, put, 200);
    println!("requests per kind: {n} (one keep-alive connection, 1 shard, 64 B values)");
    for (name, request, count) in [("GET", &get[..], n), ("PUT", &put[..], n / 10)] {
        drive(addr, request, 1_000);
        let (a0, b0) = counts();
        let started = Instant::now();
        drive(addr, request, count);
        let took = started.elapsed();
        let (a1, b1) = counts();
        // What the member allocates by itself over as long (ticks, timers, stats).
        let (i0, j0) = counts();
        std::thread::sleep(took);
        let (i1, j1) = counts();
        let allocs = (a1 - a0).saturating_sub(i1 - i0) as f64 / count as f64;
        let bytes = (b1 - b0).saturating_sub(j1 - j0) as f64 / count as f64;
        println!(
            "{name}: {allocs:.2} allocations and {bytes:.0} bytes per request \
             (idle baseline over {took:.2?}: {} allocations)",
            i1 - i0
        );
    }
    server.stop();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
