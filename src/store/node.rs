//! The key-space tree: files and directories with their indexes and expiration, and the walks
//! etcd's store does over it (lookup, creating missing parents, detaching a subtree).
//!
//! The tree is persistent: nodes sit behind [`Arc`]s and a directory's children are an
//! [`imbl::OrdMap`] (a B-tree whose blocks are shared between versions), so cloning a
//! [`Tree`] costs one reference count and a change copies only the blocks on its path
//! ([`Arc::make_mut`]), leaving every published version (see [`super::View`]) as it was.
//! Nodes do not store their paths (the walks know them), which keeps a key's cost to its name,
//! its value and one node.
//!
//! Owns the shape of the tree and the error a walk produces (100 KeyNotFound, 104 NotDir).
//! Knows nothing about events, watchers, the TTL index or the current index: callers pass the
//! indexes in and keep the TTL index in step with what they add and detach.

use std::sync::Arc;

use super::event::{NodeFields, NodeView};
use super::path;
use crate::error::{Code, Error};

/// A directory's children by name. Iterates in name order, so listings are sorted by key and
/// every replica and snapshot walks the same order.
pub type Children = imbl::OrdMap<Box<str>, Arc<Node>>;

/// A file or a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub created_index: u64,
    pub modified_index: u64,
    /// Absolute expiration in unix nanoseconds; `None` for a permanent node.
    pub expire_at: Option<i64>,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    File(Box<str>),
    Dir(Children),
}

impl Node {
    pub fn new_file(value: &str, index: u64, expire_at: Option<i64>) -> Node {
        Node {
            created_index: index,
            modified_index: index,
            expire_at,
            content: Content::File(value.into()),
        }
    }

