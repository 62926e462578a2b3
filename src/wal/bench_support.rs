//! Measurement of the WAL alone on a real disk: entries/s and fdatasyncs/s at given batch
//! sizes (one batch = N entries + a hard state, then one `sync`), plus the raw latency of a
//! 4 KiB O_DIRECT write + fdatasync on the same file system for reference.
//!
//! Owns only timing loops; knows nothing of raft or the store. Must run inside a glommio
//! executor. `benches/` targets and tests call [`measure`] and [`raw_fdatasync_latency`].

use std::path::Path;
use std::time::{Duration, Instant};

use glommio::io::{DmaFile, OpenOptions};

use super::{Wal, WalError, WalOptions};

/// One batch size's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub batch: usize,
    pub entry_bytes: usize,
    pub syncs: u64,
    pub entries: u64,
    pub seconds: f64,
    pub entries_per_sec: f64,
    pub fsyncs_per_sec: f64,
    pub mib_per_sec: f64,
}

impl Row {
    pub fn header() -> &'static str {
        "batch  entry_B   syncs     entries   entries/s  fdatasyncs/s   MiB/s"
    }
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>5}  {:>7}  {:>6}  {:>10}  {:>10.0}  {:>12.0}  {:>6.1}",
            self.batch,
            self.entry_bytes,
            self.syncs,
            self.entries,
            self.entries_per_sec,
            self.fsyncs_per_sec,
            self.mib_per_sec
        )
    }
}

/// For each batch size, appends batches of `batch` entries of `entry_bytes` bytes (plus a hard
/// state) to a fresh WAL under `dir` and syncs each, for `duration`; prints and returns a row
/// per batch size. The WAL directories are removed afterwards.
pub async fn measure(
    dir: &Path,
    batch_sizes: &[usize],
    entry_bytes: usize,
    duration: Duration,
) -> Result<Vec<Row>, WalError> {
    let mut rows = Vec::new();
    let payload = vec![0x5Au8; entry_bytes];
    println!("{}", Row::header());
    for &batch in batch_sizes {
        let wdir = dir.join(format!("wal-bench-{batch}"));
        let _ = std::fs::remove_dir_all(&wdir);
        let mut wal =
            Wal::create_with(super::DmaFs, &wdir, b"bench", WalOptions::default()).await?;
        let mut index = 0u64;
        let mut syncs = 0u64;
        let mut fsyncs = 0u64;
        let mut bytes = 0u64;
        let t0 = Instant::now();
        while t0.elapsed() < duration {
            for _ in 0..batch.max(1) {
                index += 1;
                wal.append_entry(index, 1, &payload);
            }
            wal.set_hard_state(1, 1, index);
            let s = wal.sync().await?;
            syncs += 1;
            fsyncs += s.fsyncs;
            bytes += s.bytes;
        }
        let secs = t0.elapsed().as_secs_f64();
        drop(wal);
        let _ = std::fs::remove_dir_all(&wdir);
        let row = Row {
            batch,
            entry_bytes,
            syncs,
            entries: index,
            seconds: secs,
            entries_per_sec: index as f64 / secs,
            fsyncs_per_sec: fsyncs as f64 / secs,
            mib_per_sec: bytes as f64 / secs / (1024.0 * 1024.0),
        };
        println!("{row}");
        rows.push(row);
    }
    Ok(rows)
}

/// Latency of `samples` rounds of (4 KiB O_DIRECT write + fdatasync) in a preallocated file
/// under `dir`: returns (p50, p99). With `same_block` false each write goes to the next
/// (preallocated, unwritten) block, as WAL appends do; with true every write overwrites
/// block 0 (an already written extent: no extent conversion for the journal to commit).
pub async fn raw_fdatasync_latency(
    dir: &Path,
    samples: usize,
    same_block: bool,
) -> std::io::Result<(Duration, Duration)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("raw-fdatasync.bench");
    super::file::probe_device_once(&path).await?;
    let file: DmaFile = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(&path)
        .await?;
    let n = samples.max(1);
    file.pre_allocate(4096 * n as u64, false).await?;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let mut buf = file.alloc_dma_buffer(4096);
        buf.as_bytes_mut().fill(i as u8);
        let t = Instant::now();
        let pos = if same_block { 0 } else { 4096 * i as u64 };
        file.write_at(buf, pos).await?;
        file.fdatasync().await?;
        lat.push(t.elapsed());
    }
    file.close().await?;
    let _ = std::fs::remove_file(&path);
    lat.sort();
    let pick = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    Ok((pick(0.50), pick(0.99)))
}
