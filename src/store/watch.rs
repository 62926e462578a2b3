//! Live watchers (etcd's `watcher` and `watcherHub`): who is waiting on which path, and which of
//! them an event fires. Each shard keeps its own hub for its own connections' watches and
//! matches every published [`Change`] against it.
//!
//! Owns the firing rules: a watcher at path P hears an event at P, below P when recursive
//! (unless hidden from P), and, when a directory is removed, every node removed with it.
//! One-shot watchers leave the hub when they fire; stream watchers stay. Knows nothing about the
//! tree or the history; delivering an event (channels, HTTP) is the caller's business: firing
//! only reports `(WatcherId, event)` pairs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::event::Event;
use super::path;
use super::Change;

/// Names one registered watcher of one hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherId(pub u64);

/// What one apply fired, in firing order. A stream watcher can appear twice for one event, as in
/// etcd (a stream watcher on a deleted node hears both the removal and the event itself).
pub type Fired = Vec<(WatcherId, Arc<Event>)>;

#[derive(Debug, Clone)]
struct Watcher {
    id: WatcherId,
    recursive: bool,
    stream: bool,
    /// Only events at this index or later fire the watcher.
    since_index: u64,
}

#[derive(Debug, Default)]
pub struct WatcherHub {
    /// Watchers by watched path, each list in registration order.
    by_path: BTreeMap<String, Vec<Watcher>>,
    path_of: HashMap<WatcherId, String>,
    next_id: u64,
}

impl WatcherHub {
    /// Registers a watcher on a clean path.
    pub fn add(
        &mut self,
        path: String,
        recursive: bool,
        stream: bool,
        since_index: u64,
    ) -> WatcherId {
        self.next_id += 1;
        let id = WatcherId(self.next_id);
        self.path_of.insert(id, path.clone());
        self.by_path.entry(path).or_default().push(Watcher {
            id,
            recursive,
            stream,
            since_index,
        });
        id
    }

    /// Removes a watcher; unknown or already removed ids are ignored.
    pub fn remove(&mut self, id: WatcherId) {
        let Some(path) = self.path_of.remove(&id) else {
            return;
        };
        if let Some(list) = self.by_path.get_mut(&path) {
            list.retain(|watcher| watcher.id != id);
            if list.is_empty() {
                self.by_path.remove(&path);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.path_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.path_of.is_empty()
    }

    /// Offers one published change: first to the watchers of every node it removed (children
    /// before parents, as etcd's `Remove` callback), then as [`WatcherHub::notify`] does.
    pub fn fire(&mut self, change: &Change, fired: &mut Fired) {
        if self.is_empty() {
            return;
        }
        for removed in &change.removed {
            self.notify_path(&change.event, removed, true, fired);
        }
        self.notify(&change.event, fired);
    }

    /// etcd's `watcherHub.notify`: offers the event to the watchers of `/`, of every directory
    /// above the event's key, and of the key itself, in that order.
    pub fn notify(&mut self, event: &Arc<Event>, fired: &mut Fired) {
        let key = event.node.key.as_str();
        self.notify_path(event, "/", false, fired);
        for (at, byte) in key.bytes().enumerate().skip(1) {
            if byte == b'/' {
                self.notify_path(event, &key[..at], false, fired);
            }
        }
        if key.len() > 1 {
            self.notify_path(event, key, false, fired);
        }
    }

    /// etcd's `notifyWatchers`: offers the event to the watchers of one path. `deleted` marks a
    /// node removed by the event (it fires even non-recursive watchers).
    pub fn notify_path(
        &mut self,
        event: &Arc<Event>,
        watched: &str,
        deleted: bool,
        fired: &mut Fired,
    ) {
        let Some(list) = self.by_path.get_mut(watched) else {
            return;
        };
        let at_event_key = event.node.key == watched;
        if !at_event_key && path::is_hidden(watched, &event.node.key) {
            return;
        }
        let index = event.index();
        let path_of = &mut self.path_of;
        list.retain(|watcher| {
            let interested =
                (watcher.recursive || at_event_key || deleted) && index >= watcher.since_index;
            if !interested {
                return true;
            }
            fired.push((watcher.id, event.clone()));
            if watcher.stream {
                return true;
            }
            path_of.remove(&watcher.id);
            false
        });
        if list.is_empty() {
            self.by_path.remove(watched);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::{Action, NodeView};

    fn set_event(key: &str, index: u64) -> Arc<Event> {
        Arc::new(Event {
            action: Action::Set,
            node: NodeView {
                key: key.into(),
                value: Some("v".into()),
                modified_index: index,
                created_index: index,
                ..NodeView::default()
            },
            prev_node: None,
            etcd_index: index,
            refresh: false,
        })
    }

    fn fire(hub: &mut WatcherHub, key: &str, index: u64) -> Vec<WatcherId> {
        let mut fired = Fired::new();
        hub.notify(&set_event(key, index), &mut fired);
        fired.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn fires_root_to_leaf_and_removes_one_shot_watchers() {
        let mut hub = WatcherHub::default();
        let exact = hub.add("/a/b".into(), false, false, 1);
        let parent = hub.add("/a".into(), true, false, 1);
        let root = hub.add("/".into(), true, true, 1);
        let deaf = hub.add("/a".into(), false, false, 1);
        assert_eq!(fire(&mut hub, "/a/b", 1), [root, parent, exact]);
        assert_eq!(hub.len(), 2);
        assert_eq!(fire(&mut hub, "/a/b", 2), [root]);
        hub.remove(deaf);
        hub.remove(deaf);
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn hidden_children_do_not_fire_parents() {
        let mut hub = WatcherHub::default();
        let parent = hub.add("/a".into(), true, false, 1);
        let hidden = hub.add("/a/_h".into(), false, false, 1);
        assert_eq!(fire(&mut hub, "/a/_h", 1), [hidden]);
        assert_eq!(fire(&mut hub, "/a/x", 2), [parent]);
    }

    #[test]
    fn since_index_holds_back_earlier_events() {
        let mut hub = WatcherHub::default();
        let later = hub.add("/a".into(), false, false, 5);
        assert!(fire(&mut hub, "/a", 4).is_empty());
        assert_eq!(fire(&mut hub, "/a", 5), [later]);
    }
}
