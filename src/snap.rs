//! Snapshot files: one file per snapshot in a directory (`member/snap/`), named
//! `%016x-%016x.snap` (term, then index, as etcd names them), versioned and checksummed.
//!
//! Owns the snapshot file format, the durable write (temp file, fsync, rename, directory
//! fsync), choosing the newest valid snapshot on startup (skipping damaged ones, which are
//! renamed to `*.broken` and reported) and purging old ones. Knows nothing of what the payload
//! means (the store's snapshot encoding) or of raft.
//!
//! I/O: plain `std::fs` (snapshots are rare, large and sequential). Every function blocks the
//! calling thread for the whole write/fsync; the raft node runs them where its
//! [`crate::raft::env::Blocking`] says (glommio's blocking thread pool in a server, so the
//! executor keeps serving while the disk works).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// First bytes of every snapshot file.
pub const MAGIC: &[u8; 8] = b"ternsnap";
/// Current format version.
pub const VERSION: u32 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 40;

// Format: a snapshot file, integers little-endian:
//
//   offset  size  field
//        0     8  magic     b"ternsnap"
//        8     4  version   1
//       12     8  index     raft index the snapshot covers (must match the file name)
//       20     8  term      raft term of that index (must match the file name)
//       28     8  length    payload bytes
//       36     4  crc       crc32c over bytes 0..36, then the payload
//       40     …  payload   opaque (the store's snapshot encoding)
//
// The file is exactly 40 + length bytes long.

/// A snapshot read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub index: u64,
    pub term: u64,
    pub payload: Vec<u8>,
}

/// Result of [`load_newest`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Damaged snapshot files that were skipped (and renamed to `*.broken`), with the reason.
    pub skipped: Vec<String>,
}

/// Snapshot I/O failures (damage is not an error: it is reported in [`Loaded::skipped`]).
#[derive(Debug)]
pub enum SnapError {
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The payload is too large for this platform.
    TooLarge(u64),
    /// The file is not the valid snapshot its name says.
    Invalid { path: PathBuf, why: String },
}

impl fmt::Display for SnapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapError::Io { op, path, source } => {
                write!(f, "snap: {op} {}: {source}", path.display())
            }
            SnapError::TooLarge(n) => write!(f, "snap: payload of {n} bytes is too large"),
            SnapError::Invalid { path, why } => write!(f, "snap: {}: {why}", path.display()),
        }
    }
}

impl std::error::Error for SnapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SnapError::Io { source, .. } => Some(source),
            SnapError::TooLarge(_) | SnapError::Invalid { .. } => None,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapError + 'a {
    move |source| SnapError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// File name of the snapshot at `index`/`term`.
pub fn file_name(index: u64, term: u64) -> String {
    format!("{term:016x}-{index:016x}.snap")
}

/// Parses a snapshot file name into (index, term).
pub fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".snap")?;
    let (t, i) = stem.split_once('-')?;
    if t.len() != 16 || i.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(i, 16).ok()?,
        u64::from_str_radix(t, 16).ok()?,
    ))
}

fn header(index: u64, term: u64, len: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&index.to_le_bytes());
    h[20..28].copy_from_slice(&term.to_le_bytes());
    h[28..36].copy_from_slice(&len.to_le_bytes());
    h
}

/// Encodes a snapshot file's bytes.
pub fn encode(index: u64, term: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    let mut h = header(index, term, payload.len() as u64);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..36]), payload);
    h[36..40].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    out
}

/// Decodes a snapshot file's bytes; `Err` says why they are not a valid snapshot.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    if &bytes[0..8] != MAGIC {
        return Err("bad magic".into());
    }
    let u32_at = |at: usize| {
        let mut a = [0u8; 4];
        a.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(a)
    };
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(a)
    };
    let version = u32_at(8);
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let len = u64_at(28);
    if (bytes.len() - HEADER_LEN) as u64 != len {
        return Err(format!(
            "payload is {} bytes, header says {len}",
            bytes.len() - HEADER_LEN
        ));
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..36]), &bytes[HEADER_LEN..]);
    if crc != u32_at(36) {
        return Err("checksum mismatch".into());
    }
    Ok(Snapshot {
        index: u64_at(12),
        term: u64_at(20),
        payload: bytes[HEADER_LEN..].to_vec(),
    })
}

