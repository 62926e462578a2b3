//! `backup --data-dir D --backup-dir B [--wal-dir W] [--backup-wal-dir BW]`: a copy of a
//! member's snapshot and WAL under new member and cluster IDs, for `--force-new-cluster`
//! (manual §6.3). The work is `raft::backup`; this runs it on a one-off glommio executor.

use std::path::Path;

use super::cli::BackupArgs;
use super::{Exit, EXIT_BAD_ARGS};
use crate::raft::storage::Paths;

pub fn backup(a: &BackupArgs) -> Result<(), Exit> {
    let (Some(data_dir), Some(backup_dir)) = (&a.data_dir, &a.backup_dir) else {
        eprintln!("Error:  backup needs --data-dir and --backup-dir");
        return Err(Exit(EXIT_BAD_ARGS));
    };
    if a.with_v3 {
        eprintln!("Error:  --with-v3: tern has no v3 backend to back up");
        return Err(Exit(EXIT_BAD_ARGS));
    }
    let src = Paths::new(Path::new(data_dir), a.wal_dir.as_deref().map(Path::new));
    let dst = Paths::new(
        Path::new(backup_dir),
        a.backup_wal_dir.as_deref().map(Path::new),
    );
    let run = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("ternctl-backup")
        .io_memory(1 << 20)
        .spawn(move || async move { crate::raft::backup::backup(&src, &dst).await });
    let outcome = match run {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|e| Err(format!("backup failed: {e}"))),
        Err(e) => Err(format!("cannot start an io_uring executor: {e}")),
    };
    match outcome {
        Ok(s) => {
            eprintln!(
                "backup: member {:x} of cluster {:x} in {backup_dir} ({} entries after snapshot {})",
                s.member_id,
                s.cluster_id,
                s.entries,
                s.snapshot_index
                    .map_or_else(|| "none".to_string(), |i| i.to_string())
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("Error:  {e}");
            Err(Exit(EXIT_BAD_ARGS))
        }
    }
}
