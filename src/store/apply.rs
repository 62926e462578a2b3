//! What each mutation does to the replica, following etcd v2's `store.go` step by step: which
//! error wins (and with which cause and index), which index and event a success produces, what
//! the TTL index and the history learn, and which watchers fire.
//!
//! Counting success/failure in the stats is the caller's ([`Store::apply`]), except etcd's extra
//! `setsFail` when a create meets a file on its way. Knows nothing about encoding or HTTP.

use std::sync::Arc;

use super::event::{Action, Event, NodeView};
use super::node::{Content, Node};
use super::path;
use super::{Change, Store};
use crate::error::{Code, Error};

/// Expirations before 2000-01-01T00:00:00Z mean "permanent" on create, as in etcd (which treats
/// them as a zero time that went through JSON).
const MIN_EXPIRE_AT: i64 = 946_684_800_000_000_000;

/// The test of a compare-and-swap or compare-and-delete. An empty value or a zero index is "not
/// given" and always matches, as in etcd.
#[derive(Debug, Clone, Copy)]
pub struct Condition<'a> {
    prev_value: &'a str,
    prev_index: u64,
}

impl<'a> Condition<'a> {
    pub fn new(prev_value: Option<&'a str>, prev_index: Option<u64>) -> Condition<'a> {
        Condition {
            prev_value: prev_value.unwrap_or(""),
            prev_index: prev_index.unwrap_or(0),
        }
    }

    /// `None` when the node passes; otherwise etcd's `getCompareFailCause`.
    fn failure(&self, node: &Node) -> Option<String> {
        let value_matches = self.prev_value.is_empty() || node.value() == self.prev_value;
        let index_matches = self.prev_index == 0 || node.modified_index == self.prev_index;
        let value_cause = || format!("[{} != {}]", self.prev_value, node.value());
        let index_cause = || format!("[{} != {}]", self.prev_index, node.modified_index);
        match (value_matches, index_matches) {
            (true, true) => None,
            (false, true) => Some(value_cause()),
            (true, false) => Some(index_cause()),
            (false, false) => Some(format!("{} {}", value_cause(), index_cause())),
        }
    }
}

/// How a create treats an existing node at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// Fail with 105 NodeExist (create).
    Refuse,
    /// Replace a file, fail with 102 NotFile on a directory (set).
    ReplaceFile,
}

impl Store {
    /// etcd's `Set`: create or replace. A refresh keeps the current value and fires nobody.
    pub(super) fn set(
        &mut self,
        key: &str,
        value: &str,
        dir: bool,
        expire_at: Option<i64>,
        refresh: bool,
        changes: &mut Vec<Change>,
    ) -> Result<Arc<Event>, Error> {
        let path = path::clean(key);
        let current_value = match self.tree.get(&path, self.index) {
            Ok(node) => Some(node.value().to_string()),
            Err(error) if error.code == Code::KeyNotFound && !refresh => None,
            Err(error) => return Err(error),
        };
        let value = match (refresh, current_value) {
            (true, Some(current)) => current,
            _ => value.to_string(),
        };
        let mut event = self.create_node(
            &path,
            dir,
            value,
            expire_at,
            Existing::ReplaceFile,
            Action::Set,
        )?;
        event.refresh = refresh;
        Ok(self.record(event, changes))
    }

    /// etcd's `Create`: fails when the node exists; `unique` names it after the new index.
    pub(super) fn create(
        &mut self,
        key: &str,
        value: &str,
        dir: bool,
        expire_at: Option<i64>,
        unique: bool,
        changes: &mut Vec<Change>,
    ) -> Result<Arc<Event>, Error> {
        let path = if unique {
            path::clean(&format!("{key}/{:020}", self.index + 1))
        } else {
            path::clean(key)
        };
        let event = self.create_node(
            &path,
            dir,
            value.to_string(),
            expire_at,
            Existing::Refuse,
            Action::Create,
        )?;
        Ok(self.record(event, changes))
    }

