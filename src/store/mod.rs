//! The v2 key space as a deterministic state machine: etcd v2.3's `store` package in Rust,
//! applied once per member and read by every shard.
//!
//! [`Store`] is the applier: the raft node (shard 0) applies each committed [`Command`] to it
//! once, in order. There is no clock, no randomness and no I/O here: times arrive inside
//! commands (absolute expirations chosen by the proposer, and [`Command::Sync`] from the raft
//! leader, which expires keys). After each committed batch the applier publishes an immutable
//! [`View`] (a persistent tree that shares every unchanged node with the versions before it,
//! see `node`) into [`Published`], which every shard reads without locks; the events of the
//! batch enter the shared history first, so a view never runs ahead of the history a watch
//! scans. Each shard keeps its own [`WatcherHub`] and matches the batch's [`Change`]s against
//! it (see [`WatcherHub::fire`]).
//!
//! Layout, one concern per file:
//! - `command`: the mutations and their binary encoding;
//! - `apply`: what each mutation does (etcd's `store.go`: errors, indexes, events, stats);
//! - `node`: the persistent tree and its walks; `path`: key cleaning and the hidden-key rule;
//! - `event`: events, node views and their exact JSON;
//! - `history`: the last N events, for `waitIndex`; `watch`: live watchers and firing rules;
//! - `ttl`: expiration order; `stats`: the `/v2/stats/store` counters;
//! - `snapshot`: a version's state as bytes (byte helpers in [`crate::codec`]).
//!
//! This module knows nothing about HTTP, raft, shards or delivery of fired events: it hands back
//! [`Applied`] (the proposer's result and the changes to match) and lets the caller deliver.

mod apply;
mod command;
mod event;
mod history;
mod node;
pub mod path;
mod snapshot;
mod stats;
mod ttl;
mod watch;

#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;

use crate::auth::state::{AuthChange, AuthState, ChangeError};
use crate::error::{Code, Error};

pub use crate::codec::DecodeError;
pub use command::Command;
pub use event::{Action, Event, NodeView};
pub use history::Cleared;
pub use stats::StoreStats;
pub use watch::{Fired, WatcherHub, WatcherId};

use history::EventHistory;
use node::Tree;
use ttl::TtlIndex;

/// The applier: the one mutable copy of the key space (on the shard that runs raft).
#[derive(Debug)]
pub struct Store {
    tree: Tree,
    /// The etcd index: bumped once by every successful change (failures leave it alone).
    index: u64,
    ttl: TtlIndex,
    /// Write counters (reads are counted by the shards that serve them).
    stats: StoreStats,
    /// Users, roles and the auth switch (etcd's `/2` keys), outside the key space.
    auth: Arc<AuthState>,
    /// Events applied since the last [`Store::publish`], oldest first.
    unpublished: Vec<Arc<Event>>,
    published: Arc<Published>,
}

/// One change to the key space, for every shard to match against its watchers.
#[derive(Debug, Clone)]
pub struct Change {
    pub event: Arc<Event>,
    /// For a delete or expire: every node removed with it, children before their parent (their
    /// watchers hear the event even when not recursive, as in etcd).
    pub removed: Vec<String>,
}

/// What applying one command produced.
#[derive(Debug)]
pub struct Applied {
    /// None for Sync. Some(Err) when the command failed (failed commands do NOT advance the index,
    /// as in etcd).
    pub result: Option<Result<Arc<Event>, Error>>,
    /// The changes, in order: one per success, one per expired node for a `Sync`.
    pub changes: Vec<Change>,
}

/// An immutable version of the key space as of one committed raft index. Any number of
/// threads read it; it lives while a request holds it.
#[derive(Debug)]
pub struct View {
    tree: Tree,
    index: u64,
    /// The raft index and term of the last entry applied to this version.
    pub raft_index: u64,
    pub raft_term: u64,
    stats: StoreStats,
    auth: Arc<AuthState>,
}

/// What the applier shares with every shard: the newest [`View`] and the event history.
#[derive(Debug)]
pub struct Published {
    view: ArcSwap<View>,
    history: RwLock<EventHistory>,
}

/// How a watch starts.
#[derive(Debug)]
pub enum WatchStart {
    /// The history already holds a matching event (its `etcd_index` is the index the watch
    /// was answered at).
    Ready(Arc<Event>),
    /// Nothing yet: watch the clean `path` for events from `since` on.
    Waiting { path: String, since: u64 },
}

impl Published {
    /// An empty key space at index 0 whose history keeps `history_capacity` events (etcd:
    /// 1000).
    pub fn new(history_capacity: usize) -> Arc<Published> {
        Arc::new(Published {
            view: ArcSwap::from_pointee(View {
                tree: Tree::default(),
                index: 0,
                raft_index: 0,
                raft_term: 0,
                stats: StoreStats::default(),
                auth: Arc::default(),
            }),
            history: RwLock::new(EventHistory::new(history_capacity)),
        })
    }

