//! The floor of an acknowledged write on this machine: what a single client's PUT cannot beat
//! however little the server does. One 4 KiB O_DIRECT write + fdatasync in a given directory
//! (to a preallocated, unwritten block, as an append to etcd's WAL does; and over an already
//! written block, the *strict* floor, as tern's zero-filled WAL segments allow) plus one
//! loopback TCP round trip of 64 bytes.
//!
//! Used by `cargo bench --bench matrix` and `ternbench --floor DIR`, so scripts can measure
//! the floor in the same run as the servers they compare with it. Knows nothing of servers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

/// One measurement of the floor's parts, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Floor {
    /// 4 KiB O_DIRECT write + fdatasync to the next preallocated block: p50 and p99.
    pub fsync_p50_ms: f64,
    pub fsync_p99_ms: f64,
    /// The same over an already written block: p50 and p99.
    pub overwrite_p50_ms: f64,
    pub overwrite_p99_ms: f64,
    /// 64-byte loopback TCP round trip, p50.
    pub rtt_p50_ms: f64,
}

impl Floor {
    /// Write + fdatasync p50 plus round trip p50.
    pub fn total_ms(&self) -> f64 {
        self.fsync_p50_ms + self.rtt_p50_ms
    }

    /// Overwrite + fdatasync p50 plus round trip p50.
    pub fn strict_ms(&self) -> f64 {
        self.overwrite_p50_ms + self.rtt_p50_ms
    }

    /// The lower figure of each part of two measurements (a shared machine's noise only ever
    /// adds latency, so the lower figure is the fairer floor).
    pub fn lower(&self, other: &Floor) -> Floor {
        Floor {
            fsync_p50_ms: self.fsync_p50_ms.min(other.fsync_p50_ms),
            fsync_p99_ms: self.fsync_p99_ms.min(other.fsync_p99_ms),
            overwrite_p50_ms: self.overwrite_p50_ms.min(other.overwrite_p50_ms),
            overwrite_p99_ms: self.overwrite_p99_ms.min(other.overwrite_p99_ms),
            rtt_p50_ms: self.rtt_p50_ms.min(other.rtt_p50_ms),
        }
    }

    /// One line for people: every part and both floors.
    pub fn summary(&self, dir: &Path) -> String {
        format!(
            "4 KiB O_DIRECT write + fdatasync in {}: p50 {:.3} ms, p99 {:.3} ms (over a written \
             block: p50 {:.3} ms, p99 {:.3} ms); loopback TCP round trip: p50 {:.3} ms; floor \
             (p50 + p50) {:.3} ms, strict floor {:.3} ms",
            dir.display(),
            self.fsync_p50_ms,
            self.fsync_p99_ms,
            self.overwrite_p50_ms,
            self.overwrite_p99_ms,
            self.rtt_p50_ms,
            self.total_ms(),
            self.strict_ms()
        )
    }
}

/// Measures the floor with files under `dir/floor` (removed afterwards): 500 writes of each
/// kind and 2,000 round trips. Runs its own glommio executor on this thread.
pub fn measure(dir: &Path) -> std::io::Result<Floor> {
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .map_err(|e| std::io::Error::other(format!("glommio executor (io_uring): {e}")))?;
    let dir = dir.join("floor");
    let (append, over) = ex.run(async {
        let append = crate::wal::bench_support::raw_fdatasync_latency(&dir, 500, false).await;
        let over = crate::wal::bench_support::raw_fdatasync_latency(&dir, 500, true).await;
        (append, over)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (p50, p99) = append?;
    let (over50, over99) = over?;
    Ok(Floor {
        fsync_p50_ms: p50.as_secs_f64() * 1e3,
        fsync_p99_ms: p99.as_secs_f64() * 1e3,
        overwrite_p50_ms: over50.as_secs_f64() * 1e3,
        overwrite_p99_ms: over99.as_secs_f64() * 1e3,
        rtt_p50_ms: loopback_rtt_p50()?.as_secs_f64() * 1e3,
    })
}

/// p50 of 2,000 round trips of 64 bytes over a loopback TCP connection to an echo thread.
fn loopback_rtt_p50() -> std::io::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        s.set_nodelay(true).ok();
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let mut lat = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let t = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        lat.push(t.elapsed());
    }
    drop(s);
    let _ = echo.join();
    lat.sort();
    Ok(lat[lat.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_takes_the_smaller_figure_of_each_part() {
        let a = Floor {
            fsync_p50_ms: 0.2,
            fsync_p99_ms: 0.5,
            overwrite_p50_ms: 0.1,
            overwrite_p99_ms: 0.4,
            rtt_p50_ms: 0.06,
        };
        let b = Floor {
            fsync_p50_ms: 0.3,
            fsync_p99_ms: 0.3,
            overwrite_p50_ms: 0.2,
            overwrite_p99_ms: 0.2,
            rtt_p50_ms: 0.05,
        };
        let low = a.lower(&b);
        assert_eq!(
            (
                low.fsync_p50_ms,
                low.fsync_p99_ms,
                low.overwrite_p50_ms,
                low.rtt_p50_ms
            ),
            (0.2, 0.3, 0.1, 0.05)
        );
        assert!((low.total_ms() - 0.25).abs() < 1e-9);
        assert!((low.strict_ms() - 0.15).abs() < 1e-9);
    }

    #[test]
    fn measure_reports_every_part_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("tern-floor-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let floor = measure(&dir).expect("floor");
        for part in [floor.fsync_p50_ms, floor.overwrite_p50_ms, floor.rtt_p50_ms] {
            assert!(part > 0.0, "{floor:?}");
        }
        assert!(floor.fsync_p99_ms >= floor.fsync_p50_ms, "{floor:?}");
        assert!(!dir.join("floor").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
