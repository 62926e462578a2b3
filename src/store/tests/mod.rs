//! Store-level tests: what a client of etcd's v2 API would see (results, errors, JSON bytes,
//! watch deliveries), plus snapshot and replica-determinism checks.

mod json;
mod operations;
mod property;
mod snapshots;
mod watches;

use std::sync::Arc;

use super::{Command, DecodeError, Event, Fired, Published, Store, StoreStats};
use super::{WatcherHub, WatcherId};
use crate::error::{Code, Error};

/// One member's store as its clients meet it: the applier, publishing after every command, and
/// one shard's watcher hub matching the published changes.
#[derive(Debug)]
pub struct Replica {
    pub store: Store,
    hub: WatcherHub,
    gets: (u64, u64),
    raft_index: u64,
}

/// What applying one command showed: the proposer's result and the watchers it fired.
#[derive(Debug)]
pub struct Applied {
    pub result: Option<Result<Arc<Event>, Error>>,
    pub fired: Fired,
}

/// How a watch on a [`Replica`] starts.
#[derive(Debug)]
pub enum WatchStart {
    Ready(Arc<Event>),
    Waiting(WatcherId),
}

impl Replica {
    pub fn new(history_capacity: usize) -> Replica {
        Replica::of(Store::new(Published::new(history_capacity)))
    }

    pub fn restore(bytes: &[u8], history_capacity: usize) -> Result<Replica, DecodeError> {
        Store::restore(bytes, Published::new(history_capacity), 0, 0).map(Replica::of)
    }

    fn of(store: Store) -> Replica {
        Replica {
            store,
            hub: WatcherHub::default(),
            gets: (0, 0),
            raft_index: 0,
        }
    }

    pub fn apply(&mut self, command: &Command) -> Applied {
        let applied = self.store.apply(command);
        self.raft_index += 1;
        self.store.publish(self.raft_index, 1);
        let mut fired = Fired::new();
        for change in &applied.changes {
            self.hub.fire(change, &mut fired);
        }
        Applied {
            result: applied.result,
            fired,
        }
    }

    /// A GET of the newest published version, counted as a shard counts it.
    pub fn get(&mut self, key: &str, recursive: bool, sorted: bool) -> Result<Event, Error> {
        let view = self.store.published().view();
        let result = view.get(key, recursive, sorted);
        // Every GET of these tests also checks the writer the keys API answers GETs with.
        let now = T0 + SECOND / 3;
        let mut direct = Vec::new();
        match (&result, view.write_get(key, recursive, &mut direct, now)) {
            (Ok(event), Ok(())) => assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&event.to_json(now)),
                "GET {key} recursive={recursive}"
            ),
            (Err(e), Err(direct_e)) => assert_eq!(e, &direct_e, "GET {key}"),
            (get, write_get) => panic!("GET {key}: get {get:?}, write_get {write_get:?}"),
        }
        if result.is_ok() {
            self.gets.0 += 1;
        } else {
            self.gets.1 += 1;
        }
        result
    }

    pub fn watch(
        &mut self,
        key: &str,
        recursive: bool,
        stream: bool,
        since: Option<u64>,
    ) -> Result<WatchStart, Error> {
        let at = self.store.index();
        Ok(
            match self
                .store
                .published()
                .watch_start(key, recursive, since, at)?
            {
                super::WatchStart::Ready(event) => WatchStart::Ready(event),
                super::WatchStart::Waiting { path, since } => {
                    WatchStart::Waiting(self.hub.add(path, recursive, stream, since))
                }
            },
        )
    }

    pub fn unwatch(&mut self, id: WatcherId) {
        self.hub.remove(id);
    }

    pub fn watcher_count(&self) -> usize {
        self.hub.len()
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.store.published().snapshot().encode()
    }

    /// The counters of `/v2/stats/store`: the applier's writes and this replica's reads.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            gets_success: self.gets.0,
            gets_fail: self.gets.1,
            ..self.store.stats().clone()
        }
    }
}

impl std::ops::Deref for Replica {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

pub const SECOND: i64 = 1_000_000_000;
/// 2026-11-23T20:12:49Z.
pub const T0: i64 = 1_795_464_769 * SECOND;

pub fn set(key: &str, value: &str) -> Command {
    Command::Set {
        key: key.into(),
        value: value.into(),
        dir: false,
        expire_at: None,
        refresh: false,
    }
}

pub fn set_ttl(key: &str, value: &str, expire_at: i64) -> Command {
    Command::Set {
        key: key.into(),
        value: value.into(),
        dir: false,
        expire_at: Some(expire_at),
        refresh: false,
    }
}

pub fn mkdir(key: &str) -> Command {
    Command::Set {
        key: key.into(),
        value: String::new(),
        dir: true,
        expire_at: None,
        refresh: false,
    }
}

pub fn create(key: &str, value: &str) -> Command {
    Command::Create {
        key: key.into(),
        value: value.into(),
        dir: false,
        expire_at: None,
        unique: false,
    }
}

pub fn update(key: &str, value: &str) -> Command {
    Command::Update {
        key: key.into(),
        value: Some(value.into()),
        dir: false,
        expire_at: None,
        refresh: false,
    }
}

pub fn cas(key: &str, value: &str, prev_value: Option<&str>, prev_index: Option<u64>) -> Command {
    Command::CompareAndSwap {
        key: key.into(),
        value: value.into(),
        prev_value: prev_value.map(Into::into),
        prev_index,
        expire_at: None,
        refresh: false,
    }
}

pub fn delete(key: &str, dir: bool, recursive: bool) -> Command {
    Command::Delete {
        key: key.into(),
        dir,
        recursive,
    }
}

pub fn cad(key: &str, prev_value: Option<&str>, prev_index: Option<u64>) -> Command {
    Command::CompareAndDelete {
        key: key.into(),
        prev_value: prev_value.map(Into::into),
        prev_index,
    }
}

/// Applies a command that must succeed and returns its event.
pub fn ok(store: &mut Replica, command: Command) -> Arc<Event> {
    match store.apply(&command).result {
        Some(Ok(event)) => event,
        other => panic!("{command:?} should succeed, got {other:?}"),
    }
}

/// Applies a command that must fail, checks the index did not move, returns the error.
pub fn fails(store: &mut Replica, command: Command) -> Error {
    let before = store.index();
    let Applied { result, fired } = store.apply(&command);
    assert_eq!(
        store.index(),
        before,
        "a failed {command:?} must not advance the index"
    );
    assert!(fired.is_empty());
    match result {
        Some(Err(error)) => error,
        other => panic!("{command:?} should fail, got {other:?}"),
    }
}

pub fn assert_error(error: &Error, code: Code, cause: &str, index: u64) {
    assert_eq!(
        (error.code, error.cause.as_str(), error.index),
        (code, cause, index),
        "{error}"
    );
}

/// The event's JSON as etcd would send it at `now`.
pub fn json(event: &Event, now: i64) -> String {
    String::from_utf8(event.to_json(now)).expect("JSON is UTF-8")
}

/// The keys of a listing, in order.
pub fn listed_keys(event: &Event) -> Vec<String> {
    event
        .node
        .nodes
        .iter()
        .flatten()
        .map(|node| node.key.clone())
        .collect()
}
