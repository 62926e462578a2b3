//! What the store tells the outside world: [`Event`] (action, node, previous node, etcd index),
//! [`NodeView`] (etcd's `NodeExtern`) and their exact JSON as etcd's v2 API writes it.
//!
//! Owns the JSON byte layout (Go field order, `omitempty`, RFC 3339 expiration, `ttl` rounding).
//! Knows nothing about the tree, watchers or history: a view is a plain copy, computed when the
//! event happened; only `ttl` depends on the `now` given at write time.

use crate::error::write_json_string;
use crate::timefmt::write_rfc3339_nanos;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The `action` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Get,
    Set,
    Create,
    Update,
    Delete,
    CompareAndSwap,
    CompareAndDelete,
    Expire,
}

impl Action {
    /// The wire name of the action, as etcd spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Set => "set",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::CompareAndSwap => "compareAndSwap",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }
}

/// A node as a client sees it (etcd's `NodeExtern`). Empty fields are left out of the JSON the way
/// Go's `omitempty` does: an empty `key` (the root), `dir == false`, no expiration, no or empty
/// `nodes`, zero indexes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeView {
    /// The clean path; empty for the root (etcd shows the root without a key).
    pub key: String,
    /// `Some` for a file (even when empty), `None` for a directory or a deleted node.
    pub value: Option<String>,
    pub dir: bool,
    /// Absolute expiration in unix nanoseconds; `None` for a permanent node.
    pub expire_at: Option<i64>,
    /// Children of a listed directory (hidden ones left out), sorted by key.
    pub nodes: Option<Vec<NodeView>>,
    pub modified_index: u64,
    pub created_index: u64,
}

/// One change (or one read) of the key space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub action: Action,
    pub node: NodeView,
    pub prev_node: Option<NodeView>,
    /// The store index when the event was produced (`X-Etcd-Index`); for an event replayed from
    /// the history, the store index at replay time.
    pub etcd_index: u64,
    /// A TTL refresh: kept in the history (it takes an index) but never notified nor replayed
    /// to watchers, as etcd does. Not part of the JSON.
    pub refresh: bool,
}

impl Event {
    /// The index the event happened at (its node's `modifiedIndex`), which orders the history.
    pub fn index(&self) -> u64 {
        self.node.modified_index
    }

    /// Appends etcd's exact JSON for this event plus a trailing `"\n"`: `action`, `node`,
    /// `prevNode`; `ttl` computed from `now` (unix nanoseconds).
    pub fn write_json(&self, out: &mut Vec<u8>, now: i64) {
        out.extend_from_slice(b"{\"action\":");
        write_json_string(out, self.action.as_str());
        out.extend_from_slice(b",\"node\":");
        self.node.write_json(out, now);
        if let Some(prev) = &self.prev_node {
            out.extend_from_slice(b",\"prevNode\":");
            prev.write_json(out, now);
        }
        out.extend_from_slice(b"}\n");
    }

    /// The JSON of [`Event::write_json`] as a new buffer.
    pub fn to_json(&self, now: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.write_json(&mut out, now);
        out
    }
}

