//! The v2 key space as a deterministic state machine: etcd v2.3's `store` package in Rust.
//!
//! Every shard keeps a [`Store`] replica and applies the same committed [`Command`]s in the same
//! order, so replicas stay byte-identical (see [`Store::snapshot`]). There is no clock, no
//! randomness and no I/O here: times arrive inside commands (absolute expirations chosen by the
//! proposer, and [`Command::Sync`] from the raft leader, which expires keys). Reads
//! ([`Store::get`]) and watch registration ([`Store::watch`]) act on the local replica only.
//!
//! Layout, one concern per file:
//! - `command`: the mutations and their binary encoding;
//! - `apply`: what each mutation does (etcd's `store.go`: errors, indexes, events, stats);
//! - `node`: the tree and its walks; `path`: key cleaning and the hidden-key rule;
//! - `event`: events, node views and their exact JSON;
//! - `history`: the last N events, for `waitIndex`; `watch`: live watchers and firing rules;
//! - `ttl`: expiration order; `stats`: the `/v2/stats/store` counters;
//! - `snapshot`: the replica's state as bytes (byte helpers in [`crate::codec`]).
//!
//! This module knows nothing about HTTP, raft or delivery of fired events: it hands back
//! [`Applied`] (the caller's result plus the watchers to wake) and lets the caller deliver.

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

use std::rc::Rc;

use crate::auth::state::{AuthChange, AuthState, ChangeError};
use crate::error::{Code, Error};

pub use crate::codec::DecodeError;
pub use command::Command;
pub use event::{Action, Event, NodeView};
pub use stats::StoreStats;
pub use watch::WatcherId;

use history::EventHistory;
use node::Tree;
use ttl::TtlIndex;
use watch::WatcherHub;

/// One replica of the v2 key space.
#[derive(Debug)]
pub struct Store {
    tree: Tree,
    /// The etcd index: bumped once by every successful change (failures leave it alone).
    index: u64,
    ttl: TtlIndex,
    history: EventHistory,
    watchers: WatcherHub,
    stats: StoreStats,
    /// Users, roles and the auth switch (etcd's `/2` keys), outside the key space.
    auth: AuthState,
}

/// How a watch starts.
#[derive(Debug)]
pub enum WatchStart {
    /// The history already holds a matching event (its `etcd_index` is the current index).
    Ready(Rc<Event>),
    /// A watcher is registered; its events come back in [`Applied::fired`].
    Waiting(WatcherId),
}

/// What applying one command produced.
#[derive(Debug)]
pub struct Applied {
    /// None for Sync. Some(Err) when the command failed (failed commands do NOT advance the index,
    /// as in etcd).
    pub result: Option<Result<Rc<Event>, Error>>,
    /// Watchers fired by this apply, in firing order (one-shot watchers are already removed from
    /// the hub). A stream watcher may appear twice for one event, as in etcd.
    pub fired: Vec<(WatcherId, Rc<Event>)>,
}

impl Store {
    /// An empty store at index 0 whose history keeps `history_capacity` events (etcd: 1000).
    pub fn new(history_capacity: usize) -> Store {
        Store {
            tree: Tree::default(),
            index: 0,
            ttl: TtlIndex::default(),
            history: EventHistory::new(history_capacity),
            watchers: WatcherHub::default(),
            stats: StoreStats::default(),
            auth: AuthState::default(),
        }
    }

    /// How many events the watch history keeps.
    pub fn history_capacity(&self) -> usize {
        self.history.capacity()
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
        let mut fired = Vec::new();
        let result = match command {
            Command::Set {
                key,
                value,
                dir,
                expire_at,
                refresh,
            } => {
                let result = self.set(key, value, *dir, *expire_at, *refresh, &mut fired);
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
                let result = self.create(key, value, *dir, *expire_at, *unique, &mut fired);
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
                let result = self.update(key, value.as_deref(), *expire_at, *refresh, &mut fired);
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
                let result =
                    self.compare_and_swap(key, value, condition, *expire_at, *refresh, &mut fired);
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
                let result = self.delete(key, *dir, *recursive, &mut fired);
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
                let result = self.compare_and_delete(key, condition, &mut fired);
                count(
                    result.is_ok(),
                    &mut self.stats.compare_and_delete_success,
                    &mut self.stats.compare_and_delete_fail,
                );
                Some(result)
            }
            Command::Sync { now } => {
                self.expire(*now, &mut fired);
                None
            }
            Command::Auth(change) => Some(self.apply_auth(change)),
        };
        Applied { result, fired }
    }

    /// The replicated auth state.
    pub fn auth(&self) -> &AuthState {
        &self.auth
    }

    /// An auth change takes an index, as etcd's write under `/2` does; its event (for the
    /// proposer only: it enters no history and fires no watcher) names that path.
    fn apply_auth(&mut self, change: &AuthChange) -> Result<Rc<Event>, Error> {
        let path = AuthState::path_of(change);
        match self.auth.apply(change) {
            Ok(()) => {
                self.index += 1;
                let deleted = matches!(
                    change,
                    AuthChange::DeleteUser(_) | AuthChange::DeleteRole(_)
                );
                Ok(Rc::new(Event {
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

    /// GET: clones out the node (recursive/sorted as etcd). Counts getsSuccess/getsFail.
    /// Children always come sorted by key, so `sorted` changes nothing.
    pub fn get(&mut self, key: &str, recursive: bool, _sorted: bool) -> Result<Event, Error> {
        let path = path::clean(key);
        let found = self
            .tree
            .get(&path, self.index)
            .map(|node| node.listing(recursive));
        count(
            found.is_ok(),
            &mut self.stats.gets_success,
            &mut self.stats.gets_fail,
        );
        let node = found?;
        Ok(Event {
            action: Action::Get,
            node,
            prev_node: None,
            etcd_index: self.index,
            refresh: false,
        })
    }

    /// wait=true. `since`: waitIndex if given (0 counts as not given). `Ready(event)` if the
    /// history already has a matching event at index >= since; `Err(401 EventIndexCleared)` if
    /// since is older than the history; otherwise registers a watcher and returns
    /// `Waiting(id)`. Stream watchers stay registered after firing.
    pub fn watch(
        &mut self,
        key: &str,
        recursive: bool,
        stream: bool,
        since: Option<u64>,
    ) -> Result<WatchStart, Error> {
        let path = path::clean(key);
        let since = since.filter(|&since| since != 0).unwrap_or(self.index + 1);
        match self.history.scan(&path, recursive, since) {
            Err(cleared) => Err(Error::new(
                Code::EventIndexCleared,
                format!(
                    "the requested history has been cleared [{}/{}]",
                    cleared.start_index, since
                ),
                self.index,
            )),
            Ok(Some(event)) => {
                let mut replayed = (*event).clone();
                replayed.etcd_index = self.index;
                Ok(WatchStart::Ready(Rc::new(replayed)))
            }
            Ok(None) => Ok(WatchStart::Waiting(
                self.watchers.add(path, recursive, stream, since),
            )),
        }
    }

    /// Removes a watcher; idempotent.
    pub fn unwatch(&mut self, id: WatcherId) {
        self.watchers.remove(id);
    }

    pub fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    /// The counters of `/v2/stats/store` (without `watchers`, see [`Store::watcher_count`]).
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
