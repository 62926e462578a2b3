//! The event history (etcd's `EventHistory` over its `eventQueue`): the last `capacity` events,
//! oldest first, and the scan a watch with `waitIndex` does over them.
//!
//! Owns which past event answers a watch. Knows nothing about live watchers or the tree. Every
//! successful change (refreshes included) adds exactly one event, so the history's indexes are
//! consecutive.

use std::collections::VecDeque;
use std::sync::Arc;

use super::event::{Action, Event};

#[derive(Debug, Clone)]
pub struct EventHistory {
    capacity: usize,
    events: VecDeque<Arc<Event>>,
    /// Index of the oldest kept event (0 while empty), as etcd's `StartIndex`.
    start_index: u64,
    /// Index of the newest event (0 while empty), as etcd's `LastIndex`.
    last_index: u64,
}

/// Why a scan cannot answer: the wanted index is older than everything kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleared {
    pub start_index: u64,
}

impl EventHistory {
    /// A history that keeps the last `capacity` events (at least one).
    pub fn new(capacity: usize) -> EventHistory {
        let capacity = capacity.max(1);
        EventHistory {
            capacity,
            events: VecDeque::with_capacity(capacity.min(4096)),
            start_index: 0,
            last_index: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn add(&mut self, event: Arc<Event>) {
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.last_index = event.index();
        self.events.push_back(event);
        self.start_index = self.events.front().map_or(0, |oldest| oldest.index());
    }

    /// Oldest first.
    pub fn events(&self) -> impl Iterator<Item = &Arc<Event>> {
        self.events.iter()
    }

    /// etcd's `EventHistory.scan`: the first event in `since..=upto` that concerns `key`:
    /// the key itself, anything below it when `recursive`, or (for a delete or expire of a
    /// directory) any key the directory's path is a prefix of. Refresh events are skipped. As in
    /// etcd, hidden keys are not filtered here, and the directory test is a plain string prefix.
    /// `Ok(None)` when nothing matches yet (or `since` is in the future). `upto` bounds the
    /// scan to what the scanning reader has been shown (the history may already hold newer
    /// events than that).
    pub fn scan(
        &self,
        key: &str,
        recursive: bool,
        since: u64,
        upto: u64,
    ) -> Result<Option<Arc<Event>>, Cleared> {
        if since < self.start_index {
            return Err(Cleared {
                start_index: self.start_index,
            });
        }
        if since > self.last_index.min(upto) {
            return Ok(None);
        }
        let key_as_dir = if key.ends_with('/') {
            key.to_string()
        } else {
            format!("{key}/")
        };
        let skip = usize::try_from(since - self.start_index).unwrap_or(usize::MAX);
        let found = self
            .events
            .iter()
            .skip(skip)
            .take_while(|event| event.index() <= upto)
            .find(|event| {
                if event.refresh {
                    return false;
                }
                let node_key = event.node.key.as_str();
                let mut concerns =
                    node_key == key || (recursive && node_key.starts_with(&key_as_dir));
                if matches!(event.action, Action::Delete | Action::Expire) {
                    if let Some(prev) = event.prev_node.as_ref().filter(|prev| prev.dir) {
                        concerns = concerns || key.starts_with(&prev.key);
                    }
                }
                concerns
            });
        Ok(found.cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::NodeView;

    fn event(action: Action, key: &str, index: u64, prev_dir: Option<&str>) -> Arc<Event> {
        Arc::new(Event {
            action,
            node: NodeView {
                key: key.into(),
                modified_index: index,
                created_index: 1,
                ..NodeView::default()
            },
            prev_node: prev_dir.map(|k| NodeView {
                key: k.into(),
                dir: true,
                ..NodeView::default()
            }),
            etcd_index: index,
            refresh: false,
        })
    }

    #[test]
    fn keeps_the_last_capacity_events() {
        let mut history = EventHistory::new(3);
        for i in 1..=5 {
            history.add(event(Action::Set, "/a", i, None));
        }
        let kept: Vec<u64> = history.events().map(|e| e.index()).collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!(
            history.scan("/a", false, 2, u64::MAX),
            Err(Cleared { start_index: 3 })
        );
        assert_eq!(
            history
                .scan("/a", false, 4, u64::MAX)
                .unwrap()
                .unwrap()
                .index(),
            4
        );
        assert!(history.scan("/a", false, 6, u64::MAX).unwrap().is_none());
        assert!(
            history.scan("/a", false, 4, 3).unwrap().is_none(),
            "4 is beyond upto"
        );
        assert_eq!(history.scan("/a", false, 3, 4).unwrap().unwrap().index(), 3);
    }

    #[test]
    fn scan_matches_exact_recursive_and_deleted_parent() {
        let mut history = EventHistory::new(10);
        history.add(event(Action::Set, "/a/b", 1, None));
        history.add(event(Action::Set, "/ab", 2, None));
        history.add(event(Action::Delete, "/a", 3, Some("/a")));
        assert_eq!(
            history
                .scan("/a", true, 1, u64::MAX)
                .unwrap()
                .unwrap()
                .index(),
            1
        );
        assert_eq!(
            history
                .scan("/a", false, 1, u64::MAX)
                .unwrap()
                .unwrap()
                .index(),
            3
        );
        assert_eq!(
            history
                .scan("/a/b/c", false, 2, u64::MAX)
                .unwrap()
                .unwrap()
                .index(),
            3
        );
        // etcd's prefix test is on the raw string: "/ab" starts with "/a".
        assert_eq!(
            history
                .scan("/ab", false, 3, u64::MAX)
                .unwrap()
                .unwrap()
                .index(),
            3
        );
        assert_eq!(
            history
                .scan("/", true, 1, u64::MAX)
                .unwrap()
                .unwrap()
                .index(),
            1
        );
    }

    #[test]
    fn scan_skips_refreshes() {
        let mut history = EventHistory::new(10);
        let mut refresh = (*event(Action::Set, "/a", 1, None)).clone();
        refresh.refresh = true;
        history.add(Arc::new(refresh));
        assert!(history.scan("/a", false, 1, u64::MAX).unwrap().is_none());
    }
}