fn sync_dir(dir: &Path) -> Result<(), SnapError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Writes the snapshot durably: `<name>.tmp`, fsync, rename to `<name>`, fsync `dir`.
/// Blocks the calling thread (see the module doc). Returns the file's path.
pub fn save(dir: &Path, index: u64, term: u64, payload: &[u8]) -> Result<PathBuf, SnapError> {
    save_timed(dir, index, term, payload).map(|(path, _)| path)
}

/// How long a [`save`] took: the snapshot file's fsync, and the whole save.
#[derive(Debug, Clone, Copy)]
pub struct SaveTimes {
    pub fsync: Duration,
    pub total: Duration,
}

/// [`save`], and how long it took.
pub fn save_timed(
    dir: &Path,
    index: u64,
    term: u64,
    payload: &[u8],
) -> Result<(PathBuf, SaveTimes), SnapError> {
    let started = Instant::now();
    let mut fsync = Duration::ZERO;
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let name = file_name(index, term);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut h = header(index, term, payload.len() as u64);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..36]), payload);
    h[36..40].copy_from_slice(&crc.to_le_bytes());
    let mut write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&h)?;
        f.write_all(payload)?;
        let synced = Instant::now();
        f.sync_all()?;
        fsync = synced.elapsed();
        Ok(())
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(SnapError::Io {
            op: "write",
            path: tmp,
            source: e,
        });
    }
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    sync_dir(dir)?;
    let total = started.elapsed();
    Ok((path, SaveTimes { fsync, total }))
}

/// Snapshot files in `dir` as (index, term, path), newest first.
fn list(dir: &Path) -> Result<Vec<(u64, u64, PathBuf)>, SnapError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(io_err("list", dir))?;
        if let Some((index, term)) = e.file_name().to_str().and_then(parse_name) {
            out.push((index, term, e.path()));
        }
    }
    out.sort_by_key(|x| std::cmp::Reverse((x.0, x.1)));
    Ok(out)
}

/// Loads the newest valid snapshot in `dir` (missing dir: none). Damaged files are skipped,
/// renamed to `*.broken` and reported; I/O errors fail. Leftover `*.snap.tmp` files from an
/// interrupted save, and `*.incoming` ones of a snapshot being received from a peer, are
/// removed.
pub fn load_newest(dir: &Path) -> Result<Loaded, SnapError> {
    let mut loaded = Loaded::default();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".snap.tmp") || n.ends_with(".incoming"))
            {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    for (index, term, path) in list(dir)? {
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err("read", &path))?;
        let why = match decode(&bytes) {
            Ok(s) if s.index == index && s.term == term => {
                loaded.snapshot = Some(s);
                return Ok(loaded);
            }
            Ok(s) => format!(
                "header says index {} term {}, name says index {index} term {term}",
                s.index, s.term
            ),
            Err(why) => why,
        };
        let mut broken = path.clone().into_os_string();
        broken.push(".broken");
        let renamed = fs::rename(&path, &broken).is_ok();
        loaded.skipped.push(format!(
            "snap: skipped {}: {why}{}",
            path.display(),
            if renamed {
                " (renamed to *.broken)"
            } else {
                ""
            }
        ));
    }
    Ok(loaded)
}

/// The payload of the snapshot file for `index`/`term` in `dir`, checked (header, checksum and
/// the index and term its name gives).
pub fn load(dir: &Path, index: u64, term: u64) -> Result<Vec<u8>, SnapError> {
    let path = dir.join(file_name(index, term));
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err("read", &path))?;
    match decode(&bytes) {
        Ok(s) if s.index == index && s.term == term => Ok(s.payload),
        Ok(s) => Err(SnapError::Invalid {
            path,
            why: format!("header says index {} term {}", s.index, s.term),
        }),
        Err(why) => Err(SnapError::Invalid { path, why }),
    }
}

