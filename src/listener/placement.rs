//! Which shard serves an accepted client connection.
//!
//! Every shard accepts on the client port (SO_REUSEPORT: the kernel spreads connections by a
//! hash of their addresses), but writes are proposed on shard 0, where raft runs. A
//! connection another shard holds pays two cross-thread wake-ups per write, the proposal to
//! shard 0 and the answer back: 40–50 µs on this machine's VM, a fifth of a single client's
//! acknowledged write. So while shard 0 serves fewer than [`FEW`] client connections, the
//! other shards hand the connections they accept to it; beyond that, connections stay where
//! the kernel put them and load spreads over every core as before. The latency-sensitive
//! case (a handful of clients waiting on each write) is served without a hop, the busy case
//! keeps its parallelism.
//!
//! Owns the decision, the count of client connections each shard serves (in
//! [`Shared::connections`], which `/metrics` exports) and the channels that carry a moved
//! connection (its socket, its descriptor permit, which listener took it) from each shard to
//! shard 0. Knows nothing about HTTP or TLS: the accept loop ([`super`]) serves what arrives.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::net::AcceptedTcpStream;
use glommio::{GlommioError, ResourceType};

use crate::process::ConnectionPermit;
use crate::shard::Shared;

/// While shard 0 serves fewer client connections than this, other shards move theirs to it.
pub const FEW: u64 = 4;

/// Moved connections a channel holds before a sender serves its own instead.
const CHANNEL: usize = 64;

/// A connection on its way to shard 0.
pub struct Moved {
    /// The accepted socket, not yet bound to an executor. (An `AcceptedTcpStream` dropped
    /// unbound keeps its descriptor open, so shard 0 binds every one it receives, even the
    /// ones it closes at once.)
    pub accepted: AcceptedTcpStream,
    /// The process's descriptor budget, held for the connection's life.
    pub permit: ConnectionPermit,
    /// Which of the member's listen addresses accepted it.
    pub listen: usize,
}

/// One shard's part of the placement, taken once by that shard ([`ClientPlacement::take`]).
pub enum End {
    /// Shard 0: receives the connections other shards move.
    RaftShard(Vec<SharedReceiver<Moved>>),
    /// Another shard: may move connections to shard 0.
    Other(usize, SharedSender<Moved>),
}

/// The placement of a member's client connections: one [`End`] per shard.
pub struct ClientPlacement {
    ends: Vec<Mutex<Option<End>>>,
}

impl ClientPlacement {
    pub fn new(nshards: usize) -> Arc<ClientPlacement> {
        let (senders, receivers): (Vec<_>, Vec<_>) = (1..nshards)
            .map(|_| shared_channel::new_bounded(CHANNEL))
            .unzip();
        let others = (1..).zip(senders).map(|(shard, tx)| End::Other(shard, tx));
        let ends = std::iter::once(End::RaftShard(receivers))
            .chain(others)
            .map(|end| Mutex::new(Some(end)))
            .collect();
        Arc::new(ClientPlacement { ends })
    }

    /// Shard `shard`'s end (`None` after the first call).
    pub fn take(&self, shard: usize) -> Option<End> {
        self.ends
            .get(shard)?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// A shard's connected end, used by its accept loops.
pub struct Placing {
    shard: usize,
    shared: Arc<Shared>,
    to_raft_shard: Option<ConnectedSender<Moved>>,
}

impl Placing {
    /// Shard `shard`'s end, connected: shard 0's receivers or another shard's sender. Each
    /// side waits (glommio re-polls, it does not sleep) until the other has connected too, so
    /// every shard connects early, right after its shard state starts. `None` when the
    /// process stops first.
    pub async fn connect(
        end: End,
        shared: Arc<Shared>,
    ) -> Option<(Rc<Placing>, Vec<ConnectedReceiver<Moved>>)> {
        let connecting = async {
            match end {
                End::RaftShard(receivers) => {
                    let mut connected = Vec::with_capacity(receivers.len());
                    for rx in receivers {
                        connected.push(rx.connect().await);
                    }
                    let placing = Placing {
                        shard: 0,
                        shared: shared.clone(),
                        to_raft_shard: None,
                    };
                    Some((Rc::new(placing), connected))
                }
                End::Other(shard, tx) => {
                    let placing = Placing {
                        shard,
                        shared: shared.clone(),
                        to_raft_shard: Some(tx.connect().await),
                    };
                    Some((Rc::new(placing), Vec::new()))
                }
            }
        };
        futures_lite::future::or(connecting, async {
            crate::listener::stopping(&shared).await;
            None
        })
        .await
    }

    /// Moves a connection this shard accepted to shard 0 when shard 0 serves few: `Ok` when
    /// it went, the connection and its permit back when it stays here.
    pub fn try_move(
        &self,
        accepted: AcceptedTcpStream,
        permit: ConnectionPermit,
        listen: usize,
    ) -> Result<(), (AcceptedTcpStream, ConnectionPermit)> {
        let Some(tx) = &self.to_raft_shard else {
            return Err((accepted, permit));
        };
        let on_raft_shard = &self.shared.connections[0].0;
        let reserved = on_raft_shard
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < FEW).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            return Err((accepted, permit));
        }
        let moved = Moved {
            accepted,
            permit,
            listen,
        };
        match tx.try_send(moved) {
            Ok(()) => Ok(()),
            Err(GlommioError::Closed(ResourceType::Channel(m)))
            | Err(GlommioError::WouldBlock(ResourceType::Channel(m))) => {
                on_raft_shard.fetch_sub(1, Ordering::AcqRel);
                Err((m.accepted, m.permit))
            }
            // A channel's `try_send` fails with the item, as one of the two above; were that to
            // change, the connection would be lost here, not the process.
            Err(other) => {
                on_raft_shard.fetch_sub(1, Ordering::AcqRel);
                tracing::error!("moving a connection to shard 0 failed: {other}");
                Ok(())
            }
        }
    }

    /// Counts a connection this shard serves until the returned guard drops.
    pub fn serving_here(&self) -> Serving {
        self.shared.connections[self.shard]
            .0
            .fetch_add(1, Ordering::AcqRel);
        self.serving_counted()
    }

    /// The guard of a connection already counted on this shard (moved here: the sender
    /// reserved its place).
    pub fn serving_counted(&self) -> Serving {
        Serving {
            shared: self.shared.clone(),
            shard: self.shard,
        }
    }
}

/// A connection counted in [`Shared::connections`] while it is served.
pub struct Serving {
    shared: Arc<Shared>,
    shard: usize,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.shared.connections[self.shard]
            .0
            .fetch_sub(1, Ordering::AcqRel);
    }
}
