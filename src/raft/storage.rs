//! Raft's durable state on shard 0: the WAL (entries, hard state, snapshot markers), the
//! snapshot files, and raft-rs's in-memory log (`MemStorage`) that raft reads from.
//!
//! Every entry and hard-state change is appended to the WAL and made durable with one
//! `fdatasync` per raft Ready before raft is told it is persisted; `MemStorage` only mirrors what
//! the WAL holds since the last snapshot so raft-rs can read it synchronously. On start,
//! [`recover`] rebuilds that mirror from the newest snapshot plus the WAL after it.
//! Knows nothing about HTTP or the store's contents (a snapshot's store part is opaque bytes).

use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata,
};
use raft::storage::MemStorage;

use crate::cluster::membership::{MemberChange, Membership};
use crate::cluster::Member;
use crate::codec;
use crate::shard::{proposal, Shared};
use crate::snap;
use crate::store::Store;
use crate::wal::{DmaFs, Wal, WalError, WalFs, WalOptions};

/// Who this member is and whom it was bootstrapped with; the WAL's metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    pub member_id: u64,
    pub cluster_id: u64,
    pub name: String,
    pub voters: Vec<u64>,
}

// Format (version 1), little endian:
// [u8 1][u64 member id][u64 cluster id][u32 name len][name][u32 voter count][u64 voter]*
impl Bootstrap {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![1u8];
        out.extend_from_slice(&self.member_id.to_le_bytes());
        out.extend_from_slice(&self.cluster_id.to_le_bytes());
        out.extend_from_slice(&(self.name.len() as u32).to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&(self.voters.len() as u32).to_le_bytes());
        for v in &self.voters {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Bootstrap, String> {
        let mut r = Reader(bytes);
        if r.u8()? != 1 {
            return Err("unknown bootstrap metadata version".into());
        }
        let member_id = r.u64()?;
        let cluster_id = r.u64()?;
        let name_len = r.u32()? as usize;
        let name = String::from_utf8(r.take(name_len)?.to_vec())
            .map_err(|_| "member name is not UTF-8")?;
        let n = r.u32()? as usize;
        let mut voters = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            voters.push(r.u64()?);
        }
        r.end()?;
        Ok(Bootstrap {
            member_id,
            cluster_id,
            name,
            voters,
        })
    }
}

/// What a snapshot file carries: raft's voters and the member list at the snapshot, and the
/// store's bytes.
// Format (version 2): [u8 2][u32 voter count][u64 voter]*[Membership][store snapshot bytes…]
pub fn encode_snapshot_payload(voters: &[u64], members: &Membership, store: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 8 * voters.len() + store.len());
    out.push(2);
    out.extend_from_slice(&(voters.len() as u32).to_le_bytes());
    for v in voters {
        out.extend_from_slice(&v.to_le_bytes());
    }
    members.encode(&mut out);
    out.extend_from_slice(store);
    out
}

/// The parts of a snapshot payload.
pub struct SnapshotPayload<'a> {
    pub voters: Vec<u64>,
    pub members: Membership,
    pub store: &'a [u8],
}

pub fn decode_snapshot_payload(bytes: &[u8]) -> Result<SnapshotPayload<'_>, String> {
    let mut r = codec::Reader::new(bytes);
    let version = r.u8().map_err(|e| e.to_string())?;
    if version != 2 {
        return Err(format!("unknown snapshot payload version {version}"));
    }
    let n = r.count(8).map_err(|e| e.to_string())?;
    let voters = (0..n)
        .map(|_| r.u64())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|e| e.to_string())?;
    let members = Membership::decode(&mut r).map_err(|e| format!("member list: {e}"))?;
    Ok(SnapshotPayload {
        voters,
        members,
        store: r.rest(),
    })
}

