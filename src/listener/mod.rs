//! Client and peer listeners: which addresses to listen on (with TLS or without), binding one
//! listener per shard on each (SO_REUSEPORT), and the accept loop that serves every connection
//! with a [`Handler`] under the connection budget until the process stops.
//!
//! Shared by the member (`server`) and the proxy (`proxy`). Knows nothing about what the
//! handlers serve.

pub mod placement;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::shared_channel::ConnectedReceiver;
use glommio::net::{TcpListener, TcpStream};

use crate::http::{serve_connection, Handler, Limits};
use crate::process::ConnectionPermit;
use crate::ratelog::RateLimited;
use crate::server::StartError;
use crate::shard::Shared;
use crate::tls::server::ServerTls;

use placement::{Moved, Placing, Serving};

/// A failing accept is retried after this, doubling up to the maximum.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// One address to listen on, with TLS when its URL is `https://`.
#[derive(Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: Option<Arc<ServerTls>>,
    /// This process's claim on `addr` (see [`claim`]), released when the last copy of this
    /// `Listen` goes: when the server that listens there has ended.
    _claim: Option<Arc<std::os::unix::net::UnixListener>>,
}

/// The addresses of `urls`, each checked to be free, with `tls` for the `https://` ones.
pub fn probed_addresses(
    urls: &[crate::config::ListenUrl],
    tls: &Option<Arc<ServerTls>>,
) -> Result<Vec<Listen>, StartError> {
    let mut listens = Vec::with_capacity(urls.len());
    for u in urls {
        let addr = u.socket_addr();
        let claim = claim(&addr)?.map(Arc::new);
        probe_listen_address(&addr)?;
        let tls = match u.url().scheme {
            crate::config::Scheme::Https => tls.clone(),
            crate::config::Scheme::Http => None,
        };
        listens.push(Listen {
            addr,
            tls,
            _claim: claim,
        });
    }
    Ok(listens)
}

/// Claims `addr` for this process while the returned socket lives: an abstract Unix socket
/// named after it, which the kernel lets one socket hold at a time (and frees when the process
/// ends, however it ends). Every shard binds with SO_REUSEPORT, which lets any process of the same user bind the
/// same address too: two terns started at once on one port would both listen and share its
/// connections. The claim makes the second fail instead.
fn claim(addr: &SocketAddr) -> Result<Option<std::os::unix::net::UnixListener>, StartError> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("tern-listen-{addr}");
    let bound = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|sa| std::os::unix::net::UnixListener::bind_addr(&sa));
    match bound {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(StartError(format!(
            "listen tcp {addr}: bind: address already in use (another tern listens there)"
        ))),
        Err(e) => {
            // No abstract sockets here (another network namespace setup): the probe remains.
            tracing::warn!("cannot claim {addr} for this process: {e}");
            Ok(None)
        }
    }
}

