//! The write-ahead log: bytes in, durable bytes out.
//!
//! Owns the on-disk log of raft's entries, hard state and snapshot markers: framing
//! ([`record`]), segment files and their recovery ([`segment`]), O_DIRECT I/O ([`file`]) and
//! group commit ([`Wal::sync`]). It knows nothing of raft-rs or store types: an entry is
//! `(index, term, opaque bytes)`, metadata is opaque bytes.
//!
//! Layout of a WAL directory: segment files `%016x-%016x.wal` (sequence, index of the first
//! entry expected in it), each preallocated to the segment size (64 MiB by default),
//! zero-filled (see [`WalFile::zero_fill`]; the next one is prepared in the background as
//! [`SPARE_SEGMENT`]) and starting with `Crc` (carries the checksum chain), `Metadata` and,
//! when known, `HardState` records, so any suffix of segments is self-contained after older
//! ones are purged.
//!
//! Durability, as implemented:
//! - **Group commit.** `append_*` and `set_hard_state` only encode into an in-memory buffer.
//!   [`Wal::sync`] writes everything buffered since the last sync with one O_DIRECT write and
//!   one fdatasync (on disk, one `O_DSYNC` write: durable when it completes). The write starts
//!   at the block holding the end of the log: the partial tail block is kept in memory and
//!   rewritten with the new records after it. Whatever the caller
//!   buffers while a sync is in flight (the caller owns the `&mut Wal` for the duration of the
//!   sync, so it queues proposals itself) goes out together in the next sync.
//! - **Rotation.** When a batch starts and the current segment has reached the segment size,
//!   the batch goes into a new segment named after the last entry index + 1: the spare renamed
//!   when it is ready (a freshly preallocated file otherwise), written durably, then the
//!   directory fsync'ed. Segments may overshoot the size by one batch.
//! - **A full disk.** Writes inside a segment never need new space (it is preallocated and
//!   zero-filled); only a rotation does, and it only renames the spare when one is ready. When
//!   the spare cannot be prepared (ENOSPC), its file is removed, [`Wal::room`] shrinks to what
//!   is left of the current segment less [`ROOM_RESERVE`] (kept for hard states), callers
//!   refuse entries that do not fit, and [`Wal::maintain`] tries again every second, so writes
//!   resume by themselves once space returns.
//! - **Failure.** A failed write or fdatasync poisons the `Wal`: every later `sync` fails with
//!   [`WalError::Poisoned`]. After a failed fdatasync nothing can be assumed about what reached
//!   the disk; the only safe continuation is to reopen (recover) from the files.
//! - **Recovery** ([`Wal::open`]): records are read in order, checking checksums and the chain.
//!   A torn or corrupt record at the tail of the last segment is truncated (the tail block is
//!   rewritten clean, the rest of the file re-preallocated) and reported in
//!   [`Recovered::warnings`]; damage with valid data after it, or anywhere in an older segment,
//!   is [`WalError::Corrupt`] naming the file and offset. Later entries win: an entry whose index
//!   is not past the last one replaces the suffix from that index (raft log truncation).

pub mod bench_support;
pub mod file;
pub mod record;
pub mod segment;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ratelog::RateLimited;

pub use file::{DmaFs, DmaWalFile, MemFile, MemFs, WalFile, WalFs};
use record::Record;
use segment::{ScanEnd, SegmentName};

/// Default size segments are preallocated to (and rotated at).
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// What [`Wal::room`] keeps back of a segment when no next segment is prepared (an eighth of
/// the segment when that is less): enough for a very long run of hard-state records.
pub const ROOM_RESERVE: u64 = 4 << 20;

/// Tunables.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Segment file size: preallocated on creation; a new segment is started by the first batch
    /// after the current one reaches it.
    pub segment_size: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// What one [`Wal::sync`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// Bytes written (block padded, the rewritten tail block included).
    pub bytes: u64,
    /// Records made durable.
    pub records: u64,
    /// fdatasync/fsync calls issued (1, or 2 when a new segment was started: file + directory).
    pub fsyncs: u64,
}