/// raft-rs's log as it reads it: the in-memory mirror of the WAL, plus the newest snapshot to
/// send to a follower that fell behind the compacted log. raft-rs's own `MemStorage` would hand
/// out a snapshot without data. The snapshot's data (the whole store, encoded) stays in its
/// file until a follower needs it: raft is told to try again later while the node loads it
/// ([`LogStorage::take_data_wanted`]), and it is dropped once sent, so a large store is not
/// held twice in memory.
pub struct LogStorage {
    pub mem: MemStorage,
    snapshot: std::cell::RefCell<Snapshot>,
    /// Raft asked for a snapshot the newest one cannot serve (too old, or taken before the
    /// follower was added): the node should take a new one now.
    snapshot_wanted: std::cell::Cell<bool>,
    /// Raft asked for the newest snapshot while its data was on disk only.
    data_wanted: std::cell::Cell<bool>,
}

impl LogStorage {
    pub fn new(mem: MemStorage) -> LogStorage {
        LogStorage {
            mem,
            snapshot: Default::default(),
            snapshot_wanted: Default::default(),
            data_wanted: Default::default(),
        }
    }

    /// Whether raft wanted the newest snapshot's data since the last call.
    pub fn take_data_wanted(&self) -> bool {
        self.data_wanted.replace(false)
    }

    /// Asks for a new snapshot (the newest one's file could not be read).
    pub fn want_new_snapshot(&self) {
        self.snapshot_wanted.set(true);
    }

    /// The index and term of the newest snapshot (0, 0 without one).
    pub fn snapshot_index_term(&self) -> (u64, u64) {
        let snapshot = self.snapshot.borrow();
        let meta = snapshot.get_metadata();
        (meta.index, meta.term)
    }

    /// The newest snapshot's data, loaded from its file; ignored if a newer snapshot took its
    /// place meanwhile.
    pub fn set_snapshot_data(&self, index: u64, data: Vec<u8>) {
        let mut snapshot = self.snapshot.borrow_mut();
        if snapshot.get_metadata().index == index {
            snapshot.data = data.into();
        }
    }

    /// Lets the newest snapshot's data go (it was sent; it stays in its file).
    pub fn drop_snapshot_data(&self) {
        self.snapshot.borrow_mut().data = Default::default();
    }

    /// Whether raft wanted a newer snapshot since the last call.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }

    /// The snapshot to offer followers from now on (its data may be left out: it is loaded
    /// from the snapshot file when wanted).
    pub fn set_snapshot(&self, snapshot: Snapshot) {
        *self.snapshot.borrow_mut() = snapshot;
    }
}

/// A raft snapshot with its metadata and data.
pub fn raft_snapshot(index: u64, term: u64, voters: Vec<u64>, data: Vec<u8>) -> Snapshot {
    let mut meta = SnapshotMetadata {
        index,
        term,
        ..Default::default()
    };
    meta.set_conf_state(ConfState::from((voters, vec![])));
    let mut snapshot = Snapshot::default();
    snapshot.set_metadata(meta);
    snapshot.data = data.into();
    snapshot
}

impl raft::Storage for LogStorage {
    fn initial_state(&self) -> raft::Result<raft::RaftState> {
        self.mem.initial_state()
    }
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: raft::GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }
    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }
    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }
    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let snapshot = self.snapshot.borrow();
        let meta = snapshot.get_metadata();
        let conf = meta.get_conf_state();
        // A follower refuses a snapshot whose configuration does not include it.
        let knows_follower = conf.voters.contains(&to) || conf.learners.contains(&to);
        if meta.index == 0 || meta.index < request_index || !knows_follower {
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        if snapshot.data.is_empty() {
            // On disk only: the node loads it; raft asks again with a later heartbeat reply.
            self.data_wanted.set(true);
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(snapshot.clone())
    }
}

/// The entries that start a new cluster: one conf change adding each initial member, at term 1,
/// in ID order, so every member of the cluster writes the same first entries.
pub fn bootstrap_entries(initial: &[Member]) -> Vec<Entry> {
    let mut members = initial.to_vec();
    members.sort_by_key(|m| m.id);
    members
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let id = m.id;
            let mut member = m;
            member.client_urls.clear();
            conf_change_entry(
                i as u64 + 1,
                1,
                ConfChangeType::AddNode,
                id,
                &MemberChange::Add(member),
            )
        })
        .collect()
}

