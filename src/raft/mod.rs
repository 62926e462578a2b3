//! The raft node: runs on shard 0 only and drives raft-rs's `RawNode`.
//!
//! Owns proposal batching (everything that reached the inbox while the previous Ready was being
//! handled goes into the next one), ReadIndex batching, ticking, leader-clock `Sync` proposals
//! for TTL expiry, and the committed-entry stream to every shard. Knows nothing about HTTP.
//!
//! Log storage is behind [`LogStore`]. Today it is raft-rs's in-memory `MemStorage`: the log
//! does not survive a restart yet (the O_DIRECT WAL is the next stage, see README).

pub mod logger;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, HardState, Message};
use raft::prelude::ConfState;
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};

use crate::error::{Code, Error};
use crate::shard::local::Mailbox;
use crate::shard::proposal::{self, Proposal, NO_ORIGIN};
use crate::shard::{CommittedBatch, CommittedEntry, RaftInput, Shard, ShardMsg};
use crate::store::Command;

/// Where raft's log and hard state are kept.
pub trait LogStore: raft::Storage {
    fn append(&mut self, entries: &[Entry]) -> raft::Result<()>;
    fn set_hard_state(&mut self, hs: HardState);
    fn set_commit(&mut self, commit: u64);
}

impl LogStore for MemStorage {
    fn append(&mut self, entries: &[Entry]) -> raft::Result<()> {
        self.wl().append(entries)
    }
    fn set_hard_state(&mut self, hs: HardState) {
        self.wl().set_hardstate(hs);
    }
    fn set_commit(&mut self, commit: u64) {
        self.wl().mut_hard_state().set_commit(commit);
    }
}

/// Timing and identity of the local raft node.
pub struct RaftSettings {
    pub id: u64,
    pub voters: Vec<u64>,
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    pub debug: bool,
}

pub struct RaftDriver<S: LogStore> {
    node: RawNode<S>,
    shard: Rc<Shard>,
    inbox: Rc<Mailbox<RaftInput>>,
    /// Proposals that arrived while no leader was known; proposed once one is.
    waiting_for_leader: Vec<Vec<u8>>,
    /// Read-index batches in flight: context -> the (shard, id) pairs that asked.
    reads_in_flight: HashMap<u64, Vec<(usize, u64)>>,
    next_read_ctx: u64,
}

/// Builds the node for a brand-new single-member log and starts its loop and ticker on the
/// current executor (shard 0).
pub fn start_memory_node(settings: &RaftSettings, shard: Rc<Shard>) -> Result<(), String> {
    let storage =
        MemStorage::new_with_conf_state(ConfState::from((settings.voters.clone(), vec![])));
    let election_tick = (settings.election_timeout.as_millis()
        / settings.heartbeat.as_millis().max(1))
    .max(2) as usize;
    let config = raft::Config {
        id: settings.id,
        election_tick,
        heartbeat_tick: 1,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| format!("raft configuration: {e}"))?;
    let logger = logger::build(settings.debug);
    let mut node = RawNode::new(&config, storage, &logger).map_err(|e| format!("raft: {e}"))?;
    if settings.voters == [settings.id] {
        // A lone voter needs no election timeout to win: become leader now.
        node.campaign().map_err(|e| format!("raft campaign: {e}"))?;
    }
    let inbox = Mailbox::new();
    shard.set_raft_inbox(inbox.clone());
    let driver = RaftDriver {
        node,
        shard,
        inbox: inbox.clone(),
        waiting_for_leader: Vec::new(),
        reads_in_flight: HashMap::new(),
        next_read_ctx: 1,
    };
    glommio::spawn_local(driver.run()).detach();
    let heartbeat = settings.heartbeat;
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(heartbeat).await;
            inbox.push(RaftInput::Tick);
        }
    })
    .detach();
    Ok(())
}