    /// etcd's `internalCreate` on a clean path: makes missing parents, then the node.
    fn create_node(
        &mut self,
        path: &str,
        dir: bool,
        value: String,
        expire_at: Option<i64>,
        existing: Existing,
        action: Action,
    ) -> Result<Event, Error> {
        let current_index = self.index;
        let next_index = current_index + 1;
        if path == "/" {
            return Err(Error::new(Code::RootReadOnly, "/", current_index));
        }
        let expire_at = expire_at.filter(|&at| at >= MIN_EXPIRE_AT);
        let (parent_path, name) = path::split(path);
        let siblings = match self.tree.make_dirs(parent_path, next_index, current_index) {
            Ok(siblings) => siblings,
            Err(error) => {
                // etcd counts this failure as a failed set too, whatever the action.
                self.stats.sets_fail += 1;
                return Err(error);
            }
        };
        let mut prev_node = None;
        if let Some(old) = siblings.get(name) {
            match existing {
                Existing::Refuse => return Err(Error::new(Code::NodeExist, path, current_index)),
                Existing::ReplaceFile if old.is_dir() => {
                    return Err(Error::new(Code::NotFile, path, current_index))
                }
                Existing::ReplaceFile => {
                    if let Some(old_expire_at) = old.expire_at {
                        self.ttl.remove(old_expire_at, path);
                    }
                    prev_node = Some(old.view(path, false));
                }
            }
        }
        let node = if dir {
            Node::new_dir(next_index, expire_at)
        } else {
            Node::new_file(&value, next_index, expire_at)
        };
        siblings.insert(name.into(), Arc::new(node));
        if let Some(at) = expire_at {
            self.ttl.insert(at, path);
        }
        self.index = next_index;
        Ok(Event {
            action,
            node: NodeView {
                key: path.to_string(),
                value: if dir { None } else { Some(value) },
                dir,
                expire_at,
                nodes: None,
                modified_index: next_index,
                created_index: next_index,
            },
            prev_node,
            etcd_index: next_index,
            refresh: false,
        })
    }

    /// etcd's `Update`: new value (files only) and new expiration (`None` makes the node
    /// permanent). On a directory only the expiration changes and, as in etcd, the directory
    /// keeps its modifiedIndex although the event shows the new index.
    pub(super) fn update(
        &mut self,
        key: &str,
        value: Option<&str>,
        expire_at: Option<i64>,
        refresh: bool,
        changes: &mut Vec<Change>,
    ) -> Result<Arc<Event>, Error> {
        let path = path::clean(key);
        let current_index = self.index;
        let next_index = current_index + 1;
        if path == "/" {
            return Err(Error::new(Code::RootReadOnly, "/", current_index));
        }
        let node = self.tree.get_mut(&path, current_index)?;
        let mut new_value = value.unwrap_or("").to_string();
        if node.is_dir() && !new_value.is_empty() {
            return Err(Error::new(Code::NotFile, path, current_index));
        }
        if refresh {
            new_value = node.value().to_string();
        }
        let prev_node = node.view(&path, false);
        if let Content::File(stored) = &mut node.content {
            *stored = new_value.as_str().into();
            node.modified_index = next_index;
        }
        let old_expire_at = std::mem::replace(&mut node.expire_at, expire_at);
        let is_dir = node.is_dir();
        let created_index = node.created_index;
        self.ttl.replace(&path, old_expire_at, expire_at);
        self.index = next_index;
        let event = Event {
            action: Action::Update,
            node: NodeView {
                key: path,
                value: if is_dir { None } else { Some(new_value) },
                dir: is_dir,
                expire_at,
                nodes: None,
                modified_index: next_index,
                created_index,
            },
            prev_node: Some(prev_node),
            etcd_index: next_index,
            refresh,
        };
        Ok(self.record(event, changes))
    }

    /// etcd's `CompareAndSwap`: files only; writes when the condition holds.
    pub(super) fn compare_and_swap(
        &mut self,
        key: &str,
        value: &str,
        condition: Condition<'_>,
        expire_at: Option<i64>,
        refresh: bool,
        changes: &mut Vec<Change>,
    ) -> Result<Arc<Event>, Error> {
        let path = path::clean(key);
        let current_index = self.index;
        let next_index = current_index + 1;
        if path == "/" {
            return Err(Error::new(Code::RootReadOnly, "/", current_index));
        }
        let node = self.tree.get_mut(&path, current_index)?;
        let Content::File(stored) = &node.content else {
            return Err(Error::new(Code::NotFile, path, current_index));
        };
        if let Some(cause) = condition.failure(node) {
            return Err(Error::new(Code::TestFailed, cause, current_index));
        }
        let new_value = if refresh {
            stored.to_string()
        } else {
            value.to_string()
        };
        let prev_node = node.view(&path, false);
        node.content = Content::File(new_value.as_str().into());
        node.modified_index = next_index;
        let old_expire_at = std::mem::replace(&mut node.expire_at, expire_at);
        let created_index = node.created_index;
        self.ttl.replace(&path, old_expire_at, expire_at);
        self.index = next_index;
        let event = Event {
            action: Action::CompareAndSwap,
            node: NodeView {
                key: path,
                value: Some(new_value),
                dir: false,
                expire_at,
                nodes: None,
                modified_index: next_index,
                created_index,
            },
            prev_node: Some(prev_node),
            etcd_index: next_index,
            refresh,
        };
        Ok(self.record(event, changes))
    }

