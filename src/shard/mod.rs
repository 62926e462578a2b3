//! Shards: one glommio executor per core, all reading one published copy of the store.
//!
//! Owns the cross-shard mesh, the fan-out of applied batches, write waiters, read-index waiters,
//! each shard's watcher hub and the delivery of watch events to the connections of this shard.
//! Shard 0's raft node applies every committed entry once (to [`crate::store::Store`]),
//! publishes the new version, then sends each shard the batch's [`AppliedBatch`]: the answers
//! to the writes proposed there and the changes its watchers match. GETs read the newest
//! published [`crate::store::View`] directly ([`Shard::view`]), with no message and no lock.
//!
//! One member, one view: whatever a client of this member has been shown (a write's
//! acknowledgement, a watch event, a read) is recorded in a member-wide *seen* index
//! ([`Shard::observe`]). A version is published before any client hears of it, so a GET (which
//! reads the newest version) is never older than what was seen; a watch starts only once this
//! shard has taken in every batch up to the seen index ([`Shard::catch_up`]). A client that
//! learned of index `i` through one connection therefore never reads an older state through
//! another, as with etcd's single store.
//! Knows nothing about HTTP or request semantics: it moves store commands and events.

pub mod local;
pub mod proposal;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

use crate::cluster::membership::{MemberChange, MemberError, Membership};
use crate::error::{Code, Error};
use crate::store::{Change, Command, Event, Published, View, WatchStart, WatcherHub, WatcherId};
use local::{oneshot, Mailbox, OneshotSender};
use proposal::Origin;

/// How many undelivered events a watcher may have before it is dropped (as etcd does with a
/// full watcher channel): the client sees its long-poll end and re-watches from its index.
pub const WATCHER_BUFFER: usize = 100;

/// Messages between shards. Only immutable data crosses cores.
pub enum ShardMsg {
    /// An encoded proposal (see [`proposal`]) for shard 0's raft node.
    Propose(Vec<u8>),
    /// A member-list change for shard 0's raft node.
    ChangeMembership {
        origin: Origin,
        change: MemberChange,
    },
    /// The outcome of a member-list change (from shard 0 to the shard that asked).
    MembershipChanged {
        id: u64,
        result: Result<(), MemberError>,
    },
    /// The store was replaced by a snapshot received from the leader (from shard 0): watchers
    /// end, and the shard counts as having applied up to the snapshot.
    Restore(RestorePoint),
    /// A linearizable read wants the current read index (to shard 0).
    ReadIndex { from: usize, id: u64 },
    /// The answer to `ReadIndex` (from shard 0): the raft index to wait for, or an error.
    ReadIndexDone { id: u64, result: Result<u64, Error> },
    /// A proposal that raft refused (from shard 0).
    ProposalFailed { id: u64, error: Error },
    /// Entries committed by raft and applied, in order (from shard 0 to every other shard).
    Applied(Arc<AppliedBatch>),
}

/// Input to the raft node on shard 0.
pub enum RaftInput {
    Propose(Vec<u8>),
    ChangeMembership {
        origin: Origin,
        change: MemberChange,
    },
    /// A raft message from a peer.
    Peer(Box<raft::eraftpb::Message>),
    /// A snapshot message from a peer without its data, which waits in this file (see
    /// [`crate::transport::incoming`]); the raft node loads it, then removes the file.
    PeerSnapshot {
        msg: Box<raft::eraftpb::Message>,
        path: std::path::PathBuf,
    },
    /// The transport lost its connection to a peer.
    Unreachable(u64),
    /// A snapshot sent to `to` arrived (or did not).
    SnapshotSent {
        to: u64,
        ok: bool,
    },
    ReadIndex {
        from: usize,
        id: u64,
    },
    Tick,
    /// The member must stop for good (a peer says it was removed, or belongs to another
    /// cluster).
    Halt(crate::raft::Fatal),
    /// A snapshot file finished writing, or failed.
    SnapshotSaved {
        index: u64,
        term: u64,
        result: Result<(), String>,
    },
    /// The newest snapshot's data, read back from its file for a follower (or why not).
    SnapshotLoaded {
        index: u64,
        result: Result<Vec<u8>, String>,
    },
}

/// The registered wakers of [`Shared::wait_until`] futures, by slot.
#[derive(Default)]
pub struct FlagWaiters {
    next: u64,
    wakers: HashMap<u64, std::task::Waker>,
}

/// See [`Shared::wait_until`]. Its waker stays registered while it waits; dropping it
/// unregisters it.
pub struct FlagWait<'a> {
    shared: &'a Shared,
    ready: fn(&Shared) -> bool,
    slot: Option<u64>,
}

impl std::future::Future for FlagWait<'_> {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if (self.ready)(self.shared) {
            return std::task::Poll::Ready(());
        }
        let shared = self.shared;
        let mut w = shared
            .flag_waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Checked again under the lock: a setter sets its flag before it takes the wakers.
        if (self.ready)(shared) {
            return std::task::Poll::Ready(());
        }
        let slot = match self.slot {
            Some(slot) => slot,
            None => {
                w.next += 1;
                w.next
            }
        };
        match w.wakers.get_mut(&slot) {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => {
                w.wakers.insert(slot, cx.waker().clone());
            }
        }
        drop(w);
        self.slot = Some(slot);
        std::task::Poll::Pending
    }
}

impl Drop for FlagWait<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let mut w = self
                .shared
                .flag_waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            w.wakers.remove(&slot);
        }
    }
}

