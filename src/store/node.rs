//! The key-space tree: files and directories with their indexes and expiration, and the walks
//! etcd's store does over it (lookup, creating missing parents, detaching a subtree).
//!
//! Owns the shape of the tree and the error a walk produces (100 KeyNotFound, 104 NotDir).
//! Knows nothing about events, watchers, the TTL index or the current index: callers pass the
//! indexes in and keep the TTL index in step with what they add and detach.

use std::collections::BTreeMap;

use super::event::NodeView;
use super::path;
use crate::error::{Code, Error};

/// A file or a directory. Children are keyed by name; a `BTreeMap` keeps listings sorted by key
/// and makes every replica iterate in the same order.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    /// The clean path, `/` for the root.
    pub path: String,
    pub created_index: u64,
    pub modified_index: u64,
    /// Absolute expiration in unix nanoseconds; `None` for a permanent node.
    pub expire_at: Option<i64>,
    pub content: Content,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Content {
    File(String),
    Dir(BTreeMap<String, Node>),
}

impl Node {
    pub fn new_file(path: String, value: String, index: u64, expire_at: Option<i64>) -> Node {
        Node {
            path,
            created_index: index,
            modified_index: index,
            expire_at,
            content: Content::File(value),
        }
    }

    pub fn new_dir(path: String, index: u64, expire_at: Option<i64>) -> Node {
        Node {
            path,
            created_index: index,
            modified_index: index,
            expire_at,
            content: Content::Dir(BTreeMap::new()),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.content, Content::Dir(_))
    }

    /// The file's value; a directory reads as `""` (Go's zero `Value`).
    pub fn value(&self) -> &str {
        match &self.content {
            Content::File(value) => value,
            Content::Dir(_) => "",
        }
    }

    pub fn children(&self) -> Option<&BTreeMap<String, Node>> {
        match &self.content {
            Content::Dir(children) => Some(children),
            Content::File(_) => None,
        }
    }

    fn children_mut(&mut self) -> Option<&mut BTreeMap<String, Node>> {
        match &mut self.content {
            Content::Dir(children) => Some(children),
            Content::File(_) => None,
        }
    }

    /// etcd's `node.Repr(recursive, sorted)`: this node alone, or with its whole visible subtree.
    /// Hidden children are left out; children are always sorted (the `sorted` flag is free).
    pub fn view(&self, recursive: bool) -> NodeView {
        if recursive {
            self.view_with_children(true)
        } else {
            self.shallow_view()
        }
    }

    /// etcd's `loadInternalNode`, what a GET answers: a file with its value, or a directory with
    /// its visible children (their subtrees too when `recursive`). The root shows without a key.
    pub fn listing(&self, recursive: bool) -> NodeView {
        let mut view = self.view_with_children(recursive);
        if self.path == "/" {
            view.key.clear();
        }
        view
    }

    /// The node without children.
    fn shallow_view(&self) -> NodeView {
        NodeView {
            key: self.path.clone(),
            value: match &self.content {
                Content::File(value) => Some(value.clone()),
                Content::Dir(_) => None,
            },
            dir: self.is_dir(),
            expire_at: self.expire_at,
            nodes: None,
            modified_index: self.modified_index,
            created_index: self.created_index,
        }
    }

    /// A directory with its visible children listed (and theirs, when `recursive`); a file as
    /// itself. Built with an explicit stack so deep trees cannot overflow the call stack.
    fn view_with_children(&self, recursive: bool) -> NodeView {
        let Some(children) = self.children() else {
            return self.shallow_view();
        };
        let open = |node: &Node| {
            let mut view = node.shallow_view();
            view.nodes = Some(Vec::new());
            view
        };
        let mut stack = Vec::new();
        let mut current = (open(self), children.iter());
        loop {
            match current.1.find(|(name, _)| !path::is_hidden_name(name)) {
                Some((_, child)) => match child.children() {
                    Some(grandchildren) if recursive => {
                        stack.push(current);
                        current = (open(child), grandchildren.iter());
                    }
                    _ => current
                        .0
                        .nodes
                        .get_or_insert_with(Vec::new)
                        .push(child.shallow_view()),
                },
                None => match stack.pop() {
                    Some(mut parent) => {
                        parent.0.nodes.get_or_insert_with(Vec::new).push(current.0);
                        current = parent;
                    }
                    None => return current.0,
                },
            }
        }
    }

