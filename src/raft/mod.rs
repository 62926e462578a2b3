//! The raft node: runs on shard 0 only and drives raft-rs's `RawNode`.
//!
//! Owns proposal batching (everything that reached the inbox while the previous Ready was being
//! handled goes into the next one), ReadIndex batching, ticking, leader-clock `Sync` proposals
//! for TTL expiry, applying committed entries to the store once and publishing each batch's
//! version and changes to every shard, the member list ([`membership`]) and snapshots
//! ([`snapshots`]). Messages to peers go through a [`PeerSender`] (the HTTP transport in a
//! server, an in-memory network in [`crate::sim`]); the WAL may sit on any [`WalFs`]; the clock
//! and where blocking work runs come from [`NodeEnv`]. Conditions it cannot go on from end
//! [`RaftDriver::run`] with a [`Fatal`]. Knows nothing about HTTP or sockets.
//!
//! Durability: every Ready's entries and hard state go to the WAL in one write and one
//! `fdatasync` (see [`storage`]) before raft learns they are persisted; proposals that arrive
//! meanwhile wait in the inbox and share the next one (group commit). A leader sends its
//! appends to followers before its own write (Raft thesis §10.2.1); votes and follower acks wait
//! for it. Every `--snapshot-count` applied entries the store is written to a snapshot file and
//! the log is compacted.

pub mod backup;
pub mod env;
pub mod logger;
mod membership;
mod snapshots;
pub mod storage;

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::path::PathBuf;

use raft::eraftpb::{Entry, EntryType, Message, MessageType, Snapshot};
use raft::{RawNode, SnapshotStatus, StateRole};

use crate::cluster::membership::Membership;
use crate::error::{Code, Error};
use crate::ratelog::RateLimited;
use crate::shard::local::Mailbox;
use crate::shard::proposal::{self, Origin, Payload};
use crate::shard::{AppliedBatch, RaftInput, Shard, ShardMsg, WriteAnswer};
use crate::store::{Command, Store};
use crate::wal::{DmaFs, Wal, WalFs};
pub use env::NodeEnv;
use storage::LogStorage;

/// Where the raft node's messages to other members go: the HTTP peer transport in a server
/// ([`crate::transport::Transport`]), an in-memory network in the simulation ([`crate::sim`]).
/// Sending never waits; a message that cannot go is dropped (raft sends again).
pub trait PeerSender {
    /// Makes the peers match the member list (this member's own id may be among them).
    fn set_peers<'a>(&self, peers: impl Iterator<Item = (u64, &'a [String])>);
    /// Whether messages reach `peer` right now (`--strict-reconfig-check` asks).
    fn is_active(&self, peer: u64) -> bool;
    /// Queues raft's outgoing messages. A snapshot message's outcome comes back as
    /// [`RaftInput::SnapshotSent`]; a peer that says this member must stop, as
    /// [`RaftInput::Halt`].
    fn send(&self, msgs: Vec<Message>);
}

/// Why a raft node stops for good. Each ends the process (etcd exits in each case); the error
/// travels up to `main`, which logs it and exits 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fatal {
    /// The WAL (or a snapshot file the log depends on) cannot take writes: nothing more may be
    /// acknowledged.
    Storage(String),
    /// This member was removed from the cluster.
    Removed,
    /// A peer belongs to another cluster.
    ForeignCluster { ours: u64, theirs: String },
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fatal::Storage(e) => f.write_str(e),
            Fatal::Removed => {
                f.write_str("this member has been permanently removed from the cluster. Exiting.")
            }
            Fatal::ForeignCluster { ours, theirs } => write!(
                f,
                "conflicting cluster ID to the target cluster ({} != {theirs}). Exiting.",
                crate::cluster::id_hex(*ours)
            ),
        }
    }
}

/// Timing and identity of the local raft node.
pub struct RaftSettings {
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    /// Applied entries between two snapshots (`--snapshot-count`).
    pub snapshot_count: u64,
    /// Snapshot files and WAL segments to keep (`--max-snapshots`, `--max-wals`; 0 = all).
    pub max_snapshots: usize,
    pub max_wals: usize,
    pub snap_dir: PathBuf,
    /// What this member publishes about itself once it runs.
    pub name: String,
    pub client_urls: Vec<String>,
    /// `--strict-reconfig-check`.
    pub strict_reconfig_check: bool,
    /// A member joining a running cluster: the members it was told about, to talk to until
    /// the leader's log gives it the member list.
    pub join_peers: Vec<crate::cluster::Member>,
    /// Election timeouts in ticks, `[min, max)`, when not raft-rs's default
    /// `[election, 2 × election)`.
    pub election_ticks: Option<(usize, usize)>,
}

