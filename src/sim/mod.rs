//! A deterministic simulation of a tern cluster inside one thread.
//!
//! Every member is the real raft node ([`crate::raft::RaftDriver`]) over the real WAL on an
//! in-memory file system ([`crate::wal::MemFs`]), applying to the real store and answering
//! through a real [`Shard`]; only the world around them is simulated: the clock
//! ([`time::SimClock`]), the network ([`net`]), the disk's crashes, and the clients. All of it
//! runs as tasks of one glommio executor with no real I/O and no real timer on the path, and
//! the world moves time only when every task has gone quiet, so one seed always yields the
//! same run. Randomness comes from the seed alone: raft-rs's election timeouts are narrowed to
//! one value per member ([`crate::raft::RaftSettings::election_ticks`]), drawn from the seed.
//!
//! A run ([`run`]): 3 or 5 members; clients writing, compare-and-swapping and quorum-reading a
//! few keys through random members; during the chaos window members crash (losing what the WAL
//! had not synced, sometimes keeping a torn part of it) and restart, a disk fails a write or an
//! fdatasync (the member must stop), a member stops in order (a leader hands over first),
//! partitions come and go, messages are lost, duplicated and reordered, a member may be removed
//! and another added; then everything heals. The history of the clients' operations is returned for a linearizability
//! check (the test does it, with [`linearizability`]), together with what the
//! world itself found wrong: a member stopping with an error, no progress after healing,
//! replicas that disagree at the end.
//!
//! Knows nothing about HTTP; uses the raft node, shard and store as a server does.

mod client;
pub mod linearizability;
mod members;
pub mod net;
pub mod time;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::Member;
use crate::raft::Fatal;
use crate::shard::local::Mailbox;
use crate::shard::{RaftInput, Shard};
use crate::wal::MemFs;
use net::Wires;
use time::{Agenda, Alarm, SimTime};

/// One client operation as the client saw it (times in simulated nanoseconds; `ret: None`
/// when the outcome is unknown: timed out, or the member went away).
pub use linearizability::{Op, OpKind};

/// What one run did and found.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    pub history: Vec<Op>,
    /// What the world found wrong (empty when nothing).
    pub problems: Vec<String>,
    /// A digest of every event the world handled, in order: equal for equal runs.
    pub trace: u64,
    pub counts: Counts,
}

/// How much of each fault a run exercised.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub members: usize,
    pub crashes: u32,
    pub torn_crashes: u32,
    /// Failed WAL writes or fdatasyncs that stopped a member (it restarts from its disk).
    pub disk_failures: u32,
    /// Orderly stops (a leader hands its leadership over first), each followed by a restart.
    pub stops: u32,
    pub partitions: u32,
    pub members_added: u32,
    pub members_removed: u32,
    pub messages: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub snapshots_sent: u64,
    pub ops_ok: u64,
    pub ops_unknown: u64,
}

/// Runs the simulation for `seed` on an executor of its own (call from outside glommio). A
/// panic inside the run (raft-rs's, the store's) is one of its problems; its message goes to
/// stderr first.
pub fn run(seed: u64) -> Outcome {
    let joined = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name(&format!("tern-sim-{seed}"))
        .spawn(move || async move { simulate(seed).await })
        .expect("a glommio executor for the simulation (io_uring is required)")
        .join();
    joined.unwrap_or_else(|e| Outcome {
        seed,
        history: Vec::new(),
        problems: vec![format!(
            "the run panicked: {e} (the panic's message is above)"
        )],
        trace: 0,
        counts: Counts::default(),
    })
}

/// Runs the simulation for `seed` on the current glommio executor.
pub async fn simulate(seed: u64) -> Outcome {
    let dir = scratch_dir(seed);
    let world = World::new(seed, dir.clone());
    let outcome = World::run(world).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Where snapshot files go (plain files: the WAL is in memory, snapshots are not): under
/// `/dev/shm` when there is one, so their fsyncs cost nothing.
fn scratch_dir(seed: u64) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    // Unique per run: two runs of one seed may go on at once (in two test threads).
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    base.join(format!("tern-sim-{}-{run}-{seed:016x}", std::process::id()))
}