    pub fn new_dir(index: u64, expire_at: Option<i64>) -> Node {
        Node {
            created_index: index,
            modified_index: index,
            expire_at,
            content: Content::Dir(Children::new()),
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

    pub fn children(&self) -> Option<&Children> {
        match &self.content {
            Content::Dir(children) => Some(children),
            Content::File(_) => None,
        }
    }

    pub fn children_mut(&mut self) -> Option<&mut Children> {
        match &mut self.content {
            Content::Dir(children) => Some(children),
            Content::File(_) => None,
        }
    }

    /// etcd's `node.Repr(recursive, sorted)` of the node at `path`: this node alone, or with
    /// its whole visible subtree. Hidden children are left out; children are always sorted.
    pub fn view(&self, path: &str, recursive: bool) -> NodeView {
        if recursive {
            self.view_with_children(path, true)
        } else {
            self.shallow_view(path.to_string())
        }
    }

    /// etcd's `loadInternalNode`, what a GET answers: a file with its value, or a directory with
    /// its visible children (their subtrees too when `recursive`). The root shows without a key.
    pub fn listing(&self, path: &str, recursive: bool) -> NodeView {
        let mut view = self.view_with_children(path, recursive);
        if path == "/" {
            view.key.clear();
        }
        view
    }

    /// The node's own fields as the JSON writer takes them, borrowed, under `key`.
    pub fn fields<'a>(&'a self, key: &'a str) -> NodeFields<'a> {
        NodeFields {
            key,
            value: match &self.content {
                Content::File(value) => Some(value),
                Content::Dir(_) => None,
            },
            dir: self.is_dir(),
            expire_at: self.expire_at,
            modified_index: self.modified_index,
            created_index: self.created_index,
        }
    }

    /// The node without children.
    fn shallow_view(&self, key: String) -> NodeView {
        NodeView {
            key,
            value: match &self.content {
                Content::File(value) => Some(value.to_string()),
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
    fn view_with_children(&self, path: &str, recursive: bool) -> NodeView {
        let Some(children) = self.children() else {
            return self.shallow_view(path.to_string());
        };
        let open = |node: &Node, key: String| {
            let mut view = node.shallow_view(key);
            view.nodes = Some(Vec::new());
            view
        };
        let mut stack = Vec::new();
        let mut current = (open(self, path.to_string()), children.iter());
        loop {
            match current.1.find(|(name, _)| !path::is_hidden_name(name)) {
                Some((name, child)) => {
                    let key = path::join(&current.0.key, name);
                    match child.children() {
                        Some(grandchildren) if recursive => {
                            stack.push(current);
                            current = (open(child, key), grandchildren.iter());
                        }
                        _ => current
                            .0
                            .nodes
                            .get_or_insert_with(Vec::new)
                            .push(child.shallow_view(key)),
                    }
                }
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

    /// The path and expiration of every node of this subtree (rooted at `path`), children
    /// before their parent, siblings in key order (the order etcd's `Remove` calls back in,
    /// with Go's random map order made deterministic).
    pub fn post_order(&self, path: &str) -> Vec<(String, Option<i64>)> {
        let mut reversed = Vec::new();
        let mut stack = vec![(path.to_string(), self)];
        while let Some((path, node)) = stack.pop() {
            if let Some(children) = node.children() {
                stack.extend(
                    children
                        .iter()
                        .map(|(name, child)| (path::join(&path, name), &**child)),
                );
            }
            reversed.push((path, node.expire_at));
        }
        reversed.reverse();
        reversed
    }
}

thread_local! {
    /// Set while this thread drops a node's children (see `Drop for Node`).
    static DROPPING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Children maps whose drop was put off by a drop in progress.
    static PUT_OFF: std::cell::RefCell<Vec<Children>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Dismantles a subtree iteratively: the derived drop would recurse once per level, and a key
/// with tens of thousands of components must not overflow the stack when the last version
/// holding its tree is dropped (every member would crash on the same entry). The outermost drop
/// on a thread drops its children map; a node freed by that only hands its own map over, and
/// the outermost drop works through those one by one. A map still shared with another version
/// costs one reference count: the shared blocks are never walked.
impl Drop for Node {
    fn drop(&mut self) {
        let Content::Dir(children) = &mut self.content else {
            return;
        };
        if children.is_empty() {
            return;
        }
        let children = std::mem::take(children);
        if DROPPING.with(|d| d.replace(true)) {
            PUT_OFF.with(|p| p.borrow_mut().push(children));
            return;
        }
        drop(children);
        while let Some(next) = PUT_OFF.with(|p| p.borrow_mut().pop()) {
            drop(next);
        }
        DROPPING.with(|d| d.set(false));
    }
}

/// The whole key space under a read-only root directory. Cloning shares every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub root: Arc<Node>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            root: Arc::new(Node::new_dir(0, None)),
        }
    }
}

impl Tree {
    /// etcd's `internalGet` on a clean path. Errors carry `index`: 104 NotDir with the file met on
    /// the way, 100 KeyNotFound with the path up to the first missing name.
    pub fn get(&self, path: &str, index: u64) -> Result<&Node, Error> {
        let mut current: &Node = &self.root;
        let mut path_end = 0;
        for name in path::components(path) {
            let Some(children) = current.children() else {
                return Err(Error::new(Code::NotDir, parent_of(path, path_end), index));
            };
            current = match children.get(name) {
                Some(child) => child,
                None => {
                    return Err(Error::new(
                        Code::KeyNotFound,
                        path::join(parent_of(path, path_end), name),
                        index,
                    ))
                }
            };
            path_end += 1 + name.len();
        }
        Ok(current)
    }

    /// [`Tree::get`] for changing the node in place: every node on the way that a published
    /// version shares is copied first (its children are shared, not copied).
    pub fn get_mut(&mut self, path: &str, index: u64) -> Result<&mut Node, Error> {
        // Walk once immutably for etcd's errors (and so nothing is copied for a failed
        // change), then again to borrow mutably.
        self.get(path, index)?;
        let mut current = Arc::make_mut(&mut self.root);
        for name in path::components(path) {
            current = match current
                .children_mut()
                .and_then(|children| children.get_mut(name))
            {
                Some(child) => Arc::make_mut(child),
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
    ) -> Result<&mut Children, Error> {
        self.check_dirs(dir_path, index)?;
        let mut current = Arc::make_mut(&mut self.root);
        for name in path::components(dir_path) {
            let Some(children) = current.children_mut() else {
                return Err(Error::new(Code::NotDir, dir_path, index));
            };
            if !children.contains_key(name) {
                children.insert(name.into(), Arc::new(Node::new_dir(create_index, None)));
            }
            current = match children.get_mut(name) {
                Some(child) => Arc::make_mut(child),
                None => return Err(Error::new(Code::NotDir, dir_path, index)),
            };
        }
        current
            .children_mut()
            .ok_or_else(|| Error::new(Code::NotDir, dir_path, index))
    }

    /// The 104 NotDir that [`Tree::make_dirs`] would meet, if any: the first existing file along
    /// `dir_path`. Stops at the first missing name (everything below it will be created).
    fn check_dirs(&self, dir_path: &str, index: u64) -> Result<(), Error> {
        let mut current: &Node = &self.root;
        let mut path_end = 0;
        for name in path::components(dir_path) {
            let Some(child) = current.children().and_then(|children| children.get(name)) else {
                return Ok(());
            };
            path_end += 1 + name.len();
            if !child.is_dir() {
                return Err(Error::new(Code::NotDir, &dir_path[..path_end], index));
            }
            current = child;
        }
        Ok(())
    }

    /// Unlinks the node at a clean, non-root path and hands it back with its subtree.
    pub fn detach(&mut self, path: &str) -> Option<Arc<Node>> {
        let (parent_path, name) = path::split(path);
        if name.is_empty() {
            return None;
        }
        self.get(path, 0).ok()?;
        self.get_mut(parent_path, 0)
            .ok()?
            .children_mut()?
            .remove(name)
    }
}

/// The path of the node a walk of `path` stands on after `path_end` bytes of it (`/` at the
/// start).
fn parent_of(path: &str, path_end: usize) -> &str {
    if path_end == 0 {
        "/"
    } else {
        &path[..path_end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut tree = Tree::default();
        let dir = tree.make_dirs("/a/b", 1, 0).unwrap();
        dir.insert("c".into(), Arc::new(Node::new_file("v", 1, None)));
        dir.insert("_h".into(), Arc::new(Node::new_file("h", 2, None)));
        tree
    }

    #[test]
    fn make_dirs_creates_parents() {
        let tree = sample();
        assert!(tree.get("/a", 5).unwrap().is_dir());
        assert_eq!(tree.get("/a/b", 5).unwrap().created_index, 1);
        assert_eq!(tree.get("/a/b/c", 5).unwrap().value(), "v");
        assert!(tree.get("/", 5).unwrap().is_dir());
    }

    #[test]
    fn walk_errors_name_the_blocking_node() {
        let mut tree = sample();
        let not_found = tree.get("/a/x/y", 7).unwrap_err();
        assert_eq!(
            (not_found.code, not_found.cause.as_str(), not_found.index),
            (Code::KeyNotFound, "/a/x", 7)
        );
        let not_found = tree.get("/x", 7).unwrap_err();
        assert_eq!(not_found.cause, "/x");
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
        let listing = tree.get("/a/b", 0).unwrap().listing("/a/b", false);
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
                .listing("/a/b/_h", false)
                .value
                .as_deref(),
            Some("h")
        );
        assert_eq!(tree.root.listing("/", false).key, "");
        let recursive = tree.root.listing("/", true);
        assert_eq!(
            recursive.nodes.unwrap()[0].nodes.as_ref().unwrap()[0].key,
            "/a/b"
        );
    }

    #[test]
    fn post_order_lists_children_before_parents() {
        let tree = sample();
        let paths: Vec<String> = tree
            .root
            .post_order("/")
            .into_iter()
            .map(|(p, _)| p)
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

    #[test]
    fn a_change_leaves_an_earlier_version_as_it_was() {
        let mut tree = sample();
        let published = tree.clone();
        tree.get_mut("/a/b/c", 0).unwrap().content = Content::File("new".into());
        tree.detach("/a/b/_h");
        tree.make_dirs("/z", 9, 0).unwrap();
        assert_eq!(published.get("/a/b/c", 0).unwrap().value(), "v");
        assert!(published.get("/a/b/_h", 0).is_ok());
        assert!(published.get("/z", 0).is_err());
        assert_eq!(tree.get("/a/b/c", 0).unwrap().value(), "new");
        // The untouched sibling subtree is shared, not copied.
        let mut other = sample();
        other.make_dirs("/q", 1, 0).unwrap();
        let before = other.clone();
        other.make_dirs("/r", 2, 0).unwrap();
        assert!(Arc::ptr_eq(
            &before.root.children().unwrap()["q"],
            &other.root.children().unwrap()["q"]
        ));
    }

    #[test]
    fn a_very_deep_tree_drops_without_overflowing_the_stack() {
        let mut tree = Tree::default();
        let path: String = (0..100_000).map(|_| "/d").collect();
        tree.make_dirs(&path, 1, 0).unwrap();
        let kept = tree.clone();
        drop(tree);
        drop(kept);
    }
}
