//! Process-wide policy that no single unit owns:
//! - a panic on any thread ends the whole process with a logged reason and a non-zero status
//!   (SIGABRT): a member with a dead shard must not keep its ports, answer some requests and
//!   hang others, so that its supervisor restarts it;
//! - the soft file-descriptor limit is raised to the hard one at start (as Go's runtime does
//!   for etcd);
//! - client and peer connections may hold only the descriptors left after a reserve for the
//!   WAL, snapshots, peer links and the executors ([`ConnectionPermit`]), so running out of
//!   descriptors refuses clients, never the log.
//!
//! Knows nothing about what the threads or connections do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Installs the panic policy: the default report (message, location), then one line saying
/// the member exits, then `abort`. Call once, first thing in `main`.
pub fn install_panic_hook() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let thread = std::thread::current();
        eprintln!(
            "tern: fatal: thread '{}' panicked; exiting (a member with a failed thread must not keep serving)",
            thread.name().unwrap_or("unnamed")
        );
        std::process::abort();
    }));
}

/// Descriptors kept back from connections: WAL segment, spare and directory, snapshot files,
/// listeners, and the executors' rings and event descriptors.
const RESERVE_BASE: usize = 128;
/// Peer links (two per peer), per-shard rings, timers: scaled by the shard count.
const RESERVE_PER_SHARD: usize = 16;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and fixes how many connections may be
/// open at once. Returns (limit now in force, connections allowed).
pub fn raise_fd_limit(nshards: usize) -> (usize, usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct passed by pointer.
    let limit = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            1024
        } else {
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
            lim.rlim_cur
        }
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let allowed = connection_allowance(limit, nshards);
    let _ = MAX_CONNECTIONS.set(allowed);
    (limit, allowed)
}

/// Connections allowed under `limit` descriptors: the limit less the reserve, and never less
/// than a quarter of the limit (a tiny limit still serves someone).
fn connection_allowance(limit: usize, nshards: usize) -> usize {
    let reserve = RESERVE_BASE + RESERVE_PER_SHARD * nshards;
    limit.saturating_sub(reserve).max(limit / 4)
}

static MAX_CONNECTIONS: OnceLock<usize> = OnceLock::new();
static OPEN_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// One accepted connection's share of the descriptor budget; released on drop.
pub struct ConnectionPermit(());

impl ConnectionPermit {
    /// A permit, or `None` when the connections open already use the whole allowance.
    pub fn try_acquire() -> Option<ConnectionPermit> {
        let max = *MAX_CONNECTIONS.get().unwrap_or(&usize::MAX);
        OPEN_CONNECTIONS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionPermit(()))
    }

    /// Connections open now, and the most allowed.
    pub fn usage() -> (usize, usize) {
        (
            OPEN_CONNECTIONS.load(Ordering::Relaxed),
            *MAX_CONNECTIONS.get().unwrap_or(&usize::MAX),
        )
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_comes_off_the_limit_but_never_everything() {
        assert_eq!(connection_allowance(20_000, 2), 20_000 - 160);
        assert_eq!(connection_allowance(1024, 2), 1024 - 160);
        assert_eq!(connection_allowance(200, 8), 50);
        assert_eq!(connection_allowance(0, 1), 0);
    }
}