/// A conf-change entry whose context carries the member change (no waiter).
pub fn conf_change_entry(
    index: u64,
    term: u64,
    kind: ConfChangeType,
    node: u64,
    change: &MemberChange,
) -> Entry {
    let mut context = Vec::new();
    proposal::encode_member(proposal::Origin::NONE, change, &mut context);
    conf_change(index, term, kind, node, context)
}

fn conf_change(index: u64, term: u64, kind: ConfChangeType, node: u64, context: Vec<u8>) -> Entry {
    let mut cc = ConfChange::default();
    cc.set_change_type(kind);
    cc.node_id = node;
    cc.context = context.into();
    let mut entry = Entry::default();
    entry.set_entry_type(EntryType::EntryConfChange);
    entry.index = index;
    entry.term = term;
    entry.data = cc.write_to_bytes().unwrap_or_default().into();
    entry
}

/// A conf change raft applies without touching the member list (`--force-new-cluster`).
fn bare_conf_change_entry(index: u64, term: u64, kind: ConfChangeType, node: u64) -> Entry {
    conf_change(index, term, kind, node, Vec::new())
}

/// The voters after `entries` are applied on top of `voters`.
fn voters_after(mut voters: Vec<u64>, entries: &[Entry]) -> Vec<u64> {
    for e in entries {
        if e.get_entry_type() != EntryType::EntryConfChange {
            continue;
        }
        let Ok(cc) = ConfChange::parse_from_bytes(&e.data) else {
            continue;
        };
        match cc.get_change_type() {
            ConfChangeType::AddNode => {
                if !voters.contains(&cc.node_id) {
                    voters.push(cc.node_id);
                }
            }
            ConfChangeType::RemoveNode => voters.retain(|v| *v != cc.node_id),
            ConfChangeType::AddLearnerNode => {}
        }
    }
    voters
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes".into())
        }
    }
}

/// Where a member keeps its files (etcd's layout): `<data-dir>/member/{wal,snap}`.
#[derive(Debug, Clone)]
pub struct Paths {
    pub wal: PathBuf,
    pub snap: PathBuf,
}

impl Paths {
    /// Relative directories are taken from the working directory at start (glommio's directory
    /// handles need absolute paths).
    pub fn new(data_dir: &Path, wal_dir: Option<&Path>) -> Paths {
        let absolute = |p: &Path| match std::env::current_dir() {
            Ok(cwd) if p.is_relative() => cwd.join(p),
            _ => p.to_path_buf(),
        };
        let member = absolute(data_dir).join("member");
        Paths {
            wal: wal_dir.map(absolute).unwrap_or_else(|| member.join("wal")),
            snap: member.join("snap"),
        }
    }
}

/// The durable log, ready for raft, in a WAL on file system `F`.
pub struct Recovered<F: WalFs = DmaFs> {
    pub bootstrap: Bootstrap,
    pub wal: Wal<F>,
    pub storage: LogStorage,
    /// The store part of the snapshot raft starts from (every shard restores it).
    pub store_snapshot: Option<Vec<u8>>,
    /// The member list at that snapshot (empty without one: the log rebuilds it).
    pub membership: Membership,
    /// Raft index of that snapshot (0 without one): entries up to it are already applied.
    pub applied: u64,
    /// The index a member must apply before it serves clients: the highest known committed
    /// (for a lone voter, its whole log, every entry of which it will commit again).
    pub commit: u64,
    /// True when this start created the WAL (first start of this member).
    pub fresh: bool,
    pub warnings: Vec<String>,
}

impl<F: WalFs> Recovered<F> {
    /// Makes `shared` this member's: its member ID and member list as recovered, and the
    /// store (restored from the snapshot's store part, or empty) publishing into it.
    pub fn take_store(&mut self, shared: &Shared) -> Result<Store, String> {
        let published = shared.published.clone();
        let store = match self.store_snapshot.take() {
            Some(bytes) => Store::restore(&bytes, published, self.applied, 0)
                .map_err(|e| format!("restoring the store from its snapshot: {e:?}"))?,
            None => Store::new(published),
        };
        shared.member_id.store(
            self.bootstrap.member_id,
            std::sync::atomic::Ordering::Relaxed,
        );
        shared.set_membership(self.membership.clone());
        Ok(store)
    }
}