/// Everything read back by [`Wal::open`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The latest metadata record.
    pub metadata: Vec<u8>,
    /// The latest hard state (term, vote, commit).
    pub hard_state: Option<(u64, u64, u64)>,
    /// Entries with index > `after`, contiguous, later writes having replaced earlier ones.
    pub entries: Vec<(u64, u64, Vec<u8>)>,
    /// Every snapshot marker (index, term) in the segments read, in log order.
    pub snapshot_markers: Vec<(u64, u64)>,
    /// What recovery repaired or found odd (torn tail truncated, empty segment removed, ...).
    pub warnings: Vec<String>,
}

/// WAL failures.
#[derive(Debug)]
pub enum WalError {
    /// An I/O call failed.
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Damage that is not a torn tail: the log cannot be trusted past `offset` of `file`.
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// `create` on a directory that already holds WAL segments.
    AlreadyExists(PathBuf),
    /// `open` on a directory without WAL segments.
    NotFound(PathBuf),
    /// A record body over [`record::MAX_BODY_LEN`] was appended (reported by the next sync).
    RecordTooLarge(usize),
    /// An earlier sync failed; reopen the WAL.
    Poisoned,
    /// `open` after index `after`, but the oldest segment left (`file`) begins at
    /// `first_index` > `after + 1`: the entries between are in no segment (a purge kept only
    /// what a snapshot that is now gone made unnecessary).
    Gap {
        file: PathBuf,
        first_index: u64,
        after: u64,
    },
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { op, path, source } => {
                write!(f, "wal: {op} {}: {source}", path.display())
            }
            WalError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "wal: {} is corrupt at offset {offset}: {reason}",
                file.display()
            ),
            WalError::AlreadyExists(d) => write!(f, "wal: {} already holds a WAL", d.display()),
            WalError::NotFound(d) => write!(f, "wal: no WAL segments in {}", d.display()),
            WalError::RecordTooLarge(n) => write!(
                f,
                "wal: record body of {n} bytes exceeds {} bytes",
                record::MAX_BODY_LEN
            ),
            WalError::Poisoned => write!(f, "wal: an earlier write or fdatasync failed"),
            WalError::Gap {
                file,
                first_index,
                after,
            } => write!(
                f,
                "wal: file not found: entries {}..={} are in no WAL segment (the oldest, {}, \
                 begins at entry {first_index})",
                after + 1,
                first_index - 1,
                file.display()
            ),
        }
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `data` at `pos` and makes it durable: an fdatasync after it, unless the file's
/// writes already are (see [`WalFile::durable_writes`]).
async fn write_durably<W: WalFile>(
    file: &mut W,
    data: &[u8],
    pos: u64,
    path: &Path,
) -> Result<(), WalError> {
    file.write_at(data, pos)
        .await
        .map_err(io_err("write", path))?;
    if !file.durable_writes() {
        file.fdatasync().await.map_err(io_err("fdatasync", path))?;
    }
    Ok(())
}

fn align_down(v: u64, a: u64) -> u64 {
    v - v % a
}

fn align_up(v: u64, a: u64) -> u64 {
    align_down(v.saturating_add(a - 1), a)
}

#[derive(Debug, Clone)]
struct Segment {
    name: SegmentName,
    path: PathBuf,
}

/// The write-ahead log. `F` is the file system: [`DmaFs`] (O_DIRECT, the default) or
/// [`MemFs`] (tests).
pub struct Wal<F: WalFs = DmaFs> {
    fs: F,
    dir: PathBuf,
    opts: WalOptions,
    /// All segments, oldest first; the last one is being written.
    segments: Vec<Segment>,
    file: F::File,
    block: u64,
    /// File offset of `buf[0]` (block aligned).
    seg_base: u64,
    /// The partial tail block already on disk, then the records buffered since the last sync.
    buf: Vec<u8>,
    /// Records buffered since the last sync.
    pending: u64,
    /// Chain value after the last buffered record.
    crc: u32,
    /// Index of the last entry appended.
    last_index: u64,
    metadata: Vec<u8>,
    hard_state: Option<(u64, u64, u64)>,
    /// The buffered batch starts a new segment whose first index is this.
    rotate_to: Option<u64>,
    deferred: Option<WalError>,
    poisoned: bool,
    /// The next segment, zero-filled in the background (see [`SPARE_SEGMENT`]).
    spare: Spare,
}