fn unix_nanos_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl<S: LogStore> RaftDriver<S> {
    async fn run(mut self) {
        let mut inputs = Vec::new();
        loop {
            inputs.clear();
            if !self.inbox.recv_batch(&mut inputs).await {
                return;
            }
            let mut reads = Vec::new();
            for input in inputs.drain(..) {
                match input {
                    RaftInput::Tick => {
                        self.node.tick();
                        self.propose_sync_if_due();
                    }
                    RaftInput::Propose(data) => self.propose(data),
                    RaftInput::ReadIndex { from, id } => reads.push((from, id)),
                }
            }
            if !reads.is_empty() {
                self.request_read_index(reads);
            }
            self.handle_ready();
        }
    }

    fn leader_known(&self) -> bool {
        self.node.raft.leader_id != raft::INVALID_ID
    }

    fn propose(&mut self, data: Vec<u8>) {
        if !self.leader_known() {
            self.waiting_for_leader.push(data);
            return;
        }
        if let Err(e) = self.node.propose(vec![], data.clone()) {
            self.fail_proposal(&data, Error::new(Code::RaftInternal, e.to_string(), 0));
        }
    }

    fn fail_proposal(&self, data: &[u8], error: Error) {
        let Ok((origin, id)) = proposal::header(data) else {
            return;
        };
        if origin == NO_ORIGIN {
            return;
        }
        let origin = usize::from(origin);
        if origin == self.shard.id {
            self.shard.fail_write(id, error);
        } else {
            self.shard
                .send_to(origin, ShardMsg::ProposalFailed { id, error });
        }
    }

    /// The leader expires keys by proposing its clock; every replica applies the same `Sync`.
    fn propose_sync_if_due(&mut self) {
        if self.node.raft.state != StateRole::Leader {
            return;
        }
        let now = unix_nanos_now();
        let due = self
            .shard
            .store
            .borrow()
            .next_expiration()
            .is_some_and(|at| at <= now);
        if due {
            let mut data = Vec::with_capacity(24);
            Proposal {
                origin: NO_ORIGIN,
                id: 0,
                command: &Command::Sync { now },
            }
            .encode(&mut data);
            let _ = self.node.propose(vec![], data);
        }
    }

    fn request_read_index(&mut self, reads: Vec<(usize, u64)>) {
        if self.node.raft.state != StateRole::Leader && !self.leader_known() {
            let index = self.shard.store.borrow().index();
            for (from, id) in reads {
                self.answer_read(from, id, Err(Error::new(Code::LeaderElect, "", index)));
            }
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        self.reads_in_flight.insert(ctx, reads);
        self.node.read_index(ctx.to_le_bytes().to_vec());
    }

    fn answer_read(&self, from: usize, id: u64, result: Result<u64, Error>) {
        if from == self.shard.id {
            self.shard.finish_read(id, result);
        } else {
            self.shard
                .send_to(from, ShardMsg::ReadIndexDone { id, result });
        }
    }

    fn send_messages(&mut self, msgs: Vec<Message>) {
        // Single member: no peers to send to yet (the peer transport is a later stage).
        drop(msgs);
    }

    /// Handles one Ready in raft-rs's documented order.
    fn handle_ready(&mut self) {
        if !self.node.has_ready() {
            return;
        }
        let mut ready = self.node.ready();

        // 1. Soft state: who leads, in which role.
        if let Some(ss) = ready.ss() {
            let status = &self.shard.shared.raft;
            status.leader.store(ss.leader_id, Ordering::Release);
            status
                .is_leader
                .store(ss.raft_state == StateRole::Leader, Ordering::Release);
        }
        self.shard
            .shared
            .raft
            .term
            .store(self.node.raft.term, Ordering::Release);

        // 2. Messages a leader may send before its own append is durable (thesis §10.2.1).
        if !ready.messages().is_empty() {
            let msgs = ready.take_messages();
            self.send_messages(msgs);
        }

        // 3. Read states: answer the ReadIndex batches.
        for rs in ready.take_read_states() {
            let mut ctx = [0u8; 8];
            if rs.request_ctx.len() == 8 {
                ctx.copy_from_slice(&rs.request_ctx);
            }
            if let Some(waiters) = self.reads_in_flight.remove(&u64::from_le_bytes(ctx)) {
                for (from, id) in waiters {
                    self.answer_read(from, id, Ok(rs.index));
                }
            }
        }

        // 4. Committed entries (already durable from earlier Readies): apply everywhere.
        let committed = ready.take_committed_entries();
        self.apply_committed(committed);

        // 5. New entries and hard state: persist.
        if !ready.entries().is_empty() {
            if let Err(e) = self.node.mut_store().append(ready.entries()) {
                eprintln!("tern: raft log append failed: {e}");
            }
        }
        if let Some(hs) = ready.hs() {
            self.node.mut_store().set_hard_state(hs.clone());
        }

        // 6. Messages that must wait for the append to be durable (votes, follower acks).
        if !ready.persisted_messages().is_empty() {
            let msgs = ready.take_persisted_messages();
            self.send_messages(msgs);
        }

        // 7. Advance: entries that the append just made committable.
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit);
            self.shard
                .shared
                .raft
                .commit
                .store(commit, Ordering::Release);
        }
        let msgs = light.take_messages();
        self.send_messages(msgs);
        let committed = light.take_committed_entries();
        self.apply_committed(committed);
        self.node.advance_apply();

        if self.leader_known() && !self.waiting_for_leader.is_empty() {
            for data in std::mem::take(&mut self.waiting_for_leader) {
                self.propose(data);
            }
            self.handle_ready();
        }
    }

    fn apply_committed(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let term = self.node.raft.term;
        let mut batch = CommittedBatch {
            entries: Vec::with_capacity(entries.len()),
            term,
        };
        for mut entry in entries {
            let data = match entry.get_entry_type() {
                EntryType::EntryNormal => std::mem::take(&mut entry.data),
                EntryType::EntryConfChange => {
                    self.apply_conf_change_v1(&entry);
                    Default::default()
                }
                EntryType::EntryConfChangeV2 => {
                    self.apply_conf_change_v2(&entry);
                    Default::default()
                }
            };
            batch.entries.push(CommittedEntry {
                index: entry.index,
                term: entry.term,
                data,
            });
        }
        let batch = Arc::new(batch);
        self.shard.apply_batch(&batch);
        for peer in 0..self.shard.shared.nshards {
            if peer != self.shard.id {
                self.shard.send_to(peer, ShardMsg::Committed(batch.clone()));
            }
        }
    }

    fn apply_conf_change_v1(&mut self, entry: &Entry) {
        let mut cc = ConfChange::default();
        if protobuf::Message::merge_from_bytes(&mut cc, &entry.data).is_ok() {
            if let Err(e) = self.node.apply_conf_change(&cc) {
                eprintln!("tern: raft conf change at {} refused: {e}", entry.index);
            }
        }
    }

    fn apply_conf_change_v2(&mut self, entry: &Entry) {
        let mut cc = ConfChangeV2::default();
        if protobuf::Message::merge_from_bytes(&mut cc, &entry.data).is_ok() {
            if let Err(e) = self.node.apply_conf_change(&cc) {
                eprintln!("tern: raft conf change at {} refused: {e}", entry.index);
            }
        }
    }
}