/// Deletes all but the `max_snapshots` newest snapshot files (0 = keep all). Returns the
/// deleted paths.
pub fn purge(dir: &Path, max_snapshots: usize) -> Result<Vec<PathBuf>, SnapError> {
    if max_snapshots == 0 {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for (_, _, path) in list(dir)?.into_iter().skip(max_snapshots) {
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::var_os("TERN_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("tern-snap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn load_reads_back_the_payload_its_name_promises() {
        let dir = tmpdir("load");
        save(&dir, 7, 2, b"payload").unwrap();
        assert_eq!(load(&dir, 7, 2).unwrap(), b"payload");
        assert!(
            matches!(load(&dir, 8, 2), Err(SnapError::Io { .. })),
            "missing file"
        );
        // A file whose header disagrees with its name, and a damaged one, are refused.
        fs::copy(dir.join(file_name(7, 2)), dir.join(file_name(9, 2))).unwrap();
        let err = load(&dir, 9, 2).unwrap_err().to_string();
        assert!(err.contains("header says index 7 term 2"), "{err}");
        let path = dir.join(file_name(7, 2));
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(load(&dir, 7, 2)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn names() {
        assert_eq!(file_name(0x10, 2), "0000000000000002-0000000000000010.snap");
        assert_eq!(parse_name(&file_name(0x10, 2)), Some((0x10, 2)));
        assert_eq!(
            parse_name("0000000000000002-0000000000000010.snap.tmp"),
            None
        );
        assert_eq!(parse_name("2-10.snap"), None);
    }

    #[test]
    fn encode_decode_and_every_bit_flip() {
        let b = encode(7, 3, b"store bytes");
        let s = decode(&b).expect("valid");
        assert_eq!(
            (s.index, s.term, s.payload.as_slice()),
            (7, 3, &b"store bytes"[..])
        );
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(decode(&c).is_err(), "flip at {i}");
        }
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn round_trip_fallback_and_purge() {
        let d = tmpdir("rt");
        assert_eq!(load_newest(&d).expect("empty"), Loaded::default());
        save(&d, 10, 1, b"ten").expect("save");
        save(&d, 20, 2, b"twenty").expect("save");
        let p30 = save(&d, 30, 2, &vec![9u8; 100_000]).expect("save");
        let l = load_newest(&d).expect("load");
        let s = l.snapshot.expect("some");
        assert_eq!((s.index, s.term, s.payload.len()), (30, 2, 100_000));
        assert!(l.skipped.is_empty());

        // damage the newest: falls back to the next one, reports and renames the bad one
        let mut bytes = fs::read(&p30).expect("read");
        bytes[HEADER_LEN + 500] ^= 1;
        fs::write(&p30, &bytes).expect("write");
        fs::write(
            d.join("0000000000000009-0000000000000099.snap.tmp"),
            b"junk",
        )
        .expect("w");
        let l = load_newest(&d).expect("load");
        let s = l.snapshot.expect("some");
        assert_eq!(
            (s.index, s.term, s.payload.as_slice()),
            (20, 2, &b"twenty"[..])
        );
        assert_eq!(l.skipped.len(), 1);
        assert!(l.skipped[0].contains("checksum"), "{:?}", l.skipped);
        assert!(!p30.exists());
        assert!(d.join(format!("{}.broken", file_name(30, 2))).exists());
        assert!(!d
            .join("0000000000000009-0000000000000099.snap.tmp")
            .exists());

        // a file whose header disagrees with its name is skipped too
        fs::write(d.join(file_name(40, 2)), encode(41, 2, b"x")).expect("w");
        let l = load_newest(&d).expect("load");
        assert_eq!(l.snapshot.map(|s| s.index), Some(20));
        assert_eq!(l.skipped.len(), 1);

        save(&d, 50, 3, b"fifty").expect("save");
        assert!(purge(&d, 0).expect("keep all").is_empty());
        let removed = purge(&d, 2).expect("purge");
        assert_eq!(removed, vec![d.join(file_name(10, 1))]);
        let left: Vec<_> = list(&d).expect("list").into_iter().map(|x| x.0).collect();
        assert_eq!(left, vec![50, 20]);
        let _ = fs::remove_dir_all(&d);
    }
}
