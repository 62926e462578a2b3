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
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::storage::MemStorage;

use crate::snap;
use crate::wal::Wal;

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

/// What a snapshot file carries: raft's configuration at the snapshot and the store's bytes.
// Format (version 1): [u8 1][u32 voter count][u64 voter]*[store snapshot bytes…]
pub fn encode_snapshot_payload(voters: &[u64], store: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + 8 * voters.len() + store.len());
    out.push(1);
    out.extend_from_slice(&(voters.len() as u32).to_le_bytes());
    for v in voters {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(store);
    out
}

pub fn decode_snapshot_payload(bytes: &[u8]) -> Result<(Vec<u64>, &[u8]), String> {
    let mut r = Reader(bytes);
    if r.u8()? != 1 {
        return Err("unknown snapshot payload version".into());
    }
    let n = r.u32()? as usize;
    let mut voters = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        voters.push(r.u64()?);
    }
    Ok((voters, r.0))
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

/// The durable log, ready for raft.
pub struct Recovered {
    pub bootstrap: Bootstrap,
    pub wal: Wal,
    pub storage: MemStorage,
    /// The store part of the snapshot raft starts from (every shard restores it).
    pub store_snapshot: Option<Vec<u8>>,
    /// Raft index of that snapshot (0 without one): entries up to it are already applied.
    pub applied: u64,
    /// The index a member must apply before it serves clients: the highest known committed
    /// (for a lone voter, its whole log, every entry of which it will commit again).
    pub commit: u64,
    /// True when this start created the WAL (first start of this member).
    pub fresh: bool,
    pub warnings: Vec<String>,
}

/// Opens the member's WAL and newest snapshot, or creates them for `fresh` on first start.
pub async fn recover(paths: &Paths, fresh: Bootstrap) -> Result<Recovered, String> {
    if !Wal::exists(&paths.wal) {
        std::fs::create_dir_all(&paths.snap)
            .map_err(|e| format!("cannot create {}: {e}", paths.snap.display()))?;
        let wal = Wal::create(&paths.wal, &fresh.encode())
            .await
            .map_err(|e| e.to_string())?;
        let storage =
            MemStorage::new_with_conf_state(ConfState::from((fresh.voters.clone(), vec![])));
        return Ok(Recovered {
            bootstrap: fresh,
            wal,
            storage,
            store_snapshot: None,
            applied: 0,
            commit: 0,
            fresh: true,
            warnings: Vec::new(),
        });
    }
    let mut warnings = Vec::new();
    let loaded = snap::load_newest_async(paths.snap.clone())
        .await
        .map_err(|e| e.to_string())?;
    warnings.extend(
        loaded
            .skipped
            .iter()
            .map(|s| format!("skipped snapshot {s}")),
    );
    let after = loaded.snapshot.as_ref().map_or(0, |s| s.index);
    let (wal, rec) = Wal::open(&paths.wal, after)
        .await
        .map_err(|e| e.to_string())?;
    warnings.extend(rec.warnings);
    let bootstrap = Bootstrap::decode(&rec.metadata)
        .map_err(|e| format!("{}: member metadata: {e}", paths.wal.display()))?;

    let mut store_snapshot = None;
    let mut applied = 0;
    let (storage, snap_index, snap_term) = match &loaded.snapshot {
        Some(s) => {
            let (voters, store) = decode_snapshot_payload(&s.payload)
                .map_err(|e| format!("{}: snapshot {}: {e}", paths.snap.display(), s.index))?;
            store_snapshot = Some(store.to_vec());
            applied = s.index;
            let mut meta = SnapshotMetadata {
                index: s.index,
                term: s.term,
                ..Default::default()
            };
            meta.set_conf_state(ConfState::from((voters, vec![])));
            let mut snapshot = Snapshot::default();
            snapshot.set_metadata(meta);
            let storage = MemStorage::new();
            storage
                .wl()
                .apply_snapshot(snapshot)
                .map_err(|e| format!("raft snapshot: {e}"))?;
            (storage, s.index, s.term)
        }
        None => (
            MemStorage::new_with_conf_state(ConfState::from((bootstrap.voters.clone(), vec![]))),
            0,
            0,
        ),
    };
    {
        let mut core = storage.wl();
        let mut entries = Vec::with_capacity(rec.entries.len());
        for (index, _term, data) in rec.entries {
            if index <= snap_index {
                continue;
            }
            let entry = Entry::parse_from_bytes(&data)
                .map_err(|e| format!("{}: entry {index}: {e}", paths.wal.display()))?;
            entries.push(entry);
        }
        core.append(&entries)
            .map_err(|e| format!("raft log: {e}"))?;
        if let Some((term, vote, commit)) = rec.hard_state {
            core.set_hardstate(HardState {
                term: term.max(snap_term),
                vote,
                commit: commit.max(snap_index),
                ..Default::default()
            });
        }
    }
    let mut commit = storage
        .initial_state()
        .map(|s| s.hard_state.commit)
        .unwrap_or(applied);
    if bootstrap.voters == [bootstrap.member_id] {
        // A lone voter commits its whole log again as soon as it leads; the hard state's commit
        // index may lag the last acknowledged write by one sync, so wait for all of it.
        commit = commit.max(storage.last_index().unwrap_or(commit));
    }
    Ok(Recovered {
        bootstrap,
        wal,
        storage,
        store_snapshot,
        applied,
        commit,
        fresh: false,
        warnings,
    })
}

use raft::Storage as _;

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
    fn snapshot_payload_round_trips() {
        let p = encode_snapshot_payload(&[1, 2], b"store-bytes");
        let (voters, store) = decode_snapshot_payload(&p).unwrap();
        assert_eq!(voters, vec![1, 2]);
        assert_eq!(store, b"store-bytes");
        assert!(decode_snapshot_payload(&p[..3]).is_err());
    }
}
