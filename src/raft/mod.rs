//! The raft node: runs on shard 0 only and drives raft-rs's `RawNode`.
//!
//! Owns proposal batching (everything that reached the inbox while the previous Ready was being
//! handled goes into the next one), ReadIndex batching, ticking, leader-clock `Sync` proposals
//! for TTL expiry, and the committed-entry stream to every shard. Knows nothing about HTTP.
//!
//! Durability: every Ready's entries and hard state go to the WAL in one write and one
//! `fdatasync` (see [`storage`]) before raft learns they are persisted; proposals that arrive
//! meanwhile wait in the inbox and share the next one (group commit). Every `--snapshot-count`
//! applied entries the store is written to a snapshot file and the log is compacted.

pub mod logger;
pub mod storage;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::path::PathBuf;

use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole, Storage as _};

use crate::wal::Wal;

use crate::error::{Code, Error};
use crate::shard::local::Mailbox;
use crate::shard::proposal::{self, Proposal, NO_ORIGIN};
use crate::shard::{CommittedBatch, CommittedEntry, RaftInput, Shard, ShardMsg};
use crate::store::Command;

/// Timing and identity of the local raft node.
pub struct RaftSettings {
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    pub debug: bool,
    /// Applied entries between two snapshots (`--snapshot-count`).
    pub snapshot_count: u64,
    /// Snapshot files and WAL segments to keep (`--max-snapshots`, `--max-wals`; 0 = all).
    pub max_snapshots: usize,
    pub max_wals: usize,
    pub snap_dir: PathBuf,
}

pub struct RaftDriver {
    node: RawNode<MemStorage>,
    wal: Wal,
    settings: Rc<RaftSettings>,
    /// Raft index of the newest snapshot on disk.
    snapshot_index: u64,
    /// Raft index shard 0's store has applied.
    applied_index: u64,
    /// Set while a snapshot is being written, so only one is in flight.
    snapshotting: bool,
    shard: Rc<Shard>,
    inbox: Rc<Mailbox<RaftInput>>,
    /// Proposals that arrived while no leader was known; proposed once one is.
    waiting_for_leader: Vec<Vec<u8>>,
    /// Read-index batches in flight: context -> the (shard, id) pairs that asked.
    reads_in_flight: HashMap<u64, Vec<(usize, u64)>>,
    next_read_ctx: u64,
}