/// Where a store restored from a snapshot stands (a follower that fell behind the leader's
/// log).
#[derive(Debug, Clone, Copy)]
pub struct RestorePoint {
    pub index: u64,
    pub term: u64,
    /// The store's etcd index.
    pub store_index: u64,
}

/// A run of committed raft entries once applied and published, shared by every shard.
#[derive(Debug, Default)]
pub struct AppliedBatch {
    /// The raft index and term of the last entry (`X-Raft-Index`, `X-Raft-Term`).
    pub raft_index: u64,
    pub raft_term: u64,
    /// The store's etcd index after the batch.
    pub store_index: u64,
    /// What changed, in order, for every shard's watchers.
    pub changes: Vec<Change>,
    /// The answers to this member's writes, each for the shard that proposed it.
    pub answers: Vec<WriteAnswer>,
}

/// The result of one write for the shard that proposed it.
#[derive(Debug)]
pub struct WriteAnswer {
    pub shard: u16,
    pub id: u64,
    pub raft_index: u64,
    pub raft_term: u64,
    pub result: Result<Arc<Event>, Error>,
}

/// A cache line of its own, so shards updating their counters do not share one.
#[repr(align(128))]
#[derive(Default)]
pub struct Padded<T>(pub T);

/// What raft on shard 0 publishes for every shard to read (and `/metrics` reports).
#[derive(Default)]
pub struct RaftStatus {
    /// Times a new leader became known (etcd_server_leader_changes_seen_total).
    pub leader_changes: AtomicU64,
    /// Proposals raft refused or could not take (etcd_server_proposals_failed_total).
    pub proposals_failed: AtomicU64,
    /// Linearizable reads whose read index failed or timed out.
    pub read_indexes_failed: AtomicU64,
    /// `/health` answers, healthy and not (etcd_server_health_success / _failures).
    pub health_success: AtomicU64,
    pub health_failures: AtomicU64,
    /// Bytes written to the WAL, block padding included.
    pub wal_write_bytes: AtomicU64,
    /// How long each WAL sync (the O_DSYNC write that makes entries durable) took.
    pub wal_sync_seconds: crate::metrics::WalSyncHistogram,
    /// Entries made durable by each WAL sync (group commit's batch sizes).
    pub wal_sync_entries: crate::metrics::BatchHistogram,
    /// How long writing snapshot files took (fsync, and the whole save).
    pub snap_save: crate::metrics::SnapSaveHistograms,
    /// Times this leader sent a heartbeat later than twice the heartbeat interval after the
    /// previous one (etcd's "leader failed to send out heartbeat on time").
    pub heartbeat_send_failures: AtomicU64,
    /// Committed batches whose apply took longer than 100 ms (etcd_server_slow_apply_total).
    pub slow_applies: AtomicU64,
    pub leader: AtomicU64,
    /// When this member learned of the current leader (unix nanoseconds; 0 = never).
    pub leader_since: std::sync::atomic::AtomicI64,
    pub term: AtomicU64,
    pub is_leader: AtomicBool,
    pub commit: AtomicU64,
    /// WAL fdatasyncs since start (group commit makes this far smaller than writes).
    pub wal_fsyncs: AtomicU64,
    /// Entries appended to the WAL since start.
    pub wal_entries: AtomicU64,
    /// Snapshots taken since start, and the time the raft loop spent blocked taking them
    /// (serialising the store; the file is written off the loop).
    pub snapshots: AtomicU64,
    pub snapshot_stall_micros_total: AtomicU64,
    pub snapshot_stall_micros_max: AtomicU64,
    /// The WAL has (almost) no room for new entries: a full disk. Writes are refused and
    /// `/health` says false until space is freed.
    pub wal_full: AtomicBool,
    /// raft's state for `/debug/vars`, published every tick.
    pub debug: std::sync::Mutex<RaftDebugStatus>,
}

/// raft's state as etcd's `/debug/vars` shows it under `raft.status` (etcd 3.4's JSON names
/// and state names; IDs in hex).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RaftDebugStatus {
    pub id: String,
    pub term: u64,
    pub vote: String,
    pub commit: u64,
    pub lead: String,
    #[serde(rename = "raftState")]
    pub raft_state: &'static str,
    pub applied: u64,
    /// Each voter's replication progress; a leader's only (followers show `{}`, as etcd).
    pub progress: std::collections::BTreeMap<String, ProgressStatus>,
    pub leadtransferee: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgressStatus {
    #[serde(rename = "match")]
    pub matched: u64,
    pub next: u64,
    pub state: &'static str,
}

