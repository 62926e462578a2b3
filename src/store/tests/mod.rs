//! Store-level tests: what a client of etcd's v2 API would see (results, errors, JSON bytes,
//! watch deliveries), plus snapshot and replica-determinism checks.

mod json;
mod operations;
mod property;
mod snapshots;
mod watches;

use std::rc::Rc;

use super::{Applied, Command, Event, Store};
use crate::error::{Code, Error};

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
pub fn ok(store: &mut Store, command: Command) -> Rc<Event> {
    match store.apply(&command).result {
        Some(Ok(event)) => event,
        other => panic!("{command:?} should succeed, got {other:?}"),
    }
}

/// Applies a command that must fail, checks the index did not move, returns the error.
pub fn fails(store: &mut Store, command: Command) -> Error {
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