/// Builds the node over the recovered log and starts its loop and ticker on the current
/// executor (shard 0).
pub fn start_node(
    settings: RaftSettings,
    shard: Rc<Shard>,
    recovered: storage::Recovered,
) -> Result<(), String> {
    let storage::Recovered {
        bootstrap,
        wal,
        storage,
        applied,
        ..
    } = recovered;
    let election_tick = (settings.election_timeout.as_millis()
        / settings.heartbeat.as_millis().max(1))
    .max(2) as usize;
    let config = raft::Config {
        id: bootstrap.member_id,
        applied,
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
    if bootstrap.voters == [bootstrap.member_id] {
        // A lone voter needs no election timeout to win: become leader now.
        node.campaign().map_err(|e| format!("raft campaign: {e}"))?;
    }
    let inbox = Mailbox::new();
    shard.set_raft_inbox(inbox.clone());
    let heartbeat = settings.heartbeat;
    let driver = RaftDriver {
        node,
        wal,
        settings: Rc::new(settings),
        snapshot_index: applied,
        applied_index: applied,
        snapshotting: false,
        shard,
        inbox: inbox.clone(),
        waiting_for_leader: Vec::new(),
        reads_in_flight: HashMap::new(),
        next_read_ctx: 1,
    };
    glommio::spawn_local(driver.run()).detach();
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

impl RaftDriver {
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
                    RaftInput::SnapshotSaved {
                        index,
                        term,
                        result,
                    } => {
                        if let Err(e) = self.on_snapshot_saved(index, term, result).await {
                            eprintln!("tern: fatal: {e}");
                            std::process::exit(1);
                        }
                    }
                }
            }
            if !reads.is_empty() {
                self.request_read_index(reads);
            }
            if let Err(e) = self.handle_ready().await {
                // The WAL cannot take writes: stop acknowledging anything (etcd exits too).
                eprintln!("tern: fatal: {e}");
                std::process::exit(1);
            }
            self.maybe_snapshot();
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

    /// Handles Readies in raft-rs's documented order until raft has nothing more to say.
    async fn handle_ready(&mut self) -> Result<(), String> {
        while self.node.has_ready() {
            self.handle_one_ready().await?;
            if self.leader_known() && !self.waiting_for_leader.is_empty() {
                for data in std::mem::take(&mut self.waiting_for_leader) {
                    self.propose(data);
                }
            }
        }
        Ok(())
    }

    async fn handle_one_ready(&mut self) -> Result<(), String> {
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

        // 5. New entries and hard state: one WAL write and one fdatasync, then the mirror.
        for entry in ready.entries() {
            let bytes = protobuf::Message::write_to_bytes(entry)
                .map_err(|e| format!("encode entry: {e}"))?;
            self.wal.append_entry(entry.index, entry.term, &bytes);
        }
        if let Some(hs) = ready.hs() {
            self.wal.set_hard_state(hs.term, hs.vote, hs.commit);
        }
        if self.wal.has_pending() {
            let stats = self.wal.sync().await.map_err(|e| e.to_string())?;
            let status = &self.shard.shared.raft;
            status.wal_fsyncs.fetch_add(stats.fsyncs, Ordering::Relaxed);
            status
                .wal_entries
                .fetch_add(ready.entries().len() as u64, Ordering::Relaxed);
        }
        if !ready.entries().is_empty() {
            self.node
                .mut_store()
                .wl()
                .append(ready.entries())
                .map_err(|e| format!("raft log: {e}"))?;
        }
        if let Some(hs) = ready.hs() {
            self.node.mut_store().wl().set_hardstate(hs.clone());
        }

        // 6. Messages that must wait for the append to be durable (votes, follower acks).
        if !ready.persisted_messages().is_empty() {
            let msgs = ready.take_persisted_messages();
            self.send_messages(msgs);
        }

        // 7. Advance: entries that the append just made committable.
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node
                .mut_store()
                .wl()
                .mut_hard_state()
                .set_commit(commit);
            self.shard
                .shared
                .raft
                .commit
                .store(commit, Ordering::Release);
            // Recorded with the next sync; a commit index lost in a crash is re-learned.
            let hs = self.node.raft.hard_state();
            self.wal.set_hard_state(hs.term, hs.vote, hs.commit);
        }
        let msgs = light.take_messages();
        self.send_messages(msgs);
        let committed = light.take_committed_entries();
        self.apply_committed(committed);
        self.node.advance_apply();
        Ok(())
    }

    /// Every `--snapshot-count` applied entries: write shard 0's store to a snapshot file (on a
    /// blocking thread, so the loop keeps serving), then compact the log and purge old files.
    fn maybe_snapshot(&mut self) {
        let due = self.applied_index >= self.snapshot_index + self.settings.snapshot_count.max(1);
        if !due || self.snapshotting {
            return;
        }
        let index = self.applied_index;
        let Ok(term) = self.node.store().term(index) else {
            return;
        };
        let started = std::time::Instant::now();
        let voters = self.node.raft.prs().conf().to_conf_state().voters;
        let store = self.shard.store.borrow().snapshot();
        let payload = storage::encode_snapshot_payload(&voters, &store);
        let stall = started.elapsed().as_micros() as u64;
        let status = &self.shard.shared.raft;
        status.snapshots.fetch_add(1, Ordering::Relaxed);
        status
            .snapshot_stall_micros_total
            .fetch_add(stall, Ordering::Relaxed);
        status
            .snapshot_stall_micros_max
            .fetch_max(stall, Ordering::Relaxed);
        self.snapshotting = true;
        let dir = self.settings.snap_dir.clone();
        let inbox = self.inbox.clone();
        glommio::spawn_local(async move {
            let result = crate::snap::save_async(dir, index, term, payload)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            inbox.push(RaftInput::SnapshotSaved {
                index,
                term,
                result,
            });
        })
        .detach();
    }

    async fn on_snapshot_saved(
        &mut self,
        index: u64,
        term: u64,
        result: Result<(), String>,
    ) -> Result<(), String> {
        self.snapshotting = false;
        if let Err(e) = result {
            eprintln!("tern: snapshot at {index} failed: {e}");
            return Ok(());
        }
        self.wal.append_snapshot_marker(index, term);
        self.wal.sync().await.map_err(|e| e.to_string())?;
        self.snapshot_index = index;
        if let Err(e) = self.node.mut_store().wl().compact(index) {
            eprintln!("tern: compacting the raft log to {index}: {e}");
        }
        if let Err(e) = self.wal.purge(index, self.settings.max_wals) {
            eprintln!("tern: purging WAL segments: {e}");
        }
        if let Err(e) = crate::snap::purge(&self.settings.snap_dir, self.settings.max_snapshots) {
            eprintln!("tern: purging snapshots: {e}");
        }
        Ok(())
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
        if let Some(last) = batch.entries.last() {
            self.applied_index = last.index;
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
