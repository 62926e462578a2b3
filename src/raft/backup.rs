//! `ternctl backup`: copies a member's newest snapshot and its WAL into a fresh data dir under
//! a new member ID and cluster ID, so that `tern --force-new-cluster` can start a new cluster
//! from it without ever talking to the old one (etcd's `etcdctl backup`, manual §6.3).
//!
//! The source may belong to a running member: its WAL segments are first copied aside with
//! plain reads and recovered from the copy, so the source is never repaired or truncated.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::storage::{Bootstrap, Paths};
use crate::snap;
use crate::wal::Wal;

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupSummary {
    pub member_id: u64,
    pub cluster_id: u64,
    pub snapshot_index: Option<u64>,
    pub entries: usize,
}

/// A fresh ID that no existing member or cluster has (time, process and the old ID hashed).
fn fresh_id(old: u64, salt: &str) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    crate::cluster::member_id(&[format!("{old:x}-{now}-{}", std::process::id())], salt)
}

fn copy_dir_files(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    for entry in entries.flatten() {
        // The spare segment is zeros being prepared for the next rotation: not part of the log.
        if entry.file_type().is_ok_and(|t| t.is_file())
            && entry.file_name() != crate::wal::SPARE_SEGMENT
        {
            let dst = to.join(entry.file_name());
            std::fs::copy(entry.path(), &dst)
                .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Backs up the member at `src` into `dst` (which must not hold a WAL yet). Runs on a glommio
/// executor (the WAL uses its DMA files).
pub async fn backup(src: &Paths, dst: &Paths) -> Result<BackupSummary, String> {
    if !Wal::exists(&src.wal) {
        return Err(format!("no WAL in {}", src.wal.display()));
    }
    if Wal::exists(&dst.wal) {
        return Err(format!("{} already holds a WAL", dst.wal.display()));
    }
    let loaded = snap::load_newest(&src.snap).map_err(|e| e.to_string())?;
    let after = loaded.snapshot.as_ref().map_or(0, |s| s.index);

    let scratch = dst.wal.with_file_name("wal.backup-source");
    let _ = std::fs::remove_dir_all(&scratch);
    copy_dir_files(&src.wal, &scratch)?;
    let opened = Wal::open(&scratch, after).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let (_, rec) = opened.map_err(|e| e.to_string())?;
    let old = Bootstrap::decode(&rec.metadata)
        .map_err(|e| format!("{}: member metadata: {e}", src.wal.display()))?;
    let fresh = Bootstrap {
        member_id: fresh_id(old.member_id, "member"),
        cluster_id: fresh_id(old.cluster_id, "cluster"),
        name: old.name.clone(),
        voters: old.voters.clone(),
    };

    if let Some(s) = &loaded.snapshot {
        snap::save(&dst.snap, s.index, s.term, &s.payload).map_err(|e| e.to_string())?;
    } else {
        std::fs::create_dir_all(&dst.snap)
            .map_err(|e| format!("cannot create {}: {e}", dst.snap.display()))?;
    }
    let mut wal = Wal::create(&dst.wal, &fresh.encode())
        .await
        .map_err(|e| e.to_string())?;
    if let Some(s) = &loaded.snapshot {
        wal.append_snapshot_marker(s.index, s.term);
    }
    for (index, term, data) in &rec.entries {
        wal.append_entry(*index, *term, data);
    }
    if let Some((term, _vote, commit)) = rec.hard_state {
        // The vote belonged to the old cluster.
        wal.set_hard_state(term, 0, commit);
    }
    wal.sync().await.map_err(|e| e.to_string())?;
    Ok(BackupSummary {
        member_id: fresh.member_id,
        cluster_id: fresh.cluster_id,
        snapshot_index: loaded.snapshot.map(|s| s.index),
        entries: rec.entries.len(),
    })
}
