//! How a tern process ends on request, and what it tells systemd.
//!
//! SIGTERM or SIGINT (caught on a thread of their own) start an orderly stop: systemd hears
//! `STOPPING=1`; every shard stops accepting connections; the raft node, if it leads a cluster
//! of more than one voter, hands leadership to the most up-to-date follower (as etcd 3 does),
//! so the others need no election timeout; every shard ends its watches (each response gets
//! its last chunk, so clients see a complete answer and watch again elsewhere); writes in
//! flight get up to [`GRACE`] to be answered (a write acknowledged is in the WAL already: each
//! is synced before it is answered); then every executor ends ([`Shared::halt`]) and `main`
//! returns 0. A second signal exits at once. [`stop`] is the same stop without a signal
//! ([`crate::server::Server::stop`]).
//! `READY=1` goes to systemd once every shard serves clients.
//!
//! Owns the signal thread, the process-wide "stopping" flag and the notify protocol (a
//! datagram to `$NOTIFY_SOCKET`). Knows nothing about requests or raft beyond two flags it
//! reads: [`crate::shard::Shared::stopping`] and whether this member still leads.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shard::Shared;

/// Longest wait for another member to take over leadership.
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait, after the handoff, for in-flight writes to be answered and watches ended.
pub const GRACE: Duration = Duration::from_secs(2);
/// How long answers get to reach their sockets once nothing is in flight.
const FLUSH: Duration = Duration::from_millis(100);
/// How long after an orderly stop the signal thread lets the executors end by themselves
/// before it ends the process.
const EXIT_AFTER_HALT: Duration = Duration::from_millis(200);

/// Sends `state` (e.g. `READY=1`) to systemd when `$NOTIFY_SOCKET` is set; errors are logged,
/// never fatal (etcd's `daemon.SdNotify` does the same).
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_notify(&path, state) {
        tracing::warn!("cannot notify systemd at {}: {e}", path.to_string_lossy());
    }
}

fn send_notify(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's usual choice for containers).
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// Starts the thread that turns SIGTERM/SIGINT into an orderly stop.
pub fn install(shared: Arc<Shared>) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("tern-signals".into())
        .spawn(move || {
            let Some(first) = signals.forever().next() else {
                return;
            };
            // A second signal while stopping: stop now.
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::warn!("received {} again; exiting now", name(sig));
                    std::process::exit(1);
                }
            });
            tracing::info!("received {}; stopping", name(first));
            stop(&shared);
            // The executors end with the halt, but an executor's teardown waits for its I/O in
            // flight (the next WAL segment being zero-filled: up to a second or two). The stop
            // is complete; the process need not wait for that.
            std::thread::sleep(EXIT_AFTER_HALT);
            std::process::exit(0);
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

fn name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGTERM => "SIGTERM",
        signal_hook::consts::SIGINT => "SIGINT",
        _ => "a signal",
    }
}

/// The orderly stop (see the module documentation); returns once every executor has been told
/// to end.
pub fn stop(shared: &Shared) {
    let started = Instant::now();
    notify("STOPPING=1");
    shared.set_stopping();
    let voters = shared.membership().len();
    if shared.raft.is_leader.load(Ordering::SeqCst) && voters > 1 {
        let deadline = Instant::now() + HANDOFF_TIMEOUT;
        while shared.raft.is_leader.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if shared.raft.is_leader.load(Ordering::SeqCst) {
            tracing::warn!(
                "no member took over leadership within {}s; stopping as leader",
                HANDOFF_TIMEOUT.as_secs()
            );
        } else {
            tracing::info!(
                "handed leadership to {} in {} ms",
                crate::cluster::id_hex(shared.raft.leader.load(Ordering::SeqCst)),
                started.elapsed().as_millis()
            );
        }
    }
    // Every shard ends its watches on seeing the flag; writes in flight are answered as raft
    // commits them (or fail at their timeout).
    let deadline = Instant::now() + GRACE;
    while (shared.pending_proposals() > 0 || shared.total_watchers() > 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (pending, watchers) = (shared.pending_proposals(), shared.total_watchers());
    if pending > 0 || watchers > 0 {
        tracing::warn!(
            "stopping with {pending} write(s) unanswered and {watchers} watch(es) open after {}s",
            GRACE.as_secs()
        );
    }
    std::thread::sleep(FLUSH);
    tracing::info!("stopped in {} ms", started.elapsed().as_millis());
    shared.halt(Ok(()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_a_path_and_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let dir = std::env::temp_dir().join(format!("tern-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        send_notify(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("tern-notify-test-{}", std::process::id());
        let abstract_listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send_notify(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = abstract_listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        let _ = std::fs::remove_dir_all(dir);
    }
}
