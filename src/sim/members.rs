//! Members of the simulated cluster coming and going: starting one from its in-memory WAL and
//! snapshot files (as a server's shard 0 does), and adding or removing one through the
//! cluster's own member-list changes.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::net::SimPeers;
use super::time::{within, SimClock};
use super::{counted, Event, Running, State, World, HEARTBEAT, OP_TIMEOUT};
use crate::cluster::membership::MemberChange;
use crate::cluster::Member;
use crate::raft::env::{Blocking, NodeEnv};
use crate::raft::storage::{recover_with, Bootstrap, FirstStart, Paths};
use crate::raft::{Fatal, RaftSettings};
use crate::shard::{Shard, Shared};
use crate::wal::WalOptions;

impl World {
    /// Starts (or restarts) member `id` from its file system; a member that cannot start is
    /// one of the run's problems.
    pub(super) async fn boot(world: &Rc<RefCell<World>>, id: u64) {
        let started = Self::start_member(world, id).await;
        let mut w = world.borrow_mut();
        match started {
            Ok(running) => {
                if let Some(m) = w.members.get_mut(&id) {
                    m.state = State::Up(running);
                }
            }
            Err(e) => {
                let at = w.time.now();
                w.problems
                    .push(format!("member {id:x} cannot start at {at:?}: {e}"));
            }
        }
    }

    async fn start_member(world: &Rc<RefCell<World>>, id: u64) -> Result<Running, String> {
        let (fs, paths, bootstrap, settings, first_new, id_base) = {
            let mut w = world.borrow_mut();
            let id_base = w.rng.gen::<u64>() >> 8;
            let m = &w.members[&id];
            let paths = Paths {
                wal: PathBuf::from(format!("/sim/{}/wal", m.name)),
                snap: m.snap_dir.clone(),
            };
            let bootstrap = Bootstrap {
                member_id: id,
                cluster_id: w.cluster_id,
                name: m.name.clone(),
                voters: w.initial.iter().map(|m| m.id).collect(),
            };
            let join_peers = if m.joined {
                w.current_members()
            } else {
                Vec::new()
            };
            let settings = RaftSettings {
                heartbeat: HEARTBEAT,
                election_timeout: HEARTBEAT * m.election_tick as u32,
                election_ticks: Some((m.election_tick, m.election_tick + 1)),
                snapshot_count: 40,
                max_snapshots: 3,
                max_wals: 3,
                snap_dir: m.snap_dir.clone(),
                name: m.name.clone(),
                client_urls: vec![format!("http://{}:2379", m.name)],
                strict_reconfig_check: false,
                join_peers,
            };
            (m.fs.clone(), paths, bootstrap, settings, !m.joined, id_base)
        };
        let initial = world.borrow().initial.clone();
        let first = if first_new {
            FirstStart::NewCluster(&initial)
        } else {
            FirstStart::Join
        };
        let opts = WalOptions {
            segment_size: 64 << 10,
        };
        let shared = Arc::new(Shared::new(1, Duration::from_secs(5), 1000));
        let mut rec =
            recover_with(fs, opts, Blocking::Inline, &paths, bootstrap, first, None).await?;
        let store = rec.take_store(&shared)?;
        let shard = Shard::alone(shared, id_base);
        let (time, wires, polls) = {
            let w = world.borrow();
            (w.time.clone(), w.wires.clone(), w.polls.clone())
        };
        let env = NodeEnv {
            clock: Rc::new(SimClock(time)),
            blocking: Blocking::Inline,
        };
        let driver =
            crate::raft::build_node(settings, env, shard.clone(), rec, store, |me, _, _| {
                SimPeers { me, wires }
            })?;
        let inbox = driver.inbox();
        let ended: Rc<RefCell<Option<Result<(), Fatal>>>> = Rc::default();
        let slot = ended.clone();
        let node = glommio::spawn_local(counted(&polls, async move {
            let outcome = driver.run().await;
            *slot.borrow_mut() = Some(outcome);
        }));
        Ok(Running {
            shard,
            inbox,
            _node: node,
            ended,
        })
    }

    /// The member list as a member that is up sees it.
    fn current_members(&self) -> Vec<Member> {
        self.members
            .values()
            .find_map(|m| match &m.state {
                State::Up(r) => Some(r.shard.shared.membership()),
                _ => None,
            })
            .map(|ms| ms.members().cloned().collect())
            .unwrap_or_else(|| self.initial.clone())
    }

    /// A shard of a member that is up, chosen at random.
    pub(super) fn any_up(&mut self) -> Option<Rc<Shard>> {
        let up: Vec<Rc<Shard>> = self
            .members
            .values()
            .filter_map(|m| match &m.state {
                State::Up(r) => Some(r.shard.clone()),
                _ => None,
            })
            .collect();
        if up.is_empty() {
            return None;
        }
        let i = self.rng.gen_range(0..up.len());
        Some(up[i].clone())
    }

    async fn change_members(world: &Rc<RefCell<World>>, change: MemberChange) -> bool {
        let (shard, alarm) = {
            let mut w = world.borrow_mut();
            (w.any_up(), w.alarm.clone())
        };
        let Some(shard) = shard else { return false };
        let (_, rx) = shard.submit_member_change(change);
        matches!(within(&alarm, OP_TIMEOUT, rx).await, Some(Some(Ok(()))))
    }

    pub(super) async fn add_member(world: &Rc<RefCell<World>>) {
        let m = {
            let mut w = world.borrow_mut();
            let i = w.members.len();
            w.new_member(i, true)
        };
        let member = Member {
            id: m.id,
            name: String::new(),
            peer_urls: vec![format!("http://{}:2380", m.name)],
            client_urls: Vec::new(),
        };
        let id = m.id;
        // Spawned: the world goes on while the change is proposed.
        let w2 = world.clone();
        let polls = world.borrow().polls.clone();
        glommio::spawn_local(counted(&polls, async move {
            if Self::change_members(&w2, MemberChange::Add(member)).await {
                let mut w = w2.borrow_mut();
                w.note(6 ^ id);
                w.members.insert(id, m);
                w.counts.members_added += 1;
                let now = w.time.now();
                w.agenda.at(now, Event::Restart(id));
                w.agenda.at(now, Event::Tick(id));
            }
        }))
        .detach();
    }

    pub(super) async fn remove_member(world: &Rc<RefCell<World>>) {
        let victim = {
            let mut w = world.borrow_mut();
            let ids: Vec<u64> = w
                .members
                .values()
                .filter(|m| !matches!(m.state, State::Removed))
                .map(|m| m.id)
                .collect();
            if ids.len() <= 3 && w.rng.gen_bool(0.5) {
                return;
            }
            ids[w.rng.gen_range(0..ids.len())]
        };
        let w2 = world.clone();
        let polls = world.borrow().polls.clone();
        glommio::spawn_local(counted(&polls, async move {
            if Self::change_members(&w2, MemberChange::Remove(victim)).await {
                let mut w = w2.borrow_mut();
                w.note(7 ^ victim);
                w.counts.members_removed += 1;
                if let Some(m) = w.members.get_mut(&victim) {
                    if !matches!(m.state, State::Up(_)) {
                        m.state = State::Removed;
                    }
                }
            }
        }))
        .detach();
    }
}