/// How a member without a WAL starts.
pub enum FirstStart<'a> {
    /// A new cluster of these members (`--initial-cluster-state new`).
    NewCluster(&'a [Member]),
    /// Joining a running cluster: the log comes from its leader.
    Join,
}

/// Opens the member's WAL and newest snapshot, or creates them on first start.
/// `force_new_cluster` (this member as configured now) appends entries that leave this member
/// the only one, keeping its data (§6.3).
pub async fn recover(
    paths: &Paths,
    fresh: Bootstrap,
    first: FirstStart<'_>,
    force_new_cluster: Option<&Member>,
) -> Result<Recovered, String> {
    let opts = WalOptions::default();
    let blocking = crate::raft::env::Blocking::Pool;
    recover_with(
        DmaFs,
        opts,
        blocking,
        paths,
        fresh,
        first,
        force_new_cluster,
    )
    .await
}

/// [`recover`] with the WAL on file system `fs`, with `opts`; snapshot files (always plain
/// files) are read where `blocking` says.
pub async fn recover_with<F: WalFs + Clone + 'static>(
    fs: F,
    opts: WalOptions,
    blocking: crate::raft::env::Blocking,
    paths: &Paths,
    fresh: Bootstrap,
    first: FirstStart<'_>,
    force_new_cluster: Option<&Member>,
) -> Result<Recovered<F>, String> {
    if !Wal::exists_with(&fs, &paths.wal) {
        std::fs::create_dir_all(&paths.snap)
            .map_err(|e| format!("cannot create {}: {e}", paths.snap.display()))?;
        let mut wal = Wal::create_with(fs, &paths.wal, &fresh.encode(), opts)
            .await
            .map_err(|e| e.to_string())?;
        let storage = MemStorage::new();
        let mut commit = 0;
        if let FirstStart::NewCluster(initial) = first {
            let entries = bootstrap_entries(initial);
            commit = entries.len() as u64;
            let hs = HardState {
                term: 1,
                vote: 0,
                commit,
                ..Default::default()
            };
            persist(&mut wal, &entries, &hs).await?;
            let mut core = storage.wl();
            core.append(&entries)
                .map_err(|e| format!("raft log: {e}"))?;
            core.set_hardstate(hs);
        }
        return Ok(Recovered {
            bootstrap: fresh,
            wal,
            storage: LogStorage::new(storage),
            store_snapshot: None,
            membership: Membership::default(),
            applied: 0,
            commit,
            fresh: true,
            warnings: Vec::new(),
        });
    }
    let mut warnings = Vec::new();
    let dir = paths.snap.clone();
    let loaded = blocking
        .run(move || snap::load_newest(&dir))
        .await
        .map_err(|e| e.to_string())?;
    warnings.extend(
        loaded
            .skipped
            .iter()
            .map(|s| format!("skipped snapshot {s}")),
    );
    let after = loaded.snapshot.as_ref().map_or(0, |s| s.index);
    let opened = Wal::open_with(fs, &paths.wal, after, opts).await;
    let (mut wal, rec) = opened.map_err(|e| match e {
        WalError::Gap { .. } => format!(
            "{e}; the member needs a snapshot at or after entry {} in {} and {}",
            after_gap(&e),
            paths.snap.display(),
            match &loaded.snapshot {
                Some(s) => format!("the newest there is at entry {}", s.index),
                None => "there is none (was it deleted?)".to_string(),
            }
        ),
        e => e.to_string(),
    })?;
    warnings.extend(rec.warnings);
    let bootstrap = Bootstrap::decode(&rec.metadata)
        .map_err(|e| format!("{}: member metadata: {e}", paths.wal.display()))?;

    let mut store_snapshot = None;
    let mut membership = Membership::default();
    let mut applied = 0;
    let mut voters = Vec::new();
    let storage = LogStorage::new(MemStorage::new());
    let (snap_index, snap_term) = match &loaded.snapshot {
        Some(s) => {
            let payload = decode_snapshot_payload(&s.payload)
                .map_err(|e| format!("{}: snapshot {}: {e}", paths.snap.display(), s.index))?;
            store_snapshot = Some(payload.store.to_vec());
            membership = payload.members;
            voters = payload.voters;
            applied = s.index;
            storage
                .mem
                .wl()
                .apply_snapshot(raft_snapshot(s.index, s.term, voters.clone(), Vec::new()))
                .map_err(|e| format!("raft snapshot: {e}"))?;
            storage.set_snapshot(raft_snapshot(s.index, s.term, voters.clone(), Vec::new()));
            (s.index, s.term)
        }
        None => (0, 0),
    };
    let mut entries = Vec::with_capacity(rec.entries.len());
    for (index, _term, data) in rec.entries {
        if index <= snap_index {
            continue;
        }
        let entry = Entry::parse_from_bytes(&data)
            .map_err(|e| format!("{}: entry {index}: {e}", paths.wal.display()))?;
        if entry.term < snap_term {
            // Written before a snapshot from the leader replaced this log: stale.
            break;
        }
        entries.push(entry);
    }
    let mut hs = HardState::default();
    if let Some((term, vote, commit)) = rec.hard_state {
        hs = HardState {
            term: term.max(snap_term),
            vote,
            commit: commit.max(snap_index),
            ..Default::default()
        };
    }
    let last = entries.last().map_or(snap_index, |e| e.index);
    hs.commit = hs.commit.min(last);
    if let Some(me) = force_new_cluster {
        // Every entry this member holds is kept and committed: the commit index on disk lags
        // (it is written with the next entries' sync), and an entry past it was either
        // committed or is a write whose client never heard back — either may take effect.
        let me = Member {
            id: bootstrap.member_id,
            name: bootstrap.name.clone(),
            peer_urls: me.peer_urls.clone(),
            client_urls: Vec::new(),
        };
        let voters_now = voters_after(voters.clone(), &entries);
        let term = hs.term.max(1);
        let mut next = entries.last().map_or(snap_index, |e| e.index) + 1;
        let mut added = Vec::new();
        // The member list first (this member alone, everyone else removed for good), then
        // raft's voters: add this member if it is not one (a backup has a new ID), and only
        // then remove the others, so raft never has zero voters.
        let mut data = Vec::new();
        proposal::encode_member(
            proposal::Origin::NONE,
            &MemberChange::ForceNewCluster(me.clone()),
            &mut data,
        );
        added.push(Entry {
            index: next,
            term,
            data: data.into(),
            ..Default::default()
        });
        next += 1;
        let mut raft_changes = Vec::new();
        if !voters_now.contains(&me.id) {
            raft_changes.push((ConfChangeType::AddNode, me.id));
        }
        for id in voters_now.iter().filter(|v| **v != me.id) {
            raft_changes.push((ConfChangeType::RemoveNode, *id));
        }
        for (kind, id) in raft_changes {
            added.push(bare_conf_change_entry(next, term, kind, id));
            next += 1;
        }
        hs.term = term;
        hs.commit = next - 1;
        hs.vote = 0;
        persist(&mut wal, &added, &hs).await?;
        warnings.push(format!(
            "--force-new-cluster: member {:x} is now the only member (entries {}..={})",
            me.id,
            hs.commit + 1 - added.len() as u64,
            hs.commit
        ));
        entries.extend(added);
    }
    let lone = voters_after(voters, &entries) == [bootstrap.member_id];
    {
        let mut core = storage.mem.wl();
        core.append(&entries)
            .map_err(|e| format!("raft log: {e}"))?;
        core.set_hardstate(hs.clone());
    }
    let mut commit = hs.commit.max(applied);
    if lone {
        // A lone voter commits its whole log again as soon as it leads; the hard state's commit
        // index may lag the last acknowledged write by one sync, so wait for all of it.
        commit = commit.max(last);
    }
    Ok(Recovered {
        bootstrap,
        wal,
        storage,
        store_snapshot,
        membership,
        applied,
        commit,
        fresh: false,
        warnings,
    })
}

