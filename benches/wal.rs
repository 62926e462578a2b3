//! `cargo bench --bench wal`: the WAL alone on this machine's disk.
//!
//! For batch sizes 1…1024 (256-byte entries plus a hard state per batch, one `sync` per batch)
//! it prints entries/s and fdatasyncs/s, then the raw latency of a 4 KiB O_DIRECT write plus
//! fdatasync on the same disk: the floor any acknowledged write pays.
//! `TERN_BENCH_SECS` sets the seconds per batch size (default 1); `TERN_BENCH_DIR` the directory
//! (default `target/wal-bench`, which must not be tmpfs: O_DIRECT falls back to buffered there).

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let secs: f64 = std::env::var("TERN_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let dir = std::env::var_os("TERN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/wal-bench"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("glommio executor (io_uring)");
    ex.run(async {
        println!("WAL on {} ({secs} s per batch size)", dir.display());
        let batches = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
        tern::wal::bench_support::measure(
            &dir.join("wal"),
            &batches,
            256,
            Duration::from_secs_f64(secs),
        )
        .await
        .expect("measure");
        let (p50, p99) = tern::wal::bench_support::raw_fdatasync_latency(&dir, 2000, false)
            .await
            .expect("raw fdatasync");
        println!("raw 4 KiB O_DIRECT write + fdatasync: p50 {p50:?}, p99 {p99:?}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