/// State shared by every shard of this process.
pub struct Shared {
    pub nshards: usize,
    /// The newest version of the store and its history, published by shard 0's applier.
    pub published: Arc<Published>,
    /// The highest raft index any client of this member has been shown (see the module doc).
    seen: Padded<AtomicU64>,
    /// Live watchers held by each shard's connections.
    watchers: Box<[Padded<AtomicU64>]>,
    /// Whether each shard takes every applied batch (it has watchers or waits for an index);
    /// otherwise shard 0 sends it only the batches that answer its writes (see
    /// [`Shard::follow`]).
    following: Box<[Padded<AtomicBool>]>,
    pub raft: RaftStatus,
    /// This member's ID (set by shard 0 during recovery, before any shard serves).
    pub member_id: AtomicU64,
    /// The member list as last applied by shard 0.
    membership: std::sync::RwLock<Arc<Membership>>,
    /// How long a write or a quorum read may wait for raft before it fails.
    pub request_timeout: Duration,
    /// The process is stopping (see [`crate::shutdown`]): accept nothing new, hand over
    /// leadership.
    pub stopping: AtomicBool,
    /// Set once the process must end: `Ok` after an orderly stop, `Err` with why it cannot go
    /// on (a [`crate::raft::Fatal`]). Every executor ends on seeing it.
    halt: std::sync::OnceLock<Result<(), String>>,
    /// Tasks of any executor waiting for `stopping` or `halt` ([`Shared::wait_until`]), woken
    /// when either is set: nothing polls for them.
    flag_waiters: std::sync::Mutex<FlagWaiters>,
    /// Writes proposed on each shard and not yet answered (etcd_server_proposals_pending).
    pending: Box<[Padded<AtomicU64>]>,
    /// Each shard's keys-API request counters (`etcd_http_*`).
    pub http: Box<[crate::metrics::http::ShardHttp]>,
    /// Client connections each shard serves (kept by [`crate::listener::placement`]).
    pub connections: Box<[Padded<AtomicU64>]>,
    /// Shards serving clients; the last to start tells systemd the process is ready.
    pub serving: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// Shared state for `nshards` shards whose store history keeps `history_capacity` events.
    pub fn new(nshards: usize, request_timeout: Duration, history_capacity: usize) -> Shared {
        Shared {
            nshards,
            published: Published::new(history_capacity),
            seen: Padded(AtomicU64::new(0)),
            watchers: (0..nshards).map(|_| Padded(AtomicU64::new(0))).collect(),
            following: (0..nshards)
                .map(|_| Padded(AtomicBool::new(false)))
                .collect(),
            pending: (0..nshards).map(|_| Padded(AtomicU64::new(0))).collect(),
            http: (0..nshards).map(|_| Default::default()).collect(),
            connections: (0..nshards).map(|_| Padded(AtomicU64::new(0))).collect(),
            raft: RaftStatus::default(),
            member_id: AtomicU64::new(0),
            membership: Default::default(),
            request_timeout,
            stopping: AtomicBool::new(false),
            halt: std::sync::OnceLock::new(),
            flag_waiters: Default::default(),
            serving: Default::default(),
        }
    }

    /// Ends the process's executors with `outcome` (the first call wins).
    pub fn halt(&self, outcome: Result<(), String>) {
        let _ = self.halt.set(outcome);
        self.wake_flag_waiters();
    }

