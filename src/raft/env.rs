//! What the raft node takes from the world around it besides its log and its peers: the time,
//! and where slow blocking work (encoding, writing and reading back snapshot files) runs.
//!
//! A server uses the real clocks and glommio's blocking thread pool; the deterministic
//! simulation ([`crate::sim`]) uses a simulated clock and runs that work inline, so that a
//! seed replays exactly. Knows nothing about raft.

use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The time as the raft node reads it.
pub trait Clock {
    /// A monotonic instant (timeouts, heartbeat gaps, retry waits).
    fn now(&self) -> Instant;
    /// Wall-clock nanoseconds since the Unix epoch (the leader's clock that expires keys).
    fn unix_nanos(&self) -> i64;
}

/// The process's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn unix_nanos(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    }
}

/// Where the raft node runs work that blocks a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    /// On glommio's blocking thread pool, while the node's loop goes on (a server).
    Pool,
    /// Right where it is asked for (the simulation: nothing may finish at a time that depends
    /// on threads).
    Inline,
}

impl Blocking {
    /// Runs `job` where this says. `Pool` must be called inside a glommio executor.
    pub async fn run<T: Send + 'static>(self, job: impl FnOnce() -> T + Send + 'static) -> T {
        match self {
            Blocking::Pool => glommio::executor().spawn_blocking(job).await,
            Blocking::Inline => job(),
        }
    }
}

/// The raft node's surroundings, chosen by whoever starts it.
#[derive(Clone)]
pub struct NodeEnv {
    pub clock: Rc<dyn Clock>,
    pub blocking: Blocking,
}

impl NodeEnv {
    /// A server's: the process's clocks and glommio's blocking pool.
    pub fn system() -> NodeEnv {
        NodeEnv {
            clock: Rc::new(SystemClock),
            blocking: Blocking::Pool,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshot files written and read back on glommio's blocking pool from an executor, as
    /// the raft node does in a server; inline gives the same.
    #[test]
    fn snapshot_files_through_either_placement() {
        let dir = std::env::temp_dir().join(format!("tern-env-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.clone();
        let loaded = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let mut loaded = Vec::new();
                for (index, blocking) in [(5, Blocking::Pool), (6, Blocking::Inline)] {
                    let dir = d.clone();
                    blocking
                        .run(move || crate::snap::save(&dir, index, 1, b"payload"))
                        .await
                        .expect("save");
                    let dir = d.clone();
                    let newest = blocking
                        .run(move || crate::snap::load_newest(&dir))
                        .await
                        .expect("load");
                    loaded.push(newest.snapshot.map(|s| (s.index, s.payload)));
                }
                loaded
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(
            loaded,
            vec![
                Some((5, b"payload".to_vec())),
                Some((6, b"payload".to_vec()))
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