/// Where the preparation of the next segment stands.
enum Spare {
    /// Nothing prepared or under way.
    Idle,
    Preparing(glommio::Task<io::Result<()>>),
    /// The spare file is complete: the next rotation needs no new space.
    Ready,
    /// The last preparation failed (a full disk); its file was removed. Tried again from
    /// [`Wal::maintain`] once the time has come.
    Failed(Instant),
}

/// A failed spare preparation is tried again this long after.
const SPARE_RETRY: Duration = Duration::from_secs(1);

impl<F: WalFs> Drop for Wal<F> {
    /// The spare lives only as long as its WAL: dropping the task stops its preparation, and
    /// the file goes too (a process that exits without dropping leaves it for the next open).
    fn drop(&mut self) {
        if !matches!(std::mem::replace(&mut self.spare, Spare::Idle), Spare::Idle) {
            let _ = self.fs.remove(&self.dir.join(SPARE_SEGMENT));
        }
    }
}

/// The file the next segment is prepared in, off the write path: created, zero-filled to the
/// segment size and fdatasync'ed by a background task, then renamed into place at rotation, so
/// that appends to every segment overwrite written blocks (see [`WalFile::zero_fill`]). A spare
/// found on open is an interrupted preparation and is deleted.
pub const SPARE_SEGMENT: &str = "next-segment.spare";

impl Wal<DmaFs> {
    /// Creates a WAL in `dir` (created if missing) holding `metadata`, on O_DIRECT files.
    pub async fn create(dir: &Path, metadata: &[u8]) -> Result<Wal, WalError> {
        Wal::create_with(DmaFs, dir, metadata, WalOptions::default()).await
    }

    /// Opens an existing WAL, reads every record after `after` (a snapshot index; 0 = all),
    /// truncating a torn/corrupt tail with a warning (in [`Recovered::warnings`]) and failing
    /// with [`WalError::Corrupt`] for damage before the tail.
    pub async fn open(dir: &Path, after: u64) -> Result<(Wal, Recovered), WalError> {
        Wal::open_with(DmaFs, dir, after, WalOptions::default()).await
    }

    /// Whether `dir` holds WAL segments.
    pub fn exists(dir: &Path) -> bool {
        Wal::exists_with(&DmaFs, dir)
    }
}

struct Scan {
    rec: Recovered,
    /// Per segment read (from `start`): how it ended, and the last entry index at its end.
    ends: Vec<(ScanEnd, u64)>,
    have_metadata: bool,
}