impl NodeView {
    /// Appends this node as a JSON object, fields in Go's `NodeExtern` order. Written with an
    /// explicit stack, so a deep listing cannot overflow the call stack.
    pub fn write_json(&self, out: &mut Vec<u8>, now: i64) {
        if self.nodes.as_ref().is_none_or(|nodes| nodes.is_empty()) {
            // A single node (every GET of a key): no stack to allocate.
            let fields = self.write_head(out, now);
            self.write_tail(fields);
            return;
        }
        let mut steps = vec![JsonStep::Open(self)];
        while let Some(step) = steps.pop() {
            match step {
                JsonStep::Comma => out.push(b','),
                JsonStep::Close(node) => {
                    out.push(b']');
                    node.write_tail(JsonFields { out, empty: false });
                }
                JsonStep::Open(node) => {
                    let mut fields = node.write_head(out, now);
                    match node.nodes.as_ref().filter(|nodes| !nodes.is_empty()) {
                        None => node.write_tail(fields),
                        Some(children) => {
                            fields.name("nodes").push(b'[');
                            steps.push(JsonStep::Close(node));
                            for (position, child) in children.iter().enumerate().rev() {
                                steps.push(JsonStep::Open(child));
                                if position > 0 {
                                    steps.push(JsonStep::Comma);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `{` and the fields before `nodes`.
    fn write_head<'a>(&self, out: &'a mut Vec<u8>, now: i64) -> JsonFields<'a> {
        self.fields().write_head(out, now)
    }

    /// The fields after `nodes`, and `}`.
    fn write_tail(&self, fields: JsonFields<'_>) {
        self.fields().write_tail(fields)
    }

    /// This node's own fields, borrowed.
    fn fields(&self) -> NodeFields<'_> {
        NodeFields {
            key: &self.key,
            value: self.value.as_deref(),
            dir: self.dir,
            expire_at: self.expire_at,
            modified_index: self.modified_index,
            created_index: self.created_index,
        }
    }
}

/// One node's own fields (no children), borrowed: from a [`NodeView`], or straight from the tree
/// for a GET of a file, which then copies neither its key nor its value (see
/// [`write_get_json`]).
#[derive(Debug, Clone, Copy)]
pub struct NodeFields<'a> {
    /// Empty for the root.
    pub key: &'a str,
    pub value: Option<&'a str>,
    pub dir: bool,
    pub expire_at: Option<i64>,
    pub modified_index: u64,
    pub created_index: u64,
}

impl NodeFields<'_> {
    /// `{` and the fields before `nodes`.
    fn write_head<'o>(&self, out: &'o mut Vec<u8>, now: i64) -> JsonFields<'o> {
        let mut fields = JsonFields::open(out);
        if !self.key.is_empty() {
            write_json_string(fields.name("key"), self.key);
        }
        if let Some(value) = self.value {
            write_json_string(fields.name("value"), value);
        }
        if self.dir {
            fields.name("dir").extend_from_slice(b"true");
        }
        if let Some(expire_at) = self.expire_at {
            let expiration = fields.name("expiration");
            expiration.push(b'"');
            write_rfc3339_nanos(expiration, expire_at);
            expiration.push(b'"');
            let ttl = ttl_seconds(expire_at, now);
            if ttl != 0 {
                fields
                    .name("ttl")
                    .extend_from_slice(itoa::Buffer::new().format(ttl).as_bytes());
            }
        }
        fields
    }

    /// The fields after `nodes`, and `}`.
    fn write_tail(&self, mut fields: JsonFields<'_>) {
        if self.modified_index != 0 {
            fields
                .name("modifiedIndex")
                .extend_from_slice(itoa::Buffer::new().format(self.modified_index).as_bytes());
        }
        if self.created_index != 0 {
            fields
                .name("createdIndex")
                .extend_from_slice(itoa::Buffer::new().format(self.created_index).as_bytes());
        }
        fields.out.push(b'}');
    }

    /// The whole node as a JSON object.
    fn write_json(&self, out: &mut Vec<u8>, now: i64) {
        let fields = self.write_head(out, now);
        self.write_tail(fields);
    }
}

/// Appends the JSON of a GET that found `node` with no children to list (a file), exactly as
/// [`Event::write_json`] writes an `Action::Get` event of it, from borrowed fields. Reads are the
/// hot path: this is what lets a GET allocate nothing.
pub fn write_get_json(out: &mut Vec<u8>, node: NodeFields<'_>, now: i64) {
    out.extend_from_slice(b"{\"action\":\"get\",\"node\":");
    node.write_json(out, now);
    out.extend_from_slice(b"}\n");
}

/// Dismantles a deep listing with an explicit stack: the derived drop recurses once per level.
/// (On `Event` rather than `NodeView` so that views keep struct-update syntax.)
impl Drop for Event {
    fn drop(&mut self) {
        let mut pending: Vec<NodeView> = self.node.nodes.take().unwrap_or_default();
        while let Some(mut child) = pending.pop() {
            if let Some(grandchildren) = child.nodes.take() {
                pending.extend(grandchildren);
            }
        }
    }
}

/// What is left to write of a node tree.
enum JsonStep<'a> {
    Open(&'a NodeView),
    Comma,
    Close(&'a NodeView),
}

/// Writes `{`, then `"name":` with the right commas.
struct JsonFields<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonFields<'a> {
    fn open(out: &'a mut Vec<u8>) -> JsonFields<'a> {
        out.push(b'{');
        JsonFields { out, empty: true }
    }

    /// Starts a field and hands back the buffer for its value.
    fn name(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }
}

/// etcd's `ttl`: `ceil((expiration - now) / 1s)` with Go's integer division (truncation toward
/// zero, then +1 when a positive remainder is left), so an expired node shows 0 or less.
pub fn ttl_seconds(expire_at: i64, now: i64) -> i64 {
    let left = expire_at.saturating_sub(now);
    let mut ttl = left / NANOS_PER_SECOND;
    if left % NANOS_PER_SECOND > 0 {
        ttl += 1;
    }
    ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_like_etcd() {
        let s = NANOS_PER_SECOND;
        assert_eq!(ttl_seconds(100 * s, 0), 100);
        assert_eq!(ttl_seconds(100 * s, 1), 100);
        assert_eq!(ttl_seconds(100 * s + 1, 0), 101);
        assert_eq!(ttl_seconds(s / 2, 0), 1);
        assert_eq!(ttl_seconds(0, 0), 0);
        assert_eq!(ttl_seconds(0, s / 2), 0);
        assert_eq!(ttl_seconds(0, 3 * s / 2), -1);
    }

    #[test]
    fn action_names_are_etcds() {
        let names: Vec<&str> = [
            Action::Get,
            Action::Set,
            Action::Create,
            Action::Update,
            Action::Delete,
            Action::CompareAndSwap,
            Action::CompareAndDelete,
            Action::Expire,
        ]
        .iter()
        .map(|a| a.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "get",
                "set",
                "create",
                "update",
                "delete",
                "compareAndSwap",
                "compareAndDelete",
                "expire"
            ]
        );
    }

    #[test]
    fn empty_fields_are_omitted_and_order_is_go_s() {
        let node = NodeView {
            key: "/d".into(),
            dir: true,
            expire_at: Some(5 * NANOS_PER_SECOND),
            nodes: Some(vec![NodeView {
                key: "/d/a".into(),
                value: Some(String::new()),
                modified_index: 3,
                created_index: 2,
                ..NodeView::default()
            }]),
            modified_index: 2,
            created_index: 2,
            ..NodeView::default()
        };
        let event = Event {
            action: Action::Get,
            node,
            prev_node: None,
            etcd_index: 9,
            refresh: false,
        };
        assert_eq!(
            String::from_utf8(event.to_json(NANOS_PER_SECOND)).unwrap(),
            "{\"action\":\"get\",\"node\":{\"key\":\"/d\",\"dir\":true,\"expiration\":\"1970-01-01T00:00:05Z\",\
             \"ttl\":4,\"nodes\":[{\"key\":\"/d/a\",\"value\":\"\",\"modifiedIndex\":3,\"createdIndex\":2}],\
             \"modifiedIndex\":2,\"createdIndex\":2}}\n"
        );
        let root = NodeView {
            dir: true,
            nodes: Some(Vec::new()),
            ..NodeView::default()
        };
        let mut out = Vec::new();
        root.write_json(&mut out, 0);
        assert_eq!(out, b"{\"dir\":true}");
    }
}
