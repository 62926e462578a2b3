//! Locked memory for glommio's io_uring buffers: the one process-wide setting that every
//! user of glommio executors here (the server, `ternbench`, the WAL tests) makes before it
//! starts them; and, for unit tests, a small executor to run a future on. Knows nothing about
//! what runs on the executors.

use std::sync::Once;

/// Lifts `RLIMIT_MEMLOCK` once per process. Root may; otherwise the old limit stays, which is
/// enough for the small I/O memory tern's executors ask for (the common default is 8 MiB).
pub fn raise_memlock_limit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit only reads the struct we pass; a failure keeps the old limit.
        unsafe {
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited);
        }
    });
}

/// Runs `f` to its end on a fresh executor with a little I/O memory (unit tests).
#[cfg(test)]
pub fn run_local<T>(f: impl std::future::Future<Output = T>) -> T {
    raise_memlock_limit();
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor")
        .run(f)
}