impl<F: WalFs + Clone + 'static> Wal<F> {
    /// Whether `dir` holds WAL segments.
    pub fn exists_with(fs: &F, dir: &Path) -> bool {
        fs.list(dir)
            .map(|names| names.iter().any(|n| SegmentName::parse(n).is_some()))
            .unwrap_or(false)
    }

    /// [`Wal::create`] on any file system, with options.
    pub async fn create_with(
        fs: F,
        dir: &Path,
        metadata: &[u8],
        opts: WalOptions,
    ) -> Result<Self, WalError> {
        if Self::exists_with(&fs, dir) {
            return Err(WalError::AlreadyExists(dir.to_path_buf()));
        }
        fs.create_dir_all(dir)
            .map_err(io_err("create directory", dir))?;
        let name = SegmentName {
            seq: 0,
            first_index: 0,
        };
        let path = dir.join(name.file_name());
        let tmp = dir.join(format!("{}.tmp", name.file_name()));
        let mut buf = Vec::with_capacity(64 << 10);
        let mut crc = record::encode(&mut buf, 0, &Record::Crc(0))
            .map_err(|e| WalError::RecordTooLarge(e.body_len))?;
        crc = record::encode(&mut buf, crc, &Record::Metadata(metadata))
            .map_err(|e| WalError::RecordTooLarge(e.body_len))?;
        let written = async {
            let mut file = fs.create(&tmp).await.map_err(io_err("create", &tmp))?;
            let block = file.alignment().max(record::SECTOR as u64);
            file.preallocate(opts.segment_size)
                .await
                .map_err(io_err("preallocate", &tmp))?;
            file.zero_fill(0, opts.segment_size)
                .await
                .map_err(io_err("zero-fill", &tmp))?;
            let mut head = buf.clone();
            head.resize(align_up(buf.len() as u64, block) as usize, 0);
            file.write_at(&head, 0)
                .await
                .map_err(io_err("write", &tmp))?;
            file.fdatasync().await.map_err(io_err("fdatasync", &tmp))?;
            Ok::<_, WalError>((file, block))
        }
        .await;
        // A full disk (or any failure) leaves no half-made segment behind.
        let (file, block) = written.inspect_err(|_| {
            let _ = fs.remove(&tmp);
        })?;
        let len = buf.len() as u64;
        fs.rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        fs.sync_dir(dir)
            .await
            .map_err(io_err("fsync directory", dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent)
                .await
                .map_err(io_err("fsync directory", parent))?;
        }
        buf.truncate(len as usize);
        let base = align_down(len, block);
        buf.drain(..base as usize);
        let mut wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            opts,
            segments: vec![Segment { name, path }],
            file,
            block,
            seg_base: base,
            buf,
            pending: 0,
            crc,
            last_index: 0,
            metadata: metadata.to_vec(),
            hard_state: None,
            rotate_to: None,
            deferred: None,
            poisoned: false,
            spare: Spare::Idle,
        };
        wal.start_spare();
        Ok(wal)
    }

    fn list_segments(fs: &F, dir: &Path) -> Result<Vec<Segment>, WalError> {
        let names = fs.list(dir).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                WalError::NotFound(dir.to_path_buf())
            } else {
                WalError::Io {
                    op: "list",
                    path: dir.to_path_buf(),
                    source: e,
                }
            }
        })?;
        let mut segs: Vec<Segment> = names
            .iter()
            .filter_map(|n| {
                SegmentName::parse(n).map(|name| Segment {
                    name,
                    path: dir.join(n),
                })
            })
            .collect();
        segs.sort_by_key(|s| s.name.seq);
        for w in segs.windows(2) {
            if w[1].name.seq != w[0].name.seq.wrapping_add(1) {
                return Err(WalError::Corrupt {
                    file: w[1].path.clone(),
                    offset: 0,
                    reason: format!(
                        "segment sequence gap: {} follows {}",
                        w[1].name.seq, w[0].name.seq
                    ),
                });
            }
        }
        Ok(segs)
    }

    async fn scan_from(
        fs: &F,
        segs: &[Segment],
        start: usize,
        after: u64,
    ) -> Result<Scan, WalError> {
        let mut rec = Recovered::default();
        let mut have_metadata = false;
        let mut ends = Vec::new();
        let mut chain = None;
        let mut last_index = segs[start].name.first_index.saturating_sub(1);
        for (i, seg) in segs.iter().enumerate().skip(start) {
            let is_last = i + 1 == segs.len();
            let mut f = fs
                .open(&seg.path)
                .await
                .map_err(io_err("open", &seg.path))?;
            let data = f.read_all().await.map_err(io_err("read", &seg.path))?;
            let end = segment::scan(&data, chain, is_last, |r| {
                match *r {
                    Record::Metadata(m) => {
                        rec.metadata.clear();
                        rec.metadata.extend_from_slice(m);
                        have_metadata = true;
                    }
                    Record::Entry { index, term, data } => {
                        last_index = index;
                        push_entry(&mut rec, after, index, term, data);
                    }
                    Record::HardState { term, vote, commit } => {
                        rec.hard_state = Some((term, vote, commit));
                    }
                    Record::Snapshot { index, term } => rec.snapshot_markers.push((index, term)),
                    Record::Crc(_) => {}
                }
                Ok(())
            })
            .map_err(|e| WalError::Corrupt {
                file: seg.path.clone(),
                offset: e.offset as u64,
                reason: e.reason,
            })?;
            chain = Some(end.crc);
            ends.push((end, last_index));
        }
        Ok(Scan {
            rec,
            ends,
            have_metadata,
        })
    }

    /// [`Wal::open`] on any file system, with options.
    pub async fn open_with(
        fs: F,
        dir: &Path,
        after: u64,
        opts: WalOptions,
    ) -> Result<(Self, Recovered), WalError> {
        let mut segs = Self::list_segments(&fs, dir)?;
        if segs.is_empty() {
            return Err(WalError::NotFound(dir.to_path_buf()));
        }
        // etcd's searchIndex: the last segment named at or before `after` holds everything
        // after it; older segments only hold entries <= after (and older metadata).
        let mut start = segs
            .iter()
            .rposition(|s| s.name.first_index <= after)
            .unwrap_or(0);
        if segs[start].name.first_index > after.saturating_add(1) {
            return Err(WalError::Gap {
                file: segs[start].path.clone(),
                first_index: segs[start].name.first_index,
                after,
            });
        }
        let mut warnings = Vec::new();
        let no_metadata = |file: &Path| WalError::Corrupt {
            file: file.to_path_buf(),
            offset: 0,
            reason: "no metadata record".into(),
        };
        let (mut rec, mut ends) = loop {
            let scan = Self::scan_from(&fs, &segs, start, after).await?;
            let last_empty = scan.ends.last().is_some_and(|(e, _)| e.records == 0);
            if !last_empty {
                if !scan.have_metadata {
                    return Err(no_metadata(&segs[start].path));
                }
                break (scan.rec, scan.ends);
            }
            let last = segs.len() - 1;
            if last == 0 {
                return Err(WalError::Corrupt {
                    file: segs[0].path.clone(),
                    offset: 0,
                    reason: "the only segment holds no valid record".into(),
                });
            }
            if start == last {
                // Its predecessor carries the metadata and hard state: read it too.
                start -= 1;
                continue;
            }
            // A segment whose first write never completed (crash while rotating).
            let seg = segs.pop().map(|s| s.path).unwrap_or_default();
            fs.remove(&seg).map_err(io_err("remove", &seg))?;
            fs.sync_dir(dir)
                .await
                .map_err(io_err("fsync directory", dir))?;
            warnings.push(format!(
                "wal: removed {}: it holds no complete record (interrupted rotation)",
                seg.display()
            ));
            let mut scan = scan;
            scan.ends.pop();
            if !scan.have_metadata {
                return Err(no_metadata(&segs[start].path));
            }
            break (scan.rec, scan.ends);
        };
        let cur = segs[segs.len() - 1].clone();
        let (end, last_index) = ends.pop().ok_or_else(|| WalError::Corrupt {
            file: cur.path.clone(),
            offset: 0,
            reason: "no segment was read".into(),
        })?;
        let mut file = fs
            .open(&cur.path)
            .await
            .map_err(io_err("open", &cur.path))?;
        let block = file.alignment().max(record::SECTOR as u64);
        let end_off = end.end as u64;
        let base = align_down(end_off, block);
        let mut tail = file
            .read_at(base, (end_off - base) as usize)
            .await
            .map_err(io_err("read", &cur.path))?;
        // The last record's zero padding may lie past a (truncated) end of file.
        let short = (tail.len() as u64) < end_off - base;
        tail.resize((end_off - base) as usize, 0);
        if let Some((off, why)) = &end.tail_damage {
            warnings.push(format!(
                "wal: {}: {why} at offset {off}; truncated the log there",
                cur.path.display()
            ));
        } else if end.dirty_after_end {
            warnings.push(format!(
                "wal: {}: non-zero bytes after the end of the log at offset {end_off} \
                 (an interrupted write); discarded",
                cur.path.display()
            ));
        }
        if end.tail_damage.is_some() || end.dirty_after_end || short {
            // Rewrite the tail block with zeros after the end, drop everything after it,
            // and preallocate again (new space reads as zeros).
            let mut blk = tail.clone();
            blk.resize(block as usize, 0);
            file.write_at(&blk, base)
                .await
                .map_err(io_err("write", &cur.path))?;
            file.truncate(base + block)
                .await
                .map_err(io_err("truncate", &cur.path))?;
            file.preallocate(opts.segment_size)
                .await
                .map_err(io_err("preallocate", &cur.path))?;
            file.fdatasync()
                .await
                .map_err(io_err("fdatasync", &cur.path))?;
        }
        // A segment preallocated by an older tern (or a rotation that found no spare ready):
        // zero-fill what is still unwritten, once.
        let filled = file
            .zero_fill(base + block, opts.segment_size)
            .await
            .map_err(io_err("zero-fill", &cur.path))?;
        if filled > 0 {
            file.fdatasync()
                .await
                .map_err(io_err("fdatasync", &cur.path))?;
        }
        let spare = dir.join(SPARE_SEGMENT);
        match fs.remove(&spare) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove", &spare)(e));
            }
            _ => {}
        }
        rec.warnings.splice(0..0, warnings);
        tail.reserve(64 << 10);
        let mut wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            opts,
            segments: segs,
            file,
            block,
            seg_base: base,
            buf: tail,
            pending: 0,
            crc: end.crc,
            last_index,
            metadata: rec.metadata.clone(),
            hard_state: rec.hard_state,
            rotate_to: None,
            deferred: None,
            poisoned: false,
            spare: Spare::Idle,
        };
        wal.start_spare();
        Ok((wal, rec))
    }

    fn push(&mut self, rec: &Record<'_>) {
        if self.poisoned || self.deferred.is_some() {
            return;
        }
        self.maybe_start_segment();
        match record::encode(&mut self.buf, self.crc, rec) {
            Ok(c) => {
                self.crc = c;
                self.pending += 1;
            }
            Err(e) => self.deferred = Some(WalError::RecordTooLarge(e.body_len)),
        }
    }

    /// At the start of a batch, if the current segment is full, the batch begins a new segment
    /// with its header records.
    fn maybe_start_segment(&mut self) {
        if self.pending > 0
            || self.rotate_to.is_some()
            || self.seg_base + (self.buf.len() as u64) < self.opts.segment_size
        {
            return;
        }
        self.rotate_to = Some(self.last_index.saturating_add(1));
        self.buf.clear();
        let mut header =
            |buf: &mut Vec<u8>, crc: &mut u32, r: &Record<'_>| match record::encode(buf, *crc, r) {
                Ok(c) => *crc = c,
                Err(e) => self.deferred = Some(WalError::RecordTooLarge(e.body_len)),
            };
        let mut crc = self.crc;
        let seed = crc;
        header(&mut self.buf, &mut crc, &Record::Crc(seed));
        header(&mut self.buf, &mut crc, &Record::Metadata(&self.metadata));
        if let Some((term, vote, commit)) = self.hard_state {
            header(
                &mut self.buf,
                &mut crc,
                &Record::HardState { term, vote, commit },
            );
        }
        self.crc = crc;
        self.pending += if self.hard_state.is_some() { 3 } else { 2 };
    }

    /// Buffers an entry (durable after the next [`Wal::sync`]). An index not past the last
    /// one replaces the log from that index on recovery.
    pub fn append_entry(&mut self, index: u64, term: u64, data: &[u8]) {
        self.push(&Record::Entry { index, term, data });
        self.last_index = index;
    }

    /// Buffers raft's hard state.
    pub fn set_hard_state(&mut self, term: u64, vote: u64, commit: u64) {
        self.push(&Record::HardState { term, vote, commit });
        self.hard_state = Some((term, vote, commit));
    }

    /// Buffers a marker saying a snapshot at `index`/`term` exists.
    pub fn append_snapshot_marker(&mut self, index: u64, term: u64) {
        self.push(&Record::Snapshot { index, term });
    }

    /// Whether records are buffered and not yet synced.
    pub fn has_pending(&self) -> bool {
        self.pending > 0 || self.deferred.is_some()
    }

    /// Writes everything buffered since the last sync in ONE write (re-writing the partial tail
    /// block kept in memory) and ONE fdatasync; the first batch after the current segment
    /// reached the segment size goes to a new preallocated segment instead (then the directory
    /// is fsync'ed too). Nothing buffered: no I/O. Any failure poisons the WAL.
    pub async fn sync(&mut self) -> Result<SyncStats, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        if let Some(e) = self.deferred.take() {
            self.poisoned = true;
            return Err(e);
        }
        if self.pending == 0 {
            return Ok(SyncStats::default());
        }
        let r = self.sync_inner().await;
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    async fn sync_inner(&mut self) -> Result<SyncStats, WalError> {
        let data_len = self.buf.len();
        let padded = align_up(data_len as u64, self.block) as usize;
        self.buf.resize(padded, 0);
        let fsyncs;
        if let Some(first_index) = self.rotate_to {
            let seq = self
                .segments
                .last()
                .map_or(0, |s| s.name.seq.wrapping_add(1));
            let name = SegmentName { seq, first_index };
            let path = self.dir.join(name.file_name());
            let mut f = self.new_segment_file(&path).await?;
            write_durably(&mut f, &self.buf, 0, &path).await?;
            self.fs
                .sync_dir(&self.dir)
                .await
                .map_err(io_err("fsync directory", &self.dir))?;
            self.file = f;
            self.segments.push(Segment { name, path });
            self.seg_base = 0;
            self.rotate_to = None;
            fsyncs = 2;
        } else {
            let path = &self.segments[self.segments.len() - 1].path;
            write_durably(&mut self.file, &self.buf, self.seg_base, path).await?;
            fsyncs = 1;
        }
        let keep_from = align_down(data_len as u64, self.block) as usize;
        self.buf.copy_within(keep_from..data_len, 0);
        self.buf.truncate(data_len - keep_from);
        self.seg_base += keep_from as u64;
        let records = self.pending;
        self.pending = 0;
        Ok(SyncStats {
            bytes: padded as u64,
            records,
            fsyncs,
        })
    }

    /// Starts zero-filling the spare segment in a background task (unless one is under way,
    /// ready, or failed too recently).
    fn start_spare(&mut self) {
        match self.spare {
            Spare::Idle => {}
            Spare::Failed(retry_at) if Instant::now() >= retry_at => {}
            _ => return,
        }
        let fs = self.fs.clone();
        let path = self.dir.join(SPARE_SEGMENT);
        let size = self.opts.segment_size;
        self.spare = Spare::Preparing(glommio::spawn_local(async move {
            let mut f = fs.create(&path).await?;
            f.preallocate(size).await?;
            f.zero_fill(0, size).await?;
            f.fdatasync().await
        }));
    }

    /// Notes a finished spare preparation (a failed one's file is removed, so a full disk
    /// keeps no half-made segment) and starts a new one when one is due: call it now and then
    /// (the raft node does, every tick), so that writes resume by themselves once space is
    /// freed.
    pub async fn maintain(&mut self) {
        self.note_spare_done().await;
        self.start_spare();
    }

    /// If the spare's preparation has finished, records how (removing a failed one's file).
    async fn note_spare_done(&mut self) {
        let Spare::Preparing(task) = &mut self.spare else {
            return;
        };
        match futures_lite::future::poll_once(task).await {
            None => {}
            Some(Ok(())) => self.spare = Spare::Ready,
            Some(Err(e)) => {
                static FAILED: RateLimited = RateLimited::new(crate::ratelog::DEFAULT_INTERVAL);
                crate::ratelog!(
                    FAILED,
                    "preparing the next segment in {} failed: {e}",
                    self.dir.display()
                );
                let _ = self.fs.remove(&self.dir.join(SPARE_SEGMENT));
                self.spare = Spare::Failed(Instant::now() + SPARE_RETRY);
            }
        }
    }

    /// Bytes of entries the WAL can take before it needs space it does not have: unbounded
    /// while the next segment is prepared (a rotation only renames it), else what is left of
    /// the current, preallocated segment less [`ROOM_RESERVE`], which is kept for hard-state
    /// records and raft's own small entries. Callers refuse new entries that do not fit.
    pub fn room(&self) -> u64 {
        if matches!(self.spare, Spare::Ready) {
            return u64::MAX;
        }
        let reserve = ROOM_RESERVE.min(self.opts.segment_size / 8);
        let used = self.seg_base + self.buf.len() as u64;
        self.opts.segment_size.saturating_sub(used + reserve)
    }

    /// The file of a new segment at `path`: the spare renamed, when its preparation finished;
    /// otherwise a freshly preallocated file (whose first writes cost a journal commit each),
    /// removed again if it cannot be preallocated.
    async fn new_segment_file(&mut self, path: &Path) -> Result<F::File, WalError> {
        self.note_spare_done().await;
        let file = if matches!(self.spare, Spare::Ready) {
            self.spare = Spare::Idle;
            let spare = self.dir.join(SPARE_SEGMENT);
            self.fs
                .rename(&spare, path)
                .map_err(io_err("rename", &spare))?;
            self.fs.open(path).await.map_err(io_err("open", path))?
        } else {
            let mut f = self.fs.create(path).await.map_err(io_err("create", path))?;
            if let Err(e) = f.preallocate(self.opts.segment_size).await {
                drop(f);
                let _ = self.fs.remove(path);
                return Err(io_err("preallocate", path)(e));
            }
            f
        };
        self.start_spare();
        Ok(file)
    }

    /// Deletes whole segments all of whose entries are <= `snapshot_index`, keeping at least
    /// the `max_files` most recent segments (etcd's --max-wals: purge only what is older than
    /// the snapshot AND beyond the limit; 0 = keep all). The segment being written is never
    /// deleted. Returns the deleted paths. Uses plain unlink (a metadata syscall per file).
    pub fn purge(
        &mut self,
        snapshot_index: u64,
        max_files: usize,
    ) -> Result<Vec<PathBuf>, WalError> {
        if max_files == 0 {
            return Ok(Vec::new());
        }
        let n = self.segments.len();
        // Segment i holds live entries < first_index(i + 1) only.
        let mut older = 0;
        while older + 1 < n
            && self.segments[older + 1].name.first_index <= snapshot_index.saturating_add(1)
        {
            older += 1;
        }
        let count = older.min(n.saturating_sub(max_files));
        let mut removed = Vec::with_capacity(count);
        let mut failure = None;
        for s in &self.segments[..count] {
            match self.fs.remove(&s.path) {
                Ok(()) => removed.push(s.path.clone()),
                Err(e) => {
                    failure = Some(WalError::Io {
                        op: "remove",
                        path: s.path.clone(),
                        source: e,
                    });
                    break;
                }
            }
        }
        self.segments.drain(..removed.len());
        match failure {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths of the segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Index of the last entry appended (buffered or durable).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }
}

/// Adds an entry to the recovered log: entries <= `after` are covered by the snapshot; an
/// index not past the last one truncates the log from there (raft overwrote it); a gap starts
/// the log afresh (a snapshot was installed in between).
fn push_entry(rec: &mut Recovered, after: u64, index: u64, term: u64, data: &[u8]) {
    if index <= after {
        // Superseding anything kept so far (all of it is > after >= index).
        rec.entries.clear();
        return;
    }
    if let (Some(first), Some(last)) = (rec.entries.first(), rec.entries.last()) {
        let (first, last) = (first.0, last.0);
        if index < first {
            rec.entries.clear();
        } else if index <= last {
            rec.entries.truncate((index - first) as usize);
        } else if index - last > 1 {
            rec.warnings.push(format!(
                "wal: entry {index} follows entry {last}: dropping entries {first}..={last}"
            ));
            rec.entries.clear();
        }
    }
    rec.entries.push((index, term, data.to_vec()));
}