    /// Every node of this subtree, children before their parent, siblings in key order (the order
    /// etcd's `Remove` calls back in, with Go's random map order made deterministic).
    pub fn post_order(&self) -> Vec<&Node> {
        let mut reversed = Vec::new();
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            reversed.push(node);
            if let Some(children) = node.children() {
                stack.extend(children.values());
            }
        }
        reversed.reverse();
        reversed
    }
}

/// Dismantles a subtree with an explicit stack: the derived drop would recurse once per level,
/// and a key with tens of thousands of components must not overflow the stack when its tree is
/// deleted or expired (every replica would crash on the same entry).
impl Drop for Node {
    fn drop(&mut self) {
        let Content::Dir(children) = &mut self.content else {
            return;
        };
        let mut pending: Vec<Node> = std::mem::take(children).into_values().collect();
        while let Some(mut node) = pending.pop() {
            if let Content::Dir(grandchildren) = &mut node.content {
                pending.extend(std::mem::take(grandchildren).into_values());
            }
        }
    }
}

/// The whole key space under a read-only root directory.
#[derive(Debug, PartialEq, Eq)]
pub struct Tree {
    pub root: Node,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            root: Node::new_dir("/".to_string(), 0, None),
        }
    }
}

impl Tree {
    /// etcd's `internalGet` on a clean path. Errors carry `index`: 104 NotDir with the file met on
    /// the way, 100 KeyNotFound with the path up to the first missing name.
    pub fn get(&self, path: &str, index: u64) -> Result<&Node, Error> {
        let mut current = &self.root;
        for name in path::components(path) {
            let Some(children) = current.children() else {
                return Err(Error::new(Code::NotDir, current.path.clone(), index));
            };
            current = match children.get(name) {
                Some(child) => child,
                None => {
                    return Err(Error::new(
                        Code::KeyNotFound,
                        path::join(&current.path, name),
                        index,
                    ))
                }
            };
        }
        Ok(current)
    }

    /// [`Tree::get`] for changing the node in place.
    pub fn get_mut(&mut self, path: &str, index: u64) -> Result<&mut Node, Error> {
        // Walk once immutably for etcd's errors, then again to borrow mutably (a mutable walk
        // cannot name the blocking node in its error without cloning every path on the way).
        self.get(path, index)?;
        let mut current = &mut self.root;
        for name in path::components(path) {
            current = match current
                .children_mut()
                .and_then(|children| children.get_mut(name))
            {
                Some(child) => child,
                None => return Err(Error::new(Code::KeyNotFound, path, index)),
            };
        }
        Ok(current)
    }

    /// etcd's `walk(dirName, checkDir)`: the children of the directory at `dir_path`, creating
    /// missing directories on the way (permanent, created at `create_index`). A file on the way
    /// is 104 NotDir with its path; then nothing is created.
    pub fn make_dirs(
        &mut self,
        dir_path: &str,
        create_index: u64,
        index: u64,
    ) -> Result<&mut BTreeMap<String, Node>, Error> {
        self.check_dirs(dir_path, index)?;
        let mut current = &mut self.root;
        let mut path_end = 0;
        for name in path::components(dir_path) {
            path_end += 1 + name.len();
            let Some(children) = current.children_mut() else {
                return Err(Error::new(Code::NotDir, dir_path, index));
            };
            current = children.entry(name.to_string()).or_insert_with(|| {
                Node::new_dir(dir_path[..path_end].to_string(), create_index, None)
            });
        }
        current
            .children_mut()
            .ok_or_else(|| Error::new(Code::NotDir, dir_path, index))
    }