    /// The newest version, for as long as the caller holds it. Lock-free; hold it briefly (a
    /// shard has a few slots for cheap guards, then loads fall back to reference counting).
    pub fn view(&self) -> arc_swap::Guard<Arc<View>> {
        self.view.load()
    }

    /// The newest version as an owned reference (for holding across awaits).
    pub fn view_owned(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// How many events the watch history keeps.
    pub fn history_capacity(&self) -> usize {
        self.history().capacity()
    }

    fn history(&self) -> std::sync::RwLockReadGuard<'_, EventHistory> {
        self.history.read().unwrap_or_else(|p| p.into_inner())
    }

    fn history_mut(&self) -> std::sync::RwLockWriteGuard<'_, EventHistory> {
        self.history.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The start of a watch (wait=true) as seen at store index `at`, which must be published
    /// (the history holds every event up to it). `since`: waitIndex if given (0 counts as not
    /// given). `Ready(event)` if the history has a matching event in `since..=at`;
    /// `Err(401 EventIndexCleared)` if `since` is older than the history; otherwise
    /// `Waiting` from `since` (or `at + 1`): the caller registers a watcher and matches the
    /// changes after `at`.
    pub fn watch_start(
        &self,
        key: &str,
        recursive: bool,
        since: Option<u64>,
        at: u64,
    ) -> Result<WatchStart, Error> {
        let path = path::clean(key);
        let since = since.filter(|&since| since != 0).unwrap_or(at + 1);
        match self.history().scan(&path, recursive, since, at) {
            Err(cleared) => Err(Error::new(
                Code::EventIndexCleared,
                format!(
                    "the requested history has been cleared [{}/{}]",
                    cleared.start_index, since
                ),
                at,
            )),
            Ok(Some(event)) => {
                let mut replayed = (*event).clone();
                replayed.etcd_index = at;
                Ok(WatchStart::Ready(Arc::new(replayed)))
            }
            Ok(None) => Ok(WatchStart::Waiting { path, since }),
        }
    }

    /// The newest version with the history events up to it: everything a snapshot holds,
    /// to encode anywhere ([`Snapshot::encode`]) while the applier goes on.
    pub fn snapshot(&self) -> Snapshot {
        let history = self.history();
        let view = self.view_owned();
        let events = history
            .events()
            .filter(|e| e.index() <= view.index)
            .cloned()
            .collect();
        Snapshot { view, events }
    }
}

/// A published version and its history, ready to be written as bytes.
#[derive(Debug)]
pub struct Snapshot {
    view: Arc<View>,
    events: Vec<Arc<Event>>,
}

impl View {
    /// The etcd index of this version (`X-Etcd-Index`).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// GET: the node (recursive/sorted as etcd) as of this version. Children always come sorted
    /// by key, so `sorted` changes nothing.
    pub fn get(&self, key: &str, recursive: bool, _sorted: bool) -> Result<Event, Error> {
        let path = path::clean_cow(key);
        let node = self.tree.get(&path, self.index)?;
        Ok(self.get_event(node, &path, recursive))
    }

    /// The event a GET of `node` (found at `path`) answers.
    fn get_event(&self, node: &node::Node, path: &str, recursive: bool) -> Event {
        Event {
            action: Action::Get,
            node: node.listing(path, recursive),
            prev_node: None,
            etcd_index: self.index,
            refresh: false,
        }
    }

    /// GET written straight into `out`: the JSON of [`View::get`]'s event. A file (every GET
    /// of a key) is written from the tree, copying neither its key nor its value; a directory
    /// is listed first, as `get` does.
    pub fn write_get(
        &self,
        key: &str,
        recursive: bool,
        out: &mut Vec<u8>,
        now: i64,
    ) -> Result<(), Error> {
        let path = path::clean_cow(key);
        let node = self.tree.get(&path, self.index)?;
        if node.is_dir() {
            self.get_event(node, &path, recursive).write_json(out, now);
        } else {
            event::write_get_json(out, node.fields(&path), now);
        }
        Ok(())
    }

    /// The replicated auth state.
    pub fn auth(&self) -> &AuthState {
        &self.auth
    }

    /// The write counters of `/v2/stats/store` (reads and watchers are counted by shards).
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }
}

impl Store {
    /// An empty store at index 0 that publishes into `published` (and publishes its empty
    /// version at once).
    pub fn new(published: Arc<Published>) -> Store {
        let mut store = Store {
            tree: Tree::default(),
            index: 0,
            ttl: TtlIndex::default(),
            stats: StoreStats::default(),
            auth: Arc::default(),
            unpublished: Vec::new(),
            published,
        };
        store.publish(0, 0);
        store
    }

    /// Where this store publishes.
    pub fn published(&self) -> &Arc<Published> {
        &self.published
    }