const HEARTBEAT: Duration = Duration::from_millis(100);
/// How long a client waits for an answer before it counts the outcome as unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Faults happen between the start and this.
const CHAOS_END: Duration = Duration::from_secs(10);
/// Clients stop starting operations at this; everything has healed well before.
const CLIENTS_END: Duration = Duration::from_secs(16);
/// The run ends at this (replicas are compared then).
const RUN_END: Duration = Duration::from_secs(20);
/// After healing, some operation must succeed within this.
const PROGRESS_WITHIN: Duration = Duration::from_secs(4);
const KEYS: [&str; 3] = ["/a", "/b", "/c"];

enum Event {
    Tick(u64),
    Deliver(Message),
    /// A sent snapshot arrived (`ok`) or was lost, told back to its sender.
    SnapshotReport {
        from: u64,
        to: u64,
        ok: bool,
    },
    Crash {
        id: u64,
        torn: bool,
    },
    Restart(u64),
    /// An orderly stop (SIGTERM): the member stops taking part once a leader it was has
    /// handed over; it is brought down a moment later and restarted.
    Stop(u64),
    /// The member's next WAL write or fdatasync fails.
    DiskFailure {
        id: u64,
        fsync: bool,
    },
    Partition(Vec<u64>),
    Heal,
    AddMember,
    RemoveMember,
}

struct Running {
    shard: Rc<Shard>,
    inbox: Rc<Mailbox<RaftInput>>,
    /// The node's loop; dropping it stops the node where it is (a crash).
    _node: glommio::Task<()>,
    ended: Rc<RefCell<Option<Result<(), Fatal>>>>,
}

enum State {
    Up(Running),
    Down,
    /// Removed from the cluster (its node ended, or will).
    Removed,
}

struct SimMember {
    id: u64,
    name: String,
    fs: MemFs,
    snap_dir: PathBuf,
    election_tick: usize,
    /// A member added at run time joins; the others started the cluster.
    joined: bool,
    /// A disk failure was injected: the node stopping over its storage is expected.
    disk_failing: bool,
    state: State,
}

struct World {
    seed: u64,
    rng: StdRng,
    time: Rc<SimTime>,
    alarm: Rc<Alarm>,
    agenda: Agenda<Event>,
    members: BTreeMap<u64, SimMember>,
    initial: Vec<Member>,
    cluster_id: u64,
    wires: Rc<RefCell<Wires>>,
    loss: f64,
    duplication: f64,
    /// Polls of the world's tasks (nodes, clients): unchanged over a round means quiet.
    polls: Rc<Cell<u64>>,
    history: Rc<RefCell<Vec<Op>>>,
    problems: Vec<String>,
    trace: u64,
    counts: Counts,
    dir: PathBuf,
    /// When the last fault healed.
    healed_at: Duration,
}

/// Counts its polls in `polls` (how the world tells that its tasks have gone quiet).
struct Counted<F> {
    fut: Pin<Box<F>>,
    polls: Rc<Cell<u64>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        self.fut.as_mut().poll(cx)
    }
}

fn counted<F: Future>(polls: &Rc<Cell<u64>>, fut: F) -> Counted<F> {
    Counted {
        fut: Box::pin(fut),
        polls: polls.clone(),
    }
}