/// Every shard binds each client address with SO_REUSEPORT, which would let a second tern on
/// the same port share it silently. A plain bind cannot tell that apart from connections of a
/// previous run lingering in TIME_WAIT/FIN_WAIT, so ask the port itself: if something keeps
/// accepting connections there for two seconds, it is taken. (A killed tern's listeners outlive
/// it briefly while the kernel tears down its io_uring instances.)
fn probe_listen_address(addr: &SocketAddr) -> Result<(), StartError> {
    let mut target = *addr;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::net::TcpStream::connect_timeout(&target, Duration::from_millis(500)).is_ok() {
        if std::time::Instant::now() > deadline {
            return Err(StartError(format!(
                "listen tcp {addr}: bind: address already in use (another process is listening there)"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// One shard's listener on a client address: SO_REUSEPORT so every shard accepts on it (the
/// kernel spreads connections), SO_REUSEADDR so a restart is not refused over TIME_WAIT.
pub fn bind_shard_listener(addr: SocketAddr) -> Result<TcpListener, StartError> {
    use socket2::{Domain, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fail = |e: std::io::Error| StartError(format!("listen tcp {addr}: bind: {e}"));
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_reuse_port(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(1024).map_err(fail)?;
    // SAFETY: the fd is a listening TCP socket we own; ownership moves to glommio.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// Resolves once the process is stopping (woken by [`Shared::set_stopping`]; nothing polls).
pub async fn stopping(shared: &Shared) {
    shared
        .wait_until(|s| s.stopping.load(Ordering::SeqCst))
        .await
}

/// Resolves once the process must end (woken by [`Shared::halt`]), with how: `Err` carries a
/// fatal reason.
pub async fn halted(shared: &Shared) -> Result<(), StartError> {
    shared.wait_until(|s| s.halted().is_some()).await;
    shared
        .halted()
        .cloned()
        .unwrap_or(Ok(()))
        .map_err(StartError)
}

/// Binds this shard's listener on each of `listens` and starts its accept loop; the loops end
/// once the process is stopping. With `placing` (a member's client port, see [`placement`])
/// connections are counted per shard and, while shard 0 serves few, moved there; shard 0 also
/// serves the connections the other shards move.
pub fn accept_on_all<H: Handler + 'static>(
    listens: &[Listen],
    handler: &Rc<H>,
    limits: Limits,
    shared: &Arc<Shared>,
    placing: Option<(Rc<Placing>, Vec<ConnectedReceiver<Moved>>)>,
) -> Result<Vec<glommio::task::JoinHandle<()>>, StartError> {
    let mut loops = Vec::with_capacity(listens.len());
    let placing = placing.map(|(placing, receivers)| {
        for rx in receivers {
            glommio::spawn_local(adopt_moved(
                rx,
                listens.to_vec(),
                handler.clone(),
                limits,
                shared.clone(),
                placing.clone(),
            ))
            .detach();
        }
        placing
    });
    for (index, listen) in listens.iter().enumerate() {
        let listener = bind_shard_listener(listen.addr)?;
        loops.push(
            glommio::spawn_local(accept_connections(
                listener,
                (index, listen.clone()),
                handler.clone(),
                limits,
                shared.clone(),
                placing.clone(),
            ))
            .detach(),
        );
    }
    Ok(loops)
}

/// Counts this shard as serving clients; the last of them tells systemd the process is ready.
pub fn shard_serving(shared: &Shared) {
    if shared.serving.fetch_add(1, Ordering::SeqCst) + 1 == shared.nshards {
        crate::shutdown::notify("READY=1");
    }
}

/// Accepts connections on one listener and serves each with `handler` under `limits` (or,
/// with `placing`, moves it to shard 0 while that shard serves few). A connection beyond the
/// descriptor budget ([`ConnectionPermit`]) is closed at once; a failing accept (descriptors
/// exhausted all the same) backs off up to a second. Both are logged at most once per
/// interval. Ends (closing the listener) once the process is stopping.
async fn accept_connections<H: Handler + 'static>(
    listener: TcpListener,
    (index, listen): (usize, Listen),
    handler: Rc<H>,
    limits: Limits,
    shared: Arc<Shared>,
    placing: Option<Rc<Placing>>,
) {
    let addr = listen.addr;
    static REFUSED: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
    static FAILED: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted =
            futures_lite::future::or(async { Some(listener.shared_accept().await) }, async {
                stopping(&shared).await;
                None
            })
            .await;
        let Some(accepted) = accepted else {
            return;
        };
        match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let Some(permit) = ConnectionPermit::try_acquire() else {
                    let (open, max) = ConnectionPermit::usage();
                    crate::ratelog!(
                        REFUSED,
                        "refusing a connection on {addr}: {open} connections open, at most {max} \
                         (the other file descriptors are kept for the WAL, snapshots and peers; \
                         raise the open-files limit to serve more)"
                    );
                    drop(accepted.bind_to_executor());
                    continue;
                };
                let (accepted, permit, serving) = match &placing {
                    Some(placing) => match placing.try_move(accepted, permit, index) {
                        Ok(()) => continue,
                        Err((accepted, permit)) => (accepted, permit, Some(placing.serving_here())),
                    },
                    None => (accepted, permit, None),
                };
                serve(
                    accepted.bind_to_executor(),
                    &listen,
                    &handler,
                    limits,
                    permit,
                    serving,
                );
            }
            Err(e) => {
                crate::ratelog!(FAILED, "accept on {addr}: {e}");
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Shard 0: serves the connections another shard moves here (see [`placement`]). Once the
/// process is stopping, what still arrives is closed (and uncounted) instead of served; the
/// loop ends when the sending shard's accept loops have ended (its sender is dropped).
async fn adopt_moved<H: Handler + 'static>(
    moved: ConnectedReceiver<Moved>,
    listens: Vec<Listen>,
    handler: Rc<H>,
    limits: Limits,
    shared: Arc<Shared>,
    placing: Rc<Placing>,
) {
    while let Some(m) = moved.recv().await {
        let serving = placing.serving_counted();
        let stream = m.accepted.bind_to_executor();
        if shared.stopping.load(Ordering::SeqCst) {
            continue;
        }
        // Every shard listens on the same addresses, in the same order.
        let Some(listen) = listens.get(m.listen) else {
            continue;
        };
        serve(stream, listen, &handler, limits, m.permit, Some(serving));
    }
}

/// Serves one accepted connection in a task of its own: on a TLS listener the handshake runs
/// there too, so a slow or failing one delays nobody. `permit` and `serving` are held until
/// the connection ends.
fn serve<H: Handler + 'static>(
    stream: TcpStream,
    listen: &Listen,
    handler: &Rc<H>,
    limits: Limits,
    permit: ConnectionPermit,
    serving: Option<Serving>,
) {
    let handler = handler.clone();
    let tls = listen.tls.clone();
    let addr = listen.addr;
    let _ = stream.set_nodelay(true);
    glommio::spawn_local(async move {
        let from = stream.peer_addr().ok();
        tracing::debug!("accepted a connection on {addr} from {from:?}");
        let outcome = match tls {
            None => Some(serve_connection(stream, &*handler, &limits).await),
            Some(tls) => match tls.accept(stream, from, addr).await {
                Some(stream) => Some(serve_connection(stream, &*handler, &limits).await),
                None => None,
            },
        };
        tracing::debug!("closed the connection on {addr} from {from:?}: {outcome:?}");
        drop((permit, serving));
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_claimed_once_while_its_claim_lives() {
        let addr: SocketAddr = format!("127.0.0.1:{}", 40000 + std::process::id() % 20000)
            .parse()
            .unwrap();
        let first = claim(&addr).unwrap();
        assert!(first.is_some());
        let second = claim(&addr).unwrap_err().0;
        assert!(second.contains("address already in use"), "{second}");
        // A server that ended (in-process) leaves the address to the next one.
        drop(first);
        assert!(claim(&addr).unwrap().is_some());
    }
}
