//! Snapshots on the raft node: taking one every `--snapshot-count` applied entries, or when a
//! follower needs a newer one than the last (the newest published version of the store is
//! encoded on a blocking thread while the loop goes on applying, then written to a file),
//! compacting the log and purging old files once it is durable, and installing a snapshot a
//! leader sent because this member fell behind its compacted log.

use std::sync::atomic::Ordering;

use raft::eraftpb::Snapshot;
use raft::Storage as _;

use super::storage::{self, raft_snapshot};
use super::{PeerSender, RaftDriver};
use crate::ratelog::RateLimited;
use crate::shard::{RaftInput, RestorePoint, ShardMsg};
use crate::store::Store;
use crate::wal::WalFs;

/// A failed snapshot is tried again after this, doubling with every failure in a row.
const SNAPSHOT_RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(500);
const SNAPSHOT_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

impl<F: WalFs + Clone + 'static, P: PeerSender> RaftDriver<F, P> {
    /// Every `--snapshot-count` applied entries: write the published version of the store to a
    /// snapshot file (encoded on a blocking thread, so the loop keeps applying), then compact
    /// the log and purge old files.
    pub(super) fn maybe_snapshot(&mut self) {
        if self.snapshot_in_flight.is_some()
            || self
                .snapshot_retry
                .is_some_and(|(at, _)| self.env.clock.now() < at)
        {
            return;
        }
        let wanted = self.node.store().take_snapshot_wanted()
            && (self.applied_index > self.snapshot_index || self.snapshot_rewrite);
        let due = self.applied_index >= self.snapshot_index + self.settings.snapshot_count.max(1);
        if !due && !wanted {
            return;
        }
        self.snapshot_rewrite = false;
        // The published version is the applied one: both move together in apply_committed.
        let started = self.env.clock.now();
        let source = self.store.published().snapshot();
        let index = source.raft_index();
        let Ok(term) = self.node.store().term(index) else {
            return;
        };
        let voters = self.node.raft.prs().conf().to_conf_state().voters;
        let members = self.members.clone();
        let stall = self
            .env
            .clock
            .now()
            .saturating_duration_since(started)
            .as_micros() as u64;
        let status = &self.shard.shared.raft;
        status.snapshots.fetch_add(1, Ordering::Relaxed);
        status
            .snapshot_stall_micros_total
            .fetch_add(stall, Ordering::Relaxed);
        status
            .snapshot_stall_micros_max
            .fetch_max(stall, Ordering::Relaxed);
        self.snapshot_in_flight = Some(raft_snapshot(index, term, voters.clone(), Vec::new()));
        let dir = self.settings.snap_dir.clone();
        let inbox = self.inbox.clone();
        let histograms = self.shard.shared.raft.snap_save.clone();
        let blocking = self.env.blocking;
        glommio::spawn_local(async move {
            let result = blocking
                .run(move || {
                    let payload =
                        storage::encode_snapshot_payload(&voters, &members, &source.encode());
                    crate::snap::save_timed(&dir, index, term, &payload)
                })
                .await
                .map(|(_, times)| histograms.observe(times))
                .map_err(|e| e.to_string());
            inbox.push(RaftInput::SnapshotSaved {
                index,
                term,
                result,
            });
        })
        .detach();
    }

    pub(super) async fn on_snapshot_saved(
        &mut self,
        index: u64,
        term: u64,
        result: Result<(), String>,
    ) -> Result<(), String> {
        let snapshot = self.snapshot_in_flight.take();
        if let Err(e) = result {
            static FAILED: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
            let failures = self.snapshot_retry.map_or(0, |(_, n)| n) + 1;
            let wait = SNAPSHOT_RETRY_MIN
                .saturating_mul(1 << failures.min(16))
                .min(SNAPSHOT_RETRY_MAX);
            self.snapshot_retry = Some((self.env.clock.now() + wait, failures));
            crate::ratelog!(
                FAILED,
                "snapshot at {index} failed ({failures} in a row; next attempt in {wait:?}): {e}"
            );
            return Ok(());
        }
        self.snapshot_retry = None;
        self.wal.append_snapshot_marker(index, term);
        self.wal.sync().await.map_err(|e| e.to_string())?;
        self.snapshot_index = self.snapshot_index.max(index);
        if let Some(snapshot) = snapshot {
            // Without its data: that is read back from the file if a follower needs it.
            self.node.mut_store().set_snapshot(snapshot);
        }
        if let Err(e) = self.node.mut_store().mem.wl().compact(index) {
            tracing::error!("compacting the raft log to {index}: {e}");
        }
        self.purge();
        Ok(())
    }

    /// Reads the newest snapshot's data back from its file when raft wanted it for a follower
    /// (one read at a time; raft asks again with a later heartbeat reply).
    pub(super) fn load_snapshot_data_if_wanted(&mut self) {
        if self.snapshot_loading || !self.node.store().take_data_wanted() {
            return;
        }
        let (index, term) = self.node.store().snapshot_index_term();
        self.snapshot_loading = true;
        let dir = self.settings.snap_dir.clone();
        let inbox = self.inbox.clone();
        let blocking = self.env.blocking;
        glommio::spawn_local(async move {
            let result = blocking
                .run(move || crate::snap::load(&dir, index, term))
                .await
                .map_err(|e| e.to_string());
            inbox.push(RaftInput::SnapshotLoaded { index, result });
        })
        .detach();
    }

    pub(super) fn on_snapshot_loaded(&mut self, index: u64, result: Result<Vec<u8>, String>) {
        self.snapshot_loading = false;
        match result {
            Ok(data) => self.node.store().set_snapshot_data(index, data),
            Err(e) => {
                static FAILED: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
                crate::ratelog!(
                    FAILED,
                    "reading snapshot {index} for a follower: {e}; taking a new one"
                );
                self.node.store().want_new_snapshot();
                self.snapshot_rewrite = true;
            }
        }
    }

    fn purge(&mut self) {
        if let Err(e) = self.wal.purge(self.snapshot_index, self.settings.max_wals) {
            static FAILED: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
            crate::ratelog!(FAILED, "purging WAL segments: {e}");
        }
        if let Err(e) = crate::snap::purge(&self.settings.snap_dir, self.settings.max_snapshots) {
            static FAILED: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
            crate::ratelog!(FAILED, "purging snapshots: {e}");
        }
    }

    /// A snapshot from the leader: persist it (file, then WAL marker), replace raft's log, the
    /// member list and the store (every shard's watches end).
    pub(super) async fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), String> {
        let meta = snapshot.get_metadata();
        let (index, term) = (meta.index, meta.term);
        let payload = storage::decode_snapshot_payload(&snapshot.data)
            .map_err(|e| format!("snapshot from the leader at {index}: {e}"))?;
        let (dir, data) = (self.settings.snap_dir.clone(), snapshot.data.to_vec());
        self.env
            .blocking
            .run(move || crate::snap::save_timed(&dir, index, term, &data))
            .await
            .map(|(_, times)| self.shard.shared.raft.snap_save.observe(times))
            .map_err(|e| format!("saving the leader's snapshot at {index}: {e}"))?;
        self.wal.append_snapshot_marker(index, term);
        let hs = self.node.raft.hard_state();
        self.wal
            .set_hard_state(hs.term.max(term), hs.vote, hs.commit.max(index));
        self.wal.sync().await.map_err(|e| e.to_string())?;
        tracing::info!(
            "installed a snapshot from the leader at index {index} ({} bytes)",
            snapshot.data.len()
        );

        self.store = Store::restore(payload.store, self.store.published().clone(), index, term)
            .map_err(|e| {
                format!("restoring the store from the leader's snapshot at {index}: {e:?}")
            })?;
        let point = RestorePoint {
            index,
            term,
            store_index: self.store.index(),
        };
        self.members = payload.members;
        // Kept without its data, as every snapshot (read back from the file when wanted).
        let mut bare = snapshot;
        bare.data = Default::default();
        self.node
            .mut_store()
            .mem
            .wl()
            .apply_snapshot(bare.clone())
            .map_err(|e| format!("raft snapshot: {e}"))?;
        self.node.mut_store().set_snapshot(bare);
        self.members_changed();
        self.shard.restore(point);
        for peer in 0..self.shard.shared.nshards {
            if peer != self.shard.id {
                self.shard.send_to(peer, ShardMsg::Restore(point));
            }
        }
        self.applied_index = index;
        self.snapshot_index = index;
        self.purge();
        Ok(())
    }
}