impl World {
    fn new(seed: u64, dir: PathBuf) -> Rc<RefCell<World>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = if rng.gen_bool(0.5) { 3 } else { 5 };
        let time = SimTime::new();
        let alarm = Rc::new(Alarm {
            time: time.clone(),
            wakers: Rc::default(),
        });
        let loss = [0.0, 0.01, 0.05][rng.gen_range(0..3)];
        let duplication = [0.0, 0.02][rng.gen_range(0..2)];
        let cluster_id = rng.gen::<u64>() | 1;
        let mut world = World {
            seed,
            rng,
            time,
            alarm,
            agenda: Agenda::default(),
            members: BTreeMap::new(),
            initial: Vec::new(),
            cluster_id,
            wires: Rc::default(),
            loss,
            duplication,
            polls: Rc::default(),
            history: Rc::default(),
            problems: Vec::new(),
            trace: 0xcbf2_9ce4_8422_2325 ^ seed,
            counts: Counts {
                members: n,
                ..Counts::default()
            },
            dir,
            healed_at: Duration::ZERO,
        };
        for i in 0..n {
            let m = world.new_member(i, false);
            world.initial.push(Member {
                id: m.id,
                name: m.name.clone(),
                peer_urls: vec![format!("http://{}:2380", m.name)],
                client_urls: Vec::new(),
            });
            world.members.insert(m.id, m);
        }
        world.plan_faults();
        Rc::new(RefCell::new(world))
    }

    fn new_member(&mut self, i: usize, joined: bool) -> SimMember {
        let name = format!("m{i}");
        SimMember {
            id: self.rng.gen::<u64>() | 1,
            snap_dir: self.dir.join(&name).join("snap"),
            name,
            fs: MemFs::default(),
            election_tick: self.rng.gen_range(10..20),
            joined,
            disk_failing: false,
            state: State::Down,
        }
    }

    /// Draws the faults of the chaos window.
    fn plan_faults(&mut self) {
        let ids: Vec<u64> = self.members.keys().copied().collect();
        let chaos = 1_000..CHAOS_END.as_millis() as u64;
        for _ in 0..self.rng.gen_range(0..=3) {
            let at = Duration::from_millis(self.rng.gen_range(chaos.clone()));
            let id = ids[self.rng.gen_range(0..ids.len())];
            let torn = self.rng.gen_bool(0.5);
            self.agenda.at(at, Event::Crash { id, torn });
            let down = Duration::from_millis(self.rng.gen_range(200..2_500));
            self.agenda.at(at + down, Event::Restart(id));
        }
        // Drawn from a stream of their own, so that adding them left the other draws (and the
        // runs of seeds that have none) as they were.
        let mut disks = StdRng::seed_from_u64(self.seed ^ 0xd15c_fa11_d15c_fa11);
        for _ in 0..disks.gen_range(0..=1) {
            let at = Duration::from_millis(disks.gen_range(chaos.clone()));
            let id = ids[disks.gen_range(0..ids.len())];
            let fsync = disks.gen_bool(0.5);
            self.agenda.at(at, Event::DiskFailure { id, fsync });
        }
        let mut stops = StdRng::seed_from_u64(self.seed ^ 0x5709_5709_5709_5709);
        for _ in 0..stops.gen_range(0..=1) {
            let at = Duration::from_millis(stops.gen_range(chaos.clone()));
            let id = ids[stops.gen_range(0..ids.len())];
            self.agenda.at(at, Event::Stop(id));
        }
        for _ in 0..self.rng.gen_range(0..=3) {
            let at = Duration::from_millis(self.rng.gen_range(chaos.clone()));
            let size = self.rng.gen_range(1..ids.len());
            let mut island = ids.clone();
            while island.len() > size {
                island.remove(self.rng.gen_range(0..island.len()));
            }
            self.agenda.at(at, Event::Partition(island));
            let lasts = Duration::from_millis(self.rng.gen_range(300..3_000));
            self.agenda.at(at + lasts, Event::Heal);
        }
        match self.rng.gen_range(0..3) {
            0 => {}
            1 => {
                let at = Duration::from_millis(self.rng.gen_range(chaos.clone()));
                self.agenda.at(at, Event::AddMember);
            }
            _ => {
                let at = Duration::from_millis(self.rng.gen_range(chaos.clone()));
                self.agenda.at(at, Event::RemoveMember);
                let later = Duration::from_millis(self.rng.gen_range(500..3_000));
                self.agenda.at(at + later, Event::AddMember);
            }
        }
        // Whatever is still broken heals at the end of the window.
        self.agenda.at(CHAOS_END, Event::Heal);
        for id in ids {
            let at = Duration::from_millis(self.rng.gen_range(0..HEARTBEAT.as_millis() as u64));
            self.agenda.at(at, Event::Tick(id));
        }
    }

    fn note(&mut self, what: u64) {
        // FNV-1a over the event's digest and the time.
        for v in [what, self.time.now().as_nanos() as u64] {
            for b in v.to_le_bytes() {
                self.trace ^= u64::from(b);
                self.trace = self.trace.wrapping_mul(0x100_0000_01b3);
            }
        }
    }

    async fn run(world: Rc<RefCell<World>>) -> Outcome {
        let ids: Vec<u64> = world.borrow().members.keys().copied().collect();
        for id in ids {
            Self::boot(&world, id).await;
        }
        let clients = 2 + world.borrow_mut().rng.gen_range(0..3);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let polls = world.borrow().polls.clone();
            tasks.push(glommio::spawn_local(counted(
                &polls,
                client::client(world.clone(), c),
            )));
        }
        loop {
            settle(&world).await;
            Self::after_turn(&world).await;
            let next = {
                let w = world.borrow();
                let a = w.agenda.next_time();
                let b = w.alarm.wakers.borrow().next_time();
                match (a, b) {
                    (Some(a), Some(b)) if b < a => Some(b),
                    (Some(a), _) => Some(a),
                    (None, b) => b,
                }
            };
            let Some(at) = next else { break };
            if at > RUN_END {
                break;
            }
            world.borrow().time.advance_to(at);
            // Clients' alarms first at an instant the world has events too? No: the world's
            // events first, then the alarms due (both in scheduling order).
            let event = {
                let mut w = world.borrow_mut();
                if w.agenda.next_time() == Some(at) {
                    w.agenda.pop().map(|(_, e)| e)
                } else {
                    None
                }
            };
            match event {
                Some(e) => Self::handle(&world, e).await,
                None => {
                    let waker = world.borrow().alarm.wakers.borrow_mut().pop();
                    if let Some((_, w)) = waker {
                        w.wake();
                    }
                }
            }
        }
        Self::finish(&world);
        for t in tasks {
            drop(t);
        }
        let mut w = world.borrow_mut();
        for m in w.members.values_mut() {
            m.state = State::Down;
        }
        let history = std::mem::take(&mut *w.history.borrow_mut());
        Outcome {
            seed: w.seed,
            history,
            problems: std::mem::take(&mut w.problems),
            trace: w.trace,
            counts: w.counts,
        }
    }

    /// After every task went quiet: route what was sent, and see which nodes ended.
    async fn after_turn(world: &Rc<RefCell<World>>) {
        let mut w = world.borrow_mut();
        let sent = std::mem::take(&mut w.wires.borrow_mut().outbox);
        for msg in sent {
            w.route(msg);
        }
        let mut ended = Vec::new();
        for m in w.members.values() {
            if let State::Up(r) = &m.state {
                if let Some(outcome) = r.ended.borrow().clone() {
                    ended.push((m.id, outcome));
                }
            }
        }
        for (id, outcome) in ended {
            let m = w.members.get_mut(&id).expect("a member that ran");
            match outcome {
                Err(Fatal::Removed) => m.state = State::Removed,
                // As etcd, a member whose disk failed stops; its operator restarts it, and
                // it recovers from what its disk holds.
                Err(Fatal::Storage(_)) if m.disk_failing => {
                    m.state = State::Down;
                    m.disk_failing = false;
                    m.fs.crash();
                    let at = w.time.now() + Duration::from_millis(500);
                    w.agenda.at(at, Event::Restart(id));
                    w.counts.disk_failures += 1;
                }
                other => {
                    m.state = State::Down;
                    let at = w.time.now();
                    w.problems
                        .push(format!("member {id:x} stopped at {at:?}: {other:?}"));
                }
            }
        }
    }

    /// Sends one message on its way (or not).
    fn route(&mut self, msg: Message) {
        self.counts.messages += 1;
        let (from, to) = (msg.from, msg.to);
        let snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
        let connected = self.wires.borrow().connected(from, to);
        if !connected || self.rng.gen_bool(self.loss) {
            self.counts.lost += 1;
            if snapshot {
                let at = self.time.now() + Duration::from_millis(50);
                self.agenda.at(
                    at,
                    Event::SnapshotReport {
                        from,
                        to,
                        ok: false,
                    },
                );
            }
            return;
        }
        let latency = Duration::from_micros(self.rng.gen_range(100..3_000));
        let at = self.time.now() + latency;
        if snapshot {
            self.counts.snapshots_sent += 1;
            self.agenda
                .at(at, Event::SnapshotReport { from, to, ok: true });
        } else if self.rng.gen_bool(self.duplication) {
            self.counts.duplicated += 1;
            let again = at + Duration::from_micros(self.rng.gen_range(0..5_000));
            self.agenda.at(again, Event::Deliver(msg.clone()));
        }
        self.agenda.at(at, Event::Deliver(msg));
    }

    fn inbox(&self, id: u64) -> Option<Rc<Mailbox<RaftInput>>> {
        match &self.members.get(&id)?.state {
            State::Up(r) => Some(r.inbox.clone()),
            _ => None,
        }
    }

    async fn handle(world: &Rc<RefCell<World>>, event: Event) {
        match event {
            Event::Tick(id) => {
                let mut w = world.borrow_mut();
                w.note(1 ^ id);
                if let Some(inbox) = w.inbox(id) {
                    inbox.push(RaftInput::Tick);
                }
                if !matches!(w.members.get(&id).map(|m| &m.state), Some(State::Removed)) {
                    let jitter = Duration::from_micros(w.rng.gen_range(0..2_000));
                    let at = w.time.now() + HEARTBEAT + jitter;
                    w.agenda.at(at, Event::Tick(id));
                }
            }
            Event::Deliver(msg) => {
                let w = world.borrow_mut();
                // A partition that began while the message was on its way drops it too.
                if !w.wires.borrow().connected(msg.from, msg.to) {
                    return;
                }
                if let Some(inbox) = w.inbox(msg.to) {
                    inbox.push(RaftInput::Peer(Box::new(msg)));
                }
            }
            Event::SnapshotReport { from, to, ok } => {
                let w = world.borrow();
                if let Some(inbox) = w.inbox(from) {
                    inbox.push(RaftInput::SnapshotSent { to, ok });
                }
            }
            Event::Crash { id, torn } => {
                let mut w = world.borrow_mut();
                w.note(2 ^ id);
                let Some(m) = w.members.get_mut(&id) else {
                    return;
                };
                if !matches!(m.state, State::Up(_)) {
                    return;
                }
                m.state = State::Down;
                m.disk_failing = false;
                m.fs.fail_next_writes(0);
                m.fs.fail_next_fsyncs(0);
                let keep = if torn {
                    Some(w.rng.gen_range(0.0..1.0))
                } else {
                    None
                };
                let m = w.members.get_mut(&id).expect("just seen");
                match keep {
                    Some(fraction) => m.fs.crash_torn(fraction),
                    None => m.fs.crash(),
                }
                w.counts.crashes += 1;
                w.counts.torn_crashes += u32::from(torn);
            }
            Event::Restart(id) => {
                let down = matches!(
                    world.borrow().members.get(&id).map(|m| &m.state),
                    Some(State::Down)
                );
                world.borrow_mut().note(3 ^ id);
                if down {
                    Self::boot(world, id).await;
                }
            }
            Event::Stop(id) => {
                let mut w = world.borrow_mut();
                w.note(9 ^ id);
                let Some(State::Up(r)) = w.members.get(&id).map(|m| &m.state) else {
                    return;
                };
                r.shard.shared.set_stopping();
                w.counts.stops += 1;
                // What a stopping tern waits at most for the handoff, then it exits.
                let at = w.time.now() + crate::shutdown::HANDOFF_TIMEOUT.min(HEARTBEAT * 20);
                w.agenda.at(at, Event::Crash { id, torn: false });
                w.agenda.at(at + HEARTBEAT * 5, Event::Restart(id));
            }
            Event::DiskFailure { id, fsync } => {
                let mut w = world.borrow_mut();
                w.note(8 ^ id);
                if let Some(m) = w.members.get_mut(&id) {
                    if matches!(m.state, State::Up(_)) {
                        m.disk_failing = true;
                        if fsync {
                            m.fs.fail_next_fsyncs(1);
                        } else {
                            m.fs.fail_next_writes(1);
                        }
                    }
                }
            }
            Event::Partition(island) => {
                let mut w = world.borrow_mut();
                w.note(4 ^ island.iter().fold(0, |a, b| a ^ b));
                w.wires.borrow_mut().island = island.into_iter().collect();
                w.counts.partitions += 1;
            }
            Event::Heal => {
                let mut w = world.borrow_mut();
                w.note(5);
                w.wires.borrow_mut().island.clear();
                if w.time.now() >= CHAOS_END {
                    w.loss = 0.0;
                    w.duplication = 0.0;
                    w.healed_at = w.time.now();
                    let down: Vec<u64> = w
                        .members
                        .values()
                        .filter(|m| matches!(m.state, State::Down))
                        .map(|m| m.id)
                        .collect();
                    for id in down {
                        let at = w.time.now();
                        w.agenda.at(at, Event::Restart(id));
                    }
                }
            }
            Event::AddMember => Self::add_member(world).await,
            Event::RemoveMember => Self::remove_member(world).await,
        }
    }

    /// The end of a run: progress after healing, and replicas that agree.
    fn finish(world: &Rc<RefCell<World>>) {
        let mut w = world.borrow_mut();
        let healed = w.healed_at;
        let progressed = w.history.borrow().iter().any(|op| {
            op.ret.is_some_and(|r| {
                let r = Duration::from_nanos(r);
                r > healed && r <= healed + PROGRESS_WITHIN + OP_TIMEOUT
            })
        });
        if !progressed {
            w.problems.push(format!(
                "no operation succeeded within {PROGRESS_WITHIN:?} after everything healed at {healed:?}"
            ));
        }
        // Every member that is up and applied as far as the most advanced one holds the same
        // values (members still catching up are skipped).
        let views: Vec<(u64, u64, Vec<Option<String>>)> = w
            .members
            .values()
            .filter_map(|m| match &m.state {
                State::Up(r) => {
                    let view = r.shard.view();
                    let values = KEYS.iter().map(|k| client::value_of(&view, k)).collect();
                    Some((m.id, view.raft_index, values))
                }
                _ => None,
            })
            .collect();
        let newest = views.iter().map(|v| v.1).max().unwrap_or(0);
        let mut reference: Option<&(u64, u64, Vec<Option<String>>)> = None;
        for v in views.iter().filter(|v| v.1 == newest) {
            match reference {
                None => reference = Some(v),
                Some(r) if r.2 != v.2 => w.problems.push(format!(
                    "members {:x} and {:x} both applied to {newest} but hold {:?} and {:?}",
                    r.0, v.0, r.2, v.2
                )),
                Some(_) => {}
            }
        }
        let (ok, unknown) = w.history.borrow().iter().fold((0, 0), |(ok, un), op| {
            if op.ret.is_some() {
                (ok + 1, un)
            } else {
                (ok, un + 1)
            }
        });
        w.counts.ops_ok = ok;
        w.counts.ops_unknown = unknown;
    }
}

/// Lets every task run until none has anything left to do at this instant.
async fn settle(world: &Rc<RefCell<World>>) {
    let polls = world.borrow().polls.clone();
    let mut quiet = 0;
    while quiet < 3 {
        let before = polls.get();
        futures_lite::future::yield_now().await;
        if polls.get() == before {
            quiet += 1;
        } else {
            quiet = 0;
        }
    }
}