    /// Makes every change applied so far visible to readers, as of raft index `raft_index`:
    /// their events enter the history, then the new version replaces the old one.
    pub fn publish(&mut self, raft_index: u64, raft_term: u64) {
        if !self.unpublished.is_empty() {
            let mut history = self.published.history_mut();
            for event in self.unpublished.drain(..) {
                history.add(event);
            }
        }
        self.published.view.store(Arc::new(View {
            tree: self.tree.clone(),
            index: self.index,
            raft_index,
            raft_term,
            stats: self.stats.clone(),
            auth: self.auth.clone(),
        }));
    }

    /// The current etcd index (`X-Etcd-Index`).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The earliest expiration of any node, so the leader knows when a `Sync` is due.
    pub fn next_expiration(&self) -> Option<i64> {
        self.ttl.first().map(|(expire_at, _)| expire_at)
    }

    /// etcd's `HasTTLKeys`: whether any node has an expiration.
    pub fn has_ttl_keys(&self) -> bool {
        !self.ttl.is_empty()
    }

    /// Applies one committed command. Deterministic: the same commands in the same order give
    /// the same results and the same state on every replica.
    pub fn apply(&mut self, command: &Command) -> Applied {
        let mut changes = Vec::new();
        let result = match command {
            Command::Set {
                key,
                value,
                dir,
                expire_at,
                refresh,
            } => {
                let result = self.set(key, value, *dir, *expire_at, *refresh, &mut changes);
                count(
                    result.is_ok(),
                    &mut self.stats.sets_success,
                    &mut self.stats.sets_fail,
                );
                Some(result)
            }
            Command::Create {
                key,
                value,
                dir,
                expire_at,
                unique,
            } => {
                let result = self.create(key, value, *dir, *expire_at, *unique, &mut changes);
                count(
                    result.is_ok(),
                    &mut self.stats.create_success,
                    &mut self.stats.create_fail,
                );
                Some(result)
            }
            Command::Update {
                key,
                value,
                dir: _,
                expire_at,
                refresh,
            } => {
                let result = self.update(key, value.as_deref(), *expire_at, *refresh, &mut changes);
                count(
                    result.is_ok(),
                    &mut self.stats.update_success,
                    &mut self.stats.update_fail,
                );
                Some(result)
            }
            Command::CompareAndSwap {
                key,
                value,
                prev_value,
                prev_index,
                expire_at,
                refresh,
            } => {
                let condition = apply::Condition::new(prev_value.as_deref(), *prev_index);
                let result = self.compare_and_swap(
                    key,
                    value,
                    condition,
                    *expire_at,
                    *refresh,
                    &mut changes,
                );
                count(
                    result.is_ok(),
                    &mut self.stats.compare_and_swap_success,
                    &mut self.stats.compare_and_swap_fail,
                );
                Some(result)
            }
            Command::Delete {
                key,
                dir,
                recursive,
            } => {
                let result = self.delete(key, *dir, *recursive, &mut changes);
                count(
                    result.is_ok(),
                    &mut self.stats.delete_success,
                    &mut self.stats.delete_fail,
                );
                Some(result)
            }
            Command::CompareAndDelete {
                key,
                prev_value,
                prev_index,
            } => {
                let condition = apply::Condition::new(prev_value.as_deref(), *prev_index);
                let result = self.compare_and_delete(key, condition, &mut changes);
                count(
                    result.is_ok(),
                    &mut self.stats.compare_and_delete_success,
                    &mut self.stats.compare_and_delete_fail,
                );
                Some(result)
            }
            Command::Sync { now } => {
                self.expire(*now, &mut changes);
                None
            }
            Command::Auth(change) => Some(self.apply_auth(change)),
        };
        Applied { result, changes }
    }

    /// The replicated auth state.
    pub fn auth(&self) -> &AuthState {
        &self.auth
    }

    /// An auth change takes an index, as etcd's write under `/2` does; its event (for the
    /// proposer only: it enters no history and fires no watcher) names that path.
    fn apply_auth(&mut self, change: &AuthChange) -> Result<Arc<Event>, Error> {
        let path = AuthState::path_of(change);
        match Arc::make_mut(&mut self.auth).apply(change) {
            Ok(()) => {
                self.index += 1;
                let deleted = matches!(
                    change,
                    AuthChange::DeleteUser(_) | AuthChange::DeleteRole(_)
                );
                Ok(Arc::new(Event {
                    action: if deleted { Action::Delete } else { Action::Set },
                    node: NodeView {
                        key: path,
                        value: None,
                        dir: false,
                        expire_at: None,
                        nodes: None,
                        modified_index: self.index,
                        created_index: self.index,
                    },
                    prev_node: None,
                    etcd_index: self.index,
                    refresh: false,
                }))
            }
            Err(ChangeError::Exists) => Err(Error::new(Code::NodeExist, path, self.index)),
            Err(ChangeError::Missing) => Err(Error::new(Code::KeyNotFound, path, self.index)),
        }
    }

    /// The write counters of `/v2/stats/store`.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }
}

fn count(ok: bool, success: &mut u64, fail: &mut u64) {
    if ok {
        *success += 1;
    } else {
        *fail += 1;
    }
}