/// The raft node of one member over the WAL on file system `F`, talking to its peers through
/// `P`. Built by [`build_node`]; [`RaftDriver::run`] is its loop.
pub struct RaftDriver<F: WalFs = DmaFs, P: PeerSender = crate::transport::Transport> {
    node: RawNode<LogStorage>,
    wal: Wal<F>,
    settings: Rc<RaftSettings>,
    env: NodeEnv,
    member_id: u64,
    /// The member list as of the applied index (shard 0's copy; published to `Shared`).
    members: Membership,
    transport: P,
    /// Raft index of the newest snapshot on disk.
    snapshot_index: u64,
    /// The store: every committed entry is applied to it here, once.
    store: Store,
    /// Raft index the store has applied.
    applied_index: u64,
    /// The snapshot being written (only one at a time); offered to followers once saved.
    snapshot_in_flight: Option<Snapshot>,
    /// The newest snapshot's data is being read back from its file for a follower.
    snapshot_loading: bool,
    /// The newest snapshot's file could not be read back: write one again even if nothing was
    /// applied since.
    snapshot_rewrite: bool,
    /// After a failed snapshot (a full disk, no descriptors): no new attempt before this, and
    /// how many attempts in a row failed (the wait doubles with each, up to a minute).
    snapshot_retry: Option<(std::time::Instant, u32)>,
    /// Bytes of new entries the WAL can still take this turn ([`Wal::room`] less what this
    /// turn accepted): client proposals and leader appends that do not fit are refused, so a
    /// full disk fails writes instead of the WAL.
    wal_room: u64,
    shard: Rc<Shard>,
    inbox: Rc<Mailbox<RaftInput>>,
    /// Proposals that arrived while no leader was known, or while this leader hands its
    /// leadership over (raft-rs drops those), with when they arrived; proposed once a leader
    /// can take them, failed once their client's request has timed out
    /// ([`Self::expire_waiting_proposals`]).
    waiting_for_leader: Vec<(Instant, Vec<u8>)>,
    /// Proposals forwarded by followers during a leadership handoff (raft-rs would drop them
    /// silently); stepped again once it is over, when raft forwards them to the new leader.
    held_peer_proposals: Vec<Message>,
    /// Member changes that arrived while no leader was known.
    member_changes_waiting: Vec<(Origin, crate::cluster::membership::MemberChange)>,
    /// Read-index batches in flight: context -> the (shard, id) pairs that asked.
    /// Each batch also counts the ticks it has waited: raft-rs drops a read index request
    /// silently (e.g. a leader that has not committed in its term yet, or a message lost on
    /// the way), so a batch unanswered for [`READ_RETRY_TICKS`] is asked again.
    /// Ordered, so that retries go out in the same order on every run (the simulation).
    reads_in_flight: BTreeMap<u64, (Vec<(usize, u64)>, u32)>,
    next_read_ctx: u64,
    /// Ticks until this member next checks that its name and client URLs are published.
    publish_countdown: u32,
    /// When this leader last sent each follower a heartbeat.
    last_heartbeat: HashMap<u64, Instant>,
    /// This member was removed: the node stops at this instant (the answer to the removal and
    /// the commit it carries get time to reach the others first).
    leaving_at: Option<Instant>,
}