    /// The 104 NotDir that [`Tree::make_dirs`] would meet, if any: the first existing file along
    /// `dir_path`. Stops at the first missing name (everything below it will be created).
    fn check_dirs(&self, dir_path: &str, index: u64) -> Result<(), Error> {
        let mut current = &self.root;
        for name in path::components(dir_path) {
            let Some(child) = current.children().and_then(|children| children.get(name)) else {
                return Ok(());
            };
            if !child.is_dir() {
                return Err(Error::new(Code::NotDir, child.path.clone(), index));
            }
            current = child;
        }
        Ok(())
    }

    /// Unlinks the node at a clean, non-root path and hands it back with its subtree.
    pub fn detach(&mut self, path: &str) -> Option<Node> {
        let (parent_path, name) = path::split(path);
        if name.is_empty() {
            return None;
        }
        self.get_mut(parent_path, 0)
            .ok()?
            .children_mut()?
            .remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut tree = Tree::default();
        let dir = tree.make_dirs("/a/b", 1, 0).unwrap();
        dir.insert(
            "c".into(),
            Node::new_file("/a/b/c".into(), "v".into(), 1, None),
        );
        dir.insert(
            "_h".into(),
            Node::new_file("/a/b/_h".into(), "h".into(), 2, None),
        );
        tree
    }

    #[test]
    fn make_dirs_creates_parents_with_full_paths() {
        let tree = sample();
        assert_eq!(tree.get("/a", 5).unwrap().path, "/a");
        assert_eq!(tree.get("/a/b", 5).unwrap().path, "/a/b");
        assert_eq!(tree.get("/a/b/c", 5).unwrap().value(), "v");
        assert_eq!(tree.get("/", 5).unwrap().path, "/");
    }

    #[test]
    fn walk_errors_name_the_blocking_node() {
        let mut tree = sample();
        let not_found = tree.get("/a/x/y", 7).unwrap_err();
        assert_eq!(
            (not_found.code, not_found.cause.as_str(), not_found.index),
            (Code::KeyNotFound, "/a/x", 7)
        );
        let not_dir = tree.get("/a/b/c/d", 7).unwrap_err();
        assert_eq!(
            (not_dir.code, not_dir.cause.as_str()),
            (Code::NotDir, "/a/b/c")
        );
        let not_dir = tree.make_dirs("/a/b/c/d", 8, 7).unwrap_err();
        assert_eq!(
            (not_dir.code, not_dir.cause.as_str()),
            (Code::NotDir, "/a/b/c")
        );
        assert!(tree.get("/a/b/c/d", 7).is_err());
    }

    #[test]
    fn listing_hides_underscore_children_but_view_of_a_file_does_not() {
        let tree = sample();
        let listing = tree.get("/a/b", 0).unwrap().listing(false);
        let keys: Vec<&str> = listing
            .nodes
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.key.as_str())
            .collect();
        assert_eq!(keys, ["/a/b/c"]);
        assert_eq!(
            tree.get("/a/b/_h", 0)
                .unwrap()
                .listing(false)
                .value
                .as_deref(),
            Some("h")
        );
        assert_eq!(tree.root.listing(false).key, "");
    }

    #[test]
    fn post_order_lists_children_before_parents() {
        let tree = sample();
        let paths: Vec<&str> = tree
            .root
            .post_order()
            .iter()
            .map(|n| n.path.as_str())
            .collect();
        assert_eq!(paths, ["/a/b/_h", "/a/b/c", "/a/b", "/a", "/"]);
    }

    #[test]
    fn detach_unlinks_a_subtree() {
        let mut tree = sample();
        let b = tree.detach("/a/b").unwrap();
        assert_eq!(b.children().unwrap().len(), 2);
        assert!(tree.get("/a/b", 0).is_err());
        assert!(tree.detach("/").is_none());
        assert!(tree.detach("/nope").is_none());
    }
}
