//! A replica's state as bytes: the tree (with expirations), the current index and the event
//! history, as etcd's store snapshot keeps them. Watchers are not kept (they belong to live
//! connections), nor the stats (per-process counters); the TTL index is rebuilt from the tree.
//!
//! Owns the snapshot format. Deterministic: equal replicas give equal bytes. Tree walks here
//! use explicit stacks, so key depth cannot overflow the call stack.

use std::sync::Arc;

use super::event::{Action, Event, NodeView};
use super::history::EventHistory;
use super::node::{Children, Content, Node, Tree};
use super::path;
use super::stats::StoreStats;
use super::ttl::TtlIndex;
use super::{Published, Snapshot, Store};
use crate::auth::state::AuthState;
use crate::codec::{self, DecodeError, Reader};

/// The first byte of every snapshot: 1 without auth state, 2 with it (written only once users,
/// roles or the auth switch exist, so a store that never used auth snapshots as before).
pub const SNAPSHOT_VERSION: u8 = 1;
const SNAPSHOT_VERSION_AUTH: u8 = 2;

const KIND_FILE: u8 = 0;
const KIND_DIR: u8 = 1;

/// Smallest encodings, used to reject forged counts before allocating.
const MIN_NODE_LEN: usize = 1 + 4 + 8 + 8 + 1 + 4;
const MIN_EVENT_LEN: usize = 1 + 1 + 8 + MIN_VIEW_LEN + 1;
const MIN_VIEW_LEN: usize = 4 + 1 + 1 + 1 + 8 + 8;

// Format: [u8 version = 1 or 2][body][u32 checksum of version + body, little-endian]
//   integers little-endian; str = u32 length + UTF-8; bool = 0/1; Option<T> = 0, or 1 then T.
//   body  = u64 current_index, u32 root child count, nodes…, u32 event count, events… (oldest
//           first), and in version 2 the auth state (`auth::state::AuthState::encode`)
//   node  = u8 kind (0 file, 1 dir), str name, u64 created_index, u64 modified_index,
//           opt i64 expire_at, then (file) str value | (dir) u32 child count, children…
//           — depth first, children in name order (a dir's children follow it directly)
//   event = u8 action (Action in declaration order), bool refresh, u64 etcd_index,
//           view node, opt view prev_node
//   view  = str key, opt str value, bool dir, opt i64 expire_at, u64 modified_index,
//           u64 created_index (history events never carry child lists)
impl Snapshot {
    /// The version's state: versioned and checksummed. Equal versions give equal bytes. Reads
    /// only immutable data, so it can run on any thread while the applier goes on.
    pub fn encode(&self) -> Vec<u8> {
        let view = &self.view;
        let mut out = Vec::with_capacity(4096);
        let with_auth = *view.auth != AuthState::default();
        codec::put_u8(
            &mut out,
            if with_auth {
                SNAPSHOT_VERSION_AUTH
            } else {
                SNAPSHOT_VERSION
            },
        );
        codec::put_u64(&mut out, view.index);
        let no_children = Children::new();
        encode_tree(&mut out, view.tree.root.children().unwrap_or(&no_children));
        codec::put_len(&mut out, self.events.len());
        for event in &self.events {
            encode_event(&mut out, event);
        }
        if with_auth {
            view.auth.encode(&mut out);
        }
        let sum = codec::checksum(&out);
        codec::put_u32(&mut out, sum);
        out
    }

    /// The raft index of the version.
    pub fn raft_index(&self) -> u64 {
        self.view.raft_index
    }
}