/// The last entry a WAL gap leaves out, which a snapshot must cover.
fn after_gap(e: &WalError) -> u64 {
    match e {
        WalError::Gap { first_index, .. } => first_index - 1,
        _ => 0,
    }
}

/// Writes entries and a hard state to the WAL and makes them durable.
async fn persist<F: WalFs + Clone + 'static>(
    wal: &mut Wal<F>,
    entries: &[Entry],
    hs: &HardState,
) -> Result<(), String> {
    for e in entries {
        let bytes = e
            .write_to_bytes()
            .map_err(|e| format!("encode entry: {e}"))?;
        wal.append_entry(e.index, e.term, &bytes);
    }
    wal.set_hard_state(hs.term, hs.vote, hs.commit);
    wal.sync().await.map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_round_trips_and_refuses_damage() {
        let b = Bootstrap {
            member_id: 7,
            cluster_id: 9,
            name: "node-1".into(),
            voters: vec![7, 8, 9],
        };
        let bytes = b.encode();
        assert_eq!(Bootstrap::decode(&bytes).unwrap(), b);
        for cut in 0..bytes.len() {
            assert!(Bootstrap::decode(&bytes[..cut]).is_err());
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Bootstrap::decode(&extra).is_err());
    }

    #[test]
    fn a_snapshot_on_disk_only_is_asked_for_then_served_then_let_go() {
        use raft::Storage as _;
        let storage = LogStorage::new(MemStorage::new());
        storage.set_snapshot(raft_snapshot(10, 2, vec![1, 2], Vec::new()));
        let unavailable = raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable);
        assert_eq!(storage.snapshot(5, 2).unwrap_err(), unavailable);
        assert!(
            storage.take_data_wanted(),
            "the node is asked to read the file"
        );
        assert!(!storage.take_data_wanted());
        assert_eq!(storage.snapshot_index_term(), (10, 2));
        storage.set_snapshot_data(9, b"older".to_vec());
        assert!(
            storage.snapshot(5, 2).is_err(),
            "data of another snapshot is ignored"
        );
        storage.set_snapshot_data(10, b"data".to_vec());
        assert_eq!(&storage.snapshot(5, 2).unwrap().data[..], b"data");
        storage.drop_snapshot_data();
        assert!(storage.snapshot(5, 2).is_err());
        // A follower the snapshot's configuration does not know wants a new snapshot instead.
        assert!(storage.snapshot(5, 3).is_err());
        assert!(storage.take_snapshot_wanted());
    }

    #[test]
    fn snapshot_payload_round_trips() {
        let mut members = Membership::default();
        members
            .apply(&MemberChange::Add(Member {
                id: 1,
                name: "a".into(),
                peer_urls: vec!["http://a:1".into()],
                client_urls: vec![],
            }))
            .unwrap();
        let p = encode_snapshot_payload(&[1, 2], &members, b"store-bytes");
        let back = decode_snapshot_payload(&p).unwrap();
        assert_eq!(back.voters, vec![1, 2]);
        assert_eq!(back.members, members);
        assert_eq!(back.store, b"store-bytes");
        assert!(decode_snapshot_payload(&p[..3]).is_err());
    }

    #[test]
    fn bootstrap_entries_are_the_same_whatever_the_order() {
        let a = Member::new("a", &["http://127.0.0.1:1".into()], &[], "t");
        let b = Member::new("b", &["http://127.0.0.2:1".into()], &[], "t");
        let one = bootstrap_entries(&[a.clone(), b.clone()]);
        let two = bootstrap_entries(&[b, a]);
        assert_eq!(one, two);
        assert_eq!(
            one.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
            vec![(1, 1), (2, 1)]
        );
        let mut voters = voters_after(vec![], &one);
        voters.sort_unstable();
        let mut want = vec![one_id(&one[0]), one_id(&one[1])];
        want.sort_unstable();
        assert_eq!(voters, want);
    }

    fn one_id(e: &Entry) -> u64 {
        ConfChange::parse_from_bytes(&e.data).unwrap().node_id
    }
}
