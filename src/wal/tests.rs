//! WAL tests, each run on the in-memory file system and on real O_DIRECT files under
//! `$TERN_TEST_DIR` or the system temp dir (O_DIRECT needs a real disk, not tmpfs). Fault injection that needs the
//! in-memory file system (torn writes, failed fsyncs, power loss) runs on it only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::record::{self, Decoded, Record};
use super::*;

use crate::iomem::run_local as run;

/// A file system plus raw access to its files (for damaging them).
trait Harness {
    type Fs: WalFs + Clone + 'static;
    fn fs(&self) -> Self::Fs;
    fn dir(&self) -> &Path;
    fn read(&self, path: &Path) -> Vec<u8>;
    fn write(&self, path: &Path, bytes: &[u8]);
    /// Where the first never-written (preallocated) block of `path` starts, if it has one.
    fn first_unwritten(&self, path: &Path) -> Option<u64>;
}

struct Mem {
    fs: MemFs,
    dir: PathBuf,
}

impl Mem {
    fn new() -> Self {
        Mem {
            fs: MemFs::default(),
            dir: PathBuf::from("/data/member/wal"),
        }
    }
}

impl Harness for Mem {
    type Fs = MemFs;
    fn fs(&self) -> MemFs {
        self.fs.clone()
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn read(&self, path: &Path) -> Vec<u8> {
        self.fs.contents(path).expect("file exists")
    }
    fn write(&self, path: &Path, bytes: &[u8]) {
        self.fs.set_contents(path, bytes.to_vec());
    }
    fn first_unwritten(&self, _: &Path) -> Option<u64> {
        None
    }
}

struct Disk {
    dir: PathBuf,
}

impl Disk {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = super::file::test_dir(&format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Disk { dir }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Harness for Disk {
    type Fs = DmaFs;
    fn fs(&self) -> DmaFs {
        DmaFs
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn read(&self, path: &Path) -> Vec<u8> {
        std::fs::read(path).expect("read")
    }
    fn write(&self, path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).expect("write");
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .expect("sync");
    }
    fn first_unwritten(&self, path: &Path) -> Option<u64> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(path).expect("open");
        let size = f.metadata().expect("metadata").len();
        // SAFETY: plain syscall on an open descriptor.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_HOLE) };
        (hole >= 0 && (hole as u64) < size).then_some(hole as u64)
    }
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[test]
            fn mem() {
                run(super::$name(Mem::new()));
            }
            #[test]
            fn disk() {
                run(super::$name(Disk::new(stringify!($name))));
            }
        }
    };
}

fn small() -> WalOptions {
    WalOptions {
        segment_size: 64 << 10,
    }
}

fn tiny() -> WalOptions {
    WalOptions {
        segment_size: 8 << 10,
    }
}

fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8 | 1).collect()
}

async fn create<H: Harness>(h: &H, opts: WalOptions) -> Wal<H::Fs> {
    Wal::create_with(h.fs(), h.dir(), b"meta", opts)
        .await
        .expect("create")
}