/// Builds the node over the recovered log and store. `peers` makes the peer sender from this
/// member's id, its cluster's id and the node's inbox (where the sender reports back). The
/// caller runs [`RaftDriver::run`] and pushes [`RaftInput::Tick`] into its
/// [`inbox`](RaftDriver::inbox) every heartbeat interval.
pub fn build_node<F, P>(
    settings: RaftSettings,
    env: NodeEnv,
    shard: Rc<Shard>,
    recovered: storage::Recovered<F>,
    store: Store,
    peers: impl FnOnce(u64, u64, Rc<Mailbox<RaftInput>>) -> P,
) -> Result<RaftDriver<F, P>, String>
where
    F: WalFs + Clone + 'static,
    P: PeerSender,
{
    let storage::Recovered {
        bootstrap,
        wal,
        storage,
        applied,
        membership,
        ..
    } = recovered;
    let election_tick = (settings.election_timeout.as_millis()
        / settings.heartbeat.as_millis().max(1))
    .max(2) as usize;
    let config = raft::Config {
        id: bootstrap.member_id,
        applied,
        election_tick,
        // A node's election timeout is drawn from [min, max) with raft-rs's own random
        // source; settings can narrow it to one value (the simulation, which draws from its
        // seed instead).
        min_election_tick: settings.election_ticks.map_or(0, |(min, _)| min),
        max_election_tick: settings.election_ticks.map_or(0, |(_, max)| max),
        heartbeat_tick: 1,
        // Up to 1 MiB of entries per append (0 would mean one entry per message).
        max_size_per_msg: 1 << 20,
        // Appends in flight per follower before the leader waits for acks: the back-pressure.
        max_inflight_msgs: 256,
        // A leader that cannot commit stops taking proposals beyond this many bytes of
        // uncommitted entries; they fail at once instead of piling up.
        max_uncommitted_size: 64 << 20,
        // A leader that lost its quorum steps down; a partitioned member cannot disrupt the
        // cluster with higher terms when it comes back.
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    config
        .validate()
        .map_err(|e| format!("raft configuration: {e}"))?;
    let logger = logger::build(bootstrap.member_id);
    let node = RawNode::new(&config, storage, &logger).map_err(|e| format!("raft: {e}"))?;
    let inbox = Mailbox::new();
    shard.set_raft_inbox(inbox.clone());
    let transport = peers(bootstrap.member_id, bootstrap.cluster_id, inbox.clone());
    let mut driver = RaftDriver {
        node,
        wal,
        settings: Rc::new(settings),
        env,
        member_id: bootstrap.member_id,
        members: membership,
        transport,
        snapshot_index: applied,
        store,
        applied_index: applied,
        snapshot_in_flight: None,
        snapshot_loading: false,
        snapshot_rewrite: false,
        snapshot_retry: None,
        wal_room: u64::MAX,
        shard,
        inbox: inbox.clone(),
        waiting_for_leader: Vec::new(),
        held_peer_proposals: Vec::new(),
        member_changes_waiting: Vec::new(),
        reads_in_flight: BTreeMap::new(),
        next_read_ctx: 1,
        publish_countdown: 0,
        last_heartbeat: HashMap::new(),
        leaving_at: None,
    };
    driver.members_changed();
    Ok(driver)
}

/// WAL room under which the member reports itself unhealthy and stops proposing expiries.
const WAL_FULL_BELOW: u64 = 1 << 20;

/// WAL bytes an entry of `len` data bytes takes at most (record header, raft's entry fields).
fn entry_cost(len: usize) -> u64 {
    len as u64 + 64
}

/// The answer to a write the WAL has no room for.
fn no_space_error() -> Error {
    Error::new(
        Code::RaftInternal,
        "wal: no space left on device; writes resume once space is freed",
        0,
    )
}

/// Heartbeats a read index batch may wait before it is asked for again.
const READ_RETRY_TICKS: u32 = 3;
/// How long before its client's timeout a proposal still waiting for a leader is failed
/// (at most a tenth of the timeout).
const EXPIRY_MARGIN: Duration = Duration::from_millis(100);
/// An apply of one committed batch slower than this counts as slow (etcd's threshold for
/// "apply request took too long").
const SLOW_APPLY: Duration = Duration::from_millis(100);

impl<F: WalFs + Clone + 'static, P: PeerSender> RaftDriver<F, P> {
    /// Where the node takes its input: peers' messages, proposals, ticks.
    pub fn inbox(&self) -> Rc<Mailbox<RaftInput>> {
        self.inbox.clone()
    }

    /// The node's loop: takes everything in its inbox, steps raft, writes and syncs the WAL,
    /// applies what committed. Returns once the inbox is closed, or with the reason the node
    /// must stop for good.
    pub async fn run(mut self) -> Result<(), Fatal> {
        let mut inputs = Vec::new();
        // Entries committed before this start (the bootstrap, or the recovered log).
        self.handle_ready().await.map_err(Fatal::Storage)?;
        loop {
            inputs.clear();
            if !self.inbox.recv_batch(&mut inputs).await {
                return Ok(());
            }
            let mut reads = Vec::new();
            let mut ticked = false;
            self.wal_room = self.wal.room();
            for input in inputs.drain(..) {
                match input {
                    RaftInput::Tick => {
                        ticked = true;
                        self.node.tick();
                        self.propose_sync_if_due();
                        self.expire_waiting_proposals();
                        self.hand_over_if_stopping();
                        self.publish_countdown = self.publish_countdown.saturating_sub(1);
                        self.retry_stale_reads();
                        self.publish_debug_status();
                        if self.leaving_at.is_some_and(|at| self.env.clock.now() >= at) {
                            return Err(Fatal::Removed);
                        }
                    }
                    RaftInput::Halt(why) => return Err(why),
                    RaftInput::Propose(data) => self.propose(data),
                    RaftInput::ChangeMembership { origin, change } => {
                        self.propose_member_change(origin, change)
                    }
                    RaftInput::ReadIndex { from, id } => reads.push((from, id)),
                    RaftInput::Peer(msg) => self.step(*msg),
                    RaftInput::PeerSnapshot { msg, path } => {
                        match crate::transport::incoming::load_received(*msg, path).await {
                            Ok(msg) => self.step(msg),
                            Err(e) => tracing::warn!("a snapshot from a peer: {e}"),
                        }
                    }
                    RaftInput::Unreachable(id) => self.node.report_unreachable(id),
                    RaftInput::SnapshotSent { to, ok } => {
                        let status = if ok {
                            SnapshotStatus::Finish
                        } else {
                            SnapshotStatus::Failure
                        };
                        self.node.report_snapshot(to, status);
                        // Sent or not, its data goes back to being read from the file.
                        self.node.store().drop_snapshot_data();
                    }
                    RaftInput::SnapshotLoaded { index, result } => {
                        self.on_snapshot_loaded(index, result)
                    }
                    RaftInput::SnapshotSaved {
                        index,
                        term,
                        result,
                    } => {
                        self.on_snapshot_saved(index, term, result)
                            .await
                            .map_err(Fatal::Storage)?;
                    }
                }
            }
            if !reads.is_empty() {
                self.request_read_index(reads);
            }
            if ticked {
                self.wal.maintain().await;
                let full = self.wal.room() < WAL_FULL_BELOW;
                let status = &self.shard.shared.raft;
                if status.wal_full.swap(full, Ordering::Relaxed) != full {
                    tracing::warn!(
                        "wal: {}",
                        if full {
                            "out of space: new writes are refused until space is freed"
                        } else {
                            "space is available again: writes are accepted"
                        }
                    );
                }
            }
            self.campaign_if_alone();
            self.publish_if_needed();
            // A WAL that cannot take writes: stop acknowledging anything (etcd exits too).
            self.handle_ready().await.map_err(Fatal::Storage)?;
            self.maybe_snapshot();
            self.load_snapshot_data_if_wanted();
        }
    }

    fn leader_known(&self) -> bool {
        self.node.raft.leader_id != raft::INVALID_ID
    }

    /// A proposal made now reaches a leader that takes it: one is known and it is not handing
    /// over its leadership.
    fn may_propose(&self) -> bool {
        self.leader_known() && self.node.raft.lead_transferee.is_none()
    }

    fn step(&mut self, msg: Message) {
        if self.members.is_removed(msg.from) {
            return;
        }
        if msg.get_msg_type() == MessageType::MsgPropose && self.node.raft.lead_transferee.is_some()
        {
            self.held_peer_proposals.push(msg);
            return;
        }
        if let Err(why) = self
            .admissible(&msg)
            .and_then(|()| self.take_room_for(&msg))
        {
            static DROPPED: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
            crate::ratelog!(
                DROPPED,
                "dropped a {:?} from {:x} (term {}): {why}",
                msg.get_msg_type(),
                msg.from,
                msg.term
            );
            return;
        }
        // Errors here are messages from unknown peers or stale terms: raft ignores them too.
        let _ = self.node.step(msg);
    }

    /// Takes WAL room for the entries a peer message brings (a leader's append, a follower's
    /// forwarded proposal); `Err` when they do not fit, and the message is dropped (the leader
    /// sends again; the proposer's request fails or times out).
    fn take_room_for(&mut self, msg: &Message) -> Result<(), &'static str> {
        if !matches!(
            msg.get_msg_type(),
            MessageType::MsgAppend | MessageType::MsgPropose
        ) {
            return Ok(());
        }
        let need: u64 = msg.entries.iter().map(|e| entry_cost(e.data.len())).sum();
        if need > self.wal_room {
            return Err("no space left for its entries in the WAL");
        }
        self.wal_room -= need;
        Ok(())
    }

    /// Refuses peer messages that no correct member sends and that raft-rs would act on
    /// wrongly or panic over: a sender that is not a member (unless this member knows no one
    /// yet: a joining member learns the configuration from the leader's messages), a message
    /// claiming to come from this member or addressed to another, a heartbeat committing past
    /// the end of this log, an append whose entries do not follow its index, and an append
    /// response acknowledging entries this leader never had.
    fn admissible(&self, msg: &Message) -> Result<(), &'static str> {
        if msg.to != self.member_id {
            return Err("addressed to another member");
        }
        if msg.from == self.member_id || msg.from == raft::INVALID_ID {
            return Err("claims to come from this member");
        }
        let prs = self.node.raft.prs();
        let knows_someone = prs.iter().next().is_some();
        if knows_someone && prs.get(msg.from).is_none() && self.members.get(msg.from).is_none() {
            return Err("the sender is not a member");
        }
        let log = &self.node.raft.raft_log;
        match msg.get_msg_type() {
            MessageType::MsgHeartbeat if msg.commit > log.last_index() => {
                Err("it commits past the end of this member's log")
            }
            MessageType::MsgAppend => {
                // raft-rs trusts the entries to follow the index they are appended after; a
                // gap lets a forged append "conflict" with committed entries, which it panics on.
                let contiguous = msg
                    .entries
                    .iter()
                    .enumerate()
                    .all(|(i, e)| Some(e.index) == msg.index.checked_add(1 + i as u64));
                if contiguous {
                    Ok(())
                } else {
                    Err("its entries do not follow its index")
                }
            }
            MessageType::MsgAppendResponse if !msg.reject && msg.index > log.last_index() => {
                Err("it acknowledges entries past the end of this leader's log")
            }
            _ => Ok(()),
        }
    }

    /// A member that is the only voter needs no election timeout to win.
    fn campaign_if_alone(&mut self) {
        if self.node.raft.state == StateRole::Leader {
            return;
        }
        let conf = self.node.raft.prs().conf().voters().ids();
        let alone = conf.len() == 1 && conf.contains(self.member_id);
        if alone {
            let _ = self.node.campaign();
        }
    }

    fn propose(&mut self, data: Vec<u8>) {
        if !self.may_propose() {
            self.waiting_for_leader.push((self.env.clock.now(), data));
            return;
        }
        // The origin is read before raft takes the bytes (no copy of every proposal).
        let origin = proposal::origin(&data);
        let need = entry_cost(data.len());
        if need > self.wal_room {
            if let Ok(origin) = origin {
                self.fail_proposal(origin, no_space_error());
            }
            return;
        }
        self.wal_room -= need;
        if let Err(e) = self.node.propose(vec![], data) {
            if let Ok(origin) = origin {
                self.fail_proposal(origin, Error::new(Code::RaftInternal, e.to_string(), 0));
            }
        }
    }

    /// Fails the proposals that waited for a leader until their client's request is about to
    /// time out. A proposal must never be applied after its client was told it failed (a write
    /// taken by a member cut off from the others would otherwise surface when the partition
    /// heals, over what the majority wrote since), so they go a little before the shard's own
    /// timeout, and the client gets this answer.
    fn expire_waiting_proposals(&mut self) {
        let timeout = self.shard.shared.request_timeout;
        let limit = timeout.saturating_sub(EXPIRY_MARGIN.min(timeout / 10));
        let now = self.env.clock.now();
        if self
            .waiting_for_leader
            .first()
            .is_none_or(|(since, _)| now.duration_since(*since) < limit)
        {
            return;
        }
        let index = self.store.index();
        let waiting = std::mem::take(&mut self.waiting_for_leader);
        for (since, data) in waiting {
            if now.duration_since(since) < limit {
                self.waiting_for_leader.push((since, data));
            } else if let Ok(origin) = proposal::origin(&data) {
                self.fail_proposal(origin, crate::shard::timeout_error(index));
            }
        }
    }

    fn fail_proposal(&self, origin: Origin, error: Error) {
        self.shard
            .shared
            .raft
            .proposals_failed
            .fetch_add(1, Ordering::Relaxed);
        if !origin.is(self.member_id, usize::from(origin.shard)) {
            return;
        }
        let shard = usize::from(origin.shard);
        if shard == self.shard.id {
            self.shard.fail_write(origin.id, error);
        } else {
            self.shard.send_to(
                shard,
                ShardMsg::ProposalFailed {
                    id: origin.id,
                    error,
                },
            );
        }
    }

    /// A leader of a stopping process hands leadership to the voter whose log matches most of
    /// its own (raft-rs catches it up first, then tells it to campaign at once). A transfer
    /// that does not finish within an election timeout is given up by raft-rs and retried here.
    fn hand_over_if_stopping(&mut self) {
        let raft = &self.node.raft;
        if !self.shard.shared.stopping.load(Ordering::Relaxed)
            || raft.state != StateRole::Leader
            || raft.lead_transferee.is_some()
        {
            return;
        }
        let voters = raft.prs().conf().voters().ids();
        let best = raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != self.member_id && voters.contains(**id))
            .max_by_key(|(_, p)| p.matched)
            .map(|(id, p)| (*id, p.matched));
        if let Some((to, matched)) = best {
            tracing::info!(
                "stopping: handing leadership to {} (log matched to {matched})",
                crate::cluster::id_hex(to)
            );
            self.node.transfer_leader(to);
        }
    }

    /// The leader expires keys by proposing its clock; every replica applies the same `Sync`.
    fn propose_sync_if_due(&mut self) {
        if self.node.raft.state != StateRole::Leader {
            return;
        }
        let now = self.env.clock.unix_nanos();
        let due = self.store.next_expiration().is_some_and(|at| at <= now);
        if due && self.wal_room >= WAL_FULL_BELOW {
            let mut data = Vec::with_capacity(32);
            proposal::encode_store(Origin::NONE, &Command::Sync { now }, &mut data);
            let _ = self.node.propose(vec![], data);
        }
    }

    fn request_read_index(&mut self, reads: Vec<(usize, u64)>) {
        if self.node.raft.state != StateRole::Leader && !self.leader_known() {
            let index = self.store.index();
            for (from, id) in reads {
                self.answer_read(from, id, Err(Error::new(Code::LeaderElect, "", index)));
            }
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        self.reads_in_flight.insert(ctx, (reads, 0));
        self.node.read_index(ctx.to_le_bytes().to_vec());
    }

    /// Asks again for read index batches raft has not answered for a while (the waiters keep
    /// their own request timeout).
    fn retry_stale_reads(&mut self) {
        if !self.leader_known() {
            return;
        }
        let mut stale = Vec::new();
        for (ctx, (_, ticks)) in self.reads_in_flight.iter_mut() {
            *ticks += 1;
            if *ticks >= READ_RETRY_TICKS {
                *ticks = 0;
                stale.push(*ctx);
            }
        }
        for ctx in stale {
            self.node.read_index(ctx.to_le_bytes().to_vec());
        }
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
        if msgs.is_empty() {
            return;
        }
        self.note_heartbeats(&msgs);
        self.transport.send(msgs);
    }

    /// Publishes raft's state for `/debug/vars` (every tick: cheap, and fresh enough).
    fn publish_debug_status(&self) {
        use crate::shard::{ProgressStatus, RaftDebugStatus};
        let raft = &self.node.raft;
        let leader = raft.state == StateRole::Leader;
        let progress = raft
            .prs()
            .iter()
            .filter(|_| leader)
            .map(|(id, pr)| {
                let state = match pr.state {
                    raft::ProgressState::Probe => "StateProbe",
                    raft::ProgressState::Replicate => "StateReplicate",
                    raft::ProgressState::Snapshot => "StateSnapshot",
                };
                let status = ProgressStatus {
                    matched: pr.matched,
                    next: pr.next_idx,
                    state,
                };
                (crate::cluster::id_hex(*id), status)
            })
            .collect();
        let status = RaftDebugStatus {
            id: crate::cluster::id_hex(self.member_id),
            term: raft.term,
            vote: crate::cluster::id_hex(raft.vote),
            commit: raft.raft_log.committed,
            lead: crate::cluster::id_hex(raft.leader_id),
            raft_state: match raft.state {
                StateRole::Follower => "StateFollower",
                StateRole::Candidate => "StateCandidate",
                StateRole::Leader => "StateLeader",
                StateRole::PreCandidate => "StatePreCandidate",
            },
            applied: raft.raft_log.applied,
            progress,
            leadtransferee: crate::cluster::id_hex(raft.lead_transferee.unwrap_or(0)),
        };
        let debug = &self.shard.shared.raft.debug;
        *debug.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// A leader whose heartbeats go out later than twice the heartbeat interval apart is
    /// overloaded (etcd's "leader failed to send out heartbeat on time"): count and warn.
    fn note_heartbeats(&mut self, msgs: &[Message]) {
        if self.node.raft.state != StateRole::Leader {
            self.last_heartbeat.clear();
            return;
        }
        let now = self.env.clock.now();
        let late = 2 * self.settings.heartbeat;
        for m in msgs {
            if m.get_msg_type() != MessageType::MsgHeartbeat {
                continue;
            }
            let Some(prev) = self.last_heartbeat.insert(m.to, now) else {
                continue;
            };
            let gap = now.duration_since(prev);
            if gap > late {
                self.shard
                    .shared
                    .raft
                    .heartbeat_send_failures
                    .fetch_add(1, Ordering::Relaxed);
                static LATE: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
                crate::ratelog!(
                    LATE,
                    "leader failed to send out heartbeat on time; took too long, leader is \
                     overloaded likely from slow disk (to {:x}, {gap:?} after the previous one, \
                     heartbeat interval {:?})",
                    m.to,
                    self.settings.heartbeat
                );
            }
        }
    }

    /// Handles Readies in raft-rs's documented order until raft has nothing more to say.
    async fn handle_ready(&mut self) -> Result<(), String> {
        while self.node.has_ready() {
            self.handle_one_ready().await?;
            if self.may_propose() && !self.waiting_for_leader.is_empty() {
                self.expire_waiting_proposals();
                for (_, data) in std::mem::take(&mut self.waiting_for_leader) {
                    self.propose(data);
                }
            }
            if self.may_propose() && !self.held_peer_proposals.is_empty() {
                for msg in std::mem::take(&mut self.held_peer_proposals) {
                    self.step(msg);
                }
            }
            if self.leader_known() && !self.member_changes_waiting.is_empty() {
                for (origin, change) in std::mem::take(&mut self.member_changes_waiting) {
                    self.propose_member_change(origin, change);
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
            if status.leader.swap(ss.leader_id, Ordering::AcqRel) != ss.leader_id {
                status
                    .leader_since
                    .store(self.env.clock.unix_nanos(), Ordering::Relaxed);
                if ss.leader_id != raft::INVALID_ID {
                    status.leader_changes.fetch_add(1, Ordering::Relaxed);
                }
            }
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
        // Let the peer links write them before this task submits its own WAL write, so the
        // followers' fdatasyncs overlap the leader's instead of following it.
        if !ready.messages().is_empty() {
            let msgs = ready.take_messages();
            self.send_messages(msgs);
            futures_lite::future::yield_now().await;
        }

        // 3. A snapshot from the leader replaces the log and every replica.
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.install_snapshot(snapshot).await?;
        }

        // 4. Read states: answer the ReadIndex batches.
        for rs in ready.take_read_states() {
            let mut ctx = [0u8; 8];
            if rs.request_ctx.len() == 8 {
                ctx.copy_from_slice(&rs.request_ctx);
            }
            if let Some((waiters, _)) = self.reads_in_flight.remove(&u64::from_le_bytes(ctx)) {
                for (from, id) in waiters {
                    self.answer_read(from, id, Ok(rs.index));
                }
            }
        }

        // 5. Committed entries (already durable from earlier Readies): apply everywhere.
        let committed = ready.take_committed_entries();
        self.apply_committed(committed);

        // 6. New entries and hard state: one WAL write and one fdatasync, then the mirror.
        for entry in ready.entries() {
            let bytes = protobuf::Message::write_to_bytes(entry)
                .map_err(|e| format!("encode entry: {e}"))?;
            self.wal.append_entry(entry.index, entry.term, &bytes);
        }
        // Like etcd's `raft.MustSync`: new entries, a new term or a vote must be durable before
        // raft goes on; a hard state that only moved the commit index rides on the next sync
        // (a commit index lost in a crash is learned again). Without this a follower would
        // fdatasync twice per write: once for the entry, once for the commit that follows.
        let mut must_sync = !ready.entries().is_empty();
        if let Some(hs) = ready.hs() {
            let before = self.node.store().mem.rl().hard_state().clone();
            must_sync |= hs.term != before.term || hs.vote != before.vote;
            self.wal.set_hard_state(hs.term, hs.vote, hs.commit);
        }
        if must_sync && self.wal.has_pending() {
            let started = self.env.clock.now();
            let stats = self.wal.sync().await.map_err(|e| e.to_string())?;
            let status = &self.shard.shared.raft;
            let took = self.env.clock.now().saturating_duration_since(started);
            status.wal_sync_seconds.0.observe(took);
            status
                .wal_write_bytes
                .fetch_add(stats.bytes, Ordering::Relaxed);
            status.wal_fsyncs.fetch_add(stats.fsyncs, Ordering::Relaxed);
            status
                .wal_entries
                .fetch_add(ready.entries().len() as u64, Ordering::Relaxed);
            status.wal_sync_entries.observe(ready.entries().len());
        }
        if !ready.entries().is_empty() {
            self.node
                .mut_store()
                .mem
                .wl()
                .append(ready.entries())
                .map_err(|e| format!("raft log: {e}"))?;
        }
        if let Some(hs) = ready.hs() {
            self.node.mut_store().mem.wl().set_hardstate(hs.clone());
        }

        // 7. Messages that must wait for the append to be durable (votes, follower acks).
        if !ready.persisted_messages().is_empty() {
            let msgs = ready.take_persisted_messages();
            self.send_messages(msgs);
        }

        // 8. Advance: entries that the append just made committable.
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node
                .mut_store()
                .mem
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

    /// Applies committed entries to the store, publishes the new version, then hands every
    /// shard the batch: the answers to its writes and the changes for its watchers.
    fn apply_committed(&mut self, entries: Vec<Entry>) {
        let Some(last) = entries.last() else {
            return;
        };
        let term = self.node.raft.term;
        // Sized once: growing these entry by entry cost a reallocation chain per batch. Room
        // for answers only while this member has writes in flight (a follower's batches, and
        // a member catching up, answer nothing).
        let awaiting = (0..self.shard.shared.nshards).any(|i| self.shard.shared.pending_on(i) > 0);
        let mut batch = AppliedBatch {
            raft_index: last.index,
            raft_term: term.max(last.term),
            changes: Vec::with_capacity(entries.len()),
            answers: Vec::with_capacity(if awaiting { entries.len() } else { 0 }),
            ..AppliedBatch::default()
        };
        let started = self.env.clock.now();
        for entry in &entries {
            match entry.get_entry_type() {
                EntryType::EntryNormal if proposal::is_member_change(&entry.data) => {
                    self.apply_member_entry(entry)
                }
                EntryType::EntryNormal if entry.data.is_empty() => {}
                EntryType::EntryNormal => self.apply_store_entry(entry, term, &mut batch),
                EntryType::EntryConfChange => self.apply_conf_change(entry),
                EntryType::EntryConfChangeV2 => {
                    tracing::warn!("ignoring a joint-consensus conf change at {}", entry.index);
                }
            }
        }
        self.applied_index = batch.raft_index;
        self.store.publish(batch.raft_index, batch.raft_term);
        batch.store_index = self.store.index();
        let took = self.env.clock.now().saturating_duration_since(started);
        if took > SLOW_APPLY {
            self.shard
                .shared
                .raft
                .slow_applies
                .fetch_add(1, Ordering::Relaxed);
            static SLOW: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
            crate::ratelog!(
                SLOW,
                "apply entries took too long [{took:?} for {} entries]",
                entries.len()
            );
        }
        let batch = Arc::new(batch);
        self.shard.take_applied(&batch);
        // A shard gets the batch when it answers a write proposed there, or when it follows
        // every batch (watchers, waiters); the others read the published version and would
        // only wake up for nothing. The fence pairs with the one in `Shard::follow`.
        std::sync::atomic::fence(Ordering::SeqCst);
        let shared = &self.shard.shared;
        for peer in 0..shared.nshards {
            let answers_there = || batch.answers.iter().any(|a| usize::from(a.shard) == peer);
            if peer != self.shard.id && (shared.follows(peer) || answers_there()) {
                self.shard.send_to(peer, ShardMsg::Applied(batch.clone()));
            }
        }
    }

    /// Applies one client write (or leader `Sync`) and keeps its answer when this member
    /// proposed it.
    fn apply_store_entry(&mut self, entry: &Entry, term: u64, batch: &mut AppliedBatch) {
        let (origin, cmd) = match proposal::decode(&entry.data) {
            Ok((origin, Payload::Store(cmd))) => (origin, cmd),
            Ok((_, Payload::Member(_))) => return,
            Err(e) => {
                // Every member skips the same undecodable entry, so they stay equal.
                tracing::warn!("skipping undecodable entry {}: {e}", entry.index);
                return;
            }
        };
        let applied = self.store.apply(&cmd);
        batch.changes.extend(applied.changes);
        if origin.is(self.member_id, usize::from(origin.shard)) {
            batch.answers.push(WriteAnswer {
                shard: origin.shard,
                id: origin.id,
                raft_index: entry.index,
                raft_term: term.max(entry.term),
                result: applied
                    .result
                    .unwrap_or_else(|| Err(Error::new(Code::RaftInternal, "", 0))),
            });
        }
    }
}