    /// etcd's `Delete`: a file; an empty directory with `dir`; a tree with `recursive`.
    pub(super) fn delete(
        &mut self,
        key: &str,
        dir: bool,
        recursive: bool,
        changes: &mut Vec<Change>,
    ) -> Result<Arc<Event>, Error> {
        let path = path::clean(key);
        let current_index = self.index;
        if path == "/" {
            return Err(Error::new(Code::RootReadOnly, "/", current_index));
        }
        let dir = dir || recursive;
        let node = self.tree.get(&path, current_index)?;
        if let Some(children) = node.children() {
            if !dir {
                return Err(Error::new(Code::NotFile, path, current_index));
            }
            if !children.is_empty() && !recursive {
                return Err(Error::new(Code::DirNotEmpty, path, current_index));
            }
        }
        let event = removal_event(Action::Delete, node, path, current_index + 1);
        Ok(self.remove_and_record(event, changes))
    }

    /// etcd's `CompareAndDelete`: files only; removes when the condition holds.
    pub(super) fn compare_and_delete(
        &mut self,
        key: &str,
        condition: Condition<'_>,
        changes: &mut Vec<Change>,
    ) -> Result<Arc<Event>, Error> {
        let path = path::clean(key);
        let current_index = self.index;
        let node = self.tree.get(&path, current_index)?;
        if node.is_dir() {
            // etcd names the directory, except the root, whose refusal has no cause.
            let cause = if path == "/" { String::new() } else { path };
            return Err(Error::new(Code::NotFile, cause, current_index));
        }
        if let Some(cause) = condition.failure(node) {
            return Err(Error::new(Code::TestFailed, cause, current_index));
        }
        let event = removal_event(Action::CompareAndDelete, node, path, current_index + 1);
        Ok(self.remove_and_record(event, changes))
    }

    /// etcd's `DeleteExpiredKeys(now)`: every node expiring at or before `now`, earliest first,
    /// each as its own "expire" event; an expiring directory takes its subtree with it.
    pub(super) fn expire(&mut self, now: i64, changes: &mut Vec<Change>) {
        while let Some((expire_at, path)) = self.ttl.first() {
            if expire_at > now {
                break;
            }
            let path = path.to_string();
            let Ok(node) = self.tree.get(&path, self.index) else {
                // Cannot happen while the index follows the tree; drop the stray entry.
                self.ttl.remove(expire_at, &path);
                continue;
            };
            let event = removal_event(Action::Expire, node, path, self.index + 1);
            self.stats.expire_count += 1;
            self.remove_and_record(event, changes);
        }
    }

    /// Removes the event's node and subtree and records the change: watchers on every removed
    /// node hear it (children before parents, as etcd's `Remove` callback), then the usual
    /// notification.
    fn remove_and_record(&mut self, event: Event, changes: &mut Vec<Change>) -> Arc<Event> {
        let removed: Vec<String> = match self.tree.detach(&event.node.key) {
            Some(node) => node
                .post_order(&event.node.key)
                .into_iter()
                .map(|(path, expire_at)| {
                    if let Some(expire_at) = expire_at {
                        self.ttl.remove(expire_at, &path);
                    }
                    path
                })
                .collect(),
            None => Vec::new(),
        };
        self.index = event.etcd_index;
        let event = Arc::new(event);
        self.unpublished.push(event.clone());
        changes.push(Change {
            event: event.clone(),
            removed,
        });
        event
    }

    /// Records a change for the history and the watchers (a refresh fires nobody).
    fn record(&mut self, event: Event, changes: &mut Vec<Change>) -> Arc<Event> {
        let event = Arc::new(event);
        self.unpublished.push(event.clone());
        if !event.refresh {
            changes.push(Change {
                event: event.clone(),
                removed: Vec::new(),
            });
        }
        event
    }
}

/// The event of a delete, compare-and-delete or expire of `node` at `index`: the node without
/// value (a directory flagged as such), and its state before as `prevNode`.
fn removal_event(action: Action, node: &Node, path: String, index: u64) -> Event {
    let prev_node = node.view(&path, false);
    Event {
        action,
        node: NodeView {
            key: path,
            value: None,
            dir: node.is_dir(),
            expire_at: None,
            nodes: None,
            modified_index: index,
            created_index: node.created_index,
        },
        prev_node: Some(prev_node),
        etcd_index: index,
        refresh: false,
    }
}