impl Store {
    /// The applier as [`Snapshot::encode`] left it, published into `published` as of raft
    /// index `raft_index` (its history replaced by the snapshot's; the newest events are kept if
    /// its capacity is smaller than the snapshot's). Zeroed stats.
    pub fn restore(
        bytes: &[u8],
        published: Arc<Published>,
        raft_index: u64,
        raft_term: u64,
    ) -> Result<Store, DecodeError> {
        let Some(body_len) = bytes.len().checked_sub(4) else {
            return Err(DecodeError::Truncated);
        };
        let (body, stored_sum) = bytes.split_at(body_len);
        let stored =
            u32::from_le_bytes([stored_sum[0], stored_sum[1], stored_sum[2], stored_sum[3]]);
        let computed = codec::checksum(body);
        if stored != computed {
            return Err(DecodeError::ChecksumMismatch { stored, computed });
        }
        let mut reader = Reader::new(body);
        let version = reader.u8()?;
        if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_AUTH {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let index = reader.u64()?;
        let mut ttl = TtlIndex::default();
        let tree = decode_tree(&mut reader, &mut ttl)?;
        let mut history = EventHistory::new(published.history_capacity());
        for _ in 0..reader.count(MIN_EVENT_LEN)? {
            history.add(Arc::new(decode_event(&mut reader)?));
        }
        let auth = if version == SNAPSHOT_VERSION_AUTH {
            AuthState::decode(&mut reader)?
        } else {
            AuthState::default()
        };
        reader.finish()?;
        *published.history_mut() = history;
        let mut store = Store {
            tree,
            index,
            ttl,
            stats: StoreStats::default(),
            auth: Arc::new(auth),
            unpublished: Vec::new(),
            published,
        };
        store.publish(raft_index, raft_term);
        Ok(store)
    }
}

fn encode_tree(out: &mut Vec<u8>, root_children: &Children) {
    codec::put_len(out, root_children.len());
    let mut stack = vec![root_children.iter()];
    while let Some(siblings) = stack.last_mut() {
        let Some((name, node)) = siblings.next() else {
            stack.pop();
            continue;
        };
        codec::put_u8(out, if node.is_dir() { KIND_DIR } else { KIND_FILE });
        codec::put_str(out, name);
        codec::put_u64(out, node.created_index);
        codec::put_u64(out, node.modified_index);
        codec::put_opt_i64(out, node.expire_at);
        match &node.content {
            Content::File(value) => codec::put_str(out, value),
            Content::Dir(children) => {
                codec::put_len(out, children.len());
                stack.push(children.iter());
            }
        }
    }
}

/// A directory being filled: its path, node and how many children are still to read.
struct OpenDir {
    name: String,
    path: String,
    node: Node,
    children_left: usize,
}

fn decode_tree(reader: &mut Reader<'_>, ttl: &mut TtlIndex) -> Result<Tree, DecodeError> {
    let root = Node::new_dir(0, None);
    let children_left = reader.count(MIN_NODE_LEN)?;
    let mut open = vec![OpenDir {
        name: String::new(),
        path: "/".to_string(),
        node: root,
        children_left,
    }];
    loop {
        let Some(parent) = open.last_mut() else {
            return Err(DecodeError::Inconsistent("tree stack emptied early"));
        };
        if parent.children_left == 0 {
            let Some(done) = open.pop() else {
                return Err(DecodeError::Inconsistent("tree stack emptied early"));
            };
            match open.last_mut() {
                None => {
                    return Ok(Tree {
                        root: Arc::new(done.node),
                    })
                }
                Some(grandparent) => add_child(&mut grandparent.node, done.name, done.node)?,
            }
            continue;
        }
        parent.children_left -= 1;
        let kind = reader.u8()?;
        let name = reader.string()?;
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(DecodeError::Inconsistent("invalid node name"));
        }
        let node_path = path::join(&parent.path, &name);
        let created_index = reader.u64()?;
        let modified_index = reader.u64()?;
        let expire_at = reader.opt_i64()?;
        if let Some(at) = expire_at {
            ttl.insert(at, &node_path);
        }
        let content = match kind {
            KIND_FILE => Content::File(reader.string()?.into()),
            KIND_DIR => Content::Dir(Children::new()),
            other => return Err(DecodeError::UnknownTag(other)),
        };
        let node = Node {
            created_index,
            modified_index,
            expire_at,
            content,
        };
        if kind == KIND_DIR {
            let children_left = reader.count(MIN_NODE_LEN)?;
            open.push(OpenDir {
                name,
                path: node_path,
                node,
                children_left,
            });
        } else {
            add_child(&mut parent.node, name, node)?;
        }
    }
}

fn add_child(parent: &mut Node, name: String, child: Node) -> Result<(), DecodeError> {
    let Content::Dir(children) = &mut parent.content else {
        return Err(DecodeError::Inconsistent("child under a file"));
    };
    if children.insert(name.into(), Arc::new(child)).is_some() {
        return Err(DecodeError::Inconsistent("duplicate child name"));
    }
    Ok(())
}

const ACTIONS: [Action; 8] = [
    Action::Get,
    Action::Set,
    Action::Create,
    Action::Update,
    Action::Delete,
    Action::CompareAndSwap,
    Action::CompareAndDelete,
    Action::Expire,
];

fn encode_event(out: &mut Vec<u8>, event: &Event) {
    let action_tag = ACTIONS
        .iter()
        .position(|&action| action == event.action)
        .unwrap_or(0);
    codec::put_u8(out, action_tag as u8);
    codec::put_bool(out, event.refresh);
    codec::put_u64(out, event.etcd_index);
    encode_view(out, &event.node);
    codec::put_bool(out, event.prev_node.is_some());
    if let Some(prev) = &event.prev_node {
        encode_view(out, prev);
    }
}

fn decode_event(reader: &mut Reader<'_>) -> Result<Event, DecodeError> {
    let tag = reader.u8()?;
    let action = *ACTIONS
        .get(usize::from(tag))
        .ok_or(DecodeError::UnknownTag(tag))?;
    let refresh = reader.bool()?;
    let etcd_index = reader.u64()?;
    let node = decode_view(reader)?;
    let prev_node = if reader.bool()? {
        Some(decode_view(reader)?)
    } else {
        None
    };
    Ok(Event {
        action,
        node,
        prev_node,
        etcd_index,
        refresh,
    })
}

fn encode_view(out: &mut Vec<u8>, view: &NodeView) {
    debug_assert!(view.nodes.is_none(), "history events carry no child lists");
    codec::put_str(out, &view.key);
    codec::put_opt_str(out, view.value.as_deref());
    codec::put_bool(out, view.dir);
    codec::put_opt_i64(out, view.expire_at);
    codec::put_u64(out, view.modified_index);
    codec::put_u64(out, view.created_index);
}

fn decode_view(reader: &mut Reader<'_>) -> Result<NodeView, DecodeError> {
    Ok(NodeView {
        key: reader.string()?,
        value: reader.opt_string()?,
        dir: reader.bool()?,
        expire_at: reader.opt_i64()?,
        nodes: None,
        modified_index: reader.u64()?,
        created_index: reader.u64()?,
    })
}