    /// Marks the process as stopping (see [`crate::shutdown`]) and wakes whoever waits for it.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake_flag_waiters();
    }

    fn wake_flag_waiters(&self) {
        let woken = {
            let mut w = self.flag_waiters.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut w.wakers)
        };
        // Wakers of tasks on other executors: glommio queues those to their own thread.
        for (_, waker) in woken {
            waker.wake();
        }
    }

    /// Resolves once `ready(self)` holds; `ready` must only read `stopping` and the halt,
    /// whose setters wake every waiter.
    pub fn wait_until(&self, ready: fn(&Shared) -> bool) -> FlagWait<'_> {
        FlagWait {
            shared: self,
            ready,
            slot: None,
        }
    }

    /// How the process ended, once it has.
    pub fn halted(&self) -> Option<&Result<(), String>> {
        self.halt.get()
    }

    pub fn membership(&self) -> Arc<Membership> {
        match self.membership.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_membership(&self, m: Membership) {
        let m = Arc::new(m);
        match self.membership.write() {
            Ok(mut slot) => *slot = m,
            Err(poisoned) => *poisoned.into_inner() = m,
        }
    }

    /// Writes proposed on shard `i` and not yet answered.
    pub fn pending_on(&self, i: usize) -> u64 {
        self.pending[i].0.load(Ordering::Relaxed)
    }

    /// Whether shard `i` needs every applied batch. The applier reads it after publishing a
    /// version (with a SeqCst fence between, pairing with the one in [`Shard::follow`]).
    pub fn follows(&self, i: usize) -> bool {
        self.following[i].0.load(Ordering::SeqCst)
    }

    /// Watchers held by shard `i`'s connections.
    pub fn watchers_on(&self, i: usize) -> u64 {
        self.watchers[i].0.load(Ordering::Relaxed)
    }

    pub fn pending_proposals(&self) -> u64 {
        self.pending
            .iter()
            .map(|p| p.0.load(Ordering::Relaxed))
            .sum()
    }

    /// Watchers alive on every shard of this process (`watchers` of `/v2/stats/store`).
    pub fn total_watchers(&self) -> u64 {
        self.watchers
            .iter()
            .map(|w| w.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// The result of a write, once it is applied.
pub struct WriteOutcome {
    pub result: Result<Arc<Event>, Error>,
    pub raft_index: u64,
    pub raft_term: u64,
}

struct WatcherSlot {
    tx: LocalSender<Arc<Event>>,
    stream: bool,
}

/// One shard: its watchers and everything that waits on the applied batches.
pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    outbox: Vec<Option<Rc<Mailbox<ShardMsg>>>>,
    raft_inbox: RefCell<Option<Rc<Mailbox<RaftInput>>>>,
    next_id: Cell<u64>,
    /// Writes proposed on this shard, answered when this shard applies them.
    writes: RefCell<HashMap<u64, PendingWrite>>,
    /// Sweeps for late writes done so far (see [`PendingWrite::give_up_after`]).
    sweeps: Cell<u64>,
    /// The request timeout in sweeps.
    timeout_sweeps: u64,
    /// The sweep task, parked while no write is timed.
    sweeper: Cell<Option<Waker>>,
    /// `take_applied`'s list of writes to answer, kept between batches (empty in between) so
    /// that answering a batch allocates nothing.
    answering: RefCell<Vec<(WriteSender, WriteOutcome)>>,
    reads: RefCell<HashMap<u64, OneshotSender<Result<u64, Error>>>>,
    member_changes: RefCell<HashMap<u64, OneshotSender<Result<(), MemberError>>>>,
    applied_waiters: RefCell<BTreeMap<u64, Vec<OneshotSender<()>>>>,
    /// The raft index, term and store index of the last batch this shard took in.
    applied_index: Cell<u64>,
    applied_term: Cell<u64>,
    applied_store_index: Cell<u64>,
    /// The watches of this shard's connections.
    hub: RefCell<WatcherHub>,
    watchers: RefCell<HashMap<WatcherId, WatcherSlot>>,
}

impl Shard {
    /// Joins the mesh and starts the tasks that move messages between this shard and its peers.
    pub async fn start(
        id: usize,
        shared: Arc<Shared>,
        mesh: glommio::channels::channel_mesh::MeshBuilder<
            ShardMsg,
            glommio::channels::channel_mesh::Full,
        >,
    ) -> Rc<Shard> {
        let (senders, receivers) = match mesh.join().await {
            Ok(pair) => pair,
            // join only fails if a peer executor died during start-up; nothing can run then.
            Err(e) => panic!("shard {id}: could not join the shard mesh: {e}"),
        };
        let senders = Rc::new(senders);
        let nshards = shared.nshards;
        let mut outbox = Vec::with_capacity(nshards);
        for peer in 0..nshards {
            if peer == id {
                outbox.push(None);
                continue;
            }
            let mailbox = Mailbox::new();
            outbox.push(Some(mailbox.clone()));
            glommio::spawn_local(forward_to_peer(senders.clone(), peer, mailbox)).detach();
        }
        // Waiter ids must not repeat across restarts: an entry proposed before a restart may
        // still commit after it and must not complete a new waiter.
        let shard = Shard::new(id, shared, outbox, unique_id_base());
        start_receivers(shard.clone(), receivers);
        glommio::spawn_local(sweep_late_writes(shard.clone())).detach();
        shard
    }

    /// The only shard of a member with one (no mesh), whose request ids start at `id_base`
    /// (the simulation passes one drawn from its seed).
    pub fn alone(shared: Arc<Shared>, id_base: u64) -> Rc<Shard> {
        assert_eq!(
            shared.nshards, 1,
            "a shard alone needs a member of one shard"
        );
        Shard::new(0, shared, vec![None], id_base.max(1))
    }

    fn new(
        id: usize,
        shared: Arc<Shared>,
        outbox: Vec<Option<Rc<Mailbox<ShardMsg>>>>,
        id_base: u64,
    ) -> Rc<Shard> {
        let view = shared.published.view_owned();
        let timeout_sweeps = sweeps_in(shared.request_timeout);
        Rc::new(Shard {
            id,
            shared,
            outbox,
            raft_inbox: RefCell::new(None),
            next_id: Cell::new(id_base),
            writes: RefCell::new(HashMap::new()),
            sweeps: Cell::new(0),
            timeout_sweeps,
            sweeper: Cell::new(None),
            answering: RefCell::new(Vec::new()),
            reads: RefCell::new(HashMap::new()),
            member_changes: RefCell::new(HashMap::new()),
            applied_waiters: RefCell::new(BTreeMap::new()),
            applied_index: Cell::new(view.raft_index),
            applied_term: Cell::new(view.raft_term),
            applied_store_index: Cell::new(view.index()),
            hub: RefCell::new(WatcherHub::default()),
            watchers: RefCell::new(HashMap::new()),
        })
    }

    /// Shard 0 only: where proposals and read-index requests of this shard go.
    pub fn set_raft_inbox(&self, inbox: Rc<Mailbox<RaftInput>>) {
        *self.raft_inbox.borrow_mut() = Some(inbox);
    }

    fn next_request_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// The raft index and term of the newest batch this shard has taken in.
    pub fn applied(&self) -> (u64, u64) {
        (self.applied_index.get(), self.applied_term.get())
    }

    /// The newest published version of the store. Lock-free; drop it before awaiting.
    pub fn view(&self) -> arc_swap::Guard<Arc<View>> {
        self.shared.published.view()
    }

    fn send_to_raft(&self, input: RaftInput) {
        if let Some(inbox) = self.raft_inbox.borrow().as_ref() {
            inbox.push(input);
            return;
        }
        let msg = match input {
            RaftInput::Propose(data) => ShardMsg::Propose(data),
            RaftInput::ReadIndex { from, id } => ShardMsg::ReadIndex { from, id },
            RaftInput::ChangeMembership { origin, change } => {
                ShardMsg::ChangeMembership { origin, change }
            }
            _ => return,
        };
        self.send_to(0, msg);
    }

    /// Queues a message for another shard; never blocks the caller.
    pub fn send_to(&self, peer: usize, msg: ShardMsg) {
        if let Some(Some(mb)) = self.outbox.get(peer) {
            mb.push(msg);
        }
    }

    /// Proposes `cmd` and waits until this shard has applied it.
    pub async fn propose(&self, cmd: &Command) -> Result<WriteOutcome, Error> {
        let pending = &self.shared.pending[self.id].0;
        pending.fetch_add(1, Ordering::Relaxed);
        let outcome = self.propose_and_wait(cmd).await;
        pending.fetch_sub(1, Ordering::Relaxed);
        outcome
    }

    async fn propose_and_wait(&self, cmd: &Command) -> Result<WriteOutcome, Error> {
        let give_up_after = self.sweeps.get() + self.timeout_sweeps;
        let (id, rx) = self.enqueue_write(cmd, Some(give_up_after));
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.wake();
        }
        match rx.await {
            Some(result) => result,
            None => {
                self.forget_write(id);
                Err(timeout_error(self.view().index()))
            }
        }
    }

    /// Proposes `cmd`; the receiver gets its outcome once this shard has applied it (`None`
    /// if the shard goes away first). Whoever gives up waiting calls [`Self::forget_write`].
    pub fn submit_write(
        &self,
        cmd: &Command,
    ) -> (u64, local::OneshotReceiver<Result<WriteOutcome, Error>>) {
        self.enqueue_write(cmd, None)
    }

    fn enqueue_write(
        &self,
        cmd: &Command,
        give_up_after: Option<u64>,
    ) -> (u64, local::OneshotReceiver<Result<WriteOutcome, Error>>) {
        let id = self.next_request_id();
        let (tx, rx) = oneshot();
        self.writes
            .borrow_mut()
            .insert(id, PendingWrite { tx, give_up_after });
        let mut data = Vec::with_capacity(64);
        proposal::encode_store(self.origin(id), cmd, &mut data);
        self.send_to_raft(RaftInput::Propose(data));
        (id, rx)
    }

    /// Stops waiting for the write `id`'s outcome.
    pub fn forget_write(&self, id: u64) {
        self.writes.borrow_mut().remove(&id);
    }

    /// One sweep: writes proposed through [`Self::propose`] that waited past the request
    /// timeout are given up (their waiters get `None` and answer with a timeout error).
    fn give_up_late_writes(&self) {
        let sweep = self.sweeps.get() + 1;
        self.sweeps.set(sweep);
        self.writes
            .borrow_mut()
            .retain(|_, w| w.give_up_after.is_none_or(|last| sweep <= last));
    }

    fn has_timed_writes(&self) -> bool {
        self.writes
            .borrow()
            .values()
            .any(|w| w.give_up_after.is_some())
    }

    fn origin(&self, id: u64) -> Origin {
        Origin {
            member: self.shared.member_id.load(Ordering::Relaxed),
            shard: self.id as u16,
            id,
        }
    }

    /// Proposes a member-list change and waits until shard 0 applied it (or refused it).
    pub async fn change_membership(&self, change: MemberChange) -> Result<(), MemberError> {
        let (id, rx) = self.submit_member_change(change);
        match with_timeout(self.shared.request_timeout, rx).await {
            Some(Some(result)) => result,
            _ => {
                self.member_changes.borrow_mut().remove(&id);
                Err(MemberError::Timeout)
            }
        }
    }

    /// Proposes a member-list change; the receiver gets its outcome.
    pub fn submit_member_change(
        &self,
        change: MemberChange,
    ) -> (u64, local::OneshotReceiver<Result<(), MemberError>>) {
        let id = self.next_request_id();
        let (tx, rx) = oneshot();
        self.member_changes.borrow_mut().insert(id, tx);
        self.send_to_raft(RaftInput::ChangeMembership {
            origin: self.origin(id),
            change,
        });
        (id, rx)
    }

    /// Answers the member-list change `id` proposed on this shard.
    pub fn finish_member_change(&self, id: u64, result: Result<(), MemberError>) {
        if let Some(tx) = self.member_changes.borrow_mut().remove(&id) {
            tx.send(result);
        }
    }

    /// The store was restored from a snapshot (by shard 0): watchers end (their clients
    /// re-watch from their index, as after etcd's recovery).
    pub fn restore(&self, point: RestorePoint) {
        if point.index <= self.applied_index.get() {
            return;
        }
        self.end_watches();
        self.applied_store_index.set(point.store_index);
        self.mark_applied(point.index, point.term);
    }

    /// Waits until this shard has taken in every write committed before the call (raft
    /// ReadIndex), so that a read served afterwards is linearizable.
    pub async fn read_barrier(&self) -> Result<(), Error> {
        let outcome = self.read_barrier_once().await;
        if outcome.is_err() {
            self.shared
                .raft
                .read_indexes_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    async fn read_barrier_once(&self) -> Result<(), Error> {
        let (id, rx) = self.submit_read_index();
        let index = match with_timeout(self.shared.request_timeout, rx).await {
            Some(Some(result)) => result?,
            _ => {
                self.forget_read_index(id);
                return Err(timeout_error(self.view().index()));
            }
        };
        self.wait_applied(index).await;
        Ok(())
    }

    /// Asks raft for the current read index; the receiver gets it (or why not). Whoever gives
    /// up waiting calls [`Self::forget_read_index`].
    pub fn submit_read_index(&self) -> (u64, local::OneshotReceiver<Result<u64, Error>>) {
        let id = self.next_request_id();
        let (tx, rx) = oneshot();
        self.reads.borrow_mut().insert(id, tx);
        self.send_to_raft(RaftInput::ReadIndex { from: self.id, id });
        (id, rx)
    }

    /// Stops waiting for the read index `id`.
    pub fn forget_read_index(&self, id: u64) {
        self.reads.borrow_mut().remove(&id);
    }

    /// Waits until this shard has taken in everything a client of this member has been shown;
    /// call before starting a watch.
    pub async fn catch_up(&self) {
        let seen = self.shared.seen.0.load(Ordering::Acquire);
        self.wait_applied(seen).await;
    }

    /// Records that a client is being shown the store as of raft index `index`.
    pub fn observe(&self, index: u64) {
        let seen = &self.shared.seen.0;
        if seen.load(Ordering::Relaxed) < index {
            seen.fetch_max(index, Ordering::AcqRel);
        }
    }

    /// Waits until this shard has taken in the batch with raft index `index`.
    pub async fn wait_applied(&self, index: u64) {
        self.follow();
        if self.applied_index.get() >= index {
            self.unfollow_if_idle();
            return;
        }
        let (tx, rx) = oneshot();
        self.applied_waiters
            .borrow_mut()
            .entry(index)
            .or_default()
            .push(tx);
        rx.await;
    }

    /// The store index a watch starts at on this shard: that of the last batch taken in (the
    /// changes after it are still to come to this shard's hub).
    pub fn watch_index(&self) -> u64 {
        self.applied_store_index.get()
    }

    /// Starts a watch at [`Shard::watch_index`]. Dropping the returned stream releases the
    /// watcher.
    pub fn watch(
        self: &Rc<Self>,
        key: &str,
        recursive: bool,
        stream: bool,
        since: Option<u64>,
    ) -> Result<WatchStream, Error> {
        self.follow();
        let at = self.applied_store_index.get();
        let start = match self.shared.published.watch_start(key, recursive, since, at) {
            Ok(start) => start,
            Err(e) => {
                self.unfollow_if_idle();
                return Err(e);
            }
        };
        let (tx, rx) = local_channel::new_bounded(WATCHER_BUFFER);
        let id = match start {
            WatchStart::Ready(event) => {
                // The event is in the history: deliver it and end the stream.
                let _ = tx.try_send(event);
                None
            }
            // A stopping member ends its watches (see `end_watches`): this one at once.
            WatchStart::Waiting { .. } if self.shared.stopping.load(Ordering::Relaxed) => None,
            WatchStart::Waiting { path, since } => {
                let id = self.hub.borrow_mut().add(path, recursive, stream, since);
                self.watchers
                    .borrow_mut()
                    .insert(id, WatcherSlot { tx, stream });
                self.publish_watcher_count();
                Some(id)
            }
        };
        if id.is_none() {
            self.unfollow_if_idle();
        }
        Ok(WatchStream {
            shard: self.clone(),
            id,
            rx,
        })
    }

    /// Ends every watch of this shard (the process is stopping, or the store was replaced by a
    /// snapshot): each response ends with its last chunk, so a client sees a complete answer
    /// and watches again, rather than a connection cut in the middle of a response.
    pub fn end_watches(&self) {
        let ended: Vec<WatcherId> = self
            .watchers
            .borrow_mut()
            .drain()
            .map(|(id, _)| id)
            .collect();
        let mut hub = self.hub.borrow_mut();
        for id in ended {
            hub.remove(id);
        }
        drop(hub);
        self.publish_watcher_count();
        self.unfollow_if_idle();
    }

    fn unwatch(&self, id: WatcherId) {
        self.watchers.borrow_mut().remove(&id);
        self.hub.borrow_mut().remove(id);
        self.publish_watcher_count();
        self.unfollow_if_idle();
    }

    /// Makes this shard take every applied batch from now on. A shard that did not follow
    /// (no watchers, nobody waiting) missed batches that carried nothing for it; it catches up
    /// by jumping to the newest published version. Pairs with the applier's publish, fence,
    /// then [`Shared::follows`]: either the applier sees the flag and sends the next batch, or
    /// the jump sees that batch's version, so none is missed.
    fn follow(&self) {
        if self.id == 0
            || self.shared.following[self.id]
                .0
                .swap(true, Ordering::SeqCst)
        {
            return;
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        let view = self.shared.published.view();
        if view.raft_index > self.applied_index.get() {
            self.applied_store_index.set(view.index());
            self.mark_applied(view.raft_index, view.raft_term);
        }
    }

    /// Stops taking every batch once nothing here needs them (no watcher, nobody waiting).
    fn unfollow_if_idle(&self) {
        if self.id != 0 && self.hub.borrow().is_empty() && self.applied_waiters.borrow().is_empty()
        {
            self.shared.following[self.id]
                .0
                .store(false, Ordering::SeqCst);
        }
    }

    fn publish_watcher_count(&self) {
        let n = self.watchers.borrow().len() as u64;
        self.shared.watchers[self.id].0.store(n, Ordering::Relaxed);
    }

    /// Takes in one applied batch: answers the writes proposed here, then hands the changes'
    /// events to this shard's watchers.
    pub fn take_applied(&self, batch: &AppliedBatch) {
        // A shard that started following jumped to the newest version and may already be past
        // this batch (see `follow`): its changes are then in that version, but the answers to
        // this shard's writes are only here, so they are always delivered.
        let newer = batch.raft_index > self.applied_index.get();
        let mut answered = std::mem::take(&mut *self.answering.borrow_mut());
        {
            let mut writes = self.writes.borrow_mut();
            for answer in batch
                .answers
                .iter()
                .filter(|a| usize::from(a.shard) == self.id)
            {
                if let Some(PendingWrite { tx, .. }) = writes.remove(&answer.id) {
                    let outcome = WriteOutcome {
                        result: answer.result.clone(),
                        raft_index: answer.raft_index,
                        raft_term: answer.raft_term,
                    };
                    answered.push((tx, outcome));
                }
            }
        }
        let mut fired = Vec::new();
        if newer {
            let mut hub = self.hub.borrow_mut();
            for change in &batch.changes {
                hub.fire(change, &mut fired);
            }
            drop(hub);
            self.applied_store_index.set(batch.store_index);
            self.mark_applied(batch.raft_index, batch.raft_term);
        }
        if !answered.is_empty() || !fired.is_empty() {
            self.observe(batch.raft_index);
            for (tx, outcome) in answered.drain(..) {
                tx.send(Ok(outcome));
            }
            self.deliver(fired);
        }
        *self.answering.borrow_mut() = answered;
        self.unfollow_if_idle();
    }

    fn mark_applied(&self, index: u64, term: u64) {
        self.applied_index.set(index);
        self.applied_term.set(term);
        self.wake_applied_waiters();
    }

    /// Hands fired events to this shard's watchers; a watcher that cannot keep up is dropped.
    fn deliver(&self, fired: Vec<(WatcherId, Arc<Event>)>) {
        if fired.is_empty() {
            return;
        }
        let mut hub = self.hub.borrow_mut();
        let mut watchers = self.watchers.borrow_mut();
        for (id, event) in fired {
            let Some(slot) = watchers.get(&id) else {
                continue;
            };
            let keep = slot.stream && slot.tx.try_send(event.clone()).is_ok();
            if !slot.stream {
                let _ = slot.tx.try_send(event);
            }
            if !keep {
                if slot.stream {
                    hub.remove(id);
                }
                watchers.remove(&id);
            }
        }
        drop(watchers);
        self.publish_watcher_count();
    }

    fn wake_applied_waiters(&self) {
        let applied = self.applied_index.get();
        let mut waiters = self.applied_waiters.borrow_mut();
        while let Some(entry) = waiters.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for tx in entry.remove() {
                tx.send(());
            }
        }
    }

    fn handle(&self, msg: ShardMsg) {
        match msg {
            ShardMsg::Propose(data) => self.send_to_raft(RaftInput::Propose(data)),
            ShardMsg::ReadIndex { from, id } => {
                self.send_to_raft(RaftInput::ReadIndex { from, id })
            }
            ShardMsg::ReadIndexDone { id, result } => self.finish_read(id, result),
            ShardMsg::ProposalFailed { id, error } => self.fail_write(id, error),
            ShardMsg::Applied(batch) => self.take_applied(&batch),
            ShardMsg::ChangeMembership { origin, change } => {
                self.send_to_raft(RaftInput::ChangeMembership { origin, change })
            }
            ShardMsg::MembershipChanged { id, result } => self.finish_member_change(id, result),
            ShardMsg::Restore(point) => self.restore(point),
        }
    }

    /// Delivers a read index to the local waiter `id` (called on the shard that asked).
    pub fn finish_read(&self, id: u64, result: Result<u64, Error>) {
        if let Some(tx) = self.reads.borrow_mut().remove(&id) {
            tx.send(result);
        }
    }

    /// Fails the local write `id` (called on the shard that proposed it).
    pub fn fail_write(&self, id: u64, error: Error) {
        if let Some(PendingWrite { tx, .. }) = self.writes.borrow_mut().remove(&id) {
            tx.send(Err(error));
        }
    }
}

/// Where a write's outcome goes.
type WriteSender = OneshotSender<Result<WriteOutcome, Error>>;

/// A write proposed on a shard, waiting for its outcome.
struct PendingWrite {
    tx: WriteSender,
    /// For a write proposed through [`Shard::propose`]: the last sweep it survives. One sweep
    /// task per shard instead of a timer per write: a timer per write cost a timer-map insert
    /// and removal and two clock reads on every PUT. Sweeps are `sweep_interval` apart, so the
    /// `timeout_sweeps + 1`-th sweep after the proposal comes at least the request timeout later
    /// and less than two intervals after it (the timeout rounded up to whole intervals, plus the
    /// part of an interval that had passed when the write was proposed). `None`: the caller
    /// keeps its own time (the simulation's clients, through [`Shard::submit_write`]).
    give_up_after: Option<u64>,
}

/// How far apart a shard's sweeps for late writes are: a twentieth of the request timeout,
/// within 10–100 ms (a late write is given up less than two of them after the timeout).
fn sweep_interval(request_timeout: Duration) -> Duration {
    (request_timeout / 20).clamp(Duration::from_millis(10), Duration::from_millis(100))
}

/// The request timeout in sweeps, rounded up.
fn sweeps_in(request_timeout: Duration) -> u64 {
    let every = sweep_interval(request_timeout).as_nanos();
    request_timeout.as_nanos().div_ceil(every) as u64
}

/// Gives up late writes every [`sweep_interval`] while any timed write waits; parked otherwise
/// (an idle shard has no timer for it).
async fn sweep_late_writes(shard: Rc<Shard>) {
    let every = sweep_interval(shard.shared.request_timeout);
    loop {
        std::future::poll_fn(|cx| {
            if shard.has_timed_writes() {
                Poll::Ready(())
            } else {
                shard.sweeper.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        glommio::timer::sleep(every).await;
        shard.give_up_late_writes();
    }
}

/// A start for this process's waiter ids: the clock in nanoseconds, so ids of a later run are
/// above any id of an earlier one that did not issue more ids than nanoseconds passed.
fn unique_id_base() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        .max(1)
}

/// What a client hears when its write or quorum read was not done in time (etcd's text);
/// `index` is the store index it is answered at.
pub(crate) fn timeout_error(index: u64) -> Error {
    Error::new(Code::RaftInternal, "etcdserver: request timed out", index)
}

/// `fut`'s output, or `None` once `dur` has passed (the future is dropped). Needs a glommio
/// executor.
pub(crate) async fn with_timeout<T>(
    dur: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(dur).await;
        None
    })
    .await
}

/// Moves queued messages for one peer into the mesh; waits (here, not in the caller) when the
/// peer's channel is full.
async fn forward_to_peer(
    senders: Rc<Senders<ShardMsg>>,
    peer: usize,
    mailbox: Rc<Mailbox<ShardMsg>>,
) {
    let mut batch = Vec::new();
    while mailbox.recv_batch(&mut batch).await {
        for msg in batch.drain(..) {
            if senders.send_to(peer, msg).await.is_err() {
                return;
            }
        }
    }
}

fn start_receivers(shard: Rc<Shard>, mut receivers: Receivers<ShardMsg>) {
    for (_peer, rx) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                shard.handle(msg);
            }
        })
        .detach();
    }
}

