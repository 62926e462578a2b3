//! The simulated network's sending side: each member's [`PeerSender`] puts raft's messages in
//! one shared outbox, which the world routes (delivers after a random latency, loses,
//! duplicates, or drops across a partition) when the member's turn is over.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use raft::eraftpb::Message;

use crate::raft::PeerSender;

/// Messages sent since the world last routed them, and who can reach whom.
#[derive(Default)]
pub struct Wires {
    pub outbox: Vec<Message>,
    /// Members cut off from every member outside the set (empty: no partition).
    pub island: BTreeSet<u64>,
}

impl Wires {
    /// Whether a message from `from` reaches `to` across the current partition.
    pub fn connected(&self, from: u64, to: u64) -> bool {
        self.island.is_empty() || self.island.contains(&from) == self.island.contains(&to)
    }
}

/// One member's way onto the wires.
pub struct SimPeers {
    pub me: u64,
    pub wires: Rc<RefCell<Wires>>,
}

impl PeerSender for SimPeers {
    fn set_peers<'a>(&self, _peers: impl Iterator<Item = (u64, &'a [String])>) {}

    fn is_active(&self, peer: u64) -> bool {
        self.wires.borrow().connected(self.me, peer)
    }

    fn send(&self, msgs: Vec<Message>) {
        self.wires.borrow_mut().outbox.extend(msgs);
    }
}
