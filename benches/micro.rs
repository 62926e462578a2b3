//! `cargo bench --bench micro`: Criterion micro-benchmarks of tern's hot paths, no I/O.
//!
//! - `http/parse`: `http::parse_request` on a typical v2 PUT (form body) and GET.
//! - `http/encode`: `http::response::encode_response` of a typical v2 JSON answer.
//! - `store/set`, `store/get`: `Store::apply(Command::Set)` and `Store::get` on a store holding
//!   10,000 keys.
//! - `store/watch_dispatch`: one set that fires 100 watchers (100 one-shot watchers registered
//!   in the untimed setup; and 100 stream watchers that stay registered).
//! - `wal/append64_sync`: 64 entries of 256 bytes + a hard state appended to the WAL over the
//!   in-memory file system (`MemFs`), then `sync`: framing, CRC and buffer handling without a
//!   disk.
//!
//! `cargo bench --bench micro -- <filter>` runs a subset, e.g. `-- store`.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tern::http::response::{encode_response, ResponseContext};
use tern::http::{parse_request, Limits, Parsed, Response};
use tern::store::{Command, Published, Store, WatcherHub};
use tern::wal::{MemFs, Wal, WalOptions};

const PUT: &[u8] = b"PUT /v2/keys/foo HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\
User-Agent: Go-http-client/1.1\r\nContent-Length: 70\r\n\
Content-Type: application/x-www-form-urlencoded\r\nAccept-Encoding: gzip\r\n\r\n\
value=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl";

const GET: &[u8] = b"GET /v2/keys/foo?quorum=false&recursive=false&sorted=false HTTP/1.1\r\n\
Host: 127.0.0.1:2379\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n";

fn set(key: &str, value: &str) -> Command {
    Command::Set {
        key: key.to_string(),
        value: value.to_string(),
        dir: false,
        expire_at: None,
        refresh: false,
    }
}

fn value64() -> String {
    (0..64).map(|i| (b'a' + (i % 26) as u8) as char).collect()
}

fn http(c: &mut Criterion) {
    // The bodies must parse as what they claim, or the bench measures an error path.
    assert_eq!(
        PUT.len() - PUT.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4,
        70
    );
    let limits = Limits::default();
    let mut g = c.benchmark_group("http");
    for (name, req) in [("parse_put", PUT), ("parse_get", GET)] {
        assert!(matches!(
            parse_request(req, &limits),
            Ok(Parsed::Complete(_, n)) if n == req.len()
        ));
        g.throughput(Throughput::Bytes(req.len() as u64));
        g.bench_function(name, |b| b.iter(|| parse_request(black_box(req), &limits)));
    }
    let body = format!(
        "{{\"action\":\"set\",\"node\":{{\"key\":\"/foo\",\"value\":\"{}\",\"modifiedIndex\":\
         12345,\"createdIndex\":12345}}}}\n",
        value64()
    );
    let ctx = ResponseContext {
        head: false,
        minor_version: 1,
        keep_alive: true,
    };
    let mut out = Vec::with_capacity(1024);
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_json_200", |b| {
        b.iter(|| {
            out.clear();
            let resp = Response::full(200, body.clone().into_bytes())
                .with_header("Content-Type", "application/json")
                .with_header("X-Etcd-Cluster-Id", "cdf818194e3a8c32")
                .with_header("X-Etcd-Index", "12345")
                .with_header("X-Raft-Index", "12400")
                .with_header("X-Raft-Term", "2");
            encode_response(resp, &ctx, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let value = value64();
    let mut s = Store::new(Published::new(1000));
    for i in 0..10_000 {
        s.apply(&set(&format!("/dir{}/key{i}", i % 100), &value));
    }
    s.apply(&set("/foo", &value));
    s.publish(1, 1);
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    let cmd = set("/foo", &value);
    // One write per published version: the most a batch of one costs (path copies included).
    let mut raft_index = 1;
    g.bench_function("set_and_publish", |b| {
        b.iter(|| {
            let applied = s.apply(black_box(&cmd));
            raft_index += 1;
            s.publish(raft_index, 1);
            black_box(applied.result.is_some())
        })
    });
    let published = s.published().clone();
    g.bench_function("get", |b| {
        b.iter(|| {
            black_box(
                published
                    .view()
                    .get(black_box("/foo"), false, false)
                    .is_ok(),
            )
        })
    });

    // One-shot watchers: registered in the (untimed) setup, fired and removed by the change.
    let change = s.apply(&cmd).changes.remove(0);
    g.bench_function("watch_dispatch_100_oneshot", |b| {
        b.iter_batched_ref(
            || {
                let mut hub = WatcherHub::default();
                for _ in 0..100 {
                    hub.add("/foo".into(), false, false, 1);
                }
                hub
            },
            |hub| {
                let mut fired = Vec::new();
                hub.fire(&change, &mut fired);
                assert_eq!(fired.len(), 100);
                fired
            },
            BatchSize::SmallInput,
        )
    });
    // Stream watchers stay registered: every change fires all 100 again.
    let mut hub = WatcherHub::default();
    for _ in 0..100 {
        hub.add("/foo".into(), false, true, 1);
    }
    g.bench_function("watch_dispatch_100_stream", |b| {
        b.iter(|| {
            let mut fired = Vec::new();
            hub.fire(&change, &mut fired);
            debug_assert_eq!(fired.len(), 100);
            black_box(fired.len())
        })
    });
    g.finish();
}

/// Batches written to one WAL before it is replaced (keeps the in-memory files small).
const BATCHES_PER_WAL: u64 = 256;

fn new_wal(n: u64) -> Wal<MemFs> {
    let opts = WalOptions {
        segment_size: 8 << 20,
    };
    let dir = Path::new("/bench/wal").join(n.to_string());
    futures_lite::future::block_on(Wal::create_with(MemFs::default(), &dir, b"bench", opts))
        .expect("create WAL on MemFs")
}

fn wal(c: &mut Criterion) {
    let payload = vec![0x5Au8; 256];
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Elements(64));
    g.bench_function("append64_sync", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut n = 0;
            let mut w = new_wal(n);
            let mut index = 0u64;
            for i in 0..iters {
                if i > 0 && i % BATCHES_PER_WAL == 0 {
                    n += 1;
                    w = new_wal(n);
                    index = 0;
                }
                let t = Instant::now();
                for _ in 0..64 {
                    index += 1;
                    w.append_entry(index, 1, &payload);
                }
                w.set_hard_state(1, 1, index);
                let stats = futures_lite::future::block_on(w.sync()).expect("sync");
                total += t.elapsed();
                black_box(stats);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, http, store, wal);
criterion_main!(benches);