/// The events of one watch, in order. Dropping it releases the watcher at once.
pub struct WatchStream {
    shard: Rc<Shard>,
    id: Option<WatcherId>,
    rx: LocalReceiver<Arc<Event>>,
}

impl WatchStream {
    /// The next event, or `None` once the watcher was dropped for falling behind.
    pub async fn next(&mut self) -> Option<Arc<Event>> {
        self.rx.recv().await
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.shard.unwatch(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sweep by sweep: a write proposed through `propose` survives `timeout_sweeps` sweeps and
    /// is given up by the next one (the first sweep after a proposal may come at once, so
    /// surviving exactly `timeout_sweeps` of them is what keeps it for the whole timeout).
    #[test]
    fn a_timed_write_survives_the_timeout_in_sweeps_and_goes_at_the_next() {
        let shared = Arc::new(Shared::new(1, Duration::from_millis(300), 10));
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let shard = Shard::alone(shared, 1);
                assert_eq!(shard.timeout_sweeps, 20, "300 ms in sweeps of 15 ms");
                shard.give_up_late_writes(); // sweeps already done do not count
                let cmd = Command::Delete {
                    key: "/k".into(),
                    dir: false,
                    recursive: false,
                };
                let waiting = glommio::spawn_local({
                    let shard = shard.clone();
                    async move { shard.propose(&cmd).await }
                });
                futures_lite::future::yield_now().await;
                assert!(shard.has_timed_writes());
                for sweep in 0..shard.timeout_sweeps {
                    shard.give_up_late_writes();
                    assert!(shard.has_timed_writes(), "given up at sweep {sweep}");
                }
                shard.give_up_late_writes();
                assert!(!shard.has_timed_writes());
                let Err(err) = waiting.await else {
                    panic!("a write nobody applied succeeded");
                };
                assert_eq!(err.cause, "etcdserver: request timed out");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// A write nobody applies is given up once the request timeout has passed, not before,
    /// with etcd's timeout error; the shard keeps nothing of it, and the sweeper parks again.
    #[test]
    fn a_write_that_is_never_applied_times_out_after_the_request_timeout() {
        let timeout = Duration::from_millis(300);
        let shared = Arc::new(Shared::new(1, timeout, 10));
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                // Alone, with no raft behind it: a proposal goes nowhere.
                let shard = Shard::alone(shared, 1);
                glommio::spawn_local(sweep_late_writes(shard.clone())).detach();
                let cmd = Command::Set {
                    key: "/k".into(),
                    value: "v".into(),
                    dir: false,
                    expire_at: None,
                    refresh: false,
                };
                for _ in 0..2 {
                    let started = std::time::Instant::now();
                    let Err(err) = shard.propose(&cmd).await else {
                        panic!("a write nobody applied succeeded");
                    };
                    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
                    assert_eq!(err.cause, "etcdserver: request timed out");
                    assert!(shard.writes.borrow().is_empty());
                    assert_eq!(shard.shared.pending[0].0.load(Ordering::Relaxed), 0);
                }
                // Nothing timed is left: the sweeper parks (its waker is stored) after its
                // next sweep.
                glommio::timer::sleep(sweep_interval(timeout) * 2).await;
                let parked = shard.sweeper.take();
                assert!(parked.is_some(), "the sweeper did not park");
                shard.sweeper.set(parked);
                // Untimed writes (the simulation's) are left to their caller.
                let (_id, _rx) = shard.submit_write(&cmd);
                glommio::timer::sleep(timeout * 2).await;
                assert_eq!(shard.writes.borrow().len(), 1);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// Waiters on an executor are woken by a flag set from another thread (no polling), and
    /// a dropped waiter leaves no waker behind.
    #[test]
    fn flag_waiters_wake_across_threads_and_unregister_on_drop() {
        let shared = Arc::new(Shared::new(1, Duration::from_secs(1), 10));
        let setter = shared.clone();
        let outcome = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                // A waiter that gives up: its waker must go with it.
                let gave_up = futures_lite::future::or(
                    async {
                        shared
                            .wait_until(|s| s.stopping.load(Ordering::SeqCst))
                            .await;
                        false
                    },
                    async {
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                        true
                    },
                )
                .await;
                assert!(gave_up);
                let registered = shared.flag_waiters.lock().unwrap().wakers.len();
                assert_eq!(registered, 0);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    setter.set_stopping();
                    std::thread::sleep(Duration::from_millis(50));
                    setter.halt(Err("why".into()));
                });
                crate::listener::stopping(&shared).await;
                crate::listener::halted(&shared).await.map_err(|e| e.0)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(outcome, Err("why".to_string()));
    }
}
