//! The TTL index (etcd's `ttlKeyHeap`): which nodes expire, in expiration order.
//!
//! Owns only (expiration, path) pairs, ordered by time and then by path so that ties expire in
//! the same order on every replica. Knows nothing about the tree: the store adds and removes
//! entries as nodes gain, lose or change an expiration, or leave the tree.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TtlIndex {
    entries: BTreeSet<(i64, String)>,
}

impl TtlIndex {
    pub fn insert(&mut self, expire_at: i64, path: &str) {
        self.entries.insert((expire_at, path.to_string()));
    }

    pub fn remove(&mut self, expire_at: i64, path: &str) {
        self.entries.remove(&(expire_at, path.to_string()));
    }

    /// Moves a node's entry from its old expiration to its new one (either may be `None`).
    pub fn replace(&mut self, path: &str, old: Option<i64>, new: Option<i64>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            self.remove(old, path);
        }
        if let Some(new) = new {
            self.insert(new, path);
        }
    }

    /// The entry that expires first (ties: smallest path).
    pub fn first(&self) -> Option<(i64, &str)> {
        self.entries.first().map(|(at, path)| (*at, path.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_the_earliest_then_the_smallest_path() {
        let mut ttl = TtlIndex::default();
        ttl.insert(20, "/a");
        ttl.insert(10, "/z");
        ttl.insert(10, "/b");
        assert_eq!(ttl.first(), Some((10, "/b")));
        ttl.remove(10, "/b");
        assert_eq!(ttl.first(), Some((10, "/z")));
        ttl.replace("/z", Some(10), Some(30));
        assert_eq!(ttl.first(), Some((20, "/a")));
        ttl.replace("/a", Some(20), None);
        ttl.replace("/z", Some(30), None);
        assert!(ttl.is_empty());
    }
}