async fn open<H: Harness>(h: &H, after: u64, opts: WalOptions) -> (Wal<H::Fs>, Recovered) {
    match Wal::open_with(h.fs(), h.dir(), after, opts).await {
        Ok(x) => x,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn indexes(r: &Recovered) -> Vec<u64> {
    r.entries.iter().map(|e| e.0).collect()
}

/// (start, body end, frame end) of every record in a segment's bytes.
fn record_offsets(bytes: &[u8]) -> Vec<(usize, usize, usize, u8)> {
    let mut out = Vec::new();
    let mut off = 0;
    while let Ok(Decoded::Record { record, next, .. }) = record::decode(bytes, off, None) {
        let body = record::HEADER_LEN
            + 1
            + match record {
                Record::Metadata(m) => m.len(),
                Record::Entry { data, .. } => 16 + data.len(),
                Record::HardState { .. } => 24,
                Record::Snapshot { .. } => 16,
                Record::Crc(_) => 4,
            };
        let tag = bytes[off + record::HEADER_LEN];
        out.push((off, off + body, next, tag));
        off = next;
    }
    out
}

// ---------------------------------------------------------------------------------------------

async fn round_trip<H: Harness>(h: H) {
    assert!(!Wal::exists_with(&h.fs(), h.dir()));
    assert!(matches!(
        Wal::open_with(h.fs(), h.dir(), 0, small()).await,
        Err(WalError::NotFound(_))
    ));
    let mut w = create(&h, small()).await;
    assert!(Wal::exists_with(&h.fs(), h.dir()));
    assert!(matches!(
        Wal::create_with(h.fs(), h.dir(), b"x", small()).await,
        Err(WalError::AlreadyExists(_))
    ));
    assert!(!w.has_pending());
    assert_eq!(w.sync().await.expect("empty sync"), SyncStats::default());
    for i in 1..=50u64 {
        w.append_entry(i, 1 + i / 20, &payload(i, (i as usize * 7) % 300));
        if i % 7 == 0 {
            w.set_hard_state(1 + i / 20, 1, i - 2);
            let s = w.sync().await.expect("sync");
            assert_eq!(s.fsyncs, 1);
            assert!(!w.has_pending());
        }
    }
    w.append_snapshot_marker(10, 1);
    w.set_hard_state(3, 2, 49);
    w.sync().await.expect("sync");
    drop(w);

    let (mut w, r) = open(&h, 0, small()).await;
    assert_eq!(r.metadata, b"meta");
    assert_eq!(r.hard_state, Some((3, 2, 49)));
    assert_eq!(r.snapshot_markers, vec![(10, 1)]);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(indexes(&r), (1..=50).collect::<Vec<_>>());
    for (i, t, d) in &r.entries {
        assert_eq!(*t, 1 + i / 20);
        assert_eq!(d, &payload(*i, (*i as usize * 7) % 300));
    }
    assert_eq!(w.last_index(), 50);
    for i in 51..=60 {
        w.append_entry(i, 3, b"more");
    }
    w.sync().await.expect("sync");
    drop(w);

    let (_, r) = open(&h, 20, small()).await;
    assert_eq!(indexes(&r), (21..=60).collect::<Vec<_>>());
    assert_eq!(r.hard_state, Some((3, 2, 49)));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}
both!(round_trip);

/// A WAL cut at every byte of its last record (zeroed from there on, or the file truncated
/// there) recovers every complete record, and is writable afterwards.
async fn cut_every_byte_of_last_record<H: Harness>(h: H) {
    let mut w = create(&h, small()).await;
    for i in 1..=5 {
        w.append_entry(i, 1, &payload(i, 30));
        w.sync().await.expect("sync");
    }
    w.append_entry(6, 1, &payload(6, 41));
    w.sync().await.expect("sync");
    drop(w);
    let seg = h.dir().join(
        SegmentName {
            seq: 0,
            first_index: 0,
        }
        .file_name(),
    );
    let template = h.read(&seg);
    let recs = record_offsets(&template);
    let &(start, body_end, frame_end, tag) = recs.last().expect("records");
    assert_eq!(tag, record::tag::ENTRY);
    for truncate_file in [false, true] {
        for k in 0..frame_end - start {
            let mut b = template.clone();
            if truncate_file {
                b.truncate(start + k);
            } else {
                b[start + k..frame_end].fill(0);
            }
            h.write(&seg, &b);
            let (mut w, r) = open(&h, 0, small()).await;
            let complete = start + k >= body_end;
            let want: Vec<u64> = if complete {
                (1..=6).collect()
            } else {
                (1..=5).collect()
            };
            assert_eq!(indexes(&r), want, "k={k} truncate={truncate_file}");
            assert_eq!(
                r.warnings.is_empty(),
                k == 0 || complete,
                "k={k} truncate={truncate_file}: {:?}",
                r.warnings
            );
            // writable, and the repaired log reads back clean
            w.append_entry(7, 2, b"after repair");
            w.sync().await.expect("sync");
            drop(w);
            let (_, r) = open(&h, 0, small()).await;
            let mut want = want;
            if !complete {
                // entry 7 follows 5: a gap; the later run wins
                want.clear();
            }
            want.push(7);
            assert_eq!(indexes(&r), want, "k={k} truncate={truncate_file}");
        }
    }
}
both!(cut_every_byte_of_last_record);

/// A flipped bit in the last record is truncated with a warning; in an earlier record it
/// stops recovery with the file and offset.
async fn flipped_bits<H: Harness>(h: H) {
    let mut w = create(&h, small()).await;
    for i in 1..=6 {
        w.append_entry(i, 1, &payload(i, 100));
        w.sync().await.expect("sync");
    }
    drop(w);
    let seg = h.dir().join(
        SegmentName {
            seq: 0,
            first_index: 0,
        }
        .file_name(),
    );
    let template = h.read(&seg);
    let recs = record_offsets(&template);
    assert_eq!(recs.len(), 8); // crc, metadata, 6 entries
    let (last, _, _, _) = recs[7];
    let (third, _, _, _) = recs[4];

    // tail: every position of the last record, a sample of bits
    for pos in (last..recs[7].1).step_by(7) {
        let mut b = template.clone();
        b[pos] ^= 1 << (pos % 8);
        h.write(&seg, &b);
        let (w, r) = open(&h, 0, small()).await;
        drop(w);
        assert_eq!(indexes(&r), (1..=5).collect::<Vec<_>>(), "pos {pos}");
        assert_eq!(r.warnings.len(), 1, "pos {pos}: {:?}", r.warnings);
        assert!(
            r.warnings[0].contains(&format!("offset {last}")),
            "{:?}",
            r.warnings
        );
        // repaired: a second open is clean
        let (_, r) = open(&h, 0, small()).await;
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert_eq!(indexes(&r), (1..=5).collect::<Vec<_>>());
    }

    // middle: header (length field), body, and the chain field of entry 3
    for pos in [third + 1, third + 5, third + 40, recs[4].1 - 1] {
        let mut b = template.clone();
        b[pos] ^= 0x08;
        h.write(&seg, &b);
        match Wal::open_with(h.fs(), h.dir(), 0, small()).await {
            Err(WalError::Corrupt {
                file,
                offset,
                reason,
            }) => {
                assert_eq!(file, seg);
                assert_eq!(offset, third as u64, "pos {pos}: {reason}");
                let msg = WalError::Corrupt {
                    file,
                    offset,
                    reason,
                }
                .to_string();
                assert!(msg.contains(&format!("offset {third}")), "{msg}");
            }
            Err(e) => panic!("pos {pos}: wrong error {e}"),
            Ok((_, r)) => panic!("pos {pos}: opened: {:?}", indexes(&r)),
        }
    }
}
both!(flipped_bits);

/// Segments rotate at the configured size, carry the chain and headers, and purge follows
/// --max-wals semantics.
async fn rotation_and_purge<H: Harness>(h: H) {
    let mut w = create(&h, tiny()).await;
    let mut rotations = 0;
    let mut index = 0;
    for round in 0..30u64 {
        for _ in 0..3 {
            index += 1;
            w.append_entry(index, 1 + round / 10, &payload(index, 1000));
        }
        w.set_hard_state(1 + round / 10, 1, index);
        let s = w.sync().await.expect("sync");
        if s.fsyncs == 2 {
            rotations += 1;
        }
    }
    let paths = w.segment_paths();
    assert!(paths.len() >= 8, "{paths:?}");
    assert_eq!(rotations, paths.len() - 1);
    let names: Vec<SegmentName> = paths
        .iter()
        .map(|p| {
            SegmentName::parse(p.file_name().and_then(|n| n.to_str()).expect("name"))
                .expect("parse")
        })
        .collect();
    for (i, n) in names.iter().enumerate() {
        assert_eq!(n.seq, i as u64);
    }
    for pair in names.windows(2) {
        assert!(pair[1].first_index > pair[0].first_index);
        // batches are 3 entries: a segment starts at a batch boundary
        assert_eq!((pair[1].first_index - 1) % 3, 0, "{names:?}");
    }
    drop(w);

    let (mut w, r) = open(&h, 0, tiny()).await;
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(indexes(&r), (1..=90).collect::<Vec<_>>());
    assert_eq!(r.hard_state, Some((3, 1, 90)));

    // nothing older than the snapshot, or 0 = keep all: no purge
    assert!(w.purge(0, 1).expect("purge").is_empty());
    assert!(w.purge(90, 0).expect("purge").is_empty());
    // keep at least 3
    let snap = 45;
    let removed = w.purge(snap, 3).expect("purge");
    let left = w.segment_paths();
    assert!(!removed.is_empty());
    assert_eq!(removed.len() + left.len(), paths.len());
    let first_left = names[removed.len()];
    assert!(first_left.first_index <= snap + 1, "{first_left:?}");
    assert!(names[removed.len() + 1].first_index > snap + 1 || left.len() == 3);
    let listed = h.fs().list(h.dir()).expect("list");
    for p in &removed {
        let name = p.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(!listed.iter().any(|n| n == name), "{name} still there");
    }
    drop(w);
    // Without the snapshot the purge relied on (opened from the start), the purged entries
    // are missing: an error naming the oldest segment left, never a log with a hole.
    match Wal::open_with(h.fs(), h.dir(), 0, tiny()).await {
        Err(WalError::Gap {
            file,
            first_index,
            after: 0,
        }) => {
            assert_eq!(first_index, first_left.first_index);
            assert_eq!(file, h.dir().join(first_left.file_name()));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok((_, r)) => panic!("opened with a hole: {:?}", indexes(&r)),
    }
    let (mut w, r) = open(&h, snap, tiny()).await;
    assert_eq!(indexes(&r), (snap + 1..=90).collect::<Vec<_>>());
    assert_eq!(r.hard_state, Some((3, 1, 90)));
    assert_eq!(r.metadata, b"meta");

    // purge everything older than the current segment
    let removed = w.purge(90, 1).expect("purge");
    assert_eq!(w.segment_paths().len(), 1);
    assert_eq!(removed.len(), left.len() - 1);
    w.append_entry(91, 3, b"x");
    w.sync().await.expect("sync");
    drop(w);
    let (_, r) = open(&h, 90, tiny()).await;
    assert_eq!(indexes(&r), vec![91]);
    assert_eq!(r.hard_state, Some((3, 1, 90)));
    assert_eq!(r.metadata, b"meta");
}
both!(rotation_and_purge);

/// Later entries replace a conflicting suffix, also across segments.
async fn overwrite_suffix<H: Harness>(h: H) {
    let mut w = create(&h, tiny()).await;
    for i in 1..=10 {
        w.append_entry(i, 1, &payload(i, 900));
        w.sync().await.expect("sync");
    }
    for i in 6..=8 {
        w.append_entry(i, 2, b"t2");
    }
    w.sync().await.expect("sync");
    w.append_entry(9, 2, b"t2");
    w.sync().await.expect("sync");
    // a new leader truncates further back, into an older segment
    w.append_entry(3, 3, b"t3");
    w.sync().await.expect("sync");
    assert!(w.segment_paths().len() > 1);
    drop(w);
    let (_, r) = open(&h, 0, tiny()).await;
    let got: Vec<(u64, u64)> = r.entries.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(got, vec![(1, 1), (2, 1), (3, 3)]);
    let (_, r) = open(&h, 2, tiny()).await;
    assert_eq!(indexes(&r), vec![3]);
}
both!(overwrite_suffix);

/// Damage in a segment that is not the last one is never a "tail".
async fn corruption_in_older_segment<H: Harness>(h: H) {
    let mut w = create(&h, tiny()).await;
    for i in 1..=30 {
        w.append_entry(i, 1, &payload(i, 700));
        w.sync().await.expect("sync");
    }
    let paths = w.segment_paths();
    drop(w);
    assert!(paths.len() >= 3);
    // damage the last record of the first segment
    let mut b = h.read(&paths[0]);
    let recs = record_offsets(&b);
    let (start, body_end, _, _) = *recs.last().expect("records");
    b[body_end - 3] ^= 0x80;
    h.write(&paths[0], &b);
    match Wal::open_with(h.fs(), h.dir(), 0, tiny()).await {
        Err(WalError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, paths[0]);
            assert_eq!(offset, start as u64);
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("opened a corrupt WAL"),
    }
}
both!(corruption_in_older_segment);

/// A crash while a new segment's first write was in flight leaves an empty (or torn) last
/// segment: it is removed with a warning and the log continues.
async fn interrupted_rotation<H: Harness>(h: H) {
    let mut w = create(&h, tiny()).await;
    for i in 1..=12 {
        w.append_entry(i, 1, &payload(i, 1000));
        w.set_hard_state(1, 1, i);
        w.sync().await.expect("sync");
    }
    let paths = w.segment_paths();
    let last_name = SegmentName::parse(
        paths[paths.len() - 1]
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name"),
    )
    .expect("parse");
    drop(w);
    for junk in [vec![0u8; 8192], {
        let mut v = vec![0u8; 8192];
        v[100..140].fill(0xEE);
        v
    }] {
        let extra = h.dir().join(
            SegmentName {
                seq: last_name.seq + 1,
                first_index: 13,
            }
            .file_name(),
        );
        h.write(&extra, &junk);
        let (w, r) = open(&h, 0, tiny()).await;
        assert_eq!(indexes(&r), (1..=12).collect::<Vec<_>>());
        assert_eq!(r.hard_state, Some((1, 1, 12)));
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("removed"), "{:?}", r.warnings);
        assert_eq!(w.segment_paths(), paths);
        drop(w);
        // also when `after` points into the removed segment
        h.write(&extra, &junk);
        let (w, r) = open(&h, 13, tiny()).await;
        assert!(indexes(&r).is_empty());
        assert_eq!(r.hard_state, Some((1, 1, 12)));
        assert_eq!(w.segment_paths(), paths);
    }
    let (mut w, _) = open(&h, 0, tiny()).await;
    w.append_entry(13, 1, b"x");
    w.sync().await.expect("sync");
    drop(w);
    let (_, r) = open(&h, 0, tiny()).await;
    assert_eq!(indexes(&r), (1..=13).collect::<Vec<_>>());
}
both!(interrupted_rotation);

/// Records larger than a block and batches larger than a segment.
async fn large_records_and_batches<H: Harness>(h: H) {
    let mut w = create(&h, tiny()).await;
    w.append_entry(1, 1, &payload(1, 100_000));
    w.sync().await.expect("sync");
    for i in 2..=40 {
        w.append_entry(i, 1, &payload(i, 3000));
    }
    let s = w.sync().await.expect("sync");
    assert!(s.bytes >= 39 * 3000);
    w.append_entry(41, 1, b"small");
    w.sync().await.expect("sync");
    drop(w);
    let (_, r) = open(&h, 0, tiny()).await;
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(indexes(&r), (1..=41).collect::<Vec<_>>());
    assert_eq!(r.entries[0].2, payload(1, 100_000));
}
both!(large_records_and_batches);

// ---------------------------------------------------------------------------------------------
// In-memory only: faults that need the fake file system.

#[test]
fn group_commit_is_one_write_and_one_fdatasync() {
    run(async {
        let h = Mem::new();
        let fs = h.fs.clone();
        let mut w = create(&h, small()).await;
        let (w0, f0) = fs.counts();
        for i in 1..=100 {
            w.append_entry(i, 1, &payload(i, 50));
        }
        w.set_hard_state(1, 1, 100);
        let s = w.sync().await.expect("sync");
        assert_eq!(s.records, 101);
        assert_eq!(s.fsyncs, 1);
        assert_eq!(fs.counts(), (w0 + 1, f0 + 1));
        // nothing pending: no I/O at all
        assert_eq!(w.sync().await.expect("sync"), SyncStats::default());
        assert_eq!(fs.counts(), (w0 + 1, f0 + 1));
        // a small batch rewrites just the partial tail block
        w.append_entry(101, 1, b"x");
        let s = w.sync().await.expect("sync");
        assert_eq!(s.bytes, 4096);
        assert_eq!(fs.counts(), (w0 + 2, f0 + 2));
    });
}

#[test]
fn power_loss_keeps_exactly_what_was_synced() {
    run(async {
        let h = Mem::new();
        let fs = h.fs.clone();
        let mut w = create(&h, small()).await;
        for i in 1..=3 {
            w.append_entry(i, 1, b"a");
        }
        w.sync().await.expect("sync");
        w.append_entry(4, 1, b"unsynced");
        drop(w);
        fs.crash();
        let (mut w, r) = open(&h, 0, small()).await;
        assert_eq!(indexes(&r), vec![1, 2, 3]);
        assert!(r.warnings.is_empty());
        // a write torn mid-way (which then reached the disk) loses only unsynced records
        for i in 4..=20 {
            w.append_entry(i, 1, &payload(i, 600));
        }
        fs.tear_next_write(5000);
        assert!(matches!(w.sync().await, Err(WalError::Io { .. })));
        assert!(matches!(w.sync().await, Err(WalError::Poisoned)));
        w.append_entry(21, 1, b"ignored");
        assert!(matches!(w.sync().await, Err(WalError::Poisoned)));
        drop(w);
        let (mut w, r) = open(&h, 0, small()).await;
        let got = indexes(&r);
        assert!(got.len() >= 3 && got.len() < 20, "{got:?}");
        assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        let next = got.len() as u64 + 1;
        w.append_entry(next, 2, b"b");
        w.sync().await.expect("sync after recovery");
        drop(w);
        fs.crash();
        let (_, r) = open(&h, 0, small()).await;
        assert_eq!(indexes(&r), (1..=next).collect::<Vec<_>>());
    });
}

#[test]
fn failed_write_or_fdatasync_poisons() {
    run(async {
        let h = Mem::new();
        let fs = h.fs.clone();
        let mut w = create(&h, small()).await;
        w.append_entry(1, 1, b"a");
        w.sync().await.expect("sync");
        w.append_entry(2, 1, b"b");
        fs.fail_next_writes(1);
        let e = w.sync().await.expect_err("write fails");
        assert!(e.to_string().contains("write"), "{e}");
        assert!(matches!(w.sync().await, Err(WalError::Poisoned)));
        drop(w);
        let (mut w, r) = open(&h, 0, small()).await;
        assert_eq!(indexes(&r), vec![1]);
        w.append_entry(2, 1, b"b");
        fs.fail_next_fsyncs(1);
        let e = w.sync().await.expect_err("fdatasync fails");
        assert!(e.to_string().contains("fdatasync"), "{e}");
        assert!(matches!(w.sync().await, Err(WalError::Poisoned)));
        drop(w);
        fs.crash();
        let (_, r) = open(&h, 0, small()).await;
        assert_eq!(indexes(&r), vec![1]);
    });
}

/// Sectors of the last batch reaching the disk out of order: a zero sector inside a record
/// (or where a header should be) followed by valid records is a torn tail, not corruption.
#[test]
fn out_of_order_sectors_are_a_torn_tail() {
    run(async {
        for hole_in_header in [false, true] {
            let h = Mem::new();
            let mut w = create(&h, small()).await;
            for i in 1..=3 {
                w.append_entry(i, 1, b"acked");
            }
            w.sync().await.expect("sync");
            for i in 4..=9 {
                w.append_entry(i, 1, &payload(i, 2000));
            }
            w.sync().await.expect("sync");
            drop(w);
            let seg = h.dir().join(
                SegmentName {
                    seq: 0,
                    first_index: 0,
                }
                .file_name(),
            );
            let mut b = h.read(&seg);
            let recs = record_offsets(&b);
            // entry 6's record
            let (start, body_end, _, _) = recs[2 + 5];
            let sector = if hole_in_header {
                start / 512 * 512
            } else {
                (start + 600) / 512 * 512
            };
            assert!(sector + 512 <= body_end);
            b[sector..sector + 512].fill(0);
            h.write(&seg, &b);
            // entries whose bytes all precede the hole survive
            let want = recs[2..]
                .iter()
                .take_while(|&&(_, body_end, _, _)| body_end <= sector)
                .count();
            assert!(want >= 4);
            let (_, r) = open(&h, 0, small()).await;
            assert_eq!(indexes(&r).len(), want, "hole_in_header={hole_in_header}");
            assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        }
    });
}

#[test]
fn oversized_record_fails_the_sync() {
    run(async {
        let h = Mem::new();
        let mut w = create(&h, small()).await;
        // calloc'ed, never touched: the encoder refuses before copying
        let big = vec![0u8; record::MAX_BODY_LEN];
        w.append_entry(1, 1, &big);
        assert!(w.has_pending());
        assert!(matches!(w.sync().await, Err(WalError::RecordTooLarge(_))));
        assert!(matches!(w.sync().await, Err(WalError::Poisoned)));
    });
}

#[test]
fn only_segment_without_valid_records_is_an_error() {
    run(async {
        let h = Mem::new();
        let w = create(&h, small()).await;
        let seg = w.segment_paths()[0].clone();
        drop(w);
        let mut b = h.read(&seg);
        b[20] ^= 1; // the crc record
        h.write(&seg, &b);
        match Wal::open_with(h.fs(), h.dir(), 0, small()).await {
            Err(WalError::Corrupt { .. }) => {}
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("opened"),
        }
    });
}

#[test]
fn sequence_gap_is_refused() {
    run(async {
        let h = Mem::new();
        let mut w = create(&h, tiny()).await;
        for i in 1..=20 {
            w.append_entry(i, 1, &payload(i, 1500));
            w.sync().await.expect("sync");
        }
        let paths = w.segment_paths();
        drop(w);
        assert!(paths.len() >= 3);
        h.fs.remove(&paths[1]).expect("remove");
        match Wal::open_with(h.fs(), h.dir(), 0, tiny()).await {
            Err(WalError::Corrupt { file, reason, .. }) => {
                assert_eq!(file, paths[2]);
                assert!(reason.contains("gap"), "{reason}");
            }
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("opened"),
        }
    });
}

/// Waits until the background task has zero-filled the spare segment.
async fn spare_ready<H: Harness>(h: &H, size: u64) -> PathBuf {
    let spare = h.dir().join(SPARE_SEGMENT);
    for _ in 0..1000 {
        let listed = h.fs().list(h.dir());
        if listed.is_ok_and(|names| names.iter().any(|n| n == SPARE_SEGMENT)) {
            let bytes = h.read(&spare);
            if bytes.len() as u64 == size && h.first_unwritten(&spare).is_none() {
                assert!(bytes.iter().all(|b| *b == 0), "the spare holds only zeros");
                return spare;
            }
        }
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the spare segment was not prepared within 5 s");
}

/// Appends overwrite written blocks: the first segment is zero-filled at creation and every
/// later one is the spare, prepared in the background and renamed into place at rotation.
async fn segments_are_zero_filled<H: Harness>(h: H) {
    let opts = small();
    let size = opts.segment_size;
    let mut w = Wal::create_with(h.fs(), h.dir(), b"meta", opts.clone())
        .await
        .expect("create");
    let first = w.segment_paths()[0].clone();
    assert_eq!(
        h.first_unwritten(&first),
        None,
        "{} has unwritten blocks",
        first.display()
    );
    spare_ready(&h, size).await;
    let mut index = 0;
    while w.segment_paths().len() < 2 {
        index += 1;
        w.append_entry(index, 1, &[7u8; 1000]);
        w.sync().await.expect("sync");
    }
    let second = w.segment_paths()[1].clone();
    assert_eq!(
        h.first_unwritten(&second),
        None,
        "{} has unwritten blocks",
        second.display()
    );
    // A new spare is prepared for the next rotation.
    spare_ready(&h, size).await;
    drop(w);
    let (_, rec) = Wal::open_with(h.fs(), h.dir(), 0, opts)
        .await
        .expect("open");
    assert_eq!(rec.entries.len() as u64, index);
}
both!(segments_are_zero_filled);

/// A spare left by an interrupted preparation is never taken for a segment: open deletes it
/// and prepares it again from scratch.
#[test]
fn open_replaces_a_stale_spare() {
    run(async {
        let h = Mem::new();
        let opts = small();
        let mut w = Wal::create_with(h.fs(), h.dir(), b"meta", opts.clone())
            .await
            .expect("create");
        w.append_entry(1, 1, b"one");
        w.sync().await.expect("sync");
        drop(w);
        let spare = h.dir().join(SPARE_SEGMENT);
        h.write(&spare, &[0xAB; 4096]);
        let (w, rec) = Wal::open_with(h.fs(), h.dir(), 0, opts.clone())
            .await
            .expect("open");
        assert_eq!(rec.entries.len(), 1);
        assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
        spare_ready(&h, opts.segment_size).await;
        drop(w);
        let left = h.fs().list(h.dir()).expect("list");
        assert!(
            !left.iter().any(|n| n == SPARE_SEGMENT),
            "the spare goes with its WAL"
        );
    });
}

/// A full disk: the next segment cannot be prepared, [`Wal::room`] shrinks to what is left of
/// the current segment (less the reserve), syncs of entries that fit never fail, no
/// half-made file is left, and once space returns the spare is made and room is unbounded.
#[test]
fn a_full_disk_shrinks_room_and_recovers_when_space_returns() {
    run(async {
        let h = Mem::new();
        let opts = small();
        let seg = opts.segment_size;
        let fs = h.fs();
        // The first segment, its spare, and a little more: the second spare will not fit.
        fs.set_capacity(Some(2 * seg + seg / 4));
        let mut w = Wal::create_with(h.fs(), h.dir(), b"meta", opts.clone())
            .await
            .expect("create");
        w.maintain().await;
        spare_ready(&h, seg).await;
        w.maintain().await;
        assert_eq!(w.room(), u64::MAX, "a prepared spare means unbounded room");
        let entry = payload(0, 1000);
        let mut index = 0;
        let mut rotated = false;
        let mut refused = false;
        for _ in 0..400 {
            w.maintain().await;
            if w.room() < entry.len() as u64 + 64 {
                refused = true;
                break;
            }
            index += 1;
            w.append_entry(index, 1, &entry);
            w.set_hard_state(1, 1, index);
            let stats = w
                .sync()
                .await
                .unwrap_or_else(|e| panic!("entry {index}: {e}"));
            rotated |= stats.fsyncs == 2;
            // Let the spare's preparation run (and fail).
            glommio::yield_if_needed().await;
        }
        assert!(rotated, "the spare was never used");
        assert!(refused, "room never ran out");
        // Hard-state records still fit in the reserve.
        for _ in 0..50 {
            w.set_hard_state(2, 1, index);
            w.sync().await.expect("hard state in the reserve");
        }
        let files = fs.list(h.dir()).expect("list");
        assert!(
            !files
                .iter()
                .any(|n| n == SPARE_SEGMENT || n.ends_with(".tmp")),
            "a failed preparation left {files:?}"
        );
        // Space returns: the spare is prepared again and writes go on.
        fs.set_capacity(None);
        glommio::timer::sleep(SPARE_RETRY).await;
        for _ in 0..100 {
            w.maintain().await;
            if w.room() == u64::MAX {
                break;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(w.room(), u64::MAX, "the spare was not prepared again");
        for _ in 0..80 {
            index += 1;
            w.append_entry(index, 2, &entry);
            w.sync().await.expect("sync after space returned");
        }
        drop(w);
        let (_, r) = open(&h, 0, opts).await;
        assert_eq!(indexes(&r), (1..=index).collect::<Vec<_>>());
    });
}

/// Creating a WAL on a full disk fails without leaving its temporary segment behind.
#[test]
fn create_on_a_full_disk_leaves_nothing() {
    run(async {
        let h = Mem::new();
        h.fs().set_capacity(Some(4096));
        match Wal::create_with(h.fs(), h.dir(), b"meta", small()).await {
            Err(e) => assert!(e.to_string().contains("No space left"), "{e}"),
            Ok(_) => panic!("created a WAL on a full disk"),
        }
        assert!(h.fs().list(h.dir()).expect("list").is_empty());
    });
}
